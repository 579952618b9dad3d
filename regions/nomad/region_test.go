package nomad_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
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

// MustRegion returns a Region on f with fast polling.
func MustRegion(tb testing.TB, address string) *nomad.Region {
	tb.Helper()
	s := spec(nil)
	s.Nomad.Address = address
	r, err := nomad.New(s, nomad.Options{PollInterval: 5 * time.Millisecond, WaitTime: 50 * time.Millisecond, Token: "secret"})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// progressLog collects Progress messages.
type progressLog struct {
	mu   sync.Mutex
	msgs []string
}

func (p *progressLog) add(m string) { p.mu.Lock(); p.msgs = append(p.msgs, m); p.mu.Unlock() }

func (p *progressLog) has(sub string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.msgs {
		if strings.Contains(m, sub) {
			return true
		}
	}
	return false
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func webService(app string) []*api.ServiceRegistration {
	return []*api.ServiceRegistration{{
		ID: "_nomad-task-1", ServiceName: app + "-web", Namespace: "apps", JobID: app,
		AllocID: "a1", Address: "10.0.0.7", Port: 23456,
	}}
}

func TestDeployNewJobSucceeds(t *testing.T) {
	f := newFakeNomad(t)
	f.steps = steps("d1", 2, api.DeploymentStatusRunning, api.DeploymentStatusRunning, api.DeploymentStatusRunning, api.DeploymentStatusSuccessful)
	f.services["hello-web"] = webService("hello")
	r := MustRegion(t, f.srv.URL)
	var p progressLog
	d := deployment(pipelines.Formation{"web": 2, "worker": 0})
	d.Progress = p.add

	res, err := r.Deploy(ctx(t), d)
	if err != nil {
		t.Fatal(err)
	}
	if res.URL != "http://10.0.0.7:23456" {
		t.Errorf("URL = %q", res.URL)
	}
	regs, idx, _ := f.snapshot()
	if len(regs) != 1 {
		t.Fatalf("registers = %d, want 1", len(regs))
	}
	if regs[0]["EnforceIndex"] != true {
		t.Errorf("EnforceIndex = %v, want true", regs[0]["EnforceIndex"])
	}
	if mi, ok := regs[0]["JobModifyIndex"]; ok && mi != float64(0) {
		t.Errorf("JobModifyIndex = %v, want 0 for a new job", mi)
	}
	job := regs[0]["Job"].(map[string]any)
	if job["ID"] != "hello" || job["Region"] != "europe" || job["Namespace"] != "apps" {
		t.Errorf("job = %v/%v/%v", job["ID"], job["Region"], job["Namespace"])
	}
	// Blocking queries: each asks for news after the index it last saw.
	if len(idx) < 3 {
		t.Fatalf("deployment queries = %v, want one per state", idx)
	}
	for i := 1; i < len(idx); i++ {
		if idx[i] <= idx[i-1] {
			t.Errorf("?index= values %v do not increase", idx)
			break
		}
	}
	if !p.has("web: 1/2 healthy") || !p.has("web: 2/2 healthy") {
		t.Errorf("progress = %q", p.msgs)
	}
}

// TestDeployURL: the app answers at a live (promoted) registration, never
// a canary's, or at the stage's ingress URL when it has one.
func TestDeployURL(t *testing.T) {
	canary := &api.ServiceRegistration{ID: "_nomad-task-0", ServiceName: "hello-web", Namespace: "apps", JobID: "hello",
		Address: "10.0.0.9", Port: 11111, Tags: []string{nomad.TagCanary}}
	live := &api.ServiceRegistration{ID: "_nomad-task-1", ServiceName: "hello-web", Namespace: "apps", JobID: "hello",
		Address: "10.0.0.7", Port: 23456, Tags: []string{nomad.TagLive}, AllocID: "new-alloc"}
	old := &api.ServiceRegistration{ID: "_nomad-task-0-old", ServiceName: "hello-web", Namespace: "apps", JobID: "hello",
		Address: "10.0.0.5", Port: 10101, Tags: []string{nomad.TagLive}, AllocID: "old-alloc"}
	promoted := &api.ServiceRegistration{ID: "_nomad-task-2", ServiceName: "hello-web", Namespace: "apps", JobID: "hello",
		Address: "10.0.0.8", Port: 22222, Tags: []string{nomad.TagCanary}, AllocID: "promoted-alloc"}
	tests := []struct {
		name    string
		regs    []*api.ServiceRegistration
		ingress string
		want    string
	}{
		{"live, not the canary", []*api.ServiceRegistration{canary, live}, "", "http://10.0.0.7:23456"},
		{"only a canary", []*api.ServiceRegistration{canary}, "", ""},
		{"behind the ingress", []*api.ServiceRegistration{canary, live}, "https://hello.example.com", "https://hello.example.com"},
		// The previous release's allocation is still registered, live,
		// while it stops: its address is not the app's.
		{"not an allocation that is stopping", []*api.ServiceRegistration{old, live}, "", "http://10.0.0.7:23456"},
		// Promoted, but its client has not re-registered it with the live
		// tags yet: the deployment's own allocation, not the old one.
		{"promoted, still tagged canary", []*api.ServiceRegistration{old, promoted}, "", "http://10.0.0.8:22222"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeNomad(t)
			f.steps = steps("d1", 1, api.DeploymentStatusSuccessful)
			f.services["hello-web"] = tt.regs
			f.depAllocs = []*api.AllocationListStub{
				{ID: "promoted-alloc", TaskGroup: "web", JobVersion: 1, DesiredStatus: api.AllocDesiredStatusRun, ClientStatus: api.AllocClientStatusRunning},
				{ID: "promoted-worker", TaskGroup: "worker", JobVersion: 1, DesiredStatus: api.AllocDesiredStatusRun, ClientStatus: api.AllocClientStatusRunning},
			}
			f.jobAllocs["hello"] = [][]*api.AllocationListStub{{
				{ID: "old-alloc", JobVersion: 0, DesiredStatus: api.AllocDesiredStatusStop, ClientStatus: api.AllocClientStatusRunning},
				{ID: "new-alloc", JobVersion: 1, DesiredStatus: api.AllocDesiredStatusRun, ClientStatus: api.AllocClientStatusRunning},
			}}
			d := deployment(pipelines.Formation{"web": 1, "worker": 0})
			d.URL = tt.ingress
			res, err := MustRegion(t, f.srv.URL).Deploy(ctx(t), d)
			if err != nil || res.URL != tt.want {
				t.Fatalf("URL = %q, %v; want %q", res.URL, err, tt.want)
			}
		})
	}
}

// TestLiveURLWhileTheOldReleaseStops: between a promotion and the new
// allocation's re-registration with the live tags, the only live
// registration is the old allocation's, which is stopping; the app's
// address is the promoted one's, which its successful deployment names.
func TestLiveURLWhileTheOldReleaseStops(t *testing.T) {
	f := newFakeNomad(t)
	f.steps = steps("d1", 1, api.DeploymentStatusSuccessful)
	r := MustRegion(t, f.srv.URL)
	if _, err := r.Deploy(ctx(t), deployment(pipelines.Formation{"web": 1})); err != nil {
		t.Fatal(err)
	}
	old := &api.ServiceRegistration{ID: "_nomad-task-0-old", ServiceName: "hello-web", Namespace: "apps", JobID: "hello",
		Address: "10.0.0.5", Port: 10101, Tags: []string{nomad.TagLive}, AllocID: "old-alloc"}
	promoted := &api.ServiceRegistration{ID: "_nomad-task-2", ServiceName: "hello-web", Namespace: "apps", JobID: "hello",
		Address: "10.0.0.8", Port: 22222, Tags: []string{nomad.TagCanary}, AllocID: "promoted-alloc"}
	f.mu.Lock()
	f.services["hello-web"] = []*api.ServiceRegistration{old, promoted}
	f.jobAllocs["hello"] = [][]*api.AllocationListStub{{
		{ID: "old-alloc", TaskGroup: "web", JobVersion: 0, DesiredStatus: api.AllocDesiredStatusStop, ClientStatus: api.AllocClientStatusRunning},
		{ID: "promoted-alloc", TaskGroup: "web", JobVersion: 1, DesiredStatus: api.AllocDesiredStatusRun, ClientStatus: api.AllocClientStatusRunning},
	}}
	f.depAllocs = []*api.AllocationListStub{
		{ID: "promoted-alloc", TaskGroup: "web", JobVersion: 1, DesiredStatus: api.AllocDesiredStatusRun, ClientStatus: api.AllocClientStatusRunning},
	}
	f.mu.Unlock()
	if got, err := r.LiveURL(ctx(t), "hello"); err != nil || got != "http://10.0.0.8:22222" {
		t.Fatalf("LiveURL = %q, %v; want the promoted allocation's http://10.0.0.8:22222", got, err)
	}
}

func TestDeployJobTemplate(t *testing.T) {
	tests := []struct {
		name     string
		template string
		want     error // nil: registered with priority 70 and team meta
	}{
		{"json job", `{"Priority": 70, "Meta": {"team": "payments"}}`, nil},
		{"json from nomad job inspect", `{"Job": {"Priority": 70, "Meta": {"team": "payments"}}}`, nil},
		{"hcl through the parse endpoint", `job "hello" { priority = 70 }`, nil},
		{"broken json", `{"Priority": `, pipelines.ErrInvalid},
		{"hcl the server rejects", `job "hello" {`, pipelines.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeNomad(t)
			f.steps = steps("d1", 1, api.DeploymentStatusSuccessful)
			r := MustRegion(t, f.srv.URL)
			d := deployment(pipelines.Formation{"web": 1})
			d.JobTemplate = []byte(tt.template)
			_, err := r.Deploy(ctx(t), d)
			regs, _, _ := f.snapshot()
			if tt.want != nil {
				if !errors.Is(err, tt.want) || len(regs) != 0 {
					t.Fatalf("err = %v, registers = %d; want %v and nothing registered", err, len(regs), tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			job := regs[0]["Job"].(map[string]any)
			meta := job["Meta"].(map[string]any)
			if job["Priority"] != float64(70) || meta["team"] != "payments" || meta[nomad.MetaApp] != "hello" {
				t.Fatalf("registered priority %v, meta %v; want the template's under drover's", job["Priority"], meta)
			}
		})
	}
}

func TestRegionNameResolution(t *testing.T) {
	tests := []struct {
		name    string
		key     string
		cluster []string
		want    string // Nomad region used; "" for a config error
	}{
		{"key is a region", "europe", []string{"asia", "europe"}, "europe"},
		{"single-region cluster, as nomad agent -dev", "dev", []string{"europe"}, "europe"},
		{"several regions, none the key", "dev", []string{"asia", "europe"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeNomad(t)
			f.regionNames = tt.cluster
			f.wantRegion = tt.want
			s := spec(func(s *pipelines.RegionSpec) { s.Name, s.Nomad.Region, s.Nomad.Address = tt.key, "", f.srv.URL })
			r, err := nomad.New(s, nomad.Options{PollInterval: 5 * time.Millisecond, WaitTime: 50 * time.Millisecond, Token: "secret"})
			if err != nil {
				t.Fatal(err)
			}
			err = r.Stop(ctx(t), "hello")
			if tt.want == "" {
				if !errors.Is(err, pipelines.ErrInvalid) || !strings.Contains(err.Error(), "set region:") {
					t.Fatalf("err = %v, want a config error saying to set region:", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// The fake checks ?region= on every call after the lookup.
		})
	}
}

func TestDeployFailureSaysWhy(t *testing.T) {
	f := newFakeNomad(t)
	// Nomad failed it by itself (the healthy deadline passed) before
	// drover looked.
	f.steps = steps("d1", 1, api.DeploymentStatusFailed)
	f.steps[0].StatusDescription = "Failed due to unhealthy allocations - rolling back to job version 3"
	f.depAllocs = []*api.AllocationListStub{
		{
			ID: "a-web", NodeID: "n1", Namespace: "apps", JobID: "hello", TaskGroup: "web",
			DesiredStatus: api.AllocDesiredStatusRun, ClientStatus: api.AllocClientStatusFailed,
			DeploymentStatus: &api.AllocDeploymentStatus{Healthy: new(false)},
			TaskStates: map[string]*api.TaskState{"web": {State: "dead", Failed: true, Events: []*api.TaskEvent{
				{Type: api.TaskReceived, DisplayMessage: "Task received by client"},
				{Type: api.TaskStarted, DisplayMessage: "Task started by client"},
				{Type: api.TaskTerminated, DisplayMessage: "Exit Code: 1", ExitCode: 1, Details: map[string]string{"exit_code": "1"}},
				{Type: api.TaskNotRestarting, DisplayMessage: `Exceeded allowed attempts 1 in interval 30s and mode is "fail"`},
			}}},
		},
		{
			ID: "a-worker", NodeID: "n1", Namespace: "apps", JobID: "hello", TaskGroup: "worker",
			DesiredStatus: api.AllocDesiredStatusRun, ClientStatus: api.AllocClientStatusFailed,
			TaskStates: map[string]*api.TaskState{"worker": {State: "dead", Failed: true, Events: []*api.TaskEvent{
				{Type: api.TaskReceived, DisplayMessage: "Task received by client"},
				{Type: api.TaskArtifactDownloadFailed, DisplayMessage: "checksum mismatch"},
			}}},
		},
		{ // healthy: not part of the story
			ID: "a-web-ok", TaskGroup: "web", ClientStatus: api.AllocClientStatusRunning,
			DeploymentStatus: &api.AllocDeploymentStatus{Healthy: new(true)},
		},
	}
	f.logs["a-web/web/stderr"] = "booting\nlisten tcp: address already in use\n"
	r := MustRegion(t, f.srv.URL)

	_, err := r.Deploy(ctx(t), deployment(pipelines.Formation{"web": 1, "worker": 1}))
	var de *regions.DeployError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v, want *regions.DeployError", err)
	}
	for _, want := range []string{
		"rolling back to job version 3",
		"web: exit code 1: listen tcp: address already in use",
		"worker: Failed Artifact Download: checksum mismatch",
	} {
		if !strings.Contains(de.Reason, want) {
			t.Errorf("reason %q lacks %q", de.Reason, want)
		}
	}
	t.Logf("reason: %s", de.Reason)
	if de.Region != "eu" || de.App != "hello" || de.Release != 7 {
		t.Errorf("DeployError = %+v", de)
	}
}

// TestDeployFailsFastWhenATaskExits: a new allocation whose task exited
// with an error, though Nomad would restart it, fails the deployment
// through the API at once, with the task's reason and stderr, instead of
// waiting for the healthy or progress deadline.
func TestDeployFailsFastWhenATaskExits(t *testing.T) {
	tests := []struct {
		name   string
		states map[string]*api.TaskState
		client string
		want   string
	}{
		{"exited and restarting", map[string]*api.TaskState{"web": {State: "pending", Restarts: 1, Events: []*api.TaskEvent{
			{Type: api.TaskStarted, DisplayMessage: "Task started by client"},
			{Type: api.TaskTerminated, DisplayMessage: "Exit Code: 1", ExitCode: 1},
			{Type: api.TaskRestarting, DisplayMessage: "Task restarting in 2s"},
		}}}, api.AllocClientStatusPending, "web: exit code 1: listen tcp: address already in use"},
		{"killed by a signal", map[string]*api.TaskState{"web": {State: "pending", Events: []*api.TaskEvent{
			{Type: api.TaskStarted}, {Type: api.TaskTerminated, Signal: 9},
		}}}, api.AllocClientStatusPending, "web: killed by signal 9"},
		{"artifact never arrived", map[string]*api.TaskState{"web": {State: "dead", Failed: true, Events: []*api.TaskEvent{
			{Type: api.TaskArtifactDownloadFailed, DisplayMessage: "checksum mismatch"},
		}}}, api.AllocClientStatusFailed, "web: Failed Artifact Download: checksum mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeNomad(t)
			// The deployment itself says nothing for a long time.
			f.steps = steps("d1", 1, api.DeploymentStatusRunning)
			f.depAllocs = []*api.AllocationListStub{{
				ID: "a-web", NodeID: "n1", Namespace: "apps", JobID: "hello", TaskGroup: "web",
				DesiredStatus: api.AllocDesiredStatusRun, ClientStatus: tt.client, TaskStates: tt.states,
				DeploymentStatus: &api.AllocDeploymentStatus{Canary: true},
			}, { // the old release's allocation keeps serving
				ID: "a-old", TaskGroup: "web", ClientStatus: api.AllocClientStatusRunning,
				DeploymentStatus: &api.AllocDeploymentStatus{Healthy: new(true)},
			}}
			f.logs["a-web/web/stderr"] = "booting\nlisten tcp: address already in use\n"
			r := MustRegion(t, f.srv.URL)
			start := time.Now()
			_, err := r.Deploy(ctx(t), deployment(pipelines.Formation{"web": 1, "worker": 0}))
			var de *regions.DeployError
			if !errors.As(err, &de) || !strings.Contains(de.Reason, "v7 failed before it was healthy: "+tt.want) {
				t.Fatalf("err = %v, want the reason %q", err, tt.want)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Fatalf("failed after %v; a crashed task must fail the region within seconds", took)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.fails) != 1 || f.fails[0] != "d1" {
				t.Fatalf("deployments failed through the API = %v, want [d1]", f.fails)
			}
		})
	}
}

// TestDeployFailsOnRepeatedCheckFailures: a new web allocation that runs
// but answers its HTTP check with an error three times in a row fails the
// region then, not at the healthy deadline; one that is not listening yet
// (booting: connection refused) is left to the deadline.
func TestDeployFailsOnRepeatedCheckFailures(t *testing.T) {
	result := func(ts int64, status string, code int, out string) api.AllocCheckStatuses {
		return api.AllocCheckStatuses{"c1": {ID: "c1", Check: "http", Group: "web", Status: status, StatusCode: code, Output: out, Timestamp: ts}}
	}
	tests := []struct {
		name    string
		answers []api.AllocCheckStatuses
		want    string // "" : the deploy succeeds
	}{
		{"answers 500", []api.AllocCheckStatuses{result(1, "failure", 500, "boom\nstack"), result(2, "failure", 500, "boom"), result(3, "failure", 500, "boom")},
			"web: its HTTP check failed 3 times in a row: HTTP 500: boom"},
		{"a pass in between starts over", []api.AllocCheckStatuses{result(1, "failure", 500, ""), result(2, "failure", 500, ""), result(3, "success", 200, ""),
			result(4, "failure", 500, ""), result(5, "failure", 500, "")}, ""},
		{"booting: not listening yet", []api.AllocCheckStatuses{result(1, "failure", 0, "connection refused"), result(2, "failure", 0, "connection refused"),
			result(3, "failure", 0, "connection refused"), result(4, "failure", 0, "connection refused")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeNomad(t)
			// Running long enough to read every answer, then successful.
			states := []string{}
			for range len(tt.answers) + 3 {
				states = append(states, api.DeploymentStatusRunning)
			}
			f.steps = steps("d1", 1, append(states, api.DeploymentStatusSuccessful)...)
			f.depAllocs = []*api.AllocationListStub{{ID: "a-new", TaskGroup: "web", ClientStatus: api.AllocClientStatusRunning,
				DesiredStatus: api.AllocDesiredStatusRun, DeploymentStatus: &api.AllocDeploymentStatus{Canary: true}}}
			f.checks["a-new"] = tt.answers
			_, err := MustRegion(t, f.srv.URL).Deploy(ctx(t), deployment(pipelines.Formation{"web": 1, "worker": 0}))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("deploy failed: %v", err)
				}
				return
			}
			var de *regions.DeployError
			if !errors.As(err, &de) || !strings.Contains(de.Reason, tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.fails) != 1 {
				t.Fatalf("deployments failed through the API = %v", f.fails)
			}
		})
	}
}

// TestDeployPromotesHealthyCanaries: once every group's canaries are
// healthy, the deployment is promoted at once through the API, while the
// old allocations still serve; until then it is not.
func TestDeployPromotesHealthyCanaries(t *testing.T) {
	f := newFakeNomad(t)
	f.steps = steps("d1", 1, api.DeploymentStatusRunning)
	f.steps[0].TaskGroups["web"].DesiredCanaries = 1
	f.depAllocs = []*api.AllocationListStub{{
		ID: "a-new", TaskGroup: "web", ClientStatus: api.AllocClientStatusRunning, DesiredStatus: api.AllocDesiredStatusRun,
		DeploymentStatus: &api.AllocDeploymentStatus{Canary: true},
	}}
	r := MustRegion(t, f.srv.URL)
	done := make(chan error, 1)
	go func() {
		_, err := r.Deploy(ctx(t), deployment(pipelines.Formation{"web": 1, "worker": 0}))
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	f.mu.Lock()
	if len(f.promotes) != 0 {
		t.Errorf("promoted %v before the canary was healthy", f.promotes)
	}
	f.depAllocs[0].DeploymentStatus.Healthy = new(true)
	f.mu.Unlock()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("deploy did not finish after its canary was healthy")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.promotes) != 1 || f.promotes[0] != "d1" {
		t.Fatalf("promotions = %v, want [d1]", f.promotes)
	}
}

func TestDeployHeartbeatsDuringBlockingQueries(t *testing.T) {
	f := newFakeNomad(t)
	f.steps = steps("d1", 1, api.DeploymentStatusRunning, api.DeploymentStatusSuccessful)
	f.slowWatch = 60 * time.Millisecond
	r := MustRegion(t, f.srv.URL) // PollInterval 5ms
	var p progressLog
	d := deployment(pipelines.Formation{"web": 1})
	d.Progress = p.add
	if _, err := r.Deploy(ctx(t), d); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, m := range p.msgs {
		if m == "web: 0/1 healthy" {
			n++
		}
	}
	if n < 4 {
		t.Errorf("progress while one 60ms query was open: %d calls, want one per 5ms poll interval; all: %q", n, p.msgs)
	}
}

func TestDeployIsIdempotent(t *testing.T) {
	f := newFakeNomad(t)
	job, err := nomad.Render(nomad.JobInput{Spec: spec(nil), Deployment: deployment(pipelines.Formation{"web": 1})})
	if err != nil {
		t.Fatal(err)
	}
	job.Version, job.JobModifyIndex, job.ModifyIndex, job.Status = new(uint64(3)), new(uint64(50)), new(uint64(55)), new("running")
	f.jobs["hello"] = job
	f.deployment = []*api.Deployment{{ID: "d3", JobID: "hello", JobVersion: 3, Status: api.DeploymentStatusSuccessful, ModifyIndex: 56}}
	f.services["hello-web"] = webService("hello")
	r := MustRegion(t, f.srv.URL)

	res, err := r.Deploy(ctx(t), deployment(pipelines.Formation{"web": 1}))
	if err != nil {
		t.Fatal(err)
	}
	if regs, _, _ := f.snapshot(); len(regs) != 0 {
		t.Errorf("registered %d times; the release already runs", len(regs))
	}
	if res.URL != "http://10.0.0.7:23456" {
		t.Errorf("URL = %q", res.URL)
	}
}

func TestDeployUpdatesWithModifyIndex(t *testing.T) {
	f := newFakeNomad(t)
	old, _ := nomad.Render(nomad.JobInput{Spec: spec(nil), Deployment: deployment(nil)})
	old.Meta[nomad.MetaRelease] = "6"
	old.Version, old.JobModifyIndex, old.ModifyIndex = new(uint64(2)), new(uint64(42)), new(uint64(42))
	f.jobs["hello"] = old
	f.steps = steps("d2", 1, api.DeploymentStatusSuccessful)
	r := MustRegion(t, f.srv.URL)
	if _, err := r.Deploy(ctx(t), deployment(nil)); err != nil {
		t.Fatal(err)
	}
	regs, _, _ := f.snapshot()
	if len(regs) != 1 || regs[0]["JobModifyIndex"] != float64(42) {
		t.Errorf("register JobModifyIndex = %v, want the current job's 42", regs[0]["JobModifyIndex"])
	}
}

func TestDeployWithoutDeployment(t *testing.T) {
	// Every process scaled to zero: Nomad makes no deployment, and that is
	// success once nothing of the version needs to run.
	f := newFakeNomad(t)
	r := MustRegion(t, f.srv.URL)
	res, err := r.Deploy(ctx(t), deployment(pipelines.Formation{"web": 0, "worker": 0}))
	if err != nil {
		t.Fatal(err)
	}
	if res.URL != "" {
		t.Errorf("URL = %q for a stopped web", res.URL)
	}
}

func TestDeployErrors(t *testing.T) {
	closed := closedAddress()
	tests := []struct {
		name      string
		setup     func(f *fakeNomad) string // returns the address to use
		d         func() regions.Deployment
		want      error
		registers int
	}{
		{
			name: "index conflict twice",
			setup: func(f *fakeNomad) string {
				f.registerErr = func(int) (int, string) {
					return http.StatusInternalServerError, api.RegisterEnforceIndexErrPrefix + " 0: job exists with conflicting job modify index: 77"
				}
				return f.srv.URL
			},
			want:      pipelines.ErrConflict,
			registers: 2,
		},
		{
			name: "job spec rejected with 400",
			setup: func(f *fakeNomad) string {
				f.registerErr = func(int) (int, string) {
					return http.StatusBadRequest, "1 error occurred:\n\t* Task group web validation failed: invalid port label"
				}
				return f.srv.URL
			},
			want:      pipelines.ErrInvalid,
			registers: 1,
		},
		{
			name: "job spec rejected by server validation",
			setup: func(f *fakeNomad) string {
				f.registerErr = func(int) (int, string) {
					return http.StatusInternalServerError, "1 error occurred:\n\t* Task group web validation failed: 1 error occurred:\n\t* Missing network"
				}
				return f.srv.URL
			},
			want:      pipelines.ErrInvalid,
			registers: 1,
		},
		{
			name: "no leader",
			setup: func(f *fakeNomad) string {
				f.registerErr = func(int) (int, string) { return http.StatusInternalServerError, "No cluster leader" }
				return f.srv.URL
			},
			want:      regions.ErrUnavailable,
			registers: 1,
		},
		{
			name: "region Nomad does not know",
			setup: func(f *fakeNomad) string {
				f.registerErr = func(int) (int, string) { return http.StatusInternalServerError, "No path to region" }
				return f.srv.URL
			},
			want:      pipelines.ErrInvalid,
			registers: 1,
		},
		{
			name:  "unreachable region",
			setup: func(*fakeNomad) string { return closed },
			want:  regions.ErrUnavailable,
		},
		{
			name: "job not made by drover",
			setup: func(f *fakeNomad) string {
				f.jobs["hello"] = &api.Job{ID: new("hello"), Meta: map[string]string{"owner": "someone"}, JobModifyIndex: new(uint64(9))}
				return f.srv.URL
			},
			want: pipelines.ErrConflict,
		},
		{
			name:  "slug without URL",
			setup: func(f *fakeNomad) string { return f.srv.URL },
			d: func() regions.Deployment {
				d := deployment(nil)
				d.Slug.URL = ""
				return d
			},
			want: pipelines.ErrInvalid,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeNomad(t)
			r := MustRegion(t, tt.setup(f))
			d := deployment(nil)
			if tt.d != nil {
				d = tt.d()
			}
			_, err := r.Deploy(ctx(t), d)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			var de *regions.DeployError
			if errors.As(err, &de) {
				t.Errorf("err is a DeployError; it should not be: %v", err)
			}
			if regs, _, _ := f.snapshot(); len(regs) != tt.registers {
				t.Errorf("registers = %d, want %d", len(regs), tt.registers)
			}
		})
	}
}

// closedAddress returns the address of a server that no longer listens.
func closedAddress() string {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	return srv.URL
}

func TestStop(t *testing.T) {
	for _, exists := range []bool{true, false} {
		t.Run(map[bool]string{true: "running", false: "missing"}[exists], func(t *testing.T) {
			f := newFakeNomad(t)
			owned := func(app string) map[string]string {
				return map[string]string{nomad.MetaApp: app, nomad.MetaManagedBy: nomad.ManagedBy}
			}
			if exists {
				f.jobs["hello"] = &api.Job{ID: new("hello"), Meta: owned("hello")}
				// The app's release-phase job goes too; another app's
				// jobs sharing the prefix, and jobs drover did not make, stay.
				f.jobs["hello-release-v3"] = &api.Job{ID: new("hello-release-v3"), Type: new("batch"), Meta: owned("hello")}
				f.jobs["hello-staging"] = &api.Job{ID: new("hello-staging"), Meta: owned("hello-staging")}
				f.jobs["hello-staging-release-v1"] = &api.Job{ID: new("hello-staging-release-v1"), Type: new("batch"), Meta: owned("hello-staging")}
				f.jobs["hello-backup-v2"] = &api.Job{ID: new("hello-backup-v2"), Type: new("batch")}
			}
			// The config variables go with them, also a task's whose job
			// is gone; other apps' and ones drover did not write stay.
			for path, app := range map[string]string{
				"nomad/jobs/hello": "hello", "nomad/jobs/hello-release-v3": "hello", "nomad/jobs/hello-release-v2": "hello",
				"nomad/jobs/hello-staging": "hello-staging", "nomad/jobs/hello-staging-release-v1": "hello-staging",
				"nomad/jobs/hello-backup-v2": "",
			} {
				f.vars[path] = &api.Variable{Path: path, Items: api.VariableItems{nomad.ItemApp: app, "v1": "{}"}, ModifyIndex: 7}
			}
			r := MustRegion(t, f.srv.URL)
			if err := r.Stop(ctx(t), "hello"); err != nil {
				t.Fatal(err)
			}
			_, _, deletes := f.snapshot()
			want := 1
			if exists {
				want = 2
			}
			if len(deletes) != want {
				t.Fatalf("deletes = %v, want %d purges", deletes, want)
			}
			for _, d := range deletes {
				if !strings.Contains(d, "purge=true") || (!strings.HasPrefix(d, "/v1/job/hello?") && !strings.HasPrefix(d, "/v1/job/hello-release-v3?")) {
					t.Errorf("delete %s; want only hello and hello-release-v3, purged", d)
				}
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			left := slices.Sorted(maps.Keys(f.vars))
			wantLeft := []string{"nomad/jobs/hello-backup-v2", "nomad/jobs/hello-staging", "nomad/jobs/hello-staging-release-v1"}
			if !slices.Equal(left, wantLeft) {
				t.Errorf("variables left = %v, want %v", left, wantLeft)
			}
		})
	}
}

func TestRunTask(t *testing.T) {
	terminated := func(code int) *api.TaskState {
		return &api.TaskState{State: "dead", Failed: code != 0, Events: []*api.TaskEvent{
			{Type: api.TaskStarted, DisplayMessage: "Task started by client"},
			{Type: api.TaskTerminated, DisplayMessage: "Exit Code: " + string(rune('0'+code)), ExitCode: code},
		}}
	}
	tests := []struct {
		name     string
		exists   bool
		status   string
		code     int
		wantRegs int
	}{
		{"exit 0", false, api.AllocClientStatusComplete, 0, 1},
		{"exit 3", false, api.AllocClientStatusFailed, 3, 1},
		{"already finished", true, api.AllocClientStatusComplete, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeNomad(t)
			id := "hello-release-v7"
			if tt.exists {
				f.jobs[id] = &api.Job{ID: new(id), Status: new("dead"), JobModifyIndex: new(uint64(5)),
					Meta: map[string]string{nomad.MetaManagedBy: nomad.ManagedBy}}
			}
			running := &api.AllocationListStub{ID: "t1", NodeID: "n1", JobID: id, TaskGroup: "release", ClientStatus: api.AllocClientStatusRunning, CreateIndex: 200}
			done := *running
			done.ClientStatus = tt.status
			f.jobAllocs[id] = [][]*api.AllocationListStub{nil, {running}, {&done}}
			if tt.exists {
				f.jobAllocs[id] = [][]*api.AllocationListStub{{&done}}
			}
			f.allocs["t1"] = &api.Allocation{ID: "t1", NodeID: "n1", Namespace: "apps", JobID: id, TaskGroup: "release",
				ClientStatus: tt.status, TaskStates: map[string]*api.TaskState{"release": terminated(tt.code)}}
			f.logs["t1/release/stdout"] = "migrated 3 tables\n"
			f.logs["t1/release/stderr"] = "warning: slow\n"
			r := MustRegion(t, f.srv.URL)

			res, err := r.RunTask(ctx(t), regions.Task{App: "hello", Release: 7, Name: "release",
				Slug: deployment(nil).Slug, Command: "./migrate", Env: map[string]string{"A": "b"}})
			if err != nil {
				t.Fatal(err)
			}
			// The task job's own variable held its config while it ran
			// (written before the job), and is gone once it finished.
			f.mu.Lock()
			reqs, left := slices.Clone(f.requests), len(f.vars)
			f.mu.Unlock()
			put := slices.IndexFunc(reqs, func(s string) bool { return strings.HasPrefix(s, "PUT /v1/var/nomad/jobs/"+id+"?") })
			reg := slices.IndexFunc(reqs, func(s string) bool { return strings.HasPrefix(s, "PUT /v1/jobs?") })
			if tt.wantRegs > 0 && (put < 0 || put > reg) {
				t.Errorf("requests %q: want nomad/jobs/%s written before the job is registered", reqs, id)
			}
			if left != 0 {
				t.Errorf("%d variables left after the task finished", left)
			}
			if res.ExitCode != tt.code || res.Output != "migrated 3 tables\nwarning: slow\n" {
				t.Errorf("result = %+v", res)
			}
			regs, _, _ := f.snapshot()
			if len(regs) != tt.wantRegs {
				t.Fatalf("registers = %d, want %d", len(regs), tt.wantRegs)
			}
			if tt.wantRegs > 0 {
				job := regs[0]["Job"].(map[string]any)
				if job["ID"] != id || job["Type"] != "batch" {
					t.Errorf("task job = %v %v", job["ID"], job["Type"])
				}
			}
		})
	}
}

func TestRunTaskThatNeverRanIsPurged(t *testing.T) {
	f := newFakeNomad(t)
	id := "hello-release-v7"
	f.jobAllocs[id] = [][]*api.AllocationListStub{{{ID: "t1", JobID: id, ClientStatus: api.AllocClientStatusFailed}}}
	f.allocs["t1"] = &api.Allocation{ID: "t1", ClientStatus: api.AllocClientStatusFailed, TaskStates: map[string]*api.TaskState{
		"release": {State: "dead", Failed: true, Events: []*api.TaskEvent{{Type: api.TaskDriverFailure, DisplayMessage: "failed to launch command with executor"}}},
	}}
	r := MustRegion(t, f.srv.URL)
	_, err := r.RunTask(ctx(t), regions.Task{App: "hello", Release: 7, Name: "release", Slug: deployment(nil).Slug, Command: "./migrate"})
	if err == nil || !strings.Contains(err.Error(), "failed to launch command") {
		t.Fatalf("err = %v", err)
	}
	if _, _, deletes := f.snapshot(); !slices.ContainsFunc(deletes, func(s string) bool { return strings.Contains(s, id) && strings.Contains(s, "purge=true") }) {
		t.Errorf("deletes = %v, want the task job purged so a retry runs it", deletes)
	}
}

func TestStatus(t *testing.T) {
	f := newFakeNomad(t)
	job, _ := nomad.Render(nomad.JobInput{Spec: spec(nil), Deployment: deployment(nil)})
	job.Status = new("running")
	f.jobs["hello"] = job
	f.services["hello-web"] = webService("hello")
	r := MustRegion(t, f.srv.URL)

	got, err := r.Status(ctx(t), "hello")
	if err != nil {
		t.Fatal(err)
	}
	want := regions.Status{Release: 7, Slug: digest, URL: "http://10.0.0.7:23456", Running: true}
	if got != want {
		t.Errorf("Status = %+v, want %+v", got, want)
	}
	if got, err := r.Status(ctx(t), "nope"); err != nil || got != (regions.Status{}) {
		t.Errorf("Status of a missing app = %+v, %v", got, err)
	}
}

// configItem decodes release's config item of the fake's variable at path.
func configItem(t *testing.T, f *fakeNomad, path string, release int) (map[string]string, bool) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.vars[path]
	if v == nil {
		return nil, false
	}
	raw, ok := v.Items[nomad.ConfigItem(release)]
	if !ok {
		return nil, false
	}
	var env map[string]string
	if err := json.Unmarshal([]byte(raw), &env); err != nil {
		t.Fatalf("item %s of %s: %v", nomad.ConfigItem(release), path, err)
	}
	return env, true
}

// TestDeployWritesConfigVariable: a deploy writes the release's config
// vars into the app's variable before it registers the job (whose spec
// holds none of them), keeps the item of the release the job runs (which
// auto_revert returns to) and the newest others, KeepConfigs in all, and
// prunes the rest.
func TestDeployWritesConfigVariable(t *testing.T) {
	f := newFakeNomad(t)
	old, _ := nomad.Render(nomad.JobInput{Spec: spec(nil), Deployment: deployment(nil)})
	old.Meta[nomad.MetaRelease] = "2" // a rollback to v2 runs now
	old.Version, old.JobModifyIndex, old.ModifyIndex = new(uint64(9)), new(uint64(42)), new(uint64(42))
	f.jobs["hello"] = old
	items := api.VariableItems{nomad.ItemApp: "hello", "stray": "x"}
	for n := 1; n <= 6; n++ {
		items[nomad.ConfigItem(n)] = fmt.Sprintf(`{"GREETING":"v%d"}`, n)
	}
	f.vars["nomad/jobs/hello"] = &api.Variable{Namespace: "apps", Path: "nomad/jobs/hello", Items: items, ModifyIndex: 40}
	f.steps = steps("d2", 1, api.DeploymentStatusSuccessful)
	d := deployment(nil)
	d.Env["DROVER_RELEASE"] = "v7"
	d.Env["TRICKY"] = "a \"b\"\nc=$d"

	if _, err := MustRegion(t, f.srv.URL).Deploy(ctx(t), d); err != nil {
		t.Fatal(err)
	}
	got, ok := configItem(t, f, "nomad/jobs/hello", 7)
	if !ok || got["DATABASE_URL"] != "postgres://db/hello" || got["TRICKY"] != d.Env["TRICKY"] || got["PORT"] != "1" {
		t.Fatalf("item v7 = %q, want the release's config vars exactly", got)
	}
	if _, ok := got["DROVER_RELEASE"]; ok {
		t.Errorf("item v7 holds drover's metadata %v; it is plain env", got)
	}
	f.mu.Lock()
	keys := slices.Sorted(maps.Keys(f.vars["nomad/jobs/hello"].Items))
	reqs := slices.Clone(f.requests)
	f.mu.Unlock()
	// v7 and v2 (running), then the newest: v6, v5, v4.
	if want := []string{nomad.ItemApp, "v2", "v4", "v5", "v6", "v7"}; !slices.Equal(keys, want) {
		t.Errorf("variable items = %v, want %v", keys, want)
	}
	put := slices.IndexFunc(reqs, func(s string) bool { return strings.HasPrefix(s, "PUT /v1/var/nomad/jobs/hello?") })
	reg := slices.IndexFunc(reqs, func(s string) bool { return strings.HasPrefix(s, "PUT /v1/jobs?") })
	if put < 0 || reg < 0 || put > reg {
		t.Errorf("requests %q: want the variable written (with cas) before the job is registered", reqs)
	} else if !strings.Contains(reqs[put], "cas=40") {
		t.Errorf("variable write %s is not checked against the index read", reqs[put])
	}
	regs, _, _ := f.snapshot()
	body, _ := json.Marshal(regs[len(regs)-1])
	if bytes.Contains(body, []byte("postgres://db/hello")) {
		t.Errorf("the registered job holds a config value: %s", body)
	}
}

func TestDeployConfigVariableErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(f *fakeNomad, d *regions.Deployment)
		want  error
	}{
		{"a variable drover did not write", func(f *fakeNomad, _ *regions.Deployment) {
			f.vars["nomad/jobs/hello"] = &api.Variable{Path: "nomad/jobs/hello", Items: api.VariableItems{"password": "x"}, ModifyIndex: 3}
		}, pipelines.ErrConflict},
		{"another app's variable", func(f *fakeNomad, _ *regions.Deployment) {
			f.vars["nomad/jobs/hello"] = &api.Variable{Path: "nomad/jobs/hello", Items: api.VariableItems{nomad.ItemApp: "other"}, ModifyIndex: 3}
		}, pipelines.ErrConflict},
		{"config over Nomad's 64 KiB", func(_ *fakeNomad, d *regions.Deployment) {
			d.Env["BIG"] = strings.Repeat("x", nomad.MaxVariableSize)
		}, pipelines.ErrInvalid},
		{"a name that is no env var name", func(_ *fakeNomad, d *regions.Deployment) {
			d.Env["NOT-A-NAME"] = "x"
		}, pipelines.ErrInvalid},
		{"a token without variable rights", func(f *fakeNomad, _ *regions.Deployment) {
			f.varsForbidden = true
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeNomad(t)
			d := deployment(nil)
			tt.setup(f, &d)
			_, err := MustRegion(t, f.srv.URL).Deploy(ctx(t), d)
			switch {
			case err == nil:
				t.Fatal("deploy succeeded")
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Fatalf("err = %v, want %v", err, tt.want)
			case tt.want == nil && !strings.Contains(err.Error(), "drover-deployer.policy.hcl"):
				t.Fatalf("err = %v, want it to name the policy that grants the variables", err)
			}
			if regs, _, _ := f.snapshot(); len(regs) != 0 {
				t.Errorf("registered the job %d times; a release without its config must not run", len(regs))
			}
		})
	}
}

// TestDeployConfigVariableRace: a variable written by another drover
// between the read and the write is read again, not overwritten; one that
// keeps changing is a conflict, and the job is not registered.
func TestDeployConfigVariableRace(t *testing.T) {
	for _, races := range []int{1, 100} {
		t.Run(fmt.Sprintf("%d races", races), func(t *testing.T) {
			f := newFakeNomad(t)
			f.vars["nomad/jobs/hello"] = &api.Variable{Path: "nomad/jobs/hello", Items: api.VariableItems{nomad.ItemApp: "hello", "v5": "{}"}, ModifyIndex: 3}
			f.steps = steps("d1", 1, api.DeploymentStatusSuccessful)
			n := 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPut && r.URL.Path == "/v1/var/nomad/jobs/hello" && n < races {
					n++
					f.mu.Lock()
					f.vars["nomad/jobs/hello"] = &api.Variable{Path: "nomad/jobs/hello", Items: api.VariableItems{nomad.ItemApp: "hello", "v5": "{}", "v6": "{}"}, ModifyIndex: f.nextIndex()}
					f.mu.Unlock()
				}
				f.serve(w, r)
			}))
			t.Cleanup(srv.Close)
			_, err := MustRegion(t, srv.URL).Deploy(ctx(t), deployment(nil))
			f.mu.Lock()
			defer f.mu.Unlock()
			if races > 1 {
				if !errors.Is(err, pipelines.ErrConflict) || len(f.registers) != 0 {
					t.Fatalf("err = %v, registers = %d; want ErrConflict and nothing registered", err, len(f.registers))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if keys := slices.Sorted(maps.Keys(f.vars["nomad/jobs/hello"].Items)); !slices.Equal(keys, []string{nomad.ItemApp, "v5", "v6", "v7"}) {
				t.Errorf("items after a raced write = %v, want the other writer's v6 kept", keys)
			}
		})
	}
}

// TestNextIndexPausesOnlyWhenNomadDidNotBlock: after a blocking query
// Nomad held open for its wait without news, the next one goes at once
// (it blocks too); one answered at once without news, or with an index
// that went back, waits a poll interval, so a loop never spins.
func TestNextIndexPausesOnlyWhenNomadDidNotBlock(t *testing.T) {
	const poll = 300 * time.Millisecond
	for _, tt := range []struct {
		name   string
		qm     *api.QueryMeta
		want   uint64
		paused bool
	}{
		{"news", &api.QueryMeta{LastIndex: 12, RequestTime: time.Millisecond}, 12, false},
		{"held open, no news", &api.QueryMeta{LastIndex: 10, RequestTime: 3 * time.Second}, 10, false},
		{"answered at once, no news", &api.QueryMeta{LastIndex: 10, RequestTime: time.Millisecond}, 10, true},
		{"index went back", &api.QueryMeta{LastIndex: 4, RequestTime: 3 * time.Second}, 0, true},
		{"no answer", nil, 0, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			got, err := nomad.NextIndex(context.Background(), poll, 10, tt.qm)
			took := time.Since(start)
			if err != nil || got != tt.want || (took >= poll) != tt.paused {
				t.Fatalf("next index %d, %v after %s; want %d, paused %v", got, err, took, tt.want, tt.paused)
			}
		})
	}
}
