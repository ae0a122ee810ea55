package validate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/simlookup/simlookup/schemas"
)

// natsFiles maps each file of deploy/nats to the configuration it must hold.
func natsFiles() (streams map[string]jetstream.StreamConfig, consumers map[string]jetstream.ConsumerConfig) {
	streams = map[string]jetstream.StreamConfig{}
	for _, c := range schemas.StreamConfigs(schemas.StreamOptions{}) {
		var file string
		switch c.Name {
		case schemas.RequestStream:
			file = "stream-requests.json"
		case schemas.ResultStream:
			file = "stream-results.json"
		case schemas.DLQStream:
			file = "stream-dlq.json"
		default:
			file = "stream-" + strings.ToLower(c.Name) + ".json"
		}
		streams[filepath.Join("deploy", "nats", file)] = c
	}
	consumers = map[string]jetstream.ConsumerConfig{
		filepath.Join("deploy", "nats", "consumer-worker.json"): schemas.WorkerConsumerConfig(0),
	}
	return streams, consumers
}

func indentJSON(t *testing.T, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // "simlookup.request.>", not "\u003e"
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// strictJSON decodes b into v, refusing unknown fields and trailing data.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return &json.SyntaxError{Offset: dec.InputOffset()}
	}
	return nil
}

// TestNATSDefinitions: deploy/nats/*.json (for `nats stream add --config` and
// `nats consumer add SIMLOOKUP_REQUESTS --config`) are exactly the default
// configurations of package schemas, in the nats.go JSON encoding, which is
// the JetStream API's.
func TestNATSDefinitions(t *testing.T) {
	streams, consumers := natsFiles()
	for rel, want := range streams {
		writeOrCompare(t, rel, indentJSON(t, want))
		var have jetstream.StreamConfig
		if err := strictJSON(readFile(t, rel), &have); err != nil {
			t.Fatalf("%s does not decode strictly into jetstream.StreamConfig: %v", rel, err)
		}
		if !reflect.DeepEqual(have, want) {
			t.Errorf("%s decodes to\n%+v\nwant schemas.StreamConfigs(StreamOptions{}):\n%+v", rel, have, want)
		}
		if have.Storage != jetstream.FileStorage || have.Replicas != 1 {
			t.Errorf("%s: storage %v replicas %d; want file storage, 1 replica (edit num_replicas for a cluster)", rel, have.Storage, have.Replicas)
		}
	}
	for rel, want := range consumers {
		writeOrCompare(t, rel, indentJSON(t, want))
		var have jetstream.ConsumerConfig
		if err := strictJSON(readFile(t, rel), &have); err != nil {
			t.Fatalf("%s does not decode strictly into jetstream.ConsumerConfig: %v", rel, err)
		}
		if !reflect.DeepEqual(have, want) {
			t.Errorf("%s decodes to\n%+v\nwant schemas.WorkerConsumerConfig(0):\n%+v", rel, have, want)
		}
	}
}

// TestNATSDefinitionsMatchStreamsDryRun: what `simlookup streams --dry-run`
// prints with default flags is what deploy/nats holds.
func TestNATSDefinitionsMatchStreamsDryRun(t *testing.T) {
	stdout, stderr, code := runCLI(t, "streams", "--dry-run")
	if code != 0 {
		t.Fatalf("simlookup streams --dry-run exits %d: %s", code, stderr)
	}
	compareDryRun(t, "streams --dry-run", stdout)
}

// compareDryRun checks that the output of `simlookup streams --dry-run`
// holds exactly the configurations of deploy/nats.
func compareDryRun(t *testing.T, what, stdout string) {
	t.Helper()
	type line struct {
		Kind   string          `json:"kind"`
		Stream string          `json:"stream"`
		Name   string          `json:"name"`
		Config json.RawMessage `json:"config"`
	}
	gotStreams := map[string]jetstream.StreamConfig{}
	gotConsumers := map[string]jetstream.ConsumerConfig{}
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l line
		if err := strictJSON(sc.Bytes(), &l); err != nil {
			t.Fatalf("%s line %q: %v", what, sc.Text(), err)
		}
		switch l.Kind {
		case "stream":
			var c jetstream.StreamConfig
			if err := strictJSON(l.Config, &c); err != nil {
				t.Fatalf("%s stream %s: %v", what, l.Name, err)
			}
			gotStreams[c.Name] = c
		case "consumer":
			var c jetstream.ConsumerConfig
			if err := strictJSON(l.Config, &c); err != nil {
				t.Fatalf("%s consumer %s: %v", what, l.Name, err)
			}
			if l.Stream != schemas.RequestStream {
				t.Errorf("%s: consumer %s is on stream %q, want %s", what, l.Name, l.Stream, schemas.RequestStream)
			}
			gotConsumers[c.Durable] = c
		case "kv":
		default:
			t.Errorf("%s prints an unknown kind %q", what, l.Kind)
		}
	}
	streams, consumers := natsFiles()
	if len(gotStreams) != len(streams) || len(gotConsumers) != len(consumers) {
		t.Fatalf("%s prints %d streams and %d consumers; deploy/nats has %d and %d", what, len(gotStreams), len(gotConsumers), len(streams), len(consumers))
	}
	for rel := range streams {
		var file jetstream.StreamConfig
		if err := strictJSON(readFile(t, rel), &file); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(gotStreams[file.Name], file) {
			t.Errorf("%s differs from %s:\nfile:    %+v\ndry-run: %+v", rel, what, file, gotStreams[file.Name])
		}
	}
	for rel := range consumers {
		var file jetstream.ConsumerConfig
		if err := strictJSON(readFile(t, rel), &file); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(gotConsumers[file.Durable], file) {
			t.Errorf("%s differs from %s:\nfile:    %+v\ndry-run: %+v", rel, what, file, gotConsumers[file.Durable])
		}
	}
}
