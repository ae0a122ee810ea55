package validate

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	natsserver "github.com/nats-io/nats-server/v2/server"
)

// loadCompose loads docker-compose.yml the way `docker compose` does
// (interpolation, schema validation, normalisation, consistency checks),
// with the given environment in place of the shell's and of .env.
func loadCompose(t *testing.T, env map[string]string, profiles ...string) *types.Project {
	t.Helper()
	root := repoRoot(t)
	var envList []string
	for k, v := range env {
		envList = append(envList, k+"="+v)
	}
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root),
		cli.WithEnv(envList),
		cli.WithProfiles(profiles),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("docker-compose.yml has no service %q (has %v)", name, slices.Sorted(mapsKeys(p.Services)))
	}
	return s
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func envKeys(s types.ServiceConfig) []string {
	var keys []string
	for k := range s.Environment {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func envValue(s types.ServiceConfig, key string) string {
	if v := s.Environment[key]; v != nil {
		return *v
	}
	return ""
}

// TestComposeLoads: the whole stack is there, in the right order, with
// NATS on a volume with sync_interval always, two workers, one sink on a
// host folder.
func TestComposeLoads(t *testing.T) {
	p := loadCompose(t, nil)
	if p.Name != "simlookup" {
		t.Errorf("project name %q, want simlookup", p.Name)
	}
	want := []string{"fake-api", "nats", "parquet-dir", "sink", "streams", "worker"}
	if got := slices.Sorted(mapsKeys(p.Services)); !slices.Equal(got, want) {
		t.Errorf("services %v, want %v (prometheus only with --profile monitoring)", got, want)
	}

	nats := service(t, p, "nats")
	if !strings.HasPrefix(nats.Image, "nats:2.") {
		t.Errorf("nats image %q, want nats:2.x", nats.Image)
	}
	var dataVolume, confMount bool
	for _, v := range nats.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Target == "/data" {
			dataVolume = true
		}
		if v.Type == types.VolumeTypeBind && strings.HasSuffix(v.Source, filepath.Join("deploy", "compose", "nats.conf")) {
			confMount = true
			conf, err := os.ReadFile(v.Source)
			if err != nil {
				t.Fatal(err)
			}
			c := stripComments(string(conf))
			for _, want := range []string{"sync_interval: always", "store_dir: /data", "http_port: 8222"} {
				if !strings.Contains(c, want) {
					t.Errorf("nats.conf lacks %q", want)
				}
			}
			if !slices.Contains(nats.Command, v.Target) {
				t.Errorf("nats command %v does not load the mounted config %s", nats.Command, v.Target)
			}
		}
	}
	if !dataVolume || !confMount {
		t.Errorf("nats needs a named volume on /data (%v) and the mounted nats.conf (%v)", dataVolume, confMount)
	}
	if nats.HealthCheck == nil || len(nats.HealthCheck.Test) == 0 {
		t.Error("nats has no healthcheck; the streams job waits for service_healthy")
	}

	simlookup := []string{"streams", "fake-api", "worker", "sink"}
	image := service(t, p, "worker").Image
	for _, name := range simlookup {
		s := service(t, p, name)
		if s.Image != image || s.Build == nil || filepath.Base(s.Build.Dockerfile) != "Dockerfile" {
			t.Errorf("%s: image %q build %+v; every simlookup service uses the one image %q built from Dockerfile", name, s.Image, s.Build, image)
		}
		if len(s.Command) == 0 {
			t.Errorf("%s: no command (the image's entrypoint is /simlookup; the command is the subcommand)", name)
		}
		if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") {
			t.Errorf("%s: want read_only and cap_drop ALL", name)
		}
	}
	if c := service(t, p, "streams").Command; c[0] != "streams" {
		t.Errorf("streams command %v", c)
	}
	if c := service(t, p, "fake-api").Command; c[0] != "fake-api" {
		t.Errorf("fake-api command %v", c)
	}

	depends := func(svc, on, condition string) {
		t.Helper()
		d, ok := service(t, p, svc).DependsOn[on]
		if !ok || d.Condition != condition {
			t.Errorf("%s depends_on %s: %+v, want condition %s", svc, on, d, condition)
		}
	}
	depends("streams", "nats", types.ServiceConditionHealthy)
	depends("worker", "streams", types.ServiceConditionCompletedSuccessfully)
	depends("sink", "streams", types.ServiceConditionCompletedSuccessfully)
	depends("sink", "parquet-dir", types.ServiceConditionCompletedSuccessfully)

	worker := service(t, p, "worker")
	if worker.Command[0] != "worker" || worker.GetScale() != 2 {
		t.Errorf("worker: command %v scale %d, want worker x2 (deploy.replicas: 2)", worker.Command, worker.GetScale())
	}
	if got := envValue(worker, "SIMLOOKUP_API_URL"); got != "http://fake-api:8080" {
		t.Errorf("worker SIMLOOKUP_API_URL %q, want the fake by default", got)
	}
	if !strings.HasSuffix(service(t, p, "fake-api").Command[len(service(t, p, "fake-api").Command)-1], ":8080") {
		t.Errorf("fake-api does not listen on :8080: %v", service(t, p, "fake-api").Command)
	}

	sink := service(t, p, "sink")
	if sink.Command[0] != "sink" || sink.GetScale() != 1 {
		t.Errorf("sink: command %v scale %d, want one sink", sink.Command, sink.GetScale())
	}
	out := envValue(sink, "SIMLOOKUP_OUT")
	var hostFolder bool
	for _, v := range sink.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == out && v.Source == filepath.Join(repoRoot(t), "data", "parquet") {
			hostFolder = true
		}
	}
	if out == "" || !hostFolder {
		t.Errorf("sink writes to %q; want SIMLOOKUP_OUT on a bind mount of ./data/parquet (volumes %+v)", out, sink.Volumes)
	}
	dir := service(t, p, "parquet-dir")
	if !strings.Contains(strings.Join(dir.Command, " "), "chown 65532:65532") || sink.User != "65532:65532" {
		t.Errorf("the sink's user (%q) must own ./data/parquet (parquet-dir: %v)", sink.User, dir.Command)
	}

	if envValue(sink, "SIMLOOKUP_NATS_URL") != envValue(worker, "SIMLOOKUP_NATS_URL") {
		t.Error("sink and workers use different NATS URLs")
	}
	// Everyone who provisions streams uses the same bounds.
	for _, k := range []string{"SIMLOOKUP_REQUESTS_MAX_BYTES", "SIMLOOKUP_RESULTS_MAX_BYTES", "SIMLOOKUP_RESULTS_MAX_AGE", "SIMLOOKUP_ACK_WAIT", "SIMLOOKUP_NATS_URL"} {
		v := envValue(service(t, p, "streams"), k)
		if v == "" {
			t.Errorf("streams: %s unset", k)
		}
		if w := envValue(worker, k); w != v {
			t.Errorf("worker %s=%q, streams job %q: they must agree", k, w, v)
		}
	}
}

// TestComposeSecrets: no secret value is in the compose file or its
// environment; the workers read the vendor secret from a mounted file, which
// is the fake's demo secret unless SIMLOOKUP_SECRET_HOST_FILE points elsewhere.
func TestComposeSecrets(t *testing.T) {
	demo := filepath.Join(repoRoot(t), "deploy", "compose", "secrets", "fake-api-demo.secret")
	demoValue := strings.TrimSpace(string(readFile(t, "deploy/compose/secrets/fake-api-demo.secret")))
	if !strings.Contains(demoValue, "DEMO") {
		t.Errorf("the committed secret %q must say it is the demo one", demoValue)
	}
	raw := string(readFile(t, "docker-compose.yml"))
	if strings.Contains(raw, demoValue) {
		t.Error("docker-compose.yml contains the demo secret's value inline")
	}

	check := func(p *types.Project, wantVendorFile string) {
		t.Helper()
		for name, sec := range p.Secrets {
			if sec.File == "" || sec.Environment != "" || sec.Content != "" || sec.External {
				t.Errorf("secret %s: want a file-based secret, got %+v", name, sec)
			}
		}
		if got := p.Secrets["vendor_secret"].File; got != wantVendorFile {
			t.Errorf("vendor_secret file %q, want %q", got, wantVendorFile)
		}
		for _, s := range p.AllServices() {
			for _, k := range envKeys(s) {
				if secretLike(k) {
					t.Errorf("%s: environment %s carries a secret inline; mount it as a file (*_FILE)", s.Name, k)
				}
				if v := envValue(s, k); v != "" && strings.Contains(v, demoValue) {
					t.Errorf("%s: %s holds a secret value", s.Name, k)
				}
			}
			for _, ref := range s.Secrets {
				sec, ok := p.Secrets[ref.Source]
				if !ok {
					t.Errorf("%s uses undefined secret %s", s.Name, ref.Source)
					continue
				}
				target := ref.Target
				if target == "" {
					target = ref.Source
				}
				if !strings.HasPrefix(target, "/") {
					target = "/run/secrets/" + target
				}
				if got := envValue(s, "SIMLOOKUP_SECRET_FILE"); got != target {
					t.Errorf("%s: SIMLOOKUP_SECRET_FILE %q, want the mounted secret %s", s.Name, got, target)
				}
				_ = sec
			}
		}
		for _, name := range []string{"worker", "fake-api"} {
			if len(service(t, p, name).Secrets) != 1 {
				t.Errorf("%s: want exactly one secret mounted", name)
			}
		}
	}
	check(loadCompose(t, nil), demo)

	// Against the real vendor: .env names the API, the appkey and the secret's file.
	real := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(real, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := loadCompose(t, map[string]string{
		"SIMLOOKUP_API_URL":          "https://oapi.eiotclub.com",
		"SIMLOOKUP_APPKEY":           "123456",
		"SIMLOOKUP_SECRET_HOST_FILE": real,
		"SIMLOOKUP_UID":              "1000",
		"SIMLOOKUP_GID":              "1000",
	})
	check(p, real)
	w := service(t, p, "worker")
	if envValue(w, "SIMLOOKUP_API_URL") != "https://oapi.eiotclub.com" || envValue(w, "SIMLOOKUP_APPKEY") != "123456" {
		t.Errorf("worker does not take the API URL and appkey from the environment: %v", w.Environment)
	}
	if u := service(t, p, "sink").User; u != "1000:1000" {
		t.Errorf("sink user %q, want 1000:1000 from SIMLOOKUP_UID/GID", u)
	}

	// The example .env sets only variables the compose file uses, and no secret.
	example := string(readFile(t, "deploy/compose/vendor.env.example"))
	for _, l := range strings.Split(example, "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "#"))
		k, _, ok := strings.Cut(l, "=")
		if !ok || strings.Contains(k, " ") {
			continue
		}
		if !strings.Contains(raw, "${"+k) {
			t.Errorf("vendor.env.example sets %s, which docker-compose.yml does not use", k)
		}
		if secretLike(k) && !strings.HasSuffix(k, "_HOST_FILE") {
			t.Errorf("vendor.env.example sets a secret %s", k)
		}
	}
}

// TestComposeMonitoringProfile: --profile monitoring adds Prometheus with
// the plain rules file of deploy/prometheus.
func TestComposeMonitoringProfile(t *testing.T) {
	p := loadCompose(t, nil, "monitoring")
	prom := service(t, p, "prometheus")
	var rules, conf bool
	for _, v := range prom.Volumes {
		if v.Source == filepath.Join(repoRoot(t), "deploy", "prometheus", "simlookup.rules.yml") {
			rules = true
		}
		if v.Source == filepath.Join(repoRoot(t), "deploy", "compose", "prometheus.yml") {
			conf = true
		}
	}
	if !rules || !conf {
		t.Errorf("prometheus mounts rules %v config %v: %+v", rules, conf, prom.Volumes)
	}
}

// TestComposeEnvIsCLI: every SIMLOOKUP_* variable a service sets is a flag
// (or environment-only setting) of the subcommand it runs.
func TestComposeEnvIsCLI(t *testing.T) {
	p := loadCompose(t, nil)
	for _, name := range []string{"streams", "fake-api", "worker", "sink"} {
		s := service(t, p, name)
		t.Run(name, func(t *testing.T) {
			checkEnv(t, "docker-compose.yml service "+name, s.Command[0], envKeys(s))
			checkArgs(t, "docker-compose.yml service "+name, s.Command)
		})
	}
}

// checkArgs checks that the --flags of a command line exist (in its --help).
func checkArgs(t *testing.T, where string, args []string) {
	t.Helper()
	if len(args) < 2 {
		return
	}
	out, _, code := runCLI(t, args[0], "--help")
	if code != 0 {
		t.Skipf("simlookup %s --help exits %d", args[0], code)
	}
	for _, a := range args[1:] {
		if f, _, _ := strings.Cut(a, "="); strings.HasPrefix(f, "--") && !strings.Contains(out, f) {
			t.Errorf("%s: simlookup %s has no flag %s", where, args[0], f)
		}
	}
}

// TestComposeNATSConfig: deploy/compose/nats.conf is a valid nats-server
// configuration with JetStream, fsync on every write and the ports the
// compose file uses; a server started from it (on free ports and a
// temporary store) is healthy as the compose healthcheck asks, and takes the
// streams that the compose file's `streams` service provisions within its
// max_file_store (run twice: provisioning is idempotent, as each worker does
// it again with the same settings).
func TestComposeNATSConfig(t *testing.T) {
	root := repoRoot(t)
	opts, err := natsserver.ProcessConfigFile(filepath.Join(root, "deploy", "compose", "nats.conf"))
	if err != nil {
		t.Fatalf("nats.conf: %v", err)
	}
	if !opts.JetStream || !opts.SyncAlways || opts.StoreDir != "/data/jetstream" || opts.Port != 4222 || opts.HTTPPort != 8222 || opts.JetStreamMaxStore <= 0 {
		t.Errorf("nats.conf: jetstream %v sync always %v store %q port %d http %d max store %d", opts.JetStream, opts.SyncAlways, opts.StoreDir, opts.Port, opts.HTTPPort, opts.JetStreamMaxStore)
	}
	opts.StoreDir = t.TempDir()
	opts.Host, opts.Port = "127.0.0.1", -1
	opts.HTTPHost, opts.HTTPPort = "127.0.0.1", -1
	opts.NoSigs, opts.NoLog = true, true
	s, err := natsserver.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server from nats.conf did not start")
	}
	resp, err := http.Get("http://" + s.MonitorAddr().String() + "/healthz?js-enabled-only=true")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz?js-enabled-only=true: %s", resp.Status)
	}

	p := loadCompose(t, nil)
	for _, name := range []string{"streams", "worker"} {
		svc := service(t, p, name)
		env := map[string]string{}
		for k := range svc.Environment {
			if strings.HasPrefix(k, "SIMLOOKUP_") {
				env[k] = envValue(svc, k)
			}
		}
		env["SIMLOOKUP_NATS_URL"] = s.ClientURL()
		_, stderr, code := runCLIEnv(t, env, "streams")
		if code != 0 {
			t.Fatalf("simlookup streams with the %s service's environment against nats.conf exits %d:\n%s", name, code, stderr)
		}
	}
}
