package contract_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	napi "github.com/hashicorp/nomad/api"

	"github.com/drover/drover/api"
	"github.com/drover/drover/buildjobs"
	"github.com/drover/drover/deployments/slugs"
	"github.com/drover/drover/internal/gittest"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions/nomad"
)

// TestMain lets this test binary be a build job's command, as drover's
// binary is in production (drover build-slug): raw_exec runs it with
// buildjobs.Command as its argument. The contract suite so needs no drover
// binary (which links the Temporal server) on the node.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == buildjobs.Command {
		if err := slugs.RunJob(context.Background(), os.Getenv, os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "build failed: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// buildEnv is a Nomad region, drover's upload route in front of a slug
// store, and a Builder running build jobs with this test binary.
type buildEnv struct {
	region  *nomad.Region
	client  *napi.Client
	store   *slugs.Store
	builder *buildjobs.Builder
}

func setupBuilds(t *testing.T) *buildEnv {
	t.Helper()
	addr := os.Getenv("NOMAD_ADDR")
	if addr == "" {
		t.Skip("NOMAD_ADDR is not set: the Nomad contract suite did not run build jobs (start `nomad agent -dev` and set NOMAD_ADDR=http://127.0.0.1:4646)")
	}
	region := os.Getenv("NOMAD_REGION")
	if region == "" {
		region = "global"
	}
	store, err := slugs.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	grants := slugs.NewGrants([]byte("contract key"))
	base := serveForNomad(t, func(e *gin.Engine) { (&api.Uploads{Store: store, Grants: grants}).Register(e) })

	spec := pipelines.RegionSpec{Name: region, Driver: pipelines.DriverNomad, Nomad: pipelines.NomadSpec{Address: addr, Region: region}}
	r, err := nomad.New(spec, nomad.Options{Token: os.Getenv("NOMAD_TOKEN"), PollInterval: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if bin := os.Getenv("DROVER_CONTRACT_DROVER_BIN"); bin != "" {
		self = bin // a drover binary, to run its own build-slug
	}
	client, err := napi.NewClient(napi.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return &buildEnv{region: r, client: client, store: store, builder: &buildjobs.Builder{
		Jobs: r, Grants: grants, Slugs: store, UploadURL: func() string { return base },
		Spec: pipelines.BuildsSpec{Region: region, Driver: "raw_exec", Command: self, NodePool: "default", Datacenters: []string{"dc1"},
			Resources: pipelines.BuildResources{CPU: 200, Memory: 256}},
	}}
}

// gitRepo makes a repository with one commit of files.

// assertGone fails unless no job of this build, nor its secrets, is left.
func (e *buildEnv) assertGone(t *testing.T, commit string) {
	t.Helper()
	stubs, _, err := e.client.Jobs().PrefixList("build-")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stubs {
		if strings.Contains(s.ID, commit[:12]) {
			t.Errorf("build job %s (%s) is still registered", s.ID, s.Status)
		}
	}
	vars, _, err := e.client.Variables().PrefixList("nomad/jobs/build-", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vars {
		if strings.Contains(v.Path, commit[:12]) {
			t.Errorf("build secrets %s are still stored", v.Path)
		}
	}
}

// TestBuildJobs builds in Nomad batch jobs: a build that succeeds with the
// digest a local build of the commit makes, one that fails with its log,
// and one cancelled mid-way.
func TestBuildJobs(t *testing.T) {
	e := setupBuilds(t)
	app := fmt.Sprintf("drover-contract-b%d", time.Now().UnixNano()%100000)

	t.Run("succeeds with the local digest", func(t *testing.T) {
		url, commit := gittest.Repo(t, map[string]string{"Procfile": "web: bin/serve\nworker: bin/work\n", "bin/serve": "#!/bin/sh\necho serve\n"})
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		start := time.Now()
		var out bytes.Buffer
		res, err := e.builder.Build(ctx, slugs.BuildInput{CloneURL: url, Commit: commit, App: app, Token: "t0ken-for-the-job"}, &out)
		t.Logf("build job took %v", time.Since(start).Round(time.Millisecond))
		if err != nil {
			t.Fatalf("build: %v\noutput:\n%s", err, out.String())
		}
		local, err := (&slugs.Builder{Store: e.store, WorkDir: t.TempDir()}).Build(ctx, slugs.BuildInput{CloneURL: url, Commit: commit}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if res.Digest != local.Digest || res.Procfile.String() != local.Procfile.String() || res.Buildpack != slugs.BuildpackProcfile {
			t.Fatalf("Nomad build %+v, local build %+v: want the same slug", res, local)
		}
		for _, want := range []string{"Fetching", "Procfile declares types -> (web, worker)", "Slug sha256:" + res.Digest,
			// The token reached the job through the Nomad variable.
			"Using the repository's fetch credentials"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("build log lacks %q:\n%s", want, out.String())
			}
		}
		e.assertGone(t, commit)
	})

	t.Run("Go app succeeds with the local digest", func(t *testing.T) {
		url, commit := gittest.Repo(t, map[string]string{"go.mod": "module example.com/hello\n\ngo 1.22\n",
			"main.go": "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n"})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		start := time.Now()
		var out bytes.Buffer
		res, err := e.builder.Build(ctx, slugs.BuildInput{CloneURL: url, Commit: commit, App: app}, &out)
		t.Logf("Go build job took %v", time.Since(start).Round(time.Millisecond))
		if err != nil {
			t.Fatalf("build: %v\noutput:\n%s", err, out.String())
		}
		local, err := (&slugs.Builder{Store: e.store, WorkDir: t.TempDir()}).Build(ctx, slugs.BuildInput{CloneURL: url, Commit: commit}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if res.Digest != local.Digest || res.Buildpack != slugs.BuildpackGo || res.Procfile.String() != "web: bin/hello\n" {
			t.Fatalf("Nomad build %+v, local build %+v: want the same slug\n%s", res, local, out.String())
		}
		e.assertGone(t, commit)
	})

	t.Run("fails with its log", func(t *testing.T) {
		url, commit := gittest.Repo(t, map[string]string{"Procfile": "web bin/serve\n"})
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		start := time.Now()
		var out bytes.Buffer
		_, err := e.builder.Build(ctx, slugs.BuildInput{CloneURL: url, Commit: commit, App: app}, &out)
		t.Logf("failed build job took %v: %v", time.Since(start).Round(time.Millisecond), err)
		if !errors.Is(err, pipelines.ErrInvalid) || !strings.Contains(err.Error(), "exit code 1") || !strings.Contains(err.Error(), "Procfile") {
			t.Fatalf("build = %v, want the exit code and the Procfile's error", err)
		}
		if !strings.Contains(out.String(), "Fetching") || !strings.Contains(out.String(), "build failed:") {
			t.Errorf("build log lacks the job's output:\n%s", out.String())
		}
		e.assertGone(t, commit)
	})

	t.Run("no node can run it", func(t *testing.T) {
		url, commit := gittest.Repo(t, map[string]string{"Procfile": "web: bin/serve\n"})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		b := *e.builder
		b.Spec.Datacenters = []string{"drover-no-such-dc"}
		start := time.Now()
		_, err := b.Build(ctx, slugs.BuildInput{CloneURL: url, Commit: commit, App: app}, io.Discard)
		t.Logf("unplaceable build job failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
		if !errors.Is(err, pipelines.ErrInvalid) || !strings.Contains(err.Error(), "no node can run build job") {
			t.Fatalf("build = %v, want a placement failure", err)
		}
		e.assertGone(t, commit)
	})

	t.Run("cancelled mid-way", func(t *testing.T) {
		// A git server that takes the connection and never answers: the
		// build hangs in its fetch until drover gives up on it.
		hang, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer hang.Close()
		// Closed when git hangs up: its process was killed.
		hungUp := make(chan struct{})
		go func() {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			io.Copy(io.Discard, c)
			close(hungUp)
		}()
		_, commit := gittest.Repo(t, map[string]string{"Procfile": "web: bin/serve\n"})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := &watch{want: "Fetching", seen: make(chan struct{})}
		done := make(chan error, 1)
		start := time.Now()
		go func() {
			_, err := e.builder.Build(ctx, slugs.BuildInput{CloneURL: "http://" + hang.Addr().String() + "/app.git", Commit: commit, App: app}, w)
			done <- err
		}()
		select {
		case <-w.seen:
		case err := <-done:
			t.Fatalf("build ended before it was cancelled: %v\n%s", err, w.String())
		case <-time.After(2 * time.Minute):
			t.Fatalf("the build job's log never said it was fetching:\n%s", w.String())
		}
		t.Logf("build job was fetching after %v; cancelling", time.Since(start).Round(time.Millisecond))
		cancel()
		err = <-done
		t.Logf("cancelled build returned after %v: %v", time.Since(start).Round(time.Millisecond), err)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled build = %v, want context.Canceled", err)
		}
		e.assertGone(t, commit)
		select {
		case <-hungUp:
			t.Logf("the build's git hung up %v after the start", time.Since(start).Round(time.Millisecond))
		case <-time.After(30 * time.Second):
			t.Error("the build's git is still connected 30s after the build was cancelled: its process was not stopped")
		}
	})
}

// watch is a build log that says when a line appears.
type watch struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *watch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func (w *watch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
