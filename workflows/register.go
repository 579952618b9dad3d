package workflows

import "go.temporal.io/sdk/worker"

// Register registers every workflow and the activities with w.
func Register(w worker.Registry, acts *Activities) {
	w.RegisterWorkflow(AppWorkflow)
	w.RegisterWorkflow(DeployWorkflow)
	w.RegisterWorkflow(PromoteWorkflow)
	w.RegisterWorkflow(RollbackWorkflow)
	w.RegisterWorkflow(ChangeWorkflow)
	w.RegisterWorkflow(MissedPushWorkflow)
	w.RegisterWorkflow(ReviewAppWorkflow)
	w.RegisterWorkflow(ReviewSweepWorkflow)
	w.RegisterWorkflow(CollectWorkflow)
	w.RegisterActivity(acts)
}
