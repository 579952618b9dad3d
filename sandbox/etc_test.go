package sandbox_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/drover/drover/sandbox"
)

func stagedSandbox(tb testing.TB, state string) *sandbox.Sandbox {
	tb.Helper()
	s, err := sandbox.New(sandbox.Options{Mode: sandbox.ModeBwrap, StateDir: state})
	if errors.Is(err, sandbox.ErrNoBwrap) {
		tb.Skip("bubblewrap (bwrap) is not installed; the sandbox tests need it (apt-get install bubblewrap)")
	}
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func sandboxed(t *testing.T, s *sandbox.Sandbox, script string) string {
	t.Helper()
	cmd, err := s.Command(context.Background(), sandbox.Spec{Args: []string{"sh", "-c", script}, Dir: t.TempDir(), Env: []string{"PATH=/usr/bin:/bin"}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	return string(out)
}

// TestStagedEtc: with a state dir, a command's /etc is one read-only
// mount of the files it may see, with the allowed dirs bound on top (not
// a mount per file), the same files as the host's; a file changed on the
// host is in the next command's /etc, and unchanged contents share one
// stage.
func TestStagedEtc(t *testing.T) {
	root := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("hosts", "127.0.0.1 localhost\n")
	write("resolv.conf", "nameserver 10.0.0.1\n")
	write("ssl/certs/ca.pem", "a certificate\n")
	write("shadow", "root:secret\n") // not one of the files a sandbox sees
	if b, err := os.ReadFile("/etc/ld.so.cache"); err == nil {
		write("ld.so.cache", string(b))
	}
	defer sandbox.SetEtcRoot(root)()
	state := t.TempDir()
	s := stagedSandbox(t, state)

	script := `cat /etc/resolv.conf /etc/hosts /etc/ssl/certs/ca.pem; cat /etc/shadow 2>/dev/null; echo x > /etc/hosts 2>/dev/null && echo wrote; echo mounts $(grep -c ' /etc' /proc/self/mountinfo)`
	out := sandboxed(t, s, script)
	for _, want := range []string{"nameserver 10.0.0.1\n", "127.0.0.1 localhost\n", "a certificate\n", "mounts 2\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("the sandbox's /etc lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "secret") || strings.Contains(out, "wrote") {
		t.Errorf("the sandbox's /etc shows a file it must not, or is writable:\n%s", out)
	}

	write("resolv.conf", "nameserver 10.0.0.2\n")
	if out := sandboxed(t, s, "cat /etc/resolv.conf"); out != "nameserver 10.0.0.2\n" {
		t.Errorf("after the host's resolv.conf changed the sandbox reads %q", out)
	}
	write("resolv.conf", "nameserver 10.0.0.1\n") // back: the first stage again
	sandboxed(t, s, "true")
	stages, _ := filepath.Glob(filepath.Join(state, "etc", "etc-*"))
	if len(stages) != 2 {
		t.Errorf("stages %v; want one per distinct contents (2)", stages)
	}
}

// TestStagedEtcWithAFileBoundInIt: a command that binds a file of the
// host's /etc read-only (a build's /etc/pip.conf) reads it there, which
// a read-only staged /etc could not take as a mount point.
func TestStagedEtcWithAFileBoundInIt(t *testing.T) {
	// A file of /etc a sandbox does not see by default.
	var extra string
	entries, _ := os.ReadDir("/etc")
	for _, e := range entries {
		// Readable by anyone, so by the sandbox's nobody too.
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o004 != 0 && !slices.Contains(sandbox.EtcFiles(), e.Name()) {
			extra = "/etc/" + e.Name()
			break
		}
	}
	if extra == "" {
		t.Skip("no readable file in /etc beyond those a sandbox sees")
	}
	s := stagedSandbox(t, t.TempDir())
	cmd, err := s.Command(context.Background(), sandbox.Spec{
		Args: []string{"sh", "-c", "head -c 0 " + extra + " && echo ok"}, Dir: t.TempDir(), Env: []string{"PATH=/usr/bin:/bin"},
		ReadOnly: []string{extra},
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "ok\n" {
		t.Fatalf("a command binding %s: %v\n%s", extra, err, out)
	}
}

// TestHostEtcStaged: with the host's own /etc, a staged sandbox sees the
// same files as one binding each, in far fewer mounts.
func TestHostEtcStaged(t *testing.T) {
	bound, staged := bwrapSandbox(t, t.TempDir()), stagedSandbox(t, t.TempDir())
	script := `for f in /etc/passwd /etc/hosts /etc/resolv.conf /etc/ld.so.cache; do [ -r $f ] && md5sum < $f; done; ls /etc/ssl/certs 2>/dev/null | wc -l; echo mounts $(grep -c ' /etc' /proc/self/mountinfo)`
	a, b := sandboxed(t, bound, script), sandboxed(t, staged, script)
	files := func(out string) string { return out[:strings.LastIndex(out, "mounts ")] }
	if files(a) != files(b) {
		t.Errorf("a staged /etc differs from the host's files bound one by one:\nbound:\n%s\nstaged:\n%s", a, b)
	}
	mounts := func(out string) int {
		n, err := strconv.Atoi(strings.TrimSpace(out[strings.LastIndex(out, "mounts ")+len("mounts "):]))
		if err != nil {
			t.Fatalf("count mounts: %v\n%s", err, out)
		}
		return n
	}
	t.Logf("mounts under /etc: %d bound one by one, %d staged", mounts(a), mounts(b))
	if mounts(b) > 6 {
		t.Errorf("a staged /etc takes %d mounts, want at most 6 (itself and its dirs)", mounts(b))
	}
}

// BenchmarkStart starts five sandboxed commands at once, as five regions
// starting their apps do, with /etc bound file by file and staged.
func BenchmarkStart(b *testing.B) {
	for _, tc := range []struct {
		name  string
		state bool
	}{{"etc-bound-per-file", false}, {"etc-staged", true}} {
		b.Run(tc.name+"/5-at-once", func(b *testing.B) {
			state := ""
			if tc.state {
				state = b.TempDir()
			}
			s := stagedSandbox(b, state)
			dir := b.TempDir()
			for b.Loop() {
				var wg sync.WaitGroup
				for range 5 {
					wg.Go(func() {
						cmd, err := s.Command(context.Background(), sandbox.Spec{Args: []string{"true"}, Dir: dir, Env: []string{"PATH=/usr/bin:/bin"}})
						if err != nil {
							b.Error(err)
							return
						}
						if err := cmd.Run(); err != nil {
							b.Error(err)
						}
					})
				}
				wg.Wait()
			}
		})
	}
}
