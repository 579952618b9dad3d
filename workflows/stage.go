package workflows

import (
	"strings"

	"github.com/drover/drover/pipelines"
)

// StageRequest is the deploy of commit into stage st of pipeline p, with
// the stage's rollout, approval, CI and reporting settings. Every way a
// commit reaches a stage (a push webhook, reconciliation, a review app)
// asks through it, so they all deploy alike.
func StageRequest(p pipelines.Pipeline, st pipelines.Stage, cloneURL, commit, description string) DeployRequest {
	parallel, onFailure := st.Rollout.Policy()
	req := DeployRequest{
		Repo: p.Repo, CloneURL: cloneURL, Commit: commit, Regions: st.Regions,
		Description: description, MaxParallel: parallel, OnFailure: onFailure,
		Environment: st.Name,
	}
	if ok, timeout := st.Approval(); ok {
		req.ApprovalTimeout = timeout
	}
	if ok, timeout := st.CIWait(); ok {
		req.CI = &CIPolicy{RequiredChecks: st.RequiredChecks, Timeout: timeout}
	}
	return req
}

// ReviewTemplate is what every review app of a pipeline starts from.
type ReviewTemplate struct {
	Pipeline string
	Repo     string
	Stage    ReviewStage
	// URLPattern is the stage's url, with {app}.
	URLPattern string `json:",omitempty"`
}

// ReviewTemplateFor is the template of pipeline p's review stage st.
func ReviewTemplateFor(p pipelines.Pipeline, st pipelines.Stage) ReviewTemplate {
	rs := ReviewStage{Request: StageRequest(p, st, "", "", ""), TTL: st.ReviewTTL(), DeployDrafts: st.DeployDrafts, MaxApps: st.MaxApps}
	if from, ok := p.Stages[st.ConfigFrom]; ok && st.ConfigFrom != "" {
		rs.ConfigFrom = from.App
	}
	return ReviewTemplate{Pipeline: p.Name, Repo: p.Repo, Stage: rs, URLPattern: st.URL}
}

// For is the first state of pull request number's review app.
func (t ReviewTemplate) For(number int) ReviewInput {
	app := pipelines.ReviewAppName(t.Pipeline, number)
	rs := t.Stage
	rs.Request.Environment = app
	rs.URL = strings.ReplaceAll(t.URLPattern, "{app}", app)
	return ReviewInput{Pipeline: t.Pipeline, App: app, Number: number, Stage: rs}
}

// ReviewStart is the first state of pull request number's review app in
// pipeline p, whose review stage is st.
func ReviewStart(p pipelines.Pipeline, st pipelines.Stage, number int) ReviewInput {
	return ReviewTemplateFor(p, st).For(number)
}
