// Package buildjobs builds slugs in Nomad batch jobs on build nodes (the
// builds: block of drover.yaml), so code from a push or a pull request runs
// on machines that hold none of drover's secrets, data or control.
//
// Each build gets an upload ID and a grant to upload one slug under it,
// valid for the build's time limit. The job (drover build-slug, see
// slugs.RunJob) builds with the same slugs.Builder as a local build, so a
// commit makes the same digest either way, and streams the slug to drover's
// upload route, which hashes and stores it and answers with a receipt
// signed for that upload ID and digest. Everything the job prints is the
// repository's to forge, so the Builder believes only a receipt for its own
// upload ID, and reads the Procfile and buildpack from the stored slug.
package buildjobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/drover/drover/deployments/slugs"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions/nomad"
)

// Runner runs one build job and returns what it printed on stdout;
// *nomad.Region is one.
type Runner interface {
	RunBuild(ctx context.Context, b nomad.BuildJob, out io.Writer) (nomad.BuildJobResult, error)
}

// SlugFiles finds a stored slug as a local file.
type SlugFiles interface {
	Path(digest string) (string, error)
}

// Command is the drover command a build job runs.
const Command = "build-slug"

// gitTokenSecret is the secret (secrets/<name> in the task) holding the
// repository's fetch token.
const gitTokenSecret = "git_token"

// uploadGrace is how long past the build's time limit its upload grant
// lasts: the upload itself comes last.
const uploadGrace = 5 * time.Minute

// jobSlack is how long past its build time limit a job may run: placing
// it, starting its task, uploading.
const jobSlack = 2 * time.Minute

// Builder is a workflows.Builder that builds in Nomad batch jobs.
type Builder struct {
	Jobs   Runner
	Spec   pipelines.BuildsSpec
	Grants *slugs.Grants
	// Slugs is the store the upload route puts slugs in.
	Slugs SlugFiles
	// UploadURL returns drover's base URL as build nodes reach it; a func,
	// since a server on port 0 knows its address only once it listens.
	UploadURL func() string
	// Now defaults to time.Now.
	Now func() time.Time
}

// Build runs in.Commit's build as a Nomad job, streaming its output to out,
// and returns the slug it uploaded. A build that failed by its own doing,
// or whose job gives no valid receipt, is an error matching
// pipelines.ErrInvalid.
func (b *Builder) Build(ctx context.Context, in slugs.BuildInput, out io.Writer) (slugs.BuildResult, error) {
	if !pipelines.ValidCommit(in.Commit) {
		return slugs.BuildResult{}, fmt.Errorf("commit %q: want a full 40-hex SHA: %w", in.Commit, pipelines.ErrInvalid)
	}
	if in.CloneURL == "" || strings.HasPrefix(in.CloneURL, "-") {
		return slugs.BuildResult{}, fmt.Errorf("clone URL %q: %w", in.CloneURL, pipelines.ErrInvalid)
	}
	now := time.Now
	if b.Now != nil {
		now = b.Now
	}
	base := strings.TrimSuffix(b.UploadURL(), "/")
	if base == "" {
		return slugs.BuildResult{}, errors.New("build job: no URL to upload the slug to; set builds.upload_url or drover's public URL")
	}
	limit := b.Spec.JobTimeout()
	uploadID := newUploadID()
	grant := b.Grants.Sign(slugs.GrantUpload, uploadID, now().Add(limit+uploadGrace))
	job := nomad.BuildJob{
		Spec:   b.Spec,
		ID:     nomad.BuildJobID(jobApp(in.App), in.Commit, uploadID[:8]),
		App:    jobApp(in.App),
		Commit: in.Commit,
		Args:   []string{Command},
		Env: map[string]string{
			slugs.JobEnvCloneURL:  in.CloneURL,
			slugs.JobEnvCommit:    in.Commit,
			slugs.JobEnvUploadURL: base + slugs.UploadPath(uploadID),
			slugs.JobEnvGrant:     grant,
			slugs.JobEnvWorkDir:   "${NOMAD_TASK_DIR}/build",
			slugs.JobEnvTimeout:   limit.String(),
		},
	}
	if in.Token != "" {
		job.Secrets = map[string]string{gitTokenSecret: in.Token}
		job.Env[slugs.JobEnvTokenFile] = "${NOMAD_SECRETS_DIR}/" + gitTokenSecret
	}
	fmt.Fprintf(out, "-----> Building in Nomad job %s\n", job.ID)
	// The job's own builder stops at the limit and says so in its log;
	// this is for a job that never got going or hangs past it.
	jctx, cancel := context.WithTimeout(ctx, limit+jobSlack)
	defer cancel()
	res, err := b.Jobs.RunBuild(jctx, job, out)
	if err != nil {
		if jctx.Err() != nil && ctx.Err() == nil {
			return slugs.BuildResult{}, fmt.Errorf("build job %s stopped after %s, the build time limit and %s to place and upload: %w", job.ID, limit, jobSlack, pipelines.ErrInvalid)
		}
		return slugs.BuildResult{}, err
	}
	up, err := slugs.ParseJobResult(res.Stdout)
	if err != nil {
		return slugs.BuildResult{}, fmt.Errorf("build job %s: %w: %w", job.ID, err, pipelines.ErrInvalid)
	}
	if !slugs.ValidDigest(up.Digest) {
		return slugs.BuildResult{}, fmt.Errorf("build job %s named slug %q, not a digest: %w", job.ID, up.Digest, pipelines.ErrInvalid)
	}
	if err := b.Grants.CheckReceipt(uploadID, up.Digest, up.Receipt, now()); err != nil {
		return slugs.BuildResult{}, fmt.Errorf("build job %s: drover did not receive its slug %s: %w: %w", job.ID, up.Digest, err, pipelines.ErrInvalid)
	}
	path, err := b.Slugs.Path(up.Digest)
	if err != nil {
		return slugs.BuildResult{}, fmt.Errorf("slug %s of build job %s: %w", up.Digest, job.ID, err)
	}
	procfile, pack, err := slugs.Inspect(ctx, path)
	if err != nil {
		return slugs.BuildResult{}, fmt.Errorf("slug %s of build job %s: %w", up.Digest, job.ID, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return slugs.BuildResult{}, fmt.Errorf("slug %s of build job %s: %w", up.Digest, job.ID, err)
	}
	return slugs.BuildResult{Digest: up.Digest, Procfile: procfile, Buildpack: pack, Size: st.Size()}, nil
}

// jobApp is app when it can be part of a job ID, else "".
func jobApp(app string) string {
	if pipelines.ValidName(app) && len(app) <= 40 {
		return app
	}
	return ""
}

func newUploadID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}
