package eiot

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	_ "time/tzdata" // Asia/Shanghai must load in a scratch container.

	"github.com/simlookup/simlookup/internal/buildinfo"
	"github.com/simlookup/simlookup/sign"
)

// Path is the getCardsInfo endpoint, appended to Config.BaseURL.
const Path = "/api/v3/card/getCardsInfo"

// Defaults.
const (
	DefaultBaseURL                = "https://oapi.eiotclub.com"
	DefaultTimeout                = 10 * time.Second
	DefaultMaxResponseBytes int64 = 1 << 20
	DefaultLocation               = "Asia/Shanghai"
	// DefaultMaxIdleConnsPerHost sizes the default transport's idle pool for
	// many concurrent lookups against one host.
	DefaultMaxIdleConnsPerHost = 256
)

// Default vendor code sets: the codes of the fake vendor API (eiottest).
var (
	// DefaultRetryableCodes: "10007" system busy.
	DefaultRetryableCodes = []string{"10007"}
	// DefaultSystemicCodes: "10002" appkey refused, "10003" signature
	// refused, "10004" timestamp out of range (clock), "10005" nonce refused.
	DefaultSystemicCodes = []string{"10002", "10003", "10004", "10005"}
	// DefaultReplayCode: "10006" the timestamp+nonce was seen before.
	DefaultReplayCode = "10006"
)

// Config configures a [Client]. The zero value of each optional field gives
// the default documented on it.
type Config struct {
	// BaseURL is the vendor's base URL, http or https; Path is appended.
	// Defaults to DefaultBaseURL.
	BaseURL string
	// AppKey identifies the application to the vendor. Required.
	AppKey string
	// Secret signs each request. Required; replace it with Client.SetSecret.
	Secret sign.Secret
	// Timeout bounds one attempt, from sending to the last body byte.
	// Defaults to 10s.
	Timeout time.Duration
	// MaxResponseBytes caps the response body; a larger body is an error
	// (KindTooLarge). Defaults to 1 MiB.
	MaxResponseBytes int64
	// Location is the zone of the vendor's dates. Defaults to Asia/Shanghai.
	Location *time.Location
	// RetryableCodes are vendor codes that mean "try again".
	// nil defaults to DefaultRetryableCodes; an empty non-nil slice means none.
	RetryableCodes []string
	// SystemicCodes are vendor codes that mean the deployment is wrong
	// (credentials, signature, clock). nil defaults to DefaultSystemicCodes.
	SystemicCodes []string
	// ReplayCode is the vendor code for a replayed timestamp+nonce.
	// "" defaults to DefaultReplayCode.
	ReplayCode string
	// HTTPClient sends the requests. Defaults to a client of its own with TLS
	// verification on, keep-alive, DefaultMaxIdleConnsPerHost idle
	// connections per host, and no redirects followed. Its Timeout, if set,
	// applies in addition to Timeout.
	HTTPClient *http.Client
	// UserAgent is sent on every request. Defaults to buildinfo.UserAgent()
	// ("simlookup/<version>").
	UserAgent string
	// Logger receives a debug line per attempt (never the secret).
	// Defaults to discarding.
	Logger *slog.Logger
	// Now is the clock used for timestamps and FetchedAt. Defaults to time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() (Config, error) {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxResponseBytes == 0 {
		c.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if c.Location == nil {
		loc, err := time.LoadLocation(DefaultLocation)
		if err != nil {
			return c, fmt.Errorf("eiot: load %s: %w", DefaultLocation, err)
		}
		c.Location = loc
	}
	if c.RetryableCodes == nil {
		c.RetryableCodes = DefaultRetryableCodes
	}
	if c.SystemicCodes == nil {
		c.SystemicCodes = DefaultSystemicCodes
	}
	if c.ReplayCode == "" {
		c.ReplayCode = DefaultReplayCode
	}
	if c.HTTPClient == nil {
		c.HTTPClient = NewHTTPClient()
	}
	if c.UserAgent == "" {
		c.UserAgent = buildinfo.UserAgent()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// ErrConfig is wrapped by every configuration error from New.
var ErrConfig = errors.New("eiot: invalid config")

func (c Config) validate() (*url.URL, error) {
	u, err := url.Parse(c.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("%w: BaseURL %q: %v", ErrConfig, c.BaseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%w: BaseURL %q: scheme must be http or https", ErrConfig, c.BaseURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%w: BaseURL %q: no host", ErrConfig, c.BaseURL)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w: BaseURL %q: must not carry user info, a query or a fragment", ErrConfig, c.BaseURL)
	}
	if strings.TrimSpace(c.AppKey) == "" {
		return nil, fmt.Errorf("%w: AppKey is required", ErrConfig)
	}
	if c.Secret.IsZero() {
		return nil, fmt.Errorf("%w: Secret is required", ErrConfig)
	}
	if c.Timeout < 0 {
		return nil, fmt.Errorf("%w: Timeout %v is negative", ErrConfig, c.Timeout)
	}
	if c.MaxResponseBytes < 0 {
		return nil, fmt.Errorf("%w: MaxResponseBytes %d is negative", ErrConfig, c.MaxResponseBytes)
	}
	u.Path = strings.TrimRight(u.Path, "/") + Path
	u.RawPath = ""
	return u, nil
}

// NewHTTPClient returns the default HTTP client: TLS verification on,
// HTTP keep-alive, HTTP/2 when offered, DefaultMaxIdleConnsPerHost idle
// connections per host, proxies from the environment, and redirects not
// followed (a redirect means the base URL is wrong; Lookup reports it as
// systemic).
func NewHTTPClient() *http.Client {
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          2 * DefaultMaxIdleConnsPerHost,
		MaxIdleConnsPerHost:   DefaultMaxIdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
