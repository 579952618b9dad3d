package workflows_test

import (
	"log/slog"
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/drover/drover/workflows"
)

// TestReplayRecordedHistories replays histories recorded on the dev stack
// (see saveHistory in cmd/drover's end-to-end test) against today's code.
// A change to a workflow's shape that would break running workflows fails
// here: guard it with workflow.GetVersion, then record the histories anew.
func TestReplayRecordedHistories(t *testing.T) {
	tests := []struct {
		file string
		fn   any
	}{
		{"deploy.json", workflows.DeployWorkflow},
		{"app.json", workflows.AppWorkflow},
		{"review.json", workflows.ReviewAppWorkflow},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflow(tt.fn)
			logger := log.NewStructuredLogger(slog.New(slog.DiscardHandler))
			if err := r.ReplayWorkflowHistoryFromJSONFile(logger, filepath.Join("testdata", tt.file)); err != nil {
				t.Fatalf("replay %s: %v", tt.file, err)
			}
		})
	}
}
