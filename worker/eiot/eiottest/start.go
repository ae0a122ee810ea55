package eiottest

import (
	"net/http/httptest"
	"testing"

	"github.com/simlookup/simlookup/sign"
)

// Credentials Start uses when Config leaves them empty.
const (
	TestAppKey = "test-appkey"
	TestSecret = "test-secret"
)

// Start serves a fake on an httptest server for the duration of the test
// and returns it with its base URL (pass it as eiot.Config.BaseURL, or use
// srv.ClientConfig(url)). An empty AppKey or Secret defaults to TestAppKey
// and TestSecret. The server is closed when the test ends.
func Start(t testing.TB, cfg Config) (*Server, string) {
	t.Helper()
	if cfg.AppKey == "" {
		cfg.AppKey = TestAppKey
	}
	if cfg.Secret.IsZero() {
		cfg.Secret = sign.NewSecret(TestSecret)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Close()
		ts.Close()
	})
	return srv, ts.URL
}
