// Package regions defines the Region interface: the one way drover puts a
// release into a place where apps run, watches it, takes it back out, and
// runs one-off tasks there. Drivers live in subpackages: regions/local runs
// processes on this machine for development and tests.
package regions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/drover/drover/applog"
	"github.com/drover/drover/pipelines"
)

// Slug locates a release's slug for a driver: local drivers read Path,
// remote schedulers fetch URL and check Digest.
type Slug struct {
	Digest string `json:"digest"`
	Path   string `json:"path,omitempty"`
	URL    string `json:"url,omitempty"`
}

// Deployment is everything a region needs to run one release of an app.
type Deployment struct {
	App       string              `json:"app"`
	Release   int                 `json:"release"`
	Commit    string              `json:"commit,omitempty"`
	Slug      Slug                `json:"slug"`
	Procfile  pipelines.Procfile  `json:"procfile"`
	Formation pipelines.Formation `json:"formation"`
	// Env holds the config vars. It is never logged.
	Env map[string]string `json:"-"`
	// JobTemplate is the user's scheduler job template (Nomad JSON or HCL)
	// that extends what the driver renders; drivers without jobs ignore it.
	JobTemplate []byte `json:"-"`
	// RepoJobTemplate is the repository's own job file (drover.nomad.hcl),
	// written by whoever can push. It is merged over JobTemplate for the
	// RepoJobFields the operator allows only; it never replaces it.
	RepoJobTemplate []byte   `json:"-"`
	RepoJobFields   []string `json:"repo_job_fields,omitempty"`
	// URL is where the stage's ingress serves the app (drover.yaml's url),
	// and ServiceTags the routing tags its live web registrations carry. A
	// driver whose apps sit behind that ingress (Nomad) reports URL as
	// where the app answers; the local driver has its own proxy.
	URL         string   `json:"url,omitempty"`
	ServiceTags []string `json:"service_tags,omitempty"`
	// Proven says this release's slug and config ran healthy before (a
	// rollback, a revert, a scale change): drivers may judge its health
	// in a shorter window, so going back takes seconds.
	Proven bool `json:"proven,omitempty"`
	// Progress, when set, receives short human-readable steps; activities
	// turn them into heartbeats and ledger messages.
	Progress func(msg string) `json:"-"`
}

// Result says where a successful deployment answers.
type Result struct {
	// URL is where the web process answers in this region, if it has one.
	URL     string `json:"url,omitempty"`
	Message string `json:"message,omitempty"`
}

// Task is a one-off command run from a release's slug, such as the release phase.
type Task struct {
	App     string            `json:"app"`
	Release int               `json:"release"`
	Name    string            `json:"name"`
	Slug    Slug              `json:"slug"`
	Command string            `json:"command"`
	Env     map[string]string `json:"-"`
	// ID names one run of the task: a retry with the same ID finds that
	// run rather than starting another. Empty: the app, release and Name
	// name it, as for the release phase, which runs once per release.
	ID string `json:"id,omitempty"`
	// Timeout bounds the task's run; 0 is the driver's default. A task
	// past it is stopped and reported as a failed TaskResult.
	Timeout time.Duration `json:"timeout,omitempty"`
	// Output, when set, receives the task's output as it is written, for
	// those following it live; TaskResult.Output still carries its tail.
	Output io.Writer `json:"-"`
}

// TaskResult is how a task ended. A task that ran and exited non-zero is a
// result, not an error.
type TaskResult struct {
	ExitCode int    `json:"exit_code"`
	Output   string `json:"output"`
}

// Status is what a region runs for an app.
type Status struct {
	Release int    `json:"release"`
	Slug    string `json:"slug,omitempty"`
	URL     string `json:"url,omitempty"`
	Running bool   `json:"running"`
}

// Region is one place apps run. Every method is idempotent, so activities
// can retry it: deploying the release that already runs returns its result.
type Region interface {
	// Name is the region's key in drover.yaml.
	Name() string
	// Deploy makes d the running release of d.App and returns once it is
	// healthy. On failure the previous release keeps serving and the error
	// is a *DeployError saying why.
	Deploy(ctx context.Context, d Deployment) (Result, error)
	// Stop stops every process of app in this region. Stopping an app that
	// does not run is not an error.
	Stop(ctx context.Context, app string) error
	// RunTask runs t to completion.
	RunTask(ctx context.Context, t Task) (TaskResult, error)
	// Status reports what runs for app; Running is false when nothing does.
	Status(ctx context.Context, app string) (Status, error)
}

// DeployError is a deployment that ran and failed: the release did not
// become healthy. Retrying the same deployment will not help.
type DeployError struct {
	Region  string
	App     string
	Release int
	Reason  string
}

func (e *DeployError) Error() string {
	return fmt.Sprintf("deploy %s v%d in region %s: %s", e.App, e.Release, e.Region, e.Reason)
}

// ErrUnavailable marks a region that could not be reached; callers retry.
var ErrUnavailable = errors.New("region unavailable")

// Process states, as `drover ps` shows them.
const (
	ProcessUp       = "up"
	ProcessStarting = "starting"
	ProcessCrashed  = "crashed"
	ProcessStopped  = "stopped"
)

// Process is one instance of a process type (a dyno, web.1) in a region.
type Process struct {
	// Dyno is the instance's name: the process type and its number.
	Dyno    string `json:"dyno"`
	Type    string `json:"type"`
	Release int    `json:"release"`
	// State is ProcessUp, ProcessStarting, ProcessCrashed or ProcessStopped.
	State string `json:"state"`
	// Since is when it entered State, where the driver knows.
	Since    time.Time `json:"since,omitzero"`
	Restarts int       `json:"restarts"`
	// ExitCode is its last exit's code, where the driver knows it.
	ExitCode *int   `json:"exit_code,omitempty"`
	Message  string `json:"message,omitempty"`
}

// OneOff is a one-off process (`drover run`): dyno run.N of a release,
// started from its slug with its config vars.
type OneOff struct {
	App     string            `json:"app"`
	Release int               `json:"release"`
	Number  int               `json:"number"`
	Command string            `json:"command"`
	Slug    Slug              `json:"slug"`
	Env     map[string]string `json:"-"`
	// Size names the process size, where the driver has sizes.
	Size string `json:"size,omitempty"`
}

// Dyno is the one-off's dyno name, run.N.
func (o OneOff) Dyno() string { return "run." + strconv.Itoa(o.Number) }

// Stdio connects an attached one-off to whoever runs it.
type Stdio struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// TTY runs the one-off on a terminal of its own, Size big, resized
	// by what Resize sends; its output then all comes on Stdout, as a
	// terminal's does.
	TTY    bool
	Size   TermSize
	Resize <-chan TermSize
}

// TermSize is a terminal's size in characters.
type TermSize struct {
	Rows uint16 `json:"rows"`
	Cols uint16 `json:"cols"`
}

// Runner is a Region that runs one-off processes. A one-off never
// restarts and is never rescheduled.
type Runner interface {
	// StartRun starts o and returns once it runs (or could not start),
	// with wait, which returns its exit code when it ends (128+n when a
	// signal n killed it). With stdio it is attached: its input and
	// output are stdio's, and when ctx ends before it does (the caller
	// went away) it is killed. With stdio nil it is detached: its output
	// goes to the app's log as run.N, and it lives on after ctx ends.
	StartRun(ctx context.Context, o OneOff, stdio *Stdio) (wait func() (int, error), err error)
}

// LogReader is a Region that can read an app's log lines (`drover logs`).
type LogReader interface {
	// Logs gives sink.Backlog the app's newest q.Num lines that match q,
	// oldest first, each with its Region set, and with q.Tail gives
	// sink.Live each new line, of processes that start later too, until
	// ctx ends (then it returns nil). An error from the sink ends it with
	// that error. A region that cannot be reached gives an error matching
	// ErrUnavailable.
	Logs(ctx context.Context, app string, q applog.Query, sink applog.Sink) error
}

// JobRenderer is a Region that renders scheduler jobs, and so uses the
// job templates of a Deployment; callers need not read the repository's
// template from the slug for other regions.
type JobRenderer interface {
	RendersJobs()
}

// ProcessLister is a Region that can say what runs for an app, process by
// process (`drover ps`).
type ProcessLister interface {
	Processes(ctx context.Context, app string) ([]Process, error)
}

// Plan changes: what a scheduler's plan says becomes of a group or task.
const (
	ChangeAdded   = "added"
	ChangeEdited  = "edited"
	ChangeDeleted = "deleted"
	ChangeNone    = "none"
)

// Plan is what a region's scheduler says it would do with a Deployment,
// worked out by its own scheduler in a dry run (Nomad's job plan), before
// anything is registered: which groups and tasks change, how many
// allocations would be created, destroyed or updated, and which cannot be
// placed at all. It is a wire type: the promotion and rollback previews
// return it.
type Plan struct {
	// Groups are the job's groups (one per process type), by name.
	Groups []GroupPlan `json:"groups"`
	// Failures are the groups whose allocations the scheduler could not
	// place (not enough capacity, no eligible node); a deployment of this
	// plan would not become healthy.
	Failures []PlacementFailure `json:"failures"`
	// Warnings are the scheduler's own warnings about the job.
	Warnings []string `json:"warnings"`
}

// Placeable reports whether every allocation of the plan can be placed.
func (p Plan) Placeable() bool { return len(p.Failures) == 0 }

// GroupPlan is one group of a Plan: how it changes, and what the scheduler
// would do to its allocations.
type GroupPlan struct {
	Group string `json:"group"`
	// Change is ChangeAdded, ChangeEdited, ChangeDeleted or ChangeNone.
	Change string `json:"change"`
	// Fields names the group's own changed fields and blocks (Count,
	// Update.MaxParallel), never their values.
	Fields []string     `json:"fields,omitempty"`
	Tasks  []TaskChange `json:"tasks"`
	// Allocations: created, destroyed, updated in place, replaced
	// (destroyed and created again), started as canaries, left alone.
	Create      int `json:"create"`
	Destroy     int `json:"destroy"`
	InPlace     int `json:"in_place"`
	Destructive int `json:"destructive"`
	Canary      int `json:"canary"`
	Ignore      int `json:"ignore"`
	Migrate     int `json:"migrate,omitempty"`
}

// TaskChange is how one task of a group changes.
type TaskChange struct {
	Task string `json:"task"`
	// Change is ChangeAdded, ChangeEdited, ChangeDeleted or ChangeNone.
	Change string `json:"change"`
	// Fields names the changed fields and blocks (Artifact.GetterSource,
	// Resources.MemoryMB), never their values: config vars are secret.
	Fields []string `json:"fields,omitempty"`
	// Annotations are the scheduler's verdict on the change, such as
	// "forces create/destroy update".
	Annotations []string `json:"annotations,omitempty"`
}

// PlacementFailure is a group some of whose allocations the scheduler
// could not place.
type PlacementFailure struct {
	Group string `json:"group"`
	// Allocations is how many could not be placed.
	Allocations int `json:"allocations"`
	// Reason says why in a sentence, e.g. "2 allocations cannot be placed:
	// resources exhausted on 1 node (memory)".
	Reason         string `json:"reason"`
	NodesEvaluated int    `json:"nodes_evaluated"`
	NodesExhausted int    `json:"nodes_exhausted"`
	// Exhausted counts, per resource (memory, cpu), the nodes that had
	// too little of it; Filtered, per constraint or node class, the nodes
	// it excluded.
	Exhausted map[string]int `json:"exhausted,omitempty"`
	Filtered  map[string]int `json:"filtered,omitempty"`
}

// Planner is a Region whose scheduler can say what a deployment would do
// before it is made. Plan writes nothing: no job, no config.
type Planner interface {
	Plan(ctx context.Context, d Deployment) (Plan, error)
}
