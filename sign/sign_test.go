package sign_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/simlookup/simlookup/sign"
)

// The vendor's worked example (NOTES.md).
var (
	exampleParams = sign.Params{
		"appkey": "000001", "timestamp": 1556595508, "nonce": 24523,
		"userName": "wx", "age": 24, "sex": 1,
	}
	exampleSecret    = sign.NewSecret("a1b1c1d1")
	exampleCanonical = "age=24&appkey=000001&nonce=24523&sex=1&timestamp=1556595508&userName=wx"
	exampleSign      = "963A56BAEBED746F2746E4D9B3B77BE0F2E171E7"
)

func TestVendorWorkedExample(t *testing.T) {
	t.Parallel()
	c, err := sign.Canonical(exampleParams)
	if err != nil {
		t.Fatal(err)
	}
	if c != exampleCanonical {
		t.Fatalf("canonical:\n got %s\nwant %s", c, exampleCanonical)
	}
	got, err := sign.Sign(exampleParams, exampleSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got != exampleSign {
		t.Fatalf("sign = %s, want %s", got, exampleSign)
	}
	// The same parameters given as strings (as on a command line) sign the same.
	strs := sign.Params{}
	for k, v := range exampleParams {
		strs[k] = fmt.Sprint(v)
	}
	if got2, _ := sign.Sign(strs, exampleSecret); got2 != exampleSign {
		t.Fatalf("string params sign = %s, want %s", got2, exampleSign)
	}
	// A json.Number (a body decoded with UseNumber) signs as its digits.
	nums := sign.Params{"appkey": "000001", "timestamp": json.Number("1556595508"), "nonce": json.Number("24523"),
		"userName": "wx", "age": json.Number("24"), "sex": json.Number("1")}
	if got3, _ := sign.Sign(nums, exampleSecret); got3 != exampleSign {
		t.Fatalf("json.Number params sign = %s, want %s", got3, exampleSign)
	}
	ok, err := sign.Verify(exampleParams, exampleSign, exampleSecret)
	if err != nil || !ok {
		t.Fatalf("Verify = %v, %v", ok, err)
	}
	ex, _ := sign.Explain(exampleParams)
	if want := exampleCanonical + "&secret=****"; ex != want {
		t.Fatalf("Explain = %s, want %s", ex, want)
	}
}

func TestSignParamIsIgnored(t *testing.T) {
	t.Parallel()
	p := sign.Params{"sign": "WHATEVER"}
	for k, v := range exampleParams {
		p[k] = v
	}
	got, err := sign.Sign(p, exampleSecret)
	if err != nil || got != exampleSign {
		t.Fatalf("Sign with a sign param = %s, %v", got, err)
	}
	ok, _ := sign.Verify(p, exampleSign, exampleSecret)
	if !ok {
		t.Fatal("Verify with the sign param present failed")
	}
}

func TestOrderIndependence(t *testing.T) {
	t.Parallel()
	keys := []string{"userName", "sex", "nonce", "timestamp", "appkey", "age"}
	want, _ := sign.Canonical(exampleParams)
	// Build the map in every rotation and reversal of insertion order.
	for r := range keys {
		for _, rev := range []bool{false, true} {
			p := sign.Params{}
			for i := range keys {
				j := (i + r) % len(keys)
				if rev {
					j = len(keys) - 1 - j
				}
				p[keys[j]] = exampleParams[keys[j]]
			}
			if got, _ := sign.Canonical(p); got != want {
				t.Fatalf("rotation %d rev %v: %s", r, rev, got)
			}
		}
	}
}

func TestEmptyValuesSkipped(t *testing.T) {
	t.Parallel()
	p := sign.Params{"b": "2", "a": "1", "empty": "", "nil": nil, "slice": []string{}, "anys": []any{}, "num": json.Number("")}
	got, err := sign.Canonical(p)
	if err != nil {
		t.Fatal(err)
	}
	if got != "a=1&b=2" {
		t.Fatalf("canonical = %q", got)
	}
	s1, _ := sign.Sign(p, exampleSecret)
	s2, _ := sign.Sign(sign.Params{"a": "1", "b": "2"}, exampleSecret)
	if s1 != s2 {
		t.Fatal("empty values changed the signature")
	}
	// Zero is not empty.
	if got, _ := sign.Canonical(sign.Params{"z": 0, "f": false}); got != "f=false&z=0" {
		t.Fatalf("zero values: %q", got)
	}
}

func TestUpperCaseSortsFirst(t *testing.T) {
	t.Parallel()
	got, _ := sign.Canonical(sign.Params{"a": "1", "B": "2", "Z": "3", "b": "4", "_": "5", "A1": "6"})
	if want := "A1=6&B=2&Z=3&_=5&a=1&b=4"; got != want {
		t.Fatalf("canonical = %q, want %q", got, want)
	}
}

func TestIntegerTypes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		v    any
		want string
	}{
		{int(-7), "-7"}, {int8(-128), "-128"}, {int16(32767), "32767"}, {int32(-2147483648), "-2147483648"},
		{int64(math.MaxInt64), "9223372036854775807"}, {uint(7), "7"}, {uint8(255), "255"}, {uint16(65535), "65535"},
		{uint32(4294967295), "4294967295"}, {uint64(math.MaxUint64), "18446744073709551615"}, {uintptr(9), "9"},
		{true, "true"}, {false, "false"},
	}
	for _, c := range cases {
		got, err := sign.Canonical(sign.Params{"v": c.v})
		if err != nil {
			t.Fatalf("%T: %v", c.v, err)
		}
		if got != "v="+c.want {
			t.Errorf("%T(%v) = %q, want v=%s", c.v, c.v, got, c.want)
		}
	}
}

func TestFloatsNoExponent(t *testing.T) {
	t.Parallel()
	cases := []struct {
		v    any
		want string
	}{
		{1e21, "1000000000000000000000"}, {0.0000001, "0.0000001"}, {402.77, "402.77"}, {410.0, "410"},
		{-1.5, "-1.5"}, {float32(0.1), "0.1"}, {float32(1e21), "1000000000000000000000"}, {0.0, "0"},
	}
	for _, c := range cases {
		got, err := sign.Canonical(sign.Params{"v": c.v})
		if err != nil {
			t.Fatalf("%v: %v", c.v, err)
		}
		if got != "v="+c.want {
			t.Errorf("%T(%v) = %q, want v=%s", c.v, c.v, got, c.want)
		}
		if strings.ContainsAny(got, "eE") {
			t.Errorf("%v rendered with an exponent: %s", c.v, got)
		}
	}
	for _, bad := range []any{math.NaN(), math.Inf(1), float32(math.Inf(-1))} {
		if _, err := sign.Sign(sign.Params{"v": bad}, exampleSecret); !errors.Is(err, sign.ErrUnsupportedValue) {
			t.Errorf("%v: err = %v, want ErrUnsupportedValue", bad, err)
		}
	}
}

func TestUnsupportedValues(t *testing.T) {
	t.Parallel()
	type named string
	for _, bad := range []any{map[string]any{}, struct{}{}, []string{"x"}, []int{1}, named("x"), &struct{}{}, complex(1, 2), [1]int{1}} {
		_, err := sign.Sign(sign.Params{"v": bad}, exampleSecret)
		if !errors.Is(err, sign.ErrUnsupportedValue) {
			t.Errorf("%T: err = %v, want ErrUnsupportedValue", bad, err)
		}
		if ok, err := sign.Verify(sign.Params{"v": bad}, exampleSign, exampleSecret); ok || err == nil {
			t.Errorf("Verify %T = %v, %v", bad, ok, err)
		}
	}
	for _, k := range []string{"", "a=b", "a&b"} {
		if _, err := sign.Canonical(sign.Params{k: "1"}); !errors.Is(err, sign.ErrInvalidKey) {
			t.Errorf("key %q: err = %v, want ErrInvalidKey", k, err)
		}
	}
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	for _, sig := range []string{"", strings.ToLower(exampleSign), exampleSign[:39], exampleSign + "0", "963A56BAEBED746F2746E4D9B3B77BE0F2E171E8"} {
		if ok, err := sign.Verify(exampleParams, sig, exampleSecret); ok || err != nil {
			t.Errorf("Verify(%q) = %v, %v", sig, ok, err)
		}
	}
	if ok, _ := sign.Verify(exampleParams, exampleSign, sign.NewSecret("a1b1c1d2")); ok {
		t.Error("verified under the wrong secret")
	}
}

func TestNotification(t *testing.T) {
	t.Parallel()
	withoutAppKey := sign.Params{}
	for k, v := range exampleParams {
		if k != "appkey" {
			withoutAppKey[k] = v
		}
	}
	want, _ := sign.Sign(withoutAppKey, exampleSecret)
	got, err := sign.SignNotification(exampleParams, exampleSecret)
	if err != nil || got != want {
		t.Fatalf("SignNotification = %s, %v; want %s", got, err, want)
	}
	if got == exampleSign {
		t.Fatal("notification signature must differ from the request signature")
	}
	if ok, _ := sign.VerifyNotification(exampleParams, got, exampleSecret); !ok {
		t.Fatal("VerifyNotification failed")
	}
	if ok, _ := sign.VerifyNotification(exampleParams, exampleSign, exampleSecret); ok {
		t.Fatal("VerifyNotification accepted a request signature")
	}
}

func TestSecretNeverPrints(t *testing.T) {
	t.Parallel()
	const raw = "s3cr3t-value"
	s := sign.NewSecret(raw)
	if s.Reveal() != raw || s.IsZero() || !sign.NewSecret("").IsZero() || !(sign.Secret{}).IsZero() || (sign.Secret{}).Reveal() != "" {
		t.Fatal("Reveal/IsZero")
	}
	if !s.Equal(sign.NewSecret(raw)) || s.Equal(sign.NewSecret("other")) {
		t.Fatal("Equal")
	}
	type holder struct {
		Secret sign.Secret
		P      *sign.Secret
		hidden sign.Secret // fmt cannot call methods on an unexported field
		nested struct{ s sign.Secret }
	}
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s", "%T"} {
		outs = append(outs, fmt.Sprintf(verb, s), fmt.Sprintf(verb, holder{s, &s, s, struct{ s sign.Secret }{s}}), fmt.Sprintf(verb, []sign.Secret{s}))
	}
	outs = append(outs, s.String(), s.GoString(), fmt.Sprint(s), fmt.Sprintln(s), fmt.Sprint(&s))
	j, err := json.Marshal(holder{s, &s, s, struct{ s sign.Secret }{s}})
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(j))
	txt, _ := s.MarshalText()
	outs = append(outs, string(txt))
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&buf, nil), slog.NewJSONHandler(&buf, nil)} {
		l := slog.New(h)
		l.Info("x", "secret", s, "ptr", &s, slog.Any("any", s), slog.Group("g", "s", s), "holder", holder{s, &s, s, struct{ s sign.Secret }{s}})
	}
	outs = append(outs, buf.String())
	for _, o := range outs {
		if strings.Contains(o, raw) || strings.Contains(o, fmt.Sprintf("%x", raw)) {
			t.Fatalf("secret leaked: %s", o)
		}
	}
	if !strings.Contains(string(j), sign.Redacted) || !strings.Contains(buf.String(), sign.Redacted) {
		t.Fatalf("expected %s in %s / %s", sign.Redacted, j, buf.String())
	}
}

func TestReadSecretFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	s, err := sign.ReadSecretFile(write("ok", "a1b1c1d1\r\n \n"))
	if err != nil || s.Reveal() != "a1b1c1d1" {
		t.Fatalf("ReadSecretFile = %q, %v", s.Reveal(), err)
	}
	if _, err := sign.ReadSecretFile(write("empty", " \n\n")); !errors.Is(err, sign.ErrEmptySecret) {
		t.Fatalf("empty file: %v", err)
	}
	_, err = sign.ReadSecretFile(filepath.Join(dir, "missing"))
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestParseParams(t *testing.T) {
	t.Parallel()
	p, err := sign.ParseParams([]string{"appkey=000001", "timestamp=1556595508", "nonce=24523", "userName=wx", "age=24", "sex=1", "eq=a=b"})
	if err != nil {
		t.Fatal(err)
	}
	if p["eq"] != "a=b" {
		t.Fatalf("eq = %v", p["eq"])
	}
	delete(p, "eq")
	if got, _ := sign.Sign(p, exampleSecret); got != exampleSign {
		t.Fatalf("sign = %s", got)
	}
	for _, bad := range [][]string{{"novalue"}, {"=x"}, {"a=1", "a=2"}} {
		if _, err := sign.ParseParams(bad); err == nil {
			t.Errorf("ParseParams(%q) succeeded", bad)
		}
	}
}

func FuzzSign(f *testing.F) {
	f.Add("appkey", "000001", "iccid", "89852240400014306175", int64(1556595508), "a1b1c1d1", uint8(0))
	f.Add("userName", "wx", "age", "24", int64(24523), "s", uint8(1))
	f.Add("A", "", "a", "x&y=z", int64(-1), "", uint8(2))
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string, n int64, secret string, which uint8) {
		p := sign.Params{k1: v1, k2: v2, "nonce": n}
		sec := sign.NewSecret(secret)
		sig, err := sign.Sign(p, sec)
		if err != nil {
			if !errors.Is(err, sign.ErrInvalidKey) {
				t.Fatalf("unexpected error: %v", err)
			}
			return
		}
		if len(sig) != 40 || strings.ToUpper(sig) != sig {
			t.Fatalf("bad signature format %q", sig)
		}
		if ok, err := sign.Verify(p, sig, sec); !ok || err != nil {
			t.Fatalf("own signature does not verify: %v", err)
		}
		// Mutate exactly one thing that takes part in the signature.
		q := sign.Params{}
		for k, v := range p {
			q[k] = v
		}
		sec2 := sec
		switch which % 3 {
		case 0: // a value
			k := k1
			if v, _ := q[k].(string); k == "sign" || v == "" {
				q["nonce"] = n ^ 1
			} else {
				q[k] = v + "x"
			}
		case 1: // a key
			k := k1
			if v, _ := q[k].(string); k == "sign" || v == "" {
				k = "nonce"
			}
			nk := k + "_"
			for q[nk] != nil {
				nk += "_"
			}
			q[nk] = q[k]
			delete(q, k)
			if nk == "sign" {
				return
			}
		case 2: // the secret
			sec2 = sign.NewSecret(secret + "x")
		}
		if ok, _ := sign.Verify(q, sig, sec2); ok {
			t.Fatalf("mutation %d still verifies: %v -> %v", which%3, p, q)
		}
	})
}

func BenchmarkSign(b *testing.B) {
	p := sign.Params{"appkey": "000001", "timestamp": int64(1556595508), "nonce": 24523, "iccid": "89852240400014306175"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sign.Sign(p, exampleSecret); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	p := sign.Params{"appkey": "000001", "timestamp": int64(1556595508), "nonce": 24523, "iccid": "89852240400014306175"}
	sig, _ := sign.Sign(p, exampleSecret)
	b.ReportAllocs()
	for b.Loop() {
		if ok, _ := sign.Verify(p, sig, exampleSecret); !ok {
			b.Fatal("no")
		}
	}
}
