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
