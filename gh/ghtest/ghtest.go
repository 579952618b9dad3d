// Package ghtest is a stand-in for the parts of GitHub's REST API that
// drover uses, for tests. It keeps state as GitHub does, so what drover
// writes is what drover later reads: a commit status drover posts joins
// that commit's combined status (latest per context) and its statuses
// list; deployments drover creates are listed with GitHub's filters;
// comments drover makes can be listed, edited and deleted. Lists page the
// way GitHub's do (per_page, default 30, at most 100, and a Link header).
//
// Each behaviour follows GitHub's REST documentation for the endpoint:
//   - GET /repos/{o}/{r}/commits/{ref}/status: the most recent status per
//     context; state is failure if any is error or failure, pending if
//     there are none or any is pending, success otherwise.
//   - GET /repos/{o}/{r}/commits/{ref}/statuses: every status, newest
//     first.
//   - GET /repos/{o}/{r}/commits/{ref}/check-runs: filter=latest (the
//     default) keeps the most recent run per name; filter=all keeps all.
//   - GET /repos/{o}/{r}/deployments: filtered by sha, ref, task and
//     environment, newest first.
//   - GET /repos/{o}/{r}/issues/{n}/comments: by ascending ID.
//
// It serves under an Enterprise base path (/api/v3/), as GitHub Enterprise
// Server does, and accepts one token.
package ghtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Token is the token the stand-in accepts unless New is told another.
const Token = "ghtest-token"

// Server is a running GitHub API stand-in.
type Server struct {
	// URL is the API base URL, ending in /api/v3/, for gh.NewTokenAuth.
	URL   string
	srv   *httptest.Server
	t     testing.TB
	token string

	mu        sync.Mutex
	repos     map[string]*repo // by lowercase full name
	nextID    int64
	clock     time.Time
	reads     map[string]int // "check-runs", "status", ... → reads
	rateLimit int            // answer this many more calls with a rate limit
	before    func(kind string, read int)
	// writeLatency delays every POST and PATCH, as GitHub's own latency
	// does; a write whose caller goes away meanwhile is not applied.
	writeLatency time.Duration
}

type repo struct {
	fullName, cloneURL, defaultBranch string
	branches                          map[string]Commit
	commits                           map[string]Commit     // by SHA, AddCommit
	runs                              map[string][]checkRun // by sha, oldest first
	statuses                          map[string][]Status   // by sha, oldest first
	deployments                       []*deployment         // oldest first
	comments                          []*comment            // by ascending ID
	pulls                             map[int]map[string]any
}

// Commit is a branch's head.
type Commit struct {
	SHA     string
	Message string
	// Author and Parent, for AddCommit: the compare API walks from a
	// commit to its parent.
	Author, Parent string
}

type checkRun struct {
	id         int64
	name       string
	status     string
	conclusion string
}

// Status is one commit status, as GitHub keeps it.
type Status struct {
	ID          int64
	Context     string
	State       string
	Description string
	TargetURL   string
	CreatedAt   time.Time
}

type deployment struct {
	id                          int64
	sha, ref, task, environment string
	description, creator        string
	payload                     any
	createdAt                   time.Time
	statuses                    []map[string]any // oldest first
}

type comment struct {
	id     int64
	issue  int
	body   string
	update time.Time
}

// New starts a stand-in that accepts Token and closes with the test.
func New(t testing.TB) *Server {
	s := &Server{t: t, token: Token, repos: map[string]*repo{}, reads: map[string]int{},
		clock: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	s.srv = httptest.NewServer(s)
	s.URL = s.srv.URL + "/api/v3/"
	t.Cleanup(s.srv.Close)
	return s
}

// AddRepo makes a repository ("owner/name") that clones from cloneURL,
// with main as its default branch.
func (s *Server) AddRepo(fullName, cloneURL string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.repos[strings.ToLower(fullName)] = &repo{fullName: fullName, cloneURL: cloneURL, defaultBranch: "main",
		branches: map[string]Commit{}, runs: map[string][]checkRun{}, statuses: map[string][]Status{}, pulls: map[int]map[string]any{}}
}

func (s *Server) repo(fullName string) *repo {
	r, ok := s.repos[strings.ToLower(fullName)]
	if !ok {
		s.t.Fatalf("ghtest: no repository %s; AddRepo it first", fullName)
	}
	return r
}

// AddCommit adds commits to a repository's history, each naming its
// parent, for the compare API.
func (s *Server) AddCommit(fullName string, commits ...Commit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.repo(fullName)
	if r.commits == nil {
		r.commits = map[string]Commit{}
	}
	for _, c := range commits {
		r.commits[c.SHA] = c
	}
}

// SetBranch points a branch at a commit.
func (s *Server) SetBranch(fullName, branch string, head Commit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.repo(fullName).branches[branch] = head
}

// AddCheckRun adds a check run to a commit, as a CI app would: status is
// queued, in_progress or completed, and conclusion is set when completed.
// A newer run of the same name replaces the older one in the latest view.
func (s *Server) AddCheckRun(fullName, sha, name, status, conclusion string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	r := s.repo(fullName)
	r.runs[sha] = append(r.runs[sha], checkRun{id: s.nextID, name: name, status: status, conclusion: conclusion})
}

// AddStatus posts a commit status as another integration would.
func (s *Server) AddStatus(fullName, sha, context, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addStatus(s.repo(fullName), sha, Status{Context: context, State: state})
}

func (s *Server) addStatus(r *repo, sha string, st Status) Status {
	s.nextID++
	st.ID, st.CreatedAt = s.nextID, s.tick()
	r.statuses[sha] = append(r.statuses[sha], st)
	return st
}

// tick advances the stand-in's clock, so every write has its own time and
// "newest first" is well defined.
func (s *Server) tick() time.Time {
	s.clock = s.clock.Add(time.Second)
	return s.clock
}

// PullRequest is an open or closed pull request of a repository.
type PullRequest struct {
	Number int
	Title  string
	Head   string
	Branch string
	// HeadRepo is the full name of the repository the head is in; empty
	// for the repository itself. HeadCloneURL is where it clones from.
	HeadRepo, HeadCloneURL string
	Draft                  bool
	State                  string // open (default) or closed
}

// SetPulls replaces the repository's pull requests.
func (s *Server) SetPulls(fullName string, prs ...PullRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.repo(fullName)
	r.pulls = map[int]map[string]any{}
	for _, p := range prs {
		headRepo, clone := p.HeadRepo, p.HeadCloneURL
		if headRepo == "" {
			headRepo, clone = r.fullName, r.cloneURL
		}
		state := p.State
		if state == "" {
			state = "open"
		}
		r.pulls[p.Number] = map[string]any{"number": p.Number, "state": state, "title": p.Title, "draft": p.Draft,
			"head": map[string]any{"sha": p.Head, "ref": p.Branch, "repo": map[string]any{"full_name": headRepo, "clone_url": clone}},
			"base": map[string]any{"ref": r.defaultBranch, "repo": map[string]any{"full_name": r.fullName, "clone_url": r.cloneURL}}}
	}
}

// RateLimitNext answers the next n API calls with GitHub's rate-limit
// 403, its reset now.
func (s *Server) RateLimitNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rateLimit = n
}

// SetWriteLatency makes every write (POST, PATCH) take d before it is
// applied, so a test can stop drover in the middle of one; a write whose
// client disconnects during d is dropped, as a request that never reached
// GitHub is.
func (s *Server) SetWriteLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writeLatency = d
}

// BeforeRead calls fn before each read of kind ("check-runs", "status",
// "statuses", "deployments", "comments", "pulls"), with how many reads of
// that kind came before, so a test can change state between reads. fn runs
// without the stand-in's lock and may call its methods.
func (s *Server) BeforeRead(fn func(kind string, read int)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.before = fn
}

// Reads returns how many times kind was read.
func (s *Server) Reads(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads[kind]
}

// Statuses returns a commit's statuses as "context:state", oldest first.
func (s *Server) Statuses(fullName, sha string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, st := range s.repo(fullName).statuses[sha] {
		out = append(out, st.Context+":"+st.State)
	}
	return out
}

// DeploymentStates returns the states of sha's deployments to environment,
// oldest first, each followed by " <environment_url>" when one was given.
func (s *Server) DeploymentStates(fullName, sha, environment string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, d := range s.repo(fullName).deployments {
		if d.sha != sha || d.environment != environment {
			continue
		}
		for _, st := range d.statuses {
			state := st["state"].(string)
			if u, _ := st["environment_url"].(string); u != "" {
				state += " " + u
			}
			out = append(out, state)
		}
	}
	return out
}

// Deployments returns how many deployments of sha to environment exist.
func (s *Server) Deployments(fullName, sha, environment string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, d := range s.repo(fullName).deployments {
		if d.sha == sha && d.environment == environment {
			n++
		}
	}
	return n
}

// Comments returns the bodies of an issue's or pull request's comments.
func (s *Server) Comments(fullName string, number int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, c := range s.repo(fullName).comments {
		if c.issue == number {
			out = append(out, c.body)
		}
	}
	return out
}

// DeleteComments deletes an issue's comments, as a person might.
func (s *Server) DeleteComments(fullName string, number int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.repo(fullName)
	kept := r.comments[:0]
	for _, c := range r.comments {
		if c.issue != number {
			kept = append(kept, c)
		}
	}
	r.comments = kept
}

// ServeHTTP answers one API call.
func (s *Server) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method == "POST" || req.Method == "PATCH" {
		s.mu.Lock()
		d := s.writeLatency
		s.mu.Unlock()
		if d > 0 {
			// Read the body first: only then does the server notice a
			// client that hangs up, and cancel the request's context.
			body, err := io.ReadAll(req.Body)
			if err != nil {
				return
			}
			req.Body = io.NopCloser(bytes.NewReader(body))
			select {
			case <-time.After(d):
			case <-req.Context().Done():
				return
			}
		}
	}
	kind := readKind(req)
	if kind != "" {
		s.mu.Lock()
		before, n := s.before, s.reads[kind]
		s.reads[kind]++
		s.mu.Unlock()
		if before != nil {
			before(kind, n)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := req.Header.Get("Authorization"); a != "Bearer "+s.token && a != "token "+s.token {
		reply(w, http.StatusUnauthorized, map[string]any{"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})
		return
	}
	if s.rateLimit > 0 {
		s.rateLimit--
		w.Header().Set("X-RateLimit-Limit", "5000")
		w.Header().Set("X-RateLimit-Remaining", "0")
		// Reset now: go-github refuses calls before the reset on its own,
		// in real time, which a test's workflow clock skips.
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Unix(), 10))
		reply(w, http.StatusForbidden, map[string]any{"message": "API rate limit exceeded for installation ID 1.",
			"documentation_url": "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"})
		return
	}
	rest, ok := strings.CutPrefix(req.URL.Path, "/api/v3/repos/")
	parts := strings.Split(strings.Trim(rest, "/"), "/")
	if !ok || len(parts) < 2 {
		s.unexpected(w, req)
		return
	}
	r, ok := s.repos[strings.ToLower(parts[0]+"/"+parts[1])]
	if !ok {
		reply(w, http.StatusNotFound, map[string]any{"message": "Not Found"})
		return
	}
	var body map[string]any
	if req.Body != nil && (req.Method == "POST" || req.Method == "PATCH") {
		if err := json.NewDecoder(req.Body).Decode(&body); err != nil {
			reply(w, http.StatusBadRequest, map[string]any{"message": "Problems parsing JSON"})
			return
		}
	}
	str := func(k string) string { v, _ := body[k].(string); return v }
	p := parts[2:]
	m := req.Method
	switch {
	case m == "GET" && len(p) == 0:
		reply(w, 200, map[string]any{"id": 1, "full_name": r.fullName, "clone_url": r.cloneURL, "default_branch": r.defaultBranch})
	case m == "GET" && len(p) == 2 && p[0] == "branches":
		head, ok := r.branches[p[1]]
		if !ok {
			reply(w, 404, map[string]any{"message": "Branch not found"})
			return
		}
		reply(w, 200, map[string]any{"name": p[1], "commit": map[string]any{"sha": head.SHA, "commit": map[string]any{"message": head.Message}}, "protected": false})
	case m == "GET" && len(p) == 1 && p[0] == "pulls":
		state := req.URL.Query().Get("state")
		if state == "" {
			state = "open"
		}
		var list []any
		for _, n := range slices.Sorted(maps.Keys(r.pulls)) {
			if pr := r.pulls[n]; state == "all" || pr["state"] == state {
				list = append(list, pr)
			}
		}
		page(w, req, list)
	case m == "GET" && len(p) == 2 && p[0] == "pulls":
		n, _ := strconv.Atoi(p[1])
		pr, ok := r.pulls[n]
		if !ok {
			reply(w, 404, map[string]any{"message": "Not Found"})
			return
		}
		reply(w, 200, pr)
	case m == "GET" && len(p) == 2 && p[0] == "compare":
		s.compare(w, req, r, p[1])
	case m == "GET" && len(p) == 3 && p[0] == "commits" && p[2] == "check-runs":
		s.checkRuns(w, req, r, r.resolve(p[1]))
	case m == "GET" && len(p) == 3 && p[0] == "commits" && p[2] == "status":
		s.combinedStatus(w, req, r, r.resolve(p[1]))
	case m == "GET" && len(p) == 3 && p[0] == "commits" && p[2] == "statuses":
		sts := r.statuses[r.resolve(p[1])]
		list := make([]any, 0, len(sts))
		for i := len(sts) - 1; i >= 0; i-- {
			list = append(list, statusJSON(sts[i]))
		}
		page(w, req, list)
	case m == "POST" && len(p) == 2 && p[0] == "statuses":
		state := str("state")
		if state != "error" && state != "failure" && state != "pending" && state != "success" {
			reply(w, 422, map[string]any{"message": "Validation Failed", "errors": []any{map[string]any{"resource": "Status", "field": "state", "code": "custom"}}})
			return
		}
		ctx := str("context")
		if ctx == "" {
			ctx = "default"
		}
		st := s.addStatus(r, p[1], Status{Context: ctx, State: state, Description: str("description"), TargetURL: str("target_url")})
		reply(w, 201, statusJSON(st))
	case m == "GET" && len(p) == 1 && p[0] == "deployments":
		q := req.URL.Query()
		list := []any{}
		for i := len(r.deployments) - 1; i >= 0; i-- {
			d := r.deployments[i]
			if match(q.Get("sha"), d.sha) && match(q.Get("ref"), d.ref) && match(q.Get("task"), d.task) && match(q.Get("environment"), d.environment) {
				list = append(list, d.json())
			}
		}
		page(w, req, list)
	case m == "POST" && len(p) == 1 && p[0] == "deployments":
		ref := str("ref")
		if ref == "" {
			reply(w, 422, map[string]any{"message": "Validation Failed"})
			return
		}
		d := &deployment{sha: r.resolve(ref), ref: ref, task: str("task"), environment: str("environment"), description: str("description"),
			payload: body["payload"], creator: "drover[bot]"}
		if d.task == "" {
			d.task = "deploy"
		}
		if d.environment == "" {
			d.environment = "production"
		}
		s.nextID++
		d.id, d.createdAt = s.nextID, s.tick()
		r.deployments = append(r.deployments, d)
		reply(w, 201, d.json())
	case len(p) == 3 && p[0] == "deployments" && p[2] == "statuses":
		id, _ := strconv.ParseInt(p[1], 10, 64)
		var d *deployment
		for _, x := range r.deployments {
			if x.id == id {
				d = x
			}
		}
		if d == nil {
			reply(w, 404, map[string]any{"message": "Not Found"})
			return
		}
		if m == "GET" {
			list := []any{}
			for i := len(d.statuses) - 1; i >= 0; i-- {
				list = append(list, d.statuses[i])
			}
			page(w, req, list)
			return
		}
		s.nextID++
		st := map[string]any{"id": s.nextID, "state": str("state"), "description": str("description"),
			"environment_url": str("environment_url"), "log_url": str("log_url"), "created_at": s.tick().Format(time.RFC3339)}
		d.statuses = append(d.statuses, st)
		reply(w, 201, st)
	case m == "GET" && len(p) == 3 && p[0] == "issues" && p[2] == "comments":
		n, _ := strconv.Atoi(p[1])
		list := []any{}
		for _, c := range r.comments {
			if c.issue == n {
				list = append(list, c.json())
			}
		}
		page(w, req, list)
	case m == "POST" && len(p) == 3 && p[0] == "issues" && p[2] == "comments":
		n, _ := strconv.Atoi(p[1])
		s.nextID++
		c := &comment{id: s.nextID, issue: n, body: str("body"), update: s.tick()}
		r.comments = append(r.comments, c)
		reply(w, 201, c.json())
	case (m == "PATCH" || m == "DELETE") && len(p) == 3 && p[0] == "issues" && p[1] == "comments":
		id, _ := strconv.ParseInt(p[2], 10, 64)
		for i, c := range r.comments {
			if c.id != id {
				continue
			}
			if m == "DELETE" {
				r.comments = append(r.comments[:i], r.comments[i+1:]...)
				w.WriteHeader(http.StatusNoContent)
				return
			}
			c.body, c.update = str("body"), s.tick()
			reply(w, 200, c.json())
			return
		}
		reply(w, 404, map[string]any{"message": "Not Found"})
	default:
		s.unexpected(w, req)
	}
}

func (s *Server) unexpected(w http.ResponseWriter, req *http.Request) {
	s.t.Errorf("ghtest: drover called %s %s, which the stand-in does not serve", req.Method, req.URL.Path)
	reply(w, http.StatusNotFound, map[string]any{"message": "Not Found"})
}

// readKind names the list a GET reads, for BeforeRead and Reads.
func readKind(req *http.Request) string {
	if req.Method != "GET" {
		return ""
	}
	path := strings.TrimSuffix(req.URL.Path, "/")
	for _, k := range []string{"check-runs", "statuses", "status", "deployments", "comments", "pulls"} {
		if strings.HasSuffix(path, "/"+k) {
			return k
		}
	}
	return ""
}

// resolve turns a ref (a branch name or a SHA) into a SHA, as GitHub does
// for the commits endpoints.
func (r *repo) resolve(ref string) string {
	if head, ok := r.branches[ref]; ok {
		return head.SHA
	}
	return ref
}

func (s *Server) checkRuns(w http.ResponseWriter, req *http.Request, r *repo, sha string) {
	runs := r.runs[sha]
	if f := req.URL.Query().Get("filter"); f == "" || f == "latest" {
		latest := map[string]int{}
		var kept []checkRun
		for _, run := range runs {
			if i, ok := latest[run.name]; ok {
				kept[i] = run
				continue
			}
			latest[run.name] = len(kept)
			kept = append(kept, run)
		}
		runs = kept
	}
	all := make([]any, 0, len(runs))
	for _, run := range runs {
		j := map[string]any{"id": run.id, "name": run.name, "head_sha": sha, "status": run.status, "conclusion": nil,
			"html_url": fmt.Sprintf("https://github.example.com/%s/runs/%d", r.fullName, run.id)}
		if run.status == "completed" {
			j["conclusion"] = run.conclusion
		}
		all = append(all, j)
	}
	items, ok := pageOf(w, req, all)
	if ok {
		reply(w, 200, map[string]any{"total_count": len(all), "check_runs": items})
	}
}

func (s *Server) combinedStatus(w http.ResponseWriter, req *http.Request, r *repo, sha string) {
	// The most recent status of each context, in the order contexts first
	// appeared.
	latest := map[string]int{}
	var contexts []Status
	for _, st := range r.statuses[sha] {
		if i, ok := latest[st.Context]; ok {
			contexts[i] = st
			continue
		}
		latest[st.Context] = len(contexts)
		contexts = append(contexts, st)
	}
	state := "success"
	if len(contexts) == 0 {
		state = "pending"
	}
	for _, st := range contexts {
		switch {
		case st.State == "error" || st.State == "failure":
			state = "failure"
		case st.State == "pending" && state != "failure":
			state = "pending"
		}
	}
	all := make([]any, 0, len(contexts))
	for _, st := range contexts {
		all = append(all, statusJSON(st))
	}
	items, ok := pageOf(w, req, all)
	if ok {
		reply(w, 200, map[string]any{"state": state, "statuses": items, "sha": sha, "total_count": len(contexts),
			"repository": map[string]any{"full_name": r.fullName}})
	}
}

func statusJSON(st Status) map[string]any {
	return map[string]any{"id": st.ID, "context": st.Context, "state": st.State, "description": st.Description,
		"target_url": st.TargetURL, "created_at": st.CreatedAt.Format(time.RFC3339), "updated_at": st.CreatedAt.Format(time.RFC3339)}
}

func (d *deployment) json() map[string]any {
	return map[string]any{"id": d.id, "sha": d.sha, "ref": d.ref, "task": d.task, "environment": d.environment,
		"description": d.description, "payload": d.payload, "created_at": d.createdAt.Format(time.RFC3339),
		"creator": map[string]any{"login": d.creator, "type": "Bot"}}
}

func (c *comment) json() map[string]any {
	return map[string]any{"id": c.id, "body": c.body, "updated_at": c.update.Format(time.RFC3339),
		"user": map[string]any{"login": "drover[bot]", "type": "Bot"}}
}

func match(filter, value string) bool { return filter == "" || filter == value }

// page answers one page of list.
func page(w http.ResponseWriter, req *http.Request, list []any) {
	if items, ok := pageOf(w, req, list); ok {
		reply(w, 200, items)
	}
}

// pageOf cuts list to the page asked for and sets GitHub's Link header;
// per_page defaults to 30 and is at most 100.
func pageOf(w http.ResponseWriter, req *http.Request, list []any) ([]any, bool) {
	q := req.URL.Query()
	per, pageNo := 30, 1
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			reply(w, 422, map[string]any{"message": "Validation Failed"})
			return nil, false
		}
		per = min(max(n, 1), 100)
	}
	if v := q.Get("page"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			pageNo = n
		}
	}
	last := max((len(list)+per-1)/per, 1)
	link := func(n int, rel string) string {
		u := *req.URL
		u.Scheme, u.Host = "http", req.Host
		v := url.Values{}
		for k, vs := range q {
			v[k] = vs
		}
		v.Set("page", strconv.Itoa(n))
		u.RawQuery = v.Encode()
		return fmt.Sprintf(`<%s>; rel="%s"`, u.String(), rel)
	}
	var links []string
	if pageNo < last {
		links = append(links, link(pageNo+1, "next"), link(last, "last"))
	}
	if pageNo > 1 {
		links = append(links, link(1, "first"), link(pageNo-1, "prev"))
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	from := min((pageNo-1)*per, len(list))
	to := min(from+per, len(list))
	out := list[from:to]
	if out == nil {
		out = []any{}
	}
	return out, true
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// compare answers GET /repos/{o}/{r}/compare/{base}...{head} as GitHub's
// "Compare two commits" does, for a history without merges: the commits
// reachable from head and not from base, oldest first, with status
// (identical, ahead, behind or diverged), ahead_by, behind_by and
// total_commits; the commits list pages with per_page (default and most
// 250) and page. An unknown commit is 404.
func (s *Server) compare(w http.ResponseWriter, req *http.Request, r *repo, basehead string) {
	base, head, ok := strings.Cut(basehead, "...")
	_, okBase := r.commits[base]
	_, okHead := r.commits[head]
	if !ok || !okBase || !okHead {
		reply(w, 404, map[string]any{"message": "Not Found"})
		return
	}
	ancestry := func(from string) []string { // from, its parent, … (newest first)
		var out []string
		for sha := from; sha != ""; sha = r.commits[sha].Parent {
			out = append(out, sha)
		}
		return out
	}
	headLine, baseLine := ancestry(head), ancestry(base)
	ahead := slices.Index(headLine, base) // head's commits since base
	behind := slices.Index(baseLine, head)
	status := "diverged"
	switch {
	case base == head:
		status, ahead, behind = "identical", 0, 0
	case ahead > 0:
		status, behind = "ahead", 0
	case behind > 0:
		status, ahead = "behind", 0
	default:
		// Diverged: both sides since their newest common ancestor.
		for i, sha := range headLine {
			if j := slices.Index(baseLine, sha); j >= 0 {
				ahead, behind = i, j
				break
			}
		}
	}
	var list []any
	for i := ahead - 1; i >= 0; i-- {
		c := r.commits[headLine[i]]
		list = append(list, map[string]any{"sha": c.SHA, "commit": map[string]any{"message": c.Message, "author": map[string]any{"name": c.Author}}})
	}
	q := req.URL.Query()
	per, _ := strconv.Atoi(q.Get("per_page"))
	if per <= 0 || per > 250 {
		per = 250
	}
	pg, _ := strconv.Atoi(q.Get("page"))
	if pg <= 0 {
		pg = 1
	}
	lo, hi := min((pg-1)*per, len(list)), min(pg*per, len(list))
	commits := list[lo:hi]
	if commits == nil {
		commits = []any{}
	}
	reply(w, 200, map[string]any{"status": status, "ahead_by": ahead, "behind_by": behind, "total_commits": ahead, "commits": commits})
}
