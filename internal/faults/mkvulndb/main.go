// Command mkvulndb builds a Go vulnerability database that govulncheck can
// read offline (-db file://DIR) from the OSV files of the golang.org/x/vulndb
// module (its data/osv folder), for machines that cannot reach vuln.go.dev:
//
//	src=$(go mod download -json golang.org/x/vulndb@v0.0.0-20261105234957-e22db6528018 | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
//	go run ./internal/faults/mkvulndb -src "$src/data/osv" -out /tmp/vulndb
//	go run golang.org/x/vuln/cmd/govulncheck@v1.9.0 -db file:///tmp/vulndb ./...
//
// It writes the v1 layout of https://go.dev/security/vuln/database: index/db.json,
// index/modules.json, index/vulns.json and ID/<id>.json (the OSV entries,
// verbatim). The modules index leaves the optional "fixed" field out, so
// govulncheck reads every entry of a module it finds and decides from the
// entry's own ranges. The database is only as new as the vulndb version.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

type entry struct {
	ID       string   `json:"id"`
	Modified string   `json:"modified"`
	Aliases  []string `json:"aliases"`
	Affected []struct {
		Package struct {
			Name string `json:"name"`
		} `json:"package"`
	} `json:"affected"`
}

type moduleVuln struct {
	ID       string `json:"id"`
	Modified string `json:"modified"`
}

type module struct {
	Path  string       `json:"path"`
	Vulns []moduleVuln `json:"vulns"`
}

type vuln struct {
	ID       string   `json:"id"`
	Modified string   `json:"modified"`
	Aliases  []string `json:"aliases,omitempty"`
}

func main() {
	src := flag.String("src", "", "folder of OSV JSON files (golang.org/x/vulndb's data/osv)")
	out := flag.String("out", "", "folder to write the database to")
	flag.Parse()
	if *src == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: mkvulndb -src DIR -out DIR")
		os.Exit(2)
	}
	n, err := build(*src, *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkvulndb:", err)
		os.Exit(1)
	}
	fmt.Printf("mkvulndb: %d entries written to %s\n", n, *out)
}

func build(src, out string) (int, error) {
	files, err := filepath.Glob(filepath.Join(src, "GO-*.json"))
	if err != nil {
		return 0, err
	}
	if len(files) == 0 {
		return 0, errors.New("no GO-*.json files in " + src)
	}
	for _, d := range []string{"index", "ID"} {
		if err := os.MkdirAll(filepath.Join(out, d), 0o755); err != nil {
			return 0, err
		}
	}
	mods := map[string]*module{}
	var vulns []vuln
	var latest time.Time
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return 0, err
		}
		var e entry
		if err := json.Unmarshal(b, &e); err != nil {
			return 0, fmt.Errorf("%s: %w", f, err)
		}
		if e.ID == "" {
			return 0, fmt.Errorf("%s: no id", f)
		}
		if t, err := time.Parse(time.RFC3339, e.Modified); err == nil && t.After(latest) {
			latest = t
		}
		if err := os.WriteFile(filepath.Join(out, "ID", e.ID+".json"), b, 0o644); err != nil {
			return 0, err
		}
		seen := map[string]bool{}
		for _, a := range e.Affected {
			p := a.Package.Name
			if p == "" || seen[p] {
				continue
			}
			seen[p] = true
			if mods[p] == nil {
				mods[p] = &module{Path: p}
			}
			mods[p].Vulns = append(mods[p].Vulns, moduleVuln{ID: e.ID, Modified: e.Modified})
		}
		vulns = append(vulns, vuln{ID: e.ID, Modified: e.Modified, Aliases: e.Aliases})
	}
	paths := make([]string, 0, len(mods))
	for p := range mods {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	ml := make([]*module, 0, len(paths))
	for _, p := range paths {
		ml = append(ml, mods[p])
	}
	write := func(name string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(out, "index", name), b, 0o644)
	}
	if err := write("modules.json", ml); err != nil {
		return 0, err
	}
	if err := write("vulns.json", vulns); err != nil {
		return 0, err
	}
	// the entries of a module snapshot carry no dates (they come from git);
	// say "now" rather than year 1 so govulncheck does not call it stale
	if latest.IsZero() {
		latest = time.Now()
	}
	return len(files), write("db.json", map[string]string{"modified": latest.UTC().Format(time.RFC3339)})
}
