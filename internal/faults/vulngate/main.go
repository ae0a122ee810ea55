// Command vulngate reads govulncheck's JSON output (-format json) on stdin
// and decides: it lists every vulnerability whose vulnerable code is called
// (symbol level) with the module, the version found and the fixed version,
// and exits 1 if any is in a required module. Vulnerabilities of the Go
// standard library fail too unless -stdlib warn is given: they are fixed
// only by a newer Go release, which a machine may not be able to install;
// with warn they are printed loudly and named in the last line, never hidden.
//
//	go run golang.org/x/vuln/cmd/govulncheck@v1.9.0 -db file:///tmp/vulndb -format json ./... |
//	    go run ./internal/faults/vulngate -stdlib warn
//
// Imported-but-not-called and required-but-not-imported vulnerabilities are
// counted, not listed (govulncheck's own default text output does the same).
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

type frame struct {
	Module   string `json:"module"`
	Version  string `json:"version"`
	Package  string `json:"package"`
	Function string `json:"function"`
	Receiver string `json:"receiver"`
}

type finding struct {
	OSV          string  `json:"osv"`
	FixedVersion string  `json:"fixed_version"`
	Trace        []frame `json:"trace"`
}

type message struct {
	Finding *finding `json:"finding"`
	OSV     *struct {
		ID      string `json:"id"`
		Summary string `json:"summary"`
	} `json:"osv"`
}

type vuln struct {
	id, module, found, fixed, summary, symbol string
}

func main() {
	stdlib := flag.String("stdlib", "fail", "what a called standard-library vulnerability does: fail or warn")
	flag.Parse()
	if *stdlib != "fail" && *stdlib != "warn" {
		fmt.Fprintln(os.Stderr, "vulngate: -stdlib must be fail or warn")
		os.Exit(2)
	}
	code, err := gate(os.Stdin, os.Stdout, *stdlib == "warn")
	if err != nil {
		fmt.Fprintln(os.Stderr, "vulngate:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

func gate(in io.Reader, out io.Writer, warnStdlib bool) (int, error) {
	dec := json.NewDecoder(bufio.NewReader(in))
	summaries := map[string]string{}
	called := map[string]*vuln{}
	level := map[string]string{} // id -> best level seen: symbol > package > module
	rank := map[string]int{"module": 1, "package": 2, "symbol": 3}
	n := 0
	for {
		var m message
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return 0, fmt.Errorf("reading govulncheck JSON: %w", err)
		}
		n++
		if m.OSV != nil {
			summaries[m.OSV.ID] = m.OSV.Summary
		}
		f := m.Finding
		if f == nil || len(f.Trace) == 0 {
			continue
		}
		top := f.Trace[0]
		l := "module"
		switch {
		case top.Function != "":
			l = "symbol"
		case top.Package != "":
			l = "package"
		}
		if rank[l] > rank[level[f.OSV]] {
			level[f.OSV] = l
		}
		if l == "symbol" && called[f.OSV] == nil {
			sym := top.Package + "." + top.Function
			if top.Receiver != "" {
				sym = top.Package + "." + strings.TrimPrefix(top.Receiver, "*") + "." + top.Function
			}
			called[f.OSV] = &vuln{id: f.OSV, module: top.Module, found: top.Version, fixed: f.FixedVersion, symbol: sym}
		}
	}
	if n == 0 {
		return 0, errors.New("no input: pipe govulncheck -format json into vulngate")
	}
	ids := make([]string, 0, len(called))
	for id := range called {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var mods, std []string
	for _, id := range ids {
		v := called[id]
		fixed := v.fixed
		if fixed == "" {
			fixed = "no fixed version"
		}
		line := fmt.Sprintf("%s  %s@%s (fixed in %s)  called: %s  — %s", v.id, v.module, v.found, fixed, v.symbol, summaries[v.id])
		fmt.Fprintln(out, line)
		if v.module == "stdlib" || v.module == "toolchain" {
			std = append(std, v.id)
		} else {
			mods = append(mods, v.id)
		}
	}
	counts := map[string]int{}
	for _, l := range level {
		counts[l]++
	}
	fmt.Fprintf(out, "vulngate: called %d (in modules %d, in the standard library %d); imported but not called %d; required but not imported %d\n",
		counts["symbol"], len(mods), len(std), counts["package"], counts["module"])
	switch {
	case len(mods) > 0:
		fmt.Fprintf(out, "vulngate: FAIL: called vulnerabilities in required modules: %s (upgrade them)\n", strings.Join(mods, ", "))
		return 1, nil
	case len(std) > 0 && !warnStdlib:
		fmt.Fprintf(out, "vulngate: FAIL: called standard-library vulnerabilities: %s (build with a Go release that fixes them)\n", strings.Join(std, ", "))
		return 1, nil
	case len(std) > 0:
		fmt.Fprintf(out, "vulngate: WARNING (not a pass): %d called standard-library vulnerabilities need a newer Go release than this toolchain: %s\n", len(std), strings.Join(std, ", "))
	}
	return 0, nil
}
