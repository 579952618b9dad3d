package workflows_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/workflows"
)

const production = "hello"

func (f *fixture) run(t *testing.T, wf any, in any) (workflows.DeployResult, error) {
	t.Helper()
	env := f.env()
	f.runs++
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: fmt.Sprintf("op-%d", f.runs)})
	env.ExecuteWorkflow(wf, in)
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	var res workflows.DeployResult
	err := env.GetWorkflowError()
	if err == nil {
		env.GetWorkflowResult(&res)
	}
	return res, err
}

func promote(from string, version int) workflows.PromoteInput {
	return workflows.PromoteInput{
		DeployInput: workflows.DeployInput{App: production, DeployRequest: workflows.DeployRequest{Regions: []string{"a", "b"}}},
		FromApp:     from, FromVersion: version,
	}
}

func TestPromoteReusesTheSlugWithProductionsConfig(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.store.SetConfigVars(ctx, app, map[string]string{"WHERE": "staging"}, nil)
	f.store.SetConfigVars(ctx, production, map[string]string{"WHERE": "production"}, nil)
	if _, err := f.deploy(t, "c1"); err != nil {
		t.Fatal(err)
	}
	staging := f.release(t, 1)
	res, err := f.run(t, workflows.PromoteWorkflow, promote(app, 0))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.builder.builds) != 1 {
		t.Fatalf("builds = %v; a promotion builds nothing", f.builder.builds)
	}
	prod, err := f.store.Release(ctx, production, res.Version)
	if err != nil {
		t.Fatal(err)
	}
	if prod.Slug != staging.Slug || prod.Commit != "c1" || prod.Status != pipelines.ReleaseSucceeded {
		t.Fatalf("production %s = %+v; want staging's slug %s", prod.Name(), prod, staging.Slug)
	}
	if prod.Description != "promoted from hello-staging v1" {
		t.Fatalf("description = %q", prod.Description)
	}
	last := f.regions["a"].tasks[len(f.regions["a"].tasks)-1]
	if last.App != production || last.Env["WHERE"] != "production" {
		t.Fatalf("release phase ran for %s with WHERE=%q; promotion carries the build, not the config", last.App, last.Env["WHERE"])
	}
}

func TestPromoteRefusesAReleaseThatDidNotSucceed(t *testing.T) {
	f := newFixture(t)
	f.regions["a"].taskExit = 1 // staging v1's release phase fails
	if _, err := f.deploy(t, "c1"); err == nil {
		t.Fatal("staging v1 should fail")
	}
	for _, version := range []int{1, 0} {
		_, err := f.run(t, workflows.PromoteWorkflow, promote(app, version))
		if err == nil {
			t.Fatalf("promoting v%d of a failed staging was accepted", version)
		}
		want := map[int]string{1: "hello-staging v1 is failed, not succeeded", 0: "hello-staging has no succeeded release yet"}[version]
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v, want %q", err, want)
		}
	}
	if rs, _ := f.store.Releases(context.Background(), production, 0); len(rs) != 0 {
		t.Fatalf("production has %d releases, want none", len(rs))
	}
}

func rollback(to int, releasePhase bool) workflows.RollbackInput {
	return workflows.RollbackInput{
		DeployInput: workflows.DeployInput{App: app, DeployRequest: workflows.DeployRequest{Regions: []string{"a", "b"}}},
		ToVersion:   to, RunReleasePhase: releasePhase,
	}
}

func TestRollbackRestoresSlugConfigAndFormationTogether(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.store.SetConfigVars(ctx, app, map[string]string{"MODE": "old"}, nil)
	if _, err := f.deploy(t, "c1"); err != nil {
		t.Fatal(err)
	}
	f.store.SetConfigVars(ctx, app, map[string]string{"MODE": "new"}, nil)
	f.builder.procfile = pipelines.Procfile{{Type: "web", Command: "bin/web"}, {Type: "worker", Command: "bin/worker"}, {Type: "release", Command: "bin/migrate"}}
	if _, err := f.deploy(t, "c2"); err != nil {
		t.Fatal(err)
	}
	v1, v2 := f.release(t, 1), f.release(t, 2)
	tasks := len(f.regions["a"].tasks)

	res, err := f.run(t, workflows.RollbackWorkflow, rollback(0, false))
	if err != nil {
		t.Fatal(err)
	}
	v3 := f.release(t, res.Version)
	if v3.Version != 3 || v3.Slug != v1.Slug || v3.Commit != "c1" || v3.ConfigVersion != v1.ConfigVersion ||
		fmt.Sprint(v3.Formation) != fmt.Sprint(v1.Formation) || v3.Description != "rollback to v1" {
		t.Fatalf("v3 = %+v\nwant v1's slug, config version %d and formation %v (v2 had %d and %v)", v3, v1.ConfigVersion, v1.Formation, v2.ConfigVersion, v2.Formation)
	}
	if len(f.regions["a"].tasks) != tasks {
		t.Fatal("the release phase ran again; a rollback skips it unless asked")
	}
	if f.regions["a"].running != 3 || f.regions["b"].running != 3 {
		t.Fatalf("regions run v%d and v%d, want v3", f.regions["a"].running, f.regions["b"].running)
	}

	// Asked for, it runs; and a named release is honoured.
	res, err = f.run(t, workflows.RollbackWorkflow, rollback(2, true))
	if err != nil {
		t.Fatal(err)
	}
	if v4 := f.release(t, res.Version); v4.Slug != v2.Slug || v4.Description != "rollback to v2" || len(f.regions["a"].tasks) != tasks+1 {
		t.Fatalf("v4 = %+v, release phases %d", v4, len(f.regions["a"].tasks)-tasks)
	}
}

func TestRollbackWithNothingToGoBackTo(t *testing.T) {
	f := newFixture(t)
	if _, err := f.deploy(t, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.run(t, workflows.RollbackWorkflow, rollback(0, false)); err == nil || !strings.Contains(err.Error(), "no earlier succeeded release") {
		t.Fatalf("err = %v", err)
	}
}

// TestQueueRunsOperationsInOrder sends a push, a rollback and another push
// while the first deploy builds: they run one at a time, in that order.
func TestQueueRunsOperationsInOrder(t *testing.T) {
	f := newFixture(t)
	if _, err := f.deploy(t, "c0"); err != nil {
		t.Fatal(err)
	}
	env := f.env()
	push := func(c string) func() {
		return func() {
			env.SignalWorkflow(workflows.SignalDeploy, workflows.DeployRequest{Repo: "octo-org/hello", CloneURL: "file:///r", Commit: c, Regions: []string{"a", "b"}})
		}
	}
	// Builds take a minute of workflow time, so the rollback and c2
	// arrive, in that order, while c1 builds.
	env.OnActivity(f.acts.Build, mock.Anything, mock.Anything).After(time.Minute).Return(
		func(ctx context.Context, in workflows.BuildInput) (workflows.BuildResult, error) {
			return workflows.BuildResult{Slug: digest(in.Commit), Procfile: pipelines.Procfile{{Type: "web", Command: "bin/web"}}}, nil
		})
	env.RegisterDelayedCallback(push("c1"), 0)
	env.RegisterDelayedCallback(func() {
		in := rollback(1, false)
		env.SignalWorkflow(workflows.SignalOperation, workflows.Operation{ID: "rollback/hello-staging/x1", Kind: workflows.OpRollback, Rollback: &in})
	}, 10*time.Second)
	env.RegisterDelayedCallback(push("c2"), 20*time.Second)
	env.ExecuteWorkflow(workflows.AppWorkflow, workflows.AppInput{App: app})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	rs, _ := f.store.Releases(context.Background(), app, 0)
	var got []string
	for i := len(rs) - 1; i >= 0; i-- {
		desc := rs[i].Description
		if rs[i].Status == pipelines.ReleaseSkipped {
			desc = string(rs[i].Status)
		}
		got = append(got, fmt.Sprintf("%s:%s:%s", rs[i].Name(), rs[i].Commit, desc))
	}
	// c2 came after the rollback was asked for: skipped, not deployed
	// over it (see TestRollbackPausesAutoDeploy).
	want := "v1:c0: v2:c1: v3:c2:skipped v4:c0:rollback to v1"
	if strings.Join(got, " ") != want {
		t.Fatalf("ledger = %s\nwant     %s", strings.Join(got, " "), want)
	}
}

func change(scale pipelines.Formation, desc string) workflows.ChangeInput {
	return workflows.ChangeInput{
		DeployInput: workflows.DeployInput{App: app, DeployRequest: workflows.DeployRequest{Regions: []string{"a", "b"}}},
		Scale:       scale, Description: desc,
	}
}

func TestConfigAndScaleMakeReleasesOfTheCurrentSlug(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.run(t, workflows.ChangeWorkflow, change(nil, "set A")); err == nil || !strings.Contains(err.Error(), "no succeeded release yet") {
		t.Fatalf("change before any deploy: %v", err)
	}
	f.builder.procfile = pipelines.Procfile{{Type: "web", Command: "bin/web"}, {Type: "worker", Command: "bin/worker"}}
	if _, err := f.deploy(t, "c1"); err != nil {
		t.Fatal(err)
	}
	f.store.SetConfigVars(ctx, app, map[string]string{"A": "1"}, nil)
	res, err := f.run(t, workflows.ChangeWorkflow, change(nil, "set A"))
	if err != nil {
		t.Fatal(err)
	}
	v1, v2 := f.release(t, 1), f.release(t, res.Version)
	if v2.Slug != v1.Slug || v2.ConfigVersion != 1 || v2.Description != "set A" || v2.Status != pipelines.ReleaseSucceeded {
		t.Fatalf("config release = %+v", v2)
	}
	res, err = f.run(t, workflows.ChangeWorkflow, change(pipelines.Formation{"web": 3}, "scale web=3"))
	if err != nil {
		t.Fatal(err)
	}
	if v3 := f.release(t, res.Version); v3.Formation["web"] != 3 || v3.Formation["worker"] != 0 || v3.ConfigVersion != 1 || v3.Slug != v1.Slug {
		t.Fatalf("scale release = %+v", v3)
	}
	if _, err := f.run(t, workflows.ChangeWorkflow, change(pipelines.Formation{"clock": 1}, "scale clock=1")); err == nil || !strings.Contains(err.Error(), `no process type "clock"`) {
		t.Fatalf("scaling an unknown type: %v", err)
	}
	// The next push keeps the new counts.
	if _, err := f.deploy(t, "c2"); err != nil {
		t.Fatal(err)
	}
	rs, _ := f.store.Releases(ctx, app, 1)
	if rs[0].Formation["web"] != 3 {
		t.Fatalf("after a push, formation = %v; a push keeps the scale", rs[0].Formation)
	}
}

// TestRollbackPausesAutoDeploy: after a manual rollback a push is recorded
// as skipped, with the reason, until auto-deploy is resumed.
func TestRollbackPausesAutoDeploy(t *testing.T) {
	f := newFixture(t)
	for _, c := range []string{"c1", "c2"} {
		if _, err := f.deploy(t, c); err != nil {
			t.Fatal(err)
		}
	}
	env := f.env()
	push := func(c string) func() {
		return func() {
			env.SignalWorkflow(workflows.SignalDeploy, workflows.DeployRequest{Repo: "octo-org/hello", CloneURL: "file:///r", Commit: c, Regions: []string{"a", "b"}})
		}
	}
	env.RegisterDelayedCallback(func() {
		in := rollback(0, false)
		env.SignalWorkflow(workflows.SignalOperation, workflows.Operation{ID: "rollback/hello-staging/x", Kind: workflows.OpRollback, Rollback: &in})
	}, 0)
	env.RegisterDelayedCallback(push("c3"), time.Minute)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.SignalAutoDeploy, workflows.AutoDeploy{Paused: false}) }, 2*time.Minute)
	env.RegisterDelayedCallback(push("c3"), 3*time.Minute)
	env.ExecuteWorkflow(workflows.AppWorkflow, workflows.AppInput{App: app})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	rs, _ := f.store.Releases(context.Background(), app, 0)
	var got []string
	for i := len(rs) - 1; i >= 0; i-- {
		got = append(got, fmt.Sprintf("%s:%s:%s", rs[i].Name(), rs[i].Commit, rs[i].Status))
	}
	want := "v1:c1:succeeded v2:c2:succeeded v3:c1:succeeded v4:c3:skipped v5:c3:succeeded"
	if strings.Join(got, " ") != want {
		t.Fatalf("ledger = %s\nwant     %s", strings.Join(got, " "), want)
	}
	if d := rs[1].Description; !strings.Contains(d, "auto-deploy paused by a manual rollback (rollback/hello-staging/x)") || !strings.Contains(d, "drover autodeploy resume hello-staging") {
		t.Fatalf("skipped push says %q", d)
	}
}

// TestRequesterCannotApproveItsOwnRelease: the query says who queued the
// release; an approval signal from that token is ignored and the wait goes
// on until another token decides.
func TestRequesterCannotApproveItsOwnRelease(t *testing.T) {
	f := newFixture(t)
	env := f.env()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "deploy/hello-staging/c1"})
	env.RegisterDelayedCallback(func() {
		res, err := env.QueryWorkflow(workflows.QueryRequester)
		var by string
		if err != nil || res.Get(&by) != nil || by != "ci" {
			t.Errorf("requester query = %q, %v; want ci", by, err)
		}
		env.SignalWorkflow(workflows.SignalApproval, workflows.Approval{Approved: true, By: "ci"})
	}, 5*time.Minute)
	env.RegisterDelayedCallback(func() {
		if rs, _ := f.store.Releases(context.Background(), app, 0); len(rs) != 1 || rs[0].Status != pipelines.ReleasePending {
			t.Errorf("after the requester's own approval the release is %+v; want it still waiting", rs)
		}
		env.SignalWorkflow(workflows.SignalApproval, workflows.Approval{Approved: true, By: "lead"})
	}, 10*time.Minute)
	env.ExecuteWorkflow(workflows.DeployWorkflow, workflows.DeployInput{App: app, DeployRequest: workflows.DeployRequest{
		Repo: "octo-org/hello", CloneURL: "file:///r", Commit: "c1", Description: "promote", Regions: []string{"a"}, ApprovalTimeout: time.Hour, RequestedBy: "ci"}})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if r := f.release(t, 1); r.Status != pipelines.ReleaseSucceeded || r.Description != "promote; approved by lead" {
		t.Fatalf("v1 = %s %q", r.Status, r.Description)
	}
}

// TestApprovalWaitQuery: while the release waits, the query says so, with
// its version, requester and deadline; once decided, it no longer waits
// though the workflow runs on.
func TestApprovalWaitQuery(t *testing.T) {
	f := newFixture(t)
	env := f.env()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "deploy/hello-staging/c1"})
	wait := func() workflows.ApprovalWait {
		t.Helper()
		res, err := env.QueryWorkflow(workflows.QueryApprovalWait)
		var w workflows.ApprovalWait
		if err != nil || res.Get(&w) != nil {
			t.Errorf("approval-wait query: %v", err)
		}
		return w
	}
	var before, after workflows.ApprovalWait
	env.RegisterDelayedCallback(func() {
		before = wait()
		env.SignalWorkflow(workflows.SignalApproval, workflows.Approval{Approved: true, By: "lead"})
	}, 5*time.Minute)
	env.RegisterDelayedCallback(func() { after = wait() }, 5*time.Minute+time.Second)
	start := env.Now()
	env.ExecuteWorkflow(workflows.DeployWorkflow, workflows.DeployInput{App: app, DeployRequest: workflows.DeployRequest{
		Repo: "octo-org/hello", CloneURL: "file:///r", Commit: "c1", Description: "promote", Regions: []string{"a"}, ApprovalTimeout: time.Hour, RequestedBy: "ci"}})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if !before.Waiting || before.Version != 1 || before.RequestedBy != "ci" || before.Deadline.Sub(start) < 59*time.Minute {
		t.Errorf("while waiting the query said %+v", before)
	}
	if after.Waiting {
		t.Errorf("after the approval the query said %+v; want not waiting", after)
	}
}

func TestApprovalGate(t *testing.T) {
	tests := []struct {
		name     string
		decision *workflows.Approval // nil: nobody answers
		status   pipelines.ReleaseStatus
		desc     string
		reason   string
	}{
		{"approved", &workflows.Approval{Approved: true, By: "alice"}, pipelines.ReleaseSucceeded, "; approved by alice", ""},
		{"rejected", &workflows.Approval{Approved: false, By: "bob"}, pipelines.ReleaseFailed, "; rejected by bob", "v1 rejected by bob"},
		{"timed out", nil, pipelines.ReleaseFailed, "", "nobody approved v1 within 1h0m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			env := f.env()
			env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "deploy/hello-staging/c1"})
			if tt.decision != nil {
				env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.SignalApproval, *tt.decision) }, 10*time.Minute)
			}
			env.ExecuteWorkflow(workflows.DeployWorkflow, workflows.DeployInput{App: app, DeployRequest: workflows.DeployRequest{
				Repo: "octo-org/hello", CloneURL: "file:///r", Commit: "c1", Description: "push", Regions: []string{"a", "b"}, ApprovalTimeout: time.Hour}})
			if !env.IsWorkflowCompleted() {
				t.Fatal("not completed")
			}
			r := f.release(t, 1)
			if r.Status != tt.status || r.Description != "push"+tt.desc || !strings.Contains(r.Reason, tt.reason) {
				t.Fatalf("v1 = %s %q %q; want %s %q %q", r.Status, r.Description, r.Reason, tt.status, "push"+tt.desc, tt.reason)
			}
			touched := len(f.regions["a"].deploys) + len(f.regions["a"].tasks)
			if (tt.status == pipelines.ReleaseSucceeded) != (touched > 0) {
				t.Fatalf("region a saw %d deploys and tasks; nothing may change before approval", touched)
			}
		})
	}
}

// TestApproveUpdateAnswersWhetherItCounted: approving through the update
// says whether the decision counted, where a signal said yes to anything:
// the requester's own approval and a second decision are refused with
// their reason, and an approver's decision is answered with the result.
func TestApproveUpdateAnswersWhetherItCounted(t *testing.T) {
	f := newFixture(t)
	env := f.env()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "deploy/hello-staging/c1"})
	answers := map[string]string{}
	update := func(id string, ap workflows.Approval) {
		env.UpdateWorkflow(workflows.UpdateApprove, id, &testsuite.TestUpdateCallback{
			OnReject: func(err error) { answers[id] = "rejected: " + err.Error() },
			OnAccept: func() {},
			OnComplete: func(res any, err error) {
				answers[id] = fmt.Sprintf("completed: %v %v", res, err)
			},
		}, ap)
	}
	env.RegisterDelayedCallback(func() { update("self", workflows.Approval{Approved: true, By: "ci"}) }, 5*time.Minute)
	env.RegisterDelayedCallback(func() {
		update("lead", workflows.Approval{Approved: true, By: "lead"})
		update("again", workflows.Approval{Approved: false, By: "other"})
	}, 10*time.Minute)
	env.ExecuteWorkflow(workflows.DeployWorkflow, workflows.DeployInput{App: app, DeployRequest: workflows.DeployRequest{
		Repo: "octo-org/hello", CloneURL: "file:///r", Commit: "c1", Description: "promote", Regions: []string{"a"}, ApprovalTimeout: time.Hour, RequestedBy: "ci"}})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{
		"self":  "rejected: v1 was queued by ci, who may not approve it too",
		"lead":  "completed: v1 approved by lead <nil>",
		"again": "rejected: v1 was already decided",
	} {
		if !strings.HasPrefix(answers[id], want) {
			t.Errorf("%s: %q; want %q", id, answers[id], want)
		}
	}
	if r := f.release(t, 1); r.Status != pipelines.ReleaseSucceeded || r.Description != "promote; approved by lead" {
		t.Fatalf("v1 = %s %q", r.Status, r.Description)
	}
}

// TestQueueUpdateSaysWhereTheOperationWaits: queueing through the update
// answers with how many run or wait before the operation; it refuses an
// operation already queued and one with nothing to do, and a copy that
// comes by signal too (a caller falling back) runs once.
func TestQueueUpdateSaysWhereTheOperationWaits(t *testing.T) {
	f := newFixture(t)
	if _, err := f.deploy(t, "c0"); err != nil {
		t.Fatal(err)
	}
	env := f.env()
	env.OnActivity(f.acts.Build, mock.Anything, mock.Anything).After(time.Minute).Return(
		func(ctx context.Context, in workflows.BuildInput) (workflows.BuildResult, error) {
			return workflows.BuildResult{Slug: digest(in.Commit), Procfile: pipelines.Procfile{{Type: "web", Command: "bin/web"}}}, nil
		})
	answers := map[string]string{}
	queue := func(name string, op workflows.Operation) {
		env.UpdateWorkflow(workflows.UpdateQueue, name, &testsuite.TestUpdateCallback{
			OnReject: func(err error) { answers[name] = "rejected: " + err.Error() },
			OnAccept: func() {},
			OnComplete: func(res any, err error) {
				answers[name] = fmt.Sprintf("ahead %d %v", res.(workflows.Queued).Ahead, err)
			},
		}, op)
	}
	change1 := change(nil, "first change")
	change2 := change(nil, "second change")
	op1 := workflows.Operation{ID: "config/hello-staging/n1", Kind: workflows.OpConfig, Change: &change1}
	op2 := workflows.Operation{ID: "config/hello-staging/n2", Kind: workflows.OpConfig, Change: &change2}
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.SignalDeploy, workflows.DeployRequest{Repo: "octo-org/hello", CloneURL: "file:///r", Commit: "c1", Regions: []string{"a", "b"}})
	}, 0)
	env.RegisterDelayedCallback(func() {
		queue("first", op1)  // behind the running deploy of c1
		queue("second", op2) // behind it and op1
		queue("again", op1)  // already queued
		queue("empty", workflows.Operation{ID: "config/hello-staging/n3"})
		env.SignalWorkflow(workflows.SignalOperation, op2) // the same, by signal
	}, 10*time.Second)
	env.ExecuteWorkflow(workflows.AppWorkflow, workflows.AppInput{App: app})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"first":  "ahead 1 <nil>",
		"second": "ahead 2 <nil>",
		"again":  "rejected: operation config/hello-staging/n1 is already queued",
		"empty":  "rejected: an operation needs an ID and one of promote, rollback or change",
	} {
		if !strings.HasPrefix(answers[name], want) {
			t.Errorf("%s: %q, want %q", name, answers[name], want)
		}
	}
	rs, _ := f.store.Releases(context.Background(), app, 0)
	var got []string
	for i := len(rs) - 1; i >= 0; i-- {
		got = append(got, rs[i].Name()+":"+rs[i].Description)
	}
	if want := "v1: v2: v3:first change v4:second change"; strings.Join(got, " ") != want {
		t.Fatalf("ledger = %s\nwant     %s", strings.Join(got, " "), want)
	}
}

// TestProcessesAsksEveryRegion: ps asks each region on its own and names
// one that cannot answer, while the others do.
func TestProcessesAsksEveryRegion(t *testing.T) {
	f := newFixture(t)
	if _, err := f.deploy(t, "c1"); err != nil {
		t.Fatal(err)
	}
	f.regions["b"].unreachable = true
	env := f.env()
	env.ExecuteWorkflow(workflows.ProcessesWorkflow, workflows.ProcessesInput{App: app, Regions: []string{"a", "b"}})
	var out []workflows.RegionProcesses
	if err := env.GetWorkflowResult(&out); err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].Region != "a" || len(out[0].Processes) != 1 || out[0].Processes[0].Dyno != "web.1" || out[0].Processes[0].Release != 1 || out[0].Error != "" {
		t.Fatalf("region a = %+v", out)
	}
	if out[1].Region != "b" || len(out[1].Processes) != 0 || !strings.Contains(out[1].Error, "region unavailable") {
		t.Fatalf("region b = %+v; want it named with why", out[1])
	}
}

// TestStoreStepsAreLocal: a promotion's store steps (finding the release
// to promote, making and finishing its release) run as local activities,
// within the workflow's own tasks; only the region and GitHub steps go
// through Temporal's queues.
func TestStoreStepsAreLocal(t *testing.T) {
	f := newFixture(t)
	if _, err := f.deploy(t, "c1"); err != nil {
		t.Fatal(err)
	}
	env := f.env()
	var mu sync.Mutex
	var local, queued []string
	env.SetOnLocalActivityStartedListener(func(info *activity.Info, _ context.Context, _ []any) {
		mu.Lock()
		defer mu.Unlock()
		local = append(local, info.ActivityType.Name)
	})
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		mu.Lock()
		defer mu.Unlock()
		queued = append(queued, info.ActivityType.Name)
	})
	env.ExecuteWorkflow(workflows.PromoteWorkflow, promote(app, 0))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(local)
	slices.Sort(queued)
	if got := strings.Join(local, " "); got != "CreateRelease FinishRelease PromotionSource" {
		t.Fatalf("local activities %q", got)
	}
	if got := strings.Join(queued, " "); got != "DeployRegion DeployRegion ReleasePhase" {
		t.Fatalf("queued activities %q", got)
	}
}
