package control_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/control"
)

func stream(s string) *control.EventStream {
	return control.NewEventStream(io.NopCloser(strings.NewReader(s)))
}

func TestEventStream(t *testing.T) {
	s := stream(`{"type":"hello","peer_id":"a"}` + "\n\n" +
		`{"type":"message","peer_id":"b","message":{"id":"m1","text":"hi","status":"delivered"}}` + "\n" +
		`{"type":"future_kind","whatever":[1,2]}` + "\n")
	e, err := s.Next()
	require.NoError(t, err)
	require.Equal(t, control.EventHello, e.Type)
	e, err = s.Next()
	require.NoError(t, err)
	require.Equal(t, "hi", e.Message.Text)
	e, err = s.Next()
	require.NoError(t, err, "unknown kinds decode: clients skip them")
	require.Equal(t, "future_kind", e.Type)
	_, err = s.Next()
	require.ErrorIs(t, err, io.EOF)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "twice is fine")

	for _, tc := range []struct{ name, in, want string }{
		{"not json", "hello\n", "bad event line"},
		{"no type", `{"peer_id":"x"}` + "\n", "without a type"},
		{"too long", `{"type":"message","note":"` + strings.Repeat("x", control.MaxEventLine) + `"}` + "\n", "too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := stream(tc.in).Next()
			require.ErrorContains(t, err, tc.want)
		})
	}
	_, err = stream(strings.Repeat("x", control.MaxEventLine+1)).Next()
	require.True(t, errors.Is(err, control.ErrEventTooLong))
}

// FuzzEventStream: any bytes from the socket give events or an error,
// never a panic or an endless loop.
func FuzzEventStream(f *testing.F) {
	f.Add([]byte(`{"type":"hello"}` + "\n"))
	f.Add([]byte(`{"type":"status","ids":["a","b"],"status":"read"}` + "\n" + `{"type":"typing","typing":true}`))
	f.Add([]byte("\n\n\n{"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := stream(string(b))
		for range len(b) + 2 {
			e, err := s.Next()
			if err != nil {
				return
			}
			if e.Type == "" {
				t.Fatal("an event without a type")
			}
		}
		t.Fatal("more events than lines")
	})
}
