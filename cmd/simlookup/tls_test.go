package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// testPKI writes a CA and a server and a client certificate signed by it.
type testPKI struct {
	dir                                  string
	ca, serverCert, serverKey, cert, key string
	caCert                               *x509.Certificate
	caKey                                *ecdsa.PrivateKey
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir()}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "simlookup test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p.caCert, _ = x509.ParseCertificate(der)
	p.caKey = key
	p.ca = p.write(t, "ca.pem", "CERTIFICATE", der)
	p.serverCert, p.serverKey = p.leaf(t, "server", x509.ExtKeyUsageServerAuth)
	p.cert, p.key = p.leaf(t, "client", x509.ExtKeyUsageClientAuth)
	return p
}

func (p *testPKI) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func (p *testPKI) leaf(t *testing.T, name string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return p.write(t, name+".pem", "CERTIFICATE", der), p.write(t, name+"-key.pem", "EC PRIVATE KEY", kder)
}

func TestNATSMutualTLS(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	url := authServer(t, func(o *server.Options) {
		cfg, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: p.serverCert, KeyFile: p.serverKey, CaFile: p.ca, Verify: true})
		if err != nil {
			t.Fatal(err)
		}
		cfg.MinVersion = tls.VersionTLS12
		o.TLSConfig, o.TLS, o.TLSVerify, o.TLSTimeout = cfg, true, true, 2
	})
	url = strings.Replace(url, "nats://", "tls://", 1)
	base := append([]string{"streams", "--nats-url", url}, smallStreams...)

	// the server's certificate is not trusted without --tls-ca
	r := runCLI(t, base...)
	wantCode(t, r, exitRuntime)
	if !strings.Contains(r.stderr, "certificate") {
		t.Fatalf("untrusted server: stderr %q", r.stderr)
	}
	// trusted, but no client certificate
	wantCode(t, runCLI(t, append(base, "--tls-ca", p.ca)...), exitRuntime)
	// everything
	r = runCLI(t, append(base, "--tls-ca", p.ca, "--tls-cert", p.cert, "--tls-key", p.key)...)
	wantCode(t, r, exitOK)
}
