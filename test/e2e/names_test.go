package e2e

import (
	"bytes"
	"encoding/json"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/natterim/natter/internal/lab"
	"github.com/natterim/natter/node/control"
)

// waitRendezvous waits until n is connected to its rendezvous.
func waitRendezvous(t *testing.T, n *nodeProc) {
	t.Helper()
	waitFor(t, directWithin, n.name+" connected to the rendezvous", func() bool {
		st := n.status(t)
		return len(st.Rendezvous) > 0 && st.Rendezvous[0].Connected
	})
}

// TestFindFriendByName: bob claims a name; alice, behind another NAT,
// finds him by it, her friend request crosses both NATs, and they chat.
// The rendezvous lists bob with his name. A profile bob sets (with an
// avatar) shows on alice's side.
func TestFindFriendByName(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	r := startRendezvous(t, l.Public("rdv"))
	alice := startNode(t, l.Home("alice", lab.Cone), "alice", r, nodeOpts{})
	bob := startNode(t, l.Home("bob", lab.Cone), "bob", r, nodeOpts{})
	waitRendezvous(t, bob)
	waitRendezvous(t, alice)

	if out, err := bob.cli(t, "names", "register", "Bob-Name"); err != nil || !strings.Contains(out, "registered bob-name on 1 of 1") {
		t.Fatalf("names register: %v: %s", err, out)
	}
	if out, err := alice.cli(t, "names", "register", "bob_name"); err == nil || !strings.Contains(out, "held by another key") {
		t.Fatalf("a look-alike of bob's name was given to alice: %v: %s", err, out)
	}
	out, err := alice.cli(t, "names", "lookup", "bob-name")
	if err != nil || strings.TrimSpace(out) != bob.id {
		t.Fatalf("names lookup: %v: %q, want %s", err, out, bob.id)
	}
	out, err = alice.cli(t, "names", "lookup", "bob-name", "--json")
	var res control.NameLookup
	if err != nil || json.Unmarshal([]byte(out), &res) != nil || res.PeerID != bob.id || !slices.Equal(res.Servers, []string{r.id}) {
		t.Fatalf("names lookup --json: %v: %s", err, out)
	}
	found := false
	for _, p := range r.peers(t) {
		if p["peer_id"] == bob.id {
			ns, _ := p["names"].([]any)
			found = len(ns) == 1 && ns[0] == "bob-name"
		}
	}
	if !found {
		t.Fatalf("natter-rendezvous peers --json does not list bob-name for bob: %v", r.peers(t))
	}

	if out, err := alice.cli(t, "contacts", "add", "bob-name", "--note", "found you by name"); err != nil || !strings.Contains(out, "pending") {
		t.Fatalf("contacts add bob-name: %v: %s", err, out)
	}
	c := waitState(t, alice, bob, control.StatePendingOut)
	if c.DirName != "bob-name" || c.Name != "bob-name" {
		t.Fatalf("contact added by name: %+v", c)
	}
	req := waitState(t, bob, alice, control.StatePendingIn)
	if req.Note != "found you by name" {
		t.Fatalf("note %q", req.Note)
	}
	if out, err := bob.cli(t, "contacts", "accept", alice.id, "--name", "alice"); err != nil {
		t.Fatalf("accept: %v: %s", err, out)
	}
	waitState(t, alice, bob, control.StateAccepted)
	sendWait(t, alice, "bob-name", "hello bob, found you by name")
	sendWait(t, bob, "alice", "hi alice")

	// Bob's profile, with an avatar, reaches alice.
	img := image.NewNRGBA(image.Rect(0, 0, 300, 200))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 31)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	avatar := filepath.Join(t.TempDir(), "bob.png")
	if err := os.WriteFile(avatar, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := bob.cli(t, "profile", "set", "--name", "Bob B.", "--status", "on the train", "--avatar", avatar); err != nil {
		t.Fatalf("profile set: %v: %s", err, out)
	}
	start := time.Now()
	var p control.Profile
	waitFor(t, deliverWithin, "alice has bob's profile", func() bool {
		out, err := alice.cli(t, "profile", "show", "bob-name", "--json")
		p = control.Profile{}
		return err == nil && json.Unmarshal([]byte(out), &p) == nil && p.Version >= 1
	})
	t.Logf("profile on alice's side %.1f s after profile set", time.Since(start).Seconds())
	if p.PeerID != bob.id || p.Name != "Bob B." || p.Status != "on the train" || p.AvatarType != "image/png" ||
		p.AvatarWidth != 128 || p.AvatarHeight != 85 || p.AvatarBytes == 0 {
		t.Fatalf("bob's profile as alice sees it: %+v", p)
	}
	out, err = alice.cli(t, "profile", "show", "bob-name", "--avatar-out", filepath.Join(t.TempDir(), "a.png"))
	if err != nil || !strings.Contains(out, "image/png 128x85") {
		t.Fatalf("profile show: %v: %s", err, out)
	}
}
