package cli_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/control"
)

func writePNG(t *testing.T, path string, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+3] = uint8(i), 255
	}
	img.SetNRGBA(0, 0, color.NRGBA{A: 255})
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, img))
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o600))
	return buf.Bytes()
}

// TestProfileCommands: set and show the profile; every kind of bad
// avatar is one clear line and exit 1; usage errors exit 2.
func TestProfileCommands(t *testing.T) {
	n, dir := startNode(t, "alice")
	tmp := t.TempDir()
	good := filepath.Join(tmp, "me.png")
	writePNG(t, good, 400, 300)

	code, out, errOut := run(t, "profile", "set", "--data-dir", dir, "--name", "Alice L.", "--status", "reading", "--avatar", good)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "profile updated (version 1)")

	code, out, errOut = run(t, "profile", "show", "--data-dir", dir, "--json", "--avatar-out", filepath.Join(tmp, "out.png"))
	require.Equal(t, 0, code, errOut)
	var p control.Profile
	require.NoError(t, json.Unmarshal([]byte(out), &p))
	require.Equal(t, n.ID().String(), p.PeerID)
	require.Equal(t, "Alice L.", p.Name)
	require.Equal(t, "reading", p.Status)
	require.Equal(t, "image/png", p.AvatarType)
	require.Equal(t, [2]int{128, 96}, [2]int{p.AvatarWidth, p.AvatarHeight})
	require.Empty(t, p.Avatar, "the image goes to --avatar-out, not the terminal")
	written, err := os.ReadFile(filepath.Join(tmp, "out.png"))
	require.NoError(t, err)
	require.Len(t, written, p.AvatarBytes)

	// One status message: presence shows what profile set.
	code, out, errOut = run(t, "presence", "--data-dir", dir)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "reading")
	code, _, errOut = run(t, "presence", "--data-dir", dir, "--message", "cooking")
	require.Equal(t, 0, code, errOut)
	code, out, errOut = run(t, "profile", "show", "--data-dir", dir)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "cooking")
	require.Contains(t, out, "image/png 128x96")

	text := filepath.Join(tmp, "notes.png")
	require.NoError(t, os.WriteFile(text, []byte("this is not a picture"), 0o600))
	big := filepath.Join(tmp, "big.png")
	require.NoError(t, os.WriteFile(big, make([]byte, 1<<20+1), 0o600))
	bomb := filepath.Join(tmp, "bomb.png")
	b := writePNG(t, bomb, 4, 4)
	binary.BigEndian.PutUint32(b[16:], 60000)
	binary.BigEndian.PutUint32(b[20:], 60000)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	require.NoError(t, os.WriteFile(bomb, b, 0o600))
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"not an image", []string{"--avatar", text}, 1, "not a PNG or JPEG image"},
		{"decompression bomb", []string{"--avatar", bomb}, 1, "60000x60000 pixels"},
		{"oversized file", []string{"--avatar", big}, 1, "the limit is 1048576"},
		{"missing file", []string{"--avatar", filepath.Join(tmp, "nope.png")}, 1, "no such file"},
		{"a directory", []string{"--avatar", tmp}, 1, "not a regular file"},
		{"control characters in the name", []string{"--name", "a\x1b[2Jb"}, 1, "control characters"},
		{"empty name", []string{"--name", " "}, 1, "cannot be empty"},
		{"nothing to change", nil, 2, "nothing to change"},
		{"avatar and clear", []string{"--avatar", good, "--clear-avatar"}, 2, "together"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := run(t, append([]string{"profile", "set", "--data-dir", dir}, tc.args...)...)
			oneLineErr(t, code, errOut, tc.code, tc.want)
		})
	}
	code, _, errOut = run(t, "profile", "show", "nobody", "--data-dir", dir)
	oneLineErr(t, code, errOut, 1, "no contact")

	code, _, errOut = run(t, "profile", "set", "--data-dir", dir, "--clear-avatar")
	require.Equal(t, 0, code, errOut)
	code, _, errOut = run(t, "profile", "show", "--data-dir", dir, "--avatar-out", filepath.Join(tmp, "x.png"))
	oneLineErr(t, code, errOut, 1, "has no avatar")
}

// TestNamesCommandsWithoutRendezvous: names live on the rendezvous; with
// none, every command says so in one line.
func TestNamesCommandsWithoutRendezvous(t *testing.T) {
	_, dir := startNode(t, "alice")
	code, out, errOut := run(t, "names", "list", "--data-dir", dir)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "no names yet")
	code, out, errOut = run(t, "names", "list", "--json", "--data-dir", dir)
	require.Equal(t, 0, code, errOut)
	require.JSONEq(t, "[]", out)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"names", "register", "alice"}, "not connected to any rendezvous server"},
		{[]string{"names", "lookup", "bob"}, "not connected to any rendezvous server"},
		{[]string{"names", "register", "al"}, "3 to 32 characters"},
		{[]string{"names", "lookup", "b\u043eb"}, "may only use a-z"},
		{[]string{"names", "release", "alice"}, "not one of your names"},
		{[]string{"contacts", "add", "bob-smith"}, "not connected to any rendezvous server"},
	} {
		code, _, errOut := run(t, append(tc.args, "--data-dir", dir)...)
		oneLineErr(t, code, errOut, 1, tc.want)
	}
}
