package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var vendorExample = []string{"appkey=000001", "timestamp=1556595508", "nonce=24523", "userName=wx", "age=24", "sex=1"}

const vendorExampleSig = "963A56BAEBED746F2746E4D9B3B77BE0F2E171E7"

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSignVendorExample(t *testing.T) {
	t.Parallel()
	f := writeFile(t, "secret", "a1b1c1d1\n")
	r := runCLI(t, append([]string{"sign", "--secret-file", f}, vendorExample...)...)
	wantCode(t, r, exitOK)
	if got := strings.TrimSpace(r.stdout); got != vendorExampleSig {
		t.Fatalf("signature %q, want %s", got, vendorExampleSig)
	}
	// the same from the environment
	r = cmdRun{env: map[string]string{"SIMLOOKUP_SECRET": "a1b1c1d1"}}.run(t, append([]string{"sign"}, vendorExample...)...)
	wantCode(t, r, exitOK)
	if got := strings.TrimSpace(r.stdout); got != vendorExampleSig {
		t.Fatalf("signature from env %q, want %s", got, vendorExampleSig)
	}
}

func TestSignExplainMasksSecret(t *testing.T) {
	t.Parallel()
	r := cmdRun{env: map[string]string{"SIMLOOKUP_SECRET": "a1b1c1d1"}}.run(t, append([]string{"sign", "--explain"}, vendorExample...)...)
	wantCode(t, r, exitOK)
	want := "age=24&appkey=000001&nonce=24523&sex=1&timestamp=1556595508&userName=wx&secret=****"
	if !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, vendorExampleSig) {
		t.Fatalf("explain output:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout+r.stderr, "a1b1c1d1") {
		t.Fatal("the secret was printed")
	}
}

func TestSignRefusals(t *testing.T) {
	t.Parallel()
	f := writeFile(t, "secret", "a1b1c1d1")
	empty := writeFile(t, "empty", " \n")
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no secret", nil, []string{"sign", "a=1"}, "SIMLOOKUP_SECRET"},
		{"both secrets", map[string]string{"SIMLOOKUP_SECRET": "x"}, []string{"sign", "--secret-file", f, "a=1"}, "--secret-file (SIMLOOKUP_SECRET_FILE)"},
		{"empty secret file", nil, []string{"sign", "--secret-file", empty, "a=1"}, "--secret-file (SIMLOOKUP_SECRET_FILE)"},
		{"missing secret file", nil, []string{"sign", "--secret-file", f + ".nope", "a=1"}, "--secret-file (SIMLOOKUP_SECRET_FILE)"},
		{"no params", map[string]string{"SIMLOOKUP_SECRET": "x"}, []string{"sign"}, "key=value"},
		{"not key=value", map[string]string{"SIMLOOKUP_SECRET": "x"}, []string{"sign", "appkey"}, "key=value"},
		{"repeated key", map[string]string{"SIMLOOKUP_SECRET": "x"}, []string{"sign", "a=1", "a=2"}, "twice"},
		{"no secret flag", nil, []string{"sign", "--secret", "x", "a=1"}, "--secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := cmdRun{env: tt.env}.run(t, tt.args...)
			wantCode(t, r, exitUsage)
			if !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("stderr %q does not mention %q", r.stderr, tt.want)
			}
			if r.stdout != "" {
				t.Fatalf("stdout %q, want nothing", r.stdout)
			}
		})
	}
}

func TestMaskAppKey(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"": "", "abc": "***", "000001": "**0001", "abcdefgh": "****efgh"} {
		if got := maskAppKey(in); got != want {
			t.Errorf("maskAppKey(%q) = %q, want %q", in, got, want)
		}
	}
}
