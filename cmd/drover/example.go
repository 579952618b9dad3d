package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/drover/drover/pipelines"
)

// DeployExample makes a git repository from examples/hello, sends drover a
// signed push webhook for it, as GitHub would, and follows the deploy to
// the end. It is what the README's first command shows.
func (d *Dev) DeployExample(ctx context.Context, out io.Writer) error {
	src := filepath.Join("examples", "hello")
	if _, err := os.Stat(filepath.Join(src, "Procfile")); err != nil {
		return &hintError{err: fmt.Errorf("example app not found at %s: %w", src, err), hint: "run drover dev --example from the root of the drover checkout"}
	}
	pipeline, stage, ok := d.Config.StageForPush(exampleRepoName, "main")
	if !ok {
		return &hintError{err: errors.New("no stage auto-deploys " + exampleRepoName + " branch main"), hint: "use examples/drover.yaml"}
	}
	repo := exampleRepo(d.DataDir)
	commit, err := commitTree(ctx, src, repo)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "-----> Pushing %s (commit %s) to %s as a signed GitHub push webhook\n", repo, commit[:12], pipeline.Repo)
	payload, _ := json.Marshal(map[string]any{
		"ref": "refs/heads/main", "before": strings.Repeat("0", 40), "after": commit,
		"repository":  map[string]any{"full_name": pipeline.Repo, "clone_url": "https://github.com/" + pipeline.Repo + ".git"},
		"head_commit": map[string]any{"id": commit, "message": "example app"},
		"pusher":      map[string]any{"name": "drover-example"},
	})
	code, body, err := SendWebhook(ctx, "http://"+d.HTTPAddr+"/webhooks/github", d.Secret, "push", "example-"+commit, payload)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "       webhook answered %d %s\n", code, strings.TrimSpace(string(body)))
	return d.follow(ctx, out, stage.App, commit)
}

// exampleRepoName is the repository examples/drover.yaml deploys; the
// example makes it as a git repository under the data dir (exampleRepo),
// which the dev node's pipeline fetches from instead of GitHub.
const exampleRepoName = "octo-org/hello"

func exampleRepo(dataDir string) string { return filepath.Join(dataDir, "example", "hello") }

// follow prints a deploy's progress, one line per change of state, until
// its release is final.
func (d *Dev) follow(ctx context.Context, out io.Writer, app, commit string) error {
	last := ""
	for {
		rs, err := d.store.Releases(ctx, app, 20)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if r.Commit != commit || r.Status == pipelines.ReleaseSuperseded {
				continue
			}
			line := fmt.Sprintf("%s %s", r.Name(), r.Status)
			for _, st := range r.Regions {
				line += fmt.Sprintf("  [%s %s]", st.Region, st.Status)
			}
			if line != last {
				fmt.Fprintf(out, "       %s\n", line)
				last = line
			}
			switch r.Status {
			case pipelines.ReleaseSucceeded:
				for _, st := range r.Regions {
					fmt.Fprintf(out, "-----> %s %s is running in %s at %s\n", app, r.Name(), st.Region, st.URL)
				}
				return nil
			case pipelines.ReleaseFailed:
				return &hintError{err: fmt.Errorf("%s %s failed: %s", app, r.Name(), r.Reason), hint: "`drover releases " + app + "` shows the ledger; the build output is at /api/v1/apps/" + app + "/builds/" + commit}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// SendWebhook posts payload signed with secret the way GitHub signs it
// (X-Hub-Signature-256: sha256=HMAC of the body).
func SendWebhook(ctx context.Context, url, secret, event, delivery string, payload []byte) (int, []byte, error) {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(payload)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", delivery)
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("send webhook to %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body, nil
}

// commitTree copies src into a git repository at repo and commits it if it
// changed, returning HEAD.
func commitTree(ctx context.Context, src, repo string) (string, error) {
	if err := os.MkdirAll(repo, 0o755); err != nil {
		return "", err
	}
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", repo, "-c", "user.name=drover", "-c", "user.email=drover@localhost", "-c", "commit.gpgsign=false"}, args...)...)
		b, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("git %s in %s: %w: %s", strings.Join(args, " "), repo, err, b)
		}
		return strings.TrimSpace(string(b)), nil
	}
	if _, err := os.Stat(filepath.Join(repo, ".git")); err != nil {
		if _, err := git("init", "-q", "-b", "main"); err != nil {
			return "", err
		}
	}
	err := filepath.WalkDir(src, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		dst := filepath.Join(repo, rel)
		if e.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		info, _ := e.Info()
		return os.WriteFile(dst, b, info.Mode().Perm())
	})
	if err != nil {
		return "", fmt.Errorf("copy example app: %w", err)
	}
	if _, err := git("add", "-A"); err != nil {
		return "", err
	}
	if st, err := git("status", "--porcelain"); err != nil {
		return "", err
	} else if st != "" {
		if _, err := git("commit", "-q", "-m", "example app"); err != nil {
			return "", err
		}
	}
	return git("rev-parse", "HEAD")
}
