package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/drover/drover/api"
	"github.com/drover/drover/deployments"
	"github.com/drover/drover/deployments/slugs"
	"github.com/drover/drover/deployments/sqlstore"
	"github.com/drover/drover/devstack"
	"github.com/drover/drover/gh"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
	"github.com/drover/drover/regions/local"
	"github.com/drover/drover/regions/nomad"
	"github.com/drover/drover/webhooks"
	"github.com/drover/drover/workflows"
)

// DevOptions are `drover dev`'s flags.
type DevOptions struct {
	Config       string
	Data         string
	Listen       string
	TemporalPort int
	LogLevel     string
	// Example deploys the bundled example app once the stack is up.
	Example bool
}

func newDevCmd(s Streams, runF func(context.Context, *DevOptions) error) *cobra.Command {
	opts := &DevOptions{}
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run drover with everything embedded: Temporal, SQLite, local regions",
		Long: `Run drover in one process with nothing else installed: an embedded Temporal
server on SQLite, a worker, the SQLite state store, local regions that run
apps on this machine (and any Nomad regions drover.yaml names), and the HTTP
server for GitHub webhooks, the API and slugs.
Everything is kept under --data; restart on the same dir to carry on.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Example && !cmd.Flags().Changed("config") {
				opts.Config = filepath.Join("examples", "drover.yaml")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runDev(cmd.Context(), opts, s)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Config, "config", "drover.yaml", "drover.yaml to load")
	f.StringVar(&opts.Data, "data", ".drover", "directory for all state: databases, slugs, region processes")
	f.StringVar(&opts.Listen, "listen", "127.0.0.1:8080", "address of the HTTP server (webhooks, API)")
	f.IntVar(&opts.TemporalPort, "temporal-port", 7233, "port of the embedded Temporal frontend (0: any free port)")
	f.StringVar(&opts.LogLevel, "log-level", "info", "debug, info, warn or error")
	f.BoolVar(&opts.Example, "example", false, "deploy the example app under examples/hello once started (uses examples/drover.yaml unless --config is given)")
	return cmd
}

func runDev(ctx context.Context, opts *DevOptions, s Streams) error {
	d := &Dev{Options: *opts, Logger: newLogger(s.Err, opts.LogLevel)}
	if err := d.Start(ctx); err != nil {
		d.Close()
		return err
	}
	defer d.Close()
	d.PrintBanner(s.Out)
	if opts.Example {
		if err := d.DeployExample(ctx, s.Out); err != nil {
			return err
		}
	}
	<-ctx.Done()
	fmt.Fprintln(s.Out, "stopping drover dev")
	return nil
}

func newLogger(w interface{ Write([]byte) (int, error) }, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// Dev is a running dev stack. End-to-end tests start it on free ports.
type Dev struct {
	Options DevOptions
	Logger  *slog.Logger

	Config   *pipelines.Config
	Secret   string
	Token    string
	HTTPAddr string
	DataDir  string
	temporal *devstack.Server
	store    *sqlstore.Store
	client   client.Client
	worker   worker.Worker
	// github says how drover acts on GitHub, for the banner.
	github       string
	http         *http.Server
	regions      regionSet
	locals       map[string]*local.Region
	secretSource string
}

// Start brings the stack up and returns once it accepts webhooks.
func (d *Dev) Start(ctx context.Context) error {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	cfg, err := pipelines.LoadConfig(d.Options.Config)
	if err != nil {
		return &hintError{err: err, hint: "start from examples/drover.yaml, or pass --config"}
	}
	d.Config = cfg
	data, err := filepath.Abs(d.Options.Data)
	if err != nil {
		return err
	}
	d.DataDir = data
	if err := os.MkdirAll(data, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if d.Secret, d.secretSource, err = devSecret(cfg, data); err != nil {
		return err
	}
	if d.Token, err = readOrCreate(filepath.Join(data, "admin-token")); err != nil {
		return err
	}

	if d.store, err = sqlstore.OpenSQLite(ctx, filepath.Join(data, "drover.db")); err != nil {
		return err
	}
	// Config vars are encrypted at rest: the key comes from
	// $DROVER_CONFIG_KEY, else a key file made once in the data dir.
	key, err := deployments.LoadKey("DROVER_CONFIG_KEY", filepath.Join(data, "config-key"), os.Getenv)
	if err != nil {
		return err
	}
	sealer, err := deployments.NewAESGCM(key)
	if err != nil {
		return err
	}
	d.store.SetSealer(sealer)
	for _, app := range cfg.Apps() {
		if err := d.store.SyncApp(ctx, app); err != nil {
			return err
		}
	}
	artifacts, err := slugs.NewStore(filepath.Join(data, "slugs"))
	if err != nil {
		return err
	}
	if err := d.openRegions(); err != nil {
		return err
	}
	acts := &workflows.Activities{
		Store:   d.store,
		Builder: &slugs.Builder{Store: artifacts, WorkDir: filepath.Join(data, "builds"), Logger: d.Logger},
		Slugs:   artifacts,
		Regions: d.regions,
		Logger:  d.Logger,
		// Nomad clients fetch slugs from drover over HTTP: from the
		// region's slug_url, else from drover's own listen address.
		JobTemplates: cfg.JobTemplate,
		PublicURL:    func() string { return "http://" + d.HTTPAddr },
		SlugBaseURL: func(region string) string {
			spec := cfg.Regions[region]
			if spec.Driver != pipelines.DriverNomad {
				return ""
			}
			if spec.Nomad.SlugURL != "" {
				return spec.Nomad.SlugURL
			}
			return "http://" + d.HTTPAddr
		},
	}
	// CI waiting and reporting need GitHub's API; without credentials they
	// are off, and a stage that waits for CI fails its deploys saying so.
	auth, err := githubAuth(cfg, d.Logger)
	if err != nil {
		return err
	}
	d.github = githubSummary(cfg, auth)
	if auth != nil {
		client := &gh.Client{Auth: auth}
		acts.Git = auth
		acts.CI, acts.Reporter, acts.Branches, acts.Comments, acts.PullRequests = client, client, client, client, client
	}
	if err := d.reconcile(ctx, acts); err != nil {
		return err
	}

	t0 := time.Now()
	d.temporal, err = devstack.Start(ctx, devstack.Options{
		DatabaseFile: filepath.Join(data, "temporal.db"), FrontendPort: d.Options.TemporalPort,
		Logger: d.Logger, Level: slog.LevelWarn,
	})
	if err != nil {
		return &hintError{err: err, hint: "is another drover dev or Temporal server using the port? pass --temporal-port 0"}
	}
	d.Logger.Debug("temporal started", "took", time.Since(t0))
	d.client, err = client.DialContext(ctx, client.Options{HostPort: d.temporal.FrontendAddress(), Namespace: devstack.Namespace,
		Logger: d.Logger.With("component", "temporal-client")})
	if err != nil {
		return fmt.Errorf("connect to embedded temporal at %s: %w", d.temporal.FrontendAddress(), err)
	}
	starter := &workflows.Starter{Client: d.client}
	acts.Queue, acts.Reviews = starter, starter
	d.worker = worker.New(d.client, workflows.TaskQueue, worker.Options{})
	workflows.Register(d.worker, acts)
	if err := d.worker.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}

	gin.SetMode(gin.ReleaseMode)
	engine := gin.New()
	engine.Use(gin.Recovery())
	// Pushes whose webhook never arrived are caught by reading each
	// auto-deploy branch from GitHub on a schedule; that needs credentials.
	watches := workflows.Watches(cfg)
	if auth == nil {
		watches = nil
		d.Logger.Info("missed-webhook reconciliation is off: it reads branches and pull requests from GitHub; set github.token_env or github.app_id")
	}
	if err := starter.EnsureSchedules(ctx, watches); err != nil {
		return err
	}
	hooks, err := webhooks.New(cfg, d.Secret, starter, d.store, d.Logger.With("component", "webhooks"))
	if err != nil {
		return err
	}
	hooks.Register(engine)
	api.RegisterSlugs(engine, artifacts)
	tokens := []api.Token{{Name: "admin", Value: d.Token}}
	for _, t := range cfg.API.Tokens {
		v := os.Getenv(t.TokenEnv)
		if v == "" {
			d.Logger.Warn("api token's variable is empty; the token is off", "token", t.Name, "variable", t.TokenEnv)
			continue
		}
		tokens = append(tokens, api.Token{Name: t.Name, Value: v, Pipelines: t.Pipelines})
	}
	(&api.Server{Ledger: d.store, Tokens: tokens, Config: cfg, Operations: starter, Reviews: d.store, ReviewOps: starter, Logger: d.Logger}).Register(engine)
	ln, err := net.Listen("tcp", d.Options.Listen)
	if err != nil {
		return &hintError{err: fmt.Errorf("listen on %s: %w", d.Options.Listen, err), hint: "pass --listen 127.0.0.1:0 for any free port"}
	}
	d.HTTPAddr = ln.Addr().String()
	// The CLI on this machine finds this stack and its token with no setup.
	if err := writeDevLogin(devLogin{URL: "http://" + d.HTTPAddr, Token: d.Token}); err != nil {
		d.Logger.Warn("could not save the CLI login; set DROVER_URL and DROVER_TOKEN", "error", err)
	}
	d.http = &http.Server{Handler: engine, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := d.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.Logger.Error("http server", "error", err)
		}
	}()
	return nil
}

// reconcile makes each local region run exactly the current release of
// each of its apps, adopting processes that outlived an earlier drover.
func (d *Dev) reconcile(ctx context.Context, acts *workflows.Activities) error {
	want := map[string][]regions.Deployment{}
	apps := d.Config.Apps()
	// Live review apps come back too; they are in the ledger, not the config.
	for _, p := range d.Config.Pipelines {
		st, ok := p.Stages[pipelines.StageReview]
		if !ok {
			continue
		}
		live, err := d.store.ReviewApps(ctx, p.Name)
		if err != nil {
			return err
		}
		for _, ra := range live {
			apps = append(apps, pipelines.App{Name: ra.App, Pipeline: p.Name, Stage: st.Name, Repo: p.Repo, Regions: st.Regions})
		}
	}
	for _, app := range apps {
		rel, err := d.store.CurrentRelease(ctx, app.Name)
		if errors.Is(err, pipelines.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		for _, region := range app.Regions {
			dep, err := acts.Deployment(ctx, rel, region)
			if err != nil {
				d.Logger.Warn("cannot restore app", "app", app.Name, "release", rel.Version, "region", region, "error", err)
				continue
			}
			want[region] = append(want[region], dep)
		}
	}
	for name, r := range d.locals {
		// An app that cannot come back must not keep the others, or
		// drover itself, down: say so and carry on.
		if err := r.Reconcile(ctx, want[name]); err != nil {
			d.Logger.Error("restore apps", "region", name, "error", err)
		}
	}
	return nil
}

// PrintBanner says where everything is.
func (d *Dev) PrintBanner(w interface{ Write([]byte) (int, error) }) {
	fmt.Fprintf(w, "drover dev is running\n")
	fmt.Fprintf(w, "  %-18s http://%s  (POST /webhooks/github, /api/v1, /healthz)\n", "HTTP:", d.HTTPAddr)
	fmt.Fprintf(w, "  %-18s %s  (namespace %s; temporal --address %s workflow list)\n", "Temporal frontend:", d.temporal.FrontendAddress(), devstack.Namespace, d.temporal.FrontendAddress())
	fmt.Fprintf(w, "  %-18s %s\n", "Data dir:", d.DataDir)
	fmt.Fprintf(w, "  %-18s %s\n", "Config:", d.Config.File)
	fmt.Fprintf(w, "  %-18s %s (%s)\n", "Webhook secret:", d.Secret, d.secretSource)
	fmt.Fprintf(w, "  %-18s %s\n", "GitHub:", d.github)
	fmt.Fprintf(w, "  %-18s export DROVER_URL=http://%s DROVER_TOKEN=%s\n", "CLI:", d.HTTPAddr, d.Token)
}

// Close stops everything Start started, in reverse order. Local apps stop
// too; the next start brings back each app's current release.
func (d *Dev) Close() {
	if d.temporal != nil {
		d.temporal.Silence()
	}
	if d.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		d.http.Shutdown(ctx)
		cancel()
	}
	if d.worker != nil {
		d.worker.Stop()
	}
	if d.client != nil {
		d.client.Close()
	}
	if d.temporal != nil {
		d.temporal.Stop()
	}
	for _, r := range d.locals {
		r.Close(true)
	}
	if d.store != nil {
		d.store.Close()
	}
}

// openRegions opens every region of the config: local ones under the data
// dir, Nomad ones through their API.
func (d *Dev) openRegions() error {
	d.regions, d.locals = regionSet{}, map[string]*local.Region{}
	for name, spec := range d.Config.Regions {
		log := d.Logger.With("region", name)
		switch spec.Driver {
		case pipelines.DriverLocal:
			r, err := local.New(local.Options{Name: name, Dir: filepath.Join(d.DataDir, "regions", name), Logger: log, Unpack: slugs.Unpack})
			if err != nil {
				return fmt.Errorf("region %s: %w", name, err)
			}
			d.regions[name], d.locals[name] = r, r
		case pipelines.DriverNomad:
			token := ""
			if env := spec.Nomad.TokenEnv; env != "" {
				if token = os.Getenv(env); token == "" {
					log.Warn("token_env names an empty variable; calling Nomad without a token", "variable", env)
				}
			}
			r, err := nomad.New(spec, nomad.Options{Token: token, Logger: log})
			if err != nil {
				return fmt.Errorf("region %s: %w", name, err)
			}
			d.regions[name] = r
		}
	}
	return nil
}

// regionSet finds regions by name for the activities.
type regionSet map[string]regions.Region

func (s regionSet) Region(name string) (regions.Region, error) {
	r, ok := s[name]
	if !ok {
		return nil, fmt.Errorf("region %q: %w", name, pipelines.ErrNotFound)
	}
	return r, nil
}

// devSecret returns the webhook secret: from the config, else generated
// once into the data dir so a dev stack never runs without one.
func devSecret(cfg *pipelines.Config, data string) (secret, source string, err error) {
	if s, err := cfg.WebhookSecret(os.Getenv); err == nil {
		if cfg.GitHub.WebhookSecretEnv != "" {
			return s, "from $" + cfg.GitHub.WebhookSecretEnv, nil
		}
		return s, "from " + cfg.File, nil
	}
	path := filepath.Join(data, "webhook-secret")
	s, err := readOrCreate(path)
	if err != nil {
		return "", "", err
	}
	how := "generated into " + path
	if cfg.GitHub.WebhookSecretEnv != "" {
		how += "; $" + cfg.GitHub.WebhookSecretEnv + " is not set"
	}
	return s, how, nil
}

func readOrCreate(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	s := hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return s, nil
}

// githubAuth returns how drover acts on GitHub: as a GitHub App when
// github.app_id is set, with a token when github.token_env names a set
// variable, or not at all (nil).
func githubAuth(cfg *pipelines.Config, logger *slog.Logger) (gh.Auth, error) {
	g := cfg.GitHub
	if g.AppID != 0 {
		key, err := os.ReadFile(g.PrivateKeyFile)
		if err != nil {
			return nil, &hintError{err: fmt.Errorf("%s: github.private_key_file: %w", cfg.File, err),
				hint: "download the GitHub App's private key (a .pem file) from its settings page and point private_key_file at it"}
		}
		auth, err := gh.NewAppAuth(g.APIURL, g.AppID, key)
		if err != nil {
			return nil, fmt.Errorf("%s: github: %w", cfg.File, err)
		}
		return auth, nil
	}
	if g.TokenEnv == "" {
		return nil, nil
	}
	token := os.Getenv(g.TokenEnv)
	if token == "" {
		logger.Warn("github.token_env names an empty variable; private repositories cannot be fetched, CI cannot be read and nothing is reported to GitHub", "variable", g.TokenEnv)
		return nil, nil
	}
	auth, err := gh.NewTokenAuth(g.APIURL, token)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.File, err)
	}
	return auth, nil
}

// githubSummary says in a line how drover acts on GitHub, and what is off
// without it.
func githubSummary(cfg *pipelines.Config, auth gh.Auth) string {
	api := cfg.GitHub.APIURL
	if api == "" {
		api = gh.PublicAPI
	}
	switch auth.(type) {
	case *gh.AppAuth:
		return fmt.Sprintf("GitHub App %d at %s", cfg.GitHub.AppID, api)
	case *gh.TokenAuth:
		return fmt.Sprintf("token from $%s at %s", cfg.GitHub.TokenEnv, api)
	}
	return "not connected (set github.token_env or github.app_id): no CI waits, deployment reports, review app comments or missed-push checks"
}
