// Package links keeps a natter node connected: it builds the libp2p host
// and keeps two kinds of links alive on it, so that the features above it
// (chat, files, offline delivery, friend requests and presence) only ever
// ask "what is my path to this peer now" and "tell me when it changes".
//
//	          rendezvous (public VM)
//	         /  relay v2, registry  \
//	reserve +                        + reserve
//	register|   1. look up B          |register
//	        |   2. A --relay--> B     |
//	     node A <======== 3. DCUtR ========> node B
//	   (home NAT)     direct TCP/QUIC      (home NAT)
//
// Rendezvous links (rendezvous.go), one per configured server, for the
// service's lifetime:
//
//	connect once per transport, at once (dialPlan) ─> reserve a relay slot
//	  ─> register our signed peer record ─> heartbeat, refresh both
//	  ─> connection lost: OnRendezvous(server, false), backoff, again
//
// Contact links (contact.go), one per contact between StartContact and
// StopContact:
//
//	wait Ready ─> find (rendezvous, invite hints, DHT) ─> connect (relay ok)
//	  ─> watch the path ─┬─ none -> relayed|direct: OnLink(LinkUp)
//	                     ├─ relayed <-> direct:      OnLink(LinkPathChanged)
//	                     ├─ -> none:                 OnLink(LinkDown), dial again
//	                     ├─ relayed: retry the hole punch with backoff
//	                     └─ heartbeat tick:          OnLink(LinkPinged), ping
//
// Ready closes once go-libp2p has armed hole punching (it registers the
// DCUtR handler only when the host knows a public address of its own:
// dialling a contact before that makes the contact's punch fail), or after
// Config.ReadyTimeout for a node that can never learn one.
//
// The package knows nothing of presence, friend requests, tokens or chat:
// those subscribe to link events (OnLink) and rendezvous connections
// (OnRendezvous), and read the path (Path, Changed) when they send. What it
// reads from the contact list goes through the Contacts interface
// (deps.go); what it tells the user goes out on a core.Publisher as link
// and rendezvous events.
package links
