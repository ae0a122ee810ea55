package validate

import (
	"bytes"
	"context"
	"fmt"
	"go/ast"
	goparser "go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// TestDockerfile parses the Dockerfile with BuildKit's own parser (and its
// build checks, as `docker build --check` runs them) and checks what the
// image promises: a multi-stage build of a static, stamped binary, a minimal
// non-root final image, one entrypoint for every subcommand.
func TestDockerfile(t *testing.T) {
	src := readFile(t, "Dockerfile")
	res, err := parser.Parse(bytes.NewReader(src))
	if err != nil {
		t.Fatalf("Dockerfile does not parse: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile parser warning: %s", w.Short)
	}
	var lint []string
	l := linter.New(&linter.Config{Warn: func(rule, desc, url, msg string, loc []parser.Range) {
		lint = append(lint, fmt.Sprintf("%s: %s (%s)", rule, msg, url))
	}})
	stages, _, err := instructions.Parse(res.AST, l)
	if err != nil {
		t.Fatalf("Dockerfile instructions: %v", err)
	}
	for _, w := range lint {
		t.Errorf("build check: %s", w)
	}
	if len(stages) < 2 {
		t.Fatalf("%d stages; want a multi-stage build", len(stages))
	}

	build, final := stages[0], stages[len(stages)-1]
	if !strings.HasPrefix(build.BaseName, "golang:1.26") {
		t.Errorf("build stage FROM %s, want golang:1.26 (the module's Go)", build.BaseName)
	}
	if !strings.HasPrefix(final.BaseName, "gcr.io/distroless/static") && final.BaseName != "scratch" {
		t.Errorf("final stage FROM %s, want distroless static or scratch", final.BaseName)
	}

	var cgoOff, goBuild bool
	for _, c := range build.Commands {
		switch c := c.(type) {
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				if kv.Key == "CGO_ENABLED" && kv.Value == "0" {
					cgoOff = true
				}
			}
		case *instructions.ArgCommand:
			for _, a := range c.Args {
				if strings.HasPrefix(a.Key, "TARGET") || strings.HasPrefix(a.Key, "BUILD") {
					if a.Value != nil {
						t.Errorf("ARG %s=%s: a default overrides the platform BuildKit sets (cross builds would be wrong)", a.Key, *a.Value)
					}
				}
			}
		case *instructions.RunCommand:
			line := strings.Join(c.CmdLine, " ")
			if strings.Contains(line, "CGO_ENABLED=0") {
				cgoOff = true
			}
			if strings.Contains(line, "go build") {
				goBuild = true
				for _, want := range []string{"-trimpath", "-s -w", "-X github.com/simlookup/simlookup/internal/buildinfo.Version=", "./cmd/simlookup"} {
					if !strings.Contains(line, want) {
						t.Errorf("go build line lacks %q: %s", want, line)
					}
				}
			}
		}
	}
	checkLinkerVars(t, build)
	if !cgoOff || !goBuild {
		t.Errorf("build stage: CGO_ENABLED=0 %v, go build %v", cgoOff, goBuild)
	}

	var user string
	var entrypoint []string
	var copiedBinary bool
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.EntrypointCommand:
			if c.PrependShell {
				t.Errorf("ENTRYPOINT in shell form; the image has no shell")
			}
			entrypoint = c.CmdLine
		case *instructions.CopyCommand:
			if c.From == build.Name && c.DestPath == "/simlookup" {
				copiedBinary = true
			}
		case *instructions.RunCommand:
			t.Errorf("RUN in the final stage (%s): the distroless image has no shell", strings.Join(c.CmdLine, " "))
		}
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "root" || u == "0" {
		t.Errorf("final stage USER %q; want a non-root user", user)
	}
	if !slices.Equal(entrypoint, []string{"/simlookup"}) {
		t.Errorf("ENTRYPOINT %q, want [\"/simlookup\"]", entrypoint)
	}
	if !copiedBinary {
		t.Errorf("final stage does not COPY --from=%s the binary to /simlookup", build.Name)
	}
}

// TestDockerignore: the build context that .dockerignore leaves still holds
// every file `go build ./cmd/simlookup` needs (checked with go list on a copy
// of exactly that context), and leaves out the heavy and private parts.
func TestDockerignore(t *testing.T) {
	root := repoRoot(t)
	patterns, err := ignorefile.ReadAll(bytes.NewReader(readFile(t, ".dockerignore")))
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	ctxDir := t.TempDir()
	var included []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if rel == ".git" {
			return filepath.SkipDir
		}
		skip, err := pm.MatchesOrParentMatches(rel)
		if err != nil {
			return err
		}
		if skip {
			if d.IsDir() && !pm.Exclusions() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		included = append(included, rel)
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dst := filepath.Join(ctxDir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"go.mod", "go.sum", "cmd/simlookup/main.go"} {
		if !slices.Contains(included, want) {
			t.Errorf("the build context lacks %s", want)
		}
	}
	for _, f := range included {
		if strings.HasPrefix(f, "deploy/") || strings.HasPrefix(f, ".ci/") || strings.HasSuffix(f, "_test.go") || strings.HasPrefix(f, "data/") {
			t.Errorf("the build context includes %s", f)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "list", "-mod=readonly", "-deps", "-f", "{{if .Error}}{{.ImportPath}}: {{.Error}}{{end}}", "./cmd/simlookup")
	cmd.Dir = ctxDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("in the build context .dockerignore leaves, go list ./cmd/simlookup fails: %v\n%s", err, out)
	}
}

// checkLinkerVars: every -X pkg.Var=... of the go build line names a
// package-level string variable that exists (the linker ignores unknown ones).
func checkLinkerVars(t *testing.T, build instructions.Stage) {
	t.Helper()
	re := regexp.MustCompile(`-X (github\.com/simlookup/simlookup/[^ ."]+)\.([A-Za-z_][A-Za-z0-9_]*)=`)
	var found int
	for _, c := range build.Commands {
		rc, ok := c.(*instructions.RunCommand)
		if !ok {
			continue
		}
		for _, m := range re.FindAllStringSubmatch(strings.Join(rc.CmdLine, " "), -1) {
			found++
			dir := filepath.Join(repoRoot(t), strings.TrimPrefix(m[1], "github.com/simlookup/simlookup/"))
			if !packageHasStringVar(t, dir, m[2]) {
				t.Errorf("-X %s.%s: package %s declares no string variable %s", m[1], m[2], m[1], m[2])
			}
		}
	}
	if found == 0 {
		t.Error("the go build line sets no -X variable")
	}
}

func packageHasStringVar(t *testing.T, dir, name string) bool {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := goparser.ParseFile(token.NewFileSet(), f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, sp := range gd.Specs {
				vs := sp.(*ast.ValueSpec)
				for _, n := range vs.Names {
					if n.Name == name {
						id, ok := vs.Type.(*ast.Ident)
						return (ok && id.Name == "string") || (vs.Type == nil && len(vs.Values) > 0)
					}
				}
			}
		}
	}
	return false
}
