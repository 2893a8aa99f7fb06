package rendezvous

import (
	"testing"
	"time"
)

func TestPresenceOf(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name string
		op   OnlinePeer
		want string
	}{
		{"not registered", OnlinePeer{ConnectedSince: now, LastHeartbeat: now}, PresenceConnected},
		{"registered, fresh heartbeat", OnlinePeer{Registered: now.Add(-time.Hour), ConnectedSince: now.Add(-time.Hour), LastHeartbeat: now.Add(-10 * time.Second)}, PresenceOnline},
		{"registered just now, no heartbeat yet", OnlinePeer{Registered: now.Add(-time.Second), ConnectedSince: now.Add(-2 * time.Second)}, PresenceOnline},
		{"heartbeats overdue", OnlinePeer{Registered: now.Add(-time.Hour), ConnectedSince: now.Add(-time.Hour), LastHeartbeat: now.Add(-2 * HeartbeatStale)}, PresenceStale},
	} {
		if got := presenceOf(tc.op, now); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
