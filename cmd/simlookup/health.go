package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// healthCmd asks a running worker's or sink's /readyz (or /healthz) whether
// it is ready; it exists so container images without a shell can have a
// healthcheck.
type healthCmd struct {
	URL     string        `name:"url" env:"-" default:"http://127.0.0.1:9090/readyz" placeholder:"URL" help:"The endpoint to ask: a daemon's /readyz (ready to work) or /healthz (alive)."`
	Timeout time.Duration `env:"-" default:"3s" placeholder:"DURATION" help:"Give up after this long."`
}

func (c *healthCmd) Help() string {
	return `Exits 0 when the endpoint answers 200, 1 otherwise, and prints the answer.
Meant for container healthchecks (the image has no shell or curl).

Examples:

    simlookup health
    simlookup health --url http://127.0.0.1:9091/healthz --timeout 2s`
}

func (c *healthCmd) check(a *app) error {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usagef("%s is %q: it needs an http(s) URL such as http://127.0.0.1:9090/readyz", flagRef("url"), c.URL)
	}
	if c.Timeout <= 0 {
		return usagef("%s is %s: it needs a positive duration", flagRef("timeout"), c.Timeout)
	}
	return nil
}

func (c *healthCmd) run(a *app) error {
	ctx, cancel := context.WithTimeout(a.ctx, c.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health: %s: %w", c.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	answer := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s answered %s: %s", c.URL, resp.Status, answer)
	}
	_, err = fmt.Fprintln(a.stdout, answer)
	return err
}
