package workflows

import (
	"cmp"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/drover/drover/pipelines"
)

// SignalPullRequest tells a review app's workflow what happened to its
// pull request; the payload is a PREvent.
const SignalPullRequest = "pull_request"

// QueryReview returns a review app workflow's ReviewState.
const QueryReview = "review"

// Pull request actions drover acts on, GitHub's words, and its own.
const (
	PROpened         = "opened"
	PRReopened       = "reopened"
	PRSynchronize    = "synchronize"
	PRReadyForReview = "ready_for_review"
	PRClosed         = "closed"
	// PRCreate deploys the pull request on purpose (`drover review-apps
	// create`), even from a fork or as a draft.
	PRCreate = "create"
	// PRDestroy destroys the review app (`drover review-apps destroy`, or
	// max_apps making room); the workflow ends.
	PRDestroy = "destroy"
)

// PREvent is one thing that happened to a pull request.
type PREvent struct {
	Action string
	// PR is the pull request as GitHub last described it; a PRCreate or
	// PRDestroy from drover itself may carry only its number.
	PR pipelines.PullRequest
	// Reason says why, for PRDestroy.
	Reason string `json:",omitempty"`
	// By is who asked, for PRCreate and PRDestroy.
	By string `json:",omitempty"`
}

// ReviewStage is the review stage's settings a review app lives by.
type ReviewStage struct {
	// Request is the review stage's deploy without a commit; its
	// Environment is the review app's name.
	Request DeployRequest
	TTL     time.Duration
	// ConfigFrom is the app whose config vars a new review app starts with.
	ConfigFrom   string `json:",omitempty"`
	DeployDrafts bool   `json:",omitempty"`
	MaxApps      int    `json:",omitempty"`
	// URL is the review app's URL from the stage's pattern, if it has one.
	URL string `json:",omitempty"`
}

// ReviewInput is a review app workflow's state; it is carried across
// Continue-As-New.
type ReviewInput struct {
	Pipeline string
	App      string
	Number   int
	Stage    ReviewStage
	// PR is the pull request as last heard of.
	PR pipelines.PullRequest
	// Allowed is true once someone deployed the pull request on purpose:
	// a draft then deploys on every push.
	Allowed bool `json:",omitempty"`
	// AllowedHead is the one head of a fork's pull request someone
	// deployed on purpose. A fork's newer commits wait for someone to look
	// at them and deploy again: they would run with the pipeline's secrets.
	AllowedHead string `json:",omitempty"`
	// Created is true once the app exists (in the ledger, maybe in
	// regions): from then on, teardown has something to remove.
	Created bool `json:",omitempty"`
	// Deployed is the commit the app runs; Failed, one whose deploy failed.
	Deployed string `json:",omitempty"`
	Failed   string `json:",omitempty"`
	// Postdeployed is true once app.json's postdeploy script ran.
	Postdeployed bool `json:",omitempty"`
	// Postdeploy and Predestroy are app.json's postdeploy (run once, after
	// the first successful deploy) and pr-predestroy (run before teardown).
	Postdeploy string `json:",omitempty"`
	Predestroy string `json:",omitempty"`
	// Comment is the ID of drover's comment on the pull request.
	Comment int64 `json:",omitempty"`
	// Noticed is the notice (fork, draft) already commented, so it is said
	// once.
	Noticed string `json:",omitempty"`
	// LastActive is when the app last deployed, or the workflow started:
	// the TTL counts from it.
	LastActive time.Time
	// Pending are events received but not handled before Continue-As-New.
	Pending []PREvent `json:",omitempty"`
	// ContinueAfter bounds the events one run handles before it continues
	// as new (0: 100); tests lower it.
	ContinueAfter int `json:",omitempty"`
}

// ReviewState is what QueryReview answers.
type ReviewState struct {
	App       string
	Head      string
	Deployed  string
	Deploying string
	Closed    bool
}

// reviewTeardownRetry retries teardown steps until they succeed: a region
// that is down or a rate limit must not leave a review app running.
var reviewTeardownRetry = &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute}

// ReviewAppWorkflow owns one pull request's review app from open to close:
// it deploys each new head through DeployWorkflow (the newest head wins),
// runs app.json's postdeploy once, keeps one comment on the pull request
// up to date, and destroys the app in every region when the pull request
// closes, when someone asks, or after the stage's TTL without a deploy.
func ReviewAppWorkflow(ctx workflow.Context, in ReviewInput) error {
	if in.LastActive.IsZero() {
		in.LastActive = workflow.Now(ctx)
	}
	if in.Stage.TTL <= 0 {
		in.Stage.TTL = pipelines.DefaultReviewTTL
	}
	if in.ContinueAfter <= 0 {
		in.ContinueAfter = 100
	}
	r := &reviewApp{ReviewInput: in, ctx: ctx, log: workflow.GetLogger(ctx), events: workflow.GetSignalChannel(ctx, SignalPullRequest)}
	return r.run()
}

// reviewApp is a ReviewAppWorkflow's state; its methods are the workflow's
// steps. The order of their commands is what saved histories replay:
// change it only behind workflow.GetVersion.
type reviewApp struct {
	ReviewInput
	ctx    workflow.Context
	log    log.Logger
	events workflow.ReceiveChannel

	closing   *PREvent // set once the app is to be destroyed
	deploying string
	child     workflow.ChildWorkflowFuture
	cancel    workflow.CancelFunc
	handled   int
	needPR    bool
	told      string // the newer head a waiting deploy was told of
}

func (r *reviewApp) run() error {
	ctx := r.ctx
	if err := workflow.SetQueryHandler(ctx, QueryReview, r.query); err != nil {
		return err
	}
	for _, ev := range r.Pending {
		r.handle(ev)
	}
	r.Pending = nil
	for {
		if r.closing != nil && r.child == nil {
			return r.teardown()
		}
		if r.needPR {
			r.readPR()
		}
		if r.child == nil && !r.startDeploy() {
			continue
		}
		if r.child == nil && (r.handled >= r.ContinueAfter || workflow.GetInfo(ctx).GetContinueAsNewSuggested()) {
			r.Pending = append(r.Pending, r.drain()...)
			return workflow.NewContinueAsNewError(ctx, ReviewAppWorkflow, r.ReviewInput)
		}
		if expired := r.wait(); expired && r.closing == nil {
			r.closing = &PREvent{Action: PRDestroy, Reason: fmt.Sprintf("no deploy for %s (the review stage's ttl)", r.Stage.TTL)}
			if !r.Created {
				// Nothing was ever made: say nothing and end.
				return nil
			}
		}
		if r.child != nil {
			r.steerDeploy()
		}
	}
}

func (r *reviewApp) query() (ReviewState, error) {
	return ReviewState{App: r.App, Head: r.PR.Head, Deployed: r.Deployed, Deploying: r.deploying, Closed: r.closing != nil}, nil
}

// drain takes the events already received, without waiting.
func (r *reviewApp) drain() []PREvent {
	var evs []PREvent
	for {
		var ev PREvent
		if !r.events.ReceiveAsync(&ev) {
			return evs
		}
		evs = append(evs, ev)
	}
}

func (r *reviewApp) comment(body string) {
	r.Comment = commentOnPR(r.ctx, r.ReviewInput, body)
}

func (r *reviewApp) handle(ev PREvent) {
	r.handled++
	if ev.PR.Number != 0 && ev.PR.Head != "" {
		r.PR = ev.PR
	}
	switch ev.Action {
	case PRClosed, PRDestroy:
		if r.closing == nil {
			e := ev
			if e.Reason == "" {
				e.Reason = "the pull request was closed"
			}
			r.closing = &e
		}
	case PRCreate:
		// On purpose: a fork or a draft deploys, and a failed head is
		// tried again.
		r.Allowed, r.AllowedHead = true, r.PR.Head
		r.Noticed, r.Failed = "", ""
		if r.PR.Head == "" {
			// Asked for before any webhook told this workflow of the
			// pull request: GitHub says where its head is.
			r.needPR = true
		}
	case PRReopened:
		// A new life: whatever ran before was destroyed.
		r.Deployed, r.Failed, r.Postdeployed = "", "", false
	}
}

// wants returns the head to deploy now, or "" with a notice to give.
func (r *reviewApp) wants() (string, string) {
	head := r.PR.Head
	switch {
	case r.closing != nil || head == "" || head == r.Deployed || head == r.Failed:
		return "", ""
	case r.PR.Fork && head != r.AllowedHead:
		return "", "fork@" + head
	case r.PR.Draft && !r.Stage.DeployDrafts && !r.Allowed:
		return "", "draft"
	}
	return head, ""
}

// teardown destroys the app and ends the run; a pull request reopened (or
// pushed to) while its app was torn down starts a new life, not lost with
// this run.
func (r *reviewApp) teardown() error {
	if err := teardownReview(r.ctx, &r.ReviewInput, *r.closing); err != nil {
		return err
	}
	again := r.drain()
	for _, ev := range again {
		if ev.Action != PRClosed && ev.Action != PRDestroy {
			fresh := ReviewInput{Pipeline: r.Pipeline, App: r.App, Number: r.Number, Stage: r.Stage, PR: r.PR,
				Comment: r.Comment, Pending: again, ContinueAfter: r.ContinueAfter}
			return workflow.NewContinueAsNewError(r.ctx, ReviewAppWorkflow, fresh)
		}
	}
	return nil
}

// readPR asks GitHub where the pull request's head is.
func (r *reviewApp) readPR() {
	r.needPR = false
	var pr pipelines.PullRequest
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(r.ctx, shortOptions()), gha.ReadPullRequest,
		ReadPullRequestInput{Repo: r.Stage.Request.Repo, Number: r.Number}).Get(r.ctx, &pr); err != nil {
		r.log.Error("read pull request", "app", r.App, "error", err)
		r.comment(fmt.Sprintf("drover could not read pull request #%d from GitHub to deploy it: %s", r.Number, reason(err)))
		return
	}
	r.PR = pr
	r.AllowedHead = pr.Head
	if !pr.Open && r.closing == nil {
		r.closing = &PREvent{Action: PRDestroy, Reason: "the pull request is closed"}
	}
}

// startDeploy gives the notice the head calls for, if any, and starts
// deploying the head that should be; false when that failed at once and
// the loop should look again.
func (r *reviewApp) startDeploy() bool {
	head, notice := r.wants()
	if notice != "" && notice != r.Noticed {
		r.Noticed = notice
		r.comment(reviewNotice(r.ReviewInput, notice))
	}
	if head == "" {
		return true
	}
	var err error
	r.child, r.cancel, err = startReviewDeploy(r.ctx, &r.ReviewInput, head)
	if err != nil {
		r.log.Error("review app not deployed", "app", r.App, "commit", head, "error", err)
		r.Failed = head
		r.comment(reviewFailed(r.ReviewInput, head, err))
		r.child = nil
		return false
	}
	r.deploying = head
	return true
}

// wait waits for an event, the running deploy's end, or (while nothing
// deploys) the TTL, and reports whether the TTL expired.
func (r *reviewApp) wait() (expired bool) {
	ctx := r.ctx
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(r.events, func(c workflow.ReceiveChannel, more bool) {
		var ev PREvent
		c.Receive(ctx, &ev)
		r.handle(ev)
	})
	var ttlCancel workflow.CancelFunc
	if r.child != nil {
		sel.AddFuture(r.child, func(f workflow.Future) {
			var res DeployResult
			err := f.Get(ctx, &res)
			r.child, r.cancel = nil, nil
			finishReviewDeploy(ctx, &r.ReviewInput, r.deploying, res, err, r.closing != nil)
			r.deploying = ""
		})
	} else {
		// The TTL runs only while nothing deploys.
		var tctx workflow.Context
		tctx, ttlCancel = workflow.WithCancel(ctx)
		wait := r.LastActive.Add(r.Stage.TTL).Sub(workflow.Now(ctx))
		sel.AddFuture(workflow.NewTimer(tctx, max(wait, time.Millisecond)), func(workflow.Future) { expired = true })
	}
	sel.Select(ctx)
	if ttlCancel != nil {
		ttlCancel()
	}
	return expired
}

// steerDeploy stops the running deploy when the app is closing, and tells
// one waiting for CI of a newer head.
func (r *reviewApp) steerDeploy() {
	head, _ := r.wants()
	switch {
	case r.closing != nil:
		// Stop the deploy where it is; it records its release failed,
		// and teardown removes whatever it started.
		r.cancel()
	case head != "" && head != r.deploying && head != r.told && r.Stage.Request.CI != nil:
		// A newer push: a deploy still waiting for CI gives way (one
		// past the wait finishes, and the newer head follows).
		r.told = head
		supersede(r.ctx, r.child, head)
	}
}

// startReviewDeploy prepares the review app for head (the app, its config
// from config_from and app.json, making room under max_apps) and starts
// its deploy as a child workflow.
func startReviewDeploy(ctx workflow.Context, in *ReviewInput, head string) (workflow.ChildWorkflowFuture, workflow.CancelFunc, error) {
	req := in.Stage.Request
	req.Commit, req.CloneURL = head, in.PR.CloneURL
	req.Environment = in.App
	req.Description = fmt.Sprintf("pull request #%d: %s", in.Number, in.PR.Title)
	in.Comment = commentOnPR(ctx, *in, reviewDeploying(*in, head))

	bctx := workflow.WithActivityOptions(ctx, longOptions(30*time.Minute, 15*time.Second, 3))
	var build BuildResult
	if err := workflow.ExecuteActivity(bctx, a.Build, BuildInput{App: in.App, Repo: req.Repo, CloneURL: req.CloneURL, Commit: head}).Get(ctx, &build); err != nil {
		return nil, nil, err
	}
	actx := workflow.WithActivityOptions(ctx, shortOptions())
	// From here the app may exist, even if preparing it fails halfway.
	in.Created = true
	var prep PrepareReviewResult
	if err := workflow.ExecuteActivity(actx, a.PrepareReviewApp, PrepareReviewInput{
		App: in.App, Pipeline: in.Pipeline, Repo: req.Repo, PR: in.PR, Regions: req.Regions, Slug: build.Slug,
		ConfigFrom: in.Stage.ConfigFrom, MaxApps: in.Stage.MaxApps,
	}).Get(ctx, &prep); err != nil {
		return nil, nil, err
	}
	in.Postdeploy, in.Predestroy = prep.Postdeploy, prep.Predestroy
	req.Formation = prep.Formation
	for _, ev := range prep.Evict {
		// Making room: the review app idle longest goes, and says why.
		start := ReviewTemplate{Pipeline: in.Pipeline, Repo: req.Repo, Stage: in.Stage}.For(ev.PR)
		err := workflow.ExecuteActivity(actx, a.EvictReviewApp, EvictInput{Start: start, Reason: fmt.Sprintf(
			"the review stage keeps at most %d review apps (max_apps), and #%d needed room; it had been idle longest", in.Stage.MaxApps, in.Number),
		}).Get(ctx, nil)
		if err != nil {
			workflow.GetLogger(ctx).Warn("evict review app", "app", ev.App, "error", err)
		}
	}
	cctx, cancel := workflow.WithCancel(ctx)
	child := workflow.ExecuteChildWorkflow(workflow.WithChildOptions(cctx, workflow.ChildWorkflowOptions{
		WorkflowID: DeployWorkflowID(in.App, head),
		// The review app's workflow decides what deploys; a commit
		// deployed before the pull request was closed and reopened
		// deploys again.
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowRunTimeout:    req.runTimeout(),
		WaitForCancellation:   true,
	}), DeployWorkflow, DeployInput{App: in.App, DeployRequest: req})
	return child, cancel, nil
}

// finishReviewDeploy records how a review app's deploy ended: the ledger,
// postdeploy after the first success, and the pull request's comment.
func finishReviewDeploy(ctx workflow.Context, in *ReviewInput, head string, res DeployResult, err error, closing bool) {
	log := workflow.GetLogger(ctx)
	if err != nil {
		if closing {
			return
		}
		if _, ok := supersededBy(err); ok {
			return
		}
		in.Failed = head
		in.Comment = commentOnPR(ctx, *in, reviewFailed(*in, head, err))
		return
	}
	in.Deployed, in.Failed = head, ""
	in.LastActive = workflow.Now(ctx)
	url := cmp.Or(in.Stage.URL, firstURL(res))
	actx := workflow.WithActivityOptions(ctx, shortOptions())
	if err := workflow.ExecuteActivity(actx, a.ReviewDeployed, ReviewDeployedInput{App: in.App, Commit: head, URL: url}).Get(ctx, nil); err != nil {
		log.Error("record review app deploy", "app", in.App, "error", err)
	}
	note := ""
	if in.Postdeploy != "" && !in.Postdeployed && len(in.Stage.Request.Regions) > 0 {
		// Once in the app's life, like Heroku's postdeploy: seed data.
		err := runReviewScript(ctx, *in, "postdeploy", in.Postdeploy)
		in.Postdeployed = true
		if err != nil {
			note = "\n\nThe postdeploy script failed: " + reason(err)
		}
	}
	in.Comment = commentOnPR(ctx, *in, reviewDeployed(*in, head, res.Version, url)+note)
}

// runReviewScript runs an app.json script once, in the stage's first
// region, from the app's current release.
func runReviewScript(ctx workflow.Context, in ReviewInput, name, command string) error {
	pctx := workflow.WithActivityOptions(ctx, longOptions(30*time.Minute, 15*time.Second, 3))
	return workflow.ExecuteActivity(deployInRegion(pctx, in.Stage.Request.Regions[0]), a.RunReviewScript, ReviewScriptInput{
		App: in.App, Name: name, Command: command, Region: in.Stage.Request.Regions[0],
	}).Get(ctx, nil)
}

// teardownReview destroys the review app: pr-predestroy, its jobs in every
// region, its config, its ledger entry, and a last word on the pull
// request. Each step retries until it succeeds.
func teardownReview(ctx workflow.Context, in *ReviewInput, why PREvent) error {
	log := workflow.GetLogger(ctx)
	if !in.Created {
		// Nothing was made (a fork or draft never deployed).
		if in.Comment != 0 {
			in.Comment = commentOnPR(ctx, *in, fmt.Sprintf("No review app was made for this pull request; %s.", why.Reason))
		}
		return nil
	}
	if in.Predestroy != "" && in.Deployed != "" && len(in.Stage.Request.Regions) > 0 {
		if err := runReviewScript(ctx, *in, "pr-predestroy", in.Predestroy); err != nil {
			// The app goes anyway: a broken script must not keep it.
			log.Warn("pr-predestroy failed; destroying anyway", "app", in.App, "error", err)
		}
	}
	tctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute, RetryPolicy: reviewTeardownRetry,
	})
	var stops []workflow.Future
	for _, region := range in.Stage.Request.Regions {
		stops = append(stops, stopInRegion(tctx, StopAppInput{App: in.App, Region: region}))
	}
	for i, f := range stops {
		if err := f.Get(ctx, nil); err != nil {
			return fmt.Errorf("stop %s in %s: %w", in.App, in.Stage.Request.Regions[i], err)
		}
	}
	if err := workflow.ExecuteActivity(tctx, a.DestroyReviewApp, DestroyReviewInput{App: in.App, Reason: why.Reason}).Get(ctx, nil); err != nil {
		return fmt.Errorf("record %s destroyed: %w", in.App, err)
	}
	in.Comment = commentOnPR(ctx, *in, fmt.Sprintf("The review app **%s** was destroyed: %s.", in.App, why.Reason))
	return nil
}

// commentOnPR sets drover's one comment on the pull request. Like other
// reports to GitHub it never fails the workflow; it returns the comment's
// ID (the old one when GitHub could not be told).
func commentOnPR(ctx workflow.Context, in ReviewInput, body string) int64 {
	cctx := workflow.WithActivityOptions(ctx, reportOptions())
	id := in.Comment
	err := workflow.ExecuteActivity(cctx, gha.CommentOnPR, CommentInput{
		Repo: in.Stage.Request.Repo, Number: in.Number, Key: in.App, Body: body, Comment: in.Comment,
	}).Get(ctx, &id)
	if err != nil {
		workflow.GetLogger(ctx).Warn("comment on pull request", "app", in.App, "error", err)
		return in.Comment
	}
	return id
}

func reviewDeploying(in ReviewInput, head string) string {
	return fmt.Sprintf("Deploying `%s` to the review app **%s**…", short(head), in.App)
}

func reviewDeployed(in ReviewInput, head string, version int, url string) string {
	where := ""
	if url != "" {
		where = ": " + url
	}
	return fmt.Sprintf("The review app **%s** runs `%s` (v%d)%s\n\nEach push to this pull request redeploys it. It is destroyed when the pull request closes, or after %s without a deploy.",
		in.App, short(head), version, where, in.Stage.TTL)
}

func reviewFailed(in ReviewInput, head string, err error) string {
	return fmt.Sprintf("The deploy of `%s` to the review app **%s** failed: %s\n\nPush a fix to try again.", short(head), in.App, public(reason(err)))
}

func reviewNotice(in ReviewInput, notice string) string {
	if head, ok := strings.CutPrefix(notice, "fork@"); ok {
		return fmt.Sprintf("This pull request comes from a fork, so drover did not deploy `%s` to a review app: its code would run with the pipeline's config vars and secrets. After reviewing the code, a maintainer can deploy exactly that commit with `drover review-apps create %s %d --commit %s` (again for each new commit).", short(head), in.Pipeline, in.Number, head)
	}
	if notice == "draft" {
		return "This pull request is a draft: drover deploys its review app once it is marked ready for review."
	}
	return notice
}
