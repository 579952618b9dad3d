package workflows

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/client"
)

// Starter starts and signals drover's workflows from outside Temporal: the
// webhook and API edges hold one.
type Starter struct {
	Client client.Client
}

// Deploy hands a push to app's queue, starting the queue if it is not
// running. Workflow IDs are business keys, so a repeated call for the same
// commit starts nothing new.
func (s *Starter) Deploy(ctx context.Context, app string, req DeployRequest) error {
	_, err := s.Client.SignalWithStartWorkflow(ctx, AppWorkflowID(app), SignalDeploy, req,
		client.StartWorkflowOptions{TaskQueue: TaskQueue}, AppWorkflow, AppInput{App: app})
	if err != nil {
		return fmt.Errorf("queue deploy of %s to %s: %w", short(req.Commit), app, err)
	}
	return nil
}
