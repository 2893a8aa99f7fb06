// Package loadgen measures what one rendezvous server carries: it starts
// the server as its own process (so that its memory and CPU can be read
// from /proc apart from the load), then brings up many lightweight libp2p
// nodes in this process and drives them the way natter nodes use a
// rendezvous.
//
// A node connects over TCP and QUIC (both, like natter), from a loopback
// address of its own group (127.x.y.z, NodesPerIP nodes each: Linux
// routes all of 127/8 to lo, and the server applies its per-IP limits to
// loopback as to any address), reserves a relay slot, registers its signed
// peer record under natter/peer/<id> (with its relay address), then pings
// the server every Heartbeat and refreshes its reservation and
// registration at natter's intervals, with random phases.
//
// For each level of nodes (ramped up cumulatively on one server):
//
//	ramp     bring the new nodes up, Concurrency at a time
//	settle   let identify and late dials finish
//	memory   server RSS and Go heap, minus what it used with no node
//	idle     server CPU over Idle while the nodes only heartbeat and
//	         refresh
//	register Rate registrations a second for RateDuration (open loop:
//	         latency counts from when the request was due), then as many as
//	         Workers can make (closed loop)
//	lookup   the same for lookups of random registered nodes
//	chat     Pairs pairs of nodes talk through the relay: an echo of
//	         MsgSize-byte messages, Window in flight per pair
//
// The chat is a stream echo rather than natter's chat protocol: what costs
// the relay is copying bytes between two streams, whatever they carry;
// natter's chat adds an fsync at each end, which measures the nodes' disks,
// not the server.
//
// The same is run against the server with WithStockLibp2pLimits (go-libp2p's
// resource manager, connection manager and relay defaults) as a baseline.
package loadgen
