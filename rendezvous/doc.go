// Package rendezvous is natter's public server, meant for a small cloud VM
// with a public address. Nodes behind home NATs connect to it over TCP and
// QUIC and use it to find each other and to get through their NATs; once
// two nodes have a direct connection, nothing of theirs passes through it.
//
// One libp2p host (fixed identity, TCP + QUIC, Noise and TLS) runs:
//
//	identify        nodes learn their observed public address (needed
//	                before DCUtR hole punching can work)
//	AutoNAT         nodes learn whether they are reachable
//	ping            nodes' heartbeats; the time of the last one is kept
//	relay v2        reservations for nodes behind NAT; relayed connections
//	                for when no direct link can be made. Relayed connections
//	                have no time limit and a byte budget per direction
//	                (relay.circuit_data_limit); they stay "limited" to nodes
//	rendezvous      the registry (protocols/rendezvous): a node registers
//	                its addresses, its contacts look it up
//	kad-dht         server mode, prefix /natter: peer routing among several
//	                rendezvous servers; never the public IPFS DHT
//	mailbox         offline mailboxes (protocols/mailbox): sealed boxes for
//	                nodes that are offline, kept in rendezvous.db until
//	                their owner fetches them; unreadable to the server
//
// Flow for two nodes A and B behind NAT:
//
//	A ──connect(tcp,quic)──▶ S ◀──connect(tcp,quic)── B
//	A ──reserve────────────▶ S                  (relay v2)
//	A ──register(addrs)────▶ S                  (rendezvous)
//	                         S ◀──lookup(A)──────── B
//	A ◀════ relayed via S ═══════════════════════▶ B
//	A ◀──────────── DCUtR hole punch ────────────▶ B   (direct)
//
// The server keeps an online list (Online): every connected peer with its
// registration, reservation, last heartbeat and open circuits. A peer that
// disconnects leaves the list and the registry at once.
//
// Limits (limits.go, ratelimit.go; every value in Config): the libp2p
// resource manager with deliberate limits per peer, per protocol and peer,
// per IP (connections per IPv4 address and IPv6 /56, loopback included)
// and in all, where the shared totals are as large as the server's (a small
// shared pool is one a few abusers can drain for everyone); a connection
// manager that trims peers with neither reservation nor registration
// first; caps per IP on reservations (the relay's) and registrations (the
// registry's MaxRegistrationsPerSource); token buckets per peer and per IP
// on new connections (a connection gater, before the handshake), registry
// requests (the registry's Gate), reservations and circuits (the relay's
// ACL) and pings, and go-libp2p's AutoNAT throttle. A reservation that
// replaces the same peer's previous one from a new connection (a restart)
// is not a new one for the per-peer bucket (reservations.go). Refusals are counted in
// natter_rendezvous_refused_total{request,reason}.
//
// Data dir (0700): identity.key (the server's Ed25519 key, libp2p-
// marshalled, unencrypted, 0600: a public server must start unattended),
// rendezvous.db (store: the name directory and the mailboxes), server.lock
// (flock: one server per data dir), admin.sock (HTTP+JSON admin API, 0600:
// GET /v1/peers, GET /v1/status, GET /v1/mailboxes, GET /v1/backup; see
// AdminClient). A backup (AdminClient.Backup, BackupOffline) is the key and
// a VACUUM INTO snapshot of the database in a tar archive; Restore unpacks
// one.
//
// Metrics (Prometheus, off unless metrics_listen is set): libp2p's own, and
// natter_rendezvous_{online_peers,reservations,registrations} gauges and
// connection, reservation, circuit and heartbeat counters, the mailbox's
// natter_mailbox_* counters and gauges; /healthz says "ok" while the host
// listens.
package rendezvous
