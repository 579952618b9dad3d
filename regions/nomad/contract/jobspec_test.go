package contract_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
)

// jobspecFile is drover's own Nomad job, from this package's directory.
var jobspecFile = filepath.Join("..", "..", "..", "deployments", "nomad", "drover.nomad.hcl")

// jobspecVars are what the jobspec needs to parse, as a variables file,
// except what drover runs from (artifact or image), which each test adds.
// The counts differ from the defaults so the test sees they are applied.
// config is content, not a path: the agent's parser reads no files.
const jobspecVars = `
temporal_address = "temporal.example.com:7233"
slug_store       = "s3://drover-slugs?endpoint=https://objects.example.com"
public_url       = "https://drover.example.com"
server_count     = 3
worker_count     = 4
config           = <<EOT
github:
  webhook_secret_env: DROVER_WEBHOOK_SECRET
regions:
  eu: { driver: nomad, address: "https://nomad.example.com:4646", token_env: NOMAD_TOKEN }
pipelines:
  hello:
    repo: octo-org/hello
    stages:
      staging: { app: hello-staging, branch: main, regions: [eu] }
EOT
`

const jobspecArtifact = `artifact = "https://releases.example.com/drover_linux_amd64.tar.gz?checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000"`

// jobspecClient is a client for the agent the contract suite runs against.
func jobspecClient(t *testing.T) *api.Client {
	t.Helper()
	if os.Getenv("NOMAD_ADDR") == "" {
		t.Skip("NOMAD_ADDR is not set: the Nomad contract suite needs a real agent to parse and validate deployments/nomad/drover.nomad.hcl (start `nomad agent -dev` and set NOMAD_ADDR=http://127.0.0.1:4646)")
	}
	// DefaultConfig reads NOMAD_ADDR, NOMAD_TOKEN, NOMAD_REGION and the TLS
	// variables, as the nomad CLI does.
	c, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// parseJobspec has the agent parse the jobspec with vars, canonicalized as
// `nomad job run` would submit it.
func parseJobspec(t *testing.T, c *api.Client, vars string) (*api.Job, error) {
	t.Helper()
	hcl, err := os.ReadFile(jobspecFile)
	if err != nil {
		t.Fatal(err)
	}
	return c.Jobs().ParseHCLOpts(&api.JobsParseRequest{JobHCL: string(hcl), Variables: vars, Canonicalize: true})
}

// TestJobspec keeps drover's own jobspec valid on a real Nomad and holding
// what deployments/nomad/README.md promises about it.
func TestJobspec(t *testing.T) {
	c := jobspecClient(t)
	job, err := parseJobspec(t, c, jobspecArtifact+jobspecVars)
	if err != nil {
		t.Fatalf("Nomad could not parse %s: %v", jobspecFile, err)
	}
	resp, _, err := c.Jobs().Validate(job, &api.WriteOptions{Region: os.Getenv("NOMAD_REGION")})
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	if resp.Error != "" || len(resp.ValidationErrors) > 0 {
		t.Fatalf("Nomad refuses the job: %s %v", resp.Error, resp.ValidationErrors)
	}
	if resp.Warnings != "" {
		t.Logf("Nomad warns: %s", resp.Warnings)
	}

	if got := valueOf(job.ID); got != "drover" {
		t.Errorf("job ID = %q, want drover: the job binds its ACL policy and Nomad Variables path by that name", got)
	}
	server, worker := groupNamed(t, job, "server"), groupNamed(t, job, "worker")
	if server == nil || worker == nil {
		t.FailNow()
	}
	for _, tc := range []struct {
		g    *api.TaskGroup
		want int
	}{{server, 3}, {worker, 4}} {
		if got := valueOf(tc.g.Count); got != tc.want {
			t.Errorf("group %s count = %d, want %d from the variables", *tc.g.Name, got, tc.want)
		}
	}

	t.Run("server", func(t *testing.T) {
		checkUpdate(t, server, "checks")
		svc := serviceNamed(server, "drover")
		if svc == nil {
			t.Fatalf("no service drover among %v", serviceNames(server.Services))
		}
		if svc.Provider != "nomad" {
			t.Errorf("service provider = %q, want nomad", svc.Provider)
		}
		ready := checkOnPath(svc, "/readyz")
		if ready == nil {
			t.Fatal("the drover service has no check on /readyz, so updates are not gated on readiness")
		}
		if ready.Type != "http" || ready.Interval != 5*time.Second || ready.Timeout != 2*time.Second {
			t.Errorf("/readyz check = %s every %v, timeout %v; want http every 5s, timeout 2s", ready.Type, ready.Interval, ready.Timeout)
		}
		if ready.CheckRestart != nil {
			t.Error("the /readyz check restarts the task: an outage of the database would restart every server")
		}
		task := onlyTask(t, server)
		if !slices.ContainsFunc(task.Config["args"].([]any), func(a any) bool { return strings.Contains(a.(string), "${NOMAD_PORT_http}") }) {
			t.Errorf("server args %v do not listen on the http port", task.Config["args"])
		}
		checkTask(t, task, 30*time.Second)
	})

	t.Run("worker", func(t *testing.T) {
		checkUpdate(t, worker, "task_states")
		if len(worker.Services) > 0 {
			t.Errorf("worker registers services %v; it serves nothing", serviceNames(worker.Services))
		}
		checkTask(t, onlyTask(t, worker), 60*time.Second)
	})
}

// TestJobspecDocker checks the other task driver: an image instead of the
// artifact.
func TestJobspecDocker(t *testing.T) {
	c := jobspecClient(t)
	job, err := parseJobspec(t, c, `image = "registry.example.com/drover:1.0"`+jobspecVars)
	if err != nil {
		t.Fatalf("parse with image: %v", err)
	}
	for _, g := range job.TaskGroups {
		task := onlyTask(t, g)
		if task.Driver != "docker" || task.Config["image"] != "registry.example.com/drover:1.0" || len(task.Artifacts) > 0 {
			t.Errorf("group %s: driver %s, config %v, %d artifacts; want docker with the image and no artifact", *g.Name, task.Driver, task.Config, len(task.Artifacts))
		}
	}
}

// TestJobspecWorkloadIdentity checks the switch that makes NOMAD_TOKEN
// the task's workload identity, for Nomad 1.7 and newer.
func TestJobspecWorkloadIdentity(t *testing.T) {
	c := jobspecClient(t)
	job, err := parseJobspec(t, c, jobspecArtifact+jobspecVars+"nomad_token_from_identity = true\n")
	if err != nil {
		t.Fatalf("parse with nomad_token_from_identity: %v", err)
	}
	for _, g := range job.TaskGroups {
		if task := onlyTask(t, g); !identityInEnv(task) {
			t.Errorf("task %s: nomad_token_from_identity = true does not put its workload identity in NOMAD_TOKEN", task.Name)
		}
	}
}

// identityInEnv says whether the task's default workload identity is in
// its environment. Nomad 1.6 returns it as Identity; later versions may
// list it among Identities, named "default" or not at all.
func identityInEnv(task *api.Task) bool {
	ids := append([]*api.WorkloadIdentity{task.Identity}, task.Identities...)
	return slices.ContainsFunc(ids, func(id *api.WorkloadIdentity) bool {
		return id != nil && id.Env && (id.Name == "" || id.Name == "default")
	})
}

// TestJobspecNeedsSomethingToRun checks that a job with neither artifact
// nor image is refused when parsed, saying what to set.
func TestJobspecNeedsSomethingToRun(t *testing.T) {
	c := jobspecClient(t)
	_, err := parseJobspec(t, c, jobspecVars)
	if err == nil || !strings.Contains(err.Error(), "-var artifact=") {
		t.Fatalf("parse with no artifact or image = %v, want an error naming -var artifact=", err)
	}
}

func checkUpdate(t *testing.T, g *api.TaskGroup, health string) {
	t.Helper()
	u := g.Update
	if u == nil {
		t.Fatalf("group %s has no update block", *g.Name)
	}
	if !valueOf(u.AutoRevert) {
		t.Errorf("group %s: auto_revert is off, so a failed upgrade of drover stays failed", *g.Name)
	}
	if got := valueOf(u.HealthCheck); got != health {
		t.Errorf("group %s: health_check = %q, want %q", *g.Name, got, health)
	}
	if got := valueOf(u.MaxParallel); got != 1 {
		t.Errorf("group %s: max_parallel = %d, want 1", *g.Name, got)
	}
}

// checkTask asserts what every drover task needs: a graceful stop of at
// least drain, its secrets from Nomad Variables as environment, drover.yaml
// rendered where --config points, and NOMAD_TOKEN from its identity.
func checkTask(t *testing.T, task *api.Task, drain time.Duration) {
	t.Helper()
	if got := valueOf(task.KillTimeout); got < drain {
		t.Errorf("task %s: kill_timeout = %v, want at least %v to stop gracefully", task.Name, got, drain)
	}
	if task.KillSignal != "SIGTERM" {
		t.Errorf("task %s: kill_signal = %q, want SIGTERM", task.Name, task.KillSignal)
	}
	var secrets, config bool
	for _, tmpl := range task.Templates {
		switch valueOf(tmpl.DestPath) {
		case "secrets/drover.env":
			secrets = true
			if !valueOf(tmpl.Envvars) {
				t.Errorf("task %s: secrets/drover.env is not read as environment (env = true)", task.Name)
			}
			if !strings.Contains(valueOf(tmpl.EmbeddedTmpl), `nomadVar "nomad/jobs/drover"`) {
				t.Errorf("task %s: secrets/drover.env does not read nomadVar \"nomad/jobs/drover\":\n%s", task.Name, valueOf(tmpl.EmbeddedTmpl))
			}
		case "local/drover.yaml":
			config = true
			if !strings.Contains(valueOf(tmpl.EmbeddedTmpl), "webhook_secret_env: DROVER_WEBHOOK_SECRET") {
				t.Errorf("task %s: local/drover.yaml is not the config variable:\n%s", task.Name, valueOf(tmpl.EmbeddedTmpl))
			}
		}
	}
	if !secrets || !config {
		t.Errorf("task %s: templates for secrets/drover.env (%v) and local/drover.yaml (%v) expected", task.Name, secrets, config)
	}
	if !slices.Contains(task.Config["args"].([]any), "${NOMAD_TASK_DIR}/drover.yaml") {
		t.Errorf("task %s: args %v do not pass the rendered drover.yaml", task.Name, task.Config["args"])
	}
	for _, k := range []string{"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "DROVER_SLUG_STORE", "DROVER_PUBLIC_URL"} {
		if task.Env[k] == "" {
			t.Errorf("task %s: env %s is not set", task.Name, k)
		}
	}
	// Nomad 1.6 registers no job with a workload identity token, so by
	// default NOMAD_TOKEN is the stored one, which the identity would hide.
	if identityInEnv(task) {
		t.Errorf("task %s: its workload identity is NOMAD_TOKEN by default", task.Name)
	}
	if task.Driver == "exec" && (len(task.Artifacts) != 1 || !strings.HasPrefix(valueOf(task.Artifacts[0].GetterSource), "https://releases.example.com/")) {
		t.Errorf("task %s: artifacts %v, want the drover tarball", task.Name, task.Artifacts)
	}
}

func groupNamed(t *testing.T, job *api.Job, name string) *api.TaskGroup {
	t.Helper()
	for _, g := range job.TaskGroups {
		if valueOf(g.Name) == name {
			return g
		}
	}
	t.Errorf("job has no group %q", name)
	return nil
}

func onlyTask(t *testing.T, g *api.TaskGroup) *api.Task {
	t.Helper()
	if len(g.Tasks) != 1 {
		t.Fatalf("group %s has %d tasks, want 1", *g.Name, len(g.Tasks))
	}
	return g.Tasks[0]
}

func serviceNamed(g *api.TaskGroup, name string) *api.Service {
	for _, s := range g.Services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func checkOnPath(s *api.Service, path string) *api.ServiceCheck {
	for i := range s.Checks {
		if s.Checks[i].Path == path {
			return &s.Checks[i]
		}
	}
	return nil
}

func serviceNames(ss []*api.Service) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Name)
	}
	return out
}

func valueOf[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
