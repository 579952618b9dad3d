package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/drover/drover/gh/ghtest"
)

// TestFaultSecretsStayOut runs a push, a config change and a review app
// with a generated secret through the dev stack, logging at debug, then
// looks for every secret drover holds (the config key, the admin token,
// the webhook secret, the GitHub token, a config value and the review
// app's generated secret) in everything it produced: its log, every
// workflow history, and the API's answers other than `config get` with
// the config scope. Each must appear 0 times.
func TestFaultSecretsStayOut(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end fault suite; skipped by -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	repo := newGitRepo(t)
	gh := newGitHubStandIn(t, "file://"+repo.dir)
	t.Setenv(secretEnv, "e2e-secret-"+fmt.Sprint(time.Now().UnixNano()))
	t.Setenv("DROVER_E2E_GH_TOKEN", ghtest.Token)
	t.Setenv("DROVER_CONFIG_DIR", t.TempDir())
	config := filepath.Join(t.TempDir(), "drover.yaml")
	os.WriteFile(config, []byte(fmt.Sprintf(`github: { webhook_secret_env: %s, token_env: DROVER_E2E_GH_TOKEN, api_url: '%s' }
regions: { local-a: { driver: local } }
pipelines:
  hello:
    repo: octo-org/hello
    source: file://%s
    stages:
      review:  { regions: [local-a], config_from: staging, reconcile_interval: 1h }
      staging: { app: hello-staging, branch: main, regions: [local-a], reconcile_interval: 1h }
`, secretEnv, gh.URL, repo.dir)), 0o644)
	data := t.TempDir()
	var mu sync.Mutex
	var logBuf bytes.Buffer
	d := &Dev{Options: DevOptions{Config: config, Data: data, Listen: "127.0.0.1:0", TemporalPort: 0}, Logger: newLogger(syncBuffer{mu: &mu, buf: &logBuf}, "debug")}
	if err := d.Start(ctx); err != nil {
		d.Close()
		t.Fatal(err)
	}
	defer d.Close()
	s := &stack{t: t, base: "http://" + d.HTTPAddr, token: d.Token, secret: d.Secret, config: config}
	var answers bytes.Buffer
	get := func(path string) {
		req, _ := http.NewRequestWithContext(ctx, "GET", s.base+path, nil)
		req.Header.Set("Authorization", "Bearer "+s.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Fprintf(&answers, "%s %d %s\n", path, resp.StatusCode, b)
	}

	const configValue = "postgres://app:config-value-7f3a9c@db.internal/app"
	if err := s.patch(ctx, "/api/v1/apps/hello-staging/config", `{"DATABASE_URL": "`+configValue+`"}`); err != nil {
		t.Fatal(err)
	}
	c1 := repo.commit("secretive", "web: bin/web\nrelease: echo migrating\n")
	gh.setHead(c1, "main")
	s.accepted(ctx, "push", "s-1", pushPayload(t, repo.dir, c1))
	s.waitRelease(ctx, "hello-staging", 1)

	repo.git("checkout", "-q", "-b", "feature")
	os.WriteFile(filepath.Join(repo.dir, "app.json"), []byte(`{"env": {"SECRET_KEY_BASE": {"generator": "secret"}}}`), 0o644)
	c2 := repo.commit("review", "web: bin/web\n")
	s.accepted(ctx, "pull_request", "s-2", prPayload(t, "opened", repo.dir, "feature", c2, 7))
	s.waitReviewApp(ctx, 7, c2)
	var cfg struct{ Vars map[string]string }
	if err := s.get(ctx, "/api/v1/apps/hello-pr-7/config", &cfg); err != nil {
		t.Fatal(err)
	}
	generated := cfg.Vars["SECRET_KEY_BASE"]
	if len(generated) < 32 || cfg.Vars["DATABASE_URL"] != configValue {
		t.Fatalf("review app config = %v", cfg.Vars)
	}
	for _, path := range []string{"/api/v1/apps", "/api/v1/apps/hello-staging", "/api/v1/apps/hello-staging/releases",
		"/api/v1/apps/hello-staging/releases/v1", "/api/v1/apps/hello-pr-7", "/api/v1/apps/hello-pr-7/releases",
		"/api/v1/pipelines", "/api/v1/pipelines/hello/review-apps", "/api/v1/operations/review/octo-org/hello/7"} {
		get(path)
	}

	// Every history of every workflow the stack ran.
	var histories bytes.Buffer
	list, err := d.client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range list.GetExecutions() {
		it := d.client.GetWorkflowHistory(ctx, ex.GetExecution().GetWorkflowId(), ex.GetExecution().GetRunId(), false, 0)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			b, _ := protojson.Marshal(ev)
			histories.Write(b)
			histories.WriteByte('\n')
		}
	}
	if len(list.GetExecutions()) < 3 {
		t.Fatalf("only %d workflows ran", len(list.GetExecutions()))
	}

	key, err := os.ReadFile(filepath.Join(data, "config-key"))
	if err != nil {
		t.Fatal(err)
	}
	secrets := []struct{ name, value string }{
		{"config key", strings.TrimSpace(string(key))},
		{"admin token", d.Token},
		{"webhook secret", d.Secret},
		{"GitHub token", ghtest.Token},
		{"config value", "config-value-7f3a9c"},
		{"generated review app secret", generated},
	}
	sources := []struct{ name, text string }{
		{"log", func() string { mu.Lock(); defer mu.Unlock(); return logBuf.String() }()}, {"workflow histories", histories.String()}, {"API answers", answers.String()},
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n  %-30s", "")
	for _, src := range sources {
		fmt.Fprintf(&b, " %-12s", fmt.Sprintf("%s (%d KiB)", strings.Fields(src.name)[0], len(src.text)>>10))
	}
	for _, sec := range secrets {
		if len(sec.value) < 8 {
			t.Fatalf("%s %q is too short to look for", sec.name, sec.value)
		}
		fmt.Fprintf(&b, "\n  %-30s", sec.name)
		for _, src := range sources {
			n := strings.Count(src.text, sec.value)
			fmt.Fprintf(&b, " %-12d", n)
			if n != 0 {
				i := strings.Index(src.text, sec.value)
				t.Errorf("the %s appears %d times in the %s, e.g. …%s…", sec.name, n, src.name, src.text[max(0, i-120):min(len(src.text), i+len(sec.value)+40)])
			}
		}
	}
	t.Logf("secrets found, by where they were looked for (%d workflows):%s", len(list.GetExecutions()), b.String())
}
