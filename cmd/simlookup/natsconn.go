package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsFlags are the connection options every NATS-using command shares.
// Passwords and tokens come from the environment only.
type natsFlags struct {
	NATSURL      string `name:"nats-url" default:"nats://127.0.0.1:4222" placeholder:"URL[,URL...]" group:"NATS" help:"NATS server URLs, comma-separated."`
	NATSCreds    string `name:"nats-creds" type:"path" placeholder:"FILE" group:"NATS" help:"NATS credentials file (JWT + nkey seed)."`
	NATSNkey     string `name:"nats-nkey" type:"path" placeholder:"FILE" group:"NATS" help:"NATS nkey seed file."`
	NATSUser     string `name:"nats-user" placeholder:"USER" group:"NATS" help:"NATS user name; the password comes from SIMLOOKUP_NATS_PASSWORD."`
	NATSTLSCA    string `name:"tls-ca" type:"path" placeholder:"FILE" group:"NATS" help:"CA certificate(s) to verify the NATS server with (PEM)."`
	NATSTLSCert  string `name:"tls-cert" type:"path" placeholder:"FILE" group:"NATS" help:"Client certificate for NATS mutual TLS (PEM); needs --tls-key."`
	NATSTLSKey   string `name:"tls-key" type:"path" placeholder:"FILE" group:"NATS" help:"Client key for NATS mutual TLS (PEM); needs --tls-cert."`
	NATSConnName string `name:"nats-name" placeholder:"NAME" group:"NATS" help:"Connection name shown by the NATS server (default simlookup-<command>-<host>)."`
}

// validate refuses inconsistent NATS options before anything starts.
func (f *natsFlags) validate(getenv func(string) string) error {
	if strings.TrimSpace(f.NATSURL) == "" {
		return usagef("%s is empty: it needs at least one NATS server URL, e.g. nats://127.0.0.1:4222", flagRef("nats-url"))
	}
	for _, u := range splitList(f.NATSURL) {
		if !strings.Contains(u, "://") && strings.Contains(u, "/") {
			return usagef("%s: %q is not a NATS URL (want nats://HOST:PORT, tls://HOST:PORT or HOST:PORT)", flagRef("nats-url"), u)
		}
	}
	if f.NATSCreds != "" && f.NATSNkey != "" {
		return usagef("%s and %s are both set: choose one way to authenticate", flagRef("nats-creds"), flagRef("nats-nkey"))
	}
	pw, tok := getenv(envNATSPassword), getenv(envNATSToken)
	if pw != "" && f.NATSUser == "" {
		return usagef("%s is set but %s is not: the password needs a user name", envNATSPassword, flagRef("nats-user"))
	}
	if tok != "" && f.NATSUser != "" {
		return usagef("%s and %s are both set: choose a token or a user/password", envNATSToken, flagRef("nats-user"))
	}
	if (f.NATSTLSCert == "") != (f.NATSTLSKey == "") {
		return usagef("%s and %s go together: mutual TLS needs both the certificate and its key", flagRef("tls-cert"), flagRef("tls-key"))
	}
	for _, p := range []struct{ flag, path string }{
		{"nats-creds", f.NATSCreds}, {"nats-nkey", f.NATSNkey}, {"tls-ca", f.NATSTLSCA},
		{"tls-cert", f.NATSTLSCert}, {"tls-key", f.NATSTLSKey},
	} {
		if p.path == "" {
			continue
		}
		if _, err := os.Stat(p.path); err != nil {
			return usagef("%s: cannot read %s: %v", flagRef(p.flag), p.path, errors.Unwrap(err))
		}
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// reconnectDelay is exponential backoff with jitter: 250 ms doubling to 10 s.
func reconnectDelay(attempts int) time.Duration {
	d := 250 * time.Millisecond << min(attempts, 6)
	d = min(d, 10*time.Second)
	return d/2 + rand.N(d/2+1)
}

// connectOpts says how a command wants to connect.
type connectOpts struct {
	// wait: keep trying forever when the first connection fails (daemons);
	// otherwise fail at once (one-shot commands).
	wait bool
}

// connect opens a NATS connection that reconnects forever with backoff and
// logs disconnects and reconnects. For daemons (o.wait) it also waits for the
// first connection, saying so, until ctx ends.
func (f *natsFlags) connect(ctx context.Context, a *app, o connectOpts) (*nats.Conn, error) {
	log := a.log.With("component", "nats")
	name := f.NATSConnName
	if name == "" {
		host, _ := os.Hostname()
		name = "simlookup-" + strings.ReplaceAll(a.command, " ", "-") + "-" + host
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(reconnectDelay),
		nats.PingInterval(20 * time.Second),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil {
				log.Warn("disconnected from NATS; reconnecting", "err", err)
			} else if !nc.IsClosed() {
				log.Warn("disconnected from NATS; reconnecting")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("reconnected to NATS", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Warn("NATS error", "err", err, "subject", subj)
		}),
	}
	if o.wait {
		opts = append(opts, nats.RetryOnFailedConnect(true),
			nats.ConnectHandler(func(nc *nats.Conn) {
				log.Info("connected to NATS", "url", nc.ConnectedUrlRedacted())
			}))
	}
	if f.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(f.NATSCreds))
	}
	if f.NATSNkey != "" {
		opt, err := nats.NkeyOptionFromSeed(f.NATSNkey)
		if err != nil {
			return nil, usagef("%s: %v", flagRef("nats-nkey"), err)
		}
		opts = append(opts, opt)
	}
	if f.NATSUser != "" {
		opts = append(opts, nats.UserInfo(f.NATSUser, a.getenv(envNATSPassword)))
	}
	if tok := a.getenv(envNATSToken); tok != "" {
		opts = append(opts, nats.Token(tok))
	}
	if f.NATSTLSCA != "" {
		opts = append(opts, nats.RootCAs(f.NATSTLSCA))
	}
	if f.NATSTLSCert != "" {
		opts = append(opts, nats.ClientCert(f.NATSTLSCert, f.NATSTLSKey))
	}
	urls := strings.Join(splitList(f.NATSURL), ",")
	nc, err := nats.Connect(urls, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", urls, err)
	}
	if !o.wait || nc.IsConnected() {
		if !o.wait {
			log.Debug("connected to NATS", "url", nc.ConnectedUrlRedacted())
		}
		return nc, nil
	}
	log.Warn("NATS is not reachable yet; waiting for it", "url", urls)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for !nc.IsConnected() {
		select {
		case <-ctx.Done():
			nc.Close()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	return nc, nil
}

// jetStream opens the JetStream API on nc.
func jetStream(nc *nats.Conn) (jetstream.JetStream, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return js, nil
}

// drainClose drains nc (flushing pending publishes and acks) and waits a
// bounded time for it to close.
func drainClose(nc *nats.Conn, log *slog.Logger) {
	if nc == nil || nc.IsClosed() {
		return
	}
	done := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(done) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		log.Warn("NATS drain timed out; closing")
		nc.Close()
	}
}
