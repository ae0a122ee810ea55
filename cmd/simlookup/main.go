// Command simlookup keeps a fleet operator's knowledge of its EIOTCLUB SIM
// cards fresh: publish ICCIDs to NATS JetStream, workers look each one up on
// the vendor's signed getCardsInfo API under one fleet-wide rate limit, and a
// sink writes every result to Parquet files.
//
// Run "simlookup --help" for the subcommands, or "simlookup demo" to see the
// whole system on one machine.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
