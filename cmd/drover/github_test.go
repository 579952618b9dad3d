package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover/drover/gh"
	"github.com/drover/drover/pipelines"
)

func TestGitHubAuthFromConfig(t *testing.T) {
	dir := t.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "app.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DROVER_TEST_GH_TOKEN", "ghp_x")
	t.Setenv("DROVER_TEST_GH_EMPTY", "")
	tests := []struct {
		name    string
		github  pipelines.GitHubConfig
		want    string // type of Auth, or "" for none
		wantErr string
	}{
		{"none", pipelines.GitHubConfig{}, "", ""},
		{"token", pipelines.GitHubConfig{TokenEnv: "DROVER_TEST_GH_TOKEN"}, "*gh.TokenAuth", ""},
		{"empty token", pipelines.GitHubConfig{TokenEnv: "DROVER_TEST_GH_EMPTY"}, "", ""},
		{"app", pipelines.GitHubConfig{AppID: 42, PrivateKeyFile: keyFile, APIURL: "https://github.example.com/api/v3/"}, "*gh.AppAuth", ""},
		{"app key missing", pipelines.GitHubConfig{AppID: 42, PrivateKeyFile: filepath.Join(dir, "nope.pem")}, "", "github.private_key_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			auth, err := githubAuth(&pipelines.Config{File: "drover.yaml", GitHub: tt.github}, slog.New(slog.DiscardHandler))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			switch auth.(type) {
			case *gh.TokenAuth:
				got = "*gh.TokenAuth"
			case *gh.AppAuth:
				got = "*gh.AppAuth"
			}
			if got != tt.want {
				t.Fatalf("auth = %T, want %s", auth, tt.want)
			}
			// The banner says which, or what is off without it.
			summary := githubSummary(&pipelines.Config{GitHub: tt.github}, auth)
			if want := map[string]string{"": "not connected", "*gh.TokenAuth": "token from $DROVER_TEST_GH_TOKEN", "*gh.AppAuth": "GitHub App 42 at https://github.example.com/api/v3/"}[tt.want]; !strings.Contains(summary, want) {
				t.Fatalf("summary = %q, want %q", summary, want)
			}
		})
	}
}
