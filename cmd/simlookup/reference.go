package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/alecthomas/kong"
)

// configReference writes the Markdown configuration reference of every
// command and flag, generated from the kong model (README.md embeds it; a
// test keeps the two equal).
func configReference(w io.Writer) error {
	var model cli
	k, envs, err := newParser(&model, func(string) string { return "" }, io.Discard, io.Discard)
	if err != nil {
		return err
	}
	env := func(f *kong.Flag) string {
		if e, ok := envs[f.Value]; ok {
			return "`" + e + "`"
		}
		return "—"
	}
	cell := func(s string) string {
		s = strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;").Replace(s)
		return strings.ReplaceAll(s, "\n", " ")
	}
	def := func(f *kong.Flag) string {
		if f.Default == "" {
			return ""
		}
		return "`" + f.Default + "`"
	}
	row := func(f *kong.Flag) string {
		return fmt.Sprintf("| `--%s` | %s | %s | %s |\n", f.Name, env(f), def(f), cell(f.Help))
	}
	const head = "| Flag | Environment | Default | Meaning |\n|---|---|---|---|\n"

	fmt.Fprint(w, "Environment only (never flags, so they cannot show in `ps`):\n\n")
	fmt.Fprint(w, "| Variable | Meaning |\n|---|---|\n")
	fmt.Fprintf(w, "| `%s` | the vendor signing secret (or `--secret-file`) |\n", envSecret)
	fmt.Fprintf(w, "| `%s` | NATS password, with `--nats-user` |\n", envNATSPassword)
	fmt.Fprintf(w, "| `%s` | NATS token |\n\n", envNATSToken)

	fmt.Fprint(w, "Every command:\n\n"+head)
	for _, f := range k.Model.Flags {
		if f.Name != "help" && !f.Hidden {
			fmt.Fprint(w, row(f))
		}
	}
	// Shared groups, listed once with the commands that take them.
	type group struct {
		title string
		cmds  []string
		flags []*kong.Flag
	}
	var groups []*group
	byTitle := map[string]*group{}
	for _, n := range k.Model.Children {
		if n.Type != kong.CommandNode {
			continue
		}
		for _, f := range n.Flags {
			if f.Group == nil {
				continue
			}
			g := byTitle[f.Group.Title]
			if g == nil {
				g = &group{title: f.Group.Title}
				byTitle[g.title] = g
				groups = append(groups, g)
			}
			if !slices.Contains(g.cmds, n.Name) {
				g.cmds = append(g.cmds, n.Name)
			}
			if !slices.ContainsFunc(g.flags, func(x *kong.Flag) bool { return x.Name == f.Name }) {
				g.flags = append(g.flags, f)
			}
		}
	}
	for _, g := range groups {
		fmt.Fprintf(w, "\n%s (`%s`):\n\n%s", g.title, strings.Join(g.cmds, "`, `"), head)
		for _, f := range g.flags {
			fmt.Fprint(w, row(f))
		}
	}
	for _, n := range k.Model.Children {
		if n.Type != kong.CommandNode {
			continue
		}
		var own []*kong.Flag
		for _, f := range n.Flags {
			if f.Group == nil && !f.Hidden {
				own = append(own, f)
			}
		}
		args := ""
		for _, p := range n.Positional {
			args += " [" + p.Name + "...]"
		}
		fmt.Fprintf(w, "\n`simlookup %s%s`: %s\n", n.Name, args, n.Help)
		if len(own) > 0 {
			fmt.Fprint(w, "\n"+head)
			for _, f := range own {
				fmt.Fprint(w, row(f))
			}
		}
	}
	return nil
}
