package sign

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// Redacted is what a [Secret] shows instead of its value.
const Redacted = "[REDACTED]"

// ErrEmptySecret is returned by [ReadSecretFile] for a file that holds
// nothing but white space.
var ErrEmptySecret = errors.New("sign: secret is empty")

// Secret is the vendor's signing secret. It never prints itself: String,
// GoString, every fmt verb, slog (LogValue), MarshalJSON and MarshalText all
// give "[REDACTED]". The zero value is the empty secret (see IsZero).
// A Secret is an immutable value, safe to copy and to share.
type Secret struct {
	// p points at the value, so that even fmt's reflection over a struct
	// holding a Secret in an unexported field (where it cannot call Format)
	// prints an address, never the value.
	p *string
}

// NewSecret wraps s as a Secret. s is used exactly as given (no trimming).
func NewSecret(s string) Secret {
	if s == "" {
		return Secret{}
	}
	return Secret{p: &s}
}

// ReadSecretFile reads a secret from a file, trimming trailing white space
// (the newline most editors add). A missing or unreadable file, or one that
// is empty after trimming, is an error naming the path (never the content).
func ReadSecretFile(path string) (Secret, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Secret{}, fmt.Errorf("sign: read secret file: %w", err)
	}
	s := strings.TrimRight(string(b), " \t\r\n")
	if s == "" {
		return Secret{}, fmt.Errorf("secret file %s: %w", path, ErrEmptySecret)
	}
	return NewSecret(s), nil
}

// Reveal returns the secret's value. Use it only to compute a signature.
func (s Secret) Reveal() string {
	if s.p == nil {
		return ""
	}
	return *s.p
}

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.p == nil || *s.p == "" }

// Equal reports whether two secrets hold the same value (in constant time).
func (s Secret) Equal(o Secret) bool {
	return subtle.ConstantTimeCompare([]byte(s.Reveal()), []byte(o.Reveal())) == 1
}

// String returns "[REDACTED]".
func (s Secret) String() string { return Redacted }

// GoString returns "[REDACTED]" (for %#v).
func (s Secret) GoString() string { return Redacted }

// Format writes "[REDACTED]" for every fmt verb and flag.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, Redacted) }

// LogValue makes slog log "[REDACTED]".
func (s Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON encodes the secret as the JSON string "[REDACTED]".
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText encodes the secret as "[REDACTED]".
func (s Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

var (
	_ fmt.Stringer   = Secret{}
	_ fmt.GoStringer = Secret{}
	_ fmt.Formatter  = Secret{}
	_ slog.LogValuer = Secret{}
)
