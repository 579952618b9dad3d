package nomad_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
	"github.com/drover/drover/regions/nomad"
)

var update = flag.Bool("update", false, "rewrite testdata/golden files")

const digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

func spec(mod func(*pipelines.RegionSpec)) pipelines.RegionSpec {
	s := pipelines.RegionSpec{
		Name:   "eu",
		Driver: pipelines.DriverNomad,
		Nomad: pipelines.NomadSpec{
			Address:     "http://127.0.0.1:4646",
			Region:      "europe",
			Namespace:   "apps",
			Datacenters: []string{"fra1", "ams1"},
			NodePool:    "web",
		},
	}
	if mod != nil {
		mod(&s)
	}
	return s
}

func deployment(formation pipelines.Formation) regions.Deployment {
	return regions.Deployment{
		App:     "hello",
		Release: 7,
		Slug:    regions.Slug{Digest: digest, URL: "http://drover.internal:8080/slugs/" + digest + ".tar.gz"},
		Procfile: pipelines.Procfile{
			{Type: "release", Command: "./migrate"},
			{Type: "web", Command: "bin/server --port $PORT"},
			{Type: "worker", Command: "bin/worker"},
		},
		Formation: formation,
		Env:       map[string]string{"DATABASE_URL": "postgres://db/hello", "PORT": "1"},
	}
}

// MustReadTemplate reads a user job template in Nomad's JSON job form.
func MustReadTemplate(tb testing.TB, name string) *api.Job {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	var job api.Job
	if err := json.Unmarshal(data, &job); err != nil {
		tb.Fatal(err)
	}
	return &job
}

func TestRenderGolden(t *testing.T) {
	tmpl := MustReadTemplate(t, "template.json")
	tmplBefore, _ := json.Marshal(tmpl)
	tests := []struct {
		name   string
		render func() (*api.Job, error)
	}{
		{"web-worker", func() (*api.Job, error) {
			in := nomad.JobInput{Spec: spec(nil), Deployment: deployment(pipelines.Formation{"web": 2, "worker": 1}), Commit: "0123abc"}
			return nomad.Render(in)
		}},
		{"raw-exec-consul", func() (*api.Job, error) {
			s := spec(func(s *pipelines.RegionSpec) {
				s.Nomad = pipelines.NomadSpec{Address: "http://127.0.0.1:4646", TaskDriver: "raw_exec", ServiceProvider: "consul"}
			})
			return nomad.Render(nomad.JobInput{Spec: s, Deployment: deployment(nil)})
		}},
		{"template", func() (*api.Job, error) {
			in := nomad.JobInput{Spec: spec(nil), Deployment: deployment(pipelines.Formation{"web": 1, "worker": 1}), Template: tmpl}
			return nomad.Render(in)
		}},
		{"worker-scaled-to-zero", func() (*api.Job, error) {
			in := nomad.JobInput{Spec: spec(nil), Deployment: deployment(pipelines.Formation{"web": 1, "worker": 0})}
			return nomad.Render(in)
		}},
		// A rollback: a release that ran healthy before is checked every
		// second and healthy after one.
		{"proven-rollback", func() (*api.Job, error) {
			d := deployment(pipelines.Formation{"web": 2, "worker": 1})
			d.Proven = true
			return nomad.Render(nomad.JobInput{Spec: spec(nil), Deployment: d})
		}},
		// Behind Traefik: only live registrations carry the router's
		// tags; canaries carry drover-canary alone until promoted.
		{"ingress-traefik", func() (*api.Job, error) {
			d := deployment(pipelines.Formation{"web": 1, "worker": 0})
			e := pipelines.Stage{URL: "https://hello.example.com", Ingress: pipelines.IngressTraefik}.Expose(d.App)
			d.URL, d.ServiceTags = e.URL, e.Tags
			return nomad.Render(nomad.JobInput{Spec: spec(nil), Deployment: d})
		}},
		{"release", func() (*api.Job, error) {
			in := nomad.JobInput{Spec: spec(nil), Deployment: deployment(nil), Commit: "0123abc",
				Update: nomad.UpdatePolicy{RestartDelay: time.Second}}
			return nomad.RenderReleaseJob(in, "./migrate"), nil
		}},
		// One-offs: detached runs the command, attached waits for exec.
		{"run-detached", func() (*api.Job, error) {
			in := nomad.JobInput{Spec: spec(nil), Deployment: deployment(nil)}
			return nomad.RenderRunJob(in, regions.OneOff{App: "hello", Release: 7, Number: 3, Command: "rake cleanup"}, false)
		}},
		{"run-attached", func() (*api.Job, error) {
			in := nomad.JobInput{Spec: spec(nil), Deployment: deployment(nil)}
			return nomad.RenderRunJob(in, regions.OneOff{App: "hello", Release: 7, Number: 4, Command: "python manage.py shell"}, true)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job, err := tt.render()
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(job, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", "golden", tt.name+".json")
			golden(t, path, got)
		})
	}
	if after, _ := json.Marshal(tmpl); !bytes.Equal(tmplBefore, after) {
		t.Error("Render modified the template")
	}
}

func TestRenderShape(t *testing.T) {
	job, err := nomad.Render(nomad.JobInput{Spec: spec(nil), Deployment: deployment(pipelines.Formation{"web": 2, "worker": 0})})
	if err != nil {
		t.Fatal(err)
	}
	if *job.ID != "hello" || *job.Region != "europe" || *job.Namespace != "apps" || *job.Type != api.JobTypeService {
		t.Errorf("job = %s/%s/%s/%s", *job.ID, *job.Region, *job.Namespace, *job.Type)
	}
	if got := job.Meta[nomad.MetaManagedBy]; got != "drover" {
		t.Errorf("managed-by meta = %q", got)
	}
	if len(job.TaskGroups) != 2 {
		t.Fatalf("groups = %d, want web and worker (release is not a service)", len(job.TaskGroups))
	}
	web, worker := job.TaskGroups[0], job.TaskGroups[1]
	if *web.Name != "web" || *web.Count != 2 || *worker.Name != "worker" || *worker.Count != 0 {
		t.Errorf("groups = %s×%d, %s×%d", *web.Name, *web.Count, *worker.Name, *worker.Count)
	}
	if got := web.Tasks[0].Env["PORT"]; got != "${NOMAD_PORT_http}" {
		t.Errorf("web PORT = %q: config vars must not override it", got)
	}
	// A template's env overrides the env block: web's template leaves
	// the config var PORT out, worker's (whose PORT is no one else's)
	// keeps it.
	if tmpl := configTemplate(t, web.Tasks[0]); !strings.Contains(tmpl, `(ne $k "PORT")`) {
		t.Errorf("web's config template does not leave out PORT:\n%s", tmpl)
	}
	if tmpl := configTemplate(t, worker.Tasks[0]); strings.Contains(tmpl, `"PORT"`) {
		t.Errorf("worker's config template leaves out the config var PORT:\n%s", tmpl)
	}
	if *web.Update.HealthCheck != "checks" || *worker.Update.HealthCheck != "task_states" {
		t.Errorf("health checks = %s, %s", *web.Update.HealthCheck, *worker.Update.HealthCheck)
	}
	if *web.Update.ProgressDeadline > time.Minute {
		t.Errorf("progress deadline %v: a broken release must fail within about a minute", *web.Update.ProgressDeadline)
	}
}

// configTemplate is the template of task that renders its config vars.
func configTemplate(t *testing.T, task *api.Task) string {
	t.Helper()
	for _, tmpl := range task.Templates {
		if *tmpl.DestPath == nomad.ConfigEnvFile {
			if !*tmpl.Envvars || *tmpl.ChangeMode != "noop" || !*tmpl.ErrMissingKey {
				t.Errorf("task %s: config template env=%v change_mode=%s error_on_missing_key=%v; want env, noop (a new release's item must not restart old allocations) and a missing item to fail",
					task.Name, *tmpl.Envvars, *tmpl.ChangeMode, *tmpl.ErrMissingKey)
			}
			return *tmpl.EmbeddedTmpl
		}
	}
	t.Fatalf("task %s has no template rendering %s", task.Name, nomad.ConfigEnvFile)
	return ""
}

// TestRenderKeepsConfigOutOfJob: anyone who can read a job (its versions,
// the UI) reads its spec, so no config value is in it; each task reads its
// release's item of the job's variable instead. drover's metadata stays
// plain env.
func TestRenderKeepsConfigOutOfJob(t *testing.T) {
	d := deployment(pipelines.Formation{"web": 1, "worker": 1})
	d.Env["SECRET_KEY"] = "s3cr3t-value"
	d.Env["DROVER_RELEASE"] = "v7"
	service, err := nomad.Render(nomad.JobInput{Spec: spec(nil), Deployment: d})
	if err != nil {
		t.Fatal(err)
	}
	release := nomad.RenderReleaseJob(nomad.JobInput{Spec: spec(nil), Deployment: d}, "./migrate")
	for _, tc := range []struct {
		job  *api.Job
		path string
	}{{service, "nomad/jobs/hello"}, {release, "nomad/jobs/hello-release-v7"}} {
		data, _ := json.Marshal(tc.job)
		for _, secret := range []string{"s3cr3t-value", "postgres://db/hello"} {
			if bytes.Contains(data, []byte(secret)) {
				t.Errorf("job %s contains the config value %q", *tc.job.ID, secret)
			}
		}
		for _, g := range tc.job.TaskGroups {
			task := g.Tasks[0]
			tmpl := configTemplate(t, task)
			if want := `nomadVar "` + tc.path + `"`; !strings.Contains(tmpl, want) || !strings.Contains(tmpl, ".v7.Value") {
				t.Errorf("job %s task %s: template does not read item v7 of %s:\n%s", *tc.job.ID, task.Name, tc.path, tmpl)
			}
			if task.Env["DROVER_RELEASE"] != "v7" {
				t.Errorf("job %s task %s: DROVER_RELEASE = %q, want drover's metadata as plain env", *tc.job.ID, task.Name, task.Env["DROVER_RELEASE"])
			}
		}
	}
}

// TestConfigJSON: a release's config item holds every value exactly, and
// refuses what a variable or an environment cannot hold.
func TestConfigJSON(t *testing.T) {
	env := map[string]string{"A": "quote \" newline \n dollar $HOME equals a=b amp & <tag>", "EMPTY": "", "DROVER_APP": "hello"}
	got, err := nomad.ConfigJSON(env)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]string
	if err := json.Unmarshal([]byte(got), &back); err != nil {
		t.Fatal(err)
	}
	if len(back) != 2 || back["A"] != env["A"] || back["EMPTY"] != "" {
		t.Errorf("config item %s decodes to %q; want A and EMPTY exactly, without drover's metadata", got, back)
	}
	if strings.Contains(got, `\u0026`) {
		t.Errorf("config item %s escapes '&', spending the variable's 64 KiB", got)
	}
	for _, bad := range []map[string]string{{"1A": "x"}, {"A-B": "x"}, {"A=B": "x"}, {"A": "\xff\xfe"}} {
		if _, err := nomad.ConfigJSON(bad); !errors.Is(err, pipelines.ErrInvalid) {
			t.Errorf("ConfigJSON(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestRenderInvalid(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*regions.Deployment)
	}{
		{"no slug URL", func(d *regions.Deployment) { d.Slug.URL = "" }},
		{"no digest", func(d *regions.Deployment) { d.Slug.Digest = "" }},
		{"bad app name", func(d *regions.Deployment) { d.App = "Hello_World" }},
		{"no release", func(d *regions.Deployment) { d.Release = 0 }},
		{"only release process", func(d *regions.Deployment) {
			d.Procfile = pipelines.Procfile{{Type: "release", Command: "./migrate"}}
		}},
		{"formation runs unknown type", func(d *regions.Deployment) { d.Formation = pipelines.Formation{"web": 1, "clock": 1} }},
		{"formation scales release", func(d *regions.Deployment) { d.Formation = pipelines.Formation{"release": 1} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := deployment(pipelines.Formation{"web": 1})
			tt.mod(&d)
			_, err := nomad.Render(nomad.JobInput{Spec: spec(nil), Deployment: d})
			if !errors.Is(err, pipelines.ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
		})
	}
	// A type the Procfile lacks at count 0 is harmless (a removed process).
	d := deployment(pipelines.Formation{"web": 1, "clock": 0})
	if _, err := nomad.Render(nomad.JobInput{Spec: spec(nil), Deployment: d}); err != nil {
		t.Errorf("count-0 unknown type: %v", err)
	}
}

// TestOverlayRepoTemplate: a repository's job file asking for a volume, a
// higher priority and its own constraints gets none of them by default,
// only what the app needs to run; the operator can allow more.
// golden compares a rendered job with its golden file, which -update
// rewrites.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the rendered job (go test -update rewrites it); got:\n%s", path, got)
	}
}

func TestOverlayRepoTemplate(t *testing.T) {
	op := &api.Job{Priority: new(50), Constraints: []*api.Constraint{{LTarget: "${node.class}", RTarget: "apps", Operand: "="}},
		Meta: map[string]string{"team": "platform"}}
	repo := &api.Job{Priority: new(100), Constraints: []*api.Constraint{{LTarget: "${node.class}", RTarget: "prod-db", Operand: "="}},
		Meta: map[string]string{"team": "attacker", "owner": "payments"},
		TaskGroups: []*api.TaskGroup{{Name: new("web"),
			Volumes: map[string]*api.VolumeRequest{"host": {Name: "host", Type: "host", Source: "root"}},
			Tasks:   []*api.Task{{Name: "web", Resources: &api.Resources{CPU: new(500)}, VolumeMounts: []*api.VolumeMount{{Volume: new("host"), Destination: new("/host")}}}},
		}}}
	got, err := nomad.OverlayRepoTemplate(op, repo, pipelines.DefaultRepoJobFields)
	if err != nil {
		t.Fatal(err)
	}
	web := got.TaskGroups[0]
	switch {
	case *got.Priority != 50:
		t.Errorf("priority = %d, want the operator's 50", *got.Priority)
	case got.Constraints[0].RTarget != "apps" || len(got.Constraints) != 1:
		t.Errorf("constraints = %v, want the operator's", got.Constraints)
	case len(web.Volumes) != 0 || len(web.Tasks[0].VolumeMounts) != 0:
		t.Errorf("the repository got a volume: %v", web.Volumes)
	case *web.Tasks[0].Resources.CPU != 500:
		t.Errorf("resources = %v, want the repository's", web.Tasks[0].Resources)
	case got.Meta["team"] != "platform" || got.Meta["owner"] != "payments":
		t.Errorf("meta = %v, want the operator's keys kept and the repository's added", got.Meta)
	}
	if *op.Priority != 50 || len(op.TaskGroups) != 0 {
		t.Error("the operator's template was modified")
	}
	// The operator may allow volumes and priority.
	got, _ = nomad.OverlayRepoTemplate(op, repo, []string{pipelines.RepoJobVolumes, pipelines.RepoJobPriority})
	if *got.Priority != 100 || len(got.TaskGroups[0].Volumes) != 1 || got.TaskGroups[0].Tasks[0].Resources != nil {
		t.Errorf("with volumes and priority allowed: priority %d, volumes %v, resources %v", *got.Priority, got.TaskGroups[0].Volumes, got.TaskGroups[0].Tasks[0].Resources)
	}
}

// FuzzOverlayRepoTemplate lays any repository job file (Nomad JSON, as
// a repository's drover.nomad.json is read) over an operator template:
// it never panics, never changes the operator's template, and never lets
// the repository set priority, constraints, namespace or volumes, which
// the default repo_job_fields do not allow.
func FuzzOverlayRepoTemplate(f *testing.F) {
	f.Add([]byte(`{"Priority": 100, "Namespace": "prod", "Constraints": [{"LTarget": "${node.class}", "RTarget": "db"}],
		"TaskGroups": [{"Name": "web", "Volumes": {"h": {"Type": "host", "Source": "root"}},
		"Tasks": [{"Name": "web", "Resources": {"CPU": 500}, "VolumeMounts": [{"Volume": "h", "Destination": "/h"}]}]}]}`))
	f.Add([]byte(`{"TaskGroups": [null, {"Name": null, "Tasks": [null]}], "Meta": {"a": "b"}}`))
	f.Add([]byte(`{"Affinities": [null], "Spreads": [{"Attribute": "x"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var repo api.Job
		if json.Unmarshal(data, &repo) != nil {
			return
		}
		op := &api.Job{Priority: new(50), Namespace: new("apps"), Constraints: []*api.Constraint{{LTarget: "${node.class}", RTarget: "apps", Operand: "="}},
			Meta: map[string]string{"team": "platform"}}
		before, _ := json.Marshal(op)
		got, err := nomad.OverlayRepoTemplate(op, &repo, pipelines.DefaultRepoJobFields)
		if after, _ := json.Marshal(op); string(after) != string(before) {
			t.Fatalf("the operator's template changed: %s", after)
		}
		if err != nil || got == nil {
			return
		}
		if got.Priority == nil || *got.Priority != 50 || got.Namespace == nil || *got.Namespace != "apps" ||
			len(got.Constraints) != 1 || got.Constraints[0].RTarget != "apps" {
			t.Fatalf("the repository set the operator's fields: %+v", got)
		}
		for _, g := range got.TaskGroups {
			if g == nil {
				continue
			}
			if len(g.Volumes) != 0 || len(g.Constraints) != 0 {
				t.Fatalf("group %v got volumes or constraints", g.Name)
			}
			for _, task := range g.Tasks {
				if task != nil && (len(task.VolumeMounts) != 0 || len(task.Constraints) != 0) {
					t.Fatalf("task %s got volume mounts or constraints", task.Name)
				}
			}
		}
	})
}

// FuzzRender renders a deployment under any operator job template (Nomad
// JSON, as a region's job_template is read): Render never panics, never
// modifies the template, and whatever the template says, the job's ID,
// type, region, namespace and datacenters, its groups' counts and their
// tasks' drivers and artifacts stay drover's.
func FuzzRender(f *testing.F) {
	seed, err := os.ReadFile(filepath.Join("testdata", "template.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"ID": "other", "Type": "batch", "Region": "x", "Namespace": "y", "Datacenters": ["z"],
		"TaskGroups": [{"Name": "web", "Count": 50, "Tasks": [{"Name": "web", "Driver": "docker", "Artifacts": [{"GetterSource": "http://evil"}]}]}]}`))
	f.Add([]byte(`{"TaskGroups": [null, {"Name": "worker", "Tasks": [null, {}]}], "Meta": {"drover.release": "99"}}`))
	// want is the job without a template: what drover's fields must stay.
	want, err := nomad.Render(nomad.JobInput{Spec: spec(nil), Deployment: deployment(pipelines.Formation{"web": 2, "worker": 1})})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var tmpl api.Job
		if json.Unmarshal(data, &tmpl) != nil {
			return
		}
		before, _ := json.Marshal(&tmpl)
		in := nomad.JobInput{Spec: spec(nil), Deployment: deployment(pipelines.Formation{"web": 2, "worker": 1}), Template: &tmpl}
		job, err := nomad.Render(in)
		if after, _ := json.Marshal(&tmpl); string(after) != string(before) {
			t.Fatalf("the template changed: %s", after)
		}
		if err != nil {
			return
		}
		if *job.ID != *want.ID || *job.Type != *want.Type || *job.Region != *want.Region || *job.Namespace != *want.Namespace ||
			strings.Join(job.Datacenters, ",") != strings.Join(want.Datacenters, ",") || len(job.TaskGroups) != len(want.TaskGroups) {
			t.Fatalf("the template took drover's job fields: %s %s %s %s %v, %d groups", *job.ID, *job.Type, *job.Region, *job.Namespace, job.Datacenters, len(job.TaskGroups))
		}
		for i, g := range job.TaskGroups {
			w := want.TaskGroups[i]
			if *g.Name != *w.Name || *g.Count != *w.Count || len(g.Tasks) != len(w.Tasks) {
				t.Fatalf("group %d: %s count %d with %d tasks, want %s count %d", i, *g.Name, *g.Count, len(g.Tasks), *w.Name, *w.Count)
			}
			for j, task := range g.Tasks {
				wt := w.Tasks[j]
				if task.Driver != wt.Driver || len(task.Artifacts) != len(wt.Artifacts) || *task.Artifacts[0].GetterSource != *wt.Artifacts[0].GetterSource {
					t.Fatalf("task %s: driver %s, artifacts %v", task.Name, task.Driver, task.Artifacts)
				}
			}
		}
	})
}
