package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover/drover/pipelines"
)

// writeCert writes a self-signed certificate and its key for mTLS tests.
func writeCert(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "drover"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	cert, key = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return cert, key
}

// TestTemporalOptions: drover reads Temporal's own variables and profile
// file, and drover.yaml's temporal block wins over them.
func TestTemporalOptions(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	profile := filepath.Join(dir, "temporal.toml")
	os.WriteFile(profile, []byte("[profile.prod]\naddress = \"prod.tmprl.cloud:7233\"\nnamespace = \"drover.acct\"\napi_key = \"from-profile\"\n"), 0o600)
	tests := []struct {
		name      string
		env       map[string]string
		yaml      pipelines.TemporalConfig
		address   string
		namespace string
		how       string // describeTemporal's words
		err       string
	}{
		{"variables", map[string]string{"TEMPORAL_ADDRESS": "temporal.internal:7233", "TEMPORAL_NAMESPACE": "drover"}, pipelines.TemporalConfig{},
			"temporal.internal:7233", "drover", "plaintext", ""},
		{"no namespace is default", map[string]string{"TEMPORAL_ADDRESS": "t:7233"}, pipelines.TemporalConfig{}, "t:7233", "default", "plaintext", ""},
		{"API key turns TLS on", map[string]string{"TEMPORAL_ADDRESS": "x.tmprl.cloud:7233", "TEMPORAL_API_KEY": "k"}, pipelines.TemporalConfig{},
			"x.tmprl.cloud:7233", "default", "TLS, API key", ""},
		{"mTLS from variables", map[string]string{"TEMPORAL_ADDRESS": "t:7233", "TEMPORAL_TLS_CLIENT_CERT_PATH": cert, "TEMPORAL_TLS_CLIENT_KEY_PATH": key}, pipelines.TemporalConfig{},
			"t:7233", "default", "mTLS", ""},
		{"drover.yaml wins", map[string]string{"TEMPORAL_ADDRESS": "env:7233", "TEMPORAL_NAMESPACE": "env"}, pipelines.TemporalConfig{Address: "yaml:7233", Namespace: "yaml", CertFile: cert, KeyFile: key},
			"yaml:7233", "yaml", "mTLS", ""},
		{"api_key_env", map[string]string{"TEMPORAL_ADDRESS": "t:7233", "MY_KEY": "k"}, pipelines.TemporalConfig{APIKeyEnv: "MY_KEY"}, "t:7233", "default", "TLS, API key", ""},
		{"profile file", map[string]string{"TEMPORAL_CONFIG_FILE": profile, "TEMPORAL_PROFILE": "prod"}, pipelines.TemporalConfig{},
			"prod.tmprl.cloud:7233", "drover.acct", "TLS, API key", ""},
		{"nothing set", nil, pipelines.TemporalConfig{}, "", "", "", "TEMPORAL_ADDRESS is not set"},
		{"api_key_env unset", map[string]string{"TEMPORAL_ADDRESS": "t:7233"}, pipelines.TemporalConfig{APIKeyEnv: "MY_KEY"}, "", "", "", "temporal.api_key_env names MY_KEY, which is not set"},
		{"unreadable cert", map[string]string{"TEMPORAL_ADDRESS": "t:7233", "TEMPORAL_TLS_CLIENT_CERT_PATH": "/nope.pem", "TEMPORAL_TLS_CLIENT_KEY_PATH": key}, pipelines.TemporalConfig{},
			"", "", "", "temporal TLS for t:7233"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &pipelines.Config{File: "drover.yaml", Temporal: tt.yaml}
			opts, err := temporalOptions(cfg, func(k string) string { return tt.env[k] })
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if opts.HostPort != tt.address || opts.Namespace != tt.namespace {
				t.Fatalf("address %s namespace %s; want %s %s", opts.HostPort, opts.Namespace, tt.address, tt.namespace)
			}
			if how := describeTemporal(opts); !strings.HasSuffix(how, ", "+tt.how+")") || strings.Contains(how, "from-profile") {
				t.Fatalf("banner = %q, want it to say %q and no key", how, tt.how)
			}
		})
	}
}
