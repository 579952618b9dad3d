package nomad

import (
	"context"
	"time"

	"github.com/hashicorp/nomad/api"
)

// RenderRunJob is renderRunJob, for golden tests.
var RenderRunJob = renderRunJob

// NextIndex is nextIndex on a region that pauses poll between answers
// without news.
func NextIndex(ctx context.Context, poll time.Duration, prev uint64, qm *api.QueryMeta) (uint64, error) {
	return (&Region{poll: poll}).nextIndex(ctx, prev, qm)
}
