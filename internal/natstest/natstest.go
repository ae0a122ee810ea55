// Package natstest runs a real, embedded nats-server with JetStream for tests,
// the demo and the benchmark: a free port, a private store directory and
// fsync on every write (sync_interval: always), so that what a test sees
// acknowledged is what a production server configured as README advises keeps.
//
// A Server is safe for concurrent use; Restart and Shutdown must not race
// each other.
package natstest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Options configure Start. The zero value is a good default.
type Options struct {
	// StoreDir keeps JetStream's files. Empty means a new temporary
	// directory, removed by Shutdown.
	StoreDir string
	// Port to listen on; 0 picks a free one. Restart reuses the port.
	Port int
	// Host to listen on; default 127.0.0.1.
	Host string
	// NoSyncAlways turns off fsync on every write (faster, weaker).
	NoSyncAlways bool
	// MaxStore bounds JetStream file storage in bytes; 0 means no bound.
	MaxStore int64
}

// Server is an embedded nats-server with JetStream enabled.
type Server struct {
	opts    Options
	tempDir bool
	srv     *server.Server
}

// Start runs a server and waits until it accepts connections.
func Start(opts Options) (*Server, error) {
	s := &Server{opts: opts}
	if s.opts.Host == "" {
		s.opts.Host = "127.0.0.1"
	}
	if s.opts.StoreDir == "" {
		dir, err := os.MkdirTemp("", "simlookup-nats-*")
		if err != nil {
			return nil, fmt.Errorf("natstest: store dir: %w", err)
		}
		s.opts.StoreDir, s.tempDir = dir, true
	}
	if s.opts.Port == 0 {
		port, err := freePort(s.opts.Host)
		if err != nil {
			return nil, err
		}
		s.opts.Port = port
	}
	if err := s.start(); err != nil {
		if s.tempDir {
			_ = os.RemoveAll(s.opts.StoreDir)
		}
		return nil, err
	}
	return s, nil
}

func (s *Server) start() error {
	o := &server.Options{
		Host:               s.opts.Host,
		Port:               s.opts.Port,
		JetStream:          true,
		StoreDir:           s.opts.StoreDir,
		SyncAlways:         !s.opts.NoSyncAlways,
		JetStreamMaxStore:  s.opts.MaxStore,
		NoLog:              true,
		NoSigs:             true,
		MaxPayload:         8 << 20,
		JetStreamMaxMemory: 256 << 20,
	}
	srv, err := server.NewServer(o)
	if err != nil {
		return fmt.Errorf("natstest: new server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(15 * time.Second) {
		srv.Shutdown()
		return errors.New("natstest: server not ready within 15s")
	}
	s.srv = srv
	return nil
}

// URL is the client URL, e.g. nats://127.0.0.1:41234.
func (s *Server) URL() string {
	return "nats://" + net.JoinHostPort(s.opts.Host, strconv.Itoa(s.opts.Port))
}

// StoreDir is where JetStream keeps its files.
func (s *Server) StoreDir() string { return s.opts.StoreDir }

// Connect opens a client connection that reconnects forever.
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(100 * time.Millisecond)}, opts...)
	return nats.Connect(s.URL(), opts...)
}

// Restart stops the server and starts it again on the same port and store,
// as an operator's restart would.
func (s *Server) Restart() error {
	s.stop()
	return s.start()
}

// Stop shuts the server down but keeps its store, so Start again with the
// same options (or Restart) brings the data back.
func (s *Server) Stop() { s.stop() }

func (s *Server) stop() {
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
		s.srv = nil
	}
}

// Shutdown stops the server and removes a temporary store.
func (s *Server) Shutdown() {
	s.stop()
	if s.tempDir {
		_ = os.RemoveAll(s.opts.StoreDir)
	}
}

// Inner exposes the underlying *server.Server (for DisconnectClientByID and
// the like); nil while stopped.
func (s *Server) Inner() *server.Server { return s.srv }

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("natstest: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// TB is the part of testing.TB that Run needs.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// JetStream connects a client to s for a test and returns its JetStream
// context; the connection closes when the test ends.
func (s *Server) JetStream(t TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := s.Connect()
	if err != nil {
		t.Fatalf("connect to nats-server: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// RunJetStream starts a server for a test (see Run) and connects to it.
func RunJetStream(t TB) (*Server, jetstream.JetStream) {
	t.Helper()
	s := Run(t)
	_, js := s.JetStream(t)
	return s, js
}

// Run starts a server for a test and shuts it down when the test ends.
func Run(t TB) *Server {
	t.Helper()
	s, err := Start(Options{})
	if err != nil {
		t.Fatalf("start nats-server: %v", err)
	}
	t.Cleanup(s.Shutdown)
	return s
}
