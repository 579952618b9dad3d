package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/drover/drover/api"
	"github.com/drover/drover/deployments/slugs"
	"github.com/drover/drover/pipelines"
)

// prodEnv is what the production topology needs from the machine: a
// PostgreSQL server and an S3-compatible server, which .ci/run starts.
type prodEnv struct {
	postgres                 string
	endpoint, access, secret string
	region                   string
}

func needProdEnv(t *testing.T) prodEnv {
	t.Helper()
	e := prodEnv{postgres: os.Getenv("DROVER_TEST_POSTGRES_URL"), endpoint: os.Getenv("DROVER_TEST_S3_ENDPOINT"),
		access: os.Getenv("DROVER_TEST_S3_ACCESS_KEY"), secret: os.Getenv("DROVER_TEST_S3_SECRET_KEY"), region: os.Getenv("DROVER_TEST_S3_REGION")}
	if e.postgres == "" {
		t.Skip("DROVER_TEST_POSTGRES_URL is not set: the production topology needs PostgreSQL (.ci/run starts one)")
	}
	if e.endpoint == "" {
		t.Skip("DROVER_TEST_S3_ENDPOINT is not set: the production topology needs an S3 server (source .ci/start-s3)")
	}
	if e.region == "" {
		e.region = "us-east-1"
	}
	return e
}

// freshDatabase makes an empty PostgreSQL database for one test.
func (e prodEnv) freshDatabase(t *testing.T) string {
	t.Helper()
	admin, err := sql.Open("pgx", e.postgres)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	name := fmt.Sprintf("drover_e2e_%d", time.Now().UnixNano())
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		if a, err := sql.Open("pgx", e.postgres); err == nil {
			a.Exec("DROP DATABASE " + name + " WITH (FORCE)")
			a.Close()
		}
	})
	u, _ := neturl.Parse(e.postgres)
	u.Path = "/" + name
	return u.String()
}

// freshBucket makes an empty bucket and returns its DROVER_SLUG_STORE.
func (e prodEnv) freshBucket(t *testing.T) string {
	t.Helper()
	u, _ := neturl.Parse(e.endpoint)
	mc, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(e.access, e.secret, ""), Secure: u.Scheme == "https", Region: e.region})
	if err != nil {
		t.Fatal(err)
	}
	bucket := fmt.Sprintf("drover-e2e-%d", time.Now().UnixNano())
	if err := mc.MakeBucket(context.Background(), bucket, minio.MakeBucketOptions{Region: e.region}); err != nil {
		t.Fatalf("make bucket: %v", err)
	}
	return fmt.Sprintf("s3://%s?endpoint=%s&region=%s", bucket, neturl.QueryEscape(e.endpoint), e.region)
}

// child is one drover process of the topology: the test binary itself,
// running a drover command line.
type child struct {
	name string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	mu   *sync.Mutex
}

type syncBuffer struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (b syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func startDrover(t testing.TB, name string, env []string, args ...string) *child {
	t.Helper()
	argv, _ := json.Marshal(args)
	c := &child{name: name, log: &bytes.Buffer{}, mu: &sync.Mutex{}}
	c.cmd = exec.Command(os.Args[0])
	c.cmd.Env = append(append(os.Environ(), env...), "DROVER_E2E_CHILD_ARGS="+string(argv))
	w := syncBuffer{c.mu, c.log}
	c.cmd.Stdout, c.cmd.Stderr = w, w
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopChild(c.cmd)
		if t.Failed() {
			t.Logf("--- %s (%v)\n%s", name, args, c.output())
		}
	})
	return c
}

func (c *child) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.log.String()
}

func waitReady(ctx context.Context, t testing.TB, base string) {
	t.Helper()
	for {
		if body, err := httpGet(base + "/readyz"); err == nil && strings.Contains(body, `"ready"`) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("drover at %s never became ready", base)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// startTemporal runs a Temporal server in its own process, as the team's
// cluster would be, and returns its frontend's address.
func startTemporal(ctx context.Context, t testing.TB) string {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freeLocalPort(t))
	_, port, _ := net.SplitHostPort(addr)
	startDrover(t, "temporal", nil, "temporal-dev", "--data", t.TempDir(), "--port", port)
	waitPort(ctx, t, addr)
	return addr
}

func waitPort(ctx context.Context, t testing.TB, addr string) {
	t.Helper()
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("nothing listens on %s", addr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestE2EProductionTopology runs drover as production does, on one
// machine: a Temporal server in its own process, PostgreSQL, an S3
// server, two drover servers and two drover workers. A push signed and
// sent to server A deploys; server B shows the release; the worker running
// the build is killed with SIGKILL and the other worker finishes the
// deploy, exactly once; the slug one process wrote is served by both
// servers with its digest.
func TestE2EProductionTopology(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts Temporal, two servers and two workers; skipped by -short")
	}
	e := needProdEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	temporalAddr := startTemporal(ctx, t)

	// With a real Nomad agent the stage deploys there too, from any
	// worker; without one it has the local region only.
	app, regionsYAML, stageRegions := fmt.Sprintf("hello-prod-%d", time.Now().Unix()%100000), "  local-a: { driver: local }\n", "[local-a]"
	nomadAddr := os.Getenv("NOMAD_ADDR")
	if nomadAddr != "" {
		regionsYAML += fmt.Sprintf("  nomad-dev: { driver: nomad, address: %q }\n", nomadAddr)
		stageRegions = "[local-a, nomad-dev]"
		t.Cleanup(func() {
			req, _ := http.NewRequest("DELETE", nomadAddr+"/v1/job/"+app+"?purge=true", nil)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		})
	} else {
		t.Log("NOMAD_ADDR is not set: the topology deploys to its local region only")
	}
	repo := newGitRepo(t)
	config := filepath.Join(t.TempDir(), "drover.yaml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`regions:
%spipelines:
  hello:
    repo: octo-org/hello
    source: file://%s
    stages:
      staging: { app: %s, branch: main, regions: %s }
`, regionsYAML, repo.dir, app, stageRegions)), 0o644); err != nil {
		t.Fatal(err)
	}
	listenA, listenB := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	const token, secret = "e2e-admin-token", "e2e-prod-secret"
	env := []string{
		"DATABASE_URL=" + e.freshDatabase(t),
		"TEMPORAL_ADDRESS=" + temporalAddr, "TEMPORAL_NAMESPACE=default",
		"DROVER_SLUG_STORE=" + e.freshBucket(t),
		"AWS_ACCESS_KEY_ID=" + e.access, "AWS_SECRET_ACCESS_KEY=" + e.secret,
		"DROVER_CONFIG_KEY=" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"DROVER_WEBHOOK_SECRET=" + secret, "DROVER_ADMIN_TOKEN=" + token,
		"DROVER_PUBLIC_URL=http://" + listenA,
	}
	startDrover(t, "server-a", env, "server", "--config", config, "--listen", listenA, "--data", t.TempDir(), "--log-level", "warn")
	startDrover(t, "server-b", env, "server", "--config", config, "--listen", listenB, "--data", t.TempDir(), "--log-level", "warn")
	dataW1, dataW2 := t.TempDir(), t.TempDir()
	w1 := startDrover(t, "worker-1", env, "worker", "--config", config, "--data", dataW1, "--log-level", "warn")
	waitReady(ctx, t, "http://"+listenA)
	waitReady(ctx, t, "http://"+listenB)
	a := &stack{t: t, base: "http://" + listenA, token: token, secret: secret, config: config}
	b := &stack{t: t, base: "http://" + listenB, token: token, secret: secret, config: config}

	// The push goes to server A while worker 1 is the only worker, so it
	// takes the build; it is killed in the middle of it.
	c1 := repo.commit("hello from production", "web: bin/web\n")
	if code, body := a.push(ctx, "prod-1", pushPayload(t, repo.dir, c1)); code != http.StatusAccepted {
		t.Fatalf("push to server A: %d %s", code, body)
	}
	eventually(ctx, t, "worker 1 to start building", func() bool {
		builds, _ := os.ReadDir(filepath.Join(dataW1, "builds"))
		return len(builds) > 0
	})
	w1.cmd.Process.Signal(syscall.SIGKILL)
	w1.cmd.Wait()
	// Worker 2 serves the main queue and local-a, so it finishes the deploy.
	metricsW2 := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startDrover(t, "worker-2", env, "worker", "--config", config, "--data", dataW2, "--local-regions", "local-a", "--metrics-listen", metricsW2, "--log-level", "warn")

	v1 := b.waitRelease(ctx, app, 1)
	if v1.Status != pipelines.ReleaseSucceeded || v1.Commit != c1 {
		t.Fatalf("v1 through server B = %s %s (%s)", v1.Status, v1.Commit, v1.Reason)
	}
	regionCount := 1
	if nomadAddr != "" {
		regionCount = 2
	}
	b.answersEverywhere(ctx, app, regionCount, "hello from production from "+app+" v1")
	if n := appProcesses(dataW2, app); n != 1 {
		t.Fatalf("%d web processes of %s on worker 2; exactly one deploy makes one", n, app)
	}
	time.Sleep(2 * time.Second) // anything doubled would show by now
	if rs := a.releases(ctx, app); len(rs) != 1 {
		t.Fatalf("%d releases through server A, want exactly 1: %+v", len(rs), rs)
	}

	// drover releases through server B, as a user would.
	t.Setenv("DROVER_URL", b.base)
	t.Setenv("DROVER_TOKEN", token)
	var out, errOut bytes.Buffer
	if code := Run(ctx, []string{"releases", app, "--json"}, Streams{Out: &out, Err: &errOut}); code != exitOK || !strings.Contains(out.String(), c1) {
		t.Fatalf("drover releases via server B: exit %d: %s %s", code, out.String(), errOut.String())
	}

	// The slug worker 2 wrote to the bucket, served by either server: to
	// a grant signed with the shared config key (as Nomad gets) and to a
	// read token, never to a bare request.
	grants := slugs.NewGrants([]byte("0123456789abcdef0123456789abcdef"))
	for _, s := range []*stack{a, b} {
		if body, _ := httpGet(s.base + api.SlugPath(v1.Slug)); !strings.Contains(body, "unauthorized") {
			t.Fatalf("GET %s%s without a grant or token answered: %.200s", s.base, api.SlugPath(v1.Slug), body)
		}
		signed, _ := http.NewRequest("GET", api.SlugURL(s.base, grants, v1.Slug, time.Now().Add(time.Hour)), nil)
		withToken, _ := http.NewRequest("GET", s.base+api.SlugPath(v1.Slug), nil)
		withToken.Header.Set("Authorization", "Bearer "+token)
		for _, req := range []*http.Request{signed, withToken} {
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			sum := sha256.Sum256(body)
			if resp.StatusCode != 200 || hex.EncodeToString(sum[:]) != v1.Slug {
				t.Fatalf("GET %s: %d, sha256 %x", req.URL, resp.StatusCode, sum)
			}
		}
	}

	// Metrics: server A counted the push; /metrics wants a token there.
	if body, _ := httpGet(a.base + "/metrics"); !strings.Contains(body, "unauthorized") {
		t.Fatalf("/metrics without a token answered: %.200s", body)
	}
	req, _ := http.NewRequest("GET", a.base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metricsA, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metricsA), `drover_webhooks_total{event="push",outcome="queued"} 1`) {
		t.Fatalf("server A's metrics lack the queued push:\n%.2000s", metricsA)
	}
	// Worker 2 counted its region deploy (the SDK adds its own labels:
	// namespace, task queue, activity type).
	var last string
	defer func() {
		if t.Failed() {
			t.Logf("worker 2's /metrics:\n%s", grepLines(last, "drover_"))
		}
	}()
	eventually(ctx, t, "worker 2's region deploy metric", func() bool {
		body, _ := httpGet("http://" + metricsW2 + "/metrics")
		last = body
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "drover_region_deploys_total{") && strings.Contains(line, `region="local-a"`) &&
				strings.Contains(line, `result="succeeded"`) && strings.HasSuffix(line, " 1") {
				return true
			}
		}
		return false
	})
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
