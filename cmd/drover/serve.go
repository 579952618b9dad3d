package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/drover/drover/deployments/sqlstore"
	"github.com/drover/drover/devstack"
)

// ServeOptions are the flags of drover server and drover worker.
type ServeOptions struct {
	NodeOptions
	LogLevel string
}

func newServerCmd(s Streams, runF func(context.Context, *ServeOptions) error) *cobra.Command {
	opts := &ServeOptions{NodeOptions: NodeOptions{Mode: modeServer}}
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Serve webhooks, the API and slugs on the team's Temporal, PostgreSQL and object storage",
		Long: `Serve GitHub webhooks, the API and slugs. Run any number behind a load
balancer; they share one Temporal namespace, one database and one bucket:

  DATABASE_URL             PostgreSQL, e.g. postgres://drover:…@db.internal/drover
  TEMPORAL_ADDRESS         e.g. temporal.internal:7233; TEMPORAL_NAMESPACE,
                           TEMPORAL_API_KEY, TEMPORAL_TLS_* and TEMPORAL_PROFILE
                           as Temporal's own tools read them
  DROVER_SLUG_STORE        s3://bucket?endpoint=https://s3.internal&region=us-east-1
  DROVER_CONFIG_KEY        the key config vars are sealed with (openssl rand -base64 32)
  DROVER_WEBHOOK_SECRET    the GitHub webhook's secret
  DROVER_ADMIN_TOKEN       an admin API token, beside those drover.yaml names

--with-worker also runs the worker; with it, and DATABASE_URL and
DROVER_SLUG_STORE unset, one node keeps SQLite and slugs under --data.`,
	}
	serveCommand(cmd, opts, s, runF)
	f := cmd.Flags()
	f.StringVar(&opts.Listen, "listen", ":8080", "address of the HTTP server (webhooks, API, slugs, /healthz, /readyz)")
	f.BoolVar(&opts.WithWorker, "with-worker", false, "run the Temporal worker in this process too")
	return cmd
}

func newWorkerCmd(s Streams, runF func(context.Context, *ServeOptions) error) *cobra.Command {
	opts := &ServeOptions{NodeOptions: NodeOptions{Mode: modeWorker}}
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run the Temporal worker: builds, release phases, rollouts",
		Long: `Run drover's Temporal worker. Run any number; they read the same variables
as drover server (DATABASE_URL, TEMPORAL_*, DROVER_SLUG_STORE,
DROVER_CONFIG_KEY). Every worker deploys to every Nomad region; a local
region runs apps on one worker's host, named with --local-regions.`,
	}
	serveCommand(cmd, opts, s, runF)
	return cmd
}

// serveCommand gives drover server and drover worker what they share:
// how they run (runF, for tests, or runNode) and their common flags.
func serveCommand(cmd *cobra.Command, opts *ServeOptions, s Streams, runF func(context.Context, *ServeOptions) error) {
	cmd.Args = cobra.NoArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if runF != nil {
			return runF(cmd.Context(), opts)
		}
		return runNode(cmd.Context(), opts, s)
	}
	f := cmd.Flags()
	f.StringVar(&opts.Config, "config", "drover.yaml", "drover.yaml to load")
	f.StringVar(&opts.Data, "data", ".drover", "directory for this process's own files: build scratch, the slug cache, local regions")
	f.StringVar(&opts.MetricsListen, "metrics-listen", "", "serve /metrics, /healthz and /readyz on this address with no token (else /metrics needs an API token)")
	f.StringVar(&opts.PublicURL, "public-url", "", "where drover's servers are reached, for Nomad slug fetches and GitHub links (default $DROVER_PUBLIC_URL, else the listen address)")
	f.StringSliceVar(&opts.LocalRegions, "local-regions", nil, "local regions whose apps this process's worker runs on this host")
	f.StringVar(&opts.LogLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&opts.Sandbox, "sandbox", "auto", sandboxUsage)
}

const sandboxUsage = "how a worker runs builds, release phases and local apps: bwrap (bubblewrap), none, or auto (bwrap if installed)"

// runNode runs drover server or worker until ctx ends (SIGTERM, SIGINT).
func runNode(ctx context.Context, opts *ServeOptions, s Streams) error {
	n := &Node{Options: opts.NodeOptions, Logger: newLogger(s.Err, opts.LogLevel)}
	if err := n.Start(ctx); err != nil {
		n.Close()
		return err
	}
	n.PrintBanner(s.Out)
	<-ctx.Done()
	fmt.Fprintf(s.Out, "stopping drover %s: readiness fails, requests and activities finish\n", opts.Mode)
	n.Close()
	return nil
}

// MigrateOptions are drover migrate's flags.
type MigrateOptions struct {
	Database string
}

func newMigrateCmd(s Streams) *cobra.Command {
	opts := &MigrateOptions{}
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the state store's schema migrations (server and worker also do at start)",
		Long: `Apply pending schema migrations to the database in $DATABASE_URL (or
--database). On PostgreSQL they run under an advisory lock, so several
processes migrating at once are safe: one applies, the others wait.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			dsn := opts.Database
			if dsn == "" {
				dsn = os.Getenv(envDatabaseURL)
			}
			if dsn == "" {
				return &hintError{err: fmt.Errorf("%s is not set and --database is not given", envDatabaseURL),
					hint: "e.g. DATABASE_URL=postgres://user:pass@host/db drover migrate, or --database .drover/drover.db for SQLite", code: exitUsage}
			}
			applied, err := sqlstore.Migrate(cmd.Context(), dsn, slog.New(slog.DiscardHandler))
			for _, m := range applied {
				fmt.Fprintln(s.Out, "applied", m)
			}
			if err != nil {
				return err
			}
			if len(applied) == 0 {
				fmt.Fprintf(s.Out, "%s is up to date\n", sqlstore.Redact(dsn))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.Database, "database", "", "database to migrate: a postgres:// URL or a SQLite file (default $DATABASE_URL)")
	return cmd
}

// newTemporalDevCmd runs the embedded Temporal server alone, in its own
// process: for trying production mode on one machine, and for the
// end-to-end test of the production topology.
func newTemporalDevCmd(s Streams) *cobra.Command {
	var data, logLevel string
	var port int
	cmd := &cobra.Command{
		Use:    "temporal-dev",
		Short:  "Run the embedded Temporal server alone (SQLite), for trying drover server and worker on one machine",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(data, 0o700); err != nil {
				return err
			}
			srv, err := devstack.Start(cmd.Context(), devstack.Options{DatabaseFile: filepath.Join(data, "temporal.db"), FrontendPort: port,
				Logger: newLogger(s.Err, logLevel), Level: slog.LevelWarn})
			if err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "temporal frontend %s namespace %s\n", srv.FrontendAddress(), devstack.Namespace)
			<-cmd.Context().Done()
			srv.Silence()
			srv.Stop()
			return nil
		},
	}
	cmd.Flags().StringVar(&data, "data", ".drover-temporal", "directory of the SQLite file")
	cmd.Flags().IntVar(&port, "port", 7233, "frontend port")
	cmd.Flags().StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error")
	return cmd
}
