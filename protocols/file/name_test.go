package file_test

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/protocols/file"
)

func TestSafeName(t *testing.T) {
	long := strings.Repeat("a", 4000)
	longUTF8 := strings.Repeat("é", 2000) + ".pdf" // 2 bytes a character
	for _, tc := range []struct {
		offered, want string
	}{
		{"report.pdf", "report.pdf"},
		{"Photo 2026-01-01 12.00.jpg", "Photo 2026-01-01 12.00.jpg"},
		{"ünïcødé ✓.txt", "ünïcødé ✓.txt"},
		{"../../x", "x"},
		{"../../../../etc/cron.d/evil", "evil"},
		{"/etc/passwd", "passwd"},
		{`C:\Windows\System32\drivers\etc\hosts`, "hosts"},
		{`..\..\boot.ini`, "boot.ini"},
		{"dir/", "dir"},
		{"a/..", "a"},
		{"..", "file"},
		{".", "file"},
		{"/", "file"},
		{"", "file"},
		{"   ", "file"},
		{"...", "file"},
		{".bashrc", "bashrc"},
		{"-rf", "rf"},
		{"--help.txt", "help.txt"},
		{"trailing dot.", "trailing dot"},
		{"  spaced  ", "spaced"},
		{"CON", "_CON"},
		{"con", "_con"},
		{"nul.txt", "_nul.txt"},
		{"Aux.tar.gz", "_Aux.tar.gz"},
		{"COM1", "_COM1"},
		{"lpt9.log", "_lpt9.log"},
		{"COM¹", "_COM¹"},
		{"CONSOLE.txt", "CONSOLE.txt"},
		{"COM10", "COM10"},
		{"a<b>c:d\"e|f?g*h", "a_b_c_d_e_f_g_h"},
		{"line\nbreak.txt", "line_break.txt"},
		{"tab\there", "tab_here"},
		{"nul\x00byte", "nul_byte"},
		{"esc\x1b[31mred", "esc_[31mred"},
		{"bidi\u202Etxt.exe", "bidi_txt.exe"},
		{"zero\u200Bwidth", "zero_width"},
		{"bad\xffutf8", "bad_utf8"},
		{"del\x7f", "del_"},
		{long, strings.Repeat("a", file.MaxNameBytes)},
		{long + ".tar.gz", strings.Repeat("a", file.MaxNameBytes-3) + ".gz"},
	} {
		got := file.SafeName(tc.offered)
		require.Equal(t, tc.want, got, "SafeName(%q)", tc.offered)
		checkSafe(t, tc.offered, got)
	}
	got := file.SafeName(longUTF8)
	checkSafe(t, longUTF8, got)
	require.True(t, strings.HasSuffix(got, ".pdf"), "a short extension is kept: %q", got)
}

// checkSafe asserts the properties every SafeName result has.
func checkSafe(t testing.TB, offered, got string) {
	t.Helper()
	switch {
	case got == "", got == ".", got == "..":
		t.Fatalf("SafeName(%q) = %q: not a file name", offered, got)
	case len(got) > file.MaxNameBytes:
		t.Fatalf("SafeName(%q) is %d bytes", offered, len(got))
	case !utf8.ValidString(got):
		t.Fatalf("SafeName(%q) = %q: invalid UTF-8", offered, got)
	case strings.ContainsAny(got, "/\\<>:\"|?*"):
		t.Fatalf("SafeName(%q) = %q: forbidden character", offered, got)
	case strings.ContainsFunc(got, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }):
		t.Fatalf("SafeName(%q) = %q: control character", offered, got)
	case strings.HasPrefix(got, ".") || strings.HasPrefix(got, "-") || strings.HasSuffix(got, ".") ||
		strings.TrimSpace(got) != got:
		t.Fatalf("SafeName(%q) = %q: leading or trailing dot, dash or space", offered, got)
	}
	stem, _, _ := strings.Cut(strings.ToUpper(got), ".")
	for _, r := range []string{"CON", "PRN", "AUX", "NUL", "COM1", "LPT1"} {
		if stem == r {
			t.Fatalf("SafeName(%q) = %q: reserved name", offered, got)
		}
	}
}

func TestClashName(t *testing.T) {
	require.Equal(t, "report (1).pdf", file.ClashName("report.pdf", 1))
	require.Equal(t, "archive.tar (12).gz", file.ClashName("archive.tar.gz", 12))
	require.Equal(t, "README (2)", file.ClashName("README", 2))
	long := file.SafeName(strings.Repeat("x", 500) + ".txt")
	c := file.ClashName(long, 9999)
	require.LessOrEqual(t, len(c), 255)
	require.True(t, strings.HasSuffix(c, " (9999).txt"))
}

func TestCheckSendName(t *testing.T) {
	require.NoError(t, file.CheckSendName("holiday.jpg"))
	for _, bad := range []string{"", "a/b", `a\b`, "..", ".", "x\n", strings.Repeat("a", 256), "bad\xff"} {
		require.Error(t, file.CheckSendName(bad), "%q", bad)
	}
}

func FuzzSafeName(f *testing.F) {
	for _, s := range []string{"a.txt", "../../x", "/etc/passwd", "CON", "nul.txt", strings.Repeat("é", 300), "\u202Egpj.exe", "a\x00b", " . ", "-x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, offered string) {
		got := file.SafeName(offered)
		checkSafe(t, offered, got)
		if again := file.SafeName(got); again != got {
			t.Fatalf("SafeName is not stable: %q -> %q -> %q", offered, got, again)
		}
	})
}

func TestMediaTypeOf(t *testing.T) {
	for _, c := range []struct {
		name, data, want string
	}{
		{"photo.png", "not really a png", "image/png"},
		{"notes", "plain words\n", "text/plain; charset=utf-8"},
		{"blob", "\x00\x01\x02\x03", "application/octet-stream"},
		{"empty", "", "text/plain; charset=utf-8"},
	} {
		got, err := file.MediaTypeOf(strings.NewReader(c.data), c.name)
		require.NoError(t, err, c.name)
		require.Equal(t, c.want, got, c.name)
	}
}
