// Package workflows holds drover's Temporal workflows and the activities
// they run. Workflows decide the order of things; activities do the I/O
// through the interfaces held by Activities.
package workflows

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// TaskQueue is the task queue drover's worker polls.
const TaskQueue = "drover"

// SignalDeploy asks an app's queue to deploy a commit.
const SignalDeploy = "deploy"

// QueryQueue returns what an app's queue is running and holding.
const QueryQueue = "queue"

// AppWorkflowID is the ID of the one long-lived workflow that orders every
// change to app.
func AppWorkflowID(app string) string { return "app/" + app }

// ParseAppWorkflowID returns the app of an AppWorkflowID.
func ParseAppWorkflowID(id string) (string, bool) {
	app, ok := strings.CutPrefix(id, "app/")
	return app, ok && app != "" && !strings.Contains(app, "/")
}

// DeployWorkflowID is the business key of deploying commit to app: a second
// request for the same pair finds the first.
func DeployWorkflowID(app, commit string) string { return fmt.Sprintf("deploy/%s/%s", app, commit) }

// ParseDeployWorkflowID returns the app and commit of a DeployWorkflowID.
func ParseDeployWorkflowID(id string) (app, commit string, ok bool) {
	rest, ok := strings.CutPrefix(id, "deploy/")
	if !ok {
		return "", "", false
	}
	app, commit, ok = strings.Cut(rest, "/")
	return app, commit, ok && app != "" && commit != ""
}

// OperationWorkflowID is the ID of one promotion, rollback, config or
// scale release; the API makes it (with a random part) so the caller can
// follow the operation.
func OperationWorkflowID(kind, app, nonce string) string {
	return fmt.Sprintf("%s/%s/%s", kind, app, nonce)
}

// ParseOperationWorkflowID returns the kind and app of an
// OperationWorkflowID; ok is false for any other ID.
func ParseOperationWorkflowID(id string) (kind, app string, ok bool) {
	kind, rest, _ := strings.Cut(id, "/")
	app, nonce, _ := strings.Cut(rest, "/")
	return kind, app, slices.Contains(OperationKinds, kind) && app != "" && nonce != "" && !strings.Contains(nonce, "/")
}

// ReviewWorkflowID is the business key of pull request number of repo.
func ReviewWorkflowID(repo string, number int) string {
	return fmt.Sprintf("review/%s/%d", strings.ToLower(repo), number)
}

// ParseReviewWorkflowID returns the repository (lower-cased, as the ID
// holds it) and pull request number of a ReviewWorkflowID.
func ParseReviewWorkflowID(id string) (repo string, number int, ok bool) {
	rest, ok := strings.CutPrefix(id, "review/")
	i := strings.LastIndexByte(rest, '/')
	if !ok || i < 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(rest[i+1:])
	repo = rest[:i]
	owner, name, two := strings.Cut(repo, "/")
	return repo, n, err == nil && n > 0 && two && owner != "" && name != "" && !strings.Contains(name, "/")
}

// RegionTaskQueue is the task queue of the activities that act in one
// region: deploy, revert, stop, the release phase and app.json scripts. A
// local region runs apps on the host of the worker that polls its queue,
// so exactly one worker polls it (drover worker --local-regions NAME);
// every worker polls the queues of Nomad regions, which any of them can
// reach. This is Temporal's pattern for work bound to a host.
func RegionTaskQueue(region string) string { return TaskQueue + "-region-" + region }

// ProcessesWorkflowID is the ID of one `drover ps` of app.
func ProcessesWorkflowID(app, nonce string) string { return "ps/" + app + "/" + nonce }

// ParseProcessesWorkflowID returns the app of a ProcessesWorkflowID.
func ParseProcessesWorkflowID(id string) (app string, ok bool) {
	rest, ok := strings.CutPrefix(id, "ps/")
	app, nonce, _ := strings.Cut(rest, "/")
	return app, ok && app != "" && nonce != "" && !strings.Contains(nonce, "/")
}
