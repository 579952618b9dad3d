package sandbox_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drover/drover/sandbox"
)

// bwrapSandbox returns a bubblewrap Sandbox hiding data, skipping the test
// where bubblewrap is not installed.
func bwrapSandbox(t *testing.T, data string) *sandbox.Sandbox {
	t.Helper()
	s, err := sandbox.New(sandbox.Options{Mode: sandbox.ModeBwrap, Hide: []string{data}})
	if errors.Is(err, sandbox.ErrNoBwrap) {
		t.Skip("bubblewrap (bwrap) is not installed; the sandbox tests need it (apt-get install bubblewrap)")
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]sandbox.Mode{"": sandbox.ModeAuto, "auto": sandbox.ModeAuto, "BWRAP": sandbox.ModeBwrap, "none": sandbox.ModeNone} {
		if got, err := sandbox.ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := sandbox.ParseMode("docker"); err == nil || !strings.Contains(err.Error(), "auto, bwrap or none") {
		t.Errorf("ParseMode(docker) = %v, want an error listing the modes", err)
	}
}

// TestBwrapSeesOnlyItsOwnDirs: a command in the sandbox finds drover's data
// dir (with its key) absent, writes its working dir and caches, runs as
// nobody when drover is root, and has no network unless asked.
func TestBwrapSeesOnlyItsOwnDirs(t *testing.T) {
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "config-key"), []byte("the-key"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := bwrapSandbox(t, data)
	app := filepath.Join(data, "builds", "b1", "app")
	cache := filepath.Join(data, "cache", "go-build")
	script := `id -u; cat ` + data + `/config-key; ls ` + data + `; echo "$HOME $GOCACHE $PWD"; echo w > out.txt; echo c > "$GOCACHE/c.txt"; ` +
		`(exec 3<>/dev/tcp/127.0.0.1/1) 2>/dev/null; cat /etc/shadow 2>&1 | head -c 0; ls /root 2>&1 | head -1`
	run := func(t *testing.T, network bool) string {
		cmd, err := s.Command(context.Background(), sandbox.Spec{
			Args: []string{"sh", "-c", script}, Dir: app, Caches: []sandbox.Cache{{Env: "GOCACHE", Dir: cache}},
			Env: []string{"PATH=/usr/bin:/bin"}, Network: network,
		})
		if err != nil {
			t.Fatal(err)
		}
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	out := run(t, false)
	if strings.Contains(out, "the-key") || strings.Contains(out, "\nconfig-key\n") || strings.Contains(out, "\nbuilds\n") {
		t.Fatalf("the sandbox read the data dir:\n%s", out)
	}
	if !strings.Contains(out, "No such file or directory") {
		t.Fatalf("want the data dir missing in the sandbox:\n%s", out)
	}
	if !strings.Contains(out, sandbox.AppDir+" /cache/gocache "+sandbox.AppDir) {
		t.Fatalf("HOME, GOCACHE and the working dir are not the sandbox's own:\n%s", out)
	}
	uid := strings.Fields(out)[0]
	if os.Geteuid() == 0 && uid != strconv.Itoa(sandbox.NobodyID) {
		t.Fatalf("drover runs as root but the sandbox ran as uid %s:\n%s", uid, out)
	}
	for _, f := range []string{filepath.Join(app, "out.txt"), filepath.Join(cache, "c.txt")} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("the sandbox could not write its own dirs: %v\n%s", err, out)
		}
	}
	// Without the network there is not even a loopback to reach drover's
	// API or Temporal on.
	if ifaces, err := os.ReadFile("/proc/net/dev"); err == nil && strings.Count(string(ifaces), ":") > 1 {
		cmd, _ := s.Command(context.Background(), sandbox.Spec{Args: []string{"cat", "/proc/net/dev"}, Dir: app, Env: []string{"PATH=/usr/bin:/bin"}})
		netdev, _ := cmd.Output()
		if strings.Count(string(netdev), ":") != 1 {
			t.Errorf("a sandbox without network sees interfaces:\n%s", netdev)
		}
	}
}

// TestKillingTheGroupKillsTheSandbox: cancelling kills everything the
// command started inside the sandbox, background children included.
func TestKillingTheGroupKillsTheSandbox(t *testing.T) {
	dir := t.TempDir()
	s := bwrapSandbox(t, filepath.Join(dir, "data"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	cmd, err := s.Command(ctx, sandbox.Spec{Args: []string{"sh", "-c", "sleep 301 & sleep 302"}, Dir: filepath.Join(dir, "app"), Env: []string{"PATH=/usr/bin:/bin"}})
	if err != nil {
		t.Fatal(err)
	}
	cmd.WaitDelay = time.Second
	start := time.Now()
	if err := cmd.Run(); err == nil {
		t.Fatal("a cancelled command succeeded")
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("cancelling took %v", took)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, _ := exec.Command("pgrep", "-f", "^sleep 30[12]$").Output()
		if len(strings.TrimSpace(string(out))) == 0 {
			break
		}
		if time.Now().After(deadline) {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			t.Fatalf("sandboxed children outlived the cancel: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestModeNoneRunsDirectly(t *testing.T) {
	s, err := sandbox.New(sandbox.Options{Mode: sandbox.ModeNone})
	if err != nil || s.Enabled() {
		t.Fatalf("New(none) = %v, %v", s, err)
	}
	dir := t.TempDir()
	cmd, err := s.Command(context.Background(), sandbox.Spec{Args: []string{"sh", "-c", "pwd; echo $HOME"}, Dir: dir, Home: filepath.Join(dir, "h"), Env: []string{"PATH=/usr/bin:/bin"}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.Output()
	if err != nil || string(out) != dir+"\n"+filepath.Join(dir, "h")+"\n" {
		t.Fatalf("output %q, %v", out, err)
	}
}

// TestMissingBwrap: asking for bubblewrap where there is none is an error
// saying how to install it; auto falls back to running commands directly.
func TestMissingBwrap(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if _, err := sandbox.New(sandbox.Options{Mode: sandbox.ModeBwrap}); !errors.Is(err, sandbox.ErrNoBwrap) || !strings.Contains(err.Error(), "apt-get install bubblewrap") {
		t.Fatalf("New(bwrap) without bwrap = %v, want ErrNoBwrap with a hint", err)
	}
	s, err := sandbox.New(sandbox.Options{Mode: sandbox.ModeAuto})
	if err != nil || s.Enabled() || !strings.Contains(s.String(), "install bubblewrap") {
		t.Fatalf("New(auto) without bwrap = %v (%s), %v; want unsandboxed, saying how to fix it", s.Enabled(), s, err)
	}
}
