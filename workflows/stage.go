package workflows

import "github.com/drover/drover/pipelines"

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

// ReviewStart is the first state of pull request number's review app in
// pipeline p, whose review stage is st.
func ReviewStart(p pipelines.Pipeline, st pipelines.Stage, number int) ReviewInput {
	app := pipelines.ReviewAppName(p.Name, number)
	req := StageRequest(p, st, "", "", "")
	req.Environment = app
	rs := ReviewStage{Request: req, TTL: st.ReviewTTL(), DeployDrafts: st.DeployDrafts, MaxApps: st.MaxApps, URL: st.ReviewURL(app)}
	if from, ok := p.Stages[st.ConfigFrom]; ok && st.ConfigFrom != "" {
		rs.ConfigFrom = from.App
	}
	return ReviewInput{Pipeline: p.Name, App: app, Number: number, Stage: rs}
}
