package web

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/drover/drover/api"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/workflows"
)

// frame is what every signed-in page shows: who is signed in, the form
// token, and what the token may do.
type frame struct {
	User       api.TokenInfo
	CSRF       string
	CanDeploy  bool
	CanApprove bool
	Title      string
}

func newFrame(u user, title string) frame {
	return frame{User: u.info, CSRF: u.csrfToken(), CanDeploy: u.info.May(pipelines.ScopeDeploy), CanApprove: u.info.May(pipelines.ScopeApprove), Title: title}
}

type loginView struct {
	frame
	Next, Message string
}

type errorView struct {
	frame
	Status  int
	Message string
}

// boardView is the pipelines page.
type boardView struct {
	frame
	Pipelines []pipelineView
	Approvals []api.PendingApproval
	// Operation, when set, is the operation whose progress the page
	// follows (after a promote, rollback or approval).
	Operation *api.Operation
}

type pipelineView struct {
	Name, Repo string
	Stages     []stageView
	// Review is nil when the pipeline has no review stage.
	Review *reviewView
}

type reviewView struct {
	Apps []reviewAppView
}

type reviewAppView struct {
	pipelines.ReviewApp
	Info *api.AppInfo
}

type stageView struct {
	Stage, Pipeline, Repo string
	App                   string
	Info                  *api.AppInfo
	RequireApproval       bool
	// Promote is set on staging when the pipeline has a production stage.
	Promote bool
}

// URL is where the stage's app answers: its first region's URL.
func (s stageView) URL() string {
	if s.Info == nil {
		return ""
	}
	for _, w := range s.Info.Where {
		if w.URL != "" {
			return w.URL
		}
	}
	return ""
}

func (p *Page) board(c *gin.Context, u user) {
	ctx := c.Request.Context()
	var ps []api.PipelineInfo
	if err := p.call(ctx, u, http.MethodGet, "/api/v1/pipelines", nil, &ps); err != nil {
		p.fail(c, u, err)
		return
	}
	var apps []api.AppInfo
	if err := p.call(ctx, u, http.MethodGet, "/api/v1/apps", nil, &apps); err != nil {
		p.fail(c, u, err)
		return
	}
	byName := make(map[string]*api.AppInfo, len(apps))
	for i := range apps {
		byName[apps[i].Name] = &apps[i]
	}
	v := boardView{frame: newFrame(u, "Pipelines")}
	for _, pi := range ps {
		pv := pipelineView{Name: pi.Name, Repo: pi.Repo}
		_, hasProd := pi.Stages[pipelines.StageProduction]
		for _, name := range []string{pipelines.StageStaging, pipelines.StageProduction} {
			st, ok := pi.Stages[name]
			if !ok {
				continue
			}
			pv.Stages = append(pv.Stages, stageView{Stage: name, Pipeline: pi.Name, Repo: pi.Repo, App: st.App, Info: byName[st.App],
				RequireApproval: st.RequireApproval, Promote: name == pipelines.StageStaging && hasProd})
		}
		if _, ok := pi.Stages[pipelines.StageReview]; ok {
			var ras []pipelines.ReviewApp
			if err := p.call(ctx, u, http.MethodGet, "/api/v1/pipelines/"+url.PathEscape(pi.Name)+"/review-apps", nil, &ras); err != nil && !notFound(err) {
				p.fail(c, u, err)
				return
			}
			rv := &reviewView{}
			for _, ra := range ras {
				rv.Apps = append(rv.Apps, reviewAppView{ReviewApp: ra, Info: byName[ra.App]})
			}
			pv.Review = rv
		}
		v.Pipelines = append(v.Pipelines, pv)
	}
	// A server without Temporal's approvals (no such route) has none.
	if err := p.call(ctx, u, http.MethodGet, "/api/v1/approvals", nil, &v.Approvals); err != nil && !notFound(err) {
		p.fail(c, u, err)
		return
	}
	if id := c.Query("operation"); id != "" {
		var op api.Operation
		if err := p.call(ctx, u, http.MethodGet, "/api/v1/operations/"+id, nil, &op); err == nil {
			v.Operation = &op
		}
	}
	if c.Query("fragment") == "pipelines" {
		p.renderPart(c, "pipelines", v)
		return
	}
	p.render(c, http.StatusOK, "board", v)
}

// notFound reports whether err is the API's 404.
func notFound(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.status == http.StatusNotFound
}

// historyView is an app's release history.
type historyView struct {
	frame
	App      api.AppInfo
	Repo     string
	Releases []pipelines.Release
	// Current is the version a rollback would leave: the newest succeeded.
	Current int
}

// historyLimit is how many releases the history shows.
const historyLimit = 100

func (p *Page) history(c *gin.Context, u user) {
	ctx := c.Request.Context()
	name := url.PathEscape(c.Param("app"))
	v := historyView{frame: newFrame(u, c.Param("app"))}
	if err := p.call(ctx, u, http.MethodGet, "/api/v1/apps/"+name, nil, &v.App); err != nil {
		p.fail(c, u, err)
		return
	}
	if err := p.call(ctx, u, http.MethodGet, "/api/v1/apps/"+name+"/releases?limit="+strconv.Itoa(historyLimit), nil, &v.Releases); err != nil {
		p.fail(c, u, err)
		return
	}
	v.Repo = v.App.Repo
	if v.App.Current != nil {
		v.Current = v.App.Current.Version
	}
	p.render(c, http.StatusOK, "history", v)
}

// previewView shows what a promotion or rollback would change, with the
// form that goes ahead.
type previewView struct {
	frame
	Preview  api.PromotionPreview
	Rollback bool
	// Action is the form's target; Release its release field.
	Action, Release string
	RunReleasePhase bool
}

func (p *Page) promotePreview(c *gin.Context, u user) {
	pl := url.PathEscape(c.Param("pipeline"))
	p.showPreview(c, u, previewView{frame: newFrame(u, "Promote "+c.Param("pipeline")), Action: "/pipelines/" + pl + "/promote"},
		"/api/v1/pipelines/"+pl+"/promote/preview")
}

func (p *Page) rollbackPreview(c *gin.Context, u user) {
	app := url.PathEscape(c.Param("app"))
	p.showPreview(c, u, previewView{frame: newFrame(u, "Roll back "+c.Param("app")), Rollback: true, Action: "/apps/" + app + "/rollback",
		RunReleasePhase: c.Query("run_release_phase") == "true"}, "/api/v1/apps/"+app+"/rollback/preview")
}

// showPreview reads the API's preview at path, for the release and
// release phase the page was asked about, and shows it with v's form.
func (p *Page) showPreview(c *gin.Context, u user, v previewView, path string) {
	q := url.Values{}
	if r := c.Query("release"); r != "" {
		q.Set("release", r)
	}
	if v.RunReleasePhase {
		q.Set("run_release_phase", "true")
	}
	if err := p.call(c.Request.Context(), u, http.MethodGet, path+"?"+q.Encode(), nil, &v.Preview); err != nil {
		p.fail(c, u, err)
		return
	}
	v.Release = "v" + strconv.Itoa(v.Preview.From.Version)
	p.render(c, http.StatusOK, "preview", v)
}

func (p *Page) promote(c *gin.Context, u user) {
	p.queue(c, u, "/api/v1/pipelines/"+url.PathEscape(c.Param("pipeline"))+"/promote", map[string]any{"release": c.PostForm("release")})
}

func (p *Page) rollback(c *gin.Context, u user) {
	p.queue(c, u, "/api/v1/apps/"+url.PathEscape(c.Param("app"))+"/rollback",
		map[string]any{"release": c.PostForm("release"), "run_release_phase": c.PostForm("run_release_phase") == "true"})
}

// queue asks the API at path to queue an operation, then shows the board
// following it.
func (p *Page) queue(c *gin.Context, u user, path string, body map[string]any) {
	var op api.Operation
	if err := p.call(c.Request.Context(), u, http.MethodPost, path, body, &op); err != nil {
		p.fail(c, u, err)
		return
	}
	follow(c, op.ID)
}

// follow shows the board following operation id.
func follow(c *gin.Context, id string) {
	c.Redirect(http.StatusSeeOther, "/?operation="+url.QueryEscape(id))
}

func (p *Page) approve(c *gin.Context, u user) {
	id := c.PostForm("operation")
	body := map[string]any{"operation": id, "approved": c.PostForm("decision") == "approve"}
	if err := p.call(c.Request.Context(), u, http.MethodPost, "/api/v1/approvals", body, nil); err != nil {
		p.fail(c, u, err)
		return
	}
	follow(c, id)
}

// funcs are the templates' helpers.
func (p *Page) funcs() template.FuncMap {
	gh := strings.TrimRight(p.GitHub, "/")
	if gh == "" {
		gh = "https://github.com"
	}
	return template.FuncMap{
		"short": func(s string) string {
			if len(s) > 7 {
				return s[:7]
			}
			return s
		},
		"digest": func(s string) string {
			s = strings.TrimPrefix(s, "sha256:")
			if len(s) > 12 {
				return s[:12]
			}
			return s
		},
		"commitURL": func(repo, sha string) string {
			if repo == "" || sha == "" {
				return ""
			}
			return gh + "/" + repo + "/commit/" + url.PathEscape(sha)
		},
		"repoURL": func(repo string) string { return gh + "/" + repo },
		"dict": func(kv ...any) (map[string]any, error) {
			if len(kv)%2 != 0 {
				return nil, fmt.Errorf("dict wants key, value pairs")
			}
			m := make(map[string]any, len(kv)/2)
			for i := 0; i < len(kv); i += 2 {
				k, ok := kv[i].(string)
				if !ok {
					return nil, fmt.Errorf("dict key %v is not a string", kv[i])
				}
				m[k] = kv[i+1]
			}
			return m, nil
		},
		"prURL": func(repo string, n int) string { return fmt.Sprintf("%s/%s/pull/%d", gh, repo, n) },
		"temporalURL": func(id string) string {
			if p.TemporalUI == "" || id == "" {
				return ""
			}
			ns := p.Namespace
			if ns == "" {
				ns = "default"
			}
			// The ledger names a release's operation "<workflow ID>@<run ID>".
			id, run, _ := strings.Cut(id, "@")
			u := strings.TrimRight(p.TemporalUI, "/") + "/namespaces/" + url.PathEscape(ns) + "/workflows/" + url.PathEscape(id)
			if run != "" {
				u += "/" + url.PathEscape(run) + "/history"
			}
			return u
		},
		"ago":      p.ago,
		"stamp":    func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"asset":    func(name string) string { return "/assets/" + name + "?v=" + p.assets[name].digest },
		"dot":      dotClass,
		"progress": progressLines,
		"done": func(op *api.Operation) bool {
			return op != nil && (op.State == workflows.OperationSucceeded || op.State == workflows.OperationFailed)
		},
		"firstLine": func(s string) string {
			if i := strings.IndexByte(s, '\n'); i >= 0 {
				return s[:i]
			}
			return s
		},
		"join": strings.Join,
	}
}

// ago is how long ago t was, as people say it.
func (p *Page) ago(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := p.now().Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// dotClass is the colour class of a region's status dot.
func dotClass(st pipelines.RegionStatus) string {
	switch st {
	case pipelines.RegionSuccessful:
		return "ok"
	case pipelines.RegionFailed, pipelines.RegionReverted:
		return "bad"
	case pipelines.RegionRunning, pipelines.RegionPending:
		return "busy"
	}
	return "none"
}

// progressLines are an operation's lines as `drover operations watch`
// prints them: its release, then one line per region.
func progressLines(op *api.Operation) []string {
	if op == nil {
		return nil
	}
	head := op.Kind + " " + op.App + ": " + op.State
	if op.Error != "" {
		head += " (" + op.Error + ")"
	}
	return append([]string{head}, op.Lines()...)
}
