// Package webhooks receives GitHub's webhooks: it checks their signature,
// parses them, and turns the ones drover acts on into workflow starts and
// signals. It answers fast; the work happens in workflows.
package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/google/go-github/v60/github"

	"github.com/drover/drover/deployments"
	"github.com/drover/drover/gh"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/workflows"
)

// MaxBodyBytes is GitHub's own cap on webhook payloads; larger bodies are
// refused with 413 before anything reads them.
const MaxBodyBytes = 25 << 20

// MaxConcurrentBodies is how many delivery bodies are read and verified at
// once; the others wait. GitHub sends deliveries one at a time per hook,
// and a signed payload is small, so only junk would fill it.
const MaxConcurrentBodies = 8

// Deployer queues a deploy of a commit to an app.
type Deployer interface {
	Deploy(ctx context.Context, app string, req workflows.DeployRequest) error
	// SignalCI tells deploy workflow id, which waits for CI, that its
	// commit's checks changed; it reports whether the deploy still runs.
	SignalCI(ctx context.Context, id string) (bool, error)
	// ReviewEvent hands a pull request event to its review app's
	// workflow, starting it if needed.
	ReviewEvent(ctx context.Context, start workflows.ReviewInput, ev workflows.PREvent) error
	// ReviewClose tells a pull request's review app workflow, if one
	// runs, to destroy the app.
	ReviewClose(ctx context.Context, repo string, number int, ev workflows.PREvent) (bool, error)
}

// Deliveries remembers webhook delivery IDs so a redelivery is answered
// without doing anything twice.
type Deliveries interface {
	RecordDelivery(ctx context.Context, id, event string) (bool, error)
	ForgetDelivery(ctx context.Context, id string) error
	// AcceptPush records a push delivery and, unless it is a redelivery
	// or the app released or is deploying its commit, queues the push, in
	// one write; ForgetPush drops a push that could not be queued.
	AcceptPush(ctx context.Context, p deployments.Push) (deployments.PushIntake, error)
	ForgetPush(ctx context.Context, app, commit string) error
	// CIWaiters names the workflows waiting for CI of repo's commit.
	CIWaiters(ctx context.Context, repo, commit string) ([]string, error)
}

// Handler serves POST /webhooks/github.
type Handler struct {
	// readers bounds the bodies being read and verified at once.
	readers    chan struct{}
	config     *pipelines.Config
	secret     []byte
	deployer   Deployer
	deliveries Deliveries
	logger     *slog.Logger
}

// New returns a Handler. It refuses an empty secret: go-github's
// ValidatePayload accepts unsigned payloads when the secret is empty.
func New(cfg *pipelines.Config, secret string, d Deployer, deliveries Deliveries, logger *slog.Logger) (*Handler, error) {
	if secret == "" {
		return nil, errors.New("webhooks: empty webhook secret; refusing to accept unsigned payloads")
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Handler{config: cfg, secret: []byte(secret), deployer: d, deliveries: deliveries, logger: logger,
		readers: make(chan struct{}, MaxConcurrentBodies)}, nil
}

// Register mounts the handler on r.
func (h *Handler) Register(r gin.IRoutes) {
	r.POST("/webhooks/github", h.Serve)
}

type answer struct {
	Status    string `json:"status"`
	Message   string `json:"message,omitempty"`
	App       string `json:"app,omitempty"`
	Commit    string `json:"commit,omitempty"`
	Operation string `json:"operation,omitempty"`
}

// Serve handles one delivery: headers into the logger, the signature before
// anything reads the body, then parsing and dispatch.
func (h *Handler) Serve(c *gin.Context) {
	event := c.GetHeader(github.EventTypeHeader)
	delivery := c.GetHeader(github.DeliveryIDHeader)
	log := h.logger.With("event", event, "delivery", delivery)

	// Refuse what can never verify before reading a byte of the body, so
	// an unsigned flood costs nothing: no SHA-256 signature (a SHA-1
	// X-Hub-Signature alone is refused too), or a body announced too big.
	if sig := c.GetHeader(github.SHA256SignatureHeader); !strings.HasPrefix(sig, "sha256=") {
		log.Warn("webhook without an X-Hub-Signature-256")
		c.Header("Connection", "close")
		c.AbortWithStatusJSON(http.StatusUnauthorized, answer{Status: "rejected", Message: "missing X-Hub-Signature-256 (sha256=…); drover does not accept SHA-1 signatures"})
		return
	}
	if c.Request.ContentLength > MaxBodyBytes {
		c.Header("Connection", "close")
		c.AbortWithStatusJSON(http.StatusRequestEntityTooLarge, answer{Status: "rejected", Message: fmt.Sprintf("body larger than %d bytes", MaxBodyBytes)})
		return
	}
	// Bodies are read, to verify them, a few at a time, so signed-looking
	// junk cannot make drover hold many of them in memory at once.
	// The slot is held only while the body is read and verified: a
	// verified delivery is GitHub's, and waiting on the store or Temporal
	// must not hold back the next one.
	select {
	case h.readers <- struct{}{}:
	case <-c.Request.Context().Done():
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, MaxBodyBytes)
	payload, err := github.ValidatePayload(c.Request, h.secret)
	<-h.readers
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			log.Warn("webhook body too large")
			c.JSON(http.StatusRequestEntityTooLarge, answer{Status: "rejected", Message: fmt.Sprintf("body larger than %d bytes", MaxBodyBytes)})
			return
		}
		log.Warn("webhook signature invalid", "error", err)
		c.JSON(http.StatusUnauthorized, answer{Status: "rejected", Message: "invalid or missing X-Hub-Signature-256"})
		return
	}
	if event == "" {
		c.JSON(http.StatusBadRequest, answer{Status: "rejected", Message: "missing X-GitHub-Event header"})
		return
	}
	switch event {
	case "ping":
		c.JSON(http.StatusOK, answer{Status: "pong"})
	case "push":
		ev, err := parsePush(payload)
		if err != nil {
			log.Warn("malformed webhook", "error", err)
			c.JSON(http.StatusBadRequest, answer{Status: "rejected", Message: err.Error()})
			return
		}
		h.push(c, log, delivery, ev)
	case "pull_request":
		h.pullRequest(c, log, delivery, payload)
	case "check_suite", "check_run", "status", "workflow_run":
		h.ci(c, log, event, payload)
	default:
		c.JSON(http.StatusAccepted, answer{Status: "ignored", Message: fmt.Sprintf("drover does not act on %q events", event)})
	}
}

// pushPayload is what drover reads of a push webhook. Decoding only these
// fields, rather than go-github's whole PushEvent (every commit, the
// repository's hundred fields), makes a push cheaper to parse and leaves
// a ninth of the garbage, which is what a storm of them costs (go test
// -bench Parse).
// Before and HeadCommit.ID are not used; they are decoded so that a
// payload with GitHub's own fields of the wrong type is refused as
// malformed, as it was when go-github decoded all of it.
type pushPayload struct {
	Ref     string `json:"ref"`
	Before  string `json:"before"`
	After   string `json:"after"`
	Deleted bool   `json:"deleted"`
	Repo    struct {
		FullName string `json:"full_name"`
	} `json:"repository"`
	HeadCommit *struct {
		ID      string `json:"id"`
		Message string `json:"message"`
	} `json:"head_commit"`
	Pusher *struct {
		Name string `json:"name"`
	} `json:"pusher"`
	Sender *struct {
		Login string `json:"login"`
	} `json:"sender"`
}

// ciPayload is what drover reads of a check_suite, check_run, status or
// workflow_run webhook: the repository and the commit, which is all a
// storm of CI events nobody waits on should cost to parse. The action,
// state and names are decoded for their types only, as pushPayload's
// unused fields are.
type ciPayload struct {
	Action string `json:"action"`
	Repo   struct {
		FullName string `json:"full_name"`
	} `json:"repository"`
	// SHA, State and Context are a status event's.
	SHA         string `json:"sha"`
	State       string `json:"state"`
	Context     string `json:"context"`
	CheckSuite  *ciRun `json:"check_suite"`
	CheckRun    *ciRun `json:"check_run"`
	WorkflowRun *ciRun `json:"workflow_run"`
}

// ciRun is a check suite, check run or workflow run.
type ciRun struct {
	HeadSHA    string `json:"head_sha"`
	Name       string `json:"name"`
	Status     string `json:"status"`
	Conclusion string `json:"conclusion"`
}

// commit is the commit a CI event of type event is about.
func (p ciPayload) commit(event string) string {
	var h *ciRun
	switch event {
	case "status":
		return p.SHA
	case "check_suite":
		h = p.CheckSuite
	case "check_run":
		h = p.CheckRun
	case "workflow_run":
		h = p.WorkflowRun
	}
	if h == nil {
		return ""
	}
	return h.HeadSHA
}

// parseCI reads a CI event of type event: its repository and commit,
// either "" when the payload has none.
func parseCI(event string, payload []byte) (repo, sha string, err error) {
	var ev ciPayload
	if err := json.Unmarshal(payload, &ev); err != nil {
		return "", "", fmt.Errorf("parse %s payload: %v", event, err)
	}
	return ev.Repo.FullName, ev.commit(event), nil
}

func parsePush(payload []byte) (*pushPayload, error) {
	var ev pushPayload
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, fmt.Errorf("parse push payload: %w", err)
	}
	if ev.Repo.FullName == "" {
		return nil, errors.New("parse push payload: no repository.full_name")
	}
	return &ev, nil
}

func (h *Handler) push(c *gin.Context, log *slog.Logger, delivery string, ev *pushPayload) {
	repo := ev.Repo.FullName
	branch, isBranch := strings.CutPrefix(ev.Ref, "refs/heads/")
	commit := ev.After
	switch {
	case !isBranch:
		c.JSON(http.StatusOK, answer{Status: "ignored", Message: fmt.Sprintf("%s is not a branch", ev.Ref)})
		return
	case ev.Deleted || strings.Trim(commit, "0") == "":
		c.JSON(http.StatusOK, answer{Status: "ignored", Message: fmt.Sprintf("branch %s was deleted", branch)})
		return
	case !pipelines.ValidCommit(commit):
		c.JSON(http.StatusBadRequest, answer{Status: "rejected", Message: fmt.Sprintf("push payload: after %q is not a commit SHA (40 lowercase hex digits)", clip(commit))})
		return
	}
	pipeline, stage, ok := h.config.StageForPush(repo, branch)
	if !ok {
		c.JSON(http.StatusOK, answer{Status: "ignored", Message: fmt.Sprintf("no stage of any pipeline auto-deploys %s branch %s", repo, branch)})
		return
	}
	out := answer{App: stage.App, Commit: commit, Operation: workflows.DeployWorkflowID(stage.App, commit)}
	if h.deliveries != nil {
		// One write, from the store: the delivery ID, and whether the
		// commit is new to the app. A storm of one commit (GitHub's
		// redeliveries, or the same signed body under new IDs, which are
		// not signed) is answered here; one push of it goes to the app's
		// queue. A commit whose deploy failed may be pushed again.
		in, err := h.deliveries.AcceptPush(c.Request.Context(), deployments.Push{Delivery: delivery, Event: "push", App: stage.App, Repo: repo, Commit: commit})
		if err != nil {
			log.Error("accept push", "app", stage.App, "commit", commit, "error", err)
			c.JSON(http.StatusServiceUnavailable, answer{Status: "error", Message: "could not record the delivery; redeliver the webhook once drover's database is back"})
			return
		}
		switch in.Verdict {
		case deployments.PushRedelivered:
			out.Status, out.Message = "duplicate", "delivery "+delivery+" was already received; nothing started"
			c.JSON(http.StatusOK, out)
			return
		case deployments.PushReleased:
			out.Status, out.Message = "ignored", fmt.Sprintf("%s already released %s as %s; use drover rollback to go back to it", stage.App, commit, in.Release.Name())
			c.JSON(http.StatusOK, out)
			return
		case deployments.PushInFlight:
			out.Status, out.Message = "duplicate", fmt.Sprintf("duplicate commit: %s is already deploying %s", stage.App, commit)
			c.JSON(http.StatusOK, out)
			return
		}
	}
	// The payload's clone_url is never fetched: builds fetch from the
	// pipeline's configured source (pipelines.Config.SourceOf), so a
	// signed payload cannot point a build, or a token, anywhere else.
	req := workflows.StageRequest(pipeline, stage, h.cloneURL(pipeline.Repo), commit, describe(ev, branch))
	if err := h.deployer.Deploy(c.Request.Context(), stage.App, req); err != nil {
		log.Error("queue deploy", "app", stage.App, "commit", commit, "error", err)
		h.forget(c, log, delivery)
		if h.deliveries != nil {
			if err := h.deliveries.ForgetPush(context.WithoutCancel(c.Request.Context()), stage.App, commit); err != nil {
				log.Error("forget queued push", "error", err)
			}
		}
		c.JSON(http.StatusServiceUnavailable, answer{Status: "error", Message: "could not queue the deploy; redeliver the webhook once drover's worker is back"})
		return
	}
	log.Info("deploy queued", "app", stage.App, "commit", commit, "pipeline", pipeline.Name, "stage", stage.Name)
	out.Status = "accepted"
	c.JSON(http.StatusAccepted, out)
}

// pullRequest turns pull_request events of a repository whose pipeline has
// a review stage into events for the pull request's review app workflow.
func (h *Handler) pullRequest(c *gin.Context, log *slog.Logger, delivery string, payload []byte) {
	ev, err := github.ParseWebHook("pull_request", payload)
	pre, ok := ev.(*github.PullRequestEvent)
	if err != nil || !ok || pre.GetRepo().GetFullName() == "" || pre.GetPullRequest().GetNumber() == 0 {
		c.JSON(http.StatusBadRequest, answer{Status: "rejected", Message: fmt.Sprintf("parse pull_request payload: no repository or pull request number (%v)", err)})
		return
	}
	repo, number, action := pre.GetRepo().GetFullName(), pre.GetPullRequest().GetNumber(), pre.GetAction()
	pipeline, stage, ok := h.config.ReviewStage(repo)
	if !ok {
		c.JSON(http.StatusOK, answer{Status: "ignored", Message: "no pipeline of " + repo + " has a review stage"})
		return
	}
	start := workflows.ReviewStart(pipeline, stage, number)
	out := answer{App: start.App, Commit: pre.GetPullRequest().GetHead().GetSHA(), Operation: workflows.ReviewWorkflowID(repo, number)}
	pr := gh.FromPullRequest(pre.GetPullRequest())
	switch action {
	case workflows.PROpened, workflows.PRReopened, workflows.PRSynchronize, workflows.PRReadyForReview:
		if !isCommit(pr.Head) {
			c.JSON(http.StatusBadRequest, answer{Status: "rejected", Message: fmt.Sprintf("pull_request payload: pull_request.head.sha %q is not a commit SHA (40 lowercase hex digits)", clip(pr.Head))})
			return
		}
		// A fork's head is fetched from the base repository, which serves
		// it (refs/pull/N/head), not from the fork the payload names.
		pr.CloneURL = h.cloneURL(pipeline.Repo)
		if !h.fresh(c, log, delivery, "pull_request", &out) {
			return
		}
		if err := h.deployer.ReviewEvent(c.Request.Context(), start, workflows.PREvent{Action: action, PR: pr}); err != nil {
			log.Error("hand pull request to its review app", "app", start.App, "error", err)
			h.forget(c, log, delivery)
			c.JSON(http.StatusServiceUnavailable, answer{Status: "error", Message: "could not reach the review app's workflow; redeliver the webhook once drover's worker is back"})
			return
		}
		log.Info("review app event", "app", start.App, "action", action, "commit", pr.Head)
		out.Status = "accepted"
		c.JSON(http.StatusAccepted, out)
	case workflows.PRClosed:
		why := "the pull request was closed"
		if pre.GetPullRequest().GetMerged() {
			why = "the pull request was merged"
		}
		running, err := h.deployer.ReviewClose(c.Request.Context(), repo, number, workflows.PREvent{Action: action, PR: pr, Reason: why})
		if err != nil {
			log.Error("close review app", "app", start.App, "error", err)
			c.JSON(http.StatusServiceUnavailable, answer{Status: "error", Message: "could not reach the review app's workflow; redeliver the webhook"})
			return
		}
		if !running {
			out.Status, out.Message = "ignored", "pull request #"+fmt.Sprint(number)+" has no review app"
			c.JSON(http.StatusOK, out)
			return
		}
		out.Status, out.Message = "accepted", "destroying "+start.App
		c.JSON(http.StatusAccepted, out)
	default:
		c.JSON(http.StatusOK, answer{Status: "ignored", App: start.App, Message: fmt.Sprintf("drover does not act on pull_request %q", action)})
	}
}

// fresh records a delivery and reports whether it is new; a redelivery is
// answered here.
func (h *Handler) fresh(c *gin.Context, log *slog.Logger, delivery, event string, out *answer) bool {
	if delivery == "" || h.deliveries == nil {
		return true
	}
	fresh, err := h.deliveries.RecordDelivery(c.Request.Context(), delivery, event)
	if err != nil {
		log.Error("record delivery", "error", err)
		c.JSON(http.StatusServiceUnavailable, answer{Status: "error", Message: "could not record the delivery; redeliver it"})
		return false
	}
	if !fresh {
		out.Status, out.Message = "duplicate", "delivery "+delivery+" was already received; nothing started"
		c.JSON(http.StatusOK, *out)
		return false
	}
	return true
}

// forget drops a delivery whose work could not start, so GitHub's
// redelivery of it is acted on.
func (h *Handler) forget(c *gin.Context, log *slog.Logger, delivery string) {
	if delivery == "" || h.deliveries == nil {
		return
	}
	if err := h.deliveries.ForgetDelivery(context.WithoutCancel(c.Request.Context()), delivery); err != nil {
		log.Error("forget delivery", "error", err)
	}
}

// ci turns CI webhooks into signals for the deploys waiting on that commit,
// in every auto-deploy stage of the repository that waits for CI.
func (h *Handler) ci(c *gin.Context, log *slog.Logger, event string, payload []byte) {
	repo, sha, err := parseCI(event, payload)
	if err != nil {
		c.JSON(http.StatusBadRequest, answer{Status: "rejected", Message: err.Error()})
		return
	}
	if repo == "" || sha == "" {
		c.JSON(http.StatusBadRequest, answer{Status: "rejected", Message: event + " payload has no repository or commit"})
		return
	}
	if !isCommit(sha) {
		c.JSON(http.StatusBadRequest, answer{Status: "rejected", Message: fmt.Sprintf("%s payload: commit %q is not a SHA (40 lowercase hex digits)", event, clip(sha))})
		return
	}
	if h.deliveries == nil {
		c.JSON(http.StatusOK, answer{Status: "ignored", Commit: sha, Message: "drover keeps no waits for CI without its store"})
		return
	}
	// The deploys waiting for this commit's CI recorded their wait in the
	// store before they read GitHub (whatever started them: a push, a
	// review app, a missed push), so CI nobody waits on costs one read.
	waiting, err := h.deliveries.CIWaiters(c.Request.Context(), repo, sha)
	if err != nil {
		log.Error("read waits for CI", "commit", sha, "error", err)
		c.JSON(http.StatusServiceUnavailable, answer{Status: "error", Message: "could not read which deploys wait for CI; redeliver the webhook once drover's database is back"})
		return
	}
	woken := 0
	for _, id := range waiting {
		ok, err := h.deployer.SignalCI(c.Request.Context(), id)
		if err != nil {
			log.Error("signal CI", "workflow", id, "commit", sha, "error", err)
			c.JSON(http.StatusServiceUnavailable, answer{Status: "error", Message: "could not reach the waiting deploy; redeliver the webhook"})
			return
		}
		if ok {
			woken++
		}
	}
	if woken == 0 {
		c.JSON(http.StatusOK, answer{Status: "ignored", Commit: sha, Message: "no deploy waits for CI of this commit"})
		return
	}
	c.JSON(http.StatusAccepted, answer{Status: "signalled", Commit: sha, Message: fmt.Sprintf("%d deploy(s) waiting for CI re-read it", woken)})
}

func describe(ev *pushPayload, branch string) string {
	var msg, who string
	if ev.HeadCommit != nil {
		msg = ev.HeadCommit.Message
	}
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	if ev.Pusher != nil {
		who = ev.Pusher.Name
	}
	if who == "" && ev.Sender != nil {
		who = ev.Sender.Login
	}
	d := "push to " + branch
	if who != "" {
		d += " by " + who
	}
	if msg != "" {
		d += ": " + msg
	}
	return d
}

// cloneURL is where builds of repo fetch it, as drover.yaml says.
func (h *Handler) cloneURL(repo string) string {
	src, err := h.config.SourceOf(repo)
	if err != nil {
		return ""
	}
	return src.URL
}

// isCommit reports whether a payload names a commit: a full SHA, and not
// the all-zero one GitHub writes for "no commit".
func isCommit(sha string) bool { return pipelines.ValidCommit(sha) && strings.Trim(sha, "0") != "" }

// clip shortens what a payload said for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
