package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover/drover/api"
	"github.com/drover/drover/deployments"
	"github.com/drover/drover/deployments/sqlstore"
	"github.com/drover/drover/pipelines"
)

func TestDevFlags(t *testing.T) {
	tests := []struct {
		args []string
		want DevOptions
	}{
		{nil, DevOptions{Config: "drover.yaml", Data: ".drover", Listen: "127.0.0.1:8080", TemporalPort: 7233, LogLevel: "info", Sandbox: "auto"}},
		{[]string{"--config", "x.yaml", "--data", "/d", "--listen", "127.0.0.1:0", "--temporal-port", "0", "--example", "--sandbox", "none"},
			DevOptions{Config: "x.yaml", Data: "/d", Listen: "127.0.0.1:0", TemporalPort: 0, LogLevel: "info", Sandbox: "none", Example: true}},
		{[]string{"--example"}, DevOptions{Config: filepath.Join("examples", "drover.yaml"), Data: ".drover", Listen: "127.0.0.1:8080", TemporalPort: 7233, LogLevel: "info", Sandbox: "auto", Example: true}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var got *DevOptions
			cmd := newDevCmd(Streams{Out: &bytes.Buffer{}, Err: &bytes.Buffer{}}, func(_ context.Context, o *DevOptions) error {
				got = o
				return nil
			})
			cmd.SetArgs(tt.args)
			if err := cmd.Execute(); err != nil {
				t.Fatal(err)
			}
			if *got != tt.want {
				t.Fatalf("options = %+v, want %+v", *got, tt.want)
			}
		})
	}
}

func TestRunExitCodesAndMessages(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "drover.yaml")
	os.WriteFile(bad, []byte("regions:\n  a: { driver: docker }\n"), 0o644)
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"unknown flag", []string{"dev", "--nope"}, exitUsage, []string{"unknown flag: --nope", "see --help"}},
		{"missing argument", []string{"releases"}, exitError, []string{"accepts 1 arg"}},
		{"invalid config", []string{"dev", "--config", bad, "--data", t.TempDir()}, exitError,
			[]string{bad + `: regions.a.driver: unknown driver "docker"`, "hint:"}},
		{"missing config", []string{"dev", "--config", filepath.Join(t.TempDir(), "none.yaml"), "--data", t.TempDir()}, exitError,
			[]string{"no such file", "hint: start from examples/drover.yaml"}},
		{"drover not running", []string{"apps"}, exitError, []string{"reach drover at http://127.0.0.1:1", "hint: start it with `drover dev`"}},
	}
	t.Setenv("DROVER_URL", "http://127.0.0.1:1")
	t.Setenv("DROVER_CONFIG_DIR", t.TempDir())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := Run(context.Background(), tt.args, Streams{Out: &out, Err: &errOut})
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.code, errOut.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut.String(), w) {
					t.Fatalf("stderr %q does not contain %q", errOut.String(), w)
				}
			}
		})
	}
}

func TestCLIFindsDevStack(t *testing.T) {
	t.Setenv("DROVER_CONFIG_DIR", t.TempDir())
	t.Setenv("DROVER_URL", "")
	t.Setenv("DROVER_TOKEN", "")
	if err := writeDevLogin(devLogin{URL: "http://127.0.0.1:4711", Token: "dev-token"}); err != nil {
		t.Fatal(err)
	}
	c := newAPIClient()
	if c.base != "http://127.0.0.1:4711" || c.token != "dev-token" {
		t.Fatalf("client = %s %q, want the dev stack's", c.base, c.token)
	}
	// An explicit URL elsewhere does not get the dev stack's token.
	t.Setenv("DROVER_URL", "https://drover.example.com")
	if c := newAPIClient(); c.base != "https://drover.example.com" || c.token == "dev-token" {
		t.Fatalf("client = %s %q", c.base, c.token)
	}
}

func TestTemporalLink(t *testing.T) {
	t.Setenv("DROVER_TEMPORAL_UI", "")
	if got := temporalLink("rollback/hello/abc"); got != "" {
		t.Fatalf("link without a UI = %q", got)
	}
	t.Setenv("DROVER_TEMPORAL_UI", "http://127.0.0.1:8233/")
	if got, want := temporalLink("rollback/hello/abc"), "http://127.0.0.1:8233/namespaces/default/workflows/rollback%2Fhello%2Fabc"; got != want {
		t.Fatalf("link = %q, want %q", got, want)
	}
}

func TestProgressLines(t *testing.T) {
	if got := progressLines(api.Operation{State: "queued"}); strings.Join(got, "|") != "  queued" {
		t.Fatalf("before a release: %q", got)
	}
	op := api.Operation{State: "running", Release: &pipelines.Release{App: "hello", Version: 3, Description: "rollback to v1",
		Regions: []pipelines.RegionState{{Region: "us-east", Status: pipelines.RegionSuccessful}, {Region: "eu-west", Status: pipelines.RegionRunning, Message: "web: 1/2 healthy"}}}}
	want := "  hello v3: rollback to v1|  us-east      successful|  eu-west      running  web: 1/2 healthy"
	if got := strings.Join(progressLines(op), "|"); got != want {
		t.Fatalf("lines = %q\nwant    %q", got, want)
	}
	var buf bytes.Buffer
	if isTerminal(&buf) {
		t.Fatal("a buffer is not a terminal: progress must fall back to plain lines")
	}
}

func TestRegionSummary(t *testing.T) {
	r := pipelines.Release{Regions: []pipelines.RegionState{
		{Region: "us-east", Status: pipelines.RegionSuccessful, Message: "done"},
		{Region: "eu-west", Status: pipelines.RegionRunning, Message: "web: 1/2 healthy"},
		{Region: "ap", Status: pipelines.RegionPending},
	}}
	if got, want := regionSummary(r), "us-east:successful eu-west:running(web: 1/2 healthy) ap:pending"; got != want {
		t.Fatalf("regionSummary = %q, want %q", got, want)
	}
}

func TestTokensHash(t *testing.T) {
	tokenHash := func(t *testing.T, out string) pipelines.TokenHash {
		t.Helper()
		var line string
		for l := range strings.Lines(out) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "token_hash: "); ok {
				line = v
			}
		}
		// The line drops into drover.yaml as it is.
		c, err := pipelines.ParseConfig("drover.yaml", []byte("api: { tokens: [{ name: ci, token_hash: "+line+" }] }\n"))
		if err != nil {
			t.Fatalf("output %q in drover.yaml: %v", out, err)
		}
		h, err := pipelines.ParseTokenHash(c.API.Tokens[0].TokenHash)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	t.Run("from stdin", func(t *testing.T) {
		var out, errOut bytes.Buffer
		if code := Run(context.Background(), []string{"tokens", "hash"}, Streams{In: strings.NewReader("my-ci-token\n"), Out: &out, Err: &errOut}); code != exitOK {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
		h := tokenHash(t, out.String())
		if !api.VerifyToken(h, "my-ci-token") || api.VerifyToken(h, "my-ci-token\n") || strings.Contains(out.String(), "my-ci-token") {
			t.Fatalf("output %q: want a hash of my-ci-token alone, without the token", out.String())
		}
	})
	t.Run("generate", func(t *testing.T) {
		var out, errOut bytes.Buffer
		if code := Run(context.Background(), []string{"tokens", "hash", "--generate"}, Streams{Out: &out, Err: &errOut}); code != exitOK {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
		first, _, _ := strings.Cut(out.String(), "\n")
		token, ok := strings.CutPrefix(first, "token: ")
		if !ok || len(token) < 40 || !api.VerifyToken(tokenHash(t, out.String()), token) {
			t.Fatalf("output %q: want a new token and the hash of it", out.String())
		}
	})
	t.Run("empty stdin", func(t *testing.T) {
		var out, errOut bytes.Buffer
		if code := Run(context.Background(), []string{"tokens", "hash"}, Streams{In: strings.NewReader(""), Out: &out, Err: &errOut}); code != exitUsage || !strings.Contains(errOut.String(), "no token on stdin") {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
	})
}

func TestKeysRotate(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	db := filepath.Join(data, "drover.db")
	oldKey, newKey := bytes.Repeat([]byte{1}, deployments.KeySize), bytes.Repeat([]byte{2}, deployments.KeySize)
	b64 := base64.StdEncoding.EncodeToString
	st, err := sqlstore.OpenSQLite(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	// One app's config from before sealing, one sealed under the old key.
	if _, err := st.SetConfigVars(ctx, "clear", map[string]string{"A": "1"}, nil); err != nil {
		t.Fatal(err)
	}
	oldRing, _ := deployments.OpenKeyRing(oldKey)
	st.SetSealer(oldRing)
	if _, err := st.SetConfigVars(ctx, "sealed", map[string]string{"B": "2"}, nil); err != nil {
		t.Fatal(err)
	}
	st.Close()

	rotate := func(t *testing.T, args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := Run(ctx, append([]string{"keys", "rotate"}, args...), Streams{Out: &out, Err: &errOut}); code != exitOK {
			t.Fatalf("keys rotate %v: exit %d: %s", args, code, errOut.String())
		}
		return out.String() + errOut.String()
	}
	t.Setenv(envDatabaseURL, "")
	t.Setenv(envConfigKey, b64(newKey))
	t.Setenv(envPreviousConfigKeys, b64(oldKey))
	if out := rotate(t, "--database", db); !strings.Contains(out, "re-sealed 2 of 2 config rows in 2 apps") || !strings.Contains(out, "clear: re-sealed 1 of 1") {
		t.Fatalf("first rotate said %q", out)
	}
	// In dev, the key is the data dir's file; nothing is left to re-seal.
	os.WriteFile(filepath.Join(data, "config-key"), []byte(b64(newKey)+"\n"), 0o600)
	t.Setenv(envConfigKey, "")
	t.Setenv(envPreviousConfigKeys, "")
	if out := rotate(t, "--data", data); !strings.Contains(out, "re-sealed 0 of 2 config rows") {
		t.Fatalf("second rotate said %q", out)
	}
	// Both apps' config opens with the new key alone.
	st, err = sqlstore.OpenSQLite(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	newRing, _ := deployments.OpenKeyRing(newKey)
	st.SetSealer(newRing)
	for app, want := range map[string][2]string{"clear": {"A", "1"}, "sealed": {"B", "2"}} {
		if cv, err := st.ConfigVars(ctx, app); err != nil || cv.Vars[want[0]] != want[1] {
			t.Errorf("%s with the new key only = %+v, %v", app, cv, err)
		}
	}
	// No key at all is refused, not made up.
	var out, errOut bytes.Buffer
	if code := Run(ctx, []string{"keys", "rotate", "--database", db, "--data", t.TempDir()}, Streams{Out: &out, Err: &errOut}); code != exitUsage || !strings.Contains(errOut.String(), "no config key") {
		t.Fatalf("rotate without a key: exit %d: %s", code, errOut.String())
	}
}
