package names_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/protocols/names"
)

func TestNormalize(t *testing.T) {
	good := map[string]string{
		"bob":                              "bob",
		"Bob":                              "bob",
		"BOB-Smith":                        "bob-smith",
		"bob.smith_2":                      "bob.smith_2",
		"a1b":                              "a1b",
		"x-y":                              "x-y",
		"123":                              "123",
		strings.Repeat("a", names.MaxLen):  strings.Repeat("a", names.MaxLen),
		"alice.in.wonderland-1865_edition": "alice.in.wonderland-1865_edition",
	}
	for in, want := range good {
		got, err := names.Normalize(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
		again, err := names.Normalize(got)
		require.NoError(t, err)
		require.Equal(t, got, again, "canonical form must be stable")
	}
	bad := map[string]string{
		"":                                   "3 to 32",
		"ab":                                 "3 to 32",
		strings.Repeat("a", names.MaxLen+1):  "3 to 32",
		"-bob":                               "start and end",
		"bob_":                               "start and end",
		".bob":                               "start and end",
		"bo--b":                              "two separators",
		"bo-.b":                              "two separators",
		"bob smith":                          "may only use",
		" bob":                               "may only use",
		"bob\n":                              "may only use",
		"b\x00b":                             "may only use",
		"b@b.example":                        "may only use",
		"bób":                                "may only use", // accented Latin
		"bоb":                                "may only use", // Cyrillic о
		"αlice":                              "may only use", // Greek alpha
		"ｂｏｂ":                                "may only use", // fullwidth
		"bo\u200bb":                          "may only use", // zero-width space
		"bob\u0301":                          "may only use", // combining accent
		"stra\u00dfe":                        "may only use", // ß
		"\xff\xfe\xfd":                       "may only use", // not UTF-8
		"12D3KooWAbCdEfGhIjKlMnOpQrStUvWxYz": "3 to 32",
		"1x11":                               "peer ID", // decodes as an identity-hash peer ID
		"1X11":                               "peer ID",
	}
	for in, want := range bad {
		_, err := names.Normalize(in)
		require.ErrorIs(t, err, names.ErrInvalidName, "%q", in)
		require.ErrorContains(t, err, want, "%q", in)
	}
}

func TestSkeletonCatchesLookAlikes(t *testing.T) {
	same := [][]string{
		{"bob", "b0b"},
		{"bob-smith", "bobsmith", "bob.smith", "bob_smith", "b0b-smith"},
		{"alice", "a-lice"},
		{"paul", "pau1"},
		{"modern", "rnodern", "modem"},
		{"wanda", "vvanda"},
	}
	for _, group := range same {
		for _, n := range group[1:] {
			require.Equal(t, names.Skeleton(group[0]), names.Skeleton(n), "%s vs %s", group[0], n)
		}
	}
	different := [][2]string{{"bob", "rob"}, {"alice", "alicia"}, {"ann", "anna"}, {"m1", "mi1"}}
	for _, d := range different {
		require.NotEqual(t, names.Skeleton(d[0]), names.Skeleton(d[1]), "%s vs %s", d[0], d[1])
	}
}
