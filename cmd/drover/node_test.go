package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/drover/drover/devstack"
	"github.com/drover/drover/pipelines"
)

func TestServeFlags(t *testing.T) {
	tests := []struct {
		cmd  string
		args []string
		want NodeOptions
	}{
		{"server", nil, NodeOptions{Mode: modeServer, Config: "drover.yaml", Data: ".drover", Listen: ":8080", Sandbox: "auto"}},
		{"server", []string{"--config", "/etc/drover/drover.yaml", "--listen", ":9000", "--with-worker", "--metrics-listen", "127.0.0.1:9100", "--public-url", "https://drover.internal"},
			NodeOptions{Mode: modeServer, Config: "/etc/drover/drover.yaml", Data: ".drover", Listen: ":9000", WithWorker: true, MetricsListen: "127.0.0.1:9100", PublicURL: "https://drover.internal", Sandbox: "auto"}},
		{"worker", []string{"--config", "/etc/drover/drover.yaml", "--local-regions", "local-a,local-b", "--data", "/var/lib/drover", "--sandbox", "bwrap"},
			NodeOptions{Mode: modeWorker, Config: "/etc/drover/drover.yaml", Data: "/var/lib/drover", LocalRegions: []string{"local-a", "local-b"}, Sandbox: "bwrap"}},
	}
	for _, tt := range tests {
		t.Run(tt.cmd+" "+strings.Join(tt.args, " "), func(t *testing.T) {
			var got *ServeOptions
			run := func(_ context.Context, o *ServeOptions) error { got = o; return nil }
			s := Streams{Out: &bytes.Buffer{}, Err: &bytes.Buffer{}}
			cmd := newServerCmd(s, run)
			if tt.cmd == "worker" {
				cmd = newWorkerCmd(s, run)
			}
			cmd.SetArgs(tt.args)
			if err := cmd.Execute(); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.NodeOptions, tt.want) || got.LogLevel != "info" {
				t.Fatalf("options = %+v, want %+v", got.NodeOptions, tt.want)
			}
		})
	}
	// server has --listen and --with-worker; worker has neither.
	cmd := newWorkerCmd(Streams{Out: &bytes.Buffer{}, Err: &bytes.Buffer{}}, func(context.Context, *ServeOptions) error { return nil })
	cmd.SetArgs([]string{"--listen", ":1"})
	if err := cmd.Execute(); err == nil {
		t.Fatal("drover worker took --listen")
	}
}

// Secrets the tests put in the environment; none may show in an error.
const (
	testDBPassword = "pg-s3cr3t-pw"
	testConfigKey  = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	testHookSecret = "hook-s3cr3t"
	testS3Secret   = "s3-s3cr3t-key"
)

// TestStartRefusesBadSettings: each missing or malformed setting stops
// start-up with the variable or key named, an example or what to do, and
// no secret in the words.
func TestStartRefusesBadSettings(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded Temporal server for the namespace case; skipped by -short")
	}
	temporal, err := devstack.Start(context.Background(), devstack.Options{DatabaseFile: filepath.Join(t.TempDir(), "t.db"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { temporal.Silence(); temporal.Stop() })
	config := filepath.Join(t.TempDir(), "drover.yaml")
	os.WriteFile(config, []byte("regions:\n  local-a: { driver: local }\n  nomad-1: { driver: nomad, address: 'http://127.0.0.1:1' }\npipelines: {}\n"), 0o644)
	base := map[string]string{
		"DATABASE_URL":          "", // per case
		"DROVER_CONFIG_KEY":     testConfigKey,
		"DROVER_WEBHOOK_SECRET": testHookSecret,
		"TEMPORAL_ADDRESS":      temporal.FrontendAddress(),
		"AWS_SECRET_ACCESS_KEY": testS3Secret,
	}
	tests := []struct {
		name string
		opts NodeOptions
		env  map[string]string
		want []string // in the error or its hint
	}{
		{"server without a database", NodeOptions{Mode: modeServer}, nil,
			[]string{"DATABASE_URL is not set: drover server needs PostgreSQL, e.g. postgres://user:pass@host/db", "use drover dev"}},
		{"worker without a database", NodeOptions{Mode: modeWorker}, nil, []string{"DATABASE_URL is not set: drover worker needs PostgreSQL"}},
		{"no config key", NodeOptions{Mode: modeServer, WithWorker: true}, map[string]string{"DROVER_CONFIG_KEY": ""},
			[]string{"DROVER_CONFIG_KEY is not set", "openssl rand -base64 32"}},
		{"bad config key", NodeOptions{Mode: modeServer, WithWorker: true}, map[string]string{"DROVER_CONFIG_KEY": "short"},
			[]string{"$DROVER_CONFIG_KEY: want the base64 of 32 random bytes"}},
		{"no webhook secret", NodeOptions{Mode: modeServer, WithWorker: true}, map[string]string{"DROVER_WEBHOOK_SECRET": ""},
			[]string{"DROVER_WEBHOOK_SECRET is not set", "refuses unsigned webhooks"}},
		{"database that does not answer", NodeOptions{Mode: modeWorker}, map[string]string{"DATABASE_URL": "postgres://drover:" + testDBPassword + "@127.0.0.1:1/drover"},
			[]string{"postgres://drover:xxxxx@127.0.0.1:1/drover", "check DATABASE_URL"}},
		{"server without a slug store", NodeOptions{Mode: modeServer}, map[string]string{"DATABASE_URL": "sqlite-file"},
			[]string{"DROVER_SLUG_STORE is not set", "s3://drover-slugs?endpoint="}},
		{"malformed slug store", NodeOptions{Mode: modeServer}, map[string]string{"DATABASE_URL": "sqlite-file", "DROVER_SLUG_STORE": "s3://"},
			[]string{`DROVER_SLUG_STORE "s3://"`}},
		{"no Temporal address", NodeOptions{Mode: modeServer, WithWorker: true}, map[string]string{"TEMPORAL_ADDRESS": ""},
			[]string{"TEMPORAL_ADDRESS is not set", "temporal.internal:7233", "use drover dev"}},
		{"Temporal refuses", NodeOptions{Mode: modeServer, WithWorker: true}, map[string]string{"TEMPORAL_ADDRESS": "127.0.0.1:1"},
			[]string{"connect to Temporal at 127.0.0.1:1 (namespace default)", "check TEMPORAL_ADDRESS"}},
		{"Temporal without the namespace", NodeOptions{Mode: modeServer, WithWorker: true}, map[string]string{"TEMPORAL_NAMESPACE": "drover-prod"},
			[]string{`has no namespace "drover-prod"`, "drover does not create namespaces", "temporal operator namespace create --namespace drover-prod"}},
		{"unknown local region", NodeOptions{Mode: modeWorker, LocalRegions: []string{"local-b"}}, map[string]string{"DATABASE_URL": "sqlite-file", "DROVER_SLUG_STORE": "file:///tmp/drover-slugs-test"},
			[]string{`--local-regions[0]: "local-b" is not a local region`}},
		{"Nomad region but no public URL", NodeOptions{Mode: modeWorker}, map[string]string{"DATABASE_URL": "sqlite-file", "DROVER_SLUG_STORE": "file:///tmp/drover-slugs-test"},
			[]string{"regions.nomad-1.slug_url is not set and neither is --public-url", "DROVER_PUBLIC_URL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := t.TempDir()
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range tt.env {
				env[k] = v
			}
			if env["DATABASE_URL"] == "sqlite-file" {
				env["DATABASE_URL"] = filepath.Join(data, "drover.db")
			}
			o := tt.opts
			o.Config, o.Data, o.Listen = config, data, "127.0.0.1:0"
			o.Getenv = func(k string) string { return env[k] }
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			n := &Node{Options: o, Logger: slog.New(slog.DiscardHandler)}
			err := n.Start(ctx)
			n.Close()
			if err == nil {
				t.Fatal("started")
			}
			words := err.Error()
			var he *hintError
			if errors.As(err, &he) {
				words += "\nhint: " + he.hint
			}
			for _, w := range tt.want {
				if !strings.Contains(words, w) {
					t.Errorf("error does not say %q:\n%s", w, words)
				}
			}
			for _, secret := range []string{testDBPassword, testConfigKey, testHookSecret, testS3Secret} {
				if strings.Contains(words, secret) {
					t.Errorf("error shows a secret:\n%s", words)
				}
			}
		})
	}
}

// TestReadyzFailsOnShutdown: readiness answers 503 with what failed once
// shutdown began, so a load balancer stops sending before the server
// stops listening.
func TestReadyzFailsOnShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the dev stack; skipped by -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Setenv(secretEnv, "e2e-secret")
	d, _ := startDev(t, ctx, writeConfig(t, t.TempDir()), t.TempDir())
	defer d.Close()
	get := func() (int, string) {
		rec := httptest.NewRecorder()
		d.readyz(rec, httptest.NewRequest("GET", "/readyz", nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := get(); code != http.StatusOK {
		t.Fatalf("readyz = %d %s", code, body)
	}
	d.stopping.Store(true)
	if code, body := get(); code != http.StatusServiceUnavailable || !strings.Contains(body, "shutting down") {
		t.Fatalf("readyz while stopping = %d %s", code, body)
	}
}

// TestBannerShowsNoSecret: the banner names where the dev stack's secrets
// are, and shows neither in full.
func TestBannerShowsNoSecret(t *testing.T) {
	n := &Node{Options: NodeOptions{Mode: modeDev}, Config: &pipelines.Config{File: "drover.yaml"}, DataDir: "/data",
		Secret: "0123456789abcdef0123456789abcdef", Token: "fedcba9876543210fedcba9876543210", HTTPAddr: "127.0.0.1:8080"}
	n.say("Webhook secret:", mask(n.Secret)+" (generated into /data/webhook-secret)")
	var out bytes.Buffer
	n.PrintBanner(&out)
	if strings.Contains(out.String(), n.Secret) || strings.Contains(out.String(), n.Token) {
		t.Fatalf("banner shows a secret:\n%s", out.String())
	}
	for _, want := range []string{"0123…cdef", "/data/webhook-secret", "DROVER_TOKEN=$(cat /data/admin-token)"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("banner lacks %q:\n%s", want, out.String())
		}
	}
}

// TestGitHubWebURL: the page links commits to GitHub, or to the GitHub
// Enterprise whose API drover.yaml names.
func TestGitHubWebURL(t *testing.T) {
	for api, want := range map[string]string{
		"":                                   "https://github.com",
		"https://api.github.com/":            "https://github.com",
		"https://github.example.com/api/v3/": "https://github.example.com",
		"https://github.example.com/api/v3":  "https://github.example.com",
		"http://127.0.0.1:9999/ghe/api/v3/":  "http://127.0.0.1:9999/ghe",
	} {
		if got := githubWebURL(api); got != want {
			t.Errorf("githubWebURL(%q) = %q; want %q", api, got, want)
		}
	}
}
