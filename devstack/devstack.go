// Package devstack runs a Temporal server inside drover's own process, on a
// SQLite file, so `drover dev` needs nothing installed. It is the only
// package besides cmd/drover that imports go.temporal.io/server: linking it
// makes a very large binary, and no unit test should pay for that.
//
// The options follow the Temporal CLI's dev server (temporalio/cli,
// internal/devserver, MIT), written anew for drover.
package devstack

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/server/chasm/lib/activity"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
	"go.temporal.io/server/common/membership/static"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
)

// Namespace is the Temporal namespace drover's dev stack creates and uses.
const Namespace = "default"

const clusterName = "active"

// clusterID is fixed so every start on one database file is the same
// cluster; the server wants a UUID.
const clusterID = "5b1c2d7e-8f3a-4c6b-9d2e-0a1b2c3d4e5f"

// Options configures the embedded server.
type Options struct {
	// DatabaseFile is the SQLite file; its schema is created on first start.
	DatabaseFile string
	// Host is the IP every service binds to; default 127.0.0.1. The server
	// wants an IP, not a name.
	Host string
	// FrontendPort is the gRPC port clients and the Temporal CLI/UI use;
	// 0 picks a free one.
	FrontendPort int
	// Logger receives the server's logs at Level and above.
	Logger *slog.Logger
	Level  slog.Level
	// DynamicConfig overrides server dynamic config keys.
	DynamicConfig map[string]any
}

// queuePollRPS is how often a history queue reader of the one shard may
// poll SQLite: often enough never to be what a step waits for (each poll
// is a cheap indexed read, and a reader polls only when notified of new
// tasks or at its max poll interval).
const queuePollRPS = 10000

// historyLongPoll is how long the history service holds a long poll of a
// workflow's history (see Start).
const historyLongPoll = 100 * time.Millisecond

// Server is a running embedded Temporal server.
type Server struct {
	server   temporal.Server
	frontend string
	level    *slog.LevelVar
}

// Start starts the server and returns once its frontend accepts calls.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.DatabaseFile == "" {
		return nil, errors.New("devstack: DatabaseFile is required")
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	_, statErr := os.Stat(opts.DatabaseFile)
	existed := statErr == nil
	sqlConf, err := prepareDatabase(opts.DatabaseFile)
	if err != nil {
		return nil, err
	}
	visConf, err := prepareVisibility(VisibilityFile(opts.DatabaseFile), existed, opts.DatabaseFile)
	if err != nil {
		return nil, err
	}
	// The ports are found free, then let go before the server binds them:
	// another process (or an outgoing connection) may take one between.
	// The server then cannot listen, and the start is tried again on
	// other ports, unless the port that failed is the one asked for.
	for attempt := 1; ; attempt++ {
		srv, err := startOn(opts, sqlConf, visConf)
		var le *listenError
		if errors.As(err, &le) && attempt < startAttempts && (opts.FrontendPort == 0 || le.service != primitives.FrontendService) {
			opts.Logger.Warn("temporal server could not listen; trying other ports", "error", err, "attempt", attempt)
			continue
		}
		return srv, err
	}
}

// startAttempts bounds how many sets of ports Start tries.
const startAttempts = 3

// listenError is a service of the server that could not bind its port.
type listenError struct {
	service primitives.ServiceName
	msg     string
}

func (e *listenError) Error() string { return fmt.Sprintf("temporal %s service: %s", e.service, e.msg) }

// pickPorts finds free ports; tests replace it to hand out a taken one.
var pickPorts = freePorts

// startOn starts the server on newly picked ports (the frontend's on
// opts.FrontendPort when set).
func startOn(opts Options, sqlConf, visConf *config.SQL) (*Server, error) {
	ports, err := pickPorts(opts.Host, 5)
	if err != nil {
		return nil, err
	}
	if opts.FrontendPort == 0 {
		opts.FrontendPort = ports[0]
	}
	grpcPorts := map[primitives.ServiceName]int{
		primitives.FrontendService: opts.FrontendPort,
		primitives.HistoryService:  ports[1],
		primitives.MatchingService: ports[2],
		primitives.WorkerService:   ports[3],
	}
	httpPorts := ports[4:]
	frontend := net.JoinHostPort(opts.Host, strconv.Itoa(opts.FrontendPort))
	conf := &config.Config{}
	conf.Global.Membership.MaxJoinDuration = 30 * time.Second
	conf.Global.Membership.BroadcastAddress = opts.Host
	conf.Persistence.DefaultStore = "sqlite"
	conf.Persistence.VisibilityStore = "visibility"
	conf.Persistence.NumHistoryShards = 1
	conf.Persistence.DataStores = map[string]config.DataStore{"sqlite": {SQL: sqlConf}, "visibility": {SQL: visConf}}
	conf.ClusterMetadata = &cluster.Config{
		FailoverVersionIncrement: 10,
		MasterClusterName:        clusterName,
		CurrentClusterName:       clusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{
			clusterName: {
				Enabled:                true,
				InitialFailoverVersion: 1,
				RPCAddress:             frontend,
				HTTPAddress:            net.JoinHostPort(opts.Host, strconv.Itoa(httpPorts[0])),
				ClusterID:              clusterID,
			},
		},
	}
	conf.DCRedirectionPolicy.Policy = "noop"
	conf.Services = map[string]config.Service{}
	hosts := map[primitives.ServiceName]static.Hosts{}
	for svc, port := range grpcPorts {
		var s config.Service
		s.RPC.GRPCPort = port
		s.RPC.BindOnIP = opts.Host
		if svc == primitives.FrontendService {
			s.RPC.HTTPPort = httpPorts[0]
		}
		conf.Services[string(svc)] = s
		hosts[svc] = static.SingleLocalHost(net.JoinHostPort(opts.Host, strconv.Itoa(port)))
	}
	conf.Archival.History.State = "disabled"
	conf.Archival.Visibility.State = "disabled"
	conf.NamespaceDefaults.Archival.History.State = "disabled"
	conf.NamespaceDefaults.Archival.Visibility.State = "disabled"
	conf.PublicClient.HostPort = frontend

	level := &slog.LevelVar{}
	level.Set(opts.Level)
	logger := serverLogger{log: opts.Logger, level: level, fatal: &fatalGuard{}}
	logger.fatal.starting.Store(true)
	defer logger.fatal.starting.Store(false)
	authorizer, err := authorization.GetAuthorizerFromConfig(&conf.Global.Authorization)
	if err != nil {
		return nil, fmt.Errorf("temporal authorizer: %w", err)
	}
	claimMapper, err := authorization.GetClaimMapperFromConfig(&conf.Global.Authorization, logger)
	if err != nil {
		return nil, fmt.Errorf("temporal claim mapper: %w", err)
	}
	dyn := dynamicconfig.StaticClient{
		dynamicconfig.HistoryCacheHostLevelMaxSize.Key():                 8096,
		dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key(): 100,
		dynamicconfig.EnableChasm.Key():                                  true,
		activity.Enabled.Key():                                           true,
		// The dev stack has one user and a SQLite file: let persistence go
		// as fast as the file allows.
		dynamicconfig.FrontendPersistenceMaxQPS.Key(): 10000,
		dynamicconfig.HistoryPersistenceMaxQPS.Key():  45000,
		// The step floor. Every workflow task (and every activity task
		// not dispatched eagerly) reaches matching through the history
		// shard's transfer queue, whose reader polls the database at most
		// history.transferProcessorMaxPollRPS times a second: 20 by
		// default, per shard. A cluster has hundreds of shards; the dev
		// stack has one, so after the limiter's small burst every
		// workflow task waited up to 50 ms (42 on average) for the next
		// poll, and a workflow with one activity, whose two workflow
		// tasks each waited, cost ~80 ms instead of ~12. The timer,
		// visibility and outbound queues read the same way.
		dynamicconfig.TransferProcessorMaxPollRPS.Key():   queuePollRPS,
		dynamicconfig.TimerProcessorMaxPollRPS.Key():      queuePollRPS,
		dynamicconfig.VisibilityProcessorMaxPollRPS.Key(): queuePollRPS,
		dynamicconfig.OutboundProcessorMaxPollRPS.Key():   queuePollRPS,
		// A client waiting for a workflow's result long-polls its
		// history; the history service hands the poll each new event
		// through a channel of one that drops what does not fit. An
		// event notified late (the poll had already read it) fills it,
		// the close event that follows is dropped, and the poll sleeps
		// out its interval: 20 s by default, for one workflow in some
		// hundreds on the dev stack (a `drover ps` that hung for 20 s).
		// At 100 ms, a missed close costs at most that (at 250 ms, one
		// miss in a 30-workflow benchmark run added 8 ms to its mean),
		// and a client waiting on a running workflow asks again ten
		// times a second: a read of the workflow's cached state each.
		dynamicconfig.HistoryLongPollExpirationInterval.Key(): historyLongPoll,
	}
	for k, v := range opts.DynamicConfig {
		dyn[dynamicconfig.MakeKey(k)] = v
	}
	srv, err := logger.fatal.guard(func() (temporal.Server, error) {
		return temporal.NewServer(
			temporal.WithConfig(conf),
			temporal.ForServices(temporal.DefaultServices),
			temporal.WithStaticHosts(hosts),
			temporal.WithLogger(logger),
			temporal.WithAuthorizer(authorizer),
			temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
			temporal.WithDynamicConfigClient(dyn),
		)
	})
	if err != nil {
		return nil, fmt.Errorf("create temporal server: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("start temporal server on %s: %w", frontend, err)
	}
	if err := logger.fatal.err(); err != nil {
		srv.Stop()
		return nil, fmt.Errorf("start temporal server on %s: %w", frontend, err)
	}
	return &Server{server: srv, frontend: frontend, level: level}, nil
}

// fatalGuard keeps what the server called fatal while it was being
// made. The server's logger is told Fatal where it cannot go on (a port
// it cannot bind) and, as zap's would, is expected not to return; the
// embedded server's logger returns, so the server carries on with what
// it could not make (a nil listener) and crashes the process on it, now
// or in a goroutine later. guard turns that into Start's error instead.
type fatalGuard struct {
	starting atomic.Bool
	mu       sync.Mutex
	first    error
}

// record keeps the first fatal reported while starting.
func (g *fatalGuard) record(msg string, tags []tag.Tag) {
	if g == nil || !g.starting.Load() {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.first != nil {
		return
	}
	var service, cause string
	for _, t := range tags {
		switch t.Key() {
		case "service":
			service = fmt.Sprint(t.Value())
		case "error":
			cause = fmt.Sprint(t.Value())
		}
	}
	if msg == "Failed to start gRPC listener" {
		g.first = &listenError{service: primitives.ServiceName(service), msg: cause}
		return
	}
	g.first = fmt.Errorf("temporal: %s: %s", msg, cause)
}

func (g *fatalGuard) err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.first
}

// guard runs build, returning the first fatal it reported as its error,
// and recovering the panic a fatal leads to.
func (g *fatalGuard) guard(build func() (temporal.Server, error)) (srv temporal.Server, err error) {
	defer func() {
		if p := recover(); p != nil {
			if ferr := g.err(); ferr != nil {
				srv, err = nil, ferr
				return
			}
			panic(p)
		}
		if ferr := g.err(); ferr != nil {
			srv, err = nil, ferr
		}
	}()
	return build()
}

// FrontendAddress is host:port of the frontend, for clients, the Temporal CLI
// (`temporal --address`) and the Temporal UI.
func (s *Server) FrontendAddress() string { return s.frontend }

// Silence drops the server's logs from now on. Call it before stopping
// clients and workers too: the server logs their going away as errors.
func (s *Server) Silence() { s.level.Set(slog.LevelError + 4) }

// Stop stops the server, silencing it first.
func (s *Server) Stop() error {
	s.Silence()
	return s.server.Stop()
}

// VisibilityFile is the SQLite file beside file that holds the server's
// visibility records (what workflow listings and the Temporal UI read).
//
// They have a file of their own so that their writes do not take the
// main file's one writer: each is a row with some sixty indexes and
// full-text tables behind triggers, a quarter of the server's CPU per
// workflow, and with one file every workflow's next step waited for the
// write lock behind them (BenchmarkSequentialWorkflows: p50 17 ms with
// one file, 13 with two).
func VisibilityFile(file string) string {
	return strings.TrimSuffix(file, filepath.Ext(file)) + "-visibility" + filepath.Ext(file)
}

// prepareVisibility creates the visibility store's file on first start.
// When the main file is older (a dev stack from before the split), the
// records it holds are copied over, so running and past workflows stay
// listed.
func prepareVisibility(file string, fromExisting bool, main string) (*config.SQL, error) {
	conf := sqliteConfig(file)
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		return conf, nil
	}
	err := sqliteschema.SetupSchema(conf)
	if err != nil {
		err = fmt.Errorf("set up temporal visibility schema in %s: %w", file, err)
	} else if fromExisting {
		err = copyVisibility(file, main)
	}
	if err != nil {
		// No half-made file that the next start would take as made.
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(file + suffix)
		}
		return nil, err
	}
	return conf, nil
}

// copyVisibility copies the visibility records of the main file into the
// new visibility file.
func copyVisibility(to, from string) error {
	db, err := sql.Open("sqlite", "file:"+to+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("open %s: %w", to, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `ATTACH DATABASE `+sqlQuote("file:"+from)+` AS old`); err != nil {
		return fmt.Errorf("copy temporal visibility records from %s: %w", from, err)
	}
	defer db.ExecContext(ctx, `DETACH DATABASE old`)
	// The stored columns only: the search attributes' columns are
	// generated from them, and cannot be written.
	rows, err := db.QueryContext(ctx, `SELECT name FROM pragma_table_xinfo('executions_visibility', 'old') WHERE hidden = 0 ORDER BY cid`)
	if err != nil {
		return fmt.Errorf("copy temporal visibility records from %s: %w", from, err)
	}
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return fmt.Errorf("copy temporal visibility records from %s: %w", from, err)
		}
		cols = append(cols, `"`+c+`"`)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(cols) == 0 {
		return fmt.Errorf("copy temporal visibility records from %s: no columns (%v)", from, err)
	}
	list := strings.Join(cols, ", ")
	if _, err := db.ExecContext(ctx, `INSERT INTO main.executions_visibility (`+list+`) SELECT `+list+` FROM old.executions_visibility`); err != nil {
		return fmt.Errorf("copy temporal visibility records from %s to %s: %w", from, to, err)
	}
	return nil
}

func sqlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func sqliteConfig(file string) *config.SQL {
	return &config.SQL{
		PluginName:   sqliteplugin.PluginName,
		DatabaseName: file,
		ConnectAttributes: map[string]string{
			"mode": "rwc",
			// WAL survives a killed process without losing committed
			// writes, and NORMAL sync is durable against exactly that.
			"journal_mode": "wal",
			"synchronous":  "1",
			"busy_timeout": "10000",
		},
	}
}

func prepareDatabase(file string) (*config.SQL, error) {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return nil, fmt.Errorf("create temporal data dir: %w", err)
	}
	conf := sqliteConfig(file)
	if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
		if err := sqliteschema.SetupSchema(conf); err != nil {
			return nil, fmt.Errorf("set up temporal schema in %s: %w", file, err)
		}
	}
	ns, err := sqliteschema.NewNamespaceConfig(clusterName, Namespace, false, nil)
	if err != nil {
		return nil, fmt.Errorf("temporal namespace config: %w", err)
	}
	if err := sqliteschema.CreateNamespaces(conf, ns); err != nil {
		return nil, fmt.Errorf("create temporal namespace %q: %w", Namespace, err)
	}
	return conf, nil
}

// freePorts asks the kernel for n free ports on host. They are released
// before the server binds them, which is the usual small race of dev servers.
func freePorts(host string, n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []int
	for range n {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, fmt.Errorf("find a free port on %s: %w", host, err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// serverLogger adapts slog to the server's logger interface.
type serverLogger struct {
	log   *slog.Logger
	level *slog.LevelVar
	fatal *fatalGuard
}

var _ log.Logger = serverLogger{}

func (l serverLogger) Debug(msg string, tags ...tag.Tag) { l.emit(slog.LevelDebug, msg, tags) }
func (l serverLogger) Info(msg string, tags ...tag.Tag)  { l.emit(slog.LevelInfo, msg, tags) }
func (l serverLogger) Warn(msg string, tags ...tag.Tag)  { l.emit(slog.LevelWarn, msg, tags) }
func (l serverLogger) Error(msg string, tags ...tag.Tag) { l.emit(slog.LevelError, msg, tags) }
func (l serverLogger) DPanic(msg string, tags ...tag.Tag) {
	l.emit(slog.LevelError, msg, tags)
}
func (l serverLogger) Panic(msg string, tags ...tag.Tag) { l.emit(slog.LevelError, msg, tags) }
func (l serverLogger) Fatal(msg string, tags ...tag.Tag) {
	l.emit(slog.LevelError, msg, tags)
	l.fatal.record(msg, tags)
}

func (l serverLogger) emit(level slog.Level, msg string, tags []tag.Tag) {
	if level < l.level.Level() || !l.log.Enabled(context.Background(), level) {
		return
	}
	attrs := make([]slog.Attr, len(tags))
	for i, t := range tags {
		attrs[i] = slog.Any(t.Key(), t.Value())
	}
	l.log.LogAttrs(context.Background(), level, msg, append([]slog.Attr{slog.String("component", "temporal")}, attrs...)...)
}
