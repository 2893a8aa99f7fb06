package profile_test

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/protocols/profile"
	"github.com/natterim/natter/protocols/wire"
)

// picture is a w x h gradient with a transparent corner.
func picture(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			a := uint8(255)
			if x < w/4 && y < h/4 {
				a = 0
			}
			img.SetNRGBA(x, y, color.NRGBA{uint8(x * 255 / w), uint8(y * 255 / h), 128, a})
		}
	}
	return img
}

func noise(w, h int) *image.NRGBA {
	r := rand.New(rand.NewPCG(1, 2))
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.UintN(256))
	}
	return img
}

func encPNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, img))
	return buf.Bytes()
}

func encJPEG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, jpeg.Encode(&buf, img, nil))
	return buf.Bytes()
}

// pngClaiming is a valid small PNG whose header claims w x h pixels (a
// decompression bomb: tiny file, enormous image).
func pngClaiming(t testing.TB, w, h uint32) []byte {
	t.Helper()
	b := encPNG(t, picture(4, 4))
	// Signature (8), IHDR length (4), "IHDR" (4), width, height.
	binary.BigEndian.PutUint32(b[16:], w)
	binary.BigEndian.PutUint32(b[20:], h)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}

func dims(t *testing.T, data []byte) (int, int, string) {
	t.Helper()
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	require.NoError(t, err)
	return cfg.Width, cfg.Height, format
}

func TestPrepareAvatar(t *testing.T) {
	var gifBuf bytes.Buffer
	require.NoError(t, gif.Encode(&gifBuf, picture(8, 8), nil))
	validPNG := encPNG(t, picture(300, 200))

	bad := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"not an image", []byte("hello, I am a text file, not a picture"), "not a PNG or JPEG"},
		{"a GIF", gifBuf.Bytes(), "use PNG or JPEG"},
		{"truncated PNG", validPNG[:len(validPNG)/2], "damaged"},
		{"truncated JPEG", encJPEG(t, picture(300, 200))[:2000], "damaged"},
		{"bomb: 100000 x 100000", pngClaiming(t, 100000, 100000), "pixels"},
		{"bomb: too many pixels", pngClaiming(t, 8000, 8000), "megapixels"},
		{"oversized file", append(encPNG(t, picture(8, 8)), make([]byte, profile.MaxInputBytes)...), "limit is"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, _, err := profile.PrepareAvatar(tc.data)
			require.ErrorIs(t, err, profile.ErrBadAvatar)
			require.ErrorIs(t, err, wire.ErrInvalid)
			require.ErrorContains(t, err, tc.want)
			// A bomb is refused from its header, not after decoding.
			require.Less(t, time.Since(start), 5*time.Second)
		})
	}

	good := []struct {
		name  string
		data  []byte
		typ   string
		w, h  int
		alpha bool
	}{
		{"PNG with transparency, landscape", validPNG, profile.TypePNG, 128, 85, true},
		{"JPEG photo, portrait", encJPEG(t, picture(500, 1000)), profile.TypeJPEG, 64, 128, false},
		{"small PNG is not enlarged", encPNG(t, picture(16, 16)), profile.TypePNG, 16, 16, true},
		{"noisy PNG too big as PNG becomes JPEG", encPNG(t, noise(128, 128)), profile.TypeJPEG, 128, 128, false},
	}
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			out, typ, err := profile.PrepareAvatar(tc.data)
			require.NoError(t, err)
			require.Equal(t, tc.typ, typ)
			require.LessOrEqual(t, len(out), profile.MaxAvatarBytes)
			w, h, _ := dims(t, out)
			require.Equal(t, [2]int{tc.w, tc.h}, [2]int{w, h})
			require.NoError(t, profile.ValidateAvatar(out, typ), "what we prepare, contacts accept")
			if tc.alpha {
				img, _, err := image.Decode(bytes.NewReader(out))
				require.NoError(t, err)
				_, _, _, a := img.At(0, 0).RGBA()
				require.Zero(t, a, "transparency kept")
			}
		})
	}
}

func TestValidateAvatar(t *testing.T) {
	small := encPNG(t, picture(64, 64))
	photo := encJPEG(t, picture(128, 96))
	for _, tc := range []struct {
		name string
		data []byte
		typ  string
		want string // "" = valid
	}{
		{"none", nil, "", ""},
		{"png", small, profile.TypePNG, ""},
		{"jpeg", photo, profile.TypeJPEG, ""},
		{"type without image", nil, profile.TypePNG, "without an image"},
		{"image without type", small, "", "media type"},
		{"png sent as jpeg", small, profile.TypeJPEG, "sent as"},
		{"gif type", small, "image/gif", "media type"},
		{"not an image", []byte("<svg onload=alert(1)>"), profile.TypePNG, "not an image"},
		{"too wide", encPNG(t, picture(129, 10)), profile.TypePNG, "129x10"},
		{"bomb header", pngClaiming(t, 60000, 60000), profile.TypePNG, "60000x60000"},
		{"oversize", append(small, make([]byte, profile.MaxAvatarBytes)...), profile.TypePNG, "bytes (max"},
		{"truncated", small[:len(small)-20], profile.TypePNG, "damaged"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := profile.ValidateAvatar(tc.data, tc.typ)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, profile.ErrBadAvatar)
			require.ErrorContains(t, err, tc.want)
		})
	}
}
