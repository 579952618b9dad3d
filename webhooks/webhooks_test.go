package webhooks_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/drover/drover/deployments"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/webhooks"
	"github.com/drover/drover/workflows"
)

const secret = "It's a Secret to Everybody"

var fixtures = filepath.Join("..", "..", "shared", "fixtures", "github")

func mustFixture(tb testing.TB, name string) map[string]any {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		tb.Fatalf("fixture %s: %v", name, err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

// mustPush is the real push payload, pointed at the configured repository.
func mustPush(tb testing.TB, ref, after string) []byte {
	tb.Helper()
	p := mustFixture(tb, "push.payload.json")
	p["ref"], p["after"], p["deleted"] = ref, after, false
	repo := p["repository"].(map[string]any)
	// A signed payload naming another clone URL must not move the build.
	repo["full_name"], repo["clone_url"] = "octo-org/hello", "https://evil.example.com/octo-org/hello.git"
	b, _ := json.Marshal(p)
	return b
}

func sign(body []byte, key string) string {
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

type call struct {
	app string
	req workflows.DeployRequest
}

type fakeDeployer struct {
	mu    sync.Mutex
	calls []call
	err   error
	// waiting are the deploy workflows that still run.
	waiting map[string]bool
	signals []string
	// reviews are the pull request events handed to review apps, and
	// running the review app workflows started.
	reviews []review
	running map[string]bool
}

func (d *fakeDeployer) SignalCI(ctx context.Context, id string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.waiting[id] {
		return false, nil
	}
	d.signals = append(d.signals, id)
	return true, nil
}

func (d *fakeDeployer) Deploy(ctx context.Context, app string, req workflows.DeployRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return d.err
	}
	d.calls = append(d.calls, call{app, req})
	return nil
}

func (d *fakeDeployer) ReviewEvent(ctx context.Context, start workflows.ReviewInput, ev workflows.PREvent) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return d.err
	}
	d.reviews = append(d.reviews, review{start, ev})
	if d.running == nil {
		d.running = map[string]bool{}
	}
	d.running[workflows.ReviewWorkflowID(start.Stage.Request.Repo, start.Number)] = true
	return nil
}

func (d *fakeDeployer) ReviewClose(ctx context.Context, repo string, number int, ev workflows.PREvent) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.running[workflows.ReviewWorkflowID(repo, number)] {
		return false, nil
	}
	d.reviews = append(d.reviews, review{workflows.ReviewInput{Number: number}, ev})
	return true, nil
}

// effects counts what the handler has asked of the deployer.
func (d *fakeDeployer) effects() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.calls) + len(d.signals) + len(d.reviews)
}

type review struct {
	start workflows.ReviewInput
	ev    workflows.PREvent
}

type memDeliveries struct {
	mu   sync.Mutex
	seen map[string]bool
	// released is app/commit → the version that released it.
	released map[string]int
	// queued is app/commit of pushes queued and not forgotten.
	queued map[string]bool
	// waits is repo@commit → the deploy workflows waiting for its CI.
	waits map[string][]string
	// err fails every push's intake, as a database that is down does.
	err error
}

// AcceptPush is the store's intake, in memory: redelivery, released,
// in flight, else queued.
func (m *memDeliveries) AcceptPush(ctx context.Context, p deployments.Push) (deployments.PushIntake, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return deployments.PushIntake{}, m.err
	}
	if p.Delivery != "" {
		if m.seen[p.Delivery] {
			return deployments.PushIntake{Verdict: deployments.PushRedelivered}, nil
		}
		m.seen[p.Delivery] = true
	}
	if v, ok := m.released[p.App+"/"+p.Commit]; ok {
		return deployments.PushIntake{Verdict: deployments.PushReleased, Release: pipelines.Release{App: p.App, Version: v, Commit: p.Commit, Status: pipelines.ReleaseSucceeded}}, nil
	}
	if m.queued == nil {
		m.queued = map[string]bool{}
	}
	if m.queued[p.App+"/"+p.Commit] {
		return deployments.PushIntake{Verdict: deployments.PushInFlight}, nil
	}
	m.queued[p.App+"/"+p.Commit] = true
	return deployments.PushIntake{Verdict: deployments.PushQueued}, nil
}

// CIWaiters reads waits, keyed by lower-case repo and commit.
func (m *memDeliveries) CIWaiters(ctx context.Context, repo, commit string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.waits[strings.ToLower(repo)+"@"+commit], nil
}

func (m *memDeliveries) ForgetPush(ctx context.Context, app, commit string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.queued, app+"/"+commit)
	return nil
}

func (m *memDeliveries) RecordDelivery(ctx context.Context, id, event string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen[id] {
		return false, nil
	}
	m.seen[id] = true
	return true, nil
}

func (m *memDeliveries) ForgetDelivery(ctx context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.seen, id)
	return nil
}

type server struct {
	engine   *gin.Engine
	deployer *fakeDeployer
}

func newServer(t testing.TB) *server {
	t.Helper()
	cfg, err := pipelines.LoadConfig(filepath.Join("..", "examples", "drover.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := &server{deployer: &fakeDeployer{}}
	h, err := webhooks.New(cfg, secret, s.deployer, &memDeliveries{seen: map[string]bool{}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	gin.SetMode(gin.TestMode)
	s.engine = gin.New()
	h.Register(s.engine)
	return s
}

func (s *server) send(event, delivery string, body []byte, signature string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/webhooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if event != "" {
		req.Header.Set("X-GitHub-Event", event)
	}
	req.Header.Set("X-GitHub-Delivery", delivery)
	if signature != "" {
		req.Header.Set("X-Hub-Signature-256", signature)
	}
	w := httptest.NewRecorder()
	s.engine.ServeHTTP(w, req)
	return w
}

func TestNewRefusesEmptySecret(t *testing.T) {
	if _, err := webhooks.New(&pipelines.Config{}, "", &fakeDeployer{}, nil, nil); err == nil {
		t.Fatal("an empty secret must be refused: go-github accepts unsigned payloads then")
	}
}

func TestWebhookAnswers(t *testing.T) {
	const sha = "1111111111111111111111111111111111111111"
	push := mustPush(t, "refs/heads/main", sha)
	ping, _ := os.ReadFile(filepath.Join(fixtures, "ping.payload.json"))
	tagDelete, _ := os.ReadFile(filepath.Join(fixtures, "push.payload.json"))
	newBranch, _ := os.ReadFile(filepath.Join(fixtures, "push.with-new-branch.payload.json"))
	checkRun, _ := os.ReadFile(filepath.Join(fixtures, "check_run.completed.payload.json"))
	tests := []struct {
		name      string
		event     string
		body      []byte
		signature string
		status    int
		deploys   int
		contains  string
	}{
		{"push deploys", "push", push, sign(push, secret), http.StatusAccepted, 1, `"app":"hello-staging"`},
		{"wrong secret", "push", push, sign(push, "wrong"), http.StatusUnauthorized, 0, "X-Hub-Signature-256"},
		{"no signature", "push", push, "", http.StatusUnauthorized, 0, "X-Hub-Signature-256"},
		{"tampered body", "push", append(bytes.Clone(push[:len(push)-1]), ' ', '}'), sign(push, secret), http.StatusUnauthorized, 0, ""},
		{"malformed json", "push", []byte(`{"ref":`), sign([]byte(`{"ref":`), secret), http.StatusBadRequest, 0, "parse push payload"},
		{"no event header", "", push, sign(push, secret), http.StatusBadRequest, 0, "X-GitHub-Event"},
		{"ping", "ping", ping, sign(ping, secret), http.StatusOK, 0, "pong"},
		{"tag deleted", "push", tagDelete, sign(tagDelete, secret), http.StatusOK, 0, "not a branch"},
		{"unconfigured repo", "push", newBranch, sign(newBranch, secret), http.StatusOK, 0, "no stage"},
		{"other branch", "push", mustPush(t, "refs/heads/dev", sha), sign(mustPush(t, "refs/heads/dev", sha), secret), http.StatusOK, 0, "no stage"},
		{"branch deleted", "push", mustPush(t, "refs/heads/main", strings.Repeat("0", 40)), sign(mustPush(t, "refs/heads/main", strings.Repeat("0", 40)), secret), http.StatusOK, 0, "deleted"},
		{"CI event for an unconfigured repo", "check_run", checkRun, sign(checkRun, secret), http.StatusOK, 0, "no deploy waits"},
		{"event nobody handles", "issues", ping, sign(ping, secret), http.StatusAccepted, 0, "ignored"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t)
			w := s.send(tt.event, "d-"+tt.name, tt.body, tt.signature)
			if w.Code != tt.status {
				t.Fatalf("status = %d, want %d; body %s", w.Code, tt.status, w.Body)
			}
			if !strings.Contains(w.Body.String(), tt.contains) {
				t.Fatalf("body %s does not contain %q", w.Body, tt.contains)
			}
			if len(s.deployer.calls) != tt.deploys {
				t.Fatalf("deploys = %d, want %d", len(s.deployer.calls), tt.deploys)
			}
		})
	}
}

func TestPushQueuesTheStage(t *testing.T) {
	const sha = "2222222222222222222222222222222222222222"
	s := newServer(t)
	push := mustPush(t, "refs/heads/main", sha)
	if w := s.send("push", "delivery-1", push, sign(push, secret)); w.Code != http.StatusAccepted {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	c := s.deployer.calls[0]
	if c.app != "hello-staging" || c.req.Commit != sha || c.req.CloneURL != "https://github.com/octo-org/hello.git" ||
		strings.Join(c.req.Regions, ",") != "local-a" || c.req.Repo != "octo-org/hello" {
		t.Fatalf("deploy call = %+v", c)
	}
	if !strings.Contains(c.req.Description, "push to main by Codertocat") {
		t.Fatalf("description = %q", c.req.Description)
	}
	// GitHub's redelivery carries the same delivery ID: nothing new starts.
	w := s.send("push", "delivery-1", push, sign(push, secret))
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "duplicate") || len(s.deployer.calls) != 1 {
		t.Fatalf("redelivery: %d %s, %d deploys", w.Code, w.Body, len(s.deployer.calls))
	}
}

// TestPushWhenTheDatabaseIsDown: a push whose intake the store cannot
// write is answered 503, starts nothing, and its redelivery, once the
// database is back, is acted on.
func TestPushWhenTheDatabaseIsDown(t *testing.T) {
	const sha = "5555555555555555555555555555555555555555"
	cfg, err := pipelines.LoadConfig(filepath.Join("..", "examples", "drover.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	d, store := &fakeDeployer{}, &memDeliveries{seen: map[string]bool{}, err: errors.New("database is locked")}
	h, err := webhooks.New(cfg, secret, d, store, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s := &server{engine: gin.New(), deployer: d}
	h.Register(s.engine)
	push := mustPush(t, "refs/heads/main", sha)
	if w := s.send("push", "d-db", push, sign(push, secret)); w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "database") || len(d.calls) != 0 {
		t.Fatalf("push while the database is down: %d %s, %d deploys", w.Code, w.Body, len(d.calls))
	}
	store.err = nil
	if w := s.send("push", "d-db", push, sign(push, secret)); w.Code != http.StatusAccepted || len(d.calls) != 1 {
		t.Fatalf("redelivery once the database is back: %d %s, %d deploys", w.Code, w.Body, len(d.calls))
	}
}

func TestPushWhenWorkflowsAreDownCanBeRedelivered(t *testing.T) {
	const sha = "3333333333333333333333333333333333333333"
	s := newServer(t)
	s.deployer.err = errors.New("temporal unavailable")
	push := mustPush(t, "refs/heads/main", sha)
	if w := s.send("push", "d-1", push, sign(push, secret)); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503", w.Code)
	}
	s.deployer.err = nil
	if w := s.send("push", "d-1", push, sign(push, secret)); w.Code != http.StatusAccepted || len(s.deployer.calls) != 1 {
		t.Fatalf("redelivery after outage: %d %s", w.Code, w.Body)
	}
}

// TestPushStormOfOneCommit: the same signed push under fresh delivery IDs
// (a storm, or a replay) queues one deploy; the rest are answered 200
// "duplicate commit" from the store, with no call to the app's queue. A
// push the queue could not take is forgotten, so the next delivery of it
// queues it.
func TestPushStormOfOneCommit(t *testing.T) {
	const sha = "4444444444444444444444444444444444444444"
	s := newServer(t)
	push := mustPush(t, "refs/heads/main", sha)
	s.deployer.err = errors.New("temporal unavailable")
	if w := s.send("push", "storm-0", push, sign(push, secret)); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("push while the queue is down = %d, want 503", w.Code)
	}
	s.deployer.err = nil
	for i := 1; i <= 20; i++ {
		w := s.send("push", fmt.Sprintf("storm-%d", i), push, sign(push, secret))
		switch {
		case i == 1 && w.Code != http.StatusAccepted:
			t.Fatalf("first push after the outage = %d %s", w.Code, w.Body)
		case i > 1 && (w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "duplicate commit: hello-staging is already deploying "+sha)):
			t.Fatalf("push %d of the storm = %d %s", i, w.Code, w.Body)
		}
	}
	if n := len(s.deployer.calls); n != 1 {
		t.Fatalf("a storm of 20 made %d deploy calls, want 1", n)
	}
}

// TestCIWebhooksSignalWaitingDeploys drives the signal path with GitHub's
// real check_suite, check_run, status and workflow_run payloads.
func TestCIWebhooksSignalWaitingDeploys(t *testing.T) {
	cfg, err := pipelines.ParseConfig("drover.yaml", []byte(`github: { webhook_secret: x }
regions: { a: { driver: local } }
pipelines:
  hello:
    repo: Codertocat/Hello-World
    stages:
      review: { regions: [a], wait_for_ci: true }
      staging: { app: hw-staging, branch: main, regions: [a], wait_for_ci: true }
      production: { app: hw, regions: [a] }
  octo:
    repo: octo-org/octo-repo
    stages:
      staging: { app: octo-staging, branch: main, regions: [a], wait_for_ci: true }
`))
	if err != nil {
		t.Fatal(err)
	}
	const (
		hwSHA     = "ec26c3e57ca3a959ca5aad62de7213c562f8c821" // check_suite, check_run
		statusSHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
		octoSHA   = "3484a3fb816e0859fd6e1cea078d76385ff50625" // workflow_run
	)
	hw, review := workflows.DeployWorkflowID("hw-staging", hwSHA), workflows.DeployWorkflowID("hello-pr-2", hwSHA)
	tests := []struct {
		name, fixture, event string
		// waits is repo@commit → the deploys that recorded a wait for it;
		// running the ones whose workflow still runs.
		waits   map[string][]string
		running []string
		want    []string
		status  int
	}{
		{"check_suite", "check_suite.completed", "check_suite", map[string][]string{"codertocat/hello-world@" + hwSHA: {hw}}, []string{hw}, []string{hw}, http.StatusAccepted},
		{"check_run", "check_run.completed", "check_run", map[string][]string{"codertocat/hello-world@" + hwSHA: {hw}}, []string{hw}, []string{hw}, http.StatusAccepted},
		{"status", "status", "status", map[string][]string{"codertocat/hello-world@" + statusSHA: {workflows.DeployWorkflowID("hw-staging", statusSHA)}}, []string{workflows.DeployWorkflowID("hw-staging", statusSHA)}, []string{workflows.DeployWorkflowID("hw-staging", statusSHA)}, http.StatusAccepted},
		{"workflow_run", "workflow_run.completed", "workflow_run", map[string][]string{"octo-org/octo-repo@" + octoSHA: {workflows.DeployWorkflowID("octo-staging", octoSHA)}}, []string{workflows.DeployWorkflowID("octo-staging", octoSHA)}, []string{workflows.DeployWorkflowID("octo-staging", octoSHA)}, http.StatusAccepted},
		// A staging deploy and a review app's deploy of one commit both wait.
		{"two waiting", "check_suite.completed", "check_suite", map[string][]string{"codertocat/hello-world@" + hwSHA: {review, hw}}, []string{hw, review}, []string{review, hw}, http.StatusAccepted},
		{"nobody waits", "check_suite.completed", "check_suite", nil, nil, nil, http.StatusOK},
		// The same commit waited on in another repository is not woken.
		{"other repo", "check_suite.completed", "check_suite", map[string][]string{"octo-org/octo-repo@" + hwSHA: {hw}}, []string{hw}, nil, http.StatusOK},
		// A wait left by a deploy that ended (superseded, timed out).
		{"ended", "check_suite.completed", "check_suite", map[string][]string{"codertocat/hello-world@" + hwSHA: {hw}}, nil, nil, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &fakeDeployer{waiting: map[string]bool{}}
			for _, id := range tt.running {
				d.waiting[id] = true
			}
			h, err := webhooks.New(cfg, secret, d, &memDeliveries{seen: map[string]bool{}, waits: tt.waits}, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			e := gin.New()
			h.Register(e)
			body, err := os.ReadFile(filepath.Join(fixtures, tt.fixture+".payload.json"))
			if err != nil {
				t.Fatal(err)
			}
			w := (&server{engine: e}).send(tt.event, "d", body, sign(body, secret))
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			if fmt.Sprint(d.signals) != fmt.Sprint(tt.want) {
				t.Fatalf("signals = %v, want %v", d.signals, tt.want)
			}
		})
	}
}

func TestBodyLargerThanGitHubsCapIs413(t *testing.T) {
	s := newServer(t)
	big := make([]byte, webhooks.MaxBodyBytes+1)
	w := s.send("push", "d-big", big, sign(big, secret))
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status = %d, want 413", w.Code)
	}
}

// FuzzServe sends any body under any event name, signed with the
// secret, signed with another key or unsigned, under any delivery ID, to
// one handler (so deliveries repeat across inputs as redeliveries do): it
// never answers 5xx, never answers 2xx to what is not signed with the
// secret, and never queues a deploy for an unsigned or badly signed body.
func FuzzServe(f *testing.F) {
	f.Add([]byte(`{"ref":"refs/heads/main","after":"abc","repository":{"full_name":"octo-org/hello"}}`), "push", "d-1", uint8(0))
	f.Add([]byte(`{`), "ping", "", uint8(1))
	f.Add([]byte(`{"action":"completed","check_suite":null}`), "check_suite", "d-2", uint8(2))
	f.Add(mustPush(f, "refs/heads/main", "4444444444444444444444444444444444444444"), "push", "d-push", uint8(0))
	for _, name := range []string{"pull_request.opened.payload.json", "check_suite.completed.payload.json", "status.payload.json"} {
		b, err := os.ReadFile(filepath.Join(fixtures, name))
		if err != nil {
			f.Fatalf("fixture %s: %v", name, err)
		}
		f.Add(b, strings.SplitN(name, ".", 2)[0], "d-"+name, uint8(0))
	}
	s := newServer(f)
	f.Fuzz(func(t *testing.T, body []byte, event, delivery string, signing uint8) {
		var sig string
		switch signing % 3 {
		case 0:
			sig = sign(body, secret)
		case 1:
			sig = sign(body, "not-the-secret")
		}
		before := s.deployer.effects()
		w := s.send(event, delivery, body, sig)
		if w.Code >= 500 {
			t.Fatalf("status %d for %q", w.Code, body)
		}
		if signing%3 != 0 {
			if w.Code < 400 {
				t.Fatalf("status %d for a body not signed with the secret", w.Code)
			}
			if after := s.deployer.effects(); after != before {
				t.Fatalf("a body not signed with the secret queued %d deploys", after-before)
			}
		}
	})
}

// BenchmarkServePush measures the webhook path up to the hand-off to
// Temporal: signature check, parse, stage lookup, delivery record.
func BenchmarkServePush(b *testing.B) {
	cfg, err := pipelines.LoadConfig(filepath.Join("..", "examples", "drover.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	h, err := webhooks.New(cfg, secret, &fakeDeployer{}, &memDeliveries{seen: map[string]bool{}}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	gin.SetMode(gin.TestMode)
	e := gin.New()
	h.Register(e)
	s := &server{engine: e}
	push := mustPush(b, "refs/heads/main", "4444444444444444444444444444444444444444")
	sig := sign(push, secret)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if w := s.send("push", "bench-"+strconv.Itoa(i), push, sig); w.Code != http.StatusAccepted {
			b.Fatalf("status %d", w.Code)
		}
	}
}

// TestPullRequestWebhooksDriveReviewApps sends GitHub's real pull_request
// payloads (opened, synchronize, reopened, closed), signed, and checks
// what reaches the review app's workflow.
func TestPullRequestWebhooksDriveReviewApps(t *testing.T) {
	cfg, err := pipelines.ParseConfig("drover.yaml", []byte(`github: { webhook_secret: x }
regions: { a: { driver: local }, b: { driver: local } }
pipelines:
  hello:
    repo: Codertocat/Hello-World
    stages:
      review: { regions: [a, b], ttl: 48h, config_from: staging, url: 'https://{app}.review.example.com' }
      staging: { app: hw-staging, branch: main, regions: [a] }
`))
	if err != nil {
		t.Fatal(err)
	}
	d := &fakeDeployer{}
	h, err := webhooks.New(cfg, secret, d, &memDeliveries{seen: map[string]bool{}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	e := gin.New()
	h.Register(e)
	s := &server{engine: e}
	send := func(fixture, delivery string, edit func(map[string]any)) *httptest.ResponseRecorder {
		p := mustFixture(t, fixture)
		if edit != nil {
			edit(p)
		}
		body, _ := json.Marshal(p)
		return s.send("pull_request", delivery, body, sign(body, secret))
	}
	// Closed before any review app exists: nothing to destroy.
	if w := send("pull_request.closed.payload.json", "d-0", nil); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "has no review app") {
		t.Fatalf("closed without an app: %d %s", w.Code, w.Body)
	}
	for i, fixture := range []string{"opened", "synchronize", "reopened"} {
		// A head repository clone URL elsewhere must not reach the build.
		w := send("pull_request."+fixture+".payload.json", "d-"+fixture, func(p map[string]any) {
			p["pull_request"].(map[string]any)["head"].(map[string]any)["repo"].(map[string]any)["clone_url"] = "file:///etc"
		})
		if w.Code != http.StatusAccepted || !strings.Contains(w.Body.String(), `"app":"hello-pr-2"`) || !strings.Contains(w.Body.String(), `"operation":"review/codertocat/hello-world/2"`) {
			t.Fatalf("%s: %d %s", fixture, w.Code, w.Body)
		}
		r := d.reviews[i]
		if r.ev.Action != fixture || r.ev.PR.Head != "ec26c3e57ca3a959ca5aad62de7213c562f8c821" || r.ev.PR.Fork || r.ev.PR.Branch != "changes" ||
			r.ev.PR.CloneURL != "https://github.com/Codertocat/Hello-World.git" {
			t.Fatalf("%s event = %+v", fixture, r.ev)
		}
		st := r.start
		if st.App != "hello-pr-2" || st.Pipeline != "hello" || st.Number != 2 || st.Stage.TTL != 48*time.Hour || st.Stage.ConfigFrom != "hw-staging" ||
			st.Stage.URL != "https://hello-pr-2.review.example.com" || st.Stage.Request.Environment != "hello-pr-2" || strings.Join(st.Stage.Request.Regions, ",") != "a,b" {
			t.Fatalf("%s start = %+v", fixture, st)
		}
	}
	// A redelivery starts nothing.
	if w := send("pull_request.synchronize.payload.json", "d-synchronize", nil); w.Code != http.StatusOK || len(d.reviews) != 3 {
		t.Fatalf("redelivery: %d %s (%d events)", w.Code, w.Body, len(d.reviews))
	}
	// From a fork: handed on, marked as a fork (the workflow will not deploy it).
	w := send("pull_request.opened.payload.json", "d-fork", func(p map[string]any) {
		head := p["pull_request"].(map[string]any)["head"].(map[string]any)
		head["repo"].(map[string]any)["full_name"] = "mallory/Hello-World"
		head["sha"] = "1111111111111111111111111111111111111111"
	})
	if w.Code != http.StatusAccepted || !d.reviews[3].ev.PR.Fork {
		t.Fatalf("fork: %d %s %+v", w.Code, w.Body, d.reviews[3].ev)
	}
	// Merged and closed: the app is destroyed, saying why.
	w = send("pull_request.closed.payload.json", "d-closed", func(p map[string]any) { p["pull_request"].(map[string]any)["merged"] = true })
	if w.Code != http.StatusAccepted || d.reviews[4].ev.Action != "closed" || d.reviews[4].ev.Reason != "the pull request was merged" {
		t.Fatalf("closed: %d %s %+v", w.Code, w.Body, d.reviews[4].ev)
	}
	// Actions drover does not act on, malformed payloads, and other repos.
	if w := send("pull_request.opened.payload.json", "d-labeled", func(p map[string]any) { p["action"] = "labeled" }); w.Code != http.StatusOK {
		t.Fatalf("labeled: %d %s", w.Code, w.Body)
	}
	if w := send("pull_request.opened.payload.json", "d-other", func(p map[string]any) {
		p["repository"].(map[string]any)["full_name"] = "someone/else"
	}); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "no pipeline of someone/else has a review stage") {
		t.Fatalf("other repo: %d %s", w.Code, w.Body)
	}
	bad := []byte(`{"action":"opened","pull_request":{}}`)
	if w := s.send("pull_request", "d-bad", bad, sign(bad, secret)); w.Code != http.StatusBadRequest {
		t.Fatalf("malformed: %d %s", w.Code, w.Body)
	}
	// Temporal down: 503, and the delivery is forgotten so GitHub's
	// redelivery works.
	d.err = errors.New("temporal is down")
	if w := send("pull_request.opened.payload.json", "d-down", nil); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("temporal down: %d %s", w.Code, w.Body)
	}
	d.err = nil
	if w := send("pull_request.opened.payload.json", "d-down", nil); w.Code != http.StatusAccepted {
		t.Fatalf("redelivery after the outage: %d %s", w.Code, w.Body)
	}
}

// countingBody records whether anything read it.
type countingBody struct {
	io.Reader
	read *atomic.Int64
}

func (b countingBody) Read(p []byte) (int, error) {
	n, err := b.Reader.Read(p)
	b.read.Add(int64(n))
	return n, err
}

// TestUnverifiableDeliveriesAreRefusedUnread: a delivery with no SHA-256
// signature, with only GitHub's legacy SHA-1 one, or announcing a body
// over GitHub's cap is refused before a byte of its body is read.
func TestUnverifiableDeliveriesAreRefusedUnread(t *testing.T) {
	push := mustPush(t, "refs/heads/main", strings.Repeat("1", 40))
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write(push)
	sha1sig := "sha1=" + hex.EncodeToString(mac.Sum(nil))
	tests := []struct {
		name    string
		headers map[string]string
		length  int64
		status  int
	}{
		{"no signature", nil, int64(len(push)), http.StatusUnauthorized},
		{"SHA-1 signature only", map[string]string{"X-Hub-Signature": sha1sig}, int64(len(push)), http.StatusUnauthorized},
		{"SHA-1 value under the SHA-256 header", map[string]string{"X-Hub-Signature-256": sha1sig}, int64(len(push)), http.StatusUnauthorized},
		{"announced too big", map[string]string{"X-Hub-Signature-256": sign(push, secret)}, webhooks.MaxBodyBytes + 1, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t)
			var read atomic.Int64
			req := httptest.NewRequest(http.MethodPost, "/webhooks/github", countingBody{bytes.NewReader(push), &read})
			req.ContentLength = tt.length
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-GitHub-Event", "push")
			req.Header.Set("X-GitHub-Delivery", "d-1")
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			s.engine.ServeHTTP(w, req)
			if w.Code != tt.status || read.Load() != 0 || len(s.deployer.calls) != 0 {
				t.Fatalf("status %d (want %d), %d body bytes read, %d deploys", w.Code, tt.status, read.Load(), len(s.deployer.calls))
			}
		})
	}
}

// zeros is an endless body of zero bytes, made as it is read.
type zeros struct{ left int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.left <= 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), z.left))
	clear(p[:n])
	z.left -= int64(n)
	return n, nil
}

// TestUnsignedFloodKeepsMemoryFlat sends 32 unsigned 25 MiB posts at once
// to a real HTTP server; the heap must not grow by anything like the
// bodies' size (800 MiB), since none of them is read.
func TestUnsignedFloodKeepsMemoryFlat(t *testing.T) {
	s := newServer(t)
	srv := httptest.NewServer(s.engine)
	defer srv.Close()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var peak atomic.Uint64
	stop := make(chan struct{})
	go func() {
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
			}
		}
	}()
	var wg sync.WaitGroup
	var refused atomic.Int64
	for i := range 32 {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/webhooks/github", &zeros{left: webhooks.MaxBodyBytes})
			req.ContentLength = webhooks.MaxBodyBytes
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-GitHub-Event", "push")
			req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("flood-%d", i))
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				if resp.StatusCode == http.StatusUnauthorized {
					refused.Add(1)
				}
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	close(stop)
	growth := int64(peak.Load()) - int64(before.HeapInuse)
	t.Logf("32 unsigned 25 MiB posts: %d answered 401; heap in use %d MiB before, peak %d MiB (growth %d MiB)",
		refused.Load(), before.HeapInuse>>20, peak.Load()>>20, growth>>20)
	if refused.Load() == 0 {
		t.Fatal("no post was answered 401")
	}
	if growth > 64<<20 {
		t.Fatalf("heap grew by %d MiB under an unsigned flood", growth>>20)
	}
}

// TestReplayedPushOfAReleasedCommitStartsNothing: a delivery ID is not
// signed, so GitHub's signed push replayed under a fresh ID must start
// nothing for a commit the app released, however long ago; a commit whose
// deploy failed (never released) may be pushed again.
func TestReplayedPushOfAReleasedCommitStartsNothing(t *testing.T) {
	cfg, err := pipelines.LoadConfig(filepath.Join("..", "examples", "drover.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	released, failed := strings.Repeat("a", 40), strings.Repeat("b", 40)
	d := &fakeDeployer{}
	h, err := webhooks.New(cfg, secret, d, &memDeliveries{seen: map[string]bool{}, released: map[string]int{"hello-staging/" + released: 3}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	gin.SetMode(gin.TestMode)
	s := &server{engine: gin.New(), deployer: d}
	h.Register(s.engine)
	old := mustPush(t, "refs/heads/main", released)
	if w := s.send("push", "fresh-id-1", old, sign(old, secret)); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "already released") || len(d.calls) != 0 {
		t.Fatalf("replayed push of a released commit = %d %s, %d deploys", w.Code, w.Body, len(d.calls))
	}
	retry := mustPush(t, "refs/heads/main", failed)
	if w := s.send("push", "fresh-id-2", retry, sign(retry, secret)); w.Code != http.StatusAccepted || len(d.calls) != 1 {
		t.Fatalf("push of a commit never released = %d %s, %d deploys", w.Code, w.Body, len(d.calls))
	}
}

// TestNullAndHostileFieldsAreRefused: a signed payload whose object
// fields are null, or whose commit is no SHA, gets a 400 saying so (a
// null check_run once crashed the handler) and queues nothing.
func TestNullAndHostileFieldsAreRefused(t *testing.T) {
	tests := []struct {
		event, fixture string
		edit           func(map[string]any)
		want           string
	}{
		{"check_run", "check_run.completed.payload.json", func(p map[string]any) { p["check_run"] = nil }, "has no repository or commit"},
		{"check_suite", "check_suite.completed.payload.json", func(p map[string]any) { p["check_suite"] = nil }, "has no repository or commit"},
		{"workflow_run", "workflow_run.completed.payload.json", func(p map[string]any) { p["workflow_run"] = nil }, "has no repository or commit"},
		{"status", "status.payload.json", func(p map[string]any) { p["sha"] = "../../etc/passwd" }, "is not a SHA"},
		{"push", "push.payload.json", func(p map[string]any) {
			p["ref"], p["after"], p["deleted"] = "refs/heads/main", "0123456789ABCDEF0123456789ABCDEF01234567", false
		}, "is not a commit SHA"},
	}
	for _, tt := range tests {
		t.Run(tt.event, func(t *testing.T) {
			s := newServer(t)
			p := mustFixture(t, tt.fixture)
			p["repository"].(map[string]any)["full_name"] = "octo-org/hello"
			tt.edit(p)
			b, _ := json.Marshal(p)
			w := s.send(tt.event, "d-1", b, sign(b, secret))
			if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), tt.want) || len(s.deployer.calls) != 0 {
				t.Fatalf("%d %s (%d deploys); want 400 %q", w.Code, w.Body, len(s.deployer.calls), tt.want)
			}
		})
	}
}
