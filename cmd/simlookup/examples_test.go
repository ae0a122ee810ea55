package main

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// shellWords splits one shell command line into words and operators
// (|, ||, &, &&, ;, >, >>, <); quotes and backslashes are honoured, a word
// starting with # ends the line. It is enough for the examples we print.
func shellWords(line string) (words []string, isOp []bool) {
	var cur strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			words = append(words, cur.String())
			isOp = append(isOp, false)
			cur.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			flush()
		case c == '#' && !inWord:
			flush()
			return words, isOp
		case c == '\'':
			inWord = true
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				j = len(line) - i - 1
			}
			cur.WriteString(line[i+1 : i+1+j])
			i += j + 1
		case c == '"':
			inWord = true
			for i++; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) {
					i++
				}
				cur.WriteByte(line[i])
			}
		case c == '\\' && i+1 < len(line):
			inWord = true
			i++
			cur.WriteByte(line[i])
		case strings.IndexByte("|&;<>", c) >= 0:
			flush()
			op := string(c)
			if i+1 < len(line) && (line[i+1] == c) {
				op += string(c)
				i++
			}
			words = append(words, op)
			isOp = append(isOp, true)
		default:
			inWord = true
			cur.WriteByte(c)
		}
	}
	flush()
	return words, isOp
}

// example is one simlookup invocation found in a help text or the README.
type example struct {
	where string
	line  string
	env   map[string]string
	args  []string
}

// simlookupCalls returns the simlookup invocations of one shell line
// (joined continuation lines), with the variables assigned in front of
// each and those exported before (env).
func simlookupCalls(where, line string, env map[string]string) []example {
	words, isOp := shellWords(line)
	var out []example
	for start := 0; start < len(words); {
		end := start
		for end < len(words) && !isOp[end] {
			end++
		}
		seg := words[start:end]
		start = end + 1
		vars := map[string]string{}
		for k, v := range env {
			vars[k] = v
		}
		for len(seg) > 0 && strings.Contains(seg[0], "=") && !strings.HasPrefix(seg[0], "-") {
			k, v, _ := strings.Cut(seg[0], "=")
			vars[k] = v
			seg = seg[1:]
		}
		switch {
		case len(seg) > 0 && (seg[0] == "simlookup" || seg[0] == "./simlookup"):
			seg = seg[1:]
		case len(seg) > 2 && seg[0] == "go" && seg[1] == "run" && seg[2] == "./cmd/simlookup":
			seg = seg[3:]
		default:
			continue
		}
		out = append(out, example{where: where, line: line, env: vars, args: seg})
	}
	return out
}

// helpExamples returns the examples of a help text: the indented lines
// after "Examples:", continuation lines joined.
func helpExamples(t *testing.T, where, help string) []example {
	t.Helper()
	var out []example
	in := false
	var pending string
	for l := range strings.SplitSeq(help, "\n") {
		if strings.TrimSpace(l) == "Examples:" {
			in = true
			continue
		}
		if !in {
			continue
		}
		if l != "" && !strings.HasPrefix(l, "  ") {
			break
		}
		l = strings.TrimSpace(l)
		if strings.HasSuffix(l, `\`) {
			pending += strings.TrimSuffix(l, `\`) + " "
			continue
		}
		l, pending = pending+l, ""
		if l == "" {
			continue
		}
		out = append(out, simlookupCalls(where, l, nil)...)
	}
	return out
}

// fileFlags name files that must exist for the configuration to be
// accepted; the test creates them (the examples' stated environment).
var fileFlags = []string{"secret-file", "nats-creds", "nats-nkey", "tls-ca", "tls-cert", "tls-key", "file", "csv"}

// prepareFiles creates the files an example names, in dir; an absolute
// path is moved under dir.
func prepareFiles(t *testing.T, dir string, args []string) []string {
	t.Helper()
	args = slices.Clone(args)
	for i := 0; i < len(args); i++ {
		name, val, hasVal := strings.Cut(strings.TrimPrefix(args[i], "--"), "=")
		if !strings.HasPrefix(args[i], "--") || !slices.Contains(fileFlags, name) {
			continue
		}
		idx := i
		if !hasVal {
			if i+1 >= len(args) {
				continue
			}
			idx, val = i+1, args[i+1]
		}
		if val == "-" {
			continue
		}
		path := filepath.Join(dir, val) // an absolute path moves under dir too
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		content := "s3cret\n"
		if name == "csv" {
			content = "ICCID,vehicle\n89852240400014306175,truck-17\n"
		}
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if hasVal {
			args[idx] = "--" + name + "=" + path
		} else {
			args[idx] = path
		}
	}
	return args
}

func checkExamples(t *testing.T, exs []example) {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	for _, ex := range exs {
		args := prepareFiles(t, dir, ex.args)
		var stdout, stderr syncBuffer
		env := ex.env
		code := checkOnly(t.Context(), args, func(k string) string { return env[k] }, &stdout, &stderr)
		if code != exitOK {
			t.Errorf("%s: example does not work as written (exit %d):\n  %s\n%s", ex.where, code, ex.line, stderr.String())
		}
	}
}

// TestHelpExamplesAreAccepted parses every example of every --help with the
// real parser and checks its configuration, as the command would before
// starting, in the environment the example states.
func TestHelpExamplesAreAccepted(t *testing.T) {
	var model cli
	k, _, err := newParser(&model, func(string) string { return "" }, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var exs []example
	cmds := []string{""}
	for _, n := range k.Model.Children {
		cmds = append(cmds, n.Name)
	}
	for _, c := range cmds {
		args := []string{"--help"}
		if c != "" {
			args = []string{c, "--help"}
		}
		r := runCLI(t, args...)
		wantCode(t, r, exitOK)
		found := helpExamples(t, "simlookup "+c+" --help", r.stdout)
		if len(found) == 0 && c != "" {
			t.Errorf("simlookup %s --help shows no example", c)
		}
		exs = append(exs, found...)
	}
	if len(exs) < 30 {
		t.Fatalf("found only %d examples", len(exs))
	}
	checkExamples(t, exs)
}

// TestREADMECommandsAreAccepted does the same for every simlookup command in
// README.md's code blocks (with the variables exported before it).
func TestREADMECommandsAreAccepted(t *testing.T) {
	f, err := os.Open("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var exs []example
	env := map[string]string{}
	inBlock, inFence := false, false
	sc := bufio.NewScanner(f)
	n, pending := 0, ""
	for sc.Scan() {
		n++
		l := sc.Text()
		if strings.HasPrefix(l, "```") { // only sh blocks hold commands (others: output, JSON)
			inFence = !inFence
			inBlock = inFence && l == "```sh"
			env = map[string]string{}
			continue
		}
		if strings.HasPrefix(l, "<!-- BEGIN CONFIG REFERENCE") {
			break
		}
		if inFence && !inBlock || !inFence && !strings.HasPrefix(l, "    ") {
			continue
		}
		l = strings.TrimSpace(l)
		if strings.HasSuffix(l, `\`) {
			pending += strings.TrimSuffix(l, `\`) + " "
			continue
		}
		l, pending = pending+l, ""
		if rest, ok := strings.CutPrefix(l, "export "); ok {
			words, _ := shellWords(rest)
			for _, w := range words {
				if k, v, ok := strings.Cut(w, "="); ok {
					env[k] = v
				}
			}
			continue
		}
		exs = append(exs, simlookupCalls("README.md:"+strconv.Itoa(n), l, env)...)
	}
	if len(exs) < 5 {
		t.Fatalf("found only %d simlookup commands in README.md", len(exs))
	}
	checkExamples(t, exs)
}

func TestShellWords(t *testing.T) {
	t.Parallel()
	w, op := shellWords(`simlookup streams --dry-run | jq -c 'select(.kind=="stream") | .config' # c`)
	want := []string{"simlookup", "streams", "--dry-run", "|", "jq", "-c", `select(.kind=="stream") | .config`}
	if !slices.Equal(w, want) || !op[3] || op[6] {
		t.Fatalf("shellWords = %q %v", w, op)
	}
	exs := simlookupCalls("x", `SIMLOOKUP_SECRET=abc simlookup sign a=1 && cut -f1 x | simlookup publish`, nil)
	if len(exs) != 2 || exs[0].env["SIMLOOKUP_SECRET"] != "abc" || !slices.Equal(exs[1].args, []string{"publish"}) {
		t.Fatalf("simlookupCalls = %+v", exs)
	}
}
