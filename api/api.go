// Package api is drover's REST API under /api/v1, used by the CLI and any
// UI. Every route but /healthz needs a bearer token.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/drover/drover/deployments"
	"github.com/drover/drover/pipelines"
)

// Ledger is the part of the store the API reads and writes.
type Ledger interface {
	App(ctx context.Context, name string) (pipelines.App, error)
	Apps(ctx context.Context) ([]pipelines.App, error)
	Release(ctx context.Context, app string, version int) (pipelines.Release, error)
	Releases(ctx context.Context, app string, limit int) ([]pipelines.Release, error)
	CurrentRelease(ctx context.Context, app string) (pipelines.Release, error)
	ReleaseByOperation(ctx context.Context, app, operation string) (pipelines.Release, error)
	FindBuild(ctx context.Context, repo, commit string) (deployments.Build, error)
	ConfigVars(ctx context.Context, app string) (pipelines.ConfigVars, error)
	ConfigVarsAt(ctx context.Context, app string, version int) (pipelines.ConfigVars, error)
	SetConfigVars(ctx context.Context, app string, set map[string]string, unset []string) (pipelines.ConfigVars, error)
	LiveOutput(ctx context.Context, step string) (output string, total int64, err error)
}

// Server holds the API's dependencies.
type Server struct {
	Ledger Ledger
	// Config and Operations enable promote, rollback and operations.
	Config     *pipelines.Config
	Operations Operations
	// Reviews and ReviewOps enable the review app endpoints.
	Reviews   ReviewLedger
	ReviewOps ReviewStarter
	// PullRequests, when set (drover has GitHub credentials), makes a
	// review app created on purpose deploy exactly the reviewed commit.
	PullRequests PullRequestReader
	// Approvals, when set, enables GET /api/v1/approvals.
	Approvals ApprovalWaits
	// Commits, when set (drover has GitHub credentials), lists the commits
	// a promotion preview would bring.
	Commits Comparer
	// Plans, when set, puts each Nomad region's own plan of the release
	// into the promotion and rollback previews.
	Plans Planner
	// Tokens are the bearer tokens allowed to call the API.
	Tokens []Token
	// LiveURL, when set, says where app answers in region now (ok false:
	// the region cannot say, so the URL recorded at release time stands).
	// Scheduler regions replace allocations after a release; the URL
	// shown must follow them.
	LiveURL func(ctx context.Context, app, region string) (url string, ok bool)
	// LogReaders, when set, enables GET /api/v1/apps/APP/logs.
	LogReaders LogReaders
	// Runs and RunRegions, when set, enable one-off runs (`drover run`).
	Runs       RunLedger
	RunRegions RunRegions
	Logger     *slog.Logger
}

// Token is one bearer token and what it may reach.
type Token struct {
	Name string
	// Value is the token in clear, or "" when Hash is set.
	Value string
	// Hash, when set, is the token's argon2id hash (api.tokens[].token_hash).
	Hash *pipelines.TokenHash
	// Pipelines the token may act on; nil means all (an admin token).
	Pipelines []string
	// Scopes are what it may do (pipelines.Scope*); nil means everything.
	Scopes []string
}

// may reports whether the token has scope.
func (t Token) may(scope string) bool {
	return t.Scopes == nil || slices.Contains(t.Scopes, scope) || slices.Contains(t.Scopes, pipelines.ScopeAdmin)
}

// need lets through callers whose token has scope, and answers 403
// naming the missing scope otherwise.
func need(scope string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if t := caller(c); !t.may(scope) {
			fail(c, http.StatusForbidden, "forbidden", fmt.Sprintf("token %q lacks the %s scope", t.Name, scope))
			return
		}
		c.Next()
	}
}

func (t Token) allows(pipeline string) bool {
	if t.Pipelines == nil {
		return true
	}
	for _, p := range t.Pipelines {
		if p == pipeline {
			return true
		}
	}
	return false
}

// callerKey is where auth leaves the caller's token in the gin context.
const callerKey = "drover.caller"

func caller(c *gin.Context) Token {
	t, _ := c.Get(callerKey)
	tok, _ := t.(Token)
	return tok
}

// Register mounts /healthz and /api/v1 on r.
func (s *Server) Register(r *gin.Engine) {
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	v1 := r.Group("/api/v1", BearerAuth(s.Tokens))
	v1.GET("/token", whoami)
	read, config := v1.Group("", need(pipelines.ScopeRead)), v1.Group("", need(pipelines.ScopeConfig))
	read.GET("/apps", s.listApps)
	read.GET("/apps/:app", s.getApp)
	read.GET("/apps/:app/releases", s.listReleases)
	read.GET("/apps/:app/logs", s.logs)
	read.GET("/apps/:app/releases/:version", s.getRelease)
	read.GET("/apps/:app/releases/:version/build", s.getBuild)
	read.GET("/apps/:app/builds/:commit", s.getCommitBuild)
	v1.GET("/apps/:app/config", s.getConfig) // names with read, values with config
	config.PATCH("/apps/:app/config", s.patchConfig)
	deploy := v1.Group("", need(pipelines.ScopeDeploy))
	s.registerOperations(read, deploy, v1.Group("", need(pipelines.ScopeApprove)))
	s.registerReviewApps(read, deploy)
	s.registerRuns(read, deploy)
}

// TokenInfo is what GET /api/v1/token says of the caller's own token:
// its name, the scopes it has and the pipelines it may act on (nil: all),
// so a client shows only what the token may do.
type TokenInfo struct {
	Name      string   `json:"name"`
	Scopes    []string `json:"scopes"`
	Pipelines []string `json:"pipelines,omitempty"`
}

// May reports whether the token has scope.
func (t TokenInfo) May(scope string) bool {
	return slices.Contains(t.Scopes, scope) || slices.Contains(t.Scopes, pipelines.ScopeAdmin)
}

func whoami(c *gin.Context) {
	t := caller(c)
	info := TokenInfo{Name: t.Name, Scopes: t.Scopes, Pipelines: t.Pipelines}
	if info.Scopes == nil {
		info.Scopes = []string{pipelines.ScopeAdmin}
	}
	c.JSON(http.StatusOK, info)
}

// Error is the body of every error answer.
type Error struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody says what went wrong, with a stable code scripts can test.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func fail(c *gin.Context, status int, code, msg string) {
	c.AbortWithStatusJSON(status, Error{Error: ErrorBody{Code: code, Message: msg}})
}

// failErr maps domain errors to HTTP status, here at the edge only.
func (s *Server) failErr(c *gin.Context, err error) {
	switch {
	case errors.Is(err, pipelines.ErrNotFound):
		fail(c, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, pipelines.ErrInvalid):
		fail(c, http.StatusBadRequest, "invalid", err.Error())
	case errors.Is(err, pipelines.ErrConflict):
		fail(c, http.StatusConflict, "conflict", err.Error())
	case errors.Is(err, pipelines.ErrForbidden):
		fail(c, http.StatusForbidden, "forbidden", err.Error())
	default:
		s.logger().Error("api", "path", c.FullPath(), "error", err)
		fail(c, http.StatusInternalServerError, "internal", "internal error; see drover's log")
	}
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.Default()
	}
	return s.Logger
}

// BearerAuth is gin middleware that lets through requests bearing one of
// tokens (401 otherwise), and leaves the caller's token for the handlers.
func BearerAuth(tokens []Token) gin.HandlerFunc {
	a := newAuthenticator(tokens)
	return func(c *gin.Context) {
		t, ok := a.authenticate(c)
		if !ok {
			return
		}
		c.Set(callerKey, t)
		c.Next()
	}
}

// app loads the :app of the route and checks the caller may act on its
// pipeline: 404 if there is no such app, 403 if the token is not for it.
func (s *Server) app(c *gin.Context) (pipelines.App, bool) {
	app, err := s.Ledger.App(c.Request.Context(), c.Param("app"))
	if err != nil {
		s.failErr(c, err)
		return app, false
	}
	return app, allowed(c, app.Pipeline)
}

// allowed checks the caller may act on pipeline, answering 403 if not.
func allowed(c *gin.Context, pipeline string) bool {
	if t := caller(c); !t.allows(pipeline) {
		fail(c, http.StatusForbidden, "forbidden", "token "+strconv.Quote(t.Name)+" is not allowed on pipeline "+strconv.Quote(pipeline))
		return false
	}
	return true
}

// RegionInfo is where an app runs in one region.
type RegionInfo struct {
	Region string `json:"region"`
	// Release is the release the region runs: the newest that succeeded
	// there. It is not always the current one: fail_local leaves a failed
	// region on the release before, and a rollout that stops at a failed
	// region leaves the regions before it on the failed release.
	Release int `json:"release,omitempty"`
	// Status and Message are what the newest release that reached the
	// region did there, and why: "failed" with the app's exit while the
	// region runs the release before, "running" during a rollout.
	Status  pipelines.RegionStatus `json:"status,omitempty"`
	Message string                 `json:"message,omitempty"`
	URL     string                 `json:"url,omitempty"`
}

// AppInfo is an app with its current release and where it answers.
type AppInfo struct {
	pipelines.App
	Current *pipelines.Release `json:"current_release,omitempty"`
	Where   []RegionInfo       `json:"region_status"`
}

func (s *Server) appInfo(ctx context.Context, app pipelines.App) (AppInfo, error) {
	info := AppInfo{App: app, Where: []RegionInfo{}}
	cur, err := s.Ledger.CurrentRelease(ctx, app.Name)
	if err != nil && !errors.Is(err, pipelines.ErrNotFound) {
		return info, err
	}
	if err == nil {
		info.Current = &cur
	}
	running, err := s.runningReleases(ctx, app)
	if err != nil {
		return info, err
	}
	for _, region := range app.Regions {
		ri := RegionInfo{Region: region}
		if v, ok := running[region]; ok {
			ri.Release, ri.URL, ri.Status, ri.Message = v.runs, v.url, v.last.Status, v.last.Message
		}
		if s.LiveURL != nil && ri.Release > 0 {
			lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			if u, ok := s.LiveURL(lctx, app.Name, region); ok {
				ri.URL = u
			}
			cancel()
		}
		info.Where = append(info.Where, ri)
	}
	return info, nil
}

// regionView is what the ledger says of one region: the release it runs
// and its URL, and the newest release's state there.
type regionView struct {
	runs int
	url  string
	last pipelines.RegionState
}

// runningReleases finds, per region of app, the newest release that
// succeeded there (what the region runs, whatever the release's own end)
// and the newest that reached it. The newest releases are read first, and
// all of them only when a region has not succeeded in any of those.
func (s *Server) runningReleases(ctx context.Context, app pipelines.App) (map[string]regionView, error) {
	const recent = 20
	rs, err := s.Ledger.Releases(ctx, app.Name, recent)
	if err != nil {
		return nil, err
	}
	views, runs := viewRegions(rs)
	if runs < len(app.Regions) && len(rs) == recent {
		if rs, err = s.Ledger.Releases(ctx, app.Name, 0); err != nil {
			return nil, err
		}
		views, _ = viewRegions(rs)
	}
	return views, nil
}

// viewRegions reads rs, newest first, and says how many regions run one
// of them.
func viewRegions(rs []pipelines.Release) (views map[string]regionView, runs int) {
	views = map[string]regionView{}
	for _, r := range rs {
		for _, st := range r.Regions {
			v, seen := views[st.Region]
			if !seen && st.Status != pipelines.RegionPending {
				v.last = st
			}
			if v.runs == 0 && st.Status == pipelines.RegionSuccessful {
				v.runs, v.url = r.Version, st.URL
				runs++
			}
			if seen || st.Status != pipelines.RegionPending {
				views[st.Region] = v
			}
		}
	}
	return views, runs
}

func (s *Server) listApps(c *gin.Context) {
	apps, err := s.Ledger.Apps(c.Request.Context())
	if err != nil {
		s.failErr(c, err)
		return
	}
	out := []AppInfo{}
	for _, app := range apps {
		if !caller(c).allows(app.Pipeline) {
			continue
		}
		info, err := s.appInfo(c.Request.Context(), app)
		if err != nil {
			s.failErr(c, err)
			return
		}
		out = append(out, info)
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) getApp(c *gin.Context) {
	app, ok := s.app(c)
	if !ok {
		return
	}
	info, err := s.appInfo(c.Request.Context(), app)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, info)
}

func (s *Server) listReleases(c *gin.Context) {
	if _, ok := s.app(c); !ok {
		return
	}
	limit, _ := strconv.Atoi(c.Query("limit"))
	rs, err := s.Ledger.Releases(c.Request.Context(), c.Param("app"), limit)
	if err != nil {
		s.failErr(c, err)
		return
	}
	if rs == nil {
		rs = []pipelines.Release{}
	}
	for i := range rs {
		rs[i].Output = "" // kept for the one-release view, not the list
	}
	c.JSON(http.StatusOK, rs)
}

func (s *Server) release(c *gin.Context) (pipelines.App, pipelines.Release, bool) {
	app, ok := s.app(c)
	if !ok {
		return app, pipelines.Release{}, false
	}
	v, err := pipelines.ParseVersion(c.Param("version"))
	if err != nil {
		s.failErr(c, err)
		return app, pipelines.Release{}, false
	}
	r, err := s.Ledger.Release(c.Request.Context(), app.Name, v)
	if err != nil {
		s.failErr(c, err)
		return app, r, false
	}
	return app, r, true
}

func (s *Server) getRelease(c *gin.Context) {
	if _, r, ok := s.release(c); ok {
		c.JSON(http.StatusOK, r)
	}
}

func (s *Server) getBuild(c *gin.Context) {
	app, r, ok := s.release(c)
	if !ok {
		return
	}
	b, err := s.Ledger.FindBuild(c.Request.Context(), app.Repo, r.Commit)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, b)
}

// getCommitBuild shows the build of a commit, failed ones included: a
// failed build makes no release, so this is where its output is read.
func (s *Server) getCommitBuild(c *gin.Context) {
	app, ok := s.app(c)
	if !ok {
		return
	}
	b, err := s.Ledger.FindBuild(c.Request.Context(), app.Repo, c.Param("commit"))
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, b)
}

func (s *Server) getConfig(c *gin.Context) {
	if _, ok := s.app(c); !ok {
		return
	}
	t := caller(c)
	if !t.may(pipelines.ScopeRead) && !t.may(pipelines.ScopeConfig) {
		fail(c, http.StatusForbidden, "forbidden", fmt.Sprintf("token %q lacks the read or config scope", t.Name))
		return
	}
	cv, err := s.Ledger.ConfigVars(c.Request.Context(), c.Param("app"))
	if err != nil {
		s.failErr(c, err)
		return
	}
	// Without the config scope a token sees which vars are set, not
	// their values.
	if !t.may(pipelines.ScopeConfig) {
		for k := range cv.Vars {
			cv.Vars[k] = ""
		}
	}
	c.JSON(http.StatusOK, cv)
}

// patchConfig sets the keys given with a string value and removes those
// given as null; the new config reaches the app with its next release.
func (s *Server) patchConfig(c *gin.Context) {
	if _, ok := s.app(c); !ok {
		return
	}
	var body map[string]*string
	if err := c.ShouldBindJSON(&body); err != nil {
		fail(c, http.StatusBadRequest, "invalid", "body must be a JSON object of KEY: \"value\" (or null to unset)")
		return
	}
	set, unset := map[string]string{}, []string{}
	for k, v := range body {
		if !pipelines.ValidEnvName(k) {
			fail(c, http.StatusBadRequest, "invalid", "config var name "+strconv.Quote(k)+" must be letters, digits and '_', not starting with a digit")
			return
		}
		if v == nil {
			unset = append(unset, k)
		} else {
			set[k] = *v
		}
	}
	cv, err := s.Ledger.SetConfigVars(c.Request.Context(), c.Param("app"), set, unset)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, cv)
}
