package buildjobs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/drover/drover/api"
	"github.com/drover/drover/buildjobs"
	"github.com/drover/drover/deployments/slugs"
	"github.com/drover/drover/internal/gittest"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions/nomad"
)

// inProcess runs a build job's body (slugs.RunJob) in this process, with
// the job's environment and secrets, as a Nomad client would; or, with
// forge set, prints what forge returns instead, as hostile build code can.
type inProcess struct {
	t     *testing.T
	jobs  []nomad.BuildJob
	forge func(b nomad.BuildJob) string
}

func (r *inProcess) RunBuild(ctx context.Context, b nomad.BuildJob, out io.Writer) (nomad.BuildJobResult, error) {
	r.jobs = append(r.jobs, b)
	if r.forge != nil {
		return nomad.BuildJobResult{Stdout: r.forge(b)}, nil
	}
	secrets := r.t.TempDir()
	env := map[string]string{}
	for k, v := range b.Env {
		env[k] = os.Expand(v, func(name string) string {
			switch name {
			case "NOMAD_SECRETS_DIR":
				return secrets
			case "NOMAD_TASK_DIR":
				return r.t.TempDir()
			}
			return ""
		})
	}
	for k, v := range b.Secrets {
		os.WriteFile(filepath.Join(secrets, k), []byte(v), 0o600)
	}
	var stdout bytes.Buffer
	if err := slugs.RunJob(ctx, func(k string) string { return env[k] }, io.MultiWriter(&stdout, out)); err != nil {
		return nomad.BuildJobResult{}, fmt.Errorf("build job %s failed: exit code 1: %v: %w", b.ID, err, pipelines.ErrInvalid)
	}
	return nomad.BuildJobResult{Stdout: stdout.String()}, nil
}

type fixture struct {
	store   *slugs.Store
	grants  *slugs.Grants
	builder *buildjobs.Builder
	runner  *inProcess
}

func newFixture(t *testing.T) *fixture {
	store, err := slugs.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	grants := slugs.NewGrants([]byte("config key"))
	gin.SetMode(gin.TestMode)
	e := gin.New()
	(&api.Uploads{Store: store, Grants: grants}).Register(e)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	runner := &inProcess{t: t}
	return &fixture{store: store, grants: grants, runner: runner, builder: &buildjobs.Builder{
		Jobs: runner, Grants: grants, Slugs: store, UploadURL: func() string { return srv.URL },
		Spec: pipelines.BuildsSpec{Region: "us", Driver: "raw_exec", Command: "/usr/local/bin/drover"},
	}}
}

// gitRepo makes a repository with one commit of files.

func TestBuildMatchesLocalBuild(t *testing.T) {
	f := newFixture(t)
	url, commit := gittest.Repo(t, map[string]string{"Procfile": "web: ./serve\nworker: ./work\n", "serve": "#!/bin/sh\n"})
	var out bytes.Buffer
	res, err := f.builder.Build(context.Background(), slugs.BuildInput{CloneURL: url, Commit: commit, App: "hello", Token: "t0ken"}, &out)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out.String())
	}
	local := &slugs.Builder{Store: f.store, WorkDir: t.TempDir()}
	want, err := local.Build(context.Background(), slugs.BuildInput{CloneURL: url, Commit: commit}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != want.Digest || res.Buildpack != slugs.BuildpackProcfile || res.Procfile.String() != want.Procfile.String() || res.Size == 0 {
		t.Fatalf("job build = %+v, local build = %+v", res, want)
	}
	b := f.runner.jobs[0]
	if !strings.HasPrefix(b.ID, "build-hello-"+commit[:12]+"-") || b.Args[0] != buildjobs.Command {
		t.Errorf("job %+v", b)
	}
	// The token travels as a secret file, never in the job's environment.
	for k, v := range b.Env {
		if strings.Contains(v, "t0ken") {
			t.Errorf("the git token is in the job's env %s", k)
		}
	}
	if !strings.Contains(out.String(), "Using the repository's fetch credentials") || !strings.Contains(out.String(), "Procfile declares types") {
		t.Errorf("build output:\n%s", out.String())
	}
}

func TestBuildRefusesWhatTheJobCannotProve(t *testing.T) {
	f := newFixture(t)
	// Another app's slug, which the hostile build would like to pass off
	// as its own.
	url, commit := gittest.Repo(t, map[string]string{"Procfile": "web: ./serve\n"})
	other, err := (&slugs.Builder{Store: f.store, WorkDir: t.TempDir()}).Build(context.Background(), slugs.BuildInput{CloneURL: url, Commit: commit}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	uploadOf := func(b nomad.BuildJob) string {
		return strings.TrimPrefix(b.Env[slugs.JobEnvUploadURL], f.builder.UploadURL()+"/slugs/uploads/")
	}
	for name, forge := range map[string]func(b nomad.BuildJob) string{
		"no result line": func(nomad.BuildJob) string { return "-----> all done\n" },
		"no receipt": func(nomad.BuildJob) string {
			return fmt.Sprintf("%s{\"digest\":%q}\n", slugs.JobResultPrefix, other.Digest)
		},
		"receipt of another upload": func(nomad.BuildJob) string {
			r := f.grants.Receipt("someone-elses-upload", other.Digest, time.Now().Add(time.Hour))
			return fmt.Sprintf("%s{\"digest\":%q,\"receipt\":%q}\n", slugs.JobResultPrefix, other.Digest, r)
		},
		"its upload grant as the receipt": func(b nomad.BuildJob) string {
			return fmt.Sprintf("%s{\"digest\":%q,\"receipt\":%q}\n", slugs.JobResultPrefix, other.Digest, b.Env[slugs.JobEnvGrant])
		},
		"receipt for another digest": func(b nomad.BuildJob) string {
			r := f.grants.Receipt(uploadOf(b), strings.Repeat("a", 64), time.Now().Add(time.Hour))
			return fmt.Sprintf("%s{\"digest\":%q,\"receipt\":%q}\n", slugs.JobResultPrefix, other.Digest, r)
		},
	} {
		t.Run(name, func(t *testing.T) {
			f.runner.forge = forge
			_, err := f.builder.Build(context.Background(), slugs.BuildInput{CloneURL: url, Commit: commit}, io.Discard)
			if !errors.Is(err, pipelines.ErrInvalid) {
				t.Fatalf("build = %v, want ErrInvalid", err)
			}
		})
	}
	// The control: a genuine receipt for this upload is accepted.
	f.runner.forge = func(b nomad.BuildJob) string {
		r := f.grants.Receipt(uploadOf(b), other.Digest, time.Now().Add(time.Hour))
		return fmt.Sprintf("%s{\"digest\":%q,\"receipt\":%q}\n", slugs.JobResultPrefix, other.Digest, r)
	}
	if res, err := f.builder.Build(context.Background(), slugs.BuildInput{CloneURL: url, Commit: commit}, io.Discard); err != nil || res.Digest != other.Digest {
		t.Fatalf("genuine receipt: %+v, %v", res, err)
	}
}

func TestBuildFailureCarriesTheLog(t *testing.T) {
	f := newFixture(t)
	url, commit := gittest.Repo(t, map[string]string{"Procfile": "web ./serve\n"})
	var out bytes.Buffer
	_, err := f.builder.Build(context.Background(), slugs.BuildInput{CloneURL: url, Commit: commit}, &out)
	if !errors.Is(err, pipelines.ErrInvalid) || !strings.Contains(out.String(), "Fetching") {
		t.Fatalf("build = %v; output:\n%s", err, out.String())
	}
}
