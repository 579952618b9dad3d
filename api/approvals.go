package api

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/workflows"
)

// ApprovalWaits asks an operation whether its release waits for approval.
type ApprovalWaits interface {
	ApprovalWait(ctx context.Context, operation string) (workflows.ApprovalWait, error)
}

// PendingApproval is a release waiting for someone to approve or reject
// it: what GET /api/v1/approvals lists.
type PendingApproval struct {
	Operation   string    `json:"operation"`
	Pipeline    string    `json:"pipeline"`
	Stage       string    `json:"stage"`
	App         string    `json:"app"`
	Release     int       `json:"release"`
	Commit      string    `json:"commit,omitempty"`
	Description string    `json:"description,omitempty"`
	RequestedBy string    `json:"requested_by,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	Deadline    time.Time `json:"deadline,omitzero"`
}

// approvalScan is how many of an app's newest releases are looked at for
// one waiting: a release waits at most one approval timeout, and an app
// runs one operation at a time.
const approvalScan = 5

// listApprovals lists the releases waiting for approval in the stages
// that require it, of the pipelines the caller may see, oldest first.
func (s *Server) listApprovals(c *gin.Context) {
	ctx := c.Request.Context()
	out := []PendingApproval{}
	for _, name := range s.visiblePipelines(c) {
		p := s.Config.Pipelines[name]
		for _, stage := range []string{pipelines.StageStaging, pipelines.StageProduction} {
			st, ok := p.Stages[stage]
			if !ok || !st.RequireApproval {
				continue
			}
			rs, err := s.Ledger.Releases(ctx, st.App, approvalScan)
			if err != nil {
				s.failErr(c, err)
				return
			}
			for _, r := range rs {
				// Only a pending release that no region has seen yet can
				// be at its approval step; the workflow says whether it is.
				if r.Status != pipelines.ReleasePending || r.Operation == "" || slices.ContainsFunc(r.Regions, func(rs pipelines.RegionState) bool {
					return rs.Status != pipelines.RegionPending
				}) {
					continue
				}
				// The ledger keeps "<workflow ID>@<run ID>".
				op, _, _ := strings.Cut(r.Operation, "@")
				w, err := s.Approvals.ApprovalWait(ctx, op)
				if err != nil {
					s.logger().Warn("ask whether a release waits for approval", "operation", op, "error", err)
					continue
				}
				if !w.Waiting {
					continue
				}
				out = append(out, PendingApproval{Operation: op, Pipeline: name, Stage: stage, App: st.App, Release: r.Version,
					Commit: r.Commit, Description: r.Description, RequestedBy: w.RequestedBy, CreatedAt: r.CreatedAt, Deadline: w.Deadline})
			}
		}
	}
	slices.SortStableFunc(out, func(a, b PendingApproval) int { return a.CreatedAt.Compare(b.CreatedAt) })
	c.JSON(http.StatusOK, out)
}
