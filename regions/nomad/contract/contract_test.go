package contract_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/drover/drover/api"
	"github.com/drover/drover/deployments/slugs"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
	"github.com/drover/drover/regions/nomad"
)

const server = `package main

import (
	"fmt"
	"net/http"
	"os"
	"time"
)

func main() {
	// A release that is slow to start: it answers only after this long.
	if d, err := time.ParseDuration(os.Getenv("START_AFTER")); err == nil {
		time.Sleep(d)
	}
	if os.Getenv("CRASH") != "" {
		fmt.Fprintln(os.Stderr, "listen tcp: address already in use")
		os.Exit(1)
	}
	// The value of one environment variable, exactly.
	http.HandleFunc("/env/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, os.Getenv(r.URL.Path[len("/env/"):]))
	})
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// A release that runs but answers with an error.
		if os.Getenv("ANSWER_500") != "" {
			http.Error(w, "database unreachable", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, os.Getenv("GREETING"))
		// An access log line, for the log tests.
		fmt.Println("request", r.URL.Path)
	})
	http.ListenAndServe(":"+os.Getenv("PORT"), nil)
}
`

// env is one Nomad agent, a slug server it can reach, and the region.
type env struct {
	region *nomad.Region
	slug   regions.Slug
	// addr and nomadRegion are the agent's, for tests that ask it directly.
	addr, nomadRegion string
}

func setup(t *testing.T) *env {
	t.Helper()
	addr := os.Getenv("NOMAD_ADDR")
	if addr == "" {
		t.Skip("NOMAD_ADDR is not set: the Nomad contract suite did not run (start `nomad agent -dev` and set NOMAD_ADDR=http://127.0.0.1:4646)")
	}
	region := os.Getenv("NOMAD_REGION")
	if region == "" {
		region = "global"
	}

	// A slug holding a real web server, built for this machine.
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module example.com/web\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte(server), 0o644)
	app := filepath.Join(t.TempDir(), "app")
	os.MkdirAll(filepath.Join(app, "bin"), 0o755)
	build := exec.Command("go", "build", "-o", filepath.Join(app, "bin", "web"), ".")
	build.Dir, build.Env = src, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build test server: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(app, "Procfile"), []byte("web: bin/web\n"), 0o644)
	store, err := slugs.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(slugs.Pack(context.Background(), app, pw)) }()
	digest, err := store.Put(context.Background(), pr)
	if err != nil {
		t.Fatal(err)
	}

	// Serve it as drover does, where the Nomad client can fetch it.
	// Slugs are served only with a grant: the URL below carries one, as
	// the one drover hands Nomad does.
	grants := slugs.NewGrants([]byte("contract config key"))
	base := serveForNomad(t, func(e *gin.Engine) { api.RegisterSlugs(e, store, api.SlugAccess{Grants: grants}) })

	spec := pipelines.RegionSpec{Name: region, Driver: pipelines.DriverNomad, Nomad: pipelines.NomadSpec{
		Address: addr, Region: region, TaskDriver: "raw_exec",
	}}
	r, err := nomad.New(spec, nomad.Options{Token: os.Getenv("NOMAD_TOKEN")})
	if err != nil {
		t.Fatal(err)
	}
	return &env{region: r, slug: regions.Slug{Digest: digest, URL: api.SlugURL(base, grants, digest, time.Now().Add(time.Hour))}, addr: addr, nomadRegion: region}
}

func (e *env) deployment(app string, release int, env map[string]string) regions.Deployment {
	return regions.Deployment{App: app, Release: release, Slug: e.slug,
		Procfile:  pipelines.Procfile{{Type: "web", Command: "bin/web"}},
		Formation: pipelines.Formation{"web": 1}, Env: env,
		Progress: func(string) {}}
}

// serveForNomad serves drover's routes that register adds where the
// agent's clients reach them (DROVER_CONTRACT_SLUG_HOST, default the
// loopback), until the test ends, and returns their base URL.
func serveForNomad(t *testing.T, register func(*gin.Engine)) string {
	t.Helper()
	host := os.Getenv("DROVER_CONTRACT_SLUG_HOST")
	if host == "" {
		host = "127.0.0.1"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	gin.SetMode(gin.TestMode)
	engine := gin.New()
	register(engine)
	srv := &http.Server{Handler: engine}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

func get(url string) (string, error) {
	b, err := getRaw(url)
	return strings.TrimSpace(b), err
}

// TestContract deploys, fails a deploy on purpose, rolls back by
// registering the previous release, runs a release phase, and stops.
func TestContract(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	app := fmt.Sprintf("drover-contract-%d", time.Now().Unix()%100000)
	t.Cleanup(func() { e.region.Stop(context.Background(), app) })

	t.Logf("deploying %s v1", app)
	res, err := e.region.Deploy(ctx, e.deployment(app, 1, map[string]string{"GREETING": "hello v1"}))
	if err != nil {
		t.Fatalf("deploy v1: %v", err)
	}
	if body, err := get(res.URL); err != nil || body != "hello v1" {
		t.Fatalf("GET %s = %q, %v", res.URL, body, err)
	}

	t.Log("deploying v2, which crashes")
	start := time.Now()
	_, err = e.region.Deploy(ctx, e.deployment(app, 2, map[string]string{"GREETING": "hello v2", "CRASH": "1"}))
	var de *regions.DeployError
	if !errors.As(err, &de) {
		t.Fatalf("deploy v2 = %v, want a DeployError", err)
	}
	t.Logf("v2 failed after %v: %s", time.Since(start).Round(time.Second), de.Reason)
	if !strings.Contains(de.Reason, "address already in use") && !strings.Contains(de.Reason, "exit") {
		t.Errorf("reason %q does not say why", de.Reason)
	}
	if time.Since(start) > 2*time.Minute {
		t.Errorf("the failure took %v; drover's defaults should fail it within about a minute", time.Since(start))
	}

	t.Log("rolling back: registering v1's job again")
	res, err = e.region.Deploy(ctx, e.deployment(app, 1, map[string]string{"GREETING": "hello v1"}))
	if err != nil {
		t.Fatalf("roll back to v1: %v", err)
	}
	st, err := e.region.Status(ctx, app)
	if err != nil || st.Release != 1 {
		t.Fatalf("status after rollback = %+v, %v", st, err)
	}
	if body, err := get(res.URL); err != nil || body != "hello v1" {
		t.Fatalf("GET %s after rollback = %q, %v", res.URL, body, err)
	}

	t.Log("ps")
	ps, err := e.region.Processes(ctx, app)
	if err != nil {
		t.Fatalf("processes: %v", err)
	}
	if len(ps) != 1 || ps[0].Dyno != "web.1" || ps[0].State != regions.ProcessUp || ps[0].Release != 1 || ps[0].Since.IsZero() {
		t.Fatalf("processes after rollback = %+v; want web.1 up on v1", ps)
	}

	t.Log("release phase")
	for i, tc := range []struct {
		command, want string
		code          int
	}{{"echo migrating", "migrating", 0}, {"echo broken; exit 3", "broken", 3},
		// Started as a dyno: HOME is the unpacked slug's dir, its bin/ on PATH.
		{`test "$HOME" = "$PWD" && case "$PWD:$PATH" in */local/app:*/local/app/bin:*) echo dyno-env-ok;; esac`, "dyno-env-ok", 0}} {
		// A release phase runs once per release: each case is its own.
		out, err := e.region.RunTask(ctx, regions.Task{App: app, Release: 3 + i, Name: "release", Slug: e.slug, Command: tc.command})
		if err != nil {
			t.Fatalf("run %q: %v", tc.command, err)
		}
		if out.ExitCode != tc.code || !strings.Contains(out.Output, tc.want) {
			t.Fatalf("run %q = %+v", tc.command, out)
		}
	}

	if err := e.region.Stop(ctx, app); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if st, err := e.region.Status(ctx, app); err != nil || st.Running {
		t.Fatalf("status after stop = %+v, %v", st, err)
	}
}
