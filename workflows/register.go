package workflows

import "go.temporal.io/sdk/worker"

// Register registers every workflow and the activities with drover's own
// task queue's worker w: acts, and the GitHub steps (gh, which has no
// client when drover has no GitHub credentials). Region workers register
// acts alone.
func Register(w worker.Registry, acts *Activities, gh *GitHubActivities) {
	w.RegisterWorkflow(AppWorkflow)
	w.RegisterWorkflow(DeployWorkflow)
	w.RegisterWorkflow(PromoteWorkflow)
	w.RegisterWorkflow(RollbackWorkflow)
	w.RegisterWorkflow(ChangeWorkflow)
	w.RegisterWorkflow(MissedPushWorkflow)
	w.RegisterWorkflow(ReviewAppWorkflow)
	w.RegisterWorkflow(ReviewSweepWorkflow)
	w.RegisterWorkflow(CollectWorkflow)
	w.RegisterWorkflow(ProcessesWorkflow)
	w.RegisterWorkflow(PlanWorkflow)
	w.RegisterActivity(acts)
	w.RegisterActivity(gh)
}
