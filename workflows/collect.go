package workflows

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/workflow"

	"github.com/drover/drover/deployments/slugs"
	"github.com/drover/drover/pipelines"
)

// SlugCollector lists and deletes stored slugs.
type SlugCollector interface {
	List(ctx context.Context) ([]slugs.Stored, error)
	Delete(ctx context.Context, digest string) error
}

// CollectScheduleID is the schedule of drover's collection.
const CollectScheduleID = "collect"

// CollectInput is what collection keeps.
type CollectInput struct {
	// KeepReleases is how many of each app's newest releases keep their
	// slugs (pipelines.Retention).
	KeepReleases int
	// KeepDeliveries is how long webhook delivery IDs are remembered.
	KeepDeliveries time.Duration
	// Grace spares slugs and builds younger than it: a build's slug
	// exists a while before the release that uses it.
	Grace time.Duration
}

// CollectResult counts what collection removed.
type CollectResult struct {
	Slugs, Builds, Deliveries int
	// Kept is how many slugs the ledger still needs.
	Kept int
}

// CollectGrace is the default CollectInput.Grace: longer than any build
// and CI wait before its release is made.
const CollectGrace = 24 * time.Hour

// CollectWorkflow removes what nothing needs any more, on drover's
// collect schedule. A run has the schedule's 5 minutes; what it leaves,
// the next one takes.
func CollectWorkflow(ctx workflow.Context, in CollectInput) (CollectResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 4 * time.Minute, HeartbeatTimeout: time.Minute})
	var res CollectResult
	err := workflow.ExecuteActivity(ctx, a.Collect, in).Get(ctx, &res)
	return res, err
}

// CollectWatch is the collect schedule for retention r.
func CollectWatch(r pipelines.Retention) Watch {
	return Watch{ID: CollectScheduleID, Every: r.CollectEvery(), Workflow: CollectWorkflow,
		Arg:  CollectInput{KeepReleases: r.KeepReleases(), KeepDeliveries: r.KeepDeliveries(), Grace: CollectGrace},
		Note: "drover: deletes slugs no kept release uses, old builds and old webhook deliveries"}
}

// Collect deletes the slugs no kept release uses (older than the grace
// period), the builds of those slugs, and old delivery IDs. Without a
// SlugCollector it prunes the ledger alone.
func (a *Activities) Collect(ctx context.Context, in CollectInput) (CollectResult, error) {
	var res CollectResult
	keep := in.KeepReleases
	if keep <= 0 {
		keep = pipelines.DefaultKeepReleases
	}
	kept, err := a.Store.KeptSlugs(ctx, keep)
	if err != nil {
		return res, err
	}
	res.Kept = len(kept)
	cutoff := time.Now().Add(-in.Grace)
	if a.SlugCollector != nil {
		stored, err := a.SlugCollector.List(ctx)
		if err != nil {
			return res, err
		}
		for _, st := range stored {
			if kept[st.Digest] || st.Modified.After(cutoff) {
				continue
			}
			if err := a.SlugCollector.Delete(ctx, st.Digest); err != nil {
				return res, err
			}
			res.Slugs++
			activity.RecordHeartbeat(ctx, res.Slugs)
		}
	}
	if res.Builds, err = a.Store.PruneBuilds(ctx, kept, cutoff); err != nil {
		return res, err
	}
	if in.KeepDeliveries > 0 {
		if res.Deliveries, err = a.Store.PruneDeliveries(ctx, time.Now().Add(-in.KeepDeliveries)); err != nil {
			return res, err
		}
	}
	a.logger().Info("collected", "slugs", res.Slugs, "builds", res.Builds, "deliveries", res.Deliveries, "kept_slugs", res.Kept)
	return res, nil
}
