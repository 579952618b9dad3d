package slugs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// The environment of a build job, read by RunJob. The job's spec carries
// all but the git token, which arrives as a file in the task's secrets
// directory and is removed once read.
const (
	JobEnvCloneURL  = "DROVER_BUILD_CLONE_URL"
	JobEnvCommit    = "DROVER_BUILD_COMMIT"
	JobEnvUploadURL = "DROVER_BUILD_UPLOAD_URL"
	JobEnvGrant     = "DROVER_BUILD_GRANT"
	JobEnvTokenFile = "DROVER_BUILD_TOKEN_FILE"
	JobEnvWorkDir   = "DROVER_BUILD_WORK_DIR"
	// JobEnvTimeout is the build's time limit, e.g. "20m".
	JobEnvTimeout = "DROVER_BUILD_TIMEOUT"
)

// JobResultPrefix starts the line a build job prints last on stdout: the
// JSON of the Uploaded answer drover gave it. The build's own code writes
// to the same stdout, so the line is only a claim; the receipt in it is
// what the caller trusts, and only for its own upload's ID.
const JobResultPrefix = "drover-build-result "

// RunJob is the body of a build job (drover build-slug): it builds the
// commit the environment names with Builder, streaming the slug to drover
// through an Uploader, writes the build's output to stdout and finishes
// with the JobResultPrefix line. A failure is returned, for the caller to
// print on stderr and exit non-zero.
func RunJob(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	in := BuildInput{CloneURL: getenv(JobEnvCloneURL), Commit: getenv(JobEnvCommit)}
	up := &Uploader{URL: getenv(JobEnvUploadURL), Grant: getenv(JobEnvGrant)}
	if up.URL == "" || up.Grant == "" {
		return fmt.Errorf("build job: %s and %s must be set", JobEnvUploadURL, JobEnvGrant)
	}
	if f := getenv(JobEnvTokenFile); f != "" {
		b, err := os.ReadFile(f)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("build job: read git token: %w", err)
		}
		// Gone before any of the repository's code runs.
		os.Remove(f)
		if in.Token = strings.TrimSpace(string(b)); in.Token != "" {
			fmt.Fprintln(stdout, "-----> Using the repository's fetch credentials")
		}
	}
	b := &Builder{Store: up, WorkDir: getenv(JobEnvWorkDir)}
	if v := getenv(JobEnvTimeout); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("build job: %s: %w", JobEnvTimeout, err)
		}
		b.Timeout = d
	}
	if _, err := b.Build(ctx, in, stdout); err != nil {
		return err
	}
	line, err := json.Marshal(up.Last)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "\n%s%s\n", JobResultPrefix, line)
	return err
}

// ParseJobResult finds the last JobResultPrefix line in a build job's
// stdout; an error if there is none.
func ParseJobResult(stdout string) (Uploaded, error) {
	var last string
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if rest, ok := bytes.CutPrefix(sc.Bytes(), []byte(JobResultPrefix)); ok {
			last = string(rest)
		}
	}
	if last == "" {
		return Uploaded{}, errors.New("build job printed no result line")
	}
	var up Uploaded
	if err := json.Unmarshal([]byte(last), &up); err != nil {
		return Uploaded{}, fmt.Errorf("build job's result line: %w", err)
	}
	return up, nil
}
