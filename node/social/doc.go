// Package social is who we know and what they see of us: friend requests
// and the states of contacts, presence, profiles, and names in the
// rendezvous directory.
//
// It exists so that the rest of the daemon never has to know these rules:
// links only keep connections up and report changes, chat and files only
// ask whether a peer is an accepted contact, and the control API only
// calls the domain methods here. One Service, made by New, owns the
// state of all four concerns (contacts.go, presence.go, profile.go,
// names.go); what it needs from elsewhere it declares in deps.go and node
// wires.
//
//	control API ──AddContact/Accept/Reject/Block/RemoveContact──▶ contacts ──▶ Store
//	            ──SetPresence/Touch──────────────────────────────▶ presence ──push──▶ Network
//	            ──OwnProfile/SetProfile/ContactProfile───────────▶ profiles ──fetch─▶ Network
//	            ──RegisterName/ReleaseName/OwnNames/LookupName───▶ names ──▶ Network (rendezvous)
//
//	links ──HandleLink(LinkUp)──────▶ push presence, send our pending request
//	      ──HandleLink(LinkDown)────▶ forget the contact's presence (offline)
//	      ──HandleLink(LinkPinged)──▶ send a pending request again when it is due
//	      ──KickNames───────────────▶ renew our names on a new rendezvous connection
//
//	peers ──/natter/contact──▶ HandleContact: the request state machine
//	      ──/natter/presence─▶ the contact's presence (and a profile fetch if newer)
//	      ──/natter/profile──▶ our profile, to accepted contacts only
//
// Accepting a contact starts its link (Links.StartContact, which node also
// uses to start the chat deliverer) and pushes our presence and a deposit
// token (Tokens.PushToken). One mutex serialises every transition of the
// friend-request state machine, whether an API call or a peer caused it.
package social
