package tui

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestClientOfTheAPIOnly: the terminal UI is a client of the control API,
// like the CLI and scripts; of natter's own packages it may import only
// node/control (never the node, its store or protocols).
func TestClientOfTheAPIOnly(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files: %v", err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range af.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			if strings.HasPrefix(p, "github.com/natterim/natter/") && p != "github.com/natterim/natter/node/control" {
				t.Errorf("%s imports %s: the UI talks to the daemon through node/control only", f, p)
			}
		}
	}
}
