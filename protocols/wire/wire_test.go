package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/natterim/natter/protocols/wire"
)

func TestRoundTripLeavesTrailingBytes(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, wire.WriteMsg(&buf, wrapperspb.String("hello"), 64))
	require.NoError(t, wire.WriteMsg(&buf, wrapperspb.String("world"), 64))
	buf.WriteString("raw tail")

	var m wrapperspb.StringValue
	require.NoError(t, wire.ReadMsg(&buf, &m, 64))
	require.Equal(t, "hello", m.GetValue())
	require.NoError(t, wire.ReadMsg(&buf, &m, 64))
	require.Equal(t, "world", m.GetValue())
	require.Equal(t, "raw tail", buf.String(), "ReadMsg must not read past its frame")

	var empty bytes.Buffer
	require.ErrorIs(t, wire.ReadMsg(&empty, &m, 64), io.EOF)
}

func TestBadFrames(t *testing.T) {
	big := func(n uint64) []byte { return binary.AppendUvarint(nil, n) }
	cases := []struct {
		name  string
		frame []byte
		want  error
	}{
		{"length over limit", big(65), wire.ErrTooLarge},
		{"huge length", big(1 << 40), wire.ErrMalformed},
		{"non-minimal varint", []byte{0x80, 0x00}, wire.ErrMalformed},
		{"truncated varint", []byte{0x80}, io.ErrUnexpectedEOF},
		{"truncated payload", append(big(10), 1, 2), io.ErrUnexpectedEOF},
		{"garbage payload", append(big(3), 0xff, 0xff, 0xff), wire.ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var m wrapperspb.StringValue
			err := wire.ReadMsg(bytes.NewReader(tc.frame), &m, 64)
			require.ErrorIs(t, err, tc.want)
		})
	}
}

func TestWriteRefusesOversize(t *testing.T) {
	var buf bytes.Buffer
	err := wire.WriteMsg(&buf, wrapperspb.String(string(make([]byte, 100))), 64)
	require.ErrorIs(t, err, wire.ErrTooLarge)
	require.Zero(t, buf.Len(), "nothing may be written for a refused frame")
}

func TestMetricsShareRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := wire.NewMetrics(reg)
	b := wire.NewMetrics(reg)
	a.StreamError("/x", wire.ErrTooLarge)
	b.StreamError("/x", errors.Join(errors.New("ctx"), wire.ErrTooLarge))
	require.Equal(t, 2.0, a.Count("/x", "oversize"))
	var nilMetrics *wire.Metrics
	nilMetrics.StreamError("/x", wire.ErrInvalid) // must not panic
}

func FuzzReadMsg(f *testing.F) {
	var seed bytes.Buffer
	_ = wire.WriteMsg(&seed, wrapperspb.String("seed"), 64)
	f.Add(seed.Bytes())
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x01})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var m wrapperspb.StringValue
		r := bytes.NewReader(data)
		if err := wire.ReadMsg(r, &m, 1024); err != nil {
			return
		}
		// A frame that decoded must re-encode within the limit.
		var out bytes.Buffer
		if err := wire.WriteMsg(&out, &m, 1024+binary.MaxVarintLen64); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		var back wrapperspb.StringValue
		if err := wire.ReadMsg(&out, &back, 2048); err != nil || !proto.Equal(&m, &back) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
