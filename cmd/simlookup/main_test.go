package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"testing"
)

// envBeMain makes the test binary behave as the simlookup binary, so that
// tests of commands that start simlookup subprocesses (bench) can use it.
const envBeMain = "SIMLOOKUP_TEST_BE_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envBeMain) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	// subprocesses started by the tests inherit this
	if err := os.Setenv(envBeMain, "1"); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}
