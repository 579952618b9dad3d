package workflows

import (
	"context"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/workflow"
)

// Metric names. They go through the Temporal SDK's metrics handler, which
// drops what a replay records, so a workflow replayed on another worker
// never counts twice; the worker's handler exports them to Prometheus.
const (
	metricOperations       = "drover_operations"
	metricOperationSeconds = "drover_operation_duration"
	metricRegionDeploys    = "drover_region_deploys"
	metricRegionSeconds    = "drover_region_deploy_duration"
	metricQueueDepth       = "drover_queue_depth"
)

// operationKind names an operation by its workflow type: push, promote,
// rollback or change.
func operationKind(ctx workflow.Context) string {
	name := strings.TrimSuffix(workflow.GetInfo(ctx).WorkflowType.Name, "Workflow")
	switch name {
	case "Deploy":
		return "push"
	case "Change":
		return "change"
	}
	return strings.ToLower(name)
}

// recordOperation counts an operation's end and its duration since the
// workflow started.
func recordOperation(ctx workflow.Context, result string) {
	m := workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"kind": operationKind(ctx), "result": result})
	m.Counter(metricOperations).Inc(1)
	m.Timer(metricOperationSeconds).Record(workflow.Now(ctx).Sub(workflow.GetInfo(ctx).WorkflowStartTime))
}

// recordQueueDepth sets how many operations an app's queue holds,
// the running one included.
func recordQueueDepth(ctx workflow.Context, app string, depth int) {
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"app": app}).Gauge(metricQueueDepth).Update(float64(depth))
}

// recordRegionDeploy counts one region's deploy and how long it took.
func recordRegionDeploy(ctx context.Context, region string, start time.Time, err error) {
	result := "succeeded"
	if err != nil {
		result = "failed"
	}
	m := activity.GetMetricsHandler(ctx).WithTags(map[string]string{"region": region, "result": result})
	m.Counter(metricRegionDeploys).Inc(1)
	m.Timer(metricRegionSeconds).Record(time.Since(start))
}
