package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/gin-gonic/gin"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
	"github.com/drover/drover/workflows"
)

// PromotionPreview is what a promotion would change, before anything
// does: GET /api/v1/pipelines/PIPELINE/promote/preview?release=vN.
type PromotionPreview struct {
	Pipeline string `json:"pipeline"`
	// Repo is the pipeline's GitHub repository, whose commits these are.
	Repo string `json:"repo"`
	// From is the staging release that would be promoted.
	From PreviewRelease `json:"from"`
	// To is the production app and the release it runs now (Version 0:
	// it has none yet).
	To PreviewRelease `json:"to"`
	// Commits are between the release To runs and From's.
	Commits CommitRange `json:"commits"`
	// Config names the config vars that differ between the two apps,
	// never their values: production keeps its own config.
	Config pipelines.KeyDiff `json:"config"`
	// Formation lists the process types whose counts the new release
	// changes in production; empty when it runs what runs now.
	Formation []pipelines.FormationChange `json:"formation"`
	// ReleasePhase says whether the release phase (the Procfile's release
	// command) would run, and which command.
	ReleasePhase *PreviewCommand `json:"release_phase,omitempty"`
	// Regions are production's regions, in rollout order, with what each
	// would start and stop, and for Nomad regions Nomad's own plan.
	Regions []RegionPreview `json:"regions"`
	// Warnings say what would go wrong if the release went ahead, such as
	// "region eu: web: 2 allocations cannot be placed: resources
	// exhausted on 1 node (memory)": a rollout of it would not become
	// healthy there.
	Warnings []string `json:"warnings"`
}

// PreviewRelease is one side of a preview.
type PreviewRelease struct {
	App     string `json:"app"`
	Version int    `json:"version,omitempty"`
	Commit  string `json:"commit,omitempty"`
	Slug    string `json:"slug,omitempty"`
}

// CommitRange is the commits a promotion brings to production: Base is
// the commit production runs, Head the one it would run. Compared says
// whether GitHub listed the commits between; without GitHub only the two
// ends are known.
type CommitRange struct {
	Base     string          `json:"base,omitempty"`
	Head     string          `json:"head"`
	Compared bool            `json:"compared"`
	Count    int             `json:"count"`
	Commits  []PreviewCommit `json:"commits"`
	Note     string          `json:"note,omitempty"`
}

// PreviewCommit is one commit of a CommitRange.
type PreviewCommit struct {
	SHA     string `json:"sha"`
	Author  string `json:"author"`
	Message string `json:"message"`
}

// PreviewCommand is the release phase a preview says would run.
type PreviewCommand struct {
	Command string `json:"command"`
}

// RegionPreview is what a release would do in one region: the processes
// it would start (type.N of the new release) and stop (the current one's)
// and, in a Nomad region, Nomad's own plan of the job drover would
// register (Plan), or why there is none (Error).
type RegionPreview struct {
	Region string        `json:"region"`
	Driver string        `json:"driver"`
	Start  []string      `json:"start"`
	Stop   []string      `json:"stop"`
	Plan   *regions.Plan `json:"plan,omitempty"`
	Error  string        `json:"error,omitempty"`
}

// Planner asks regions' schedulers what a release that does not exist yet
// would do there (a dry run: nothing is registered); id names that
// one-off workflow (workflows.PlanWorkflowID). A region that cannot plan
// is a RegionPlan with its Error, not an error.
type Planner interface {
	Plan(ctx context.Context, id string, rel pipelines.Release, regions []string) ([]workflows.RegionPlan, error)
}

// Comparer reads what lies between two commits of a repository (GitHub's
// compare API).
type Comparer interface {
	Compare(ctx context.Context, repo, base, head string) (pipelines.Comparison, error)
}

func (s *Server) promotePreview(c *gin.Context) {
	p, from, to, ok := s.promotion(c)
	if !ok {
		return
	}
	version, ok := s.optionalVersion(c, c.Query("release"))
	if !ok {
		return
	}
	ctx := c.Request.Context()
	var src pipelines.Release
	var err error
	if version == 0 {
		src, err = s.Ledger.CurrentRelease(ctx, from.App)
		if errors.Is(err, pipelines.ErrNotFound) {
			fail(c, http.StatusConflict, "conflict", from.App+" has no succeeded release yet; deploy it first")
			return
		}
	} else {
		src, err = s.Ledger.Release(ctx, from.App, version)
	}
	if err != nil {
		s.failErr(c, err)
		return
	}
	if src.Status != pipelines.ReleaseSucceeded {
		fail(c, http.StatusConflict, "conflict", fmt.Sprintf("%s %s is %s; only a succeeded release can be promoted", from.App, src.Name(), src.Status))
		return
	}
	current, ok := s.currentRelease(c, to.App)
	if !ok {
		return
	}
	fromVars, err := s.Ledger.ConfigVars(ctx, from.App)
	if err != nil {
		s.failErr(c, err)
		return
	}
	s.answerPreview(c, previewSpec{pipeline: p, fromApp: from.App, toApp: to.App, src: src, current: current,
		fromVars: fromVars.Vars, releasePhase: true, regions: to.Regions})
}

// rollbackPreview is what rolling APP back to ?release=vN (default: the
// release before the current one) would change: GET
// /api/v1/apps/APP/rollback/preview. The release phase runs only with
// ?run_release_phase=true, as the rollback itself.
func (s *Server) rollbackPreview(c *gin.Context) {
	app, ok := s.app(c)
	if !ok || !allowed(c, app.Pipeline) {
		return
	}
	version, ok := s.optionalVersion(c, c.Query("release"))
	if !ok {
		return
	}
	ctx := c.Request.Context()
	var target pipelines.Release
	var err error
	if version > 0 {
		target, err = s.Ledger.Release(ctx, app.Name, version)
		if err != nil {
			s.failErr(c, err)
			return
		}
	} else {
		rs, err := s.Ledger.Releases(ctx, app.Name, 0)
		if err != nil {
			s.failErr(c, err)
			return
		}
		if target, ok = pipelines.RollbackTarget(rs); !ok {
			fail(c, http.StatusConflict, "conflict", app.Name+" has no earlier succeeded release to roll back to")
			return
		}
	}
	current, ok := s.currentRelease(c, app.Name)
	if !ok {
		return
	}
	// A rollback brings back the old release's config too.
	fromVars, err := s.Ledger.ConfigVarsAt(ctx, app.Name, target.ConfigVersion)
	if err != nil {
		s.failErr(c, err)
		return
	}
	s.answerPreview(c, previewSpec{pipeline: s.Config.Pipelines[app.Pipeline], fromApp: app.Name, toApp: app.Name, src: target, current: current,
		rollback: true, fromVars: fromVars.Vars, releasePhase: c.Query("run_release_phase") == "true", regions: app.Regions})
}

// currentRelease is app's current release, or nil when it has none.
func (s *Server) currentRelease(c *gin.Context, app string) (*pipelines.Release, bool) {
	cur, err := s.Ledger.CurrentRelease(c.Request.Context(), app)
	switch {
	case err == nil:
		return &cur, true
	case errors.Is(err, pipelines.ErrNotFound):
		return nil, true
	}
	s.failErr(c, err)
	return nil, false
}

// previewSpec is what a preview compares: src, the release whose slug
// would run in toApp (from fromApp, with fromVars), against toApp's
// current release.
type previewSpec struct {
	pipeline       pipelines.Pipeline
	fromApp, toApp string
	src            pipelines.Release
	current        *pipelines.Release
	// rollback: src's own formation and config come back with its slug.
	rollback     bool
	fromVars     map[string]string
	releasePhase bool
	regions      []string
}

func (s *Server) answerPreview(c *gin.Context, spec previewSpec) {
	ctx := c.Request.Context()
	src, current := spec.src, spec.current
	var back *pipelines.Release
	if spec.rollback {
		back = &src
	}
	next, err := pipelines.NextFormation(src.Procfile, current, back, nil, nil)
	if err != nil {
		fail(c, http.StatusBadRequest, "invalid", spec.toApp+" has "+err.Error())
		return
	}
	toVars, err := s.Ledger.ConfigVars(ctx, spec.toApp)
	if err != nil {
		s.failErr(c, err)
		return
	}
	out := PromotionPreview{
		Pipeline: spec.pipeline.Name,
		Repo:     spec.pipeline.Repo,
		From:     PreviewRelease{App: spec.fromApp, Version: src.Version, Commit: src.Commit, Slug: src.Slug},
		To:       PreviewRelease{App: spec.toApp},
		Commits:  CommitRange{Head: src.Commit, Commits: []PreviewCommit{}},
		Config:   pipelines.DiffKeys(spec.fromVars, toVars.Vars),
	}
	to := spec.toApp
	var was pipelines.Formation
	if current != nil {
		out.To.Version, out.To.Commit, out.To.Slug = current.Version, current.Commit, current.Slug
		out.Commits.Base = current.Commit
		was = current.Formation
	}
	out.Formation = pipelines.DiffFormation(was, next)
	if out.Formation == nil {
		out.Formation = []pipelines.FormationChange{}
	}
	if cmd, ok := src.Procfile.Command(pipelines.ReleaseProcess); ok && spec.releasePhase {
		out.ReleasePhase = &PreviewCommand{Command: cmd}
	}
	switch {
	case out.Commits.Base == "":
		out.Commits.Note = to + " runs no release yet: everything up to " + shortSHA(src.Commit) + " is new to it"
	case out.Commits.Base == out.Commits.Head:
		out.Commits.Compared, out.Commits.Note = true, to+" already runs "+shortSHA(src.Commit)
	case s.Commits == nil:
		out.Commits.Note = "drover has no GitHub credentials to list the commits between " + shortSHA(out.Commits.Base) + " and " + shortSHA(out.Commits.Head)
	default:
		cmp, err := s.Commits.Compare(ctx, spec.pipeline.Repo, out.Commits.Base, out.Commits.Head)
		if err != nil {
			// The preview still answers: the commits are one part of it.
			s.logger().Warn("compare commits for a preview", "pipeline", spec.pipeline.Name, "error", err)
			out.Commits.Note = "could not read the commits between " + shortSHA(out.Commits.Base) + " and " + shortSHA(out.Commits.Head) + " from GitHub: " + err.Error()
			break
		}
		out.Commits.Compared, out.Commits.Count = true, cmp.Total
		for _, pc := range cmp.Commits {
			out.Commits.Commits = append(out.Commits.Commits, PreviewCommit{SHA: pc.SHA, Author: pc.Author, Message: pc.Message})
		}
		switch cmp.Status {
		case "behind":
			out.Commits.Note = fmt.Sprintf("%s is behind what %s runs: this takes %s back", shortSHA(out.Commits.Head), to, to)
		case "diverged":
			out.Commits.Note = fmt.Sprintf("%s and what %s runs have diverged: %d commits are new to %s, and those only it runs would be left out", shortSHA(out.Commits.Head), to, cmp.Total, to)
		}
	}
	nextVersion := "the new release"
	out.Warnings = []string{}
	plans := s.plans(c, spec, next, toVars.Version)
	for _, region := range spec.regions {
		rp := RegionPreview{Region: region, Driver: s.Config.Regions[region].Driver, Start: processes(next, nextVersion), Stop: []string{}}
		if current != nil && slices.ContainsFunc(current.Regions, func(st pipelines.RegionState) bool {
			return st.Region == region && st.Status == pipelines.RegionSuccessful
		}) {
			rp.Stop = processes(current.Formation, current.Name())
		}
		if p, ok := plans[region]; ok {
			rp.Plan, rp.Error = p.Plan, p.Error
			if p.Plan != nil {
				for _, f := range p.Plan.Failures {
					out.Warnings = append(out.Warnings, fmt.Sprintf("region %s: %s: %s", region, f.Group, f.Reason))
				}
			}
		}
		out.Regions = append(out.Regions, rp)
	}
	c.JSON(http.StatusOK, out)
}

// plans asks the Nomad regions of spec what the release the preview
// describes would do there, by region name. The preview answers whatever
// the planner says: a plan that could not be made is each region's
// Error, and is logged.
func (s *Server) plans(c *gin.Context, spec previewSpec, next pipelines.Formation, toConfig int) map[string]workflows.RegionPlan {
	var nomad []string
	for _, region := range spec.regions {
		if s.Config.Regions[region].Driver == pipelines.DriverNomad {
			nomad = append(nomad, region)
		}
	}
	if s.Plans == nil || len(nomad) == 0 {
		return nil
	}
	ctx := c.Request.Context()
	// The release the operation would make: src's slug and Procfile in
	// the to-app, numbered after its current release, with the to-app's
	// own config (toConfig) for a promotion and src's for a rollback.
	src := spec.src
	rel := pipelines.Release{App: spec.toApp, Version: 1, Slug: src.Slug, Commit: src.Commit, Procfile: src.Procfile,
		Formation: next, ConfigVersion: src.ConfigVersion}
	if spec.current != nil {
		rel.Version = spec.current.Version + 1
	}
	if !spec.rollback {
		rel.ConfigVersion = toConfig
	}
	got, err := s.Plans.Plan(ctx, workflows.PlanWorkflowID(spec.toApp, nonce()), rel, nomad)
	if err != nil {
		s.logger().Warn("plan a release for a preview", "app", spec.toApp, "error", err)
		return planError(nomad, err)
	}
	out := make(map[string]workflows.RegionPlan, len(got))
	for _, p := range got {
		out[p.Region] = p
	}
	return out
}

// planError is err as the answer of every region in names.
func planError(names []string, err error) map[string]workflows.RegionPlan {
	out := make(map[string]workflows.RegionPlan, len(names))
	for _, n := range names {
		out[n] = workflows.RegionPlan{Region: n, Error: "could not plan: " + err.Error()}
	}
	return out
}

// processes names f's processes (web.1, web.2, worker.1), of release.
func processes(f pipelines.Formation, release string) []string {
	out := []string{}
	for _, typ := range f.Types() {
		for i := 1; i <= f[typ]; i++ {
			out = append(out, fmt.Sprintf("%s.%d (%s)", typ, i, release))
		}
	}
	return out
}

// shortSHA is a commit's first 12 hex digits, as the CLI shows them.
func shortSHA(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
