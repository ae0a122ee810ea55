package main

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// authServer runs a JetStream server that requires the given auth.
func authServer(t *testing.T, configure func(o *server.Options)) string {
	t.Helper()
	o := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true, JetStreamMaxStore: 1 << 30}
	configure(o)
	srv, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(srv.Shutdown)
	return srv.ClientURL()
}

var smallStreams = []string{"--requests-max-bytes", "64MiB", "--results-max-bytes", "64MiB"}

func TestNATSTokenAuth(t *testing.T) {
	t.Parallel()
	url := authServer(t, func(o *server.Options) { o.Authorization = "tok-123" })
	args := append([]string{"streams", "--nats-url", url}, smallStreams...)
	r := runCLI(t, args...)
	wantCode(t, r, exitRuntime)
	if !strings.Contains(strings.ToLower(r.stderr), "authorization") {
		t.Fatalf("stderr %q", r.stderr)
	}
	wantCode(t, cmdRun{env: map[string]string{"SIMLOOKUP_NATS_TOKEN": "tok-123"}}.run(t, args...), exitOK)
}

func TestNATSUserPasswordAuth(t *testing.T) {
	t.Parallel()
	url := authServer(t, func(o *server.Options) { o.Username, o.Password = "ops", "pw-456" })
	args := append([]string{"streams", "--nats-url", url, "--nats-user", "ops"}, smallStreams...)
	wantCode(t, cmdRun{env: map[string]string{"SIMLOOKUP_NATS_PASSWORD": "wrong"}}.run(t, args...), exitRuntime)
	r := cmdRun{env: map[string]string{"SIMLOOKUP_NATS_PASSWORD": "pw-456"}}.run(t, args...)
	wantCode(t, r, exitOK)
	if strings.Contains(r.stdout+r.stderr, "pw-456") {
		t.Fatal("the password was printed")
	}
}

func TestNATSURLListAndEnv(t *testing.T) {
	t.Parallel()
	url := authServer(t, func(*server.Options) {})
	// a dead server first in the list: the client moves on to the live one
	env := map[string]string{"SIMLOOKUP_NATS_URL": "nats://127.0.0.1:1, " + url}
	wantCode(t, cmdRun{env: env}.run(t, append([]string{"streams"}, smallStreams...)...), exitOK)
}

func TestReconnectDelayGrowsAndIsBounded(t *testing.T) {
	t.Parallel()
	for a := range 20 {
		d := reconnectDelay(a)
		if d <= 0 || d > 10*time.Second {
			t.Fatalf("attempt %d: delay %s", a, d)
		}
	}
	if reconnectDelay(0) > 250*time.Millisecond {
		t.Fatal("first delay too long")
	}
}
