package workflows

import (
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// versionRegionQueues marks workflows that send region activities to the
// region's own task queue; older histories sent them to TaskQueue.
const versionRegionQueues = "region-task-queues"

// regionPickup is how long a deploy waits for a worker to take a step in a
// region before it fails saying that no worker serves the region.
const regionPickup = 10 * time.Minute

// inRegion routes the activities started with the returned context to
// region's task queue (RegionTaskQueue).
func inRegion(ctx workflow.Context, region string) workflow.Context {
	if workflow.GetVersion(ctx, versionRegionQueues, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return ctx
	}
	return workflow.WithTaskQueue(ctx, RegionTaskQueue(region))
}

// deployInRegion is inRegion for steps that should fail, not wait, when no
// worker serves the region: a deploy says so within regionPickup. Reverts
// and teardowns wait for a worker instead, since giving up on them leaves
// the region wrong.
func deployInRegion(ctx workflow.Context, region string) workflow.Context {
	return workflow.WithScheduleToStartTimeout(inRegion(ctx, region), regionPickup)
}

// notPickedUp reports whether err is a region step no worker took.
func notPickedUp(err error) bool {
	var te *temporal.TimeoutError
	return errors.As(err, &te) && te.TimeoutType() == enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START
}

// stopPickup is how long a teardown waits for a worker of the region
// before asking any worker.
const stopPickup = time.Minute

// stopInRegion stops an app in a region on the region's task queue. When
// no worker takes it there (the region left drover.yaml, or the one worker
// of a local region is away), any worker is asked: StopApp skips a region
// it does not know, and a local region's worker, when it comes back,
// stops what no release needs when it reconciles.
func stopInRegion(ctx workflow.Context, in StopAppInput) workflow.Future {
	f, set := workflow.NewFuture(ctx)
	workflow.Go(ctx, func(ctx workflow.Context) {
		err := workflow.ExecuteActivity(workflow.WithScheduleToStartTimeout(inRegion(ctx, in.Region), stopPickup), a.StopApp, in).Get(ctx, nil)
		if notPickedUp(err) {
			err = workflow.ExecuteActivity(ctx, a.StopApp, in).Get(ctx, nil)
		}
		set.Set(nil, err)
	})
	return f
}

// askRegions runs activity in every region at once, each on its region's
// task queue, with input(region) as its input, and returns each region's
// answer in order, or why it has none: a region whose worker does not
// pick the task up within opts' schedule-to-start timeout is named as
// unserved, so one region down or away never holds up the others' answers.
func askRegions[T any](ctx workflow.Context, names []string, opts workflow.ActivityOptions, activity any, input func(region string) any) (answers []T, errs []string) {
	actx := workflow.WithActivityOptions(ctx, opts)
	futures := make([]workflow.Future, len(names))
	for i, region := range names {
		futures[i] = workflow.ExecuteActivity(inRegion(actx, region), activity, input(region))
	}
	answers, errs = make([]T, len(names)), make([]string, len(names))
	for i, f := range futures {
		if err := f.Get(ctx, &answers[i]); err != nil {
			errs[i] = reason(err)
			if notPickedUp(err) {
				errs[i] = fmt.Sprintf("no drover worker serving region %s answered within %s", names[i], opts.ScheduleToStartTimeout)
			}
		}
	}
	return answers, errs
}
