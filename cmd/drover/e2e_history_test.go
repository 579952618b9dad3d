package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"

	"github.com/drover/drover/api"
	"github.com/drover/drover/gh/ghtest"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/workflows"
)

// TestE2ERecordHistories drives, on one dev stack, every flow whose
// workflow history the workflows package replays against today's code
// (TestReplayRecordedHistories), and checks what each flow did. With
// DROVER_SAVE_HISTORY set to a folder it also writes each history there:
//
//	DROVER_SAVE_HISTORY=$PWD/workflows/testdata go test -count=1 -run TestE2ERecordHistories ./cmd/drover/
//
// The flows share one stack and run in order because later ones build on
// earlier ones: the promotion takes the release the missed push made, the
// rollback goes back past the superseded push, and the review apps run
// main's commits, whose builds already exist.
func TestE2ERecordHistories(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts the dev stack and builds apps; skipped by -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	repo := newGitRepo(t)
	gh, d, s := startRecording(t, ctx, repo)
	defer d.Close()
	t.Setenv("DROVER_URL", s.base)
	t.Setenv("DROVER_TOKEN", s.token)
	h := &historian{d: d, dir: os.Getenv("DROVER_SAVE_HISTORY")}

	const procfile = "web: bin/web\n"
	var c1, c3, c4 string
	var v3, v4 pipelines.Release
	steps := []struct {
		name string
		run  func(t *testing.T, s *stack)
	}{
		{"first push", func(t *testing.T, s *stack) {
			c1 = repo.commit("one", procfile)
			gh.setCI(c1, "success")
			s.accepted(ctx, "push", "d-1", pushPayload(t, repo.dir, c1))
			if v1 := s.waitRelease(ctx, "hello-staging", 1); v1.Status != pipelines.ReleaseSucceeded || v1.Commit != c1 {
				t.Fatalf("v1 = %s %s: %s", v1.Status, v1.Commit, v1.Reason)
			}
		}},
		{"push waiting for CI superseded", func(t *testing.T, s *stack) {
			c2 := repo.commit("two", procfile)
			gh.setCI(c2, "") // still running: the deploy waits
			s.accepted(ctx, "push", "d-2", pushPayload(t, repo.dir, c2))
			waiting := workflows.DeployWorkflowID("hello-staging", c2)
			// Its poll timer is the sign it read CI and now waits.
			waitForEvent(t, ctx, d, waiting, enumspb.EVENT_TYPE_TIMER_STARTED)
			c3 = repo.commit("three", procfile)
			gh.setCI(c3, "success")
			s.accepted(ctx, "push", "d-3", pushPayload(t, repo.dir, c3))
			v3 = s.waitRelease(ctx, "hello-staging", 3)
			if v3.Status != pipelines.ReleaseSucceeded || v3.Commit != c3 {
				t.Fatalf("v3 = %s %s: %s", v3.Status, v3.Commit, v3.Reason)
			}
			if v2 := s.waitRelease(ctx, "hello-staging", 2); v2.Status != pipelines.ReleaseSuperseded || v2.Commit != c2 {
				t.Fatalf("v2 = %s %s; want %s superseded", v2.Status, v2.Commit, c2)
			}
			h.keep(t, ctx, "ci-supersede.json", waiting, "DeployWorkflow")
			if st := gh.deploymentStates(c2, "staging"); len(st) == 0 || st[len(st)-1] != "inactive" {
				t.Fatalf("c2's deployment states = %v; want it inactive", st)
			}
			app := h.keep(t, ctx, "app-supersede.json", workflows.AppWorkflowID("hello-staging"), "AppWorkflow")
			if !slices.ContainsFunc(app, func(e *historypb.HistoryEvent) bool {
				return e.GetSignalExternalWorkflowExecutionInitiatedEventAttributes().GetSignalName() == workflows.SignalSupersede
			}) {
				t.Fatal("the app queue's history has no supersede signal to its waiting deploy")
			}
		}},
		{"missed push found by its schedule", func(t *testing.T, s *stack) {
			// c4's webhook never arrives; GitHub says it is main's head.
			c4 = repo.commit("four", procfile)
			gh.setCI(c4, "success")
			gh.setHead(c4, "four")
			var res workflows.MissedPushResult
			id := runSchedule(t, ctx, d, workflows.MissedPushScheduleID("hello-staging"), &res)
			if !res.Queued || res.Head != c4 {
				t.Fatalf("missed-push run = %+v; want %s queued", res, c4)
			}
			v4 = s.waitRelease(ctx, "hello-staging", 4)
			if v4.Status != pipelines.ReleaseSucceeded || v4.Commit != c4 || !strings.Contains(v4.Description, "found by reconciliation") {
				t.Fatalf("v4 = %s %s %q", v4.Status, v4.Commit, v4.Description)
			}
			h.keep(t, ctx, "missed-push.json", id, "MissedPushWorkflow")
		}},
		{"promote", func(t *testing.T, s *stack) {
			op := runOperation(t, ctx, "promote", "hello")
			if r := op.Release; op.App != "hello" || r.Version != 1 || r.Slug != v4.Slug || r.Description != "promoted from hello-staging v4" {
				t.Fatalf("promotion made %s %s %q from %s; want v1 of staging v4's slug %s", op.App, r.Name(), r.Description, r.Slug, v4.Slug)
			}
			h.keep(t, ctx, "promote.json", op.ID, "PromoteWorkflow")
		}},
		{"config set", func(t *testing.T, s *stack) {
			op := runOperation(t, ctx, "config", "set", "hello", "FEATURE=on")
			if r := op.Release; r.Version != 2 || r.Slug != v4.Slug || r.ConfigVersion == 0 {
				t.Fatalf("config set made %+v", r)
			}
			h.keep(t, ctx, "config.json", op.ID, "ChangeWorkflow")
		}},
		{"scale", func(t *testing.T, s *stack) {
			op := runOperation(t, ctx, "ps:scale", "hello", "web=2")
			if r := op.Release; r.Version != 3 || r.Slug != v4.Slug || r.Formation["web"] != 2 {
				t.Fatalf("ps:scale made %+v", r)
			}
			h.keep(t, ctx, "scale.json", op.ID, "ChangeWorkflow")
			// Production's queue took the promotion, the config change and
			// the scale by update (UpdateQueue), as the API queues them.
			app := h.keep(t, ctx, "app-queue-update.json", workflows.AppWorkflowID("hello"), "AppWorkflow")
			updates := 0
			for _, e := range app {
				if e.GetWorkflowExecutionUpdateAcceptedEventAttributes().GetAcceptedRequest().GetInput().GetName() == workflows.UpdateQueue {
					updates++
				}
			}
			if updates != 3 {
				t.Fatalf("production's queue took %d operations by update, want 3", updates)
			}
		}},
		{"ps", func(t *testing.T, s *stack) {
			id := workflows.ProcessesWorkflowID("hello", "recorded")
			out, err := (&workflows.Starter{Client: d.client}).Processes(ctx, id, "hello", []string{"local-a"})
			if err != nil || len(out) != 1 || len(out[0].Processes) != 2 || out[0].Processes[0].Dyno != "web.1" || out[0].Processes[0].Release != 3 {
				t.Fatalf("ps = %+v, %v; want web.1 and web.2 on v3 in local-a", out, err)
			}
			// One-off workflows start eagerly: the dev stack's own worker
			// got the first task in the start's answer.
			if events := h.keep(t, ctx, "ps.json", id, "ProcessesWorkflow"); !events[0].GetWorkflowExecutionStartedEventAttributes().GetEagerExecutionAccepted() {
				t.Fatalf("ps did not start eagerly: %v", events[0])
			}
		}},
		{"plan", func(t *testing.T, s *stack) {
			// A preview's plan: local regions have no scheduler to ask,
			// so the region answers why; Nomad regions plan (see the
			// Nomad contract suite).
			id := workflows.PlanWorkflowID("hello", "recorded")
			rel := pipelines.Release{App: "hello", Version: 4, Slug: v4.Slug, Commit: v4.Commit, Formation: pipelines.Formation{"web": 2}, Procfile: v4.Procfile}
			out, err := (&workflows.Starter{Client: d.client}).Plan(ctx, id, rel, []string{"local-a"})
			if err != nil || len(out) != 1 || out[0].Plan != nil || !strings.Contains(out[0].Error, "region local-a cannot plan") {
				t.Fatalf("plan = %+v, %v; want local-a to say it cannot plan", out, err)
			}
			h.keep(t, ctx, "plan.json", id, "PlanWorkflow")
		}},
		{"manual rollback pauses auto-deploy", func(t *testing.T, s *stack) {
			// v2 was superseded and never ran: the rollback goes to v3.
			op := runOperation(t, ctx, "rollback", "hello-staging")
			if r := op.Release; r.Version != 5 || r.Slug != v3.Slug || r.Description != "rollback to v3" {
				t.Fatalf("rollback made %s %q of %s; want v5 of v3's slug %s", r.Name(), r.Description, r.Slug, v3.Slug)
			}
			h.keep(t, ctx, "rollback.json", op.ID, "RollbackWorkflow")
			c5 := repo.commit("five", procfile)
			s.accepted(ctx, "push", "d-5", pushPayload(t, repo.dir, c5))
			if r := s.waitRelease(ctx, "hello-staging", 6); r.Status != pipelines.ReleaseSkipped || r.Commit != c5 || !strings.Contains(r.Description, "drover autodeploy resume hello-staging") {
				t.Fatalf("push after the rollback = %s %s %q; want it skipped", r.Status, r.Commit, r.Description)
			}
			h.keep(t, ctx, "app-paused.json", workflows.AppWorkflowID("hello-staging"), "AppWorkflow")
		}},
		{"approval", func(t *testing.T, s *stack) {
			s.accepted(ctx, "push", "g-1", pushPayloadFor(t, gatedRepo, repo.dir, c1))
			eventually(ctx, t, "gated-staging v1 waiting for approval", func() bool {
				rs := s.releases(ctx, "gated-staging")
				return len(rs) == 1 && rs[0].Status == pipelines.ReleasePending
			})
			id := workflows.DeployWorkflowID("gated-staging", c1)
			runCommand(t, ctx, "approve", id)
			if r := s.waitRelease(ctx, "gated-staging", 1); r.Status != pipelines.ReleaseSucceeded || !strings.HasSuffix(r.Description, "approved by admin") {
				t.Fatalf("gated-staging v1 = %s %q", r.Status, r.Description)
			}
			// approval.json holds an approval by signal, as drover sent
			// it before approving by update.
			h.keep(t, ctx, "approval-update.json", id, "DeployWorkflow")
		}},
		{"review app evicted by max_apps", func(t *testing.T, s *stack) {
			// Listed open as GitHub would, so a sweep leaves both alone.
			gh.setOpenPulls(map[int]string{60: c3, 61: c4})
			s.accepted(ctx, "pull_request", "pr-60", prPayload(t, "opened", repo.dir, "feature", c3, 60))
			s.waitReviewApp(ctx, 60, c3)
			s.accepted(ctx, "pull_request", "pr-61", prPayload(t, "opened", repo.dir, "feature", c4, 61))
			s.waitReviewApp(ctx, 61, c4)
			if err := d.client.GetWorkflow(ctx, workflows.ReviewWorkflowID(e2eRepo, 60), "").Get(ctx, nil); err != nil {
				t.Fatalf("the evicted review app's workflow: %v", err)
			}
			if list := s.reviewApps(ctx); len(list) != 1 || list[0].PR != 61 {
				t.Fatalf("review apps = %+v; want #61's alone (max_apps: 1)", list)
			}
			if c := gh.issueComments(60); len(c) != 1 || !strings.Contains(c[0], "max_apps") {
				t.Fatalf("#60's comment = %q; want it to say max_apps destroyed it", c)
			}
			events := h.keep(t, ctx, "review-evict.json", workflows.ReviewWorkflowID(e2eRepo, 61), "ReviewAppWorkflow")
			if !slices.ContainsFunc(events, func(e *historypb.HistoryEvent) bool {
				return e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == "EvictReviewApp"
			}) {
				t.Fatal("#61's history has no EvictReviewApp activity")
			}
		}},
		{"review sweep", func(t *testing.T, s *stack) {
			gh.setOpenPulls(nil) // #61 closed, its webhook lost
			var res workflows.ReviewSweepResult
			id := runSchedule(t, ctx, d, workflows.ReviewSweepScheduleID("hello"), &res)
			if !slices.Equal(res.Destroyed, []int{61}) || len(res.Handed) != 0 {
				t.Fatalf("sweep = %+v; want #61 destroyed", res)
			}
			eventually(ctx, t, "#61's review app destroyed", func() bool { return len(s.reviewApps(ctx)) == 0 })
			h.keep(t, ctx, "sweep.json", id, "ReviewSweepWorkflow")
		}},
		{"collect", func(t *testing.T, s *stack) {
			var res workflows.CollectResult
			id := runSchedule(t, ctx, d, workflows.CollectScheduleID, &res)
			// Every slug is younger than the grace period: nothing goes.
			if res.Slugs != 0 || res.Kept == 0 {
				t.Fatalf("collect = %+v; want nothing deleted, some kept", res)
			}
			h.keep(t, ctx, "collect.json", id, "CollectWorkflow")
		}},
	}
	for _, st := range steps {
		// Each step builds on the ones before it; after a failure the rest
		// would only fail for that reason.
		if !t.Run(st.name, func(t *testing.T) { st.run(t, s.forTest(t)) }) {
			t.FailNow()
		}
	}
}

// gatedRepo is the repository of the second pipeline, whose one stage
// requires approval; it clones from the same local repository.
const gatedRepo = "octo-org/gated"

// untilTriggered is the schedules' interval: long enough that they never
// run by themselves during the test, which triggers each when it wants
// one run.
const untilTriggered = "8760h"

// startRecording starts drover dev, talking to a GitHub stand-in, with
// every stage setting a recorded flow needs: a review stage capped at one
// app, a staging that waits for CI, a production to promote to, and a
// second pipeline whose staging requires approval.
func startRecording(t *testing.T, ctx context.Context, repo *gitRepo) (*gitHubStandIn, *Dev, *stack) {
	t.Helper()
	gh := newGitHubStandIn(t, "file://"+repo.dir)
	gh.AddRepo(gatedRepo, "file://"+repo.dir)
	t.Setenv(secretEnv, "e2e-secret")
	t.Setenv("DROVER_E2E_GH_TOKEN", ghtest.Token)
	config := filepath.Join(t.TempDir(), "drover.yaml")
	yaml := fmt.Sprintf(`github: { webhook_secret_env: %[1]s, token_env: DROVER_E2E_GH_TOKEN, api_url: '%[2]s' }
regions:
  local-a: { driver: local }
pipelines:
  hello:
    repo: %[3]s
    source: file://%[6]s
    stages:
      review:     { regions: [local-a], max_apps: 1, reconcile_interval: %[5]s }
      staging:    { app: hello-staging, branch: main, regions: [local-a], wait_for_ci: true, reconcile_interval: %[5]s }
      production: { app: hello, regions: [local-a] }
  gated:
    repo: %[4]s
    source: file://%[6]s
    stages:
      staging: { app: gated-staging, branch: main, regions: [local-a], require_approval: true, reconcile_interval: %[5]s }
`, secretEnv, gh.URL, e2eRepo, gatedRepo, untilTriggered, repo.dir)
	if err := os.WriteFile(config, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	d, s := startDev(t, ctx, config, t.TempDir())
	return gh, d, s
}

// forTest is s for a subtest: its helpers fail t, not the test s was
// made in, since FailNow must come from the test's own goroutine.
func (s *stack) forTest(t *testing.T) *stack {
	c := *s
	c.t = t
	return &c
}

// accepted sends a webhook and fails unless drover answers 202.
func (s *stack) accepted(ctx context.Context, event, delivery string, payload []byte) {
	s.t.Helper()
	if code, body := s.webhook(ctx, event, delivery, payload); code != http.StatusAccepted {
		s.t.Fatalf("%s %s: %d %s", event, delivery, code, body)
	}
}

// runCommand runs a drover command and fails unless it exits 0.
func runCommand(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := Run(ctx, args, Streams{Out: &out, Err: &errOut}); code != exitOK {
		t.Fatalf("drover %s: exit %d\n%s%s", strings.Join(args, " "), code, errOut.String(), out.String())
	}
	return out.String()
}

// runOperation runs a drover command that queues an operation and follows
// it (promote, rollback, config set, ps:scale), and returns the operation
// as it ended; it fails unless the operation succeeded with a release.
func runOperation(t *testing.T, ctx context.Context, args ...string) api.Operation {
	t.Helper()
	out := runCommand(t, ctx, append(args, "--json")...)
	var op api.Operation
	if err := json.Unmarshal([]byte(out), &op); err != nil {
		t.Fatalf("drover %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
	if op.State != workflows.OperationSucceeded || op.Release == nil || op.Release.Status != pipelines.ReleaseSucceeded {
		t.Fatalf("drover %s: operation %s ended %s: %s", strings.Join(args, " "), op.ID, op.State, op.Error)
	}
	return op
}

// historian checks the workflows a flow ran and, when dir is set, saves
// their histories there for the workflows package's replay test.
type historian struct {
	d   *Dev
	dir string
}

// keep waits until workflow id is at rest, checks that it is a wantType,
// saves its history as file when h.dir is set, and returns its events.
func (h *historian) keep(t *testing.T, ctx context.Context, file, id, wantType string) []*historypb.HistoryEvent {
	t.Helper()
	waitAtRest(t, ctx, h.d, id)
	events := workflowHistory(t, ctx, h.d, id)
	if got := events[0].GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName(); got != wantType {
		t.Fatalf("%s is a %s, want a %s for %s", id, got, wantType, file)
	}
	if h.dir != "" {
		saveHistory(t, ctx, h.d, h.dir, file, id)
	}
	return events
}

// workflowHistory returns the events of workflow id's latest run.
func workflowHistory(t *testing.T, ctx context.Context, d *Dev, id string) []*historypb.HistoryEvent {
	t.Helper()
	var events []*historypb.HistoryEvent
	iter := d.client.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", id, err)
		}
		events = append(events, ev)
	}
	if len(events) == 0 {
		t.Fatalf("history of %s is empty", id)
	}
	return events
}

// waitAtRest waits until workflow id has closed, or waits for a signal or
// a timer with no workflow task, activity or child in flight, so that a
// history saved then ends where a worker left it, not in the middle of a
// step.
func waitAtRest(t *testing.T, ctx context.Context, d *Dev, id string) {
	t.Helper()
	eventually(ctx, t, id+" at rest", func() bool {
		desc, err := d.client.DescribeWorkflowExecution(ctx, id, "")
		if err != nil {
			return false
		}
		if desc.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			return true
		}
		return desc.GetPendingWorkflowTask() == nil && len(desc.GetPendingActivities()) == 0 && len(desc.GetPendingChildren()) == 0
	})
}

// waitForEvent waits until workflow id's history holds an event of typ.
func waitForEvent(t *testing.T, ctx context.Context, d *Dev, id string, typ enumspb.EventType) {
	t.Helper()
	eventually(ctx, t, fmt.Sprintf("%s in the history of %s", typ, id), func() bool {
		iter := d.client.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for iter.HasNext() {
			ev, err := iter.Next()
			if err != nil {
				return false // not started yet
			}
			if ev.GetEventType() == typ {
				return true
			}
		}
		return false
	})
}

// runSchedule triggers schedule id once, as its interval would, waits for
// the workflow run it starts to end, decodes the run's result into into,
// and returns the run's workflow ID.
func runSchedule(t *testing.T, ctx context.Context, d *Dev, id string, into any) string {
	t.Helper()
	h := d.client.ScheduleClient().GetHandle(ctx, id)
	before, err := h.Describe(ctx)
	if err != nil {
		t.Fatalf("describe schedule %s: %v", id, err)
	}
	if err := h.Trigger(ctx, client.ScheduleTriggerOptions{}); err != nil {
		t.Fatalf("trigger schedule %s: %v", id, err)
	}
	var run *client.ScheduleWorkflowExecution
	eventually(ctx, t, "the run schedule "+id+" started", func() bool {
		desc, err := h.Describe(ctx)
		if err != nil || desc.Info.NumActions <= before.Info.NumActions || len(desc.Info.RecentActions) == 0 {
			return false
		}
		run = desc.Info.RecentActions[len(desc.Info.RecentActions)-1].StartWorkflowResult
		return run != nil
	})
	if err := d.client.GetWorkflow(ctx, run.WorkflowID, run.FirstExecutionRunID).Get(ctx, into); err != nil {
		t.Fatalf("run %s of schedule %s: %v", run.WorkflowID, id, err)
	}
	return run.WorkflowID
}
