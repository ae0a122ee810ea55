package main

import (
	"encoding/json"
	"fmt"

	"github.com/simlookup/simlookup/internal/buildinfo"
)

type versionCmd struct {
	JSON bool `env:"-" help:"Print as one JSON object."`
}

func (c *versionCmd) Help() string {
	return `Examples:

    simlookup version
    simlookup version --json`
}

func (c *versionCmd) run(a *app) error {
	v, commit, gov := buildinfo.Info()
	if c.JSON {
		return json.NewEncoder(a.stdout).Encode(map[string]string{"version": v, "commit": commit, "go": gov})
	}
	_, err := fmt.Fprintf(a.stdout, "simlookup %s (commit %s, %s)\n", v, commit, gov)
	return err
}
