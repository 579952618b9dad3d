package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/drover/drover/api"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/sandbox"
	"github.com/drover/drover/workflows"
)

// TestMain lets the test binary stand in for the drover binary, so the
// kill test runs the real `drover dev` in a child process without a second
// 200 MB link.
func TestMain(m *testing.M) {
	if args := os.Getenv("DROVER_E2E_CHILD_ARGS"); args != "" {
		var argv []string
		if err := json.Unmarshal([]byte(args), &argv); err != nil {
			panic(err)
		}
		main2(argv)
		return
	}
	// Sandboxed builds keep caches of their own; one for every test's
	// stack saves compiling the standard library for each.
	if os.Getenv(envBuildCache) == "" {
		if dir, err := os.MkdirTemp("", "drover-e2e-build-cache-"); err == nil {
			os.Setenv(envBuildCache, dir)
			code := m.Run()
			os.RemoveAll(dir)
			os.Exit(code)
		}
	}
	os.Exit(m.Run())
}

func main2(args []string) {
	os.Args = append([]string{"drover"}, args...)
	main()
}

const webApp = `package main

import (
	"fmt"
	"net/http"
	"os"
)

const greeting = %q

func main() {
	// A config var makes the app crash in one region, to test rollback.
	if r := os.Getenv("CRASH_IN_REGION"); r != "" && r == os.Getenv("DROVER_REGION") {
		fmt.Fprintln(os.Stderr, "crashing on purpose in", r)
		os.Exit(1)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%%s from %%s %%s\n", greeting, os.Getenv("DROVER_APP"), os.Getenv("DROVER_RELEASE"))
		// An access log line, as web servers write.
		fmt.Println("request", r.URL.Path)
	})
	if err := http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
`

// gitRepo is a real git repository holding a small Go web app.
type gitRepo struct {
	t   testing.TB
	dir string
}

func newGitRepo(t testing.TB) *gitRepo {
	r := &gitRepo{t: t, dir: filepath.Join(t.TempDir(), "hello")}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r.git("init", "-q", "-b", "main")
	return r
}

func (r *gitRepo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", append([]string{"-C", r.dir, "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes the app with a greeting and a Procfile and commits it.
func (r *gitRepo) commit(greeting, procfile string) string {
	r.t.Helper()
	files := map[string]string{
		"go.mod":   "module example.com/web\n\ngo 1.22\n",
		"main.go":  fmt.Sprintf(webApp, greeting),
		"Procfile": procfile,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(r.dir, name), []byte(body), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	r.git("add", "-A")
	r.git("commit", "-q", "-m", greeting)
	return r.git("rev-parse", "HEAD")
}

const secretEnv = "DROVER_E2E_WEBHOOK_SECRET"

// writeConfig writes the drover.yaml, secret from secretEnv, its
// pipeline fetching from the local repository repoDir.
func writeConfig(t testing.TB, repoDir string) string {
	t.Helper()
	return writeConfigWithGitHub(t, repoDir, "")
}

// writeConfigWithGitHub is writeConfig with GitHub's API at apiURL (a
// ghtest stand-in, whose token is in DROVER_E2E_GH_TOKEN) and staging
// waiting for CI; "" leaves GitHub's API out.
func writeConfigWithGitHub(t testing.TB, repoDir, apiURL string) string {
	t.Helper()
	github, waitForCI := "", ""
	if apiURL != "" {
		github, waitForCI = "\n  token_env: DROVER_E2E_GH_TOKEN\n  api_url: '"+apiURL+"'", ", wait_for_ci: true"
	}
	cfg := strings.NewReplacer("DROVER_WEBHOOK_SECRET", secretEnv, "REPO_DIR", repoDir, "GITHUB_API", github, "WAIT_FOR_CI", waitForCI).Replace(`github:
  webhook_secret_env: DROVER_WEBHOOK_SECRETGITHUB_API
regions:
  local-a: { driver: local }
  local-b: { driver: local }
pipelines:
  hello:
    repo: octo-org/hello
    source: file://REPO_DIR
    stages:
      staging:    { app: hello-staging, branch: main, regions: [local-a, local-b]WAIT_FOR_CI }
      production: { app: hello, regions: [local-a, local-b] }
`)
	path := filepath.Join(t.TempDir(), "drover.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// fixture reads one of GitHub's own webhook examples, to edit and send.
func fixture(t testing.TB, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "fixtures", "github", name))
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// pushPayload is GitHub's own push example for octo-org/hello at commit.
// Builds fetch from the pipeline's source in drover.yaml, never from the
// payload's clone_url: this one names a host that does not exist.
func pushPayload(t testing.TB, repoDir, commit string) []byte {
	t.Helper()
	return pushPayloadFor(t, "octo-org/hello", repoDir, commit)
}

// pushPayloadFor is pushPayload for the GitHub repository fullName.
func pushPayloadFor(t testing.TB, fullName, repoDir, commit string) []byte {
	t.Helper()
	p := fixture(t, "push.payload.json")
	p["ref"], p["after"], p["deleted"] = "refs/heads/main", commit, false
	repo := p["repository"].(map[string]any)
	repo["full_name"], repo["clone_url"] = fullName, "https://clone.invalid/"+filepath.Base(repoDir)+".git"
	out, _ := json.Marshal(p)
	return out
}

type stack struct {
	t      testing.TB
	base   string
	token  string
	secret string
	// config is drover.yaml's path, to restart with.
	config string
}

func (s *stack) push(ctx context.Context, delivery string, payload []byte) (int, string) {
	s.t.Helper()
	code, body, err := SendWebhook(ctx, s.base+"/webhooks/github", s.secret, "push", delivery, payload)
	if err != nil {
		s.t.Fatal(err)
	}
	return code, string(body)
}

// call sends an authorised API request and decodes a 200 answer into into.
func (s *stack) call(ctx context.Context, method, path, body string, into any) error {
	req, _ := http.NewRequestWithContext(ctx, method, s.base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if into == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

func (s *stack) get(ctx context.Context, path string, into any) error {
	return s.call(ctx, http.MethodGet, path, "", into)
}

func (s *stack) patch(ctx context.Context, path, body string) error {
	return s.call(ctx, http.MethodPatch, path, body, nil)
}

func (s *stack) releases(ctx context.Context, app string) []pipelines.Release {
	s.t.Helper()
	var rs []pipelines.Release
	if err := s.get(ctx, "/api/v1/apps/"+app+"/releases", &rs); err != nil {
		s.t.Fatal(err)
	}
	return rs
}

// waitRelease waits until vN of app is final and returns it.
func (s *stack) waitRelease(ctx context.Context, app string, version int) pipelines.Release {
	s.t.Helper()
	for {
		var r pipelines.Release
		err := s.get(ctx, fmt.Sprintf("/api/v1/apps/%s/releases/v%d", app, version), &r)
		if err == nil && r.Status.Terminal() {
			return r
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("%s v%d not final: last %+v, %v", app, version, r, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func httpGet(url string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// answersEverywhere checks the app's web process answers want in every region.
func (s *stack) answersEverywhere(ctx context.Context, app string, regions int, want string) {
	s.t.Helper()
	var info api.AppInfo
	if err := s.get(ctx, "/api/v1/apps/"+app, &info); err != nil {
		s.t.Fatal(err)
	}
	if len(info.Where) != regions {
		s.t.Fatalf("%s runs in %d regions, want %d", app, len(info.Where), regions)
	}
	for _, w := range info.Where {
		body, err := httpGet(w.URL)
		if err != nil || !strings.Contains(body, want) {
			s.t.Fatalf("GET %s (%s) = %q, %v; want %q", w.URL, w.Region, body, err, want)
		}
	}
}

func startDev(t testing.TB, ctx context.Context, config, data string) (*Dev, *stack) {
	t.Helper()
	if os.Getenv("DROVER_CONFIG_DIR") == "" {
		t.Setenv("DROVER_CONFIG_DIR", t.TempDir())
	}
	t0 := time.Now()
	d := &Dev{Options: DevOptions{Config: config, Data: data, Listen: "127.0.0.1:0", TemporalPort: 0}, Logger: newLogger(io.Discard, "error")}
	if testing.Verbose() {
		d.Logger = newLogger(os.Stderr, "warn")
	}
	if err := d.Start(ctx); err != nil {
		d.Close()
		t.Fatal(err)
	}
	// Stopped before the test's temp dirs go (cleanups run last first,
	// and data was made before this), so no app of a test that did not
	// close it still writes into them, nor outlives it.
	t.Cleanup(d.Close)
	t.Logf("drover dev started in %v", time.Since(t0))
	return d, &stack{t: t, base: "http://" + d.HTTPAddr, token: d.Token, secret: d.Secret, config: config}
}

func TestE2EPushToRunningApp(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts the dev stack and builds apps; skipped by -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	t.Setenv(secretEnv, "e2e-secret")
	repo := newGitRepo(t)
	config, data := writeConfig(t, repo.dir), t.TempDir()
	const procfile = "web: bin/web\nrelease: echo migrating $DROVER_RELEASE\n"

	d, s := startDev(t, ctx, config, data)
	stopped := false
	defer func() {
		if !stopped {
			d.Close()
		}
	}()
	if s.secret != "e2e-secret" {
		t.Fatalf("secret = %q, want the one from $%s", s.secret, secretEnv)
	}

	c1 := repo.commit("first", procfile)
	if code, body := s.push(ctx, "delivery-1", pushPayload(t, repo.dir, c1)); code != http.StatusAccepted {
		t.Fatalf("push 1: %d %s", code, body)
	}
	v1 := s.waitRelease(ctx, "hello-staging", 1)
	if v1.Status != pipelines.ReleaseSucceeded || v1.Commit != c1 || len(v1.Slug) != 64 {
		t.Fatalf("v1 = %+v", v1)
	}
	if !strings.Contains(v1.Output, "migrating v1") {
		t.Fatalf("release phase output = %q", v1.Output)
	}
	s.answersEverywhere(ctx, "hello-staging", 2, "first from hello-staging v1")

	c2 := repo.commit("second", procfile)
	p2 := pushPayload(t, repo.dir, c2)
	if code, body := s.push(ctx, "delivery-2", p2); code != http.StatusAccepted {
		t.Fatalf("push 2: %d %s", code, body)
	}
	v2 := s.waitRelease(ctx, "hello-staging", 2)
	if v2.Status != pipelines.ReleaseSucceeded || v2.Commit != c2 || v2.Slug == v1.Slug {
		t.Fatalf("v2 = %+v", v2)
	}
	s.answersEverywhere(ctx, "hello-staging", 2, "second from hello-staging v2")

	if dir := os.Getenv("DROVER_SAVE_HISTORY"); dir != "" {
		saveHistory(t, ctx, d, dir, "deploy.json", workflows.DeployWorkflowID("hello-staging", c2))
		saveHistory(t, ctx, d, dir, "app.json", workflows.AppWorkflowID("hello-staging"))
	}

	// GitHub's redelivery of push 2, and the same commit pushed again under
	// a new delivery ID (a replay: delivery IDs are not signed), start
	// nothing. The redelivery is answered from the commit's state, as a
	// storm's duplicates are, without reading its delivery ID first.
	if code, body := s.push(ctx, "delivery-2", p2); code != http.StatusOK || !strings.Contains(body, "already released") {
		t.Fatalf("redelivery: %d %s", code, body)
	}
	if code, body := s.push(ctx, "delivery-3", p2); code != http.StatusOK || !strings.Contains(body, "already released") {
		t.Fatalf("same commit, new delivery: %d %s", code, body)
	}
	time.Sleep(2 * time.Second)
	if rs := s.releases(ctx, "hello-staging"); len(rs) != 2 {
		t.Fatalf("after redeliveries: %d releases, want 2", len(rs))
	}

	// The CLI reads the same ledger, finding drover and its token with no
	// setup: dev recorded both in the user's config dir.
	t.Setenv("DROVER_URL", "")
	t.Setenv("DROVER_TOKEN", "")
	var out, errOut bytes.Buffer
	if code := Run(ctx, []string{"releases", "hello-staging", "--json"}, Streams{Out: &out, Err: &errOut}); code != exitOK {
		t.Fatalf("drover releases: exit %d: %s", code, errOut.String())
	}
	var list []map[string]any
	if err := json.Unmarshal(out.Bytes(), &list); err != nil {
		t.Fatalf("releases --json: %v\n%s", err, out.String())
	}
	if len(list) != 2 || list[0]["version"] != float64(2) || list[0]["status"] != "succeeded" || list[0]["slug"] != v2.Slug || list[0]["commit"] != c2 {
		t.Fatalf("releases --json = %v", list)
	}
	out.Reset()
	if code := Run(ctx, []string{"apps", "info", "hello-staging", "--json"}, Streams{Out: &out, Err: &errOut}); code != exitOK {
		t.Fatalf("drover apps info: exit %d: %s", code, errOut.String())
	}
	var info api.AppInfo
	if err := json.Unmarshal(out.Bytes(), &info); err != nil || len(info.Where) != 2 || !strings.HasPrefix(info.Where[0].URL, "http://") {
		t.Fatalf("apps info --json = %s (%v)", out.String(), err)
	}
	psWebUp(t, ctx, "hello-staging", 2)
	checkLogs(t, ctx, info.Where[0].URL, "v2", func(path string) string { return " app[web.1]: request " + path + "\n" })
	checkRuns(t, ctx)
	out.Reset()
	if code := Run(ctx, []string{"apps", "info", "nope"}, Streams{Out: &out, Err: &errOut}); code != exitNotFound {
		t.Fatalf("apps info of an unknown app: exit %d, want %d", code, exitNotFound)
	}

	// A release that crashes in the second region: the first region goes
	// back to v2, and v2 keeps serving everywhere.
	if err := s.patch(ctx, "/api/v1/apps/hello-staging/config", `{"CRASH_IN_REGION":"local-b"}`); err != nil {
		t.Fatal(err)
	}
	c3 := repo.commit("third", procfile)
	if code, body := s.push(ctx, "delivery-4", pushPayload(t, repo.dir, c3)); code != http.StatusAccepted {
		t.Fatalf("push 3: %d %s", code, body)
	}
	v3 := s.waitRelease(ctx, "hello-staging", 3)
	if v3.Status != pipelines.ReleaseFailed || !strings.Contains(v3.Reason, "local-b") || !strings.Contains(v3.Reason, "crashing on purpose") {
		t.Fatalf("v3 = %s %q; want failed in local-b with the app's own words", v3.Status, v3.Reason)
	}
	t.Logf("v3 failed as it should: %s", v3.Reason)
	states := map[string]pipelines.RegionStatus{}
	for _, st := range v3.Regions {
		states[st.Region] = st.Status
	}
	if states["local-a"] != pipelines.RegionReverted || states["local-b"] != pipelines.RegionFailed {
		t.Fatalf("v3 regions = %v", states)
	}
	s.answersEverywhere(ctx, "hello-staging", 2, "second from hello-staging v2")

	// Restart on the same data dir: the ledger is intact and v2 serves again.
	d.Close()
	stopped = true
	if _, err := httpGet(info.Where[0].URL); err == nil {
		t.Fatal("app still answers after drover dev stopped")
	}
	d2, s2 := startDev(t, ctx, config, data)
	defer d2.Close()
	rs := s2.releases(ctx, "hello-staging")
	if len(rs) != 3 || rs[1].Version != 2 || rs[1].Status != pipelines.ReleaseSucceeded || rs[2].Commit != c1 || rs[0].Status != pipelines.ReleaseFailed {
		t.Fatalf("ledger after restart = %+v", rs)
	}
	s2.answersEverywhere(ctx, "hello-staging", 2, "second from hello-staging v2")
}

// saveHistory writes a workflow's event history as JSON, the form the
// workflows package's replay test reads:
// DROVER_SAVE_HISTORY=$PWD/workflows/testdata go test -run TestE2EPushToRunningApp ./cmd/drover
func saveHistory(t *testing.T, ctx context.Context, d *Dev, dir, name, id string) {
	t.Helper()
	h := &historypb.History{}
	iter := d.client.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, ev)
	}
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("saved %d events of %s to %s", len(h.Events), id, filepath.Join(dir, name))
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startChild runs `drover dev` as a child process: the test binary itself.
func startChild(t *testing.T, config, data, listen string, log io.Writer) *exec.Cmd {
	t.Helper()
	args, _ := json.Marshal([]string{"dev", "--config", config, "--data", data, "--listen", listen, "--temporal-port", "0", "--log-level", "warn"})
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "DROVER_E2E_CHILD_ARGS="+string(args))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// childDev is drover dev in a process of its own on one data dir, which
// a test can kill with SIGKILL and start again.
type childDev struct {
	t                    *testing.T
	config, data, listen string
	log                  bytes.Buffer
	cmd                  *exec.Cmd
	// exited gets the child's Wait once it ends.
	exited chan error
	*stack
}

// startChildDev starts drover dev as a child process with the drover.yaml
// at config (writeConfig's, or one with more in it); it is stopped, and its
// output shown if the test failed, when the test ends.
func startChildDev(ctx context.Context, t *testing.T, config string) *childDev {
	t.Helper()
	t.Setenv(secretEnv, "e2e-secret")
	t.Setenv("DROVER_CONFIG_DIR", t.TempDir())
	c := &childDev{t: t, config: config, data: t.TempDir(), listen: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	t.Cleanup(func() {
		c.stop()
		if t.Failed() {
			t.Logf("drover dev output:\n%s", c.log.String())
		}
	})
	c.stack = &stack{t: t, token: "", secret: "e2e-secret"}
	c.start(ctx)
	token, _ := os.ReadFile(filepath.Join(c.data, "admin-token"))
	c.stack.token = strings.TrimSpace(string(token))
	return c
}

// start starts the child and waits until it is healthy. A child that
// exits first fails the test at once with its output. One that could not
// listen because another process took its port meanwhile (the port was
// picked free, but in the range the kernel hands out, as the embedded
// Temporal's and the apps' ports are) starts again on another.
func (c *childDev) start(ctx context.Context) {
	c.t.Helper()
	for attempt := 1; ; attempt++ {
		from := c.log.Len()
		c.cmd = startChild(c.t, c.config, c.data, c.listen, &c.log)
		c.exited = make(chan error, 1)
		go func(cmd *exec.Cmd, exited chan<- error) { exited <- cmd.Wait() }(c.cmd, c.exited)
		c.stack.base = "http://" + c.listen
		err := waitHealthyOrExit(ctx, c.stack.base, c.exited)
		if err == nil {
			return
		}
		out := c.log.String()[from:]
		if attempt < 3 && strings.Contains(out, "listen on "+c.listen) && strings.Contains(out, "address already in use") {
			c.t.Logf("%s was taken while drover dev was down; starting it on another port", c.listen)
			c.listen = fmt.Sprintf("127.0.0.1:%d", freePort(c.t))
			continue
		}
		c.t.Fatalf("drover dev did not become healthy: %v\n%s", err, out)
	}
}

// waitHealthyOrExit waits until base answers /healthz, the child exits
// (its Wait on exited), or ctx ends.
func waitHealthyOrExit(ctx context.Context, base string, exited <-chan error) error {
	for {
		if body, err := httpGet(base + "/healthz"); err == nil && strings.Contains(body, "ok") {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("it exited first (%v)", err)
		case <-ctx.Done():
			return fmt.Errorf("not within the test's time: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// restart kills drover dev with SIGKILL, as a crash would, and starts it
// again on the same data dir.
func (c *childDev) restart(ctx context.Context) {
	c.t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatal(err)
	}
	<-c.exited
	c.start(ctx)
}

// stop stops the child cleanly (SIGTERM, so the apps it runs stop too),
// and kills it after 30 s.
func (c *childDev) stop() {
	if c.cmd == nil || c.cmd.ProcessState != nil {
		return
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		<-c.exited
	}
}

// stopChild stops a drover dev child cleanly, so the apps it runs stop too,
// and kills it if it will not.
func stopChild(cmd *exec.Cmd) {
	if cmd.ProcessState != nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// appProcesses counts the running bin/web programs of app started from
// data, found by their environment and working directory (the shell that
// starts each one is not counted).
func appProcesses(data, app string) int {
	n := 0
	var slugDirs []os.FileInfo
	matches, _ := filepath.Glob(filepath.Join(data, "regions", "*", "apps", app, "v*", "slug"))
	for _, m := range matches {
		if fi, err := os.Stat(m); err == nil {
			slugDirs = append(slugDirs, fi)
		}
	}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		comm, err := os.ReadFile(filepath.Join("/proc", d.Name(), "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != "web" {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", d.Name(), "cwd"))
		if err != nil {
			continue
		}
		// A sandboxed app works in /app, its slug dir in data bound there:
		// the same dir, as the kernel sees it.
		if cwd == sandbox.AppDir {
			if fi, err := os.Stat(filepath.Join("/proc", d.Name(), "cwd")); err == nil && slices.ContainsFunc(slugDirs, func(s os.FileInfo) bool { return os.SameFile(s, fi) }) {
				cwd = data + string(filepath.Separator) + "sandboxed"
			}
		}
		if !strings.HasPrefix(cwd, data+string(filepath.Separator)) {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", d.Name(), "environ"))
		if err != nil {
			continue
		}
		vars := strings.Split(string(env), "\x00")
		hasApp, isWeb := false, false
		for _, v := range vars {
			hasApp = hasApp || v == "DROVER_APP="+app
			isWeb = isWeb || strings.HasPrefix(v, "DYNO=web.")
		}
		if hasApp && isWeb {
			n++
		}
	}
	return n
}

func TestE2EKilledMidDeployFinishesOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: runs drover dev in a child process; skipped by -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	repo := newGitRepo(t)
	dev := startChildDev(ctx, t, writeConfig(t, repo.dir))
	s, data := dev.stack, dev.data
	// The release phase takes long enough to be killed in the middle of,
	// and says which run it is.
	c1 := repo.commit("survivor", "web: bin/web\nrelease: echo run $(od -An -N8 -tx8 /dev/urandom); sleep 4; echo migrated\n")
	if code, body := s.push(ctx, "d-1", pushPayload(t, repo.dir, c1)); code != http.StatusAccepted {
		t.Fatalf("push: %d %s", code, body)
	}
	taskOutput := filepath.Join(data, "regions", "local-a", "tasks", "hello-staging-v1-release", "output")
	var firstRun string
	eventually(ctx, t, "the release phase to start", func() bool {
		b, _ := os.ReadFile(taskOutput)
		firstRun, _, _ = strings.Cut(string(b), "\n")
		return strings.HasPrefix(firstRun, "run ")
	})
	dev.restart(ctx)
	t.Logf("killed drover dev with SIGKILL while v1's release phase ran (%s), and started it again", firstRun)
	v1 := s.waitRelease(ctx, "hello-staging", 1)
	if v1.Status != pipelines.ReleaseSucceeded || v1.Commit != c1 {
		t.Fatalf("v1 after restart = %+v", v1)
	}
	if rs := s.releases(ctx, "hello-staging"); len(rs) != 1 {
		t.Fatalf("%d releases after restart, want exactly 1", len(rs))
	}
	// The restarted drover adopted the release phase it found running,
	// and did not run it again.
	if !strings.Contains(v1.Output, firstRun+"\nmigrated") || strings.Count(v1.Output, "run ") != 1 {
		t.Fatalf("release phase output after the restart = %q; want the one run %q, finished", v1.Output, firstRun)
	}
	s.answersEverywhere(ctx, "hello-staging", 2, "survivor from hello-staging v1")
	if n := appProcesses(data, "hello-staging"); n != 2 {
		t.Fatalf("%d web processes of hello-staging, want 2 (one per region)", n)
	}

	// SIGTERM stops drover dev cleanly, and its apps with it.
	if err := dev.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-dev.exited:
		if err != nil {
			t.Fatalf("drover dev exited with %v after SIGTERM", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("drover dev did not stop within 30s of SIGTERM")
	}
	if n := appProcesses(data, "hello-staging"); n != 0 {
		t.Fatalf("%d web processes left after drover dev stopped", n)
	}
}

// TestE2ENomadRegion pushes to a stage whose first region is a real Nomad
// agent (NOMAD_ADDR, e.g. `nomad agent -dev`) and whose second is local:
// the release phase runs as a Nomad batch job, and the app answers in both.
func TestE2ENomadRegion(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end; skipped by -short")
	}
	addr := os.Getenv("NOMAD_ADDR")
	if addr == "" {
		t.Skip("NOMAD_ADDR is not set: drover dev against a real Nomad agent was not tested (start `nomad agent -dev` and set NOMAD_ADDR)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	t.Setenv(secretEnv, "e2e-secret")
	app := fmt.Sprintf("hello-e2e-%d", time.Now().Unix()%100000)
	repo := newGitRepo(t)
	config := filepath.Join(t.TempDir(), "drover.yaml")
	os.WriteFile(config, []byte(fmt.Sprintf(`github: { webhook_secret_env: %s }
regions:
  nomad-dev: { driver: nomad, address: %q }
  local-a: { driver: local }
pipelines:
  hello:
    repo: octo-org/hello
    source: file://%s
    stages:
      staging: { app: %s, branch: main, regions: [nomad-dev, local-a], job_template: job.nomad.hcl }
`, secretEnv, addr, repo.dir, app)), 0o644)
	// The stage's job template, in HCL, parsed by the agent.
	os.WriteFile(filepath.Join(filepath.Dir(config), "job.nomad.hcl"), []byte("job \"x\" {\n  priority = 70\n  meta { team = \"payments\" }\n}\n"), 0o644)
	d, s := startDev(t, ctx, config, t.TempDir())
	defer d.Close()
	defer d.regions["nomad-dev"].Stop(context.Background(), app)

	c1 := repo.commit("from nomad", "web: bin/web\nrelease: echo migrating $DROVER_RELEASE in $DROVER_REGION\n")
	if code, body := s.push(ctx, "d-1", pushPayload(t, repo.dir, c1)); code != http.StatusAccepted {
		t.Fatalf("push: %d %s", code, body)
	}
	v1 := s.waitRelease(ctx, app, 1)
	if v1.Status != pipelines.ReleaseSucceeded {
		t.Fatalf("v1 = %s: %s", v1.Status, v1.Reason)
	}
	if !strings.Contains(v1.Output, "migrating v1 in nomad-dev") {
		t.Fatalf("release phase output = %q, want it from the Nomad batch job", v1.Output)
	}
	s.answersEverywhere(ctx, app, 2, "from nomad from "+app+" v1")
	st, err := d.regions["nomad-dev"].Status(ctx, app)
	if err != nil || st.Release != 1 || st.Slug != v1.Slug {
		t.Fatalf("nomad status = %+v, %v", st, err)
	}
	var job struct {
		Priority int
		Meta     map[string]string
	}
	if body, err := httpGet(addr + "/v1/job/" + app); err != nil || json.Unmarshal([]byte(body), &job) != nil {
		t.Fatalf("read job from Nomad: %v %s", err, body)
	}
	if job.Priority != 70 || job.Meta["team"] != "payments" || job.Meta["drover.release"] != "1" {
		t.Fatalf("job priority %d, meta %v; want the template's merged under drover's", job.Priority, job.Meta)
	}

	// Nomad replaces the allocation after the release (a node drain would):
	// the URL drover shows follows it, read live from the service registry.
	nomadURL := func() string {
		var info api.AppInfo
		if err := s.get(ctx, "/api/v1/apps/"+app, &info); err != nil {
			t.Fatal(err)
		}
		return info.Where[0].URL
	}
	before := nomadURL()
	var allocs []struct{ ID, ClientStatus string }
	if body, err := httpGet(addr + "/v1/job/" + app + "/allocations"); err != nil || json.Unmarshal([]byte(body), &allocs) != nil {
		t.Fatalf("allocations: %v %s", err, body)
	}
	for _, a := range allocs {
		if a.ClientStatus == "running" {
			resp, err := http.Post(addr+"/v1/allocation/"+a.ID+"/stop", "application/json", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	eventually(ctx, t, "apps info to show the replacement allocation's address", func() bool {
		u := nomadURL()
		body, err := httpGet(u)
		return u != before && err == nil && strings.Contains(body, "from nomad from "+app+" v1")
	})
}

// TestE2EPromoteAndRollback promotes staging's builds to production with
// the CLI, then rolls production back, on the dev stack.
func TestE2EPromoteAndRollback(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end; skipped by -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	t.Setenv(secretEnv, "e2e-secret")
	repo := newGitRepo(t)
	d, s := startDev(t, ctx, writeConfig(t, repo.dir), t.TempDir())
	defer d.Close()
	t.Setenv("DROVER_URL", "")
	t.Setenv("DROVER_TOKEN", "")
	cli := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := Run(ctx, args, Streams{Out: &out, Err: &errOut}); code != exitOK {
			t.Fatalf("drover %s: exit %d\n%s%s", strings.Join(args, " "), code, errOut.String(), out.String())
		}
		t.Logf("drover %s:\n%s%s", strings.Join(args, " "), errOut.String(), out.String())
		return out.String()
	}
	pushAndPromote := func(greeting string, staging, prod int) pipelines.Release {
		c := repo.commit(greeting, "web: bin/web\n")
		if code, body := s.push(ctx, "d-"+greeting, pushPayload(t, repo.dir, c)); code != http.StatusAccepted {
			t.Fatalf("push %s: %d %s", greeting, code, body)
		}
		st := s.waitRelease(ctx, "hello-staging", staging)
		if st.Status != pipelines.ReleaseSucceeded {
			t.Fatalf("staging v%d = %s: %s", staging, st.Status, st.Reason)
		}
		args := []string{"promote", "hello"}
		if prod > 1 {
			// The preview changes nothing; --preview --yes promotes what
			// it showed.
			preview := cli("promote", "hello", "--preview")
			for _, want := range []string{fmt.Sprintf("Promote hello-staging v%d", staging), fmt.Sprintf("to hello (now v%d", prod-1),
				"Formation: unchanged", "local-a (local): start web.1 (the new release); stop web.1 (v1)"} {
				if !strings.Contains(preview, want) {
					t.Fatalf("preview lacks %q:\n%s", want, preview)
				}
			}
			if rs := s.releases(ctx, "hello"); len(rs) != prod-1 {
				t.Fatalf("a preview made a release: %d", len(rs))
			}
			args = append(args, "--preview", "--yes")
		}
		out := cli(args...)
		if !strings.Contains(out, fmt.Sprintf("hello v%d is running in local-a, local-b", prod)) {
			t.Fatalf("promote said %q", out)
		}
		r := s.waitRelease(ctx, "hello", prod)
		if r.Slug != st.Slug || r.Status != pipelines.ReleaseSucceeded {
			t.Fatalf("production v%d = %+v; want staging's slug %s", prod, r, st.Slug)
		}
		s.answersEverywhere(ctx, "hello", 2, fmt.Sprintf("%s from hello v%d", greeting, prod))
		return r
	}
	a := pushAndPromote("A", 1, 1)
	pushAndPromote("B", 2, 2)

	// The rollback's preview changes nothing.
	preview := cli("rollback", "hello", "--preview")
	for _, want := range []string{"Roll hello back to v1", "(now v2 at", "Formation: unchanged", "local-b (local): start web.1 (the new release); stop web.1 (v2)"} {
		if !strings.Contains(preview, want) {
			t.Fatalf("rollback preview lacks %q:\n%s", want, preview)
		}
	}
	if rs := s.releases(ctx, "hello"); len(rs) != 2 {
		t.Fatalf("a rollback preview made a release: %d", len(rs))
	}
	start := time.Now()
	out := cli("rollback", "hello")
	s.answersEverywhere(ctx, "hello", 2, "A from hello v3")
	t.Logf("rollback to every region answering with the old release: %v", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(out, "hello v3 is running") {
		t.Fatalf("rollback said %q", out)
	}
	rs := s.releases(ctx, "hello")
	var got []string
	for i := len(rs) - 1; i >= 0; i-- {
		got = append(got, fmt.Sprintf("%s %s %q", rs[i].Name(), rs[i].Status, rs[i].Description))
	}
	if len(rs) != 3 || rs[0].Slug != a.Slug || rs[0].Description != "rollback to v1" || rs[2].Description != "promoted from hello-staging v1" {
		t.Fatalf("production ledger:\n%s", strings.Join(got, "\n"))
	}
	// Config and scale changes are releases of the current slug, rolled out.
	if out := cli("config", "set", "hello", "FEATURE=on"); !strings.Contains(out, "hello v4 is running") {
		t.Fatalf("config set said %q", out)
	}
	if out := cli("config", "get", "hello"); !strings.Contains(out, "FEATURE=on") {
		t.Fatalf("config get said %q", out)
	}
	if out := cli("ps:scale", "hello", "web=2"); !strings.Contains(out, "hello v5 is running") {
		t.Fatalf("ps:scale said %q", out)
	}
	v4, v5 := s.waitRelease(ctx, "hello", 4), s.waitRelease(ctx, "hello", 5)
	if v4.Slug != a.Slug || v4.ConfigVersion != 1 || v5.Formation["web"] != 2 || v5.Slug != a.Slug {
		t.Fatalf("v4 = %+v\nv5 = %+v", v4, v5)
	}
	s.answersEverywhere(ctx, "hello", 2, "A from hello v5")

	// The queue says where an operation waits: two re-releases asked for
	// back to back, the second behind the first.
	var first, second api.Operation
	if err := s.call(ctx, "POST", "/api/v1/apps/hello/releases", `{"description": "first"}`, &first); err != nil {
		t.Fatal(err)
	}
	if err := s.call(ctx, "POST", "/api/v1/apps/hello/releases", `{"description": "second"}`, &second); err != nil {
		t.Fatal(err)
	}
	if first.Ahead == nil || *first.Ahead != 0 || second.Ahead == nil || *second.Ahead != 1 {
		t.Fatalf("ahead of the first %v, of the second %v; want 0 and 1", first.Ahead, second.Ahead)
	}
	if v6, v7 := s.waitRelease(ctx, "hello", 6), s.waitRelease(ctx, "hello", 7); v6.Description != "first" || v7.Description != "second" || v7.Status != pipelines.ReleaseSucceeded {
		t.Fatalf("v6 %q, v7 %q %s", v6.Description, v7.Description, v7.Status)
	}

	// Rolling staging back pauses its auto-deploy: the next push is
	// recorded as skipped, and deploys once resumed and pushed again.
	cli("rollback", "hello-staging")
	if r := s.waitRelease(ctx, "hello-staging", 3); r.Description != "rollback to v1" {
		t.Fatalf("staging v3 = %+v", r)
	}
	// The pause outlives the app's queue workflow, which ends when idle
	// (here: is terminated) and starts afresh on the next push.
	eventually(ctx, t, "the rollback to end", func() bool {
		st, err := (&workflows.Starter{Client: d.client}).AppStatus(ctx, "hello-staging")
		return err == nil && st.Running == ""
	})
	if err := d.client.TerminateWorkflow(ctx, workflows.AppWorkflowID("hello-staging"), "", "the queue ended"); err != nil {
		t.Fatal(err)
	}
	c := repo.commit("C", "web: bin/web\n")
	if code, body := s.push(ctx, "d-C", pushPayload(t, repo.dir, c)); code != http.StatusAccepted {
		t.Fatalf("push C: %d %s", code, body)
	}
	if r := s.waitRelease(ctx, "hello-staging", 4); r.Status != pipelines.ReleaseSkipped || !strings.Contains(r.Description, "drover autodeploy resume hello-staging") {
		t.Fatalf("push after rollback = %s %q; want skipped with how to resume", r.Status, r.Description)
	}
	if out := cli("autodeploy", "resume", "hello-staging"); !strings.Contains(out, "resumed") {
		t.Fatalf("autodeploy resume said %q", out)
	}
	if code, body := s.push(ctx, "d-C-again", pushPayload(t, repo.dir, c)); code != http.StatusAccepted {
		t.Fatalf("push C again: %d %s", code, body)
	}
	if r := s.waitRelease(ctx, "hello-staging", 5); r.Status != pipelines.ReleaseSucceeded || r.Commit != c {
		t.Fatalf("push after resume = %+v", r)
	}

	// A release that was never built cannot be rolled back to, and says so.
	var errOut bytes.Buffer
	if code := Run(ctx, []string{"rollback", "hello", "v9"}, Streams{Out: io.Discard, Err: &errOut}); code != exitNotFound {
		t.Fatalf("rollback to v9: exit %d, %s", code, errOut.String())
	}
}

// TestE2EApproval: a stage with require_approval holds a push's release
// until `drover approve`, and records who approved it.
func TestE2EApproval(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end; skipped by -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t.Setenv(secretEnv, "e2e-secret")
	repo := newGitRepo(t)
	config := filepath.Join(t.TempDir(), "drover.yaml")
	os.WriteFile(config, []byte(fmt.Sprintf(`github: { webhook_secret_env: %s }
regions:
  local-a: { driver: local }
pipelines:
  hello:
    repo: octo-org/hello
    source: file://%s
    stages:
      staging: { app: hello-staging, branch: main, regions: [local-a], require_approval: true }
api:
  tokens: [{ name: lead, token_env: DROVER_E2E_LEAD, scopes: [read, approve] }]
`, secretEnv, repo.dir)), 0o644)
	t.Setenv("DROVER_E2E_LEAD", "lead-token")
	d, s := startDev(t, ctx, config, t.TempDir())
	defer d.Close()
	t.Setenv("DROVER_URL", "")
	t.Setenv("DROVER_TOKEN", "")
	c1 := repo.commit("approved", "web: bin/web\n")
	if code, body := s.push(ctx, "d-1", pushPayload(t, repo.dir, c1)); code != http.StatusAccepted {
		t.Fatalf("push: %d %s", code, body)
	}
	// The release waits, with no region touched.
	for {
		if rs := s.releases(ctx, "hello-staging"); len(rs) == 1 {
			if rs[0].Status != pipelines.ReleasePending || rs[0].Regions[0].Status != pipelines.RegionPending {
				t.Fatalf("before approval v1 = %+v", rs[0])
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatal("no release")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	if r := s.releases(ctx, "hello-staging")[0]; r.Status != pipelines.ReleasePending {
		t.Fatalf("v1 went on without approval: %+v", r)
	}
	var out, errOut bytes.Buffer
	if code := Run(ctx, []string{"approve", workflows.DeployWorkflowID("hello-staging", c1)}, Streams{Out: &out, Err: &errOut}); code != exitOK {
		t.Fatalf("drover approve: exit %d: %s", code, errOut.String())
	}
	v1 := s.waitRelease(ctx, "hello-staging", 1)
	if v1.Status != pipelines.ReleaseSucceeded || !strings.HasSuffix(v1.Description, "approved by admin") {
		t.Fatalf("v1 = %s %q", v1.Status, v1.Description)
	}
	s.answersEverywhere(ctx, "hello-staging", 1, "approved from hello-staging v1")

	// A release the admin token asked for (a re-release) cannot be
	// approved by the admin token; the lead's token approves it.
	var op api.Operation
	if err := s.call(ctx, "POST", "/api/v1/apps/hello-staging/releases", `{"description": "re-release"}`, &op); err != nil || op.ID == "" {
		t.Fatalf("re-release: %v %+v", err, op)
	}
	eventually(ctx, t, "v2 to wait for approval", func() bool {
		rs := s.releases(ctx, "hello-staging")
		return len(rs) == 2 && rs[0].Status == pipelines.ReleasePending
	})
	out.Reset()
	errOut.Reset()
	if code := Run(ctx, []string{"approve", op.ID}, Streams{Out: &out, Err: &errOut}); code == exitOK || !strings.Contains(errOut.String(), "may not approve it too") {
		t.Fatalf("the requester approving its own release: exit %d: %s", code, errOut.String())
	}
	t.Setenv("DROVER_URL", s.base)
	t.Setenv("DROVER_TOKEN", "lead-token")
	if code := Run(ctx, []string{"approve", op.ID}, Streams{Out: &out, Err: &errOut}); code != exitOK {
		t.Fatalf("drover approve as lead: exit %d: %s", code, errOut.String())
	}
	if v2 := s.waitRelease(ctx, "hello-staging", 2); v2.Status != pipelines.ReleaseSucceeded || !strings.HasSuffix(v2.Description, "approved by lead") {
		t.Fatalf("v2 = %s %q", v2.Status, v2.Description)
	}
	// An operation that is not waiting says where it is, with 409, rather
	// than a yes that changes nothing.
	err := s.call(ctx, "POST", "/api/v1/approvals", `{"operation": "`+op.ID+`", "approved": true}`, nil)
	if err == nil || !strings.Contains(err.Error(), ": 409 ") || !strings.Contains(err.Error(), "is succeeded, not waiting for approval") {
		t.Fatalf("approving a finished operation: %v", err)
	}
	// A deploy ended from outside while it waits (terminated, or timed
	// out by the server) still ends its release, instead of leaving it
	// pending forever.
	c3 := repo.commit("abandoned", "web: bin/web\n")
	if code, body := s.push(ctx, "d-3", pushPayload(t, repo.dir, c3)); code != http.StatusAccepted {
		t.Fatalf("push: %d %s", code, body)
	}
	eventually(ctx, t, "v3 to wait for approval", func() bool {
		rs := s.releases(ctx, "hello-staging")
		return len(rs) == 3 && rs[0].Status == pipelines.ReleasePending
	})
	if err := d.client.TerminateWorkflow(ctx, workflows.DeployWorkflowID("hello-staging", c3), "", "operator"); err != nil {
		t.Fatal(err)
	}
	if v3 := s.waitRelease(ctx, "hello-staging", 3); v3.Status != pipelines.ReleaseFailed || !strings.Contains(v3.Reason, "was terminated before it finished") {
		t.Fatalf("v3 after its deploy was terminated = %s %q", v3.Status, v3.Reason)
	}

	// An operation nobody queued is not "queued" forever: 404 at once,
	// for a follower's event stream too.
	unknown := workflows.OperationWorkflowID(workflows.OpRollback, "hello-staging", "0123456789ab")
	req, _ := http.NewRequestWithContext(ctx, "GET", s.base+"/api/v1/operations/"+unknown, nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(b), "no operation "+unknown) {
		t.Fatalf("following an unknown operation: %d %s", resp.StatusCode, b)
	}
}
