package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/alecthomas/kong"
)

// Exit codes.
const (
	exitOK      = 0 // success
	exitRuntime = 1 // the command started and failed
	exitUsage   = 2 // bad or missing configuration; nothing was started
)

// envPrefix prefixes every flag's environment variable: --nats-url is
// SIMLOOKUP_NATS_URL.
const envPrefix = "SIMLOOKUP"

// Environment-only settings (never flags, so they cannot show in ps).
const (
	envSecret       = "SIMLOOKUP_SECRET"
	envNATSPassword = "SIMLOOKUP_NATS_PASSWORD"
	envNATSToken    = "SIMLOOKUP_NATS_TOKEN"
)

// cli is the command line model. Each command is a struct with a run method.
type cli struct {
	globals

	Demo    demoCmd    `cmd:"" help:"Run the whole system on one machine: embedded NATS, the fake vendor API, workers and sink."`
	Worker  workerCmd  `cmd:"" help:"Consume lookup requests, call the vendor API under the rate limit, publish results."`
	Sink    sinkCmd    `cmd:"" help:"Consume results and write Parquet files."`
	Run     runCmd     `cmd:"" name:"run" help:"Worker and sink in one process."`
	Publish publishCmd `cmd:"" help:"Publish ICCIDs from arguments, a file, a CSV column or stdin."`
	Results resultsCmd `cmd:"" help:"Print result events (JSON lines or a table); follow, filter, wait for a job."`
	FakeAPI fakeAPICmd `cmd:"" name:"fake-api" help:"Serve the vendor API simulator (signature checks, faults, quota)."`
	Streams streamsCmd `cmd:"" help:"Create or update the streams, the worker consumer and the jobs bucket (idempotent)."`
	Sign    signCmd    `cmd:"" help:"Print the vendor signature of key=value pairs."`
	Bench   benchCmd   `cmd:"" help:"Measure throughput, quota accuracy and memory against embedded NATS and the fake vendor API."`
	Health  healthCmd  `cmd:"" help:"Ask a running worker's or sink's /readyz; exit 0 if ready (for container healthchecks)."`
	Version versionCmd `cmd:"" help:"Print version, commit and Go version."`
}

// globals are flags every command accepts.
type globals struct {
	LogLevel  string `enum:"debug,info,warn,error" default:"info" placeholder:"LEVEL" help:"Log level: debug, info, warn or error."`
	LogFormat string `enum:"auto,text,json" default:"auto" placeholder:"FORMAT" help:"Log format: auto (colour text on a terminal, JSON otherwise), text or json."`
}

const rootHelp = `simlookup keeps a fleet operator's knowledge of its EIOTCLUB SIM cards fresh.

Operators publish ICCIDs to NATS JetStream; workers look each one up on the
vendor's signed getCardsInfo API inside one fleet-wide rate limit; every lookup
ends as exactly one result event and one row in Parquet files.

Every flag can also be set from the environment: --nats-url is
SIMLOOKUP_NATS_URL, --rate is SIMLOOKUP_RATE, and so on. Flags win. Secrets
come only from the environment (SIMLOOKUP_SECRET, SIMLOOKUP_NATS_PASSWORD,
SIMLOOKUP_NATS_TOKEN) or from files (--secret-file, --nats-creds, --nats-nkey).

Examples:

    simlookup demo                                  # everything on one machine
    simlookup streams --nats-url nats://127.0.0.1:4222
    SIMLOOKUP_SECRET=... simlookup worker --appkey 000001 --http-addr :9090
    simlookup sink --out ./parquet
    simlookup publish 89852240400014306175
    simlookup results --follow --format table

Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration.`

// app is what a command's run method gets: the process handles, injected so
// that tests run commands without a process.
type app struct {
	ctx    context.Context
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	g      *globals
	log    *slog.Logger
	// command is the selected command's path, e.g. "worker".
	command string
}

// command is implemented by every subcommand.
type command interface {
	run(a *app) error
}

// usageError is bad or missing configuration, found before anything
// started; it exits 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// flagRef names a flag and its environment variable: "--appkey (SIMLOOKUP_APPKEY)".
func flagRef(name string) string {
	return "--" + name + " (" + envName(name) + ")"
}

// envName is the environment variable of a flag.
func envName(flag string) string {
	return envPrefix + "_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(flag))
}

// exitPanic carries kong's exit requests (after --help) out of Parse.
type exitPanic struct{ code int }

// newParser builds the kong parser. Environment variables are read through
// getenv (not os.Getenv) so tests can inject them; the help text still shows
// each flag's variable.
func newParser(model *cli, getenv func(string) string, stdout, stderr io.Writer) (*kong.Kong, map[*kong.Value]string, error) {
	envs := map[*kong.Value]string{}
	resolver := kong.ResolverFunc(func(_ *kong.Context, _ *kong.Path, flag *kong.Flag) (any, error) {
		name, ok := envs[flag.Value]
		if !ok {
			return nil, nil
		}
		v := getenv(name)
		if v == "" {
			return nil, nil
		}
		// Parse into a scratch value first so that a bad value is reported
		// with the variable it came from.
		scratch := reflect.New(flag.Target.Type()).Elem()
		if err := flag.Value.Parse(kong.ScanFromTokens(kong.Token{Type: kong.FlagValueToken, Value: v}), scratch); err != nil {
			return nil, &envError{name: name, err: err}
		}
		if flag.Enum != "" && !flag.EnumMap()[v] {
			return nil, &envError{name: name, err: fmt.Errorf("--%s must be one of %s but got %q", flag.Name, quoteList(flag.EnumSlice()), v)}
		}
		return v, nil
	})
	k, err := kong.New(model,
		kong.Name("simlookup"),
		kong.Description(rootHelp),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(exitPanic{code}) }),
		kong.DefaultEnvars(envPrefix),
		kong.PostBuild(func(k *kong.Kong) error {
			// Take the variables kong named away from kong (which would read
			// os.Getenv) and resolve them through getenv instead.
			var walk func(n *kong.Node)
			walk = func(n *kong.Node) {
				for _, f := range n.Flags {
					if len(f.Envs) > 0 {
						envs[f.Value] = f.Envs[0]
						f.Envs = nil
						f.Value.Tag.Envs = nil
					}
				}
				for _, c := range n.Children {
					walk(c)
				}
			}
			walk(k.Model.Node)
			return nil
		}),
		kong.Resolvers(resolver),
		kong.ValueFormatter(func(v *kong.Value) string {
			help := v.Help
			var extra []string
			if v.HasDefault && v.Default != "" && !(v.IsBool() && v.Default == "false") {
				extra = append(extra, "default "+v.Default)
			}
			if name, ok := envs[v]; ok {
				extra = append(extra, "$"+name)
			}
			if len(extra) == 0 {
				return help
			}
			suffix := "(" + strings.Join(extra, "; ") + ")"
			if strings.HasSuffix(help, ".") {
				return help[:len(help)-1] + " " + suffix + "."
			}
			return strings.TrimSpace(help + " " + suffix)
		}),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true, WrapUpperBound: 100}),
	)
	return k, envs, err
}

// envError is a bad value of a flag's environment variable.
type envError struct {
	name string
	err  error
}

func (e *envError) Error() string { return "from " + e.name + ": " + e.err.Error() }
func (e *envError) Unwrap() error { return e.err }

func quoteList(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = strconv.Quote(v)
	}
	return strings.Join(q, ",")
}

// Rewrites of kong's value errors into the wording of our own refusals.
var (
	quoted      = `("(?:[^"\\]|\\.)*")`
	parseErrors = []struct {
		re   *regexp.Regexp
		repl string
	}{
		{regexp.MustCompile(`expected a float but got ` + quoted + `(?: \(\w+\))?`), `expected a number, got $1`},
		{regexp.MustCompile(`expected (?:a valid \d+ bit u?int|an int) but got ` + quoted + `(?: \(\w+\))?`), `expected a whole number, got $1`},
		{regexp.MustCompile(`expected duration but got ` + quoted + `(?::.*)?$`), `expected a duration such as 500ms, 30s or 5m, got $1`},
		{regexp.MustCompile(`(?:expected bool|bool value must be true, 1, yes, false, 0 or no) but got ` + quoted + `(?: \(\w+\))?`), `expected true or false, got $1`},
		{regexp.MustCompile(`^(--[\w-]+) must be one of (.*) but got ` + quoted + `$`), `$1: expected one of $2, got $3`},
		{regexp.MustCompile(`^(--[\w-]+): expected \w+ value but got "(-[^"]*)" \(short flag\).*$`), `$1: write a negative value with "=": $1=$2`},
		{regexp.MustCompile(`^(--[\w-]+): expected \w+ value but got "EOL" \(<EOL>\)$`), `$1: needs a value`},
	}
	envPrefixRE = regexp.MustCompile(`^--([\w-]+): from (SIMLOOKUP_\w+): (?:--[\w-]+:? )?`)
)

// describeParseError words a kong parse error like our own refusals:
// "--rate: expected a number, got "abc"", and for a value from the
// environment "--rate (from SIMLOOKUP_RATE): expected a number, got "abc"".
func describeParseError(err error) string {
	msg := err.Error()
	var ee *envError
	if errors.As(err, &ee) {
		inner := ee.err.Error()
		for _, p := range parseErrors {
			inner = p.re.ReplaceAllString(inner, p.repl)
		}
		inner = strings.TrimPrefix(inner, "--")
		if i := strings.Index(inner, ": "); i > 0 && !strings.ContainsAny(inner[:i], " \"") {
			inner = inner[i+2:] // the flag is named below
		} else if i := strings.Index(inner, " "); i > 0 && !strings.Contains(inner[:i], "\"") {
			inner = inner[i+1:]
		}
		if m := envPrefixRE.FindStringSubmatch(msg); m != nil {
			return "--" + m[1] + " (from " + m[2] + "): " + inner
		}
		return ee.name + ": " + inner
	}
	for _, p := range parseErrors {
		msg = p.re.ReplaceAllString(msg, p.repl)
	}
	return msg
}

// checker is implemented by commands that can check their configuration
// without starting anything (no I/O but reading the files they are given).
// run calls check before run; a usage error exits 2.
type checker interface {
	check(a *app) error
}

// run parses args and runs the selected command; it returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) (code int) {
	return runMode(ctx, args, getenv, stdin, stdout, stderr, false)
}

// checkOnly parses args and checks the selected command's configuration
// without running it (the examples test uses it); it returns the exit code.
func checkOnly(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	return runMode(ctx, args, getenv, strings.NewReader(""), stdout, stderr, true)
}

func runMode(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer, onlyCheck bool) (code int) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	var model cli
	parser, _, err := newParser(&model, getenv, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "simlookup: internal error: %v\n", err)
		return exitRuntime
	}
	var noArgs bool
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(exitPanic); ok {
				code = e.code
				if code == 1 || noArgs { // kong uses 1 for parse failures it reports itself
					code = exitUsage
				}
				return
			}
			panic(r)
		}
	}()
	noArgs = len(args) == 0
	if noArgs {
		args = []string{"--help"} // help, then "no command" is a usage error
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		var pe *kong.ParseError
		if errors.As(err, &pe) && pe.Context != nil && pe.Context.Selected() != nil {
			path := pe.Context.Selected().Path()
			fmt.Fprintf(stderr, "simlookup %s: %s\n", path, describeParseError(err))
			fmt.Fprintf(stderr, "Run \"simlookup %s --help\" for usage.\n", path)
		} else {
			fmt.Fprintf(stderr, "simlookup: %s\n", describeParseError(err))
			fmt.Fprintln(stderr, `Run "simlookup --help" for usage.`)
		}
		return exitUsage
	}
	sel := kctx.Selected()
	if sel == nil {
		_ = kctx.PrintUsage(false)
		return exitUsage
	}
	cmd, ok := sel.Target.Addr().Interface().(command)
	if !ok {
		fmt.Fprintf(stderr, "simlookup: internal error: %s has no run method\n", sel.Path())
		return exitRuntime
	}
	a := &app{ctx: ctx, getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr, g: &model.globals, command: sel.Path()}
	a.log = newLogger(model.LogFormat, model.LogLevel, stderr).With("cmd", a.command)
	var err2 error
	if ch, ok := cmd.(checker); ok {
		err2 = ch.check(a)
	}
	if err2 == nil && !onlyCheck {
		err2 = cmd.run(a)
	}
	if err := err2; err != nil {
		var ue *usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "simlookup %s: %v\n", a.command, err)
			fmt.Fprintf(stderr, "Run \"simlookup %s --help\" for usage.\n", a.command)
			return exitUsage
		}
		var ee *exitCodeError
		if errors.As(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintf(stderr, "simlookup %s: %s\n", a.command, ee.msg)
			}
			return ee.code
		}
		fmt.Fprintf(stderr, "simlookup %s: %v\n", a.command, err)
		return exitRuntime
	}
	return exitOK
}

// exitCodeError ends a command with a given code and an optional message
// (already reported otherwise when empty).
type exitCodeError struct {
	code int
	msg  string
}

func (e *exitCodeError) Error() string { return e.msg }
