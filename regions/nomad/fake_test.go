package nomad_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
)

// fakeNomad answers the slice of Nomad's HTTP API the driver uses, with
// bodies shaped as api's types (which mirror Nomad's own) and the
// X-Nomad-Index header blocking queries rely on.
type fakeNomad struct {
	t   *testing.T
	srv *httptest.Server

	// wantRegion and wantNamespace must be on every request.
	wantRegion, wantNamespace string

	mu    sync.Mutex
	index uint64
	jobs  map[string]*api.Job
	// registers holds each register request body as sent.
	registers []map[string]any
	// registerErr, when set, answers a register instead of the fake.
	registerErr func(n int) (code int, body string)
	// steps are the states of the deployment the next register creates,
	// one per blocking query; ModifyIndex is assigned at register.
	steps      []*api.Deployment
	deployment []*api.Deployment // created deployments, oldest first
	// depIndexes are the ?index= values seen on /v1/deployment/<id>.
	depIndexes []uint64
	depAllocs  []*api.AllocationListStub
	// jobAllocs are successive answers to /v1/job/<id>/allocations; the
	// last one repeats.
	jobAllocs map[string][][]*api.AllocationListStub
	// jobVersions answers /v1/job/<id>/versions, newest first as Nomad
	// lists them; a job without is listed as its one version.
	jobVersions map[string][]*api.Job
	allocs      map[string]*api.Allocation
	logs        map[string]string // "<alloc>/<task>/<stdout|stderr>"
	services    map[string][]*api.ServiceRegistration
	deletes     []string // request URIs of DELETEs
	fails       []string // deployments failed through the API
	promotes    []string // deployments promoted through the API
	// checks are successive answers to an allocation's checks; the last
	// one repeats.
	checks map[string][]api.AllocCheckStatuses
	// slowWatch holds each blocking deployment query open this long, as
	// Nomad does until something changes.
	slowWatch time.Duration
	requests  []string
	// vars are the Nomad variables by path (the fake has one namespace).
	vars map[string]*api.Variable
	// varsForbidden answers every variable call 403, as Nomad does for a
	// token without variable rights.
	varsForbidden bool
	// regionNames answers /v1/regions.
	regionNames []string
	// blockAllocs makes a blocking query of a job's allocations wait, as
	// Nomad does, until another answer is queued (or a second passes).
	blockAllocs bool
	// planBody answers PUT /v1/job/<id>/plan as Nomad would (raw JSON);
	// plans holds each plan request body as sent.
	planBody string
	plans    []map[string]any
}

// followLog serves GET /v1/client/fs/logs/<alloc>?follow=true as Nomad
// does: frames of what the log holds from origin (start, or end less
// offset), then of what is appended, each carrying the file and the
// offset after its data, until the client goes away.
func (f *fakeNomad) followLog(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	key := strings.TrimPrefix(r.URL.Path, "/v1/client/fs/logs/") + "/" + q.Get("task") + "/" + q.Get("type")
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI())
	if _, ok := f.logs[key]; !ok {
		f.mu.Unlock()
		// As Nomad answers for a task that has not started.
		fail(w, http.StatusInternalServerError, fmt.Sprintf("task %q not started yet. No logs available", q.Get("task")))
		return
	}
	pos := 0
	if q.Get("origin") == api.OriginEnd {
		n, _ := strconv.Atoi(q.Get("offset"))
		pos = max(0, len(f.logs[key])-n)
	}
	f.mu.Unlock()
	file := fmt.Sprintf("alloc/logs/%s.%s.0", q.Get("task"), q.Get("type"))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	for {
		f.mu.Lock()
		data := f.logs[key]
		f.mu.Unlock()
		if len(data) > pos {
			if err := enc.Encode(api.StreamFrame{Offset: int64(len(data)), Data: []byte(data[pos:]), File: file}); err != nil {
				return
			}
			pos = len(data)
			w.(http.Flusher).Flush()
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// appendLog adds to a task's log while followers read it.
func (f *fakeNomad) appendLog(key, data string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs[key] += data
}

// queueAllocs queues the next answer about a job's allocations.
func (f *fakeNomad) queueAllocs(job string, allocs []*api.AllocationListStub) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobAllocs[job] = append(f.jobAllocs[job], allocs)
}

// awaitAllocs holds a blocking allocations query until another answer is
// queued for the job, or a second has passed.
func (f *fakeNomad) awaitAllocs(r *http.Request) {
	id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/job/"), "/allocations")
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		f.mu.Lock()
		queued := len(f.jobAllocs[id])
		f.mu.Unlock()
		if queued > 1 {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func newFakeNomad(t *testing.T) *fakeNomad {
	t.Helper()
	f := &fakeNomad{
		t:             t,
		wantRegion:    "europe",
		wantNamespace: "apps",
		index:         100,
		jobs:          map[string]*api.Job{},
		jobAllocs:     map[string][][]*api.AllocationListStub{},
		allocs:        map[string]*api.Allocation{},
		logs:          map[string]string{},
		services:      map[string][]*api.ServiceRegistration{},
		checks:        map[string][]api.AllocCheckStatuses{},
		vars:          map[string]*api.Variable{},
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeNomad) nextIndex() uint64 { f.index++; return f.index }

func (f *fakeNomad) reply(w http.ResponseWriter, index uint64, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Nomad-Index", strconv.FormatUint(index, 10))
	w.Header().Set("X-Nomad-LastContact", "0")
	w.Header().Set("X-Nomad-KnownLeader", "true")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		f.t.Errorf("encode: %v", err)
	}
}

func fail(w http.ResponseWriter, code int, msg string) {
	http.Error(w, msg, code)
}

func (f *fakeNomad) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if strings.HasPrefix(r.URL.Path, "/v1/client/fs/logs/") && q.Get("follow") == "true" {
		f.followLog(w, r)
		return
	}
	if f.blockAllocs && strings.HasSuffix(r.URL.Path, "/allocations") && q.Get("index") != "" {
		f.awaitAllocs(r)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI())
	if r.URL.Path == "/v1/regions" {
		f.reply(w, f.index, f.regionNames)
		return
	}
	if q.Get("region") != f.wantRegion || q.Get("namespace") != f.wantNamespace {
		f.t.Errorf("%s %s: region=%q namespace=%q, want %q and %q on every call",
			r.Method, r.URL.RequestURI(), q.Get("region"), q.Get("namespace"), f.wantRegion, f.wantNamespace)
	}
	if got := r.Header.Get("X-Nomad-Token"); got != "secret" {
		f.t.Errorf("%s %s: X-Nomad-Token = %q", r.Method, r.URL.RequestURI(), got)
	}
	path := r.URL.Path
	switch {
	case (r.Method == http.MethodPut || r.Method == http.MethodPost) && path == "/v1/jobs":
		f.register(w, r)
	case r.Method == http.MethodPut && path == "/v1/jobs/parse":
		// Stands in for the server's HCL parser: it knows one job.
		var req api.JobsParseRequest
		json.NewDecoder(r.Body).Decode(&req)
		if !strings.Contains(req.JobHCL, "priority = 70") {
			fail(w, http.StatusBadRequest, "input.hcl:1,1-2: Argument or block definition required")
			return
		}
		f.reply(w, f.index, api.Job{Priority: new(70), Meta: map[string]string{"team": "payments"}})
	case path == "/v1/vars" || strings.HasPrefix(path, "/v1/var/"):
		f.variables(w, r)
	case r.Method == http.MethodGet && path == "/v1/jobs":
		stubs := []*api.JobListStub{}
		for id, job := range f.jobs {
			if strings.HasPrefix(id, q.Get("prefix")) {
				stubs = append(stubs, &api.JobListStub{ID: id, Type: deref(job.Type)})
			}
		}
		f.reply(w, f.index, stubs)
	case r.Method == http.MethodDelete && strings.HasPrefix(path, "/v1/job/"):
		id := strings.TrimPrefix(path, "/v1/job/")
		f.deletes = append(f.deletes, r.URL.RequestURI())
		if _, ok := f.jobs[id]; !ok {
			fail(w, http.StatusNotFound, "job not found")
			return
		}
		delete(f.jobs, id)
		f.reply(w, f.nextIndex(), api.JobDeregisterResponse{EvalID: "eval-stop", JobModifyIndex: f.index})
	case strings.HasPrefix(path, "/v1/job/") && strings.HasSuffix(path, "/deployment"):
		id := strings.TrimSuffix(strings.TrimPrefix(path, "/v1/job/"), "/deployment")
		var latest *api.Deployment
		for _, d := range f.deployment {
			if d.JobID == id {
				latest = f.depState(d.ID, 0)
			}
		}
		f.reply(w, f.index, latest)
	case strings.HasPrefix(path, "/v1/job/") && strings.HasSuffix(path, "/deployments"):
		id := strings.TrimSuffix(strings.TrimPrefix(path, "/v1/job/"), "/deployments")
		var out []*api.Deployment
		for _, d := range f.deployment {
			if d.JobID == id {
				out = append(out, f.depState(d.ID, 0))
			}
		}
		f.reply(w, f.index, out)
	case strings.HasPrefix(path, "/v1/job/") && strings.HasSuffix(path, "/versions"):
		id := strings.TrimSuffix(strings.TrimPrefix(path, "/v1/job/"), "/versions")
		versions, ok := f.jobVersions[id]
		if !ok {
			job, ok := f.jobs[id]
			if !ok {
				fail(w, http.StatusNotFound, "job versions not found")
				return
			}
			versions = []*api.Job{job}
		}
		f.reply(w, f.index, map[string]any{"Versions": versions, "Diffs": nil})
	case (r.Method == http.MethodPut || r.Method == http.MethodPost) && strings.HasPrefix(path, "/v1/job/") && strings.HasSuffix(path, "/plan"):
		// Nomad's dry run: it registers nothing and answers the plan.
		var raw map[string]any
		if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
			fail(w, http.StatusBadRequest, err.Error())
			return
		}
		f.plans = append(f.plans, raw)
		if f.planBody == "" {
			fail(w, http.StatusInternalServerError, "no plan queued")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(f.planBody))
	case strings.HasPrefix(path, "/v1/job/") && strings.HasSuffix(path, "/allocations"):
		id := strings.TrimSuffix(strings.TrimPrefix(path, "/v1/job/"), "/allocations")
		answers := f.jobAllocs[id]
		var out []*api.AllocationListStub
		if len(answers) > 0 {
			out = answers[0]
			if len(answers) > 1 {
				f.jobAllocs[id] = answers[1:]
			}
		}
		f.reply(w, f.nextIndex(), out)
	case strings.HasPrefix(path, "/v1/job/"):
		id := strings.TrimPrefix(path, "/v1/job/")
		job, ok := f.jobs[id]
		if !ok {
			fail(w, http.StatusNotFound, "job not found")
			return
		}
		f.reply(w, deref(job.ModifyIndex), job)
	case r.Method == http.MethodPut && strings.HasPrefix(path, "/v1/deployment/fail/"):
		// Nomad marks the deployment failed and, with auto_revert, puts
		// the job back on its last stable version.
		f.updateDeployment(w, strings.TrimPrefix(path, "/v1/deployment/fail/"), &f.fails, func(d *api.Deployment) error {
			d.Status, d.StatusDescription = api.DeploymentStatusFailed, "Deployment marked as failed"
			return nil
		})
	case r.Method == http.MethodPut && strings.HasPrefix(path, "/v1/deployment/promote/"):
		// Nomad refuses to promote canaries that are not all healthy;
		// promoted, the deployment completes once every allocation is.
		f.updateDeployment(w, strings.TrimPrefix(path, "/v1/deployment/promote/"), &f.promotes, func(d *api.Deployment) error {
			healthy := map[string]int{}
			for _, a := range f.depAllocs {
				if a.DeploymentStatus != nil && a.DeploymentStatus.Healthy != nil && *a.DeploymentStatus.Healthy {
					healthy[a.TaskGroup]++
				}
			}
			done := true
			for name, g := range d.TaskGroups {
				if healthy[name] < g.DesiredCanaries {
					return fmt.Errorf("task group %q has %d/%d healthy allocations", name, healthy[name], g.DesiredCanaries)
				}
				gs := *g
				gs.Promoted, gs.HealthyAllocs = true, healthy[name]
				d.TaskGroups[name] = &gs
				done = done && healthy[name] >= g.DesiredTotal
			}
			if done {
				d.Status, d.StatusDescription = api.DeploymentStatusSuccessful, "Deployment completed successfully"
			}
			return nil
		})
	case strings.HasPrefix(path, "/v1/deployment/allocations/"):
		f.reply(w, f.index, f.depAllocs)
	case strings.HasPrefix(path, "/v1/deployment/"):
		id := strings.TrimPrefix(path, "/v1/deployment/")
		idx, _ := strconv.ParseUint(q.Get("index"), 10, 64)
		f.depIndexes = append(f.depIndexes, idx)
		if idx > 0 && f.slowWatch > 0 {
			f.mu.Unlock()
			time.Sleep(f.slowWatch)
			f.mu.Lock()
		}
		if idx > 0 && q.Get("wait") == "" {
			f.t.Errorf("blocking query without wait: %s", r.URL.RequestURI())
		}
		d := f.depState(id, idx)
		if d == nil {
			fail(w, http.StatusNotFound, "deployment not found")
			return
		}
		f.reply(w, d.ModifyIndex, d)
	case strings.HasPrefix(path, "/v1/client/allocation/") && strings.HasSuffix(path, "/checks"):
		// The latest result of each of the allocation's Nomad checks.
		id := strings.TrimSuffix(strings.TrimPrefix(path, "/v1/client/allocation/"), "/checks")
		out := api.AllocCheckStatuses{}
		if answers := f.checks[id]; len(answers) > 0 {
			out = answers[0]
			if len(answers) > 1 {
				f.checks[id] = answers[1:]
			}
		}
		f.reply(w, f.index, out)
	case strings.HasPrefix(path, "/v1/allocation/"):
		a, ok := f.allocs[strings.TrimPrefix(path, "/v1/allocation/")]
		if !ok {
			fail(w, http.StatusNotFound, "alloc not found")
			return
		}
		f.reply(w, a.ModifyIndex, a)
	case strings.HasPrefix(path, "/v1/node/"):
		// Make the api client read logs through the server, as it does
		// when drover cannot reach client nodes.
		fail(w, http.StatusNotFound, "node not found")
	case strings.HasPrefix(path, "/v1/client/fs/logs/"):
		alloc := strings.TrimPrefix(path, "/v1/client/fs/logs/")
		data, ok := f.logs[alloc+"/"+q.Get("task")+"/"+q.Get("type")]
		if !ok {
			fail(w, http.StatusNotFound, "log not found")
			return
		}
		if q.Get("origin") != api.OriginEnd {
			f.t.Errorf("logs query %s: want the tail", r.URL.RequestURI())
		}
		// origin=end&offset=N: the last N bytes, as Nomad serves them.
		start := 0
		if n, err := strconv.Atoi(q.Get("offset")); err == nil && n < len(data) {
			start = len(data) - n
		}
		// Nomad streams frames, each with the offset in the file after
		// its data; send two to exercise reassembly.
		half := start + (len(data)-start)/2
		file := fmt.Sprintf("alloc/logs/%s.%s.0", q.Get("task"), q.Get("type"))
		for _, cut := range [][2]int{{start, half}, {half, len(data)}} {
			if err := json.NewEncoder(w).Encode(api.StreamFrame{Offset: int64(cut[1]), Data: []byte(data[cut[0]:cut[1]]), File: file}); err != nil {
				f.t.Errorf("encode frame: %v", err)
			}
		}
	case strings.HasPrefix(path, "/v1/service/"):
		f.reply(w, f.index, f.services[strings.TrimPrefix(path, "/v1/service/")])
	default:
		f.t.Errorf("unexpected request %s %s", r.Method, r.URL.RequestURI())
		fail(w, http.StatusNotFound, "no such endpoint")
	}
}

// updateDeployment answers a deployment write (fail, promote): change
// gets a copy of the deployment's latest state and may refuse it, as Nomad
// does with a 500; the changed state becomes the latest, and the call is
// recorded in calls.
func (f *fakeNomad) updateDeployment(w http.ResponseWriter, id string, calls *[]string, change func(*api.Deployment) error) {
	var latest *api.Deployment
	for _, d := range f.deployment {
		if d.ID == id {
			latest = d
		}
	}
	if latest == nil {
		fail(w, http.StatusNotFound, "deployment not found")
		return
	}
	next := *latest
	next.TaskGroups = maps.Clone(latest.TaskGroups)
	if err := change(&next); err != nil {
		fail(w, http.StatusInternalServerError, err.Error())
		return
	}
	*calls = append(*calls, id)
	next.ModifyIndex = f.nextIndex()
	f.deployment = append(f.deployment, &next)
	f.reply(w, f.index, api.DeploymentUpdateResponse{EvalID: "eval-" + id, DeploymentModifyIndex: next.ModifyIndex})
}

// depState is the deployment as a blocking query at index sees it: the
// first step newer than index, or the last step when none is (the wait
// timed out).
func (f *fakeNomad) depState(id string, index uint64) *api.Deployment {
	var last *api.Deployment
	for _, d := range f.deployment {
		if d.ID != id {
			continue
		}
		last = d
		if d.ModifyIndex > index {
			return d
		}
	}
	return last
}

func (f *fakeNomad) register(w http.ResponseWriter, r *http.Request) {
	var raw map[string]any
	var req api.JobRegisterRequest
	body := new(strings.Builder)
	if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	data, _ := json.Marshal(raw)
	body.Write(data)
	if err := json.Unmarshal(data, &req); err != nil || req.Job == nil {
		fail(w, http.StatusBadRequest, "Job must be specified")
		return
	}
	f.registers = append(f.registers, raw)
	if f.registerErr != nil {
		if code, msg := f.registerErr(len(f.registers)); code != 0 {
			fail(w, code, msg)
			return
		}
	}
	id := *req.Job.ID
	cur := f.jobs[id]
	var curIndex uint64
	if cur != nil {
		curIndex = deref(cur.JobModifyIndex)
	}
	if req.EnforceIndex && req.JobModifyIndex != curIndex {
		fail(w, http.StatusInternalServerError, fmt.Sprintf("%s %d: job exists with conflicting job modify index: %d",
			api.RegisterEnforceIndexErrPrefix, req.JobModifyIndex, curIndex))
		return
	}
	job := req.Job
	var version uint64
	if cur != nil {
		version = deref(cur.Version) + 1
	}
	idx := f.nextIndex()
	job.Version, job.JobModifyIndex, job.ModifyIndex = new(version), new(idx), new(idx)
	job.Status = new("running")
	f.jobs[id] = job
	for _, s := range f.steps {
		s.JobID, s.JobVersion, s.ModifyIndex = id, version, f.nextIndex()
		f.deployment = append(f.deployment, s)
	}
	f.steps = nil
	f.reply(w, idx, api.JobRegisterResponse{EvalID: "eval-1", EvalCreateIndex: idx, JobModifyIndex: idx})
}

// maxVariableSize is Nomad's cap on a variable's keys and values together.
const maxVariableSize = 64 << 10

// variables answers Nomad's Variables API as Nomad does: GET, PUT and
// DELETE /v1/var/<path>, the writes checked against ?cas=<modify index>
// when given (0: the variable must not exist) and answered 409 with the
// variable as it is; GET /v1/vars?prefix= lists metadata without items.
func (f *fakeNomad) variables(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if f.varsForbidden {
		fail(w, http.StatusForbidden, "Permission denied")
		return
	}
	if r.URL.Path == "/v1/vars" {
		out := []*api.VariableMetadata{}
		for _, p := range slices.Sorted(maps.Keys(f.vars)) {
			if v := f.vars[p]; strings.HasPrefix(p, q.Get("prefix")) {
				out = append(out, &api.VariableMetadata{Namespace: v.Namespace, Path: p, CreateIndex: v.CreateIndex, ModifyIndex: v.ModifyIndex})
			}
		}
		f.reply(w, f.index, out)
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/v1/var/")
	cur := f.vars[path]
	if cas := q.Get("cas"); cas != "" && r.Method != http.MethodGet {
		want, _ := strconv.ParseUint(cas, 10, 64)
		var have uint64
		if cur != nil {
			have = cur.ModifyIndex
		}
		if want != have {
			conflict := cur
			if conflict == nil {
				conflict = &api.Variable{Namespace: f.wantNamespace, Path: path}
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusConflict)
			json.NewEncoder(w).Encode(conflict)
			return
		}
	}
	switch r.Method {
	case http.MethodGet:
		if cur == nil {
			fail(w, http.StatusNotFound, "variable not found")
			return
		}
		f.reply(w, cur.ModifyIndex, cur)
	case http.MethodPut:
		var v api.Variable
		if err := json.NewDecoder(r.Body).Decode(&v); err != nil {
			fail(w, http.StatusBadRequest, err.Error())
			return
		}
		if len(v.Items) == 0 {
			fail(w, http.StatusBadRequest, "variable missing required Items object")
			return
		}
		size := 0
		for k, val := range v.Items {
			size += len(k) + len(val)
		}
		if size > maxVariableSize {
			fail(w, http.StatusInternalServerError, "variables are limited to 64KiB in total size")
			return
		}
		idx := f.nextIndex()
		out := &api.Variable{Namespace: q.Get("namespace"), Path: path, Items: maps.Clone(v.Items), CreateIndex: idx, ModifyIndex: idx}
		if cur != nil {
			out.CreateIndex = cur.CreateIndex
		}
		f.vars[path] = out
		f.reply(w, idx, out)
	case http.MethodDelete:
		delete(f.vars, path)
		w.Header().Set("X-Nomad-Index", strconv.FormatUint(f.nextIndex(), 10))
		w.WriteHeader(http.StatusNoContent)
	default:
		fail(w, http.StatusMethodNotAllowed, "method not allowed")
	}
}

func deref[T any](p *T) T {
	var zero T
	if p != nil {
		zero = *p
	}
	return zero
}

func (f *fakeNomad) snapshot() (registers []map[string]any, depIndexes []uint64, deletes []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[string]any(nil), f.registers...), append([]uint64(nil), f.depIndexes...), append([]string(nil), f.deletes...)
}

// steps builds a deployment's successive states for web×webCount.
func steps(id string, webCount int, states ...string) []*api.Deployment {
	out := make([]*api.Deployment, len(states))
	for i, st := range states {
		healthy := 0
		if st == api.DeploymentStatusSuccessful {
			healthy = webCount
		} else if i > 0 && webCount > 1 {
			healthy = 1
		}
		out[i] = &api.Deployment{
			ID:        id,
			Namespace: "apps",
			Status:    st,
			TaskGroups: map[string]*api.DeploymentState{
				"web": {DesiredTotal: webCount, PlacedAllocs: webCount, HealthyAllocs: healthy, AutoRevert: true},
			},
		}
	}
	return out
}
