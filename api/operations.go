package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/drover/drover/deployments"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/workflows"
)

// Operations starts promotions and rollbacks and reports on them.
type Operations interface {
	// StartOperation queues op and says how many run or wait before it
	// (-1: not known).
	StartOperation(ctx context.Context, app string, op workflows.Operation) (int, error)
	OperationState(ctx context.Context, id string) (workflows.OperationState, error)
	SetAutoDeploy(ctx context.Context, app string, ad workflows.AutoDeploy) error
	Approve(ctx context.Context, operation string, ap workflows.Approval) error
	AppStatus(ctx context.Context, app string) (workflows.AppStatus, error)
	// Processes asks the app's regions what runs for it (`drover ps`);
	// id names that one-off workflow.
	Processes(ctx context.Context, id, app string, regions []string) ([]workflows.RegionProcesses, error)
}

// Operation is what the operation endpoints answer.
type Operation struct {
	ID    string `json:"id"`
	Kind  string `json:"kind"`
	App   string `json:"app"`
	State string `json:"state"`
	Error string `json:"error,omitempty"`
	// Release is the release the operation made, once it made one.
	Release *pipelines.Release `json:"release,omitempty"`
	// Ahead, in the answer that queues it, is how many operations and
	// pushes of the app run or wait before it.
	Ahead *int `json:"ahead,omitempty"`
	// Output is the output of the step running now (the build, the
	// release phase) as it is written, from ?output_from=N on.
	Output *StepOutput `json:"output,omitempty"`
}

// StepOutput is a running step's output: Text is the part of all the
// step has written (Total bytes so far) that starts at offset From.
type StepOutput struct {
	Step  string `json:"step"`
	From  int64  `json:"from"`
	Text  string `json:"text"`
	Total int64  `json:"total"`
}

// registerOperations mounts the operation routes on groups that check the
// read, deploy and approve scopes.
func (s *Server) registerOperations(read, deploy, approve *gin.RouterGroup) {
	if s.Operations == nil || s.Config == nil {
		return
	}
	read.GET("/pipelines", s.listPipelines)
	read.GET("/pipelines/:pipeline/promote/preview", s.promotePreview)
	read.GET("/apps/:app/rollback/preview", s.rollbackPreview)
	deploy.POST("/pipelines/:pipeline/promote", s.promote)
	deploy.POST("/apps/:app/rollback", s.rollback)
	deploy.POST("/apps/:app/releases", s.rerelease)
	deploy.POST("/apps/:app/formation", s.scale)
	deploy.POST("/apps/:app/autodeploy", s.autodeploy)
	approve.POST("/approvals", s.approve)
	if s.Approvals != nil {
		read.GET("/approvals", s.listApprovals)
	}
	read.GET("/operations/*id", s.getOperation)
	read.GET("/apps/:app/ps", s.processes)
}

func nonce() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// stageInput is what a stage's app needs for an operation: its regions,
// rollout and approval policy, and where GitHub hears of it (the stage's
// environment, or the review app's own).
func stageInput(p pipelines.Pipeline, app string, st pipelines.Stage) workflows.DeployInput {
	req := workflows.StageRequest(p, st, "", "", "")
	// An operation reuses a build: there is no commit's CI to wait for.
	req.CI = nil
	if st.Name == pipelines.StageReview {
		req.Environment = app
	}
	return workflows.DeployInput{App: app, DeployRequest: req}
}

// PipelineInfo is a pipeline and its stages, as drover.yaml says.
type PipelineInfo struct {
	Name   string               `json:"name"`
	Repo   string               `json:"repo"`
	Stages map[string]StageInfo `json:"stages"`
}

// StageInfo is one stage of a pipeline.
type StageInfo struct {
	App             string   `json:"app"`
	Branch          string   `json:"branch,omitempty"`
	Regions         []string `json:"regions"`
	RequireApproval bool     `json:"require_approval,omitempty"`
}

// visiblePipelines names, sorted, the pipelines the caller may act on.
func (s *Server) visiblePipelines(c *gin.Context) []string {
	names := make([]string, 0, len(s.Config.Pipelines))
	for name := range s.Config.Pipelines {
		if caller(c).allows(name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// Lines are the operation's progress as lines, as the CLI and the page
// show it: its release, then one line per region; nil before there is a
// release.
func (op Operation) Lines() []string {
	r := op.Release
	if r == nil {
		return nil
	}
	lines := []string{fmt.Sprintf("%s %s: %s", r.App, r.Name(), r.Description)}
	for _, st := range r.Regions {
		line := fmt.Sprintf("%-12s %s", st.Region, st.Status)
		if st.Message != "" {
			line += "  " + st.Message
		}
		lines = append(lines, line)
	}
	return lines
}

// listPipelines lists the pipelines the caller may act on, by name.
func (s *Server) listPipelines(c *gin.Context) {
	out := []PipelineInfo{}
	for _, name := range s.visiblePipelines(c) {
		p := s.Config.Pipelines[name]
		info := PipelineInfo{Name: name, Repo: p.Repo, Stages: map[string]StageInfo{}}
		for sn, st := range p.Stages {
			info.Stages[sn] = StageInfo{App: st.App, Branch: st.Branch, Regions: st.Regions, RequireApproval: st.RequireApproval}
		}
		out = append(out, info)
	}
	c.JSON(http.StatusOK, out)
}

// appInput is stageInput for an app, from its stage in drover.yaml.
func (s *Server) appInput(app pipelines.App) workflows.DeployInput {
	p := s.Config.Pipelines[app.Pipeline]
	return stageInput(p, app.Name, p.Stages[app.Stage])
}

// promotion reads the :pipeline a promotion is of (by its name or one of
// its apps'), answering the request when it cannot: unknown, not the
// token's, or without a staging and a production stage.
func (s *Server) promotion(c *gin.Context) (p pipelines.Pipeline, from, to pipelines.Stage, ok bool) {
	name := c.Param("pipeline")
	p, ok = s.Config.Pipelines[name]
	if !ok {
		if app, err := s.Config.App(name); err == nil {
			p, ok = s.Config.Pipelines[app.Pipeline]
		}
	}
	if !ok {
		fail(c, http.StatusNotFound, "not_found", "no pipeline or app named "+name)
		return p, from, to, false
	}
	if !allowed(c, p.Name) {
		return p, from, to, false
	}
	from, okFrom := p.Stages[pipelines.StageStaging]
	to, okTo := p.Stages[pipelines.StageProduction]
	if !okFrom || !okTo {
		fail(c, http.StatusBadRequest, "invalid", "pipeline "+p.Name+" needs a staging and a production stage to promote")
		return p, from, to, false
	}
	return p, from, to, true
}

// promote moves staging's current (or named) release to production. The
// path names the pipeline, or any app of it.
func (s *Server) promote(c *gin.Context) {
	p, from, to, ok := s.promotion(c)
	if !ok {
		return
	}
	var body struct {
		Release string `json:"release"`
	}
	if !optionalBody(c, &body, `body must be {"release": "vN"} or empty`) {
		return
	}
	version, ok := s.optionalVersion(c, body.Release)
	if !ok {
		return
	}
	// Promoting into a stage that is busy would queue a release behind
	// work whose outcome the user has not seen: refuse, and say why.
	if st, err := s.Operations.AppStatus(c.Request.Context(), to.App); err != nil {
		s.failErr(c, err)
		return
	} else if st.Running != "" {
		fail(c, http.StatusConflict, "conflict", to.App+" is running "+st.Running+"; promote again when it ends (drover operations watch, drover releases "+to.App+")")
		return
	}
	in := workflows.PromoteInput{DeployInput: stageInput(p, to.App, to), FromApp: from.App, FromVersion: version}
	op := workflows.Operation{ID: workflows.OperationWorkflowID(workflows.OpPromote, to.App, nonce()), Kind: workflows.OpPromote, Promote: &in}
	s.startOperation(c, to.App, op)
}

func (s *Server) rollback(c *gin.Context) {
	app, ok := s.app(c)
	if !ok {
		return
	}
	var body struct {
		Release         string `json:"release"`
		RunReleasePhase bool   `json:"run_release_phase"`
	}
	if !optionalBody(c, &body, `body must be {"release": "vN", "run_release_phase": false} or empty`) {
		return
	}
	version, ok := s.optionalVersion(c, body.Release)
	if !ok {
		return
	}
	if version > 0 {
		if _, err := s.Ledger.Release(c.Request.Context(), app.Name, version); err != nil {
			s.failErr(c, err)
			return
		}
	} else {
		// Refused here with the reason alone, rather than queued to fail.
		rs, err := s.Ledger.Releases(c.Request.Context(), app.Name, 0)
		if err != nil {
			s.failErr(c, err)
			return
		}
		if _, ok := pipelines.RollbackTarget(rs); !ok {
			fail(c, http.StatusConflict, "conflict", app.Name+" has no earlier succeeded release to roll back to")
			return
		}
	}
	in := workflows.RollbackInput{DeployInput: s.appInput(app), ToVersion: version, RunReleasePhase: body.RunReleasePhase}
	op := workflows.Operation{ID: workflows.OperationWorkflowID(workflows.OpRollback, app.Name, nonce()), Kind: workflows.OpRollback, Rollback: &in}
	s.startOperation(c, app.Name, op)
}

// rerelease releases the current slug again with the app's newest config
// vars (after PATCH /config), so a config change reaches every region.
func (s *Server) rerelease(c *gin.Context) {
	app, ok := s.app(c)
	if !ok {
		return
	}
	var body struct {
		Description string `json:"description"`
	}
	if !optionalBody(c, &body, `body must be {"description": "..."} or empty`) {
		return
	}
	if body.Description == "" {
		body.Description = "config change"
	}
	in := workflows.ChangeInput{DeployInput: s.appInput(app), Description: body.Description}
	s.startOperation(c, app.Name, workflows.Operation{ID: workflows.OperationWorkflowID(workflows.OpConfig, app.Name, nonce()), Kind: workflows.OpConfig, Change: &in})
}

// scale releases the current slug with new process counts.
func (s *Server) scale(c *gin.Context) {
	app, ok := s.app(c)
	if !ok {
		return
	}
	var f pipelines.Formation
	if err := c.ShouldBindJSON(&f); err != nil || len(f) == 0 {
		fail(c, http.StatusBadRequest, "invalid", `body must be {"web": 2, "worker": 1}`)
		return
	}
	var parts []string
	for _, typ := range f.Types() {
		if f[typ] < 0 || f[typ] > pipelines.MaxFormationCount {
			fail(c, http.StatusBadRequest, "invalid", fmt.Sprintf("count of %s must be between 0 and %d", typ, pipelines.MaxFormationCount))
			return
		}
		parts = append(parts, typ+"="+strconv.Itoa(f[typ]))
	}
	in := workflows.ChangeInput{DeployInput: s.appInput(app),
		Scale: f, Description: "scale " + strings.Join(parts, " ")}
	s.startOperation(c, app.Name, workflows.Operation{ID: workflows.OperationWorkflowID(workflows.OpScale, app.Name, nonce()), Kind: workflows.OpScale, Change: &in})
}

// optionalBody reads a JSON body when there is one; on a malformed one it
// answers 400 with usage and returns false.
func optionalBody(c *gin.Context, into any, usage string) bool {
	if c.Request.ContentLength == 0 {
		return true
	}
	if err := c.ShouldBindJSON(into); err != nil {
		fail(c, http.StatusBadRequest, "invalid", usage)
		return false
	}
	return true
}

// optionalVersion parses "vN", or "" as 0; on a bad one it answers 400.
func (s *Server) optionalVersion(c *gin.Context, v string) (int, bool) {
	if v == "" {
		return 0, true
	}
	n, err := pipelines.ParseVersion(v)
	if err != nil {
		s.failErr(c, err)
		return 0, false
	}
	return n, true
}

// autodeploy pauses or resumes pushes to an app: {"paused": false}.
func (s *Server) autodeploy(c *gin.Context) {
	app, ok := s.app(c)
	if !ok {
		return
	}
	var body struct {
		Paused *bool `json:"paused"`
	}
	if err := c.ShouldBindJSON(&body); err != nil || body.Paused == nil {
		fail(c, http.StatusBadRequest, "invalid", `body must be {"paused": true} or {"paused": false}`)
		return
	}
	ad := workflows.AutoDeploy{Paused: *body.Paused, Reason: "auto-deploy paused by " + caller(c).Name}
	if err := s.Operations.SetAutoDeploy(c.Request.Context(), app.Name, ad); err != nil {
		s.logger().Error("set auto-deploy", "app", app.Name, "error", err)
		fail(c, http.StatusServiceUnavailable, "unavailable", "could not reach the app's queue; is drover's worker running?")
		return
	}
	c.JSON(http.StatusOK, gin.H{"app": app.Name, "paused": *body.Paused})
}

// approve answers a release waiting for approval:
// {"operation": "deploy/hello/<sha>", "approved": true}. The approver
// recorded in the ledger is the caller's token name.
func (s *Server) approve(c *gin.Context) {
	var body struct {
		Operation string `json:"operation"`
		Approved  *bool  `json:"approved"`
	}
	if err := c.ShouldBindJSON(&body); err != nil || body.Operation == "" || body.Approved == nil {
		fail(c, http.StatusBadRequest, "invalid", `body must be {"operation": "ID", "approved": true|false}`)
		return
	}
	if _, _, ok := s.operationApp(c, body.Operation); !ok {
		return
	}
	by := caller(c).Name
	if err := s.Operations.Approve(c.Request.Context(), body.Operation, workflows.Approval{Approved: *body.Approved, By: by}); err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"operation": body.Operation, "approved": *body.Approved, "by": by})
}

func (s *Server) startOperation(c *gin.Context, app string, op workflows.Operation) {
	// Who queued it may not approve it, if its stage needs approval.
	by := caller(c).Name
	switch {
	case op.Promote != nil:
		op.Promote.RequestedBy = by
	case op.Rollback != nil:
		op.Rollback.RequestedBy = by
	case op.Change != nil:
		op.Change.RequestedBy = by
	}
	ahead, err := s.Operations.StartOperation(c.Request.Context(), app, op)
	switch {
	case errors.Is(err, pipelines.ErrConflict) || errors.Is(err, pipelines.ErrInvalid):
		s.failErr(c, err)
		return
	case err != nil:
		s.logger().Error("start operation", "operation", op.ID, "error", err)
		fail(c, http.StatusServiceUnavailable, "unavailable", "could not queue the "+op.Kind+"; is Temporal reachable?")
		return
	}
	answer := Operation{ID: op.ID, Kind: op.Kind, App: app, State: workflows.OperationQueued}
	if ahead >= 0 {
		answer.Ahead = &ahead
	}
	c.JSON(http.StatusAccepted, answer)
}

// Processes is what GET /api/v1/apps/APP/ps answers: each region's
// processes, and the app's newest one-off runs (`drover run`), newest
// first.
type Processes struct {
	App     string                      `json:"app"`
	Regions []workflows.RegionProcesses `json:"regions"`
	Runs    []pipelines.Run             `json:"runs"`
}

// psRuns is how many one-off runs `drover ps` shows.
const psRuns = 10

// processes answers what runs for the app, per region and process, as
// each region says now.
func (s *Server) processes(c *gin.Context) {
	app, ok := s.app(c)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 30*time.Second)
	defer cancel()
	regions, err := s.Operations.Processes(ctx, workflows.ProcessesWorkflowID(app.Name, nonce()), app.Name, app.Regions)
	if err != nil {
		s.logger().Error("processes", "app", app.Name, "error", err)
		fail(c, http.StatusServiceUnavailable, "unavailable", err.Error()+"; is drover's worker running?")
		return
	}
	runs := []pipelines.Run{}
	if s.Runs != nil {
		if runs, err = s.Runs.Runs(ctx, app.Name, psRuns); err != nil {
			s.failErr(c, err)
			return
		}
	}
	c.JSON(http.StatusOK, Processes{App: app.Name, Regions: regions, Runs: runs})
}

// OpReview is the kind of a review app's operation: its workflow, which
// webhooks and review-apps create answer with.
const OpReview = "review"

// operationApp reads the kind and app from an operation ID (an
// operation's, a push's deploy/<app>/<sha> or a review app's
// review/<owner>/<repo>/<pr>) and checks the caller may act on the app's
// pipeline, answering 404 or 403 if not.
func (s *Server) operationApp(c *gin.Context, id string) (kind, app string, ok bool) {
	notFound := func() (string, string, bool) {
		fail(c, http.StatusNotFound, "not_found", "no operation "+id)
		return "", "", false
	}
	var isDeploy, isOp bool
	if app, _, isDeploy = workflows.ParseDeployWorkflowID(id); isDeploy {
		kind = "deploy"
	} else if kind, app, isOp = workflows.ParseOperationWorkflowID(id); !isOp {
		repo, number, isReview := workflows.ParseReviewWorkflowID(id)
		if !isReview || s.Config == nil {
			return notFound()
		}
		p, _, found := s.Config.ReviewStage(repo)
		if !found {
			return notFound()
		}
		if !allowed(c, p.Name) {
			return "", "", false
		}
		return OpReview, pipelines.ReviewAppName(p.Name, number), true
	}

	a, err := s.Ledger.App(c.Request.Context(), app)
	if err != nil {
		s.failErr(c, err)
		return "", "", false
	}
	return kind, app, allowed(c, a.Pipeline)
}

// getOperation reports an operation and the release it made so far.
func (s *Server) getOperation(c *gin.Context) {
	id := strings.TrimPrefix(c.Param("id"), "/")
	kind, appName, ok := s.operationApp(c, id)
	if !ok {
		return
	}
	// output_from counts in the step output_step names (the one the
	// caller followed last); another step's output is sent from its start.
	from, _ := strconv.ParseInt(c.Query("output_from"), 10, 64)
	fromStep := c.Query("output_step")
	read := func() (Operation, error) {
		st, err := s.Operations.OperationState(c.Request.Context(), id)
		if err != nil {
			return Operation{}, err
		}
		out := Operation{ID: id, Kind: kind, App: appName, State: st.State, Error: st.Error}
		if r, err := s.Ledger.ReleaseByOperation(c.Request.Context(), appName, id); err == nil {
			r.Output = ""
			out.Release = &r
		} else if !errors.Is(err, pipelines.ErrNotFound) {
			return out, err
		}
		if out.Output, err = s.stepOutput(c.Request.Context(), id, kind, out, from, fromStep); err != nil {
			return out, err
		}
		if out.Output != nil {
			// A stream sends each part once.
			from, fromStep = out.Output.Total, out.Output.Step
		}
		return out, nil
	}
	// An operation nobody knows is answered 404 before any stream starts,
	// so a follower does not wait forever.
	out, err := read()
	if err != nil {
		s.failErr(c, err)
		return
	}
	if strings.Contains(c.GetHeader("Accept"), "text/event-stream") {
		s.streamOperation(c, read)
		return
	}
	c.JSON(http.StatusOK, out)
}

// OperationPollInterval is how often a server-sent-events stream of an
// operation looks for news.
var OperationPollInterval = 500 * time.Millisecond

// stepOutput is the output of the operation's running step from offset
// from (when fromStep names it), or nil when no step of it is running: its release phase once it
// has a release, else, for a push's deploy, the build of its commit.
func (s *Server) stepOutput(ctx context.Context, id, kind string, op Operation, from int64, fromStep string) (*StepOutput, error) {
	if op.State == workflows.OperationSucceeded || op.State == workflows.OperationFailed {
		return nil, nil
	}
	var step, name string
	switch {
	case op.Release != nil:
		step, name = deployments.ReleasePhaseStep(op.App, op.Release.Version), "release phase"
	case kind == "deploy":
		app, commit, _ := workflows.ParseDeployWorkflowID(id)
		a, err := s.Ledger.App(ctx, app)
		if err != nil {
			return nil, err
		}
		step, name = deployments.BuildStep(a.Repo, commit), "build"
	default:
		return nil, nil
	}
	text, total, err := s.Ledger.LiveOutput(ctx, step)
	if errors.Is(err, pipelines.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := &StepOutput{Step: name, From: total - int64(len(text)), Text: text, Total: total}
	if fromStep == name && from > out.From {
		skip := min(from-out.From, int64(len(text)))
		out.From, out.Text = out.From+skip, text[skip:]
	}
	return out, nil
}

// streamOperation sends the operation as a server-sent event each time it
// changes, and ends after the event that shows it finished.
func (s *Server) streamOperation(c *gin.Context, read func() (Operation, error)) {
	c.Header("Cache-Control", "no-cache")
	last := ""
	c.Stream(func(w io.Writer) bool {
		op, err := read()
		if err != nil {
			c.SSEvent("error", gin.H{"error": ErrorBody{Code: "internal", Message: err.Error()}})
			return false
		}
		b, _ := json.Marshal(op)
		if string(b) != last {
			last = string(b)
			c.SSEvent("operation", op)
		}
		if op.State == workflows.OperationSucceeded || op.State == workflows.OperationFailed {
			return false
		}
		select {
		case <-c.Request.Context().Done():
			return false
		case <-time.After(OperationPollInterval):
			return true
		}
	})
}
