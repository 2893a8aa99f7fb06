package node

import (
	"bytes"
	"context"
	"image"
	"image/jpeg"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/protocols/profile"
)

func photo(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i % 251)
	}
	var buf bytes.Buffer
	require.NoError(t, jpeg.Encode(&buf, img, nil))
	return buf.Bytes()
}

// waitProfile waits until n has other's profile at version v or newer.
func waitProfile(t *testing.T, n *Node, ref string, v uint64) control.Profile {
	t.Helper()
	var p control.Profile
	require.Eventually(t, func() bool {
		var err error
		p, err = apiClient(n).ContactProfile(context.Background(), ref)
		return err == nil && p.Version >= v
	}, 15*time.Second, 20*time.Millisecond, "profile of %s never reached version %d (at %d)", ref, v, p.Version)
	return p
}

// TestProfileExchange: a profile change reaches a connected contact
// through the version in presence pushes (fetched, validated, cached, an
// event); so does every later change, the status message set through
// presence included; the cache survives a restart.
func TestProfileExchange(t *testing.T) {
	bcfg := testConfig(t)
	a := newTestNode(t, testConfig(t), "alice")
	b := newTestNode(t, bcfg, "bob")
	befriend(t, a, "alice", b, "bob")
	ctx := context.Background()
	ca, cb := apiClient(a), apiClient(b)
	_, err := cb.ContactProfile(ctx, "alice")
	require.Equal(t, http.StatusNotFound, apiCode(t, err), "nothing fetched before the first change")
	evB := subscribe(t, b)

	name, status := "Alice Liddell", "down the rabbit hole"
	p, err := ca.SetProfile(ctx, control.ProfileRequest{Name: &name, Status: &status, Avatar: photo(t, 640, 480)})
	require.NoError(t, err)
	require.Equal(t, uint64(1), p.Version)
	require.Equal(t, profile.TypeJPEG, p.AvatarType)
	require.Equal(t, [2]int{128, 96}, [2]int{p.AvatarWidth, p.AvatarHeight})

	e := waitEvent(t, evB, func(e control.Event) bool { return e.Type == control.EventProfile })
	require.Equal(t, a.ID().String(), e.PeerID)
	require.Equal(t, "alice", e.Name)
	require.Equal(t, uint64(1), e.Version)
	got := waitProfile(t, b, "alice", 1)
	require.Equal(t, "alice", got.Contact)
	require.Equal(t, name, got.Name)
	require.Equal(t, status, got.Status)
	require.Equal(t, p.Avatar, got.Avatar)
	require.NoError(t, profile.ValidateAvatar(got.Avatar, got.AvatarType))

	// The status message has one home: presence --message changes the
	// profile too (a new version, fetched again).
	_, err = ca.SetPresence(ctx, control.PresenceRequest{Message: strp("back soon")})
	require.NoError(t, err)
	got = waitProfile(t, b, "alice", 2)
	require.Equal(t, "back soon", got.Status)
	require.Equal(t, p.Avatar, got.Avatar)
	own, err := ca.Profile(ctx)
	require.NoError(t, err)
	require.Equal(t, "back soon", own.Status)

	_, err = ca.SetProfile(ctx, control.ProfileRequest{ClearAvatar: true})
	require.NoError(t, err)
	got = waitProfile(t, b, "alice", 3)
	require.Empty(t, got.Avatar)
	require.Empty(t, got.AvatarType)

	// A stranger's node is refused (and counted); nothing of ours leaks.
	c := newTestNode(t, testConfig(t), "carol")
	require.NoError(t, c.Host().Connect(ctx, a.Host().Peerstore().PeerInfo(a.ID())))
	_, err = profile.Fetch(ctx, c.Host(), a.ID())
	require.Error(t, err)
	require.Eventually(t, func() bool { return a.metrics.Count("profile", "refused") >= 1 }, 5*time.Second, 10*time.Millisecond)

	// Bad input through the API: one clear error each, nothing changed.
	for _, req := range []control.ProfileRequest{
		{Avatar: []byte("not an image")},
		{Avatar: photo(t, 8, 8), ClearAvatar: true},
		{},
		{Name: strp("")},
		{Status: strp("bell\a")},
	} {
		_, err := ca.SetProfile(ctx, req)
		require.Equal(t, http.StatusBadRequest, apiCode(t, err), "%v", err)
	}
	own, err = ca.Profile(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(3), own.Version)

	// Bob's cached copy survives his restart.
	require.NoError(t, b.Close())
	b2 := startTestNode(t, bcfg, b.key, "bob")
	got, err = apiClient(b2).ContactProfile(ctx, "alice")
	require.NoError(t, err)
	require.Equal(t, uint64(3), got.Version)
	require.Equal(t, name, got.Name)
}
