package main

import (
	"fmt"

	"github.com/simlookup/simlookup/sign"
)

type signCmd struct {
	secretFlags `embed:""`

	Explain bool     `env:"-" help:"Also print the string that was hashed, with the secret masked."`
	Params  []string `arg:"" optional:"" name:"key=value" help:"Request parameters; values are taken as strings (integers stay digits)."`
}

func (c *signCmd) Help() string {
	return `Prints the EIOTCLUB signature of the given parameters: every parameter except
"sign" and empty values, sorted by name (byte-wise ASCII), joined as
k=v&k=v&...&secret=<secret>, SHA-1, upper-case hex. Use it to debug an
integration or to sign a request by hand. The secret comes from
SIMLOOKUP_SECRET or --secret-file and is never printed.

Examples:

    printf a1b1c1d1 > secret.txt
    simlookup sign --secret-file secret.txt appkey=000001 timestamp=1556595508 nonce=24523 userName=wx age=24 sex=1
    # 963A56BAEBED746F2746E4D9B3B77BE0F2E171E7

    SIMLOOKUP_SECRET=a1b1c1d1 simlookup sign --explain appkey=000001 iccid=89852240400014306175 nonce=12345 timestamp=1700000000`
}

func (c *signCmd) check(a *app) error {
	if len(c.Params) == 0 {
		return usagef("no parameters: give them as key=value, e.g. appkey=000001 timestamp=1556595508 nonce=24523 iccid=8985...")
	}
	if _, err := sign.ParseParams(c.Params); err != nil {
		return usagef("%v", err)
	}
	_, err := c.load(a.getenv, true)
	return err
}

func (c *signCmd) run(a *app) error {
	p, err := sign.ParseParams(c.Params)
	if err != nil {
		return usagef("%v", err)
	}
	secret, err := c.load(a.getenv, true)
	if err != nil {
		return err
	}
	sig, err := sign.Sign(p, secret)
	if err != nil {
		return usagef("%v", err)
	}
	if c.Explain {
		s, err := sign.Explain(p)
		if err != nil {
			return usagef("%v", err)
		}
		fmt.Fprintf(a.stdout, "string:    %s\nsignature: %s\n", s, sig)
		return nil
	}
	_, err = fmt.Fprintln(a.stdout, sig)
	return err
}
