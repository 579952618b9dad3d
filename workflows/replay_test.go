package workflows_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/workflows"
)

// minHistories is how many histories testdata holds at least; fewer means
// one was deleted, and with it the proof that its shape still replays.
const minHistories = 30

// TestReplayRecordedHistories replays every history under testdata,
// recorded on the dev stack (saveHistory in cmd/drover's end-to-end
// tests; TestE2ERecordHistories records most), against today's code. A
// change to a workflow's shape that would break running workflows fails
// here: guard it with workflow.GetVersion, and keep the old histories.
// Each file is replayed by the workflow its first event names, so a new
// history needs no change here.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < minHistories {
		t.Fatalf("testdata holds %d histories, want at least %d: %v", len(files), minHistories, files)
	}
	known := registeredWorkflows(t)
	covered := map[string]bool{}
	for _, file := range files {
		h := mustReadHistory(t, file)
		typ := h.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName()
		if !slices.Contains(known, typ) {
			t.Errorf("%s is a history of %q, which workflows.Register does not register (it registers %v)", file, typ, known)
			continue
		}
		covered[typ] = true
		t.Run(filepath.Base(file), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			workflows.Register(&replayRegistry{replayer: r}, nil, nil)
			if err := r.ReplayWorkflowHistory(quiet(), h); err != nil {
				t.Fatalf("replay %s (%s, %d events) against today's %s: %v", file, typ, len(h.GetEvents()), typ, err)
			}
		})
	}
	// A workflow with no history could change shape with nothing to say so.
	for _, typ := range known {
		if !covered[typ] {
			t.Errorf("no history under testdata is a %s; record one (see TestE2ERecordHistories in cmd/drover)", typ)
		}
	}
}

// TestReplayCatchesUnguardedChange shows that the replay test would catch
// a workflow whose commands changed order without GetVersion: stand-ins
// for DeployWorkflow, registered under its name, replay deploy.json.
// The stand-in that runs the recorded steps in their recorded order
// replays cleanly, so the others fail for their order alone.
func TestReplayCatchesUnguardedChange(t *testing.T) {
	h := mustReadHistory(t, filepath.Join("testdata", "deploy.json"))
	tests := []struct {
		name    string
		steps   []string
		wantErr bool
	}{
		{"recorded order", []string{"Build", "CreateRelease", "ReleasePhase", "DeployRegion", "FinishRelease"}, false},
		{"release phase dropped", []string{"Build", "CreateRelease", "DeployRegion", "FinishRelease"}, true},
		{"release before the build", []string{"CreateRelease", "Build", "ReleasePhase", "DeployRegion", "FinishRelease"}, true},
		{"rollout before the release phase", []string{"Build", "CreateRelease", "DeployRegion", "ReleasePhase", "FinishRelease"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(deployInSteps(tt.steps), workflow.RegisterOptions{Name: "DeployWorkflow"})
			err := r.ReplayWorkflowHistory(quiet(), h)
			switch {
			case !tt.wantErr && err != nil:
				t.Fatalf("the recorded order did not replay: %v", err)
			case tt.wantErr && err == nil:
				t.Fatal("a DeployWorkflow with another command order replayed deploy.json cleanly; the replay test would not catch an unguarded change")
			case tt.wantErr && !strings.Contains(err.Error(), nondeterminism):
				t.Fatalf("replay failed, but not for nondeterminism (%s): %v", nondeterminism, err)
			}
		})
	}
}

// nondeterminism is the code the SDK gives every nondeterminism error,
// whether a command fails to match its event ("nondeterministic
// workflow: history event is …") or an event finds no command at all
// ("lookup failed for scheduledEventID …").
const nondeterminism = "[TMPRL1100]"

// deployInSteps is a DeployWorkflow that runs the named activities in the
// given order, one region at a time where a step acts in regions, as
// drover's would with its history's input. It calls activities by name,
// as a changed DeployWorkflow of another build of drover would.
func deployInSteps(steps []string) func(workflow.Context, workflows.DeployInput) (workflows.DeployResult, error) {
	return func(ctx workflow.Context, in workflows.DeployInput) (workflows.DeployResult, error) {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
		var build workflows.BuildResult
		var rel workflows.CreateReleaseResult
		for _, step := range steps {
			var err error
			switch step {
			case "Build":
				err = workflow.ExecuteActivity(ctx, step, workflows.BuildInput{App: in.App, Repo: in.Repo, CloneURL: in.CloneURL, Commit: in.Commit}).Get(ctx, &build)
			case "CreateRelease":
				err = workflow.ExecuteActivity(ctx, step, workflows.CreateReleaseInput{App: in.App, Slug: build.Slug, Commit: in.Commit, Procfile: build.Procfile, Regions: in.Regions}).Get(ctx, &rel)
			case "ReleasePhase":
				err = workflow.ExecuteActivity(ctx, step, workflows.ReleasePhaseInput{App: in.App, Version: rel.Version, Region: in.Regions[0]}).Get(ctx, nil)
			case "DeployRegion":
				for _, region := range in.Regions {
					if err = workflow.ExecuteActivity(ctx, step, workflows.DeployRegionInput{App: in.App, Version: rel.Version, Region: region}).Get(ctx, nil); err != nil {
						break
					}
				}
			case "FinishRelease":
				err = workflow.ExecuteActivity(ctx, step, workflows.FinishReleaseInput{App: in.App, Version: rel.Version, Status: pipelines.ReleaseSucceeded}).Get(ctx, nil)
			}
			if err != nil {
				return workflows.DeployResult{Status: pipelines.ReleaseFailed}, err
			}
		}
		return workflows.DeployResult{Version: rel.Version, Status: pipelines.ReleaseSucceeded}, nil
	}
}

// replayRegistry hands the workflows workflows.Register registers to a
// replayer and drops the activities, which a replay never runs. Register
// uses no other method; one it starts using panics on the nil Registry
// here, so this test learns of it.
type replayRegistry struct {
	worker.Registry
	replayer worker.WorkflowReplayer
	names    []string
}

func (r *replayRegistry) RegisterWorkflow(w any) {
	if r.replayer != nil {
		r.replayer.RegisterWorkflow(w)
	}
	r.names = append(r.names, functionName(w))
}

func (r *replayRegistry) RegisterWorkflowWithOptions(w any, opts workflow.RegisterOptions) {
	if r.replayer != nil {
		r.replayer.RegisterWorkflowWithOptions(w, opts)
	}
	name := opts.Name
	if name == "" {
		name = functionName(w)
	}
	r.names = append(r.names, name)
}

func (r *replayRegistry) RegisterActivity(any) {}

// registeredWorkflows returns the workflow types workflows.Register
// registers, by the names their histories carry.
func registeredWorkflows(t *testing.T) []string {
	t.Helper()
	r := &replayRegistry{}
	workflows.Register(r, nil, nil)
	if len(r.names) == 0 {
		t.Fatal("workflows.Register registered no workflow")
	}
	return r.names
}

// functionName is the workflow type Temporal names a function by: its
// name without the package path.
func functionName(fn any) string {
	name := runtime.FuncForPC(reflect.ValueOf(fn).Pointer()).Name()
	name = name[strings.LastIndex(name, ".")+1:]
	return strings.TrimSuffix(name, "-fm")
}

func mustReadHistory(t *testing.T, file string) *historypb.History {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	if err != nil {
		t.Fatalf("read %s: %v", file, err)
	}
	if len(h.GetEvents()) == 0 || h.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes() == nil {
		t.Fatalf("%s does not start with a WorkflowExecutionStarted event", file)
	}
	return h
}

func quiet() log.Logger { return log.NewStructuredLogger(slog.New(slog.DiscardHandler)) }
