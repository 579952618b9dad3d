package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/go-github/v60/github"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/drover/drover/gh/ghtest"
	"github.com/drover/drover/pipelines"
)

// BenchmarkIntake offers webhook storms to drover dev and to a bare gin +
// go-github handler (signature, parse, 202: what any webhook receiver
// does), one after the other in the same run, at INTAKE_RATE deliveries a
// second (5,000) for INTAKE_SECONDS (3):
//   - push: one commit's signed push under fresh delivery IDs, as a
//     replaying sender or a misbehaving proxy sends it; drover must make
//     exactly one release of it, and refuse none;
//   - check_suite: CI events for a commit no deploy waits on, on a stage
//     that waits for CI, so drover must look for a waiting deploy.
//
// Each case reports the median over INTAKE_ROUNDS (3) storms of the p50
// and p99 latency and the rate answered 2xx, and every delivery answered
// otherwise; bench/run prints drover's p99 over the bare handler's.
func BenchmarkIntake(b *testing.B) {
	if testing.Short() {
		b.Skip("starts the dev stack; skipped by -short")
	}
	rate, seconds := envInt(b, "INTAKE_RATE", 5000), envInt(b, "INTAKE_SECONDS", 3)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	repo := newGitRepo(b)
	gh := ghtest.New(b)
	gh.AddRepo("octo-org/hello", "file://"+repo.dir)
	const secret = "bench-secret"
	b.Setenv(secretEnv, secret)
	b.Setenv("DROVER_E2E_GH_TOKEN", ghtest.Token)
	config := filepath.Join(b.TempDir(), "drover.yaml")
	yaml := fmt.Sprintf(`github: { webhook_secret_env: %s, token_env: DROVER_E2E_GH_TOKEN, api_url: '%s' }
regions:
  local-a: { driver: local }
pipelines:
  hello:
    repo: octo-org/hello
    source: file://%s
    stages:
      staging: { app: hello-staging, branch: main, regions: [local-a], wait_for_ci: true }
  warm:
    repo: octo-org/hello
    source: file://%s
    stages:
      staging: { app: warm, branch: warm, regions: [local-a] }
`, secretEnv, gh.URL, repo.dir, repo.dir)
	if err := os.WriteFile(config, []byte(yaml), 0o644); err != nil {
		b.Fatal(err)
	}
	d, s := startDev(b, ctx, config, b.TempDir())
	defer d.Close()
	bare := httptest.NewServer(bareWebhookHandler(secret))
	defer bare.Close()
	targets := []struct{ name, url string }{{"bare", bare.URL + "/webhooks/github"}, {"drover", s.base + "/webhooks/github"}}

	// Rounds alternate the two receivers (bare, drover, bare, drover…) and
	// each figure is the median over the rounds: on 2 cores one storm's
	// p99 is one stall (a GC, the other receiver's leftovers) as often as
	// it is the receiver's own cost, so one storm each said little.
	rounds := envInt(b, "INTAKE_ROUNDS", 3)
	commits := 0
	pushStorm := func(url string, drover bool) *vegeta.Metrics {
		commits++
		c := repo.commit(fmt.Sprintf("storm %d", commits), "web: bin/web\n")
		gh.AddCheckRun("octo-org/hello", c, "test", "completed", "success")
		// The commit is built first, through the warm pipeline's branch,
		// so the storm's one deploy reuses its slug: what is measured is
		// intake, not a compiler sharing the cores.
		warm := pushPayload(b, repo.dir, c)
		warm = []byte(strings.Replace(string(warm), `"refs/heads/main"`, `"refs/heads/warm"`, 1))
		if code, body := s.push(ctx, "warm-"+c, warm); code != http.StatusAccepted {
			b.Fatalf("warm push: %d %s", code, body)
		}
		s.oneReleaseOf(ctx, "warm", c)
		m := storm(url, secret, "push", pushPayload(b, repo.dir, c), rate, seconds)
		if drover {
			s.oneReleaseOf(ctx, "hello-staging", c)
		}
		return m
	}
	noone := strings.Repeat("c0ffee", 7)[:40]
	for _, ev := range []string{"push", "check_suite"} {
		got := map[string][]*vegeta.Metrics{}
		for range rounds {
			for _, tg := range targets {
				if ev == "push" {
					got[tg.name] = append(got[tg.name], pushStorm(tg.url, tg.name == "drover"))
				} else {
					got[tg.name] = append(got[tg.name], storm(tg.url, secret, "check_suite", checkSuiteFor(b, noone), rate, seconds))
				}
			}
		}
		for _, tg := range targets {
			b.Run(ev+"/"+tg.name, func(b *testing.B) {
				for b.Loop() {
				}
				report(b, got[tg.name])
			})
		}
	}
}

// storm offers rate deliveries a second of one signed payload for seconds,
// each under a fresh delivery ID, and returns vegeta's metrics of them.
// A second of the same storm goes first, unmeasured, so both receivers
// are measured with their connections open and their heaps grown: without
// it, whichever ran first after a quiet spell looked slower (the bare
// handler's p99 went from 48 to 241 ms between two runs of one build).
func storm(url, secret, event string, payload []byte, rate, seconds int) *vegeta.Metrics {
	offer(url, secret, event, payload, rate, 1)
	return offer(url, secret, event, payload, rate, seconds)
}

// offer is one storm, measured.
func offer(url, secret, event string, payload []byte, rate, seconds int) *vegeta.Metrics {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(payload)
	sig := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	prefix := strconv.FormatInt(time.Now().UnixNano(), 36)
	var n atomic.Int64
	targeter := func(t *vegeta.Target) error {
		t.Method, t.URL, t.Body = http.MethodPost, url, payload
		t.Header = http.Header{
			"Content-Type":        {"application/json"},
			"X-Github-Event":      {event},
			"X-Github-Delivery":   {prefix + "-" + strconv.FormatInt(n.Add(1), 10)},
			"X-Hub-Signature-256": {sig},
		}
		return nil
	}
	// The attacker's own transport, kept alive as vegeta's is, so its
	// connections can be closed when the storm ends: storms one after
	// another would otherwise hold thousands of idle ones (and as many of
	// the receivers') until the process runs out of descriptors.
	tr := &http.Transport{
		DialContext:         (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: vegeta.DefaultConnections,
	}
	defer tr.CloseIdleConnections()
	attacker := vegeta.NewAttacker(vegeta.Client(&http.Client{Transport: tr, Timeout: 30 * time.Second}), vegeta.Workers(32), vegeta.MaxWorkers(1024))
	var m vegeta.Metrics
	for res := range attacker.Attack(targeter, vegeta.Rate{Freq: rate, Per: time.Second}, time.Duration(seconds)*time.Second, event) {
		m.Add(res)
	}
	m.Close()
	return &m
}

// report writes the median of each figure over the storms as the
// benchmark's metrics, and every refused delivery.
func report(b *testing.B, ms []*vegeta.Metrics) {
	median := func(f func(*vegeta.Metrics) float64) float64 {
		v := make([]float64, len(ms))
		for i, m := range ms {
			v[i] = f(m)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	refused := 0
	for _, m := range ms {
		n := 0
		for code, c := range m.StatusCodes {
			if !strings.HasPrefix(code, "2") {
				n += c
			}
		}
		if len(m.Errors) > 0 || n > 0 {
			b.Logf("answers %v, errors %v", m.StatusCodes, m.Errors)
		}
		refused += n
	}
	var p99s []string
	for _, m := range ms {
		p99s = append(p99s, fmt.Sprintf("%.1f", float64(m.Latencies.P99.Microseconds())/1000))
	}
	b.Logf("p99 of each storm (ms): %s", strings.Join(p99s, ", "))
	b.ReportMetric(median(func(m *vegeta.Metrics) float64 { return float64(m.Latencies.P50.Microseconds()) / 1000 }), "p50-ms")
	b.ReportMetric(median(func(m *vegeta.Metrics) float64 { return float64(m.Latencies.P99.Microseconds()) / 1000 }), "p99-ms")
	b.ReportMetric(median(func(m *vegeta.Metrics) float64 { return m.Throughput }), "ok/s")
	b.ReportMetric(float64(refused), "refused")
	b.ReportMetric(0, "ns/op")
}

// oneReleaseOf waits for app's release of commit and fails unless it is
// the only release of that commit, a second after it succeeded.
func (s *stack) oneReleaseOf(ctx context.Context, app, commit string) {
	s.t.Helper()
	count := func() (n int, ok bool) {
		for _, r := range s.releases(ctx, app) {
			if r.Commit == commit {
				n++
				ok = ok || r.Status == pipelines.ReleaseSucceeded
			}
		}
		return n, ok
	}
	for {
		if _, ok := count(); ok {
			break
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("no release of %s", commit)
		case <-time.After(20 * time.Millisecond):
		}
	}
	time.Sleep(time.Second) // room for a second release, were one coming
	if n, _ := count(); n != 1 {
		s.t.Fatalf("one storm of %s made %d releases of it", commit, n)
	}
}

// bareWebhookHandler is a webhook receiver with nothing of drover's: gin,
// go-github's signature check and parse, and 202.
func bareWebhookHandler(secret string) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.POST("/webhooks/github", func(c *gin.Context) {
		payload, err := github.ValidatePayload(c.Request, []byte(secret))
		if err != nil {
			c.JSON(http.StatusUnauthorized, gin.H{"status": "rejected"})
			return
		}
		if _, err := github.ParseWebHook(github.WebHookType(c.Request), payload); err != nil {
			c.JSON(http.StatusBadRequest, gin.H{"status": "rejected"})
			return
		}
		c.JSON(http.StatusAccepted, gin.H{"status": "accepted"})
	})
	return r
}

// checkSuiteFor is GitHub's check_suite example for octo-org/hello at sha.
func checkSuiteFor(tb testing.TB, sha string) []byte {
	tb.Helper()
	p := fixture(tb, "check_suite.completed.payload.json")
	p["check_suite"].(map[string]any)["head_sha"] = sha
	p["repository"].(map[string]any)["full_name"] = "octo-org/hello"
	out, _ := json.Marshal(p)
	return out
}

func envInt(tb testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}
