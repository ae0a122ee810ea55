package eiot

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/simlookup/simlookup/sign"
)

// Nonce range of the vendor (inclusive).
const (
	NonceMin = 10000
	NonceMax = 99999
)

// Client calls getCardsInfo. It is safe for concurrent use; one Client per
// process is enough (it pools connections).
type Client struct {
	cfg    Config
	url    string
	secret atomic.Pointer[sign.Secret]
	k      classifier
	log    *slog.Logger
}

// New validates cfg, applies its defaults and returns a Client.
func New(cfg Config) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	u, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, url: u.String(), log: cfg.Logger.With("component", "eiot")}
	s := cfg.Secret
	c.secret.Store(&s)
	c.k = classifier{
		retryable: setOf(cfg.RetryableCodes),
		systemic:  setOf(cfg.SystemicCodes),
		replay:    cfg.ReplayCode,
		loc:       cfg.Location,
		now:       cfg.Now,
		scrub:     c.scrub,
	}
	return c, nil
}

// URL is the full endpoint URL the client posts to.
func (c *Client) URL() string { return c.url }

// SetSecret replaces the signing secret for the following lookups (e.g.
// after the secret file was re-read). Safe to call concurrently with
// Lookup. A zero secret is ignored.
func (c *Client) SetSecret(s sign.Secret) {
	if s.IsZero() {
		c.log.Warn("ignoring an empty secret")
		return
	}
	c.secret.Store(&s)
}

type requestBody struct {
	AppKey    string `json:"appkey"`
	Timestamp int64  `json:"timestamp"`
	Nonce     int64  `json:"nonce"`
	ICCID     string `json:"iccid"`
	Sign      string `json:"sign"`
}

func newNonce() (int64, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(NonceMax-NonceMin+1))
	if err != nil {
		return 0, err
	}
	return NonceMin + n.Int64(), nil
}

// Lookup makes one signed attempt to fetch the card with this ICCID (sent
// as given; the caller normalises it). It returns the decoded Response, or
// an *Error (see the package doc for the outcomes; for vendor codes and
// no_data the Response is returned as well). If ctx is done before the
// answer, it returns ctx.Err() wrapped instead of an *Error.
func (c *Client) Lookup(ctx context.Context, iccid string) (*Response, error) {
	if iccid == "" {
		return nil, &Error{Class: ClassPermanent, Kind: KindInvalidRequest, Message: "empty ICCID"}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("eiot: lookup %s: %w", iccid, err)
	}
	nonce, err := newNonce()
	if err != nil {
		return nil, &Error{Class: ClassRetryable, Kind: KindTransport, Message: "no random nonce", Err: err}
	}
	b := requestBody{AppKey: c.cfg.AppKey, Timestamp: c.cfg.Now().Unix(), Nonce: nonce, ICCID: iccid}
	b.Sign, err = sign.Sign(sign.Params{"appkey": b.AppKey, "timestamp": b.Timestamp, "nonce": b.Nonce, "iccid": b.ICCID}, *c.secret.Load())
	if err != nil {
		return nil, &Error{Class: ClassPermanent, Kind: KindInvalidRequest, Message: "cannot sign", Err: err}
	}
	body, err := json.Marshal(b)
	if err != nil {
		return nil, &Error{Class: ClassPermanent, Kind: KindInvalidRequest, Message: "cannot encode", Err: err}
	}

	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, &Error{Class: ClassSystemic, Kind: KindTransport, Message: "cannot build request", Err: err}
	}
	req.Header.Set("Content-Type", "application/json;charset=utf-8")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.cfg.UserAgent)

	start := time.Now()
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, c.attemptErr(ctx, actx, iccid, 0, err, start)
	}
	defer resp.Body.Close()
	limit := c.cfg.MaxResponseBytes
	raw, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, c.attemptErr(ctx, actx, iccid, resp.StatusCode, err, start)
	}
	fetchedAt := c.cfg.Now()
	status := resp.StatusCode
	if int64(len(raw)) > limit {
		raw = raw[:limit]
		if status >= 200 && status <= 299 {
			e := &Error{Class: ClassRetryable, Kind: KindTooLarge, HTTPStatus: status, Raw: raw,
				Message: fmt.Sprintf("response body over %d bytes", limit)}
			c.logAttempt(ctx, iccid, start, e)
			return nil, e
		}
	}
	r, e := c.k.classify(status, resp.Header, raw, fetchedAt)
	c.logAttempt(ctx, iccid, start, e)
	if e != nil {
		return r, e
	}
	return r, nil
}

// attemptErr classifies an error without a complete response.
func (c *Client) attemptErr(ctx, actx context.Context, iccid string, status int, err error, start time.Time) error {
	if ctx.Err() != nil {
		return fmt.Errorf("eiot: lookup %s: %w", iccid, ctx.Err())
	}
	e := &Error{Class: ClassRetryable, Kind: KindTransport, HTTPStatus: status, Message: "request failed", Err: err}
	var ne net.Error
	if isCertificateError(err) {
		// Retrying cannot help and the card is not at fault: the deployment
		// trusts the wrong CA or talks to the wrong host.
		e.Class, e.Kind = ClassSystemic, KindTLS
		e.Message = "the vendor's TLS certificate is not trusted (check --api-url and the system's CA certificates)"
	} else if errors.Is(actx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		e.Kind = KindTimeout
		e.Message = fmt.Sprintf("no answer within %v", c.cfg.Timeout)
	}
	c.logAttempt(ctx, iccid, start, e)
	return e
}

// isCertificateError reports whether err is a failed verification of the
// server's certificate chain or name.
func isCertificateError(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid)
}

func (c *Client) logAttempt(ctx context.Context, iccid string, start time.Time, e *Error) {
	if !c.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs := []any{"iccid", iccid, "duration", time.Since(start)}
	if e != nil {
		attrs = append(attrs, "class", e.Class.String(), "kind", e.Kind, "http_status", e.HTTPStatus, "code", e.Code)
	}
	c.log.DebugContext(ctx, "eiot attempt", attrs...)
}

// scrub hides the appkey if the vendor echoes it in a message.
func (c *Client) scrub(s string) string {
	k := c.cfg.AppKey
	if len(k) < 4 || !strings.Contains(s, k) {
		return s
	}
	return strings.ReplaceAll(s, k, MaskAppKey(k))
}

// MaskAppKey shortens an appkey for logs: its first two characters and "***".
func MaskAppKey(k string) string {
	if len(k) <= 2 {
		return "***"
	}
	return k[:2] + "***"
}
