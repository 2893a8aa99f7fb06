package links

import (
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"

	chatproto "github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/contact"
	"github.com/natterim/natter/protocols/file"
	"github.com/natterim/natter/protocols/mailbox"
	"github.com/natterim/natter/protocols/presence"
	"github.com/natterim/natter/protocols/profile"
)

// serviceLimit is the resource-manager budget of one of natter's own
// services: per peer (what one contact, or one stranger, may hold open
// against us) and for all peers together.
type serviceLimit struct {
	// peerIn and peerOut are the streams of the service one peer may have
	// open at once, inbound and outbound; peerMemory is what their
	// handlers may reserve together.
	peerIn, peerOut int
	peerMemory      int64
	// in and out are the streams of the service over all peers;
	// memory is what they may reserve together, growing by memoryPerGiB
	// for every GiB of memory the limits are scaled to (see AutoScale).
	in, out      int
	memory       int64
	memoryPerGiB int64
}

// Memory the inbound handlers reserve per stream (wire.Serve's Memory);
// outbound streams reserve nothing of their own except profile fetches
// (one frame). The muxers' buffers count against the connection, not the
// service.
const (
	chatStreamMemory     = chatproto.MaxFrameSize
	fileStreamMemory     = 4 << 20 // 3 pieces of read-ahead (1 MiB each) + a hash frame
	contactStreamMemory  = 2 * contact.MaxFrameSize
	presenceStreamMemory = 2 * presence.MaxFrameSize
	profileStreamMemory  = 2 * profile.MaxFrameSize
	tokenStreamMemory    = 2 * (mailbox.MaxTokenSize + 64)
)

// serviceLimits are natter's services with their budgets. The per-peer
// limits are what stop one peer, contact or not, from taking a service
// over; the totals are the size of go-libp2p's default service scope (what
// every service had before) or, for the small request/response services,
// what a few hundred peers at once need, so that a handful of abusive
// peers cannot drain a shared pool for everyone. The system scope (memory
// and descriptors) still bounds the sum.
var serviceLimits = map[string]serviceLimit{
	// Chat: one deliverer per contact, each way, with one stream open at
	// a time; a replaced stream (a reconnect, a relayed link upgraded to
	// a direct one) can overlap its successor while it ends, so 8 each
	// way leaves room. Each inbound stream's handler holds one frame.
	chatproto.ServiceName: {
		peerIn: 8, peerOut: 8, peerMemory: 8 * chatStreamMemory,
		in: 1024, out: 1024, memory: 64 << 20, memoryPerGiB: 128 << 20,
	},
	// File: a peer pulls at most file.DefaultStreamsPerPeer (4) transfers
	// at once plus a hash-list fetch; further streams are answered BUSY,
	// which needs the stream and its reservation first, hence 8 inbound
	// of ~3 MiB of read-ahead each. Outbound: we download at most 4 files
	// at once (node/files), each a data stream plus a hash-list fetch.
	file.ServiceName: {
		peerIn: 8, peerOut: 8, peerMemory: 8 * fileStreamMemory,
		in: 256, out: 256, memory: 64 << 20, memoryPerGiB: 128 << 20,
	},
	// Contact: friend requests and their answers, one short exchange each,
	// rate-limited per peer to a burst of 5 by the service.
	contact.ServiceName: {
		peerIn: 8, peerOut: 8, peerMemory: 8 * contactStreamMemory,
		in: 512, out: 512, memory: 4 << 20,
	},
	// Presence: one push per change to each contact; pushes to and from
	// every contact when a node starts, a few in a row when the state
	// changes quickly.
	presence.ServiceName: {
		peerIn: 8, peerOut: 8, peerMemory: 8 * presenceStreamMemory,
		in: 1024, out: 1024, memory: 4 << 20,
	},
	// Profile: a fetch (a frame with the avatar, up to 64 KiB) when a
	// contact's profile changed, rate-limited per peer to a burst of 10;
	// the fetching side reserves a frame too.
	profile.ServiceName: {
		peerIn: 8, peerOut: 8, peerMemory: 8*profileStreamMemory + 8*profile.MaxFrameSize,
		in: 512, out: 512, memory: 64 << 20,
	},
	// Mailbox token: a contact pushes us a deposit token now and then, one
	// short exchange each.
	mailbox.TokenServiceName: {
		peerIn: 8, peerOut: 8, peerMemory: 8 * tokenStreamMemory,
		in: 512, out: 512, memory: 4 << 20,
	},
}

// resourceLimits are the host's resource-manager limits: go-libp2p's
// defaults (what libp2p.New would use: DefaultLimits with its services'
// limits, scaled to this machine's memory and file descriptors), plus
// natter's own services.
func resourceLimits() rcmgr.ConcreteLimitConfig {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	for name, l := range serviceLimits {
		limits.AddServiceLimit(name,
			rcmgr.BaseLimit{StreamsInbound: l.in, StreamsOutbound: l.out, Streams: l.in + l.out, Memory: l.memory},
			rcmgr.BaseLimitIncrease{Memory: l.memoryPerGiB},
		)
		limits.AddServicePeerLimit(name,
			rcmgr.BaseLimit{StreamsInbound: l.peerIn, StreamsOutbound: l.peerOut, Streams: l.peerIn + l.peerOut, Memory: l.peerMemory},
			rcmgr.BaseLimitIncrease{},
		)
	}
	return limits.AutoScale()
}

// newResourceManager builds the host's resource manager from
// resourceLimits. It exports its metrics as go-libp2p's default one does
// (libp2p.New registers them with the host's Prometheus registerer).
func newResourceManager() (network.ResourceManager, error) {
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(resourceLimits()))
}
