package pipelines

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Stage names a pipeline may have, in the order a build travels through them.
const (
	StageReview     = "review"
	StageStaging    = "staging"
	StageProduction = "production"
)

var stageOrder = []string{StageReview, StageStaging, StageProduction}

// Region drivers.
const (
	DriverLocal = "local"
	DriverNomad = "nomad"
)

// Config is a validated drover.yaml.
type Config struct {
	// File is where the config was read from, for error messages.
	File      string
	GitHub    GitHubConfig
	API       APIConfig
	Temporal  TemporalConfig
	Retention Retention
	Regions   map[string]RegionSpec
	Pipelines map[string]Pipeline
	// Builds, when set, runs builds as Nomad batch jobs; nil builds in
	// the worker's sandbox.
	Builds *BuildsSpec
}

// TemporalConfig overrides, for drover server and drover worker, what
// Temporal's own environment variables and profile file say
// (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY,
// TEMPORAL_TLS_*, TEMPORAL_PROFILE). drover dev ignores it: it runs its own.
type TemporalConfig struct {
	// Address is the frontend's host:port.
	Address   string `yaml:"address"`
	Namespace string `yaml:"namespace"`
	// APIKeyEnv names the variable holding an API key (Temporal Cloud).
	APIKeyEnv string `yaml:"api_key_env"`
	// TLS: client certificate and key for mTLS, a CA to trust, and the
	// server name to expect; relative paths are relative to drover.yaml.
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	CAFile     string `yaml:"ca_file"`
	ServerName string `yaml:"server_name"`
	// TLS turns TLS on without a client certificate (a server with a
	// public certificate); an API key or a certificate turns it on anyway.
	TLS bool `yaml:"tls"`
}

// GitHubConfig holds how drover talks to GitHub and checks its webhooks.
type GitHubConfig struct {
	// WebhookSecret is the secret itself; prefer WebhookSecretEnv.
	WebhookSecret string `yaml:"webhook_secret"`
	// WebhookSecretEnv names the environment variable holding the secret.
	WebhookSecretEnv string `yaml:"webhook_secret_env"`
	// TokenEnv names the environment variable holding a GitHub token,
	// used to fetch private repositories over https and to read CI state.
	TokenEnv string `yaml:"token_env"`
	// APIURL is GitHub's API; set it for GitHub Enterprise
	// (https://github.example.com/api/v3/).
	APIURL string `yaml:"api_url"`
	// AppID and PrivateKeyFile make drover act as a GitHub App: a JWT
	// signed with the key is exchanged for each installation's token.
	// They replace token_env; a relative path is relative to drover.yaml.
	AppID          int64  `yaml:"app_id"`
	PrivateKeyFile string `yaml:"private_key_file"`
}

// RegionSpec is one place apps run: a `local` region on this machine, or
// a Nomad region.
type RegionSpec struct {
	Name   string `yaml:"-"`
	Driver string `yaml:"driver"`
	// Nomad holds the nomad driver's settings; ignored by local.
	Nomad NomadSpec `yaml:",inline"`
}

// NomadSpec is how drover reaches one Nomad region and where apps run there.
type NomadSpec struct {
	// Address of the Nomad API, e.g. http://127.0.0.1:4646.
	Address string `yaml:"address"`
	// Region is Nomad's name for the region; default the key in drover.yaml.
	Region      string   `yaml:"region"`
	Namespace   string   `yaml:"namespace"`
	Datacenters []string `yaml:"datacenters"`
	NodePool    string   `yaml:"node_pool"`
	// TokenEnv names the environment variable holding the ACL token; the
	// token itself never goes in the file.
	TokenEnv string `yaml:"token_env"`
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// TaskDriver runs processes: exec (default) or raw_exec (development).
	TaskDriver string `yaml:"task_driver"`
	// SlugURL is the base URL at which Nomad clients fetch slugs from
	// drover; default drover's own listen address.
	SlugURL string `yaml:"slug_url"`
	// SlugURLTTL is how long a slug URL drover hands Nomad stays valid
	// (a Go duration, e.g. 720h); default DefaultSlugURLTTL.
	SlugURLTTL string `yaml:"slug_url_ttl"`
	// ServiceProvider registers web's service: nomad (default) or consul.
	ServiceProvider string `yaml:"service_provider"`
}

// Pipeline is a repository's path to production.
type Pipeline struct {
	Name string `yaml:"-"`
	Repo string `yaml:"repo"`
	// Source is where builds fetch the pipeline's code when it is not the
	// repository on GitHub: a file:// path (development, tests) or an
	// https mirror. Only drover.yaml sets it; a webhook payload's clone
	// URL is never used.
	Source string           `yaml:"source"`
	Stages map[string]Stage `yaml:"stages"`
}

// Stage is one step of a pipeline: the app it deploys to, the branch that
// auto-deploys into it, and its regions in rollout order.
type Stage struct {
	Name    string   `yaml:"-"`
	App     string   `yaml:"app"`
	Branch  string   `yaml:"branch"`
	Regions []string `yaml:"regions"`
	Rollout Rollout  `yaml:"rollout"`
	// JobTemplate is a Nomad job file (JSON or HCL), relative to
	// drover.yaml, whose extras (constraints, affinities, spreads, meta,
	// volumes…) are merged under what drover renders. LoadConfig reads it
	// into JobTemplateData.
	JobTemplate     string `yaml:"job_template"`
	JobTemplateData []byte `yaml:"-"`
	// RepoJobFields are what a repository's own drover.nomad.hcl may set
	// (RepoJobField* values); default DefaultRepoJobFields. Volumes,
	// priority, namespaces and constraints stay the operator's unless
	// listed here.
	RepoJobFields []string `yaml:"repo_job_fields"`
	// RequireApproval makes every release of the stage wait for
	// `drover approve` before anything changes, for ApprovalTimeout.
	RequireApproval bool   `yaml:"require_approval"`
	ApprovalTimeout string `yaml:"approval_timeout"`
	// WaitForCI makes pushes wait for the commit's checks and statuses to
	// pass (RequiredChecks among them) for at most CITimeout.
	WaitForCI      bool     `yaml:"wait_for_ci"`
	RequiredChecks []string `yaml:"required_checks"`
	CITimeout      string   `yaml:"ci_timeout"`
	// ReconcileInterval is how often an auto-deploy stage's branch head
	// (or the review stage's open pull requests) is read from GitHub to
	// catch a webhook that never arrived.
	ReconcileInterval string `yaml:"reconcile_interval"`

	// The review stage's settings: it has no app of its own, but one app
	// per open pull request, named ReviewAppName(pipeline, number).

	// TTL destroys a review app that had no deploy for that long.
	TTL string `yaml:"ttl"`
	// ConfigFrom names the stage whose app's config vars a new review app
	// starts with.
	ConfigFrom string `yaml:"config_from"`
	// DeployDrafts deploys draft pull requests too; by default they wait
	// for ready_for_review.
	DeployDrafts bool `yaml:"deploy_drafts"`
	// MaxApps caps the pipeline's review apps (0: no cap); opening one more
	// destroys the one idle longest.
	MaxApps int `yaml:"max_apps"`
	// URL is where the stage's app answers behind the team's ingress, with
	// {app} for the app's name, e.g. https://staging.example.com or, for
	// review apps (where {app} is required), https://{app}.review.example.com.
	// By default it is the address the region reports.
	URL string `yaml:"url"`
	// Ingress is how that URL reaches the app in Nomad regions: traefik
	// (Traefik's Nomad provider: a router for URL's host) or fabio
	// (urlprefix-host/path); empty adds no routing tags. Only live
	// registrations carry them: canaries take no traffic until promoted.
	Ingress string `yaml:"ingress"`
	// ServiceTags are added to the live registrations of web's service,
	// for other routers (Consul-based ones, custom Traefik middlewares).
	ServiceTags []string `yaml:"service_tags"`
}

// DefaultReviewTTL is how long a review app lives without a deploy.
const DefaultReviewTTL = 72 * time.Hour

// ReviewTTL returns how long a review app may go without a deploy.
func (s Stage) ReviewTTL() time.Duration { return durationOr(s.TTL, DefaultReviewTTL) }

// ReviewURL returns app's URL from the stage's url pattern, or "".
func (s Stage) ReviewURL(app string) string { return strings.ReplaceAll(s.URL, "{app}", app) }

// Fields a repository's job file may set, when drover.yaml allows them.
const (
	RepoJobResources     = "resources"
	RepoJobAffinities    = "affinities"
	RepoJobSpreads       = "spreads"
	RepoJobMeta          = "meta"
	RepoJobConstraints   = "constraints"
	RepoJobVolumes       = "volumes"
	RepoJobPriority      = "priority"
	RepoJobEphemeralDisk = "ephemeral_disk"
)

// RepoJobFieldNames are every field repo_job_fields may list.
var RepoJobFieldNames = []string{RepoJobResources, RepoJobAffinities, RepoJobSpreads, RepoJobMeta, RepoJobConstraints, RepoJobVolumes, RepoJobPriority, RepoJobEphemeralDisk}

// DefaultRepoJobFields are what a repository's job file may set when
// drover.yaml does not say: what the app needs to run, nothing that
// reaches the host, other jobs or the cluster's placement rules.
var DefaultRepoJobFields = []string{RepoJobResources, RepoJobAffinities, RepoJobSpreads, RepoJobMeta}

// AllowedRepoJobFields is the stage's repo_job_fields, or the default.
func (s Stage) AllowedRepoJobFields() []string {
	if s.RepoJobFields == nil {
		return DefaultRepoJobFields
	}
	return s.RepoJobFields
}

// RepoJobFields returns what app's repository job file may set.
func (c *Config) RepoJobFields(app string) []string {
	if _, st, ok := c.StageOfApp(app); ok {
		return st.AllowedRepoJobFields()
	}
	return DefaultRepoJobFields
}

// CheckDeploy says whether drover.yaml lets app be deployed from repo
// ("" skips that check) to regions: app must be a stage's (or a review
// app of a pipeline with a review stage), repo its pipeline's, and every
// region one of its stage's. It returns an error wrapping ErrInvalid
// otherwise: whatever reaches drover's workflows by another door than the
// webhook and the API cannot deploy what the config does not allow.
func (c *Config) CheckDeploy(app, repo string, regions []string) error {
	p, st, ok := c.StageOfApp(app)
	if !ok {
		return fmt.Errorf("%s: no stage of %s deploys app %q: %w", c.File, c.File, app, ErrInvalid)
	}
	if repo != "" && !strings.EqualFold(repo, p.Repo) {
		return fmt.Errorf("%s: app %q deploys pipelines.%s.repo (%s), not %s: %w", c.File, app, p.Name, p.Repo, repo, ErrInvalid)
	}
	for _, r := range regions {
		if !slices.Contains(st.Regions, r) {
			return fmt.Errorf("%s: region %q is not one of pipelines.%s.stages.%s.regions %v: %w", c.File, r, p.Name, st.Name, st.Regions, ErrInvalid)
		}
	}
	return nil
}

// Ingresses drover writes routing tags for.
const (
	IngressTraefik = "traefik"
	IngressFabio   = "fabio"
)

// Exposure is how an app is reached: its URL behind the ingress (empty:
// the address the region reports) and the tags its live web service
// registrations carry.
type Exposure struct {
	URL  string
	Tags []string
}

// Expose returns how the stage exposes app.
func (s Stage) Expose(app string) Exposure {
	e := Exposure{URL: s.ReviewURL(app)}
	if u, err := url.Parse(e.URL); err == nil && u.Host != "" {
		path := cmp.Or(u.Path, "/")
		switch s.Ingress {
		case IngressTraefik:
			rule := fmt.Sprintf("Host(`%s`)", u.Hostname())
			if path != "/" {
				rule += fmt.Sprintf(" && PathPrefix(`%s`)", path)
			}
			e.Tags = append(e.Tags, "traefik.enable=true", fmt.Sprintf("traefik.http.routers.%s.rule=%s", app, rule))
		case IngressFabio:
			e.Tags = append(e.Tags, "urlprefix-"+u.Host+path)
		}
	}
	e.Tags = append(e.Tags, s.ServiceTags...)
	return e
}

// Exposure returns how app is exposed by its stage.
func (c *Config) Exposure(app string) Exposure {
	if _, st, ok := c.StageOfApp(app); ok {
		return st.Expose(app)
	}
	return Exposure{}
}

// DefaultReconcileInterval is how often a stage's branch is checked for
// missed pushes.
const DefaultReconcileInterval = 2 * time.Minute

// ReconcileEvery returns how often the stage's branch is checked.
func (s Stage) ReconcileEvery() time.Duration {
	return durationOr(s.ReconcileInterval, DefaultReconcileInterval)
}

// DefaultCITimeout is how long a push waits for CI.
const DefaultCITimeout = 60 * time.Minute

// CIWait returns whether the stage waits for CI, and for how long.
func (s Stage) CIWait() (bool, time.Duration) {
	if !s.WaitForCI {
		return false, 0
	}
	return true, durationOr(s.CITimeout, DefaultCITimeout)
}

// durationOr parses a duration validated at load, or returns def when unset.
func durationOr(s string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d
	}
	return def
}

// DefaultApprovalTimeout is how long a release waits for approval.
const DefaultApprovalTimeout = 24 * time.Hour

// Approval returns whether the stage needs approval and for how long it
// waits. The timeout was validated when the config was loaded.
func (s Stage) Approval() (bool, time.Duration) {
	if !s.RequireApproval {
		return false, 0
	}
	return true, durationOr(s.ApprovalTimeout, DefaultApprovalTimeout)
}

// What a rollout does when a region fails, in Nomad Enterprise multiregion's
// words.
const (
	// FailAll puts every touched region back on the previous release,
	// including regions that already succeeded. drover's default.
	FailAll = "fail_all"
	// FailLocal reverts only the failed region and carries on.
	FailLocal = "fail_local"
	// FailStop stops at the failed region (reverting it) and leaves the
	// regions before it on the new release. drover.yaml says it as
	// on_failure: "", as Nomad does; Policy names it.
	FailStop = "stop"
)

// Rollout is how a stage's release moves through its regions: in listed
// order, MaxParallel at a time.
type Rollout struct {
	MaxParallel int `yaml:"max_parallel"`
	// OnFailure is nil when unset (FailAll); set to "" it means FailStop.
	OnFailure *string `yaml:"on_failure"`
}

// Policy resolves the defaults: one region at a time, fail_all.
func (r Rollout) Policy() (maxParallel int, onFailure string) {
	maxParallel, onFailure = r.MaxParallel, FailAll
	if maxParallel <= 0 {
		maxParallel = 1
	}
	if r.OnFailure != nil {
		onFailure = *r.OnFailure
		if onFailure == "" {
			onFailure = FailStop
		}
	}
	return maxParallel, onFailure
}

// ConfigError is a validation failure, naming the file, the key and what is
// wrong, e.g. `drover.yaml: pipelines.hello.stages.staging.regions[1]: unknown region "eu"`.
type ConfigError struct {
	File string
	Key  string
	Msg  string
}

func (e *ConfigError) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.File, e.Key, e.Msg)
}

// Is makes a ConfigError match ErrInvalid.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalid }

// LoadConfig reads and validates a drover.yaml. Every error names the file.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := ParseConfig(path, data)
	if err != nil {
		return nil, err
	}
	for _, f := range []*string{&c.GitHub.PrivateKeyFile, &c.Temporal.CertFile, &c.Temporal.KeyFile, &c.Temporal.CAFile} {
		if *f != "" && !filepath.IsAbs(*f) {
			*f = filepath.Join(filepath.Dir(path), *f)
		}
	}
	// Job templates are files beside drover.yaml, read once here so a
	// broken path fails at start, not at the first deploy.
	for _, pname := range sortedKeys(c.Pipelines) {
		p := c.Pipelines[pname]
		for _, sname := range sortedKeys(p.Stages) {
			s := p.Stages[sname]
			if s.JobTemplate == "" {
				continue
			}
			tpath := s.JobTemplate
			if !filepath.IsAbs(tpath) {
				tpath = filepath.Join(filepath.Dir(path), tpath)
			}
			b, err := os.ReadFile(tpath)
			if err != nil {
				return nil, &ConfigError{File: path, Key: "pipelines." + pname + ".stages." + sname + ".job_template", Msg: err.Error()}
			}
			s.JobTemplateData = b
			p.Stages[sname] = s
		}
	}
	return c, nil
}

// JobTemplate returns the job template of app's stage, if it has one.
func (c *Config) JobTemplate(app string) []byte {
	if _, st, ok := c.StageOfApp(app); ok {
		return st.JobTemplateData
	}
	return nil
}

// reviewAppRE matches a review app's name and captures its PR number.
var reviewAppRE = regexp.MustCompile(`^[a-z0-9-]+-pr-([1-9][0-9]*)$`)

// StageOfApp returns the pipeline and stage that deploy to app: the stage
// naming it, or the review stage for a review app's name.
func (c *Config) StageOfApp(app string) (Pipeline, Stage, bool) {
	for _, pname := range sortedKeys(c.Pipelines) {
		p := c.Pipelines[pname]
		for _, sname := range sortedKeys(p.Stages) {
			if s := p.Stages[sname]; s.App != "" && s.App == app {
				return p, s, true
			}
		}
	}
	if m := reviewAppRE.FindStringSubmatch(app); m != nil {
		// A long pipeline name is cut in its apps' names, so each pipeline
		// is asked what it would name this PR's app.
		n, _ := strconv.Atoi(m[1])
		for _, pname := range sortedKeys(c.Pipelines) {
			p := c.Pipelines[pname]
			st, ok := p.Stages[StageReview]
			if !ok {
				continue
			}
			if ReviewAppName(pname, n) == app {
				return p, st, true
			}
		}
	}
	return Pipeline{}, Stage{}, false
}

type rawConfig struct {
	GitHub    GitHubConfig          `yaml:"github"`
	API       APIConfig             `yaml:"api"`
	Temporal  TemporalConfig        `yaml:"temporal"`
	Retention Retention             `yaml:"retention"`
	Regions   map[string]RegionSpec `yaml:"regions"`
	Pipelines map[string]Pipeline   `yaml:"pipelines"`
	Builds    *BuildsSpec           `yaml:"builds"`
}

// APIConfig lists who may call drover's API.
type APIConfig struct {
	Tokens []APIToken `yaml:"tokens"`
}

// APIToken is one bearer token, read from an environment variable or
// given as its argon2id hash, allowed on some pipelines or, with none
// listed, on all of them.
type APIToken struct {
	Name     string `yaml:"name"`
	TokenEnv string `yaml:"token_env"`
	// TokenHash is the token's argon2id hash (ParseTokenHash), instead
	// of token_env, so neither the file nor the environment holds it.
	TokenHash string   `yaml:"token_hash"`
	Pipelines []string `yaml:"pipelines"`
	// Scopes limit what the token may do (Scope* values); a token
	// without the key may do everything, as before scopes existed.
	Scopes []string `yaml:"scopes"`
}

// API token scopes.
const (
	// ScopeRead reads apps, releases, builds, operations and review apps,
	// and config var names (not their values).
	ScopeRead = "read"
	// ScopeDeploy starts push-like operations: promote, rollback,
	// re-release, scale, auto-deploy, review apps.
	ScopeDeploy = "deploy"
	// ScopeConfig reads config var values and sets them.
	ScopeConfig = "config"
	// ScopeApprove approves or rejects releases waiting for approval.
	ScopeApprove = "approve"
	// ScopeAdmin is every scope.
	ScopeAdmin = "admin"
)

// Scopes are every scope a token may have.
var Scopes = []string{ScopeRead, ScopeDeploy, ScopeConfig, ScopeApprove, ScopeAdmin}

// ParseConfig parses and validates config data; file is used in errors only.
// Unknown keys are errors, so a typo never silently drops a setting.
func ParseConfig(file string, data []byte) (*Config, error) {
	var raw rawConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
		return nil, &ConfigError{File: file, Msg: yamlMessage(err)}
	}
	c := &Config{File: file, GitHub: raw.GitHub, API: raw.API, Temporal: raw.Temporal, Retention: raw.Retention, Regions: raw.Regions, Pipelines: raw.Pipelines, Builds: raw.Builds}
	if c.Regions == nil {
		c.Regions = map[string]RegionSpec{}
	}
	if c.Pipelines == nil {
		c.Pipelines = map[string]Pipeline{}
	}
	for name, r := range c.Regions {
		r.Name = name
		c.Regions[name] = r
	}
	for name, p := range c.Pipelines {
		p.Name = name
		for sn, s := range p.Stages {
			s.Name = sn
			p.Stages[sn] = s
		}
		c.Pipelines[name] = p
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// fieldRE rewrites yaml.v3's "field x not found in type pipelines.rawConfig",
// which names our Go types, into words about the file.
var fieldRE = regexp.MustCompile(`field (\S+) not found in type \S+`)

func yamlMessage(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, len(te.Errors))
		for i, m := range te.Errors {
			msgs[i] = fieldRE.ReplaceAllString(m, "unknown key $1")
		}
		return strings.Join(msgs, "; ")
	}
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

// nameRE keeps names valid as Nomad job IDs, DNS labels and directory names.
var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ValidEnvName reports whether k can name an environment variable, as a
// config var's name must.
func ValidEnvName(k string) bool { return envNameRE.MatchString(k) }

var repoRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$`)

// validateReview checks the review stage's own keys, and that no other
// stage uses them.
func (c *Config) validateReview(p Pipeline, sname string, s Stage, bad func(key, format string, args ...any) error) error {
	skey := "pipelines." + p.Name + ".stages." + sname
	if sname != StageReview {
		for _, k := range []struct {
			key string
			set bool
		}{{"ttl", s.TTL != ""}, {"config_from", s.ConfigFrom != ""}, {"deploy_drafts", s.DeployDrafts}, {"max_apps", s.MaxApps != 0}} {
			if k.set {
				return bad(skey+"."+k.key, "only the review stage has %s", k.key)
			}
		}
		return nil
	}
	switch {
	case s.App != "":
		return bad(skey+".app", "the review stage makes one app per pull request (%s); remove app", ReviewAppName(p.Name, 42))
	case s.Branch != "":
		return bad(skey+".branch", "review apps deploy pull requests, not a branch; remove branch")
	case s.RequireApproval:
		return bad(skey+".require_approval", "review apps deploy without approval")
	case s.MaxApps < 0:
		return bad(skey+".max_apps", "must be 0 (no cap) or more")
	case s.URL != "" && !strings.Contains(s.URL, "{app}"):
		return bad(skey+".url", "%q has no {app}; review apps need one URL each, like https://{app}.review.example.com", s.URL)
	}
	if s.ConfigFrom != "" {
		if _, ok := p.Stages[s.ConfigFrom]; !ok || s.ConfigFrom == StageReview {
			return bad(skey+".config_from", "unknown stage %q; want staging or production of this pipeline", s.ConfigFrom)
		}
	}
	return nil
}

// ReviewAppName is the app of pull request number in pipeline:
// <pipeline>-pr-<number>. It is a valid Nomad job ID and DNS label: a long
// pipeline name is cut so the name stays within 63 characters.
func ReviewAppName(pipeline string, number int) string {
	suffix := fmt.Sprintf("-pr-%d", number)
	if len(pipeline)+len(suffix) > 63 {
		pipeline = strings.TrimRight(pipeline[:63-len(suffix)], "-")
	}
	return pipeline + suffix
}

// ReviewStage returns the pipeline of repo and its review stage, if it
// has one. Repository names compare case-insensitively.
func (c *Config) ReviewStage(repo string) (Pipeline, Stage, bool) {
	for _, pname := range sortedKeys(c.Pipelines) {
		p := c.Pipelines[pname]
		if st, ok := p.Stages[StageReview]; ok && strings.EqualFold(p.Repo, repo) {
			return p, st, true
		}
	}
	return Pipeline{}, Stage{}, false
}

// ValidName reports whether s can name an app, a region or a pipeline.
func ValidName(s string) bool { return nameRE.MatchString(s) }

var commitRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

// ValidCommit reports whether s is a full commit SHA as git and GitHub
// write it: 40 lowercase hex digits.
func ValidCommit(s string) bool { return commitRE.MatchString(s) }

func (c *Config) validate() error {
	bad := func(key, format string, args ...any) error {
		return &ConfigError{File: c.File, Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	if c.GitHub.WebhookSecret != "" && c.GitHub.WebhookSecretEnv != "" {
		return bad("github", "set webhook_secret or webhook_secret_env, not both")
	}
	switch g := c.GitHub; {
	case g.AppID < 0:
		return bad("github.app_id", "%d is not a GitHub App ID; copy the App ID from the App's settings page", g.AppID)
	case g.AppID != 0 && g.PrivateKeyFile == "":
		return bad("github.private_key_file", "a GitHub App (app_id) needs the path of its private key (.pem)")
	case g.AppID == 0 && g.PrivateKeyFile != "":
		return bad("github.app_id", "private_key_file is set but app_id is not; set the GitHub App's ID")
	case g.AppID != 0 && g.TokenEnv != "":
		return bad("github", "set token_env or app_id with private_key_file, not both")
	}
	if u := c.GitHub.APIURL; u != "" {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
			return bad("github.api_url", "%q is not an http(s) URL; for GitHub Enterprise it looks like https://github.example.com/api/v3/", u)
		}
	}
	if err := c.Retention.validate(bad); err != nil {
		return err
	}
	if t := c.Temporal; t.Address != "" {
		if _, port, err := net.SplitHostPort(t.Address); err != nil || port == "" {
			return bad("temporal.address", "%q is not host:port, e.g. temporal.internal:7233", t.Address)
		}
	}
	if n := c.Temporal.APIKeyEnv; n != "" && !envNameRE.MatchString(n) {
		return bad("temporal.api_key_env", "%q is not an environment variable name; name the variable, not the key", n)
	}
	if (c.Temporal.CertFile == "") != (c.Temporal.KeyFile == "") {
		return bad("temporal", "set cert_file and key_file together")
	}
	for key, name := range map[string]string{"webhook_secret_env": c.GitHub.WebhookSecretEnv, "token_env": c.GitHub.TokenEnv} {
		if name != "" && !envNameRE.MatchString(name) {
			return bad("github."+key, "%q is not an environment variable name; name the variable, not its value", name)
		}
	}
	for _, name := range sortedKeys(c.Regions) {
		r := c.Regions[name]
		key := "regions." + name
		if !ValidName(name) {
			return bad(key, "region name must be lowercase letters, digits and '-'")
		}
		switch r.Driver {
		case DriverLocal:
			if r.Nomad.Address != "" {
				return bad(key+".address", "only nomad regions have an address; set driver: nomad")
			}
		case DriverNomad:
			if err := r.Nomad.validate(key, bad); err != nil {
				return err
			}
		case "":
			return bad(key+".driver", "missing; want %q or %q", DriverLocal, DriverNomad)
		default:
			return bad(key+".driver", "unknown driver %q; want %q or %q", r.Driver, DriverLocal, DriverNomad)
		}
	}
	if err := c.validateBuilds(bad); err != nil {
		return err
	}
	names := map[string]bool{}
	for i, tok := range c.API.Tokens {
		key := fmt.Sprintf("api.tokens[%d]", i)
		switch {
		case tok.Name == "":
			return bad(key+".name", "missing")
		case names[tok.Name]:
			return bad(key+".name", "token %q is named twice", tok.Name)
		case tok.TokenEnv != "" && tok.TokenHash != "":
			return bad(key, "set token_env or token_hash, not both")
		case tok.TokenHash != "":
			if _, err := ParseTokenHash(tok.TokenHash); err != nil {
				return bad(key+".token_hash", "%v", err)
			}
		case tok.TokenEnv == "":
			return bad(key+".token_env", "missing; name the environment variable that holds the token, or give token_hash")
		case !envNameRE.MatchString(tok.TokenEnv):
			return bad(key+".token_env", "%q is not an environment variable name; name the variable, not the token", tok.TokenEnv)
		}
		names[tok.Name] = true
		for j, sc := range tok.Scopes {
			if !slices.Contains(Scopes, sc) {
				return bad(fmt.Sprintf("%s.scopes[%d]", key, j), "unknown scope %q; want %s", sc, strings.Join(Scopes, ", "))
			}
		}
		for j, p := range tok.Pipelines {
			if _, ok := c.Pipelines[p]; !ok {
				return bad(fmt.Sprintf("%s.pipelines[%d]", key, j), "unknown pipeline %q", p)
			}
		}
	}
	apps := map[string]string{}
	// branches is the stage each repository's branch auto-deploys to, across
	// pipelines: a push deploys to one stage, so a second one would never
	// deploy.
	branches := map[string]string{}
	for _, pname := range sortedKeys(c.Pipelines) {
		p := c.Pipelines[pname]
		key := "pipelines." + pname
		if !ValidName(pname) {
			return bad(key, "pipeline name must be lowercase letters, digits and '-'")
		}
		if p.Repo == "" {
			return bad(key+".repo", "missing; want owner/name")
		}
		if !repoRE.MatchString(p.Repo) {
			return bad(key+".repo", "%q is not owner/name", p.Repo)
		}
		if err := validSource(p.Source); err != nil {
			return bad(key+".source", "%v", err)
		}
		if len(p.Stages) == 0 {
			return bad(key+".stages", "missing; want at least one of %s", strings.Join(stageOrder[1:], ", "))
		}
		for _, sname := range sortedKeys(p.Stages) {
			s := p.Stages[sname]
			skey := key + ".stages." + sname
			if sname != StageStaging && sname != StageProduction && sname != StageReview {
				return bad(skey, "unknown stage; want %s, %s or %s", StageReview, StageStaging, StageProduction)
			}
			if err := c.validateReview(p, sname, s, bad); err != nil {
				return err
			}
			if s.URL != "" {
				if u, err := url.Parse(strings.ReplaceAll(s.URL, "{app}", "app")); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return bad(skey+".url", "%q is not an http(s) URL like https://{app}.example.com", s.URL)
				}
			}
			switch s.Ingress {
			case "":
			case IngressTraefik, IngressFabio:
				if s.URL == "" {
					return bad(skey+".ingress", "%s routes by host: set url too, e.g. https://%s.example.com", s.Ingress, cmp.Or(s.App, "{app}"))
				}
			default:
				return bad(skey+".ingress", "unknown ingress %q; want %s or %s, or service_tags for another router", s.Ingress, IngressTraefik, IngressFabio)
			}
			for i, f := range s.RepoJobFields {
				if !slices.Contains(RepoJobFieldNames, f) {
					return bad(fmt.Sprintf("%s.repo_job_fields[%d]", skey, i), "unknown field %q; want some of %s", f, strings.Join(RepoJobFieldNames, ", "))
				}
			}
			// drover posts its own drover/<stage> status on every deploy;
			// requiring it would make a deploy wait for itself.
			for i, check := range s.RequiredChecks {
				if IsOwnStatusContext(check) {
					return bad(fmt.Sprintf("%s.required_checks[%d]", skey, i), "%q is a commit status drover itself posts (every %s* context is drover's); name your CI's checks instead", check, StatusContextPrefix)
				}
			}
			// Every stage's durations, the review stage's included.
			for _, dur := range []struct{ key, value, like string }{
				{"ttl", s.TTL, "72h"},
				{"ci_timeout", s.CITimeout, "60m"},
				{"approval_timeout", s.ApprovalTimeout, "30m or 24h"},
				{"reconcile_interval", s.ReconcileInterval, "2m"},
			} {
				if d, err := time.ParseDuration(dur.value); dur.value != "" && (err != nil || d <= 0) {
					return bad(skey+"."+dur.key, "%q is not a positive duration like %s", dur.value, dur.like)
				}
			}
			if sname == StageReview {
				// Its apps are made per pull request; what follows is
				// about a stage's one app.
				if len(s.Regions) == 0 {
					return bad(skey+".regions", "missing; want a list of region names")
				}
				seen := map[string]bool{}
				for i, r := range s.Regions {
					if _, ok := c.Regions[r]; !ok {
						return bad(fmt.Sprintf("%s.regions[%d]", skey, i), "unknown region %q; define it under regions", r)
					}
					if seen[r] {
						return bad(fmt.Sprintf("%s.regions[%d]", skey, i), "region %q listed twice", r)
					}
					seen[r] = true
				}
				continue
			}
			if s.App == "" {
				return bad(skey+".app", "missing")
			}
			if !ValidName(s.App) {
				return bad(skey+".app", "%q must be lowercase letters, digits and '-', at most 63", s.App)
			}
			if other, dup := apps[s.App]; dup {
				return bad(skey+".app", "app %q is already used by %s", s.App, other)
			}
			// A review app's name is <pipeline>-pr-<n>; a stage app named
			// so would be deployed over, and destroyed, by a pull request.
			if reviewAppRE.MatchString(s.App) {
				return bad(skey+".app", "%q is named like a review app (<pipeline>-pr-<number>); choose a name that does not end in -pr-<number>", s.App)
			}
			apps[s.App] = skey
			if len(s.Regions) == 0 {
				return bad(skey+".regions", "missing; want a list of region names")
			}
			seen := map[string]bool{}
			for i, r := range s.Regions {
				if _, ok := c.Regions[r]; !ok {
					return bad(fmt.Sprintf("%s.regions[%d]", skey, i), "unknown region %q; define it under regions", r)
				}
				if seen[r] {
					return bad(fmt.Sprintf("%s.regions[%d]", skey, i), "region %q listed twice", r)
				}
				seen[r] = true
			}
			if s.Rollout.MaxParallel < 0 {
				return bad(skey+".rollout.max_parallel", "must be 1 or more (0 or unset: one region at a time)")
			}
			if f := s.Rollout.OnFailure; f != nil && *f != FailAll && *f != FailLocal && *f != "" {
				return bad(skey+".rollout.on_failure", "unknown value %q; want fail_all, fail_local or \"\" (stop at the failed region)", *f)
			}
			if s.ReconcileInterval != "" && s.Branch == "" {
				return bad(skey+".reconcile_interval", "only a stage with a branch, or the review stage, is reconciled with GitHub")
			}
			if s.Branch != "" {
				repoBranch := strings.ToLower(p.Repo) + " " + s.Branch
				if other, dup := branches[repoBranch]; dup {
					return bad(skey+".branch", "%s's branch %q already auto-deploys to %s; a push deploys to one stage", p.Repo, s.Branch, other)
				}
				branches[repoBranch] = skey
			}
		}
	}
	return c.validateReviewNames(bad)
}

// validateReviewNames refuses two pipelines whose review apps would share
// names: ReviewAppName cuts a long pipeline name to fit 63 characters,
// so two long names with one beginning name the same apps, and one's
// pull request would deploy into (and its close destroy) the other's.
func (c *Config) validateReviewNames(bad func(key, format string, args ...any) error) error {
	var reviewed []string
	for _, pname := range sortedKeys(c.Pipelines) {
		if _, ok := c.Pipelines[pname].Stages[StageReview]; ok {
			reviewed = append(reviewed, pname)
		}
	}
	// The cut depends only on the number's length, so one number per
	// length stands for all of them.
	for digits, n := 1, 1; digits <= 10; digits, n = digits+1, n*10 {
		names := map[string]string{}
		for _, pname := range reviewed {
			app := ReviewAppName(pname, n)
			if other, dup := names[app]; dup {
				return bad("pipelines."+pname, "its review apps would have the same names as pipelines.%s's (%s for pull request %d); shorten one of the pipeline names", other, app, n)
			}
			names[app] = pname
		}
	}
	return nil
}

func (n NomadSpec) validate(key string, bad func(key, format string, args ...any) error) error {
	if n.Address == "" {
		return bad(key+".address", "missing; want the Nomad API address, e.g. http://127.0.0.1:4646")
	}
	if u, err := url.Parse(n.Address); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad(key+".address", "%q is not an http(s) URL", n.Address)
	}
	if n.TokenEnv != "" && !envNameRE.MatchString(n.TokenEnv) {
		return bad(key+".token_env", "%q is not an environment variable name; name the variable, not the token", n.TokenEnv)
	}
	switch n.TaskDriver {
	case "", "exec", "raw_exec":
	default:
		return bad(key+".task_driver", "unknown task driver %q; want exec or raw_exec", n.TaskDriver)
	}
	switch n.ServiceProvider {
	case "", "nomad", "consul":
	default:
		return bad(key+".service_provider", "unknown service provider %q; want nomad or consul", n.ServiceProvider)
	}
	if (n.CertFile == "") != (n.KeyFile == "") {
		return bad(key, "set cert_file and key_file together")
	}
	if n.SlugURL != "" {
		if u, err := url.Parse(n.SlugURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad(key+".slug_url", "%q is not an http(s) URL", n.SlugURL)
		}
	}
	if n.SlugURLTTL != "" {
		if d, err := time.ParseDuration(n.SlugURLTTL); err != nil || d < time.Hour {
			return bad(key+".slug_url_ttl", "%q is not a duration of an hour or more, e.g. 720h", n.SlugURLTTL)
		}
	}
	return nil
}

// DefaultSlugURLTTL is how long a slug URL stays valid by default. Nomad
// downloads the artifact again whenever it places an allocation: on a
// deploy, and also days later when it reschedules one off a lost or
// drained node. A grant that expired by then would keep the app from
// coming back, so the default outlives any release likely still running;
// a leaked URL is worth no more than the slug of that one digest.
const DefaultSlugURLTTL = 30 * 24 * time.Hour

// SlugGrantTTL is how long the slug URLs drover hands this region's Nomad
// clients stay valid: slug_url_ttl, or DefaultSlugURLTTL.
func (n NomadSpec) SlugGrantTTL() time.Duration { return durationOr(n.SlugURLTTL, DefaultSlugURLTTL) }

// NomadRegion is Nomad's own name for the region: Region, or the key.
func (r RegionSpec) NomadRegion() string {
	if r.Nomad.Region != "" {
		return r.Nomad.Region
	}
	return r.Name
}

// Driver is the Nomad task driver apps run with: exec unless set.
func (n NomadSpec) Driver() string {
	if n.TaskDriver == "" {
		return "exec"
	}
	return n.TaskDriver
}

// WebhookSecret returns the webhook secret from the config or the environment
// variable it names. It returns an error when none is set: go-github accepts
// unsigned payloads when the secret is empty, so drover must never run so.
func (c *Config) WebhookSecret(getenv func(string) string) (string, error) {
	if c.GitHub.WebhookSecret != "" {
		return c.GitHub.WebhookSecret, nil
	}
	if c.GitHub.WebhookSecretEnv != "" {
		if v := getenv(c.GitHub.WebhookSecretEnv); v != "" {
			return v, nil
		}
		return "", &ConfigError{File: c.File, Key: "github.webhook_secret_env",
			Msg: fmt.Sprintf("environment variable %s is empty; set it to the secret of the GitHub webhook", c.GitHub.WebhookSecretEnv)}
	}
	return "", &ConfigError{File: c.File, Key: "github", Msg: "no webhook secret: set webhook_secret_env (or webhook_secret)"}
}

// StageForPush returns the pipeline and stage a push to repo's branch
// auto-deploys to. Repository names compare case-insensitively, as GitHub's do.
func (c *Config) StageForPush(repo, branch string) (Pipeline, Stage, bool) {
	for _, pname := range sortedKeys(c.Pipelines) {
		p := c.Pipelines[pname]
		if !strings.EqualFold(p.Repo, repo) {
			continue
		}
		for _, sname := range sortedKeys(p.Stages) {
			if s := p.Stages[sname]; s.Branch != "" && s.Branch == branch {
				return p, s, true
			}
		}
	}
	return Pipeline{}, Stage{}, false
}

// App returns the app of that name, a stage's or a review app; ErrNotFound
// if no stage deploys to it.
func (c *Config) App(name string) (App, error) {
	p, s, ok := c.StageOfApp(name)
	if !ok {
		return App{}, fmt.Errorf("app %q: %w", name, ErrNotFound)
	}
	return App{Name: name, Pipeline: p.Name, Stage: s.Name, Repo: p.Repo, Branch: s.Branch, Regions: s.Regions}, nil
}

// Apps returns every stage's app, sorted by name; review apps come and go
// with pull requests and are in the ledger, not here.
func (c *Config) Apps() []App {
	var out []App
	for _, p := range c.Pipelines {
		for _, s := range p.Stages {
			if s.App == "" {
				continue
			}
			out = append(out, App{Name: s.App, Pipeline: p.Name, Stage: s.Name, Repo: p.Repo, Branch: s.Branch, Regions: s.Regions})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
