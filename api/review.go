package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/workflows"
)

// ReviewLedger reads review apps from the ledger.
type ReviewLedger interface {
	ReviewApps(ctx context.Context, pipeline string) ([]pipelines.ReviewApp, error)
	ReviewApp(ctx context.Context, app string) (pipelines.ReviewApp, error)
}

// ReviewStarter hands events to review app workflows.
type ReviewStarter interface {
	ReviewEvent(ctx context.Context, start workflows.ReviewInput, ev workflows.PREvent) error
	ReviewClose(ctx context.Context, repo string, number int, ev workflows.PREvent) (bool, error)
}

// PullRequestReader reads a pull request as GitHub has it now.
type PullRequestReader interface {
	PullRequest(ctx context.Context, repo string, number int) (pipelines.PullRequest, error)
}

// ReviewAppAnswer is what creating or destroying a review app answers.
type ReviewAppAnswer struct {
	App       string `json:"app"`
	PR        int    `json:"pr"`
	Operation string `json:"operation"`
	Status    string `json:"status"`
}

// registerReviewApps mounts the review app routes on groups that check the
// read and deploy scopes.
func (s *Server) registerReviewApps(read, deploy *gin.RouterGroup) {
	if s.Reviews == nil || s.ReviewOps == nil || s.Config == nil {
		return
	}
	read.GET("/pipelines/:pipeline/review-apps", s.listReviewApps)
	deploy.POST("/pipelines/:pipeline/review-apps/:number", s.createReviewApp)
	deploy.DELETE("/pipelines/:pipeline/review-apps/:number", s.destroyReviewApp)
}

// reviewStage loads the route's pipeline and its review stage.
func (s *Server) reviewStage(c *gin.Context) (pipelines.Pipeline, pipelines.Stage, bool) {
	name := c.Param("pipeline")
	p, ok := s.Config.Pipelines[name]
	if !ok {
		fail(c, http.StatusNotFound, "not_found", "no pipeline named "+strconv.Quote(name))
		return p, pipelines.Stage{}, false
	}
	if !allowed(c, p.Name) {
		return p, pipelines.Stage{}, false
	}
	st, ok := p.Stages[pipelines.StageReview]
	if !ok {
		fail(c, http.StatusBadRequest, "invalid", "pipeline "+p.Name+" has no review stage; add stages.review to drover.yaml")
		return p, st, false
	}
	return p, st, true
}

// reviewApp loads the route's pipeline, its review stage and the pull
// request's number.
func (s *Server) reviewApp(c *gin.Context) (pipelines.Pipeline, pipelines.Stage, int, bool) {
	p, st, ok := s.reviewStage(c)
	if !ok {
		return p, st, 0, false
	}
	n, err := strconv.Atoi(c.Param("number"))
	if err != nil || n <= 0 {
		fail(c, http.StatusBadRequest, "invalid", fmt.Sprintf("%q is not a pull request number", c.Param("number")))
		return p, st, 0, false
	}
	return p, st, n, true
}

// listReviewApps answers the pipeline's live review apps, by PR number.
func (s *Server) listReviewApps(c *gin.Context) {
	p, _, ok := s.reviewStage(c)
	if !ok {
		return
	}
	list, err := s.Reviews.ReviewApps(c.Request.Context(), p.Name)
	if err != nil {
		s.failErr(c, err)
		return
	}
	if list == nil {
		list = []pipelines.ReviewApp{}
	}
	c.JSON(http.StatusOK, list)
}

// createReviewApp deploys a pull request's review app on purpose: a fork's
// (which never deploys by itself), a draft, or one whose deploy failed.
func (s *Server) createReviewApp(c *gin.Context) {
	p, st, n, ok := s.reviewApp(c)
	if !ok {
		return
	}
	var body struct {
		// Commit is the head the caller reviewed; a fork's needs one.
		Commit string `json:"commit"`
	}
	if !optionalBody(c, &body, `body must be {"commit": "SHA"} or empty`) {
		return
	}
	start := workflows.ReviewStart(p, st, n)
	ev := workflows.PREvent{Action: workflows.PRCreate, PR: pipelines.PullRequest{Number: n, Head: body.Commit}, By: caller(c).Name}
	if s.PullRequests != nil {
		// Deploy what was reviewed: the head as GitHub has it now, which
		// must be the commit named, and must be named for a fork, whose
		// code the pipeline's owners did not write.
		pr, err := s.PullRequests.PullRequest(c.Request.Context(), p.Repo, n)
		if err != nil {
			s.logger().Warn("read pull request", "repo", p.Repo, "number", n, "error", err)
			fail(c, http.StatusServiceUnavailable, "unavailable", fmt.Sprintf("could not read pull request #%d of %s from GitHub; try again", n, p.Repo))
			return
		}
		switch {
		case pr.Fork && body.Commit == "":
			fail(c, http.StatusBadRequest, "invalid", fmt.Sprintf("#%d comes from a fork: name the commit you reviewed (drover review-apps create %s %d --commit %s)", n, p.Name, n, pr.Head))
			return
		case body.Commit != "" && (len(body.Commit) < 7 || !strings.HasPrefix(pr.Head, body.Commit)):
			fail(c, http.StatusConflict, "conflict", fmt.Sprintf("the head of #%d has moved on to %s since %s; review it, then run drover review-apps create %s %d --commit %s", n, pr.Head, body.Commit, p.Name, n, pr.Head))
			return
		}
		ev.PR = pr
	}
	if err := s.ReviewOps.ReviewEvent(c.Request.Context(), start, ev); err != nil {
		s.logger().Error("create review app", "app", start.App, "error", err)
		fail(c, http.StatusServiceUnavailable, "unavailable", "could not reach the review app's workflow; is drover's worker running?")
		return
	}
	c.JSON(http.StatusAccepted, ReviewAppAnswer{App: start.App, PR: n, Operation: workflows.ReviewWorkflowID(p.Repo, n), Status: "deploying"})
}

// destroyReviewApp destroys a pull request's review app in every region.
func (s *Server) destroyReviewApp(c *gin.Context) {
	p, st, n, ok := s.reviewApp(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	start := workflows.ReviewStart(p, st, n)
	ev := workflows.PREvent{Action: workflows.PRDestroy, PR: pipelines.PullRequest{Number: n}, By: caller(c).Name,
		Reason: "destroyed by " + caller(c).Name + " with `drover review-apps destroy`"}
	running, err := s.ReviewOps.ReviewClose(ctx, p.Repo, n, ev)
	if err == nil && !running {
		// No workflow holds it (it ended without tearing down, or never
		// ran): a live one in the ledger is torn down by a new one.
		ra, lerr := s.Reviews.ReviewApp(ctx, start.App)
		switch {
		case errors.Is(lerr, pipelines.ErrNotFound) || (lerr == nil && ra.DestroyedAt != nil):
			fail(c, http.StatusNotFound, "not_found", fmt.Sprintf("pull request #%d of %s has no review app", n, p.Name))
			return
		case lerr != nil:
			s.failErr(c, lerr)
			return
		}
		start.Created = true
		err = s.ReviewOps.ReviewEvent(ctx, start, ev)
	}
	if err != nil {
		s.logger().Error("destroy review app", "app", start.App, "error", err)
		fail(c, http.StatusServiceUnavailable, "unavailable", "could not reach the review app's workflow; is drover's worker running?")
		return
	}
	c.JSON(http.StatusAccepted, ReviewAppAnswer{App: start.App, PR: n, Operation: workflows.ReviewWorkflowID(p.Repo, n), Status: "destroying"})
}
