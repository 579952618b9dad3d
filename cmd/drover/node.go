package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/drover/drover/api"
	"github.com/drover/drover/deployments"
	"github.com/drover/drover/deployments/slugs"
	"github.com/drover/drover/deployments/sqlstore"
	"github.com/drover/drover/devstack"
	"github.com/drover/drover/gh"
	"github.com/drover/drover/metrics"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
	"github.com/drover/drover/regions/local"
	"github.com/drover/drover/regions/nomad"
	"github.com/drover/drover/sandbox"
	"github.com/drover/drover/web"
	"github.com/drover/drover/webhooks"
	"github.com/drover/drover/workflows"
)

// The modes a drover process runs in. dev is server with a worker, plus an
// embedded Temporal, SQLite, a slug directory, generated secrets and every
// local region; server and worker connect to what the team runs.
const (
	modeDev    = "dev"
	modeServer = "server"
	modeWorker = "worker"
)

// Variables production reads. They are the interface; keep them.
const (
	envDatabaseURL   = "DATABASE_URL"
	envConfigKey     = "DROVER_CONFIG_KEY"
	envWebhookSecret = "DROVER_WEBHOOK_SECRET"
	envAdminToken    = "DROVER_ADMIN_TOKEN"
	envPublicURL     = "DROVER_PUBLIC_URL"
	// envBuildCache is where sandboxed builds keep their Go and npm
	// caches; default <data>/build-cache.
	envBuildCache = "DROVER_BUILD_CACHE"
)

// workerStopTimeout is how long a stopping worker lets running activities
// finish. Activities heartbeat every 2 s with a 15 s timeout, so one that
// outlives this is retried on another worker within 15 s of the stop.
const workerStopTimeout = 20 * time.Second

// httpDrain bounds how long in-flight HTTP requests get at shutdown.
const httpDrain = 25 * time.Second

// NodeOptions say what one drover process runs.
type NodeOptions struct {
	Mode   string
	Config string
	// Data holds what this process keeps on its own disk: build scratch,
	// the slug cache, local regions' processes, and in dev (or a
	// single-node server) the databases and slugs themselves.
	Data   string
	Listen string
	// MetricsListen, when set, serves /metrics (and /healthz, /readyz)
	// there with no token.
	MetricsListen string
	// PublicURL is where drover's servers are reached: Nomad clients fetch
	// slugs from it and GitHub links to operations under it.
	PublicURL string
	// WithWorker runs the Temporal worker in the server's process.
	WithWorker bool
	// LocalRegions are the local regions this process's worker serves.
	LocalRegions []string
	// TemporalPort is the embedded Temporal frontend's port (dev).
	TemporalPort int
	// Sandbox is how builds, release phases and local apps run: auto,
	// bwrap or none (sandbox.ParseMode).
	Sandbox string
	// Getenv reads the environment; nil reads the process's.
	Getenv func(string) string
	// Sources set pipelines' source by repository (owner/name → git
	// URL) over drover.yaml's: drover dev --example builds the
	// repository it makes under the data dir.
	Sources map[string]string
}

func (o NodeOptions) getenv(k string) string {
	if o.Getenv != nil {
		return o.Getenv(k)
	}
	return os.Getenv(k)
}

// Node is one running drover process: the same pieces, whichever mode.
type Node struct {
	Options NodeOptions
	Logger  *slog.Logger

	Config      *pipelines.Config
	Secret      string
	Token       string
	HTTPAddr    string
	MetricsAddr string
	DataDir     string

	temporal    *devstack.Server
	namespace   string
	store       *sqlstore.Store
	slugs       slugs.Artifacts
	grants      *slugs.Grants
	client      client.Client
	workers     []worker.Worker
	metrics     *metrics.Registry
	http        *http.Server
	metricsHTTP *http.Server
	regions     regionSet
	locals      map[string]*local.Region
	sandbox     *sandbox.Sandbox
	banner      [][2]string
	stopping    atomic.Bool
}

func (n *Node) dev() bool    { return n.Options.Mode == modeDev }
func (n *Node) serves() bool { return n.Options.Mode != modeWorker }
func (n *Node) runsWorker() bool {
	return n.Options.Mode != modeServer || n.Options.WithWorker
}

// say adds a line to the start-up banner.
func (n *Node) say(label, value string) { n.banner = append(n.banner, [2]string{label, value}) }

// Start brings the process up and returns once it serves (and, with a
// worker, polls). Every bad setting stops it with the variable or key
// named and an example.
func (n *Node) Start(ctx context.Context) error {
	if n.Logger == nil {
		n.Logger = slog.Default()
	}
	o := n.Options
	cfg, err := pipelines.LoadConfig(o.Config)
	if err != nil {
		return &hintError{err: err, hint: "start from examples/drover.yaml, or pass --config"}
	}
	for name, p := range cfg.Pipelines {
		if src, ok := o.Sources[p.Repo]; ok {
			p.Source = src
			cfg.Pipelines[name] = p
		}
	}
	n.Config = cfg
	if n.DataDir, err = filepath.Abs(o.Data); err != nil {
		return err
	}
	if err := os.MkdirAll(n.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	n.metrics = metrics.New()
	if err := n.openSecrets(); err != nil {
		return err
	}
	if err := n.openStore(ctx); err != nil {
		return err
	}
	if err := n.openSlugs(ctx); err != nil {
		return err
	}
	if err := n.connectTemporal(ctx); err != nil {
		return err
	}
	starter := &workflows.Starter{Client: n.client, Pauses: n.store}
	auth, err := githubAuth(cfg, n.Logger)
	if err != nil {
		return err
	}
	n.say("GitHub:", githubSummary(cfg, auth))
	if n.runsWorker() {
		if err := n.startWorkers(ctx, auth, starter); err != nil {
			return err
		}
	}
	if n.serves() {
		if err := n.serve(ctx, auth, starter); err != nil {
			return err
		}
	}
	if err := n.serveMetrics(); err != nil {
		return err
	}
	return nil
}

// openSecrets reads the webhook secret, the admin token and the config
// key: generated into the data dir in dev, from the environment otherwise.
func (n *Node) openSecrets() error {
	o, cfg := n.Options, n.Config
	if n.dev() {
		var source string
		var err error
		if n.Secret, source, err = devSecret(cfg, n.DataDir); err != nil {
			return err
		}
		n.say("Webhook secret:", mask(n.Secret)+" ("+source+")")
		if n.Token, err = readOrCreate(filepath.Join(n.DataDir, "admin-token")); err != nil {
			return err
		}
		return nil
	}
	if n.serves() {
		n.Secret = o.getenv(envWebhookSecret)
		source := "$" + envWebhookSecret
		if n.Secret == "" {
			s, err := cfg.WebhookSecret(o.getenv)
			if err != nil {
				return &hintError{err: fmt.Errorf("%s is not set and %s names no webhook secret: drover %s refuses unsigned webhooks", envWebhookSecret, cfg.File, o.Mode),
					hint: "set " + envWebhookSecret + " to the secret of the GitHub webhook (e.g. openssl rand -hex 32), or github.webhook_secret_env in drover.yaml"}
			}
			n.Secret, source = s, cfg.File
		}
		n.say("Webhook secret:", "from "+source)
	}
	n.Token = o.getenv(envAdminToken)
	if n.Token != "" {
		n.say("Admin token:", "from $"+envAdminToken)
	}
	if o.getenv(envConfigKey) == "" {
		return &hintError{err: fmt.Errorf("%s is not set: every drover server and worker needs the one key that seals config vars", envConfigKey),
			hint: "make one with openssl rand -base64 32 and give the same value to every server and worker"}
	}
	return nil
}

// openStore opens the state store: PostgreSQL from DATABASE_URL, or SQLite
// under the data dir in dev and in a single-node server.
func (n *Node) openStore(ctx context.Context) error {
	o := n.Options
	dsn := o.getenv(envDatabaseURL)
	shown := sqlstore.Redact(dsn)
	switch {
	case n.dev() || (dsn == "" && o.Mode == modeServer && o.WithWorker):
		dsn = filepath.Join(n.DataDir, "drover.db")
		shown = "SQLite " + dsn
	case dsn == "":
		return &hintError{err: fmt.Errorf("%s is not set: drover %s needs PostgreSQL, e.g. postgres://user:pass@host/db", envDatabaseURL, o.Mode),
			hint: "use drover dev for an embedded stack, or drover server --with-worker for one node on SQLite"}
	}
	var err error
	if n.store, err = sqlstore.Open(ctx, dsn); err != nil {
		return &hintError{err: fmt.Errorf("state store %s: %w", shown, redactErr(err, dsn)), hint: "check " + envDatabaseURL + " and that the database answers"}
	}
	n.say("State store:", shown)
	// Config vars are sealed at rest with one key shared by every process.
	key, err := deployments.LoadKey(envConfigKey, filepath.Join(n.DataDir, "config-key"), o.getenv)
	if err != nil {
		return err
	}
	previous, err := deployments.LoadPreviousKeys(envPreviousConfigKeys, o.getenv)
	if err != nil {
		return &hintError{err: err, hint: "list the config keys drover had before as base64, separated by commas"}
	}
	ring, err := deployments.OpenKeyRing(key, previous...)
	if err != nil {
		return err
	}
	n.store.SetSealer(ring)
	if len(previous) > 0 {
		n.Logger.Info("config key ring: the current key seals, previous ones still open; drover keys rotate re-seals", "current", ring.KeyID(), "keys", ring.KeyIDs())
	}
	// Slug URLs are signed with the same shared key, so any server
	// serves a URL any worker signed, and one a previous key signed.
	n.grants = slugs.NewGrants(key, previous...)
	if n.serves() {
		for _, app := range n.Config.Apps() {
			if err := n.store.SyncApp(ctx, app); err != nil {
				return err
			}
		}
	}
	return nil
}

// openSlugs opens the slug store named by DROVER_SLUG_STORE, or a
// directory under the data dir in dev and in a single-node server.
func (n *Node) openSlugs(ctx context.Context) error {
	o := n.Options
	spec := o.getenv(slugs.SpecVar)
	if n.dev() || (spec == "" && o.Mode == modeServer && o.WithWorker) {
		spec = "file://" + filepath.Join(n.DataDir, "slugs")
	}
	if spec == "" {
		return &hintError{err: fmt.Errorf("%s is not set: the replicas of drover %s share slugs in object storage", slugs.SpecVar, o.Mode),
			hint: "e.g. " + slugs.SpecVar + "='s3://drover-slugs?endpoint=https://s3.internal&region=us-east-1' with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"}
	}
	var err error
	if n.slugs, err = slugs.OpenStore(ctx, spec, filepath.Join(n.DataDir, "slug-cache")); err != nil {
		return &hintError{err: err, hint: "check " + slugs.SpecVar + " and the bucket's credentials"}
	}
	n.say("Slugs:", n.slugs.String())
	return nil
}

// connectTemporal starts the embedded server in dev, and otherwise
// connects to the team's Temporal with Temporal's own variables.
func (n *Node) connectTemporal(ctx context.Context) error {
	var opts client.Options
	if n.dev() {
		var err error
		n.temporal, err = devstack.Start(ctx, devstack.Options{
			DatabaseFile: filepath.Join(n.DataDir, "temporal.db"), FrontendPort: n.Options.TemporalPort,
			Logger: n.Logger, Level: slog.LevelWarn,
		})
		if err != nil {
			return &hintError{err: err, hint: "is another drover dev or Temporal server using the port? pass --temporal-port 0"}
		}
		opts = client.Options{HostPort: n.temporal.FrontendAddress(), Namespace: devstack.Namespace}
		n.say("Temporal frontend:", fmt.Sprintf("%s  (namespace %s; temporal --address %s workflow list)", opts.HostPort, opts.Namespace, opts.HostPort))
	} else {
		var err error
		if opts, err = temporalOptions(n.Config, n.Options.getenv); err != nil {
			return err
		}
	}
	n.namespace = opts.Namespace
	opts.Logger = n.Logger.With("component", "temporal-client")
	opts.MetricsHandler = n.metrics.Temporal()
	c, err := dialTemporal(ctx, opts, !n.dev())
	if err != nil {
		return err
	}
	n.client = c
	if !n.dev() {
		n.say("Temporal:", describeTemporal(opts))
	}
	return nil
}

// startWorkers opens the regions this process serves and starts the
// worker on drover's task queue and one per region on the region's own.
func (n *Node) startWorkers(ctx context.Context, auth gh.Auth, starter *workflows.Starter) error {
	sb, err := sandbox.New(sandbox.Options{Mode: sandbox.Mode(n.Options.Sandbox), Hide: []string{n.DataDir}, Logger: n.Logger, StateDir: filepath.Join(n.DataDir, "sandbox")})
	if err != nil {
		return &hintError{err: err, hint: "install bubblewrap (apt-get install bubblewrap), or pass --sandbox none to run untrusted code unsandboxed"}
	}
	n.sandbox = sb
	n.say("Sandbox:", sb.String())
	if err := n.openRegions(); err != nil {
		return err
	}
	public := n.publicURL
	builder, err := n.builder()
	if err != nil {
		return err
	}
	acts := &workflows.Activities{
		Store:   n.store,
		Builder: builder,
		Slugs:   n.slugs,
		Regions: n.regions,
		Logger:  n.Logger,
		Queue:   starter, Reviews: starter,
		JobTemplates:  n.Config.JobTemplate,
		Exposure:      n.Config.Exposure,
		RepoJobFields: n.Config.RepoJobFields,
		CheckDeploy:   n.Config.CheckDeploy,
		Sources:       n.Config.SourceOf,
		SlugCollector: n.slugs,
		// Nomad clients fetch slugs from drover's servers over HTTP: from
		// the region's slug_url, else from drover's public URL, with a
		// grant valid for the region's slug_url_ttl (rounded up).
		SlugURL: n.slugURL,
	}
	// CI waiting and reporting need GitHub's API; without credentials they
	// are off, and a stage that waits for CI fails its deploys saying so.
	ghSteps := &workflows.GitHubActivities{Waits: n.store, PublicURL: public, Logger: n.Logger}
	if auth != nil {
		c := &gh.Client{Auth: auth}
		acts.Git = auth
		ghSteps.CI, ghSteps.Reporter, ghSteps.Branches, ghSteps.Comments, ghSteps.PullRequests = c, c, c, c, c
	}
	acts.GitHub = ghSteps
	if err := n.reconcile(ctx, acts); err != nil {
		return err
	}
	main := worker.New(n.client, workflows.TaskQueue, worker.Options{WorkerStopTimeout: workerStopTimeout})
	workflows.Register(main, acts, ghSteps)
	n.workers = append(n.workers, main)
	names := make([]string, 0, len(n.regions))
	for name := range n.regions {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		w := worker.New(n.client, workflows.RegionTaskQueue(name), worker.Options{WorkerStopTimeout: workerStopTimeout, DisableWorkflowWorker: true})
		w.RegisterActivity(acts)
		n.workers = append(n.workers, w)
	}
	for _, w := range n.workers {
		if err := w.Start(); err != nil {
			return fmt.Errorf("start worker: %w", err)
		}
	}
	if !n.dev() {
		n.say("Worker:", fmt.Sprintf("task queue %s; regions %s", workflows.TaskQueue, strings.Join(names, ", ")))
	}
	return nil
}

// openRegions opens the regions this process's worker serves: every
// Nomad region, and the local regions bound to it (all of them in dev).
func (n *Node) openRegions() error {
	n.regions, n.locals = regionSet{}, map[string]*local.Region{}
	o, cfg := n.Options, n.Config
	for i, name := range o.LocalRegions {
		spec, ok := cfg.Regions[name]
		if !ok || spec.Driver != pipelines.DriverLocal {
			return &hintError{err: fmt.Errorf("--local-regions[%d]: %q is not a local region of %s (regions.%s.driver: local)", i, name, cfg.File, name),
				hint: "name regions whose driver is local"}
		}
	}
	for name, spec := range cfg.Regions {
		log := n.Logger.With("region", name)
		switch spec.Driver {
		case pipelines.DriverLocal:
			if !n.servesLocal(name) {
				// Its apps run on the host of the one worker bound to it.
				log.Info("local region is served by the worker started with --local-regions " + name)
				continue
			}
			r, err := local.New(local.Options{Name: name, Dir: filepath.Join(n.DataDir, "regions", name), Logger: log, Unpack: slugs.Unpack, Sandbox: n.sandbox,
				SlugCache: filepath.Join(n.DataDir, "regions", ".slugs")}) // no region is named so
			if err != nil {
				return fmt.Errorf("region %s: %w", name, err)
			}
			n.regions[name], n.locals[name] = r, r
		case pipelines.DriverNomad:
			if !n.serves() && spec.Nomad.SlugURL == "" && n.publicURL() == "" {
				return &hintError{err: fmt.Errorf("%s: regions.%s.slug_url is not set and neither is --public-url: Nomad clients would not know where to fetch slugs", cfg.File, name),
					hint: "pass --public-url https://drover.internal (or set " + envPublicURL + "), the address of drover's servers"}
			}
			r, err := n.nomadRegion(name, spec)
			if err != nil {
				return err
			}
			n.regions[name] = r
		}
	}
	return nil
}

// nomadRegion opens a Nomad region of drover.yaml with the token its
// token_env names. It does not contact Nomad.
func (n *Node) nomadRegion(name string, spec pipelines.RegionSpec) (*nomad.Region, error) {
	log := n.Logger.With("region", name)
	token := ""
	if env := spec.Nomad.TokenEnv; env != "" {
		if token = n.Options.getenv(env); token == "" {
			log.Warn("token_env names an empty variable; calling Nomad without a token", "variable", env)
		}
	}
	r, err := nomad.New(spec, nomad.Options{Token: token, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("region %s: %w", name, err)
	}
	return r, nil
}

// servesLocal reports whether this process runs the local region's apps:
// dev and a single-node server with a worker run every local region;
// otherwise only those named by --local-regions, so each has one host.
func (n *Node) servesLocal(name string) bool {
	o := n.Options
	if n.dev() || (o.Mode == modeServer && o.WithWorker && len(o.LocalRegions) == 0) {
		return true
	}
	return slices.Contains(o.LocalRegions, name)
}

// publicURL is where drover's servers are reached.
func (n *Node) publicURL() string {
	if u := n.Options.PublicURL; u != "" {
		return strings.TrimSuffix(u, "/")
	}
	if u := n.Options.getenv(envPublicURL); u != "" {
		return strings.TrimSuffix(u, "/")
	}
	if n.HTTPAddr != "" {
		return "http://" + n.HTTPAddr
	}
	return ""
}

// tokens are the API tokens: the admin token and drover.yaml's.
func (n *Node) tokens() []api.Token {
	var tokens []api.Token
	if n.Token != "" {
		tokens = append(tokens, api.Token{Name: "admin", Value: n.Token})
	}
	for _, t := range n.Config.API.Tokens {
		if t.TokenHash != "" {
			h, err := pipelines.ParseTokenHash(t.TokenHash)
			if err != nil { // checked when the config loaded
				n.Logger.Warn("api token's hash is malformed; the token is off", "token", t.Name, "err", err)
				continue
			}
			tokens = append(tokens, api.Token{Name: t.Name, Hash: &h, Pipelines: t.Pipelines, Scopes: t.Scopes})
			continue
		}
		v := n.Options.getenv(t.TokenEnv)
		if v == "" {
			n.Logger.Warn("api token's variable is empty; the token is off", "token", t.Name, "variable", t.TokenEnv)
			continue
		}
		tokens = append(tokens, api.Token{Name: t.Name, Value: v, Pipelines: t.Pipelines, Scopes: t.Scopes})
	}
	return tokens
}

// serve starts the HTTP server: webhooks, the API, slugs, health and
// metrics, and makes drover's schedules.
func (n *Node) serve(ctx context.Context, auth gh.Auth, starter *workflows.Starter) error {
	cfg := n.Config
	// Pushes whose webhook never arrived are caught by reading each
	// auto-deploy branch from GitHub on a schedule; that needs credentials.
	watches := workflows.Watches(cfg)
	if auth == nil {
		watches = nil
		n.Logger.Info("missed-webhook reconciliation is off: it reads branches and pull requests from GitHub; set github.token_env or github.app_id")
	}
	// Collection of what no kept release needs runs with or without it.
	watches = append(watches, workflows.CollectWatch(cfg.Retention))
	if err := starter.EnsureSchedules(ctx, watches); err != nil {
		return fmt.Errorf("make drover's schedules: %w", err)
	}
	gin.SetMode(gin.ReleaseMode)
	engine := gin.New()
	engine.Use(gin.Recovery())
	hooks, err := webhooks.New(cfg, n.Secret, starter, n.store, n.Logger.With("component", "webhooks"))
	if err != nil {
		return err
	}
	hooks.Register(engine.Group("", n.metrics.Webhooks()))
	n.registerUploads(engine)
	tokens := n.tokens()
	api.RegisterSlugs(engine, n.slugs, api.SlugAccess{Grants: n.grants, Tokens: tokens})
	srv := &api.Server{Ledger: n.store, Tokens: tokens, Config: cfg, Operations: starter, Reviews: n.store, ReviewOps: starter, Logger: n.Logger,
		Runs: n.store}
	reach := n.apiRegions()
	srv.LiveURL, srv.LogReaders, srv.RunRegions = n.liveURLs(reach), n.logReaders(reach), runRegions{n: n, all: reach}
	srv.Plans = starter // previews show Nomad regions' own plans
	if auth != nil {
		srv.PullRequests = &gh.Client{Auth: auth}
		srv.Commits = &gh.Client{Auth: auth}
	}
	srv.Approvals = starter
	srv.Register(engine)
	// The page is a client of the API above, in-process, with the
	// signed-in user's token.
	page := &web.Page{API: engine, TemporalUI: n.Options.getenv("DROVER_TEMPORAL_UI"), Namespace: n.namespace,
		GitHub: githubWebURL(cfg.GitHub.APIURL), Logger: n.Logger.With("component", "web")}
	if err := page.Register(engine); err != nil {
		return fmt.Errorf("web page: %w", err)
	}
	engine.GET("/readyz", gin.WrapF(n.readyz))
	if n.Options.MetricsListen == "" {
		engine.GET("/metrics", api.BearerAuth(tokens), gin.WrapH(n.metrics.Handler()))
	}
	ln, err := net.Listen("tcp", n.Options.Listen)
	if err != nil {
		return &hintError{err: fmt.Errorf("listen on %s: %w", n.Options.Listen, err), hint: "pass --listen 127.0.0.1:0 for any free port"}
	}
	n.HTTPAddr = ln.Addr().String()
	if n.dev() {
		// The CLI on this machine finds this stack and its token with no setup.
		if err := writeDevLogin(devLogin{URL: "http://" + n.HTTPAddr, Token: n.Token}); err != nil {
			n.Logger.Warn("could not save the CLI login; set DROVER_URL and DROVER_TOKEN", "error", err)
		}
	}
	// Bodies are read with a deadline, so a slow sender cannot hold a
	// webhook reader (or an API call) open.
	n.http = &http.Server{Handler: engine, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second}
	go func() {
		if err := n.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.Logger.Error("http server", "error", err)
		}
	}()
	return nil
}

// githubWebURL is GitHub's web address for an API URL: GitHub
// Enterprise serves its API under /api/v3 of its web address.
func githubWebURL(apiURL string) string {
	if apiURL == "" {
		return "https://github.com"
	}
	u := strings.TrimRight(apiURL, "/")
	u = strings.TrimSuffix(u, "/api/v3")
	return strings.Replace(u, "://api.github.com", "://github.com", 1)
}

// liveURLs says where an app answers now in a Nomad region: behind the
// stage's ingress at its url, else at a live registration read from the
// region's service registry each time, since Nomad replaces allocations
// after a release. Local regions keep the URL of their proxy, recorded at
// release time.
func (n *Node) liveURLs(all map[string]regions.Region) func(ctx context.Context, app, region string) (string, bool) {
	clients := map[string]*nomad.Region{}
	for name, r := range all {
		if r, ok := r.(*nomad.Region); ok {
			clients[name] = r
		}
	}
	return func(ctx context.Context, app, region string) (string, bool) {
		r, ok := clients[region]
		if !ok {
			return "", false
		}
		if e := n.Config.Exposure(app); e.URL != "" {
			return e.URL, true
		}
		u, err := r.LiveURL(ctx, app)
		return u, err == nil && u != ""
	}
}

// slugURL is where a Nomad region's clients fetch a slug from drover's
// servers: the region's slug_url, else drover's public URL, with a grant
// valid for the region's slug_url_ttl (rounded up); "" for other regions
// or when neither is known.
func (n *Node) slugURL(region, digest string) string {
	spec := n.Config.Regions[region]
	if spec.Driver != pipelines.DriverNomad {
		return ""
	}
	base := spec.Nomad.SlugURL
	if base == "" {
		base = n.publicURL()
	}
	if base == "" {
		return ""
	}
	return api.SlugURL(base, n.grants, digest, api.SlugGrantExpiry(time.Now(), spec.Nomad.SlugGrantTTL()))
}

// apiRegions are the regions this server reaches for logs and one-off
// runs: every Nomad region (this process's worker's clients, else its
// own with the same token_env) and the local regions it serves.
func (n *Node) apiRegions() map[string]regions.Region {
	out := map[string]regions.Region{}
	for name, spec := range n.Config.Regions {
		if r, ok := n.regions[name]; ok {
			out[name] = r
			continue
		}
		if spec.Driver == pipelines.DriverNomad {
			r, err := n.nomadRegion(name, spec)
			if err != nil {
				n.Logger.Warn("region unreachable from this server", "region", name, "error", err)
				continue
			}
			out[name] = r
		}
	}
	return out
}

// notServedHere says why this server cannot reach region.
func (n *Node) notServedHere(region string) error {
	if spec, ok := n.Config.Regions[region]; ok && spec.Driver == pipelines.DriverLocal {
		return fmt.Errorf("its apps run on the host of the worker started with --local-regions %s; use that host's server (DROVER_URL): %w", region, regions.ErrUnavailable)
	}
	return fmt.Errorf("this server cannot reach it: %w", regions.ErrUnavailable)
}

// logReaders reads app logs from this server: Nomad regions through
// their API (this process's own clients when it runs a worker, else
// clients of its own with the same token_env), local regions only where
// their apps run, which is this process only when it serves them.
func (n *Node) logReaders(all map[string]regions.Region) api.LogReaders {
	return func(region string) (regions.LogReader, error) {
		if r, ok := all[region].(regions.LogReader); ok {
			return r, nil
		}
		return nil, n.notServedHere(region)
	}
}

// runRegions runs one-offs in the regions this server reaches.
type runRegions struct {
	n   *Node
	all map[string]regions.Region
}

func (r runRegions) Runner(region string) (regions.Runner, error) {
	if run, ok := r.all[region].(regions.Runner); ok {
		return run, nil
	}
	return nil, r.n.notServedHere(region)
}

// Slug is a local path for local regions, a URL with a grant for Nomad.
func (r runRegions) Slug(region, digest string) (regions.Slug, error) {
	if u := r.n.slugURL(region, digest); u != "" {
		return regions.Slug{Digest: digest, URL: u}, nil
	}
	path, err := r.n.slugs.Path(digest)
	if err != nil {
		return regions.Slug{}, err
	}
	return regions.Slug{Digest: digest, Path: path}, nil
}

// serveMetrics serves /metrics, /healthz and /readyz on their own
// address, with no token, when --metrics-listen asks for it.
func (n *Node) serveMetrics() error {
	addr := n.Options.MetricsListen
	if addr == "" {
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", n.metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"status":"ok"}`) })
	mux.HandleFunc("GET /readyz", n.readyz)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return &hintError{err: fmt.Errorf("--metrics-listen %s: %w", addr, err), hint: "pass a free address, e.g. 127.0.0.1:9090"}
	}
	n.MetricsAddr = ln.Addr().String()
	n.metricsHTTP = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go n.metricsHTTP.Serve(ln)
	return nil
}

// readyz answers 200 when the database, Temporal and the slug store
// answer, and 503 once shutdown began, so a load balancer stops sending.
func (n *Node) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	checks := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"shutdown", func(context.Context) error {
			if n.stopping.Load() {
				return errors.New("drover is shutting down")
			}
			return nil
		}},
		{"database", n.store.Ping},
		{"temporal", func(ctx context.Context) error {
			_, err := n.client.CheckHealth(ctx, &client.CheckHealthRequest{})
			return err
		}},
		{"slugs", n.slugs.Check},
	}
	var failed []string
	for _, c := range checks {
		if err := c.fn(ctx); err != nil {
			failed = append(failed, fmt.Sprintf("%q: %q", c.name, err.Error()))
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if len(failed) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, `{"status":"unavailable","failing":{%s}}`, strings.Join(failed, ","))
		return
	}
	io.WriteString(w, `{"status":"ready"}`)
}

// PrintBanner says, in one block, what this process runs and what it
// connected to. No secret is in it but dev's own, generated ones.
func (n *Node) PrintBanner(w io.Writer) {
	fmt.Fprintf(w, "drover %s is running\n", n.Options.Mode)
	if n.HTTPAddr != "" {
		fmt.Fprintf(w, "  %-18s http://%s  (POST /webhooks/github, /api/v1, /healthz, /readyz)\n", "HTTP:", n.HTTPAddr)
		fmt.Fprintf(w, "  %-18s http://%s/  (sign in with an API token)\n", "Web page:", n.HTTPAddr)
	}
	if n.MetricsAddr != "" {
		fmt.Fprintf(w, "  %-18s http://%s/metrics\n", "Metrics:", n.MetricsAddr)
	}
	for _, l := range n.banner {
		fmt.Fprintf(w, "  %-18s %s\n", l[0], l[1])
	}
	fmt.Fprintf(w, "  %-18s %s\n", "Data dir:", n.DataDir)
	fmt.Fprintf(w, "  %-18s %s\n", "Config:", n.Config.File)
	if n.dev() {
		fmt.Fprintf(w, "  %-18s finds this stack by itself here; elsewhere export DROVER_URL=http://%s DROVER_TOKEN=$(cat %s)\n",
			"CLI:", n.HTTPAddr, filepath.Join(n.DataDir, "admin-token"))
	}
}

// Close stops everything Start started, in reverse order: readiness fails
// first, in-flight requests finish, the workers stop polling and let their
// activities end or hand over, then the connections close. Local apps stop
// too; the next start brings back each app's current release.
func (n *Node) Close() {
	n.stopping.Store(true)
	if n.temporal != nil {
		n.temporal.Silence()
	}
	if n.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), httpDrain)
		n.http.Shutdown(ctx)
		cancel()
	}
	// Together: each worker waits up to workerStopTimeout for its
	// activities, and one worker per region must not multiply that.
	var wg sync.WaitGroup
	for _, w := range n.workers {
		wg.Go(w.Stop)
	}
	wg.Wait()
	if n.metricsHTTP != nil {
		n.metricsHTTP.Close()
	}
	if n.client != nil {
		n.client.Close()
	}
	if n.temporal != nil {
		n.temporal.Stop()
	}
	for _, r := range n.locals {
		r.Close(true)
	}
	if n.store != nil {
		n.store.Close()
	}
	if n.metrics != nil {
		n.metrics.Close()
	}
}

// mask shows a secret's first and last four characters only, enough to
// tell which one it is: a banner ends up in terminals' scrollback and logs.
func mask(secret string) string {
	if len(secret) < 16 {
		return "…"
	}
	return secret[:4] + "…" + secret[len(secret)-4:]
}

// redactErr keeps dsn's password out of an error that may quote it.
func redactErr(err error, dsn string) error {
	u, perr := url.Parse(dsn)
	if perr != nil || u.User == nil {
		return err
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" || !strings.Contains(err.Error(), pw) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), pw, "xxxxx"))
}
