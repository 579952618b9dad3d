package nomad

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
)

// Meta keys drover stamps on every job it registers, so any region can be
// asked which release it runs and drover can tell its own jobs from others.
const (
	MetaApp       = "drover.app"
	MetaRelease   = "drover.release"
	MetaSlug      = "drover.slug"
	MetaCommit    = "drover.commit"
	MetaTask      = "drover.task"
	MetaManagedBy = "drover.managed-by"

	// ManagedBy is the value of MetaManagedBy.
	ManagedBy = "drover"
)

// Names inside the jobs drover renders.
const (
	// PortLabel is the dynamic port web listens on; $PORT is set from it.
	PortLabel = "http"
	// SlugDir is where the artifact block unpacks the slug, relative to the
	// task directory (the working directory of exec and raw_exec tasks).
	SlugDir = "local/app"
	// DefaultServiceProvider registers web's service in Nomad's own catalog.
	DefaultServiceProvider = "nomad"
	// TagLive marks a registration of the release that serves; TagCanary
	// one of a release being rolled out, not yet promoted. Ingresses (and
	// drover's own URL lookup) route to live registrations only, so a
	// canary takes traffic only once Nomad promotes it and re-tags it.
	TagLive   = "drover-live"
	TagCanary = "drover-canary"
	// ShutdownDelay is how long a stopping allocation keeps serving after
	// its registration is removed, so requests routed just before still
	// get an answer.
	ShutdownDelay = 3 * time.Second
)

// UpdatePolicy is how fast Nomad decides a release is healthy or failed.
// drover's defaults fail a crashing or never-healthy release within about a
// minute, where Nomad's own defaults take five.
type UpdatePolicy struct {
	// MaxParallel is how many allocations of a group are replaced at once.
	MaxParallel int
	// MinHealthyTime is how long an allocation must stay healthy to count.
	MinHealthyTime time.Duration
	// HealthyDeadline is how long an allocation has to become healthy.
	HealthyDeadline time.Duration
	// ProgressDeadline fails the deployment when no allocation became healthy
	// for this long; it must exceed HealthyDeadline.
	ProgressDeadline time.Duration
	// CheckInterval and CheckTimeout drive web's HTTP check.
	CheckInterval time.Duration
	CheckTimeout  time.Duration
	// RestartInterval and RestartDelay bound the one local restart a crashed
	// process gets before its allocation fails.
	RestartInterval time.Duration
	RestartDelay    time.Duration
}

// DefaultUpdatePolicy is drover's UpdatePolicy.
func DefaultUpdatePolicy() UpdatePolicy {
	return UpdatePolicy{
		MaxParallel:      1,
		MinHealthyTime:   5 * time.Second,
		HealthyDeadline:  45 * time.Second,
		ProgressDeadline: 60 * time.Second,
		CheckInterval:    5 * time.Second,
		CheckTimeout:     2 * time.Second,
		RestartInterval:  30 * time.Second,
		RestartDelay:     2 * time.Second,
	}
}

// provenHealth is how often a release that ran healthy before is checked:
// every second, and healthy as soon as a check passes, so a rollback takes
// seconds rather than a new release's full window.
const provenHealth = time.Second

// forProven is p for a proven release (regions.Deployment.Proven).
func (p UpdatePolicy) forProven() UpdatePolicy {
	p = p.withDefaults()
	// Passing its HTTP check once is enough for a release already seen
	// healthy; Nomad's least min_healthy_time is none.
	p.MinHealthyTime = 0
	p.CheckInterval = min(p.CheckInterval, provenHealth)
	p.CheckTimeout = min(p.CheckTimeout, provenHealth) // Nomad's least
	return p
}

// withDefaults fills every zero field from DefaultUpdatePolicy.
func (p UpdatePolicy) withDefaults() UpdatePolicy {
	d := DefaultUpdatePolicy()
	if p.MaxParallel <= 0 {
		p.MaxParallel = d.MaxParallel
	}
	for _, f := range []struct{ v, def *time.Duration }{
		{&p.MinHealthyTime, &d.MinHealthyTime},
		{&p.HealthyDeadline, &d.HealthyDeadline},
		{&p.ProgressDeadline, &d.ProgressDeadline},
		{&p.CheckInterval, &d.CheckInterval},
		{&p.CheckTimeout, &d.CheckTimeout},
		{&p.RestartInterval, &d.RestartInterval},
		{&p.RestartDelay, &d.RestartDelay},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	return p
}

// JobInput is everything Render needs: no I/O happens while rendering.
type JobInput struct {
	Spec pipelines.RegionSpec
	// Deployment supplies App, Release, Slug (Digest and URL), Procfile,
	// Formation and Env. Progress is not used.
	Deployment regions.Deployment
	// Commit is the source commit, stamped as meta when set.
	Commit string
	// Template is an optional user job that extends the rendered one; see
	// Render for what it may set. It is never modified.
	Template *api.Job
	// Update tunes health and failure detection; zero fields take
	// DefaultUpdatePolicy's values.
	Update UpdatePolicy
}

// Render returns the Nomad service job that runs in.Deployment in
// in.Spec's region: one job named after the app, one task group per
// long-running process type (Procfile.Services) with its Formation count. A
// type whose count is 0, or that Formation omits, is rendered with count 0 so
// that scaling to zero stops it. A nil Formation means one of each type.
//
// A Template extends the job without taking control of it. From the template
// drover keeps the job's Constraints, Affinities, Spreads, Priority and any
// Meta keys drover does not set, and, for each template group named like a
// rendered group, that group's Constraints, Affinities, Spreads, Volumes,
// EphemeralDisk and extra Meta plus its first task's Resources and
// VolumeMounts. Everything else (IDs, region, namespace, type, datacenters,
// counts, tasks, services, networks, update, restart policy) is drover's;
// template groups drover does not render are dropped.
//
// Render returns an error matching pipelines.ErrInvalid for input that can
// never render: an invalid app name, a slug without URL or digest, a Procfile
// without long-running processes, or a Formation that runs a process type the
// Procfile does not define.
func Render(in JobInput) (*api.Job, error) {
	d := in.Deployment
	if err := checkInput(in); err != nil {
		return nil, err
	}
	services := d.Procfile.Services()
	if len(services) == 0 {
		return nil, fmt.Errorf("render job %q: Procfile defines no long-running process type: %w", d.App, pipelines.ErrInvalid)
	}
	formation := d.Formation
	if formation == nil {
		formation = pipelines.DefaultFormation(d.Procfile)
	}
	for _, typ := range formation.Types() {
		if _, ok := d.Procfile.Command(typ); (!ok || typ == pipelines.ReleaseProcess) && formation[typ] > 0 {
			return nil, fmt.Errorf("render job %q: formation runs process type %q, which the Procfile does not define: %w", d.App, typ, pipelines.ErrInvalid)
		}
	}
	upd := in.Update.withDefaults()
	if d.Proven {
		upd = in.Update.forProven()
	}

	job := baseJob(in, d.App, api.JobTypeService)
	for _, proc := range services {
		count := max(formation[proc.Type], 0)
		job.TaskGroups = append(job.TaskGroups, serviceGroup(in, job, proc, count, upd))
	}
	if err := mergeTemplate(job, in.Template); err != nil {
		return nil, err
	}
	return job, nil
}

// RenderReleaseJob returns the batch job that runs the release phase command
// of in.Deployment once, from its slug with its config vars: ID
// ReleaseJobID(app, release), one group and task named "release", no
// restarts and no rescheduling, so a failing release command fails once.
// in.Template applies as for Render (to a template group named "release").
// It does not validate its input; Region.RunTask does before registering.
func RenderReleaseJob(in JobInput, command string) *api.Job {
	job := taskJob(in, pipelines.ReleaseProcess, command)
	_ = mergeTemplate(job, in.Template) // a template Render accepts always copies
	return job
}

// ReleaseJobID is the ID of the release phase batch job of an app's release.
func ReleaseJobID(app string, release int) string {
	return TaskJobID(app, pipelines.ReleaseProcess, release)
}

// TaskJobID is the ID of the batch job running one-off task name of an
// app's release: "<app>-<name>-v<release>".
func TaskJobID(app, name string, release int) string {
	return fmt.Sprintf("%s-%s-v%d", app, name, release)
}

// renderTaskJob is RenderReleaseJob for any task name, with Render's checks.
func renderTaskJob(in JobInput, name, command string) (*api.Job, error) {
	if err := checkInput(in); err != nil {
		return nil, err
	}
	if !pipelines.ValidName(name) || command == "" {
		return nil, fmt.Errorf("render task job for %q: want a task name of lowercase letters, digits and '-', and a command: %w", in.Deployment.App, pipelines.ErrInvalid)
	}
	job := taskJob(in, name, command)
	if err := mergeTemplate(job, in.Template); err != nil {
		return nil, err
	}
	return job, nil
}

// taskJob renders a one-off batch job running command as task name.
func taskJob(in JobInput, name, command string) *api.Job {
	upd := in.Update.withDefaults()
	id := TaskJobID(in.Deployment.App, name, in.Deployment.Release)
	job := baseJob(in, id, api.JobTypeBatch)
	job.Meta[MetaTask] = name
	job.TaskGroups = []*api.TaskGroup{{
		Name:  new(name),
		Count: new(1),
		Tasks: []*api.Task{appTask(in, id, name, command, nil)},
		RestartPolicy: &api.RestartPolicy{
			Attempts: new(0),
			Interval: new(upd.RestartInterval),
			Delay:    new(upd.RestartDelay),
			Mode:     new("fail"),
		},
		ReschedulePolicy: &api.ReschedulePolicy{
			Attempts:  new(0),
			Unlimited: new(false),
		},
	}}
	return job
}

func checkInput(in JobInput) error {
	d := in.Deployment
	switch {
	case !pipelines.ValidName(d.App):
		return fmt.Errorf("render job: app name %q must be lowercase letters, digits and '-': %w", d.App, pipelines.ErrInvalid)
	case d.Release < 1:
		return fmt.Errorf("render job %q: release %d: want 1 or more: %w", d.App, d.Release, pipelines.ErrInvalid)
	case d.Slug.URL == "":
		return fmt.Errorf("render job %q v%d: slug has no URL for Nomad clients to fetch: %w", d.App, d.Release, pipelines.ErrInvalid)
	case d.Slug.Digest == "":
		return fmt.Errorf("render job %q v%d: slug has no digest: %w", d.App, d.Release, pipelines.ErrInvalid)
	}
	return nil
}

// baseJob is the job-level part shared by service and batch jobs.
func baseJob(in JobInput, id, typ string) *api.Job {
	d, n := in.Deployment, in.Spec.Nomad
	dcs := append([]string(nil), n.Datacenters...)
	if len(dcs) == 0 {
		dcs = []string{"*"}
	}
	job := &api.Job{
		ID:          new(id),
		Name:        new(id),
		Type:        new(typ),
		Region:      new(in.Spec.NomadRegion()),
		Datacenters: dcs,
		Meta: map[string]string{
			MetaApp:       d.App,
			MetaRelease:   strconv.Itoa(d.Release),
			MetaSlug:      d.Slug.Digest,
			MetaManagedBy: ManagedBy,
		},
	}
	if n.Namespace != "" {
		job.Namespace = new(n.Namespace)
	}
	if n.NodePool != "" {
		job.NodePool = new(n.NodePool)
	}
	if in.Commit != "" {
		job.Meta[MetaCommit] = in.Commit
	}
	return job
}

func serviceGroup(in JobInput, job *api.Job, proc pipelines.Process, count int, upd UpdatePolicy) *api.TaskGroup {
	web := proc.Type == pipelines.WebProcess
	var extraEnv map[string]string
	healthCheck := "task_states"
	if web {
		extraEnv = map[string]string{"PORT": "${NOMAD_PORT_" + PortLabel + "}"}
		healthCheck = "checks"
	}
	g := &api.TaskGroup{
		Name:  new(proc.Type),
		Count: new(count),
		Tasks: []*api.Task{appTask(in, *job.ID, proc.Type, proc.Command, extraEnv)},
		RestartPolicy: &api.RestartPolicy{
			Attempts: new(1),
			Interval: new(upd.RestartInterval),
			Delay:    new(upd.RestartDelay),
			Mode:     new("fail"),
		},
		Update: &api.UpdateStrategy{
			MaxParallel:      new(upd.MaxParallel),
			HealthCheck:      new(healthCheck),
			MinHealthyTime:   new(upd.MinHealthyTime),
			HealthyDeadline:  new(upd.HealthyDeadline),
			ProgressDeadline: new(upd.ProgressDeadline),
			// Blue/green with Nomad's own canaries: a destructive update
			// places a full new set beside the old one, which keeps
			// serving until every new allocation is healthy; only then
			// is the deployment promoted and the old set stopped. A
			// release that never becomes healthy fails with the old set
			// untouched, and auto_revert puts the job spec back so the
			// canaries go.
			AutoRevert:  new(true),
			Canary:      new(count),
			AutoPromote: new(count > 0),
		},
	}
	if web {
		provider := in.Spec.Nomad.ServiceProvider
		if provider == "" {
			provider = DefaultServiceProvider
		}
		g.Networks = []*api.NetworkResource{{DynamicPorts: []api.Port{{Label: PortLabel}}}}
		g.ShutdownDelay = new(ShutdownDelay)
		g.Services = []*api.Service{{
			Name:       WebServiceName(in.Deployment.App),
			PortLabel:  PortLabel,
			Provider:   provider,
			Tags:       append([]string{TagLive}, in.Deployment.ServiceTags...),
			CanaryTags: []string{TagCanary},
			Checks: []api.ServiceCheck{{
				Name:     "http",
				Type:     "http",
				Path:     "/",
				Interval: upd.CheckInterval,
				Timeout:  upd.CheckTimeout,
			}},
		}}
	}
	return g
}

// WebServiceName is the service web registers: "<app>-web".
func WebServiceName(app string) string { return app + "-" + pipelines.WebProcess }

// appTask runs command from the unpacked slug of job jobID with drover's
// metadata (DROVER_APP, ...) and extra as plain env, and the config vars
// from the release's item of the job's Nomad variable (ConfigVarPath),
// read by a template. A job spec is readable by anyone who may read the
// job (its versions, the UI), so it names no config value. extra wins over
// config vars, so an app cannot override PORT.
func appTask(in JobInput, jobID, name, command string, extra map[string]string) *api.Task {
	d := in.Deployment
	env := make(map[string]string, len(MetadataEnv)+len(extra))
	for _, k := range MetadataEnv {
		if v, ok := d.Env[k]; ok {
			env[k] = v
		}
	}
	for k, v := range extra {
		env[k] = v
	}
	return &api.Task{
		Name:   name,
		Driver: in.Spec.Nomad.Driver(),
		// Started as Heroku starts a dyno (pipelines.DynoScript): in the
		// slug's dir as HOME, its bin/ on PATH, .profile.d sourced.
		Config: map[string]any{
			"command": "/bin/sh",
			"args":    pipelines.DynoArgs(SlugDir, command)[1:],
		},
		Env:       env,
		Templates: []*api.Template{configTemplate(jobID, d.Release, slices.Sorted(maps.Keys(env)))},
		Artifacts: []*api.TaskArtifact{{
			GetterSource: new(d.Slug.URL),
			RelativeDest: new(SlugDir),
			GetterOptions: map[string]string{
				"checksum": "sha256:" + d.Slug.Digest,
				"archive":  "tar.gz",
			},
		}},
	}
}

// configTemplate renders the config vars of release from the variable of
// job jobID into the task's environment, leaving out the names in skip
// (set as plain env, which a template's env would override).
//
// Each value is written as a JSON string, which Nomad's env file parser
// reads back exactly (quotes, newlines, '$', '=', control characters). A
// missing release item fails the template (error_on_missing_key) rather
// than start the app without its config. change_mode noop: writing a newer
// release's item into the same variable never restarts or signals a
// running allocation, which keeps the config it started with until a new
// version replaces it.
func configTemplate(jobID string, release int, skip []string) *api.Template {
	var b strings.Builder
	fmt.Fprintf(&b, "{{ with nomadVar %q }}{{ range $k, $v := .%s.Value | parseJSON }}", ConfigVarPath(jobID), ConfigItem(release))
	if len(skip) > 0 {
		b.WriteString("{{ if and")
		for _, k := range skip {
			fmt.Fprintf(&b, " (ne $k %q)", k)
		}
		b.WriteString(" }}{{ $k }}={{ $v | toJSON }}\n{{ end }}")
	} else {
		b.WriteString("{{ $k }}={{ $v | toJSON }}\n")
	}
	b.WriteString("{{ end }}{{ end }}")
	return &api.Template{
		EmbeddedTmpl:  new(b.String()),
		DestPath:      new(ConfigEnvFile),
		Envvars:       new(true),
		ChangeMode:    new("noop"),
		ErrMissingKey: new(true),
	}
}

// mergeTemplate copies the extras Render documents from a deep copy of tmpl
// into job.
func mergeTemplate(job, tmpl *api.Job) error {
	if tmpl == nil {
		return nil
	}
	t, err := cloneJob(tmpl)
	if err != nil {
		return fmt.Errorf("job template: %w", err)
	}
	job.Constraints = t.Constraints
	job.Affinities = t.Affinities
	job.Spreads = t.Spreads
	job.Priority = t.Priority
	job.Meta = mergeMeta(job.Meta, t.Meta)
	for _, g := range job.TaskGroups {
		tg := templateGroup(t, *g.Name)
		if tg == nil {
			continue
		}
		g.Constraints = tg.Constraints
		g.Affinities = tg.Affinities
		g.Spreads = tg.Spreads
		g.Volumes = tg.Volumes
		g.EphemeralDisk = tg.EphemeralDisk
		if len(tg.Meta) > 0 {
			g.Meta = mergeMeta(g.Meta, tg.Meta)
		}
		// A null task (`"Tasks": [null]`) is valid JSON; it sets nothing.
		if len(tg.Tasks) > 0 && tg.Tasks[0] != nil && len(g.Tasks) > 0 {
			g.Tasks[0].Resources = tg.Tasks[0].Resources
			g.Tasks[0].VolumeMounts = tg.Tasks[0].VolumeMounts
		}
	}
	return nil
}

// mergeMeta returns ours plus the keys of theirs that ours lacks.
func mergeMeta(ours, theirs map[string]string) map[string]string {
	if ours == nil {
		ours = map[string]string{}
	}
	for k, v := range theirs {
		if _, ok := ours[k]; !ok {
			ours[k] = v
		}
	}
	return ours
}

func templateGroup(t *api.Job, name string) *api.TaskGroup {
	for _, g := range t.TaskGroups {
		if g != nil && g.Name != nil && *g.Name == name {
			return g
		}
	}
	return nil
}

// cloneJob deep-copies a job through its JSON form, the form Nomad's API
// itself reads.
func cloneJob(j *api.Job) (*api.Job, error) {
	data, err := json.Marshal(j)
	if err != nil {
		return nil, err
	}
	var out api.Job
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
