package worker

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseRequestValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body string
		want       Parsed
	}{
		{"bare", "89852240400014306175", Parsed{ICCID: "89852240400014306175", LuhnValid: false}},
		{"bare trimmed", " \t89852240400014306175\r\n", Parsed{ICCID: "89852240400014306175"}},
		{"luhn valid", "8901260882291234562", Parsed{ICCID: "8901260882291234562", LuhnValid: true}},
		{"trailing f", "8985224040001430617f", Parsed{ICCID: "8985224040001430617F"}},
		{"18 digits", "898522404000143061", Parsed{ICCID: "898522404000143061"}},
		{"22 digits", "8985224040001430617512", Parsed{ICCID: "8985224040001430617512", LuhnValid: true}},
		{"json", `{"iccid":" 89852240400014306175 ","request_id":"r1","job_id":"j1","meta":{"n":12345678901234567890,"s":"x"}}`,
			Parsed{ICCID: "89852240400014306175", RequestID: "r1", JobID: "j1"}},
		{"json extra fields ignored", `{"iccid":"89852240400014306175","lane":"x","request_id":null}`, Parsed{ICCID: "89852240400014306175"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequest([]byte(tt.body), 0)
			if err != nil {
				t.Fatalf("ParseRequest(%q): %v", tt.body, err)
			}
			if got.ICCID != tt.want.ICCID || got.LuhnValid != tt.want.LuhnValid || got.RequestID != tt.want.RequestID || got.JobID != tt.want.JobID {
				t.Errorf("ParseRequest(%q) = %+v, want %+v", tt.body, got, tt.want)
			}
		})
	}
	p, err := ParseRequest([]byte(tests[6].body), 0)
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := p.Meta["n"]; !ok || n.(interface{ String() string }).String() != "12345678901234567890" {
		t.Errorf("meta number not kept exactly: %#v", p.Meta)
	}
}

// badInputs are the refused inputs; the worker tests publish every one.
var badInputs = []struct {
	name, body, code string
}{
	{"empty", "", ReasonEmpty},
	{"whitespace", " \n\t ", ReasonEmpty},
	{"letters", "8985224040001430617A", ReasonBadChars},
	{"wildcard", "89.>", ReasonBadChars},
	{"subject star", "8985224040001430617*", ReasonBadChars},
	{"inner space", "8985224040 0014306175", ReasonBadChars},
	{"too short", "89852240400014", ReasonBadLength},
	{"too long", "898522404000143061751234", ReasonBadLength},
	{"only F", "F", ReasonBadChars},
	{"bad utf8", "8985\xff\xfe2240400014306175", ReasonBadUTF8},
	{"too large", strings.Repeat("8", DefaultMaxRequestBytes+1), ReasonTooLarge},
	{"bad json", `{"iccid": "89852240400014306175"`, ReasonBadJSON},
	{"json trailing data", `{"iccid": "89852240400014306175"}}`, ReasonBadJSON},
	{"missing iccid", `{"request_id": "r"}`, ReasonMissingICCID},
	{"null iccid", `{"iccid": null}`, ReasonMissingICCID},
	{"numeric iccid", `{"iccid": 89852240400014306175}`, ReasonICCIDNotString},
	{"object iccid", `{"iccid": {"v": "1"}}`, ReasonICCIDNotString},
	{"json array", `["89852240400014306175"]`, ReasonNotObject},
	{"json string", `"89852240400014306175"`, ReasonNotObject},
	{"json empty iccid", `{"iccid": "  "}`, ReasonEmpty},
	{"request id not string", `{"iccid": "89852240400014306175", "request_id": 7}`, ReasonBadRequestID},
	{"request id control char", `{"iccid": "89852240400014306175", "request_id": "a\r\nb"}`, ReasonBadRequestID},
	{"job id too long", `{"iccid": "89852240400014306175", "job_id": "` + strings.Repeat("j", MaxJobIDLen+1) + `"}`, ReasonBadJobID},
	{"meta not object", `{"iccid": "89852240400014306175", "meta": [1]}`, ReasonBadMeta},
	{"nul byte", "8985224040001430617\x00", ReasonBadChars},
}

func TestParseRequestInvalid(t *testing.T) {
	t.Parallel()
	for _, tt := range badInputs {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRequest([]byte(tt.body), 0)
			var ie *InvalidError
			if !errors.As(err, &ie) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseRequest(%.40q) = %v, want an *InvalidError", tt.body, err)
			}
			if ie.Code != tt.code {
				t.Errorf("code %q (%s), want %q", ie.Code, ie.Message, tt.code)
			}
			if ie.Message == "" || !utf8.ValidString(ie.Message) || len(ie.Message) > 200 {
				t.Errorf("message %q", ie.Message)
			}
		})
	}
}

func TestInputPreview(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 200) // 400 bytes
	got := *inputPreview([]byte(long))
	if !utf8.ValidString(got) || len(got) > 256+3 {
		t.Errorf("preview %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
	if got := *inputPreview([]byte("a\xffb")); got != "a\uFFFDb" {
		t.Errorf("preview %q", got)
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, tt := range badInputs {
		if len(tt.body) < 1024 {
			f.Add([]byte(tt.body))
		}
	}
	f.Add([]byte("89852240400014306175"))
	f.Add([]byte(`{"iccid":"8985224040001430617F","request_id":"x","meta":{"a":[1,2,{"b":null}]}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := ParseRequest(body, 4096)
		if err != nil {
			var ie *InvalidError
			if !errors.As(err, &ie) || ie.Code == "" {
				t.Fatalf("error %v is not an *InvalidError with a code", err)
			}
			return
		}
		if n := len(p.ICCID); n < MinICCIDLen || n > MaxICCIDLen {
			t.Fatalf("accepted ICCID %q of length %d", p.ICCID, n)
		}
		for i, c := range []byte(p.ICCID) {
			if !(c >= '0' && c <= '9' || c == 'F' && i == len(p.ICCID)-1) {
				t.Fatalf("accepted ICCID %q", p.ICCID)
			}
		}
		if len(p.RequestID) > MaxRequestIDLen || strings.ContainsAny(p.RequestID, "\r\n\x00") {
			t.Fatalf("accepted request id %q", p.RequestID)
		}
	})
}

func BenchmarkParseRequestBare(b *testing.B) {
	body := []byte("89852240400014306175\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRequest(body, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseRequestJSON(b *testing.B) {
	body := []byte(`{"iccid":"89852240400014306175","request_id":"job-1:000042","job_id":"job-1","meta":{"fleet":"north","n":3}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRequest(body, 0); err != nil {
			b.Fatal(err)
		}
	}
}
