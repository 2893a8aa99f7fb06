package profile

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"testing"

	"github.com/natterim/natter/protocols/profile/pb"
	"github.com/natterim/natter/protocols/wire"
)

func seedImages(f *testing.F) (pngData, jpegData []byte) {
	img := image.NewNRGBA(image.Rect(0, 0, 12, 9))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	img.SetNRGBA(0, 0, color.NRGBA{1, 2, 3, 0})
	var p, j bytes.Buffer
	if err := png.Encode(&p, img); err != nil {
		f.Fatal(err)
	}
	if err := jpeg.Encode(&j, img, nil); err != nil {
		f.Fatal(err)
	}
	return p.Bytes(), j.Bytes()
}

// FuzzDecode feeds untrusted bytes through the fetcher's path: one
// length-prefixed frame, decoded as a profile and validated (avatar
// included). Nothing may panic; refusals wrap ErrInvalid; what is
// accepted is within every limit.
func FuzzDecode(f *testing.F) {
	p, j := seedImages(f)
	for _, m := range []*pb.Profile{
		{Version: 3, Name: "Bob", Status: "at lunch", Avatar: p, AvatarType: TypePNG},
		{Version: 4, Avatar: j, AvatarType: TypeJPEG},
		{Version: 5, Avatar: p, AvatarType: TypeJPEG},
		{Name: "bell\a"},
		{},
	} {
		var buf bytes.Buffer
		if err := wire.WriteMsg(&buf, m, MaxFrameSize); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		var m pb.Profile
		if err := wire.ReadMsg(bytes.NewReader(data), &m, MaxFrameSize); err != nil {
			return
		}
		prof, err := fromWire(&m)
		if err != nil {
			if !errors.Is(err, wire.ErrInvalid) {
				t.Fatalf("fromWire: %v does not wrap ErrInvalid", err)
			}
			return
		}
		if len(prof.Avatar) > MaxAvatarBytes || len(prof.Name) > MaxNameBytes || len(prof.Status) > MaxStatusBytes {
			t.Fatalf("accepted an oversized profile: %d %d %d", len(prof.Avatar), len(prof.Name), len(prof.Status))
		}
	})
}

// FuzzValidateAvatar: an avatar from the network, as PNG and as JPEG.
// What is accepted decodes within AvatarSide.
func FuzzValidateAvatar(f *testing.F) {
	p, j := seedImages(f)
	f.Add(p)
	f.Add(j)
	f.Add(p[:len(p)/2])
	f.Add([]byte("GIF89a"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, typ := range []string{TypePNG, TypeJPEG} {
			if err := ValidateAvatar(data, typ); err != nil {
				if !errors.Is(err, ErrBadAvatar) {
					t.Fatalf("%v does not wrap ErrBadAvatar", err)
				}
				continue
			}
			img, _, err := image.Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("accepted an undecodable avatar: %v", err)
			}
			if b := img.Bounds(); b.Dx() > AvatarSide || b.Dy() > AvatarSide {
				t.Fatalf("accepted %v", b)
			}
		}
	})
}

// FuzzPrepareAvatar: a user's file. What comes out is a valid avatar.
func FuzzPrepareAvatar(f *testing.F) {
	p, j := seedImages(f)
	f.Add(p)
	f.Add(j)
	f.Add(j[:len(j)-10])
	f.Add([]byte("not an image"))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, typ, err := PrepareAvatar(data)
		if err != nil {
			if !errors.Is(err, ErrBadAvatar) {
				t.Fatalf("%v does not wrap ErrBadAvatar", err)
			}
			return
		}
		if err := ValidateAvatar(out, typ); err != nil {
			t.Fatalf("prepared avatar is invalid: %v", err)
		}
	})
}
