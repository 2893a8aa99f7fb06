package repocheck_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/natterim/natter"

// pkg is one directory of Go files.
type pkg struct {
	dir     string // relative to the repository root, slash-separated
	doc     bool   // some file has a package comment
	imports map[string]bool
}

// packages parses every Go file under the repository root (skipping
// testdata and hidden directories), package clause, comments and imports
// only.
func packages(t *testing.T) []*pkg {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found at %s: %v", root, err)
	}
	byDir := map[string]*pkg{}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (name == "testdata" || strings.HasPrefix(name, ".") || name == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		rel = filepath.ToSlash(rel)
		p := byDir[rel]
		if p == nil {
			p = &pkg{dir: rel, imports: map[string]bool{}}
			byDir[rel] = p
		}
		if f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != "" {
			p.doc = true
		}
		if !strings.HasSuffix(path, "_test.go") {
			for _, im := range f.Imports {
				ip, _ := strconv.Unquote(im.Path.Value)
				p.imports[ip] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []*pkg
	for _, p := range byDir {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *pkg) int { return strings.Compare(a.dir, b.dir) })
	if len(out) < 10 {
		t.Fatalf("found only %d packages under %s", len(out), root)
	}
	return out
}

// TestEveryPackageHasAComment: a stranger opening any directory learns
// why it exists. Generated protobuf packages get a doc.go of their own.
func TestEveryPackageHasAComment(t *testing.T) {
	for _, p := range packages(t) {
		if !p.doc {
			t.Errorf("%s: no package comment (add a doc.go saying why the package exists)", p.dir)
		}
	}
}

// TestImportDirection checks the dependency rules of CONTRIBUTING.md and
// docs/architecture.md.
func TestImportDirection(t *testing.T) {
	under := func(dir, prefix string) bool { return dir == prefix || strings.HasPrefix(dir, prefix+"/") }
	for _, p := range packages(t) {
		for ip := range p.imports {
			local := strings.TrimPrefix(ip, module+"/")
			isLocal := local != ip
			switch {
			case under(p.dir, "protocols") && isLocal && (under(local, "node") || under(local, "rendezvous") || under(local, "cmd")):
				t.Errorf("%s imports %s: protocols/ must not depend on node/, rendezvous/ or cmd/", p.dir, ip)
			case (under(p.dir, "node") || under(p.dir, "rendezvous")) && isLocal && under(local, "cmd"):
				t.Errorf("%s imports %s: libraries must not depend on cmd/", p.dir, ip)
			case under(p.dir, "node") && isLocal && under(local, "rendezvous"):
				t.Errorf("%s imports %s: the node talks to the server over the wire (protocols/), not through its code", p.dir, ip)
			case under(p.dir, "rendezvous") && isLocal && under(local, "node"):
				t.Errorf("%s imports %s: the server must not depend on the node", p.dir, ip)
			case !under(p.dir, "cmd") && (strings.HasPrefix(ip, "github.com/spf13/viper") || strings.HasPrefix(ip, "github.com/spf13/cobra")):
				t.Errorf("%s imports %s: only cmd/ reads flags and config files", p.dir, ip)
			}
		}
	}
}

// featurePackages are the daemon's feature packages (docs/architecture.md).
// Each is a room of its own: it may import the shared vocabulary
// (node/core), the store, the control API types and protocols/, but never
// another feature package; what it needs from one it declares as an
// interface that node wires. node/api is the HTTP edge: it too reaches the
// features only through interfaces it declares.
var featurePackages = []string{
	"node/api",
	"node/chat",
	"node/files",
	"node/links",
	"node/offline",
	"node/social",
}

func TestFeaturePackagesStandAlone(t *testing.T) {
	feature := func(dir string) string {
		for _, f := range featurePackages {
			if dir == f || strings.HasPrefix(dir, f+"/") {
				return f
			}
		}
		return ""
	}
	for _, p := range packages(t) {
		from := feature(p.dir)
		if from == "" {
			continue
		}
		for ip := range p.imports {
			local := strings.TrimPrefix(ip, module+"/")
			if local == ip {
				continue
			}
			if to := feature(local); to != "" && to != from {
				t.Errorf("%s imports %s: a feature package must not import another; declare the interface you need and let node wire it", p.dir, ip)
			}
			if local == "node" {
				t.Errorf("%s imports %s: feature packages are wired by node, never the other way round", p.dir, ip)
			}
		}
	}
}

// TestStandsAlone: code and docs point only to what is in the repository.
func TestStandsAlone(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	outside := []string{"DESIGN" + ".md", "STYLE" + ".md", "../" + "shared/"}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (name == "testdata" || strings.HasPrefix(name, ".") || name == "bin" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		ext := filepath.Ext(path)
		if ext != ".go" && ext != ".md" && ext != ".sh" && ext != ".yaml" && path != filepath.Join(root, "Makefile") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, o := range outside {
			if strings.Contains(string(b), o) {
				rel, _ := filepath.Rel(root, path)
				t.Errorf("%s mentions %s, which is not in the repository: say it here (docs/) instead", rel, o)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
