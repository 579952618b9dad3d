// Package gittest makes real git repositories for tests to build from.
package gittest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Repo makes a repository in a temporary dir with one commit of files
// (paths may have directories; every file is executable, as scripts in
// test apps are) and returns its file:// URL and the commit's SHA.
func Repo(tb testing.TB, files map[string]string) (url, commit string) {
	tb.Helper()
	dir := tb.TempDir()
	git := func(args ...string) string {
		tb.Helper()
		base := []string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"}
		out, err := exec.Command("git", append(base, args...)...).CombinedOutput()
		if err != nil {
			tb.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q", "-b", "main")
	for name, body := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	git("add", "-A")
	git("commit", "-q", "-m", "app")
	return "file://" + dir, git("rev-parse", "HEAD")
}
