package sign

import (
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// ErrUnsupportedValue is wrapped by the error for a parameter value of a
// type the algorithm does not define (a map, a struct, a non-empty slice…),
// and for a NaN or infinite float.
var ErrUnsupportedValue = errors.New("sign: unsupported parameter value")

// ErrInvalidKey is wrapped by the error for an empty parameter name or one
// containing '=' or '&'.
var ErrInvalidKey = errors.New("sign: invalid parameter name")

// Params are the request parameters to sign, by name. Values may be string,
// any Go integer type, float32/float64, bool or json.Number; nil, "" and an
// empty slice are left out. The "sign" parameter itself is always left out.
type Params map[string]any

// SignKey is the name of the parameter that carries the signature; it is
// never part of the signed string.
const SignKey = "sign"

// AppKeyKey is the parameter that notifications leave out of their signature.
const AppKeyKey = "appkey"

// Canonical returns the "k=v&k=v…" string of p, sorted and with empty values
// and "sign" left out — the signed string without "&secret=…".
func Canonical(p Params) (string, error) {
	return canonical(p, "")
}

func canonical(p Params, drop string) (string, error) {
	type kv struct{ k, v string }
	pairs := make([]kv, 0, len(p))
	for k, raw := range p {
		if k == SignKey || (drop != "" && k == drop) {
			continue
		}
		if k == "" || strings.ContainsAny(k, "=&") {
			return "", fmt.Errorf("%w: %q", ErrInvalidKey, k)
		}
		v, ok, err := formatValue(raw)
		if err != nil {
			return "", fmt.Errorf("parameter %q: %w", k, err)
		}
		if !ok {
			continue
		}
		pairs = append(pairs, kv{k, v})
	}
	// Byte-wise order: Go compares strings by bytes, so "Z" < "a".
	slices.SortFunc(pairs, func(a, b kv) int { return strings.Compare(a.k, b.k) })
	var sb strings.Builder
	for i, e := range pairs {
		if i > 0 {
			sb.WriteByte('&')
		}
		sb.WriteString(e.k)
		sb.WriteByte('=')
		sb.WriteString(e.v)
	}
	return sb.String(), nil
}

// formatValue renders one value; ok is false for an empty value that is
// left out of the signature.
func formatValue(v any) (s string, ok bool, err error) {
	switch x := v.(type) {
	case nil:
		return "", false, nil
	case string:
		return x, x != "", nil
	case json.Number:
		return string(x), x != "", nil
	case bool:
		return strconv.FormatBool(x), true, nil
	case int:
		return strconv.FormatInt(int64(x), 10), true, nil
	case int8:
		return strconv.FormatInt(int64(x), 10), true, nil
	case int16:
		return strconv.FormatInt(int64(x), 10), true, nil
	case int32:
		return strconv.FormatInt(int64(x), 10), true, nil
	case int64:
		return strconv.FormatInt(x, 10), true, nil
	case uint:
		return strconv.FormatUint(uint64(x), 10), true, nil
	case uint8:
		return strconv.FormatUint(uint64(x), 10), true, nil
	case uint16:
		return strconv.FormatUint(uint64(x), 10), true, nil
	case uint32:
		return strconv.FormatUint(uint64(x), 10), true, nil
	case uint64:
		return strconv.FormatUint(x, 10), true, nil
	case uintptr:
		return strconv.FormatUint(uint64(x), 10), true, nil
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return "", false, fmt.Errorf("%w: %v", ErrUnsupportedValue, x)
		}
		return strconv.FormatFloat(float64(x), 'f', -1, 32), true, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return "", false, fmt.Errorf("%w: %v", ErrUnsupportedValue, x)
		}
		return strconv.FormatFloat(x, 'f', -1, 64), true, nil
	}
	// An empty slice or array (of any element type) is an empty value.
	if rv := reflect.ValueOf(v); (rv.Kind() == reflect.Slice || rv.Kind() == reflect.Array) && rv.Len() == 0 {
		return "", false, nil
	}
	return "", false, fmt.Errorf("%w: type %T", ErrUnsupportedValue, v)
}

func digest(canon string, secret Secret) string {
	h := sha1.New()
	h.Write([]byte(canon))
	h.Write([]byte("&secret="))
	h.Write([]byte(secret.Reveal()))
	var sum [sha1.Size]byte
	return strings.ToUpper(hex.EncodeToString(h.Sum(sum[:0])))
}

// Sign returns the signature of p: SHA-1 of Canonical(p)+"&secret="+secret,
// as 40 upper-case hex digits.
func Sign(p Params, secret Secret) (string, error) {
	c, err := canonical(p, "")
	if err != nil {
		return "", err
	}
	return digest(c, secret), nil
}

// Explain returns the string that Sign hashes, with the secret masked:
// Canonical(p)+"&secret=****". It is safe to print and log.
func Explain(p Params) (string, error) {
	c, err := canonical(p, "")
	if err != nil {
		return "", err
	}
	return c + "&secret=****", nil
}

// Verify reports whether sig is the signature of p under secret. The
// comparison takes constant time; sig must be upper-case hex, as the vendor
// writes it. An error means p cannot be signed at all.
func Verify(p Params, sig string, secret Secret) (bool, error) {
	want, err := Sign(p, secret)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(sig)) == 1, nil
}

// SignNotification signs a vendor notification: as [Sign], but "appkey"
// is left out.
func SignNotification(p Params, secret Secret) (string, error) {
	c, err := canonical(p, AppKeyKey)
	if err != nil {
		return "", err
	}
	return digest(c, secret), nil
}

// VerifyNotification checks the signature of a vendor notification (see
// [SignNotification]) in constant time.
func VerifyNotification(p Params, sig string, secret Secret) (bool, error) {
	want, err := SignNotification(p, secret)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(sig)) == 1, nil
}

// ParseParams turns "key=value" arguments (as typed on a command line) into
// Params with string values, split at the first '='. A repeated key or an
// argument without '=' is an error.
func ParseParams(args []string) (Params, error) {
	p := make(Params, len(args))
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return nil, fmt.Errorf("sign: %q is not key=value", a)
		}
		if k == "" || strings.Contains(k, "&") {
			return nil, fmt.Errorf("%w: %q", ErrInvalidKey, k)
		}
		if _, dup := p[k]; dup {
			return nil, fmt.Errorf("sign: parameter %q given twice", k)
		}
		p[k] = v
	}
	return p, nil
}
