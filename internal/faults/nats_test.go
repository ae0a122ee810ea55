//go:build faults

package faults

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestHarnessNATSKill9KeepsAcked checks the harness itself: a nats-server
// subprocess with sync_interval always keeps every acknowledged message
// across kill -9 and a clean restart, on the same port and store.
func TestHarnessNATSKill9KeepsAcked(t *testing.T) {
	dir := t.TempDir()
	n := startNATS(t, dir)
	_, js := connect(t, n.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "H", Subjects: []string{"h.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	const per = 200
	for round := range 2 {
		for i := range per {
			if _, err := js.Publish(ctx, "h.x", []byte{byte(i)}); err != nil {
				t.Fatalf("round %d publish %d: %v", round, i, err)
			}
		}
		if round == 0 {
			n.Crash()
		} else {
			n.Restart()
		}
		var msgs uint64
		eventually(t, 20*time.Second, "stream back", func() error {
			st, err := js.Stream(ctx, "H")
			if err != nil {
				return err
			}
			info, err := st.Info(ctx)
			if err != nil {
				return err
			}
			msgs = info.State.Msgs
			return nil
		})
		if want := uint64(per * (round + 1)); msgs != want {
			t.Fatalf("after restart %d: %d messages, want %d", round, msgs, want)
		}
	}
}
