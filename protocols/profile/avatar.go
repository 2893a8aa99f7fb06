package profile

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"

	"golang.org/x/image/draw"

	"github.com/natterim/natter/protocols/wire"
)

// Avatars. A user gives any PNG or JPEG up to MaxInputBytes; natter checks
// its dimensions from the header before decoding anything (a small file
// can claim a huge image: a decompression bomb), decodes it, scales it to
// fit within AvatarSide x AvatarSide, and re-encodes it (which also drops
// metadata such as EXIF location). Contacts only ever receive that small
// re-encoded image, and check it again on arrival (ValidateAvatar).
const (
	// MaxInputBytes is the largest avatar file accepted from the user.
	MaxInputBytes = 1 << 20
	// MaxInputSide and MaxInputPixels bound the dimensions of the user's
	// image, checked before it is decoded.
	MaxInputSide   = 8192
	MaxInputPixels = 16 << 20
	// AvatarSide is the largest width and height of a stored avatar.
	AvatarSide = 128
	// MaxAvatarBytes is the largest avatar sent or accepted over the
	// network.
	MaxAvatarBytes = 64 << 10
	// jpegQuality is used for photos and for PNGs too big as PNG.
	jpegQuality = 85
)

// Media types of avatars.
const (
	TypePNG  = "image/png"
	TypeJPEG = "image/jpeg"
)

// ErrBadAvatar is wrapped by every avatar refusal. It matches
// wire.ErrInvalid too, so that a stream carrying one is counted as
// invalid.
var ErrBadAvatar error = badAvatar{}

type badAvatar struct{}

func (badAvatar) Error() string        { return "bad avatar" }
func (badAvatar) Is(target error) bool { return target == wire.ErrInvalid }

// PrepareAvatar turns a user's image file into an avatar: PNG stays PNG
// (keeping transparency) unless that is over MaxAvatarBytes, JPEG becomes
// JPEG. Errors wrap ErrBadAvatar and say what is wrong in words a user
// understands.
func PrepareAvatar(data []byte) (avatar []byte, mediaType string, err error) {
	if len(data) == 0 {
		return nil, "", fmt.Errorf("%w: the file is empty", ErrBadAvatar)
	}
	if len(data) > MaxInputBytes {
		return nil, "", fmt.Errorf("%w: the file is %d bytes; the limit is %d (1 MiB)", ErrBadAvatar, len(data), MaxInputBytes)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, "", fmt.Errorf("%w: not a PNG or JPEG image (%v)", ErrBadAvatar, err)
	}
	if format != "png" && format != "jpeg" {
		return nil, "", fmt.Errorf("%w: a %s image; use PNG or JPEG", ErrBadAvatar, format)
	}
	if cfg.Width < 1 || cfg.Height < 1 || cfg.Width > MaxInputSide || cfg.Height > MaxInputSide || int64(cfg.Width)*int64(cfg.Height) > MaxInputPixels {
		return nil, "", fmt.Errorf("%w: %dx%d pixels; at most %dx%d and %d megapixels", ErrBadAvatar, cfg.Width, cfg.Height, MaxInputSide, MaxInputSide, MaxInputPixels>>20)
	}
	src, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, "", fmt.Errorf("%w: the %s image is damaged (%v)", ErrBadAvatar, format, err)
	}
	dst := scaleToFit(src, AvatarSide)
	if format == "png" {
		var buf bytes.Buffer
		enc := png.Encoder{CompressionLevel: png.BestCompression}
		if err := enc.Encode(&buf, dst); err != nil {
			return nil, "", fmt.Errorf("encode avatar: %w", err)
		}
		if buf.Len() <= MaxAvatarBytes {
			return buf.Bytes(), TypePNG, nil
		}
		// A noisy picture saved as PNG: send it as a photo.
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, flatten(dst), &jpeg.Options{Quality: jpegQuality}); err != nil {
		return nil, "", fmt.Errorf("encode avatar: %w", err)
	}
	if buf.Len() > MaxAvatarBytes {
		// Cannot happen for 128x128 at this quality; refuse rather than
		// send what contacts would reject.
		return nil, "", fmt.Errorf("%w: %d bytes after re-encoding", ErrBadAvatar, buf.Len())
	}
	return buf.Bytes(), TypeJPEG, nil
}

// scaleToFit returns src scaled down (never up) to fit within side x side,
// keeping its aspect ratio, as RGBA.
func scaleToFit(src image.Image, side int) *image.NRGBA {
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	if w > side || h > side {
		if w >= h {
			h = max(1, h*side/w)
			w = side
		} else {
			w = max(1, w*side/h)
			h = side
		}
	}
	dst := image.NewNRGBA(image.Rect(0, 0, w, h))
	draw.CatmullRom.Scale(dst, dst.Bounds(), src, b, draw.Src, nil)
	return dst
}

// flatten puts img on white (JPEG has no transparency).
func flatten(img *image.NRGBA) *image.RGBA {
	out := image.NewRGBA(img.Bounds())
	draw.Draw(out, out.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	draw.Draw(out, out.Bounds(), img, img.Bounds().Min, draw.Over)
	return out
}

// ValidateAvatar checks an avatar received from the network (or about to
// be sent): at most MaxAvatarBytes, a PNG or JPEG whose header agrees with
// mediaType, at most AvatarSide x AvatarSide, and decodable to the end.
// Nothing a contact sends is trusted. An empty avatar with an empty type
// means "none" and is valid. Errors wrap ErrBadAvatar.
func ValidateAvatar(data []byte, mediaType string) error {
	if len(data) == 0 && mediaType == "" {
		return nil
	}
	if len(data) == 0 {
		return fmt.Errorf("%w: media type %q without an image", ErrBadAvatar, truncate(mediaType))
	}
	if len(data) > MaxAvatarBytes {
		return fmt.Errorf("%w: %d bytes (max %d)", ErrBadAvatar, len(data), MaxAvatarBytes)
	}
	var want string
	switch mediaType {
	case TypePNG:
		want = "png"
	case TypeJPEG:
		want = "jpeg"
	default:
		return fmt.Errorf("%w: media type %q is not %s or %s", ErrBadAvatar, truncate(mediaType), TypePNG, TypeJPEG)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%w: not an image (%v)", ErrBadAvatar, err)
	}
	if format != want {
		return fmt.Errorf("%w: a %s image sent as %s", ErrBadAvatar, format, mediaType)
	}
	if cfg.Width < 1 || cfg.Height < 1 || cfg.Width > AvatarSide || cfg.Height > AvatarSide {
		return fmt.Errorf("%w: %dx%d pixels (max %dx%d)", ErrBadAvatar, cfg.Width, cfg.Height, AvatarSide, AvatarSide)
	}
	if _, _, err := image.Decode(bytes.NewReader(data)); err != nil {
		return fmt.Errorf("%w: damaged %s (%v)", ErrBadAvatar, format, err)
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
