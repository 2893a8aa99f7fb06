package profile_test

import (
	"bytes"
	"image"
	"testing"

	"github.com/natterim/natter/protocols/profile"
)

// BenchmarkPrepareAvatar: the daemon's cost of taking a large photo as an
// avatar (header check, decode, scale to 128x128, re-encode), as a ratio to
// just decoding the same file — the floor any avatar check must pay.
func BenchmarkPrepareAvatar(b *testing.B) {
	data := encJPEG(b, picture(4000, 3000)) // 12 megapixels
	var decode, prepare float64
	b.Run("decode-only", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, _, err := image.Decode(bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
		decode = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("prepare", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, _, err := profile.PrepareAvatar(data); err != nil {
				b.Fatal(err)
			}
		}
		prepare = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		if decode > 0 {
			b.ReportMetric(prepare/decode, "prepare/decode")
		}
		b.ReportMetric(prepare/1e6, "ms/avatar")
	})
}
