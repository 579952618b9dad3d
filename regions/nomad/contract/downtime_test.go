package contract_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
	"github.com/drover/drover/regions/nomad"
)

// prober is a client of the app as an ingress would be: every 50 ms it
// reads the app's live address from Nomad's service registry (registrations
// tagged live; canaries are not) and asks it for a page.
type prober struct {
	client *api.Client
	app    string

	mu               sync.Mutex
	total, missed    int
	firstMiss, lastR string
}

func (p *prober) once(ctx context.Context) {
	ok, why := p.ask(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total++
	if !ok {
		p.missed++
		if p.firstMiss == "" {
			p.firstMiss = why
		}
	}
}

func (p *prober) ask(ctx context.Context) (bool, string) {
	regs, _, err := p.client.Services().Get(nomad.WebServiceName(p.app), (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return false, "registry: " + err.Error()
	}
	var live []*api.ServiceRegistration
	for _, r := range regs {
		if slices.Contains(r.Tags, nomad.TagLive) {
			live = append(live, r)
		}
	}
	if len(live) == 0 {
		return false, "no live registration"
	}
	r := live[time.Now().UnixNano()%int64(len(live))]
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get(fmt.Sprintf("http://%s:%d/", r.Address, r.Port))
	if err != nil {
		return false, err.Error()
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return false, resp.Status
	}
	return true, ""
}

// during probes every 50 ms while fn runs, and returns the probes made and
// those unanswered.
func (p *prober) during(ctx context.Context, fn func()) (total, missed int, first string) {
	p.mu.Lock()
	p.total, p.missed, p.firstMiss = 0, 0, ""
	p.mu.Unlock()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				p.once(ctx)
			}
		}
	}()
	fn()
	close(stop)
	<-done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total, p.missed, p.firstMiss
}

// TestNoDowntime deploys on a real agent while a client asks the app's live
// address every 50 ms: a good release, a release whose web process exits at
// once, a scale change and a rollback must each leave 0 probes unanswered;
// the broken release fails within 15 s, the rollback is healthy within
// 5 s, and no canary or running deployment is left afterwards.
func TestNoDowntime(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	app := fmt.Sprintf("drover-downtime-%d", time.Now().Unix()%100000)
	t.Cleanup(func() { e.region.Stop(context.Background(), app) })
	client, err := api.NewClient(&api.Config{Address: os.Getenv("NOMAD_ADDR"), SecretID: os.Getenv("NOMAD_TOKEN")})
	if err != nil {
		t.Fatal(err)
	}
	p := &prober{client: client, app: app}

	if _, err := e.region.Deploy(ctx, e.deployment(app, 1, map[string]string{"GREETING": "v1"})); err != nil {
		t.Fatalf("deploy v1: %v", err)
	}
	scaled := e.deployment(app, 4, map[string]string{"GREETING": "v2"})
	scaled.Formation = pipelines.Formation{"web": 2}
	// drover marks a release proven when its slug and config ran healthy
	// before: a scale change and a rollback are.
	scaled.Proven = true
	rollback := e.deployment(app, 5, map[string]string{"GREETING": "v1"})
	rollback.Proven = true
	rows := []struct {
		name      string
		d         regions.Deployment
		fails     bool
		maxTime   time.Duration
		wantReply string
	}{
		{"good release v1 → v2 (count 1)", e.deployment(app, 2, map[string]string{"GREETING": "v2"}), false, 0, "v2"},
		{"release whose web exits at once", e.deployment(app, 3, map[string]string{"GREETING": "v3", "CRASH": "1"}), true, 15 * time.Second, "v2"},
		{"release whose web answers 500", e.deployment(app, 8, map[string]string{"GREETING": "v8", "ANSWER_500": "1"}), true, 25 * time.Second, "v2"},
		{"scale web 1 → 2", scaled, false, 0, "v2"},
		{"rollback to v1's slug and config", rollback, false, 5 * time.Second, "v1"},
	}
	var table []string
	for _, row := range rows {
		var took time.Duration
		var derr error
		total, missed, first := p.during(ctx, func() {
			start := time.Now()
			var steps []string
			row.d.Progress = func(msg string) {
				if len(steps) == 0 || !strings.HasSuffix(steps[len(steps)-1], msg) {
					steps = append(steps, fmt.Sprintf("%5.1fs %s", time.Since(start).Seconds(), msg))
				}
			}
			defer func() { t.Logf("%s:\n  %s", row.name, strings.Join(steps, "\n  ")) }()
			_, derr = e.region.Deploy(ctx, row.d)
			took = time.Since(start)
		})
		var de *regions.DeployError
		switch {
		case row.fails && !errors.As(derr, &de):
			t.Errorf("%s: deploy = %v, want it to fail", row.name, derr)
		case !row.fails && derr != nil:
			t.Errorf("%s: deploy failed: %v", row.name, derr)
		}
		if missed != 0 {
			t.Errorf("%s: %d of %d probes unanswered (first: %s)", row.name, missed, total, first)
		}
		if row.maxTime > 0 && took > row.maxTime {
			t.Errorf("%s took %v, want at most %v", row.name, took.Round(100*time.Millisecond), row.maxTime)
		}
		if err := nothingStranded(ctx, client, app); err != nil {
			t.Errorf("after %s: %v", row.name, err)
		}
		if ok, why := p.ask(ctx); !ok {
			t.Errorf("after %s the live address does not answer: %s", row.name, why)
		}
		table = append(table, fmt.Sprintf("| %s | %d of %d | %v |", row.name, missed, total, took.Round(100*time.Millisecond)))
	}

	// A new release while one is still rolling out: registering it
	// cancels the slow one's deployment, whose canaries go, and the old
	// allocations serve until the newest release is healthy.
	var slowErr, nextErr error
	var took time.Duration
	total, missed, first := p.during(ctx, func() {
		start := time.Now()
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, slowErr = e.region.Deploy(ctx, e.deployment(app, 6, map[string]string{"GREETING": "v6", "START_AFTER": "40s"}))
		}()
		time.Sleep(3 * time.Second)
		_, nextErr = e.region.Deploy(ctx, e.deployment(app, 7, map[string]string{"GREETING": "v7"}))
		<-done
		took = time.Since(start)
	})
	var de *regions.DeployError
	if !errors.As(slowErr, &de) || !strings.Contains(de.Reason, "ancel") {
		t.Errorf("the superseded release's deploy = %v, want it cancelled", slowErr)
	}
	if nextErr != nil {
		t.Errorf("the newer release: %v", nextErr)
	}
	if missed != 0 {
		t.Errorf("release during a rollout: %d of %d probes unanswered (first: %s)", missed, total, first)
	}
	if err := nothingStranded(ctx, client, app); err != nil {
		t.Errorf("after a release during a rollout: %v", err)
	}
	// Nomad re-registers promoted allocations with their live tags a
	// moment after the deployment succeeds, while the old ones, still
	// tagged live, wait out their shutdown delay: the live address is
	// v7's within seconds, not at once.
	var body string
	var gerr error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if body, gerr = get(mustLive(ctx, t, p)); (gerr == nil && body == "v7") || time.Now().After(deadline) {
			break
		}
	}
	if gerr != nil || body != "v7" {
		t.Errorf("10 s after a release during a rollout the live address answers %q, %v; want v7", body, gerr)
	}
	table = append(table, fmt.Sprintf("| a release during a slow rollout (the slow one cancelled) | %d of %d | %v |", missed, total, took.Round(100*time.Millisecond)))
	t.Logf("probes every 50 ms on the live service address:\n| deploy | probes unanswered | deploy took |\n| --- | --- | --- |\n%s", strings.Join(table, "\n"))
}

// mustLive is a live address of the app.
func mustLive(ctx context.Context, t *testing.T, p *prober) string {
	t.Helper()
	regs, _, err := p.client.Services().Get(nomad.WebServiceName(p.app), (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range regs {
		if slices.Contains(r.Tags, nomad.TagLive) {
			return fmt.Sprintf("http://%s:%d/", r.Address, r.Port)
		}
	}
	t.Fatal("no live registration")
	return ""
}

// nothingStranded checks that no deployment of app is still running and no
// canary allocation is left running once a deploy returned. Nomad stops a
// failed release's canaries right after the revert, so it is given a few
// seconds.
func nothingStranded(ctx context.Context, c *api.Client, app string) error {
	var last error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		last = nil
		deps, _, err := c.Jobs().Deployments(app, false, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			return err
		}
		for _, d := range deps {
			if d.Status == api.DeploymentStatusRunning || d.Status == api.DeploymentStatusPaused {
				last = fmt.Errorf("deployment %s is still %s", d.ID[:8], d.Status)
			}
		}
		allocs, _, err := c.Jobs().Allocations(app, false, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			return err
		}
		job, _, err := c.Jobs().Info(app, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			return err
		}
		for _, a := range allocs {
			running := a.ClientStatus == api.AllocClientStatusRunning || a.ClientStatus == api.AllocClientStatusPending
			if running && a.DesiredStatus == api.AllocDesiredStatusRun && a.JobVersion != *job.Version {
				last = fmt.Errorf("allocation %s of job version %d still runs beside version %d", a.ID[:8], a.JobVersion, *job.Version)
			}
		}
		if last == nil {
			return nil
		}
	}
	return last
}
