package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/drover/drover/gh"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
	"github.com/drover/drover/workflows"
)

// DevOptions are `drover dev`'s flags.
type DevOptions struct {
	Config       string
	Data         string
	Listen       string
	TemporalPort int
	LogLevel     string
	Sandbox      string
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
	f.StringVar(&opts.Sandbox, "sandbox", "auto", sandboxUsage)
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

// Dev is a running dev stack: a Node in dev mode. End-to-end tests start
// it on free ports.
type Dev struct {
	Options DevOptions
	Logger  *slog.Logger
	*Node
	closeOnce sync.Once
}

// Start brings the stack up and returns once it accepts webhooks.
func (d *Dev) Start(ctx context.Context) error {
	d.Node = &Node{Logger: d.Logger, Options: NodeOptions{
		Mode: modeDev, Config: d.Options.Config, Data: d.Options.Data, Listen: d.Options.Listen,
		TemporalPort: d.Options.TemporalPort, WithWorker: true, Sandbox: d.Options.Sandbox,
	}}
	if d.Options.Example {
		repo, err := filepath.Abs(exampleRepo(d.Options.Data))
		if err != nil {
			return err
		}
		d.Node.Options.Sources = map[string]string{exampleRepoName: "file://" + repo}
	}
	return d.Node.Start(ctx)
}

// Close stops the stack, if it started at all. A second call does
// nothing, so a test may both close it itself and leave it to a cleanup.
func (d *Dev) Close() {
	d.closeOnce.Do(func() {
		if d.Node != nil {
			d.Node.Close()
		}
	})
}

// reconcile makes each local region run exactly the current release of
// each of its apps, adopting processes that outlived an earlier drover.
func (d *Node) reconcile(ctx context.Context, acts *workflows.Activities) error {
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
		rels, err := d.store.Releases(ctx, app.Name, reconcileLookback)
		if err != nil {
			return err
		}
		for _, region := range app.Regions {
			// What the region last ran to success: a rollout that had
			// passed it when drover stopped goes on from there.
			rel, ok := pipelines.RegionRelease(rels, region)
			if !ok {
				continue
			}
			dep, err := workflows.DeploymentOf(ctx, acts, rel, region)
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

// reconcileLookback is how many of an app's newest releases reconcile
// reads to find what each region ran.
const reconcileLookback = 50

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
