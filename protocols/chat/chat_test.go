package chat_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/chat/pb"
	"github.com/natterim/natter/protocols/wire"
)

func TestCheckText(t *testing.T) {
	cases := []struct {
		name string
		text string
		want error
	}{
		{"empty", "", chat.ErrEmptyText},
		{"too long", strings.Repeat("a", chat.MaxTextBytes+1), chat.ErrTextTooLong},
		{"too long multibyte", strings.Repeat("é", chat.MaxTextBytes/2+1), chat.ErrTextTooLong},
		{"invalid UTF-8", "ab\xffcd", chat.ErrNotUTF8},
		{"truncated rune", "é"[:1], chat.ErrNotUTF8},
		{"ok", "hello, wörld 👋", nil},
		{"ok at limit", strings.Repeat("a", chat.MaxTextBytes), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := chat.CheckText(tc.text)
			if tc.want == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	id := chat.NewID()
	ref := chat.NewID()
	refs := func(n int) [][]byte {
		out := make([][]byte, n)
		for i := range out {
			out[i] = ref[:]
		}
		return out
	}
	cases := []struct {
		name string
		m    *pb.Message
		ok   bool
	}{
		{"text ok", &pb.Message{Id: id[:], Kind: pb.Kind_TEXT, Seq: 1, Text: "hi"}, true},
		{"nudge ok", &pb.Message{Id: id[:], Kind: pb.Kind_NUDGE, Seq: 7}, true},
		{"delivered ok", &pb.Message{Id: id[:], Kind: pb.Kind_DELIVERED, Seq: 2, Refs: refs(1)}, true},
		{"read max refs", &pb.Message{Id: id[:], Kind: pb.Kind_READ, Seq: 2, Refs: refs(chat.MaxRefs)}, true},
		{"typing started no seq", &pb.Message{Id: id[:], Kind: pb.Kind_TYPING_STARTED}, true},
		{"typing stopped", &pb.Message{Id: id[:], Kind: pb.Kind_TYPING_STOPPED, Seq: 3}, true},
		{"unknown kind, other fields ignored", &pb.Message{Id: id[:], Kind: pb.Kind(99), Text: "x", Refs: [][]byte{{1}}}, true},
		{"unspecified kind", &pb.Message{Id: id[:]}, true},

		{"no id", &pb.Message{Kind: pb.Kind_TEXT, Seq: 1, Text: "hi"}, false},
		{"short id", &pb.Message{Id: id[:15], Kind: pb.Kind_TEXT, Seq: 1, Text: "hi"}, false},
		{"long id", &pb.Message{Id: append(id[:], 0), Kind: pb.Kind_TEXT, Seq: 1, Text: "hi"}, false},
		{"unknown kind short id", &pb.Message{Id: id[:5], Kind: pb.Kind(99)}, false},
		{"text no seq", &pb.Message{Id: id[:], Kind: pb.Kind_TEXT, Text: "hi"}, false},
		{"nudge no seq", &pb.Message{Id: id[:], Kind: pb.Kind_NUDGE}, false},
		{"read no seq", &pb.Message{Id: id[:], Kind: pb.Kind_READ, Refs: refs(1)}, false},
		{"text empty", &pb.Message{Id: id[:], Kind: pb.Kind_TEXT, Seq: 1}, false},
		{"text too long", &pb.Message{Id: id[:], Kind: pb.Kind_TEXT, Seq: 1, Text: strings.Repeat("a", chat.MaxTextBytes+1)}, false},
		{"text not UTF-8", &pb.Message{Id: id[:], Kind: pb.Kind_TEXT, Seq: 1, Text: "\xff"}, false},
		{"delivered no refs", &pb.Message{Id: id[:], Kind: pb.Kind_DELIVERED, Seq: 1}, false},
		{"read too many refs", &pb.Message{Id: id[:], Kind: pb.Kind_READ, Seq: 1, Refs: refs(chat.MaxRefs + 1)}, false},
		{"read short ref", &pb.Message{Id: id[:], Kind: pb.Kind_READ, Seq: 1, Refs: [][]byte{ref[:], ref[:3]}}, false},
		{"nudge with text", &pb.Message{Id: id[:], Kind: pb.Kind_NUDGE, Seq: 1, Text: "x"}, false},
		{"receipt with text", &pb.Message{Id: id[:], Kind: pb.Kind_DELIVERED, Seq: 1, Refs: refs(1), Text: "x"}, false},
		{"typing with text", &pb.Message{Id: id[:], Kind: pb.Kind_TYPING_STARTED, Text: "x"}, false},

		// File kinds: only the structure is checked here; the node checks
		// the offer's fields (and records a bad one as a failed transfer).
		{"file offer", &pb.Message{Id: id[:], Kind: pb.Kind_FILE_OFFER, Seq: 1, FileOffer: &pb.FileOffer{Name: "../../x"}}, true},
		{"file offer without offer", &pb.Message{Id: id[:], Kind: pb.Kind_FILE_OFFER, Seq: 1}, false},
		{"file offer with text", &pb.Message{Id: id[:], Kind: pb.Kind_FILE_OFFER, Seq: 1, Text: "x", FileOffer: &pb.FileOffer{}}, false},
		{"file update", &pb.Message{Id: id[:], Kind: pb.Kind_FILE_UPDATE, Seq: 1, FileUpdate: &pb.FileUpdate{Transfer: ref[:], State: pb.FileState_FILE_DONE}}, true},
		{"file update short transfer", &pb.Message{Id: id[:], Kind: pb.Kind_FILE_UPDATE, Seq: 1, FileUpdate: &pb.FileUpdate{Transfer: ref[:4]}}, false},
		{"file update without update", &pb.Message{Id: id[:], Kind: pb.Kind_FILE_UPDATE, Seq: 1}, false},
		{"text with a file offer", &pb.Message{Id: id[:], Kind: pb.Kind_TEXT, Seq: 1, Text: "x", FileOffer: &pb.FileOffer{}}, false},
		{"nudge with a file update", &pb.Message{Id: id[:], Kind: pb.Kind_NUDGE, Seq: 1, FileUpdate: &pb.FileUpdate{Transfer: ref[:]}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := chat.Validate(tc.m)
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, wire.ErrInvalid)
				require.Equal(t, "invalid", wire.Reason(err))
			}
		})
	}
}

func TestValidateTextErrorsKeepCause(t *testing.T) {
	id := chat.NewID()
	err := chat.Validate(&pb.Message{Id: id[:], Kind: pb.Kind_TEXT, Seq: 1, Text: "\xff"})
	require.ErrorIs(t, err, chat.ErrNotUTF8)
	require.ErrorIs(t, err, wire.ErrInvalid)
}

func TestDurableKnown(t *testing.T) {
	for _, k := range []pb.Kind{pb.Kind_TEXT, pb.Kind_NUDGE, pb.Kind_DELIVERED, pb.Kind_READ, pb.Kind_FILE_OFFER, pb.Kind_FILE_UPDATE} {
		require.True(t, chat.Durable(k), k)
		require.True(t, chat.Known(k), k)
	}
	for _, k := range []pb.Kind{pb.Kind_TYPING_STARTED, pb.Kind_TYPING_STOPPED} {
		require.False(t, chat.Durable(k), k)
		require.True(t, chat.Known(k), k)
	}
	for _, k := range []pb.Kind{pb.Kind_KIND_UNSPECIFIED, 9, 99, -1} {
		require.False(t, chat.Durable(k), k)
		require.False(t, chat.Known(k), k)
	}
}

func TestNewIDIncreasing(t *testing.T) {
	before := time.Now()
	prev := chat.NewID()
	for i := 0; i < 10000; i++ {
		id := chat.NewID()
		if bytes.Compare(prev[:], id[:]) >= 0 {
			t.Fatalf("id %d: %s is not after %s", i, id, prev)
		}
		prev = id
	}
	ts := prev.Time()
	require.WithinDuration(t, time.Now(), ts, time.Second)
	require.False(t, ts.Before(before.Truncate(time.Millisecond).Add(-time.Millisecond)))
	require.Equal(t, byte(7), prev[6]>>4, "not a version-7 UUID")
}

func TestParseID(t *testing.T) {
	id := chat.NewID()
	s := id.String()
	require.Len(t, s, 36)
	got, err := chat.ParseID(s)
	require.NoError(t, err)
	require.Equal(t, id, got)
	got, err = chat.ParseID(strings.ToUpper(s))
	require.NoError(t, err)
	require.Equal(t, id, got)

	for _, bad := range []string{
		"",
		"xyz",
		strings.ReplaceAll(s, "-", ""), // 32 hex digits, no dashes
		"{" + s + "}",
		"urn:uuid:" + s,
		s[:35] + "g",
		s + "0",
	} {
		_, err := chat.ParseID(bad)
		require.Error(t, err, "%q", bad)
	}
}

func TestIDFromBytes(t *testing.T) {
	id := chat.NewID()
	got, err := chat.IDFromBytes(id[:])
	require.NoError(t, err)
	require.Equal(t, id, got)
	for _, n := range []int{0, 15, 17} {
		_, err := chat.IDFromBytes(make([]byte, n))
		require.True(t, errors.Is(err, wire.ErrInvalid), "len %d: %v", n, err)
	}
}

func TestBatchLen(t *testing.T) {
	msg := func(textLen int) *pb.Message {
		return &pb.Message{Id: make([]byte, 16), Kind: pb.Kind_TEXT, Seq: 1, SentAtMs: 1, Text: strings.Repeat("x", textLen)}
	}
	many := func(n, textLen int) []*pb.Message {
		out := make([]*pb.Message, n)
		for i := range out {
			out[i] = msg(textLen)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		msgs []*pb.Message
		want int
	}{
		{"none", nil, 0},
		{"one", many(1, 10), 1},
		{"short texts: MaxBatch", many(chat.MaxBatch+10, 100), chat.MaxBatch},
		{"long texts: what fits in a frame", many(20, chat.MaxTextBytes), 15},
		{"one longest text", many(1, chat.MaxTextBytes), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := chat.BatchLen(tc.msgs)
			require.Equal(t, tc.want, n)
			if n > 0 {
				// What it says fits does fit, and one more would not
				// (unless MaxBatch or the end stopped it).
				require.LessOrEqual(t, proto.Size(&pb.Frame{Messages: tc.msgs[:n]}), chat.MaxFrameSize)
				if n < len(tc.msgs) && n < chat.MaxBatch {
					require.Greater(t, proto.Size(&pb.Frame{Messages: tc.msgs[:n+1]}), chat.MaxFrameSize)
				}
			}
		})
	}
}
