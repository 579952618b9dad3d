package local_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drover/drover/applog"
	"github.com/drover/drover/applog/applogtest"
	"github.com/drover/drover/internal/syncbuf"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
	"github.com/drover/drover/regions/local"
	"github.com/drover/drover/sandbox"
)

// slugPath is a slug holding ./server, built once from testdata/server.
var slugPath string

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

// serverBin is the test server's binary, for slugs of other shapes.
var serverBin string

func runTests(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "local-region-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "server")
	serverBin = bin
	build := exec.Command("go", "build", "-o", bin, "./testdata/server")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build test server: %v\n%s", err, out)
		return 1
	}
	slugPath = filepath.Join(tmp, "slug.tgz")
	if err := writeSlug(slugPath, bin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// writeSlug writes a tar.gz holding bin as ./server and a README.
func writeSlug(path, bin string) error {
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	return writeSlugFiles(path, []slugFile{{"server", 0o755, data}, {"README", 0o644, []byte("test slug\n")}})
}

// slugFile is one regular file of a test slug.
type slugFile struct {
	name string
	mode int64
	data []byte
}

// writeSlugFiles writes a tar.gz of files, in order.
func writeSlugFiles(path string, files []slugFile) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	for _, e := range files {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: e.mode, Size: int64(len(e.data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(e.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// unpack is the Unpack the tests give the region: regular files of a tar.gz.
func unpack(_ context.Context, slug, dir string) error {
	f, err := os.Open(slug)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if h.Typeflag != tar.TypeReg || !filepath.IsLocal(h.Name) {
			return fmt.Errorf("unexpected entry %q", h.Name)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, h.Name)), 0o755); err != nil {
			return err
		}
		// As slugs.Unpack does: no fork may hold an executable open for
		// writing, or exec'ing it fails with "text file busy".
		syscall.ForkLock.RLock()
		out, err := os.OpenFile(filepath.Join(dir, h.Name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, os.FileMode(h.Mode))
		if err == nil {
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
		}
		syscall.ForkLock.RUnlock()
		if err != nil {
			return err
		}
	}
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// newRegion opens a region on dir and closes it, stopping its apps, when
// the test ends.
func newRegion(t *testing.T, dir string, health time.Duration) *local.Region {
	t.Helper()
	r, err := local.New(local.Options{Name: "local-test", Dir: dir, HealthTimeout: health, Logger: testLogger(), Unpack: unpack})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(true); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

// webApp is release n of app running one ./server answering response.
func webApp(app string, n int, response string) regions.Deployment {
	return regions.Deployment{
		App:       app,
		Release:   n,
		Slug:      regions.Slug{Digest: fmt.Sprintf("sha256:%s-%d", app, n), Path: slugPath},
		Procfile:  pipelines.Procfile{{Type: "web", Command: "./server"}},
		Formation: pipelines.Formation{"web": 1},
		Env:       map[string]string{"RESPONSE": response},
	}
}

func mustDeploy(t *testing.T, r *local.Region, d regions.Deployment) regions.Result {
	t.Helper()
	res, err := r.Deploy(context.Background(), d)
	if err != nil {
		t.Fatalf("Deploy %s v%d: %v", d.App, d.Release, err)
	}
	return res
}

var client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func get(url string) (string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b), err
}

// mustAnswer GETs url and checks the body starts with want; it returns the
// pid of the process that answered.
func mustAnswer(t *testing.T, url, want string) int {
	t.Helper()
	body, err := get(url)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(body, want+" ") {
		t.Fatalf("GET %s = %q, want %q", url, body, want+" …")
	}
	return pidIn(t, body)
}

var pidRE = regexp.MustCompile(`pid=(\d+)`)

func pidIn(t *testing.T, body string) int {
	t.Helper()
	m := pidRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no pid in %q", body)
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

// gone reports whether pid has exited; a zombie has, and where pid 1 does
// not reap orphans (some containers) it stays one.
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return syscall.Kill(pid, 0) != nil
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] == "Z"
}

func mustBeGone(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if gone(pid) {
			return
		}
	}
	t.Errorf("process %d still runs", pid)
}

func mustBeAlive(t *testing.T, pid int) {
	t.Helper()
	if gone(pid) {
		t.Errorf("process %d is gone", pid)
	}
}

// killAtEnd kills pid when the test ends, for processes a test leaves to
// outlive their region.
func killAtEnd(t *testing.T, pid int) {
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
}

func TestNewRejectsBadOptions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name string
		opts local.Options
	}{
		{"no name", local.Options{Dir: dir, Unpack: unpack}},
		{"no dir", local.Options{Name: "a", Unpack: unpack}},
		{"no unpack", local.Options{Name: "a", Dir: dir}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := local.New(tt.opts); !errors.Is(err, pipelines.ErrInvalid) {
				t.Errorf("New = %v, want ErrInvalid", err)
			}
		})
	}
	t.Run("dir in use", func(t *testing.T) {
		newRegion(t, dir, 0)
		if r, err := local.New(local.Options{Name: "b", Dir: dir, Unpack: unpack}); err == nil {
			r.Close(true)
			t.Fatal("second New on one dir succeeded")
		}
	})
}

func TestDeploySwitchesReleasesBehindOneURL(t *testing.T) {
	t.Parallel()
	r := newRegion(t, t.TempDir(), 10*time.Second)
	ctx := context.Background()

	var steps []string
	d1 := webApp("shop", 1, "v1")
	d1.Progress = func(msg string) { steps = append(steps, msg) }
	res1 := mustDeploy(t, r, d1)
	if !strings.HasPrefix(res1.URL, "http://127.0.0.1:") {
		t.Fatalf("URL = %q", res1.URL)
	}
	pid1 := mustAnswer(t, res1.URL, "v1")
	for _, want := range []string{"unpacking slug", "starting web.1 on port ", "web.1 answered HTTP 200"} {
		if !containsPrefix(steps, want) {
			t.Errorf("progress %q lacks %q", steps, want)
		}
	}

	res2 := mustDeploy(t, r, webApp("shop", 2, "v2"))
	if res2.URL != res1.URL {
		t.Errorf("URL changed from %s to %s", res1.URL, res2.URL)
	}
	mustAnswer(t, res2.URL, "v2")
	mustBeGone(t, pid1)

	st, err := r.Status(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if want := (regions.Status{Release: 2, Slug: "sha256:shop-2", URL: res1.URL, Running: true}); st != want {
		t.Errorf("Status = %+v, want %+v", st, want)
	}

	// Rollback: an older release whose dir still exists.
	res3 := mustDeploy(t, r, webApp("shop", 1, "v1 again"))
	if res3.URL != res1.URL {
		t.Errorf("URL changed from %s to %s", res1.URL, res3.URL)
	}
	mustAnswer(t, res3.URL, "v1 again")
}

// TestDeployDoesNotWaitForTheOldReleaseToStop: a release whose process
// takes its time over SIGTERM does not hold up the next release's
// deploy, which returns once the new one serves; the old one is gone
// soon after, and the app's next call waits for that.
func TestDeployDoesNotWaitForTheOldReleaseToStop(t *testing.T) {
	t.Parallel()
	r := newRegion(t, t.TempDir(), 10*time.Second)
	slow := webApp("slowstop", 1, "v1")
	pidFile := filepath.Join(t.TempDir(), "pid")
	slow.Procfile = pipelines.Procfile{{Type: "web", Command: `trap 'sleep 1; exit 0' TERM; echo $$ > "$PID_FILE"; ./server & wait`}}
	slow.Env["PID_FILE"] = pidFile
	res := mustDeploy(t, r, slow)
	mustAnswer(t, res.URL, "v1")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	shell, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	res = mustDeploy(t, r, webApp("slowstop", 2, "v2"))
	if took := time.Since(start); took > 700*time.Millisecond {
		t.Errorf("the deploy of v2 took %v: it waited for v1's second-long stop", took)
	}
	mustAnswer(t, res.URL, "v2")
	if _, err := r.Status(context.Background(), "slowstop"); err != nil {
		t.Fatal(err)
	}
	if !gone(shell) {
		t.Errorf("v1's shell %d still runs once Status answered", shell)
	}
}

func containsPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

func TestDeployIsIdempotent(t *testing.T) {
	t.Parallel()
	r := newRegion(t, t.TempDir(), 10*time.Second)
	res1 := mustDeploy(t, r, webApp("shop", 1, "v1"))
	pid1 := mustAnswer(t, res1.URL, "v1")

	var steps []string
	d := webApp("shop", 1, "v1")
	d.Progress = func(msg string) { steps = append(steps, msg) }
	res2 := mustDeploy(t, r, d)
	if res2 != res1 {
		t.Errorf("second Deploy = %+v, want %+v", res2, res1)
	}
	if pid2 := mustAnswer(t, res2.URL, "v1"); pid2 != pid1 {
		t.Errorf("second Deploy restarted web: pid %d, was %d", pid2, pid1)
	}
	if containsPrefix(steps, "starting") {
		t.Errorf("second Deploy started processes: %q", steps)
	}
}

func TestDeployRoundRobinsOverWebInstances(t *testing.T) {
	t.Parallel()
	r := newRegion(t, t.TempDir(), 10*time.Second)
	d := webApp("shop", 1, "v1")
	d.Formation = pipelines.Formation{"web": 2}
	res := mustDeploy(t, r, d)
	pids := map[int]bool{}
	for range 4 {
		pids[mustAnswer(t, res.URL, "v1")] = true
	}
	if len(pids) != 2 {
		t.Errorf("4 requests reached %d processes, want 2", len(pids))
	}
}

func TestDeployWithoutWebHasNoURL(t *testing.T) {
	t.Parallel()
	r := newRegion(t, t.TempDir(), 10*time.Second)
	d := webApp("jobs", 1, "")
	d.Procfile = pipelines.Procfile{{Type: "worker", Command: "sleep 60"}}
	d.Formation = pipelines.Formation{"worker": 1}
	res := mustDeploy(t, r, d)
	if res.URL != "" {
		t.Errorf("URL = %q, want none", res.URL)
	}
	st, err := r.Status(context.Background(), "jobs")
	if err != nil {
		t.Fatal(err)
	}
	if want := (regions.Status{Release: 1, Slug: "sha256:jobs-1", Running: true}); st != want {
		t.Errorf("Status = %+v, want %+v", st, want)
	}
}

func TestDeployFailureKeepsPreviousRelease(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		procfile   pipelines.Procfile
		formation  pipelines.Formation
		wantReason []string
	}{
		{
			name:       "web exits",
			procfile:   pipelines.Procfile{{Type: "web", Command: "echo starting; echo 'cannot connect to database' >&2; exit 1"}},
			wantReason: []string{"web.1 exited with code 1: ", "starting\ncannot connect to database"},
		},
		{
			name:       "web never listens",
			procfile:   pipelines.Procfile{{Type: "web", Command: "echo $$ > \"$PIDFILE\"; echo warming up; exec sleep 60"}},
			wantReason: []string{"web.1 did not answer HTTP on port ", "within 2s", "warming up"},
		},
		{
			name: "worker exits",
			// web starts late, so the worker's exit comes before web is healthy.
			procfile:   pipelines.Procfile{{Type: "web", Command: "sleep 0.5; exec ./server"}, {Type: "worker", Command: "exit 7"}},
			formation:  pipelines.Formation{"web": 1, "worker": 1},
			wantReason: []string{"worker.1 exited with code 7"},
		},
		{
			name:       "unknown process type",
			procfile:   pipelines.Procfile{{Type: "web", Command: "./server"}},
			formation:  pipelines.Formation{"web": 1, "clock": 1},
			wantReason: []string{`process type "clock"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRegion(t, t.TempDir(), 2*time.Second)
			res1 := mustDeploy(t, r, webApp("shop", 1, "v1"))
			pid1 := mustAnswer(t, res1.URL, "v1")

			pidFile := filepath.Join(t.TempDir(), "pid")
			d := webApp("shop", 2, "v2")
			d.Procfile = tt.procfile
			if tt.formation != nil {
				d.Formation = tt.formation
			}
			d.Env["PIDFILE"] = pidFile
			_, err := r.Deploy(context.Background(), d)
			var de *regions.DeployError
			if !errors.As(err, &de) {
				t.Fatalf("Deploy = %v, want a DeployError", err)
			}
			if de.Region != "local-test" || de.App != "shop" || de.Release != 2 {
				t.Errorf("DeployError = %+v", de)
			}
			for _, want := range tt.wantReason {
				if !strings.Contains(de.Reason, want) {
					t.Errorf("Reason = %q, want it to contain %q", de.Reason, want)
				}
			}
			if b, err := os.ReadFile(pidFile); err == nil {
				pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
				mustBeGone(t, pid)
			}

			if pid := mustAnswer(t, res1.URL, "v1"); pid != pid1 {
				t.Errorf("v1 restarted: pid %d, was %d", pid, pid1)
			}
			st, err := r.Status(context.Background(), "shop")
			if err != nil {
				t.Fatal(err)
			}
			if st.Release != 1 || !st.Running {
				t.Errorf("Status = %+v, want v1 running", st)
			}
		})
	}
}

func TestRunTask(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := newRegion(t, dir, 10*time.Second)
	tests := []struct {
		name     string
		command  string
		wantCode int
		wantOut  string
	}{
		{"succeeds", `echo "migrated $DATABASE_URL"; ls`, 0, "migrated postgres://db\nREADME\nserver\n"},
		{"fails", "echo applying; echo 'relation exists' >&2; exit 3", 3, "applying\nrelation exists\n"},
		// The shell that records the exit code says what killed it.
		{"killed by a signal", "kill -KILL $$", 128 + 9, "Killed\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := r.RunTask(context.Background(), regions.Task{
				App: "shop", Release: 1, Name: "release", ID: strings.ReplaceAll(tt.name, " ", "-"), Command: tt.command,
				Slug: regions.Slug{Digest: "sha256:shop-1", Path: slugPath},
				Env:  map[string]string{"DATABASE_URL": "postgres://db"},
			})
			if err != nil {
				t.Fatalf("RunTask: %v", err)
			}
			if res.ExitCode != tt.wantCode || res.Output != tt.wantOut {
				t.Errorf("RunTask = %+v, want exit %d output %q", res, tt.wantCode, tt.wantOut)
			}
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		res, err := r.RunTask(ctx, regions.Task{
			App: "shop", Release: 1, ID: "cancelled", Command: "echo waiting; sleep 60 & wait",
			Slug: regions.Slug{Digest: "sha256:shop-1", Path: slugPath},
		})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("RunTask = %+v, %v; want DeadlineExceeded", res, err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("cancelled task took %s", took)
		}
		if res.Output != "waiting\n" {
			t.Errorf("Output = %q", res.Output)
		}
	})
	t.Run("output streams as it is written", func(t *testing.T) {
		var live syncbuf.Buffer
		done := make(chan regions.TaskResult, 1)
		go func() {
			res, _ := r.RunTask(context.Background(), regions.Task{
				App: "shop", Release: 1, ID: "live", Command: "echo step 1; sleep 1.5; echo step 2",
				Slug: regions.Slug{Digest: "sha256:shop-1", Path: slugPath}, Output: &live,
			})
			done <- res
		}()
		for deadline := time.Now().Add(time.Second); live.String() != "step 1\n"; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("live output a second in = %q, want the first line while the task runs", live.String())
			}
		}
		res := <-done
		if live.String() != "step 1\nstep 2\n" || res.Output != "step 1\nstep 2\n" {
			t.Errorf("live %q, result %q", live.String(), res.Output)
		}
	})
	t.Run("output is capped", func(t *testing.T) {
		res, err := r.RunTask(context.Background(), regions.Task{
			App: "shop", Release: 1, ID: "capped", Command: "head -c 3000000 /dev/zero | tr '\\0' x; echo END",
			Slug: regions.Slug{Digest: "sha256:shop-1", Path: slugPath},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Output) > 1<<20+100 || !strings.HasSuffix(res.Output, "xxxEND\n") || !strings.HasPrefix(res.Output, "[drover: output truncated") {
			t.Errorf("Output: %d bytes ending %q", len(res.Output), res.Output[max(0, len(res.Output)-20):])
		}
	})
}

// TestTaskRunsOnce: a task (the release phase) runs at most once per
// release, however often it is asked for: a second call takes the first
// one's result, and one whose process died without finishing (drover
// stopped with it) is reported interrupted, not started again. Finished
// tasks' dirs outlive a restart for a day, so a retry still finds them.
func TestTaskRunsOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := newRegion(t, dir, 10*time.Second)
	counter := filepath.Join(t.TempDir(), "runs")
	task := regions.Task{App: "shop", Release: 2, Name: "release", Command: `echo ran >> "$COUNTER"; echo migrated; exit 4`,
		Slug: regions.Slug{Digest: "sha256:shop-1", Path: slugPath}, Env: map[string]string{"COUNTER": counter}}
	for i := range 3 {
		res, err := r.RunTask(context.Background(), task)
		if err != nil || res.ExitCode != 4 || res.Output != "migrated\n" {
			t.Fatalf("call %d: %+v, %v", i+1, res, err)
		}
	}
	if b, _ := os.ReadFile(counter); string(b) != "ran\n" {
		t.Fatalf("the task ran %d times", strings.Count(string(b), "ran"))
	}
	// A task whose recorded process is gone and wrote no exit code.
	state := filepath.Join(dir, "tasks", "shop-v3-release")
	os.MkdirAll(filepath.Join(state, "app"), 0o755)
	os.WriteFile(filepath.Join(state, "output"), []byte("applying 0042\n"), 0o644)
	os.WriteFile(filepath.Join(state, "process"), []byte("999999999 1\n"), 0o644)
	task.Release = 3
	res, err := r.RunTask(context.Background(), task)
	if err != nil || res.ExitCode != 137 || !strings.HasPrefix(res.Output, "applying 0042\n") || !strings.Contains(res.Output, "interrupted before it finished") {
		t.Fatalf("interrupted task: %+v, %v", res, err)
	}
	if b, _ := os.ReadFile(counter); string(b) != "ran\n" {
		t.Fatal("an interrupted task was run again")
	}
	// A new region on the same dir (drover restarted) keeps them.
	r.Close(false)
	r2 := newRegion(t, dir, 10*time.Second)
	task.Release = 2
	if res, err := r2.RunTask(context.Background(), task); err != nil || res.ExitCode != 4 {
		t.Fatalf("after a restart: %+v, %v", res, err)
	}
	if b, _ := os.ReadFile(counter); string(b) != "ran\n" {
		t.Fatal("the task ran again after a restart")
	}
}

func TestStop(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := newRegion(t, dir, 10*time.Second)
	ctx := context.Background()
	res := mustDeploy(t, r, webApp("shop", 1, "v1"))
	pid := mustAnswer(t, res.URL, "v1")

	if err := r.Stop(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	if body, err := get(res.URL); !isRefused(err) {
		t.Errorf("after Stop, GET = %q, %v; want connection refused", body, err)
	}
	mustBeGone(t, pid)
	if _, err := os.Stat(filepath.Join(dir, "apps", "shop")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state dir left: %v", err)
	}
	if st, err := r.Status(ctx, "shop"); err != nil || st != (regions.Status{}) {
		t.Errorf("Status = %+v, %v; want zero", st, err)
	}
	for _, app := range []string{"shop", "never-deployed"} {
		if err := r.Stop(ctx, app); err != nil {
			t.Errorf("Stop(%s) = %v", app, err)
		}
	}
}

// isRefused reports whether nothing served the request: the port refused
// it, or a connection the kernel had queued before the listener closed was
// reset unanswered.
func isRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

func TestConcurrentDeploysOfDifferentApps(t *testing.T) {
	t.Parallel()
	r := newRegion(t, t.TempDir(), 10*time.Second)
	apps := []string{"a", "b", "c"}
	urls := make([]string, len(apps))
	var wg sync.WaitGroup
	for i, app := range apps {
		wg.Go(func() {
			res, err := r.Deploy(context.Background(), webApp(app, 1, app))
			if err != nil {
				t.Errorf("Deploy %s: %v", app, err)
			}
			urls[i] = res.URL
		})
	}
	wg.Wait()
	for i, app := range apps {
		if urls[i] != "" {
			mustAnswer(t, urls[i], app)
		}
	}
}

// crashedRegion deploys ds in a region on dir and abandons it as a crash
// would: its processes keep running. It returns the pid of each app's web.
func crashedRegion(t *testing.T, dir string, ds ...regions.Deployment) (urls []string, pids []int) {
	t.Helper()
	a := newRegion(t, dir, 10*time.Second)
	for _, d := range ds {
		res := mustDeploy(t, a, d)
		pid := mustAnswer(t, res.URL, d.Env["RESPONSE"])
		killAtEnd(t, pid)
		urls, pids = append(urls, res.URL), append(pids, pid)
	}
	if err := a.Close(false); err != nil {
		t.Fatal(err)
	}
	for i, u := range urls {
		if _, err := get(u); !isRefused(err) {
			t.Fatalf("proxy still answers after Close: %v", err)
		}
		mustBeAlive(t, pids[i])
	}
	return urls, pids
}

func TestReconcile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("adopts live processes", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		urls, pids := crashedRegion(t, dir, webApp("shop", 1, "v1"))
		b := newRegion(t, dir, 10*time.Second)
		var steps []string
		d := webApp("shop", 1, "v1")
		d.Progress = func(msg string) { steps = append(steps, msg) }
		if err := b.Reconcile(ctx, []regions.Deployment{d}); err != nil {
			t.Fatal(err)
		}
		if pid := mustAnswer(t, urls[0], "v1"); pid != pids[0] {
			t.Errorf("web restarted: pid %d, was %d", pid, pids[0])
		}
		if !containsPrefix(steps, "adopted v1") {
			t.Errorf("progress = %q", steps)
		}
		st, err := b.Status(ctx, "shop")
		if err != nil || st.URL != urls[0] || !st.Running {
			t.Errorf("Status = %+v, %v", st, err)
		}
		// The adopted release is replaced like any other.
		res := mustDeploy(t, b, webApp("shop", 2, "v2"))
		mustAnswer(t, res.URL, "v2")
		mustBeGone(t, pids[0])
	})

	t.Run("restarts dead processes", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		urls, pids := crashedRegion(t, dir, webApp("shop", 1, "v1"))
		syscall.Kill(pids[0], syscall.SIGKILL)
		mustBeGone(t, pids[0])
		b := newRegion(t, dir, 10*time.Second)
		if err := b.Reconcile(ctx, []regions.Deployment{webApp("shop", 1, "v1")}); err != nil {
			t.Fatal(err)
		}
		if pid := mustAnswer(t, urls[0], "v1"); pid == pids[0] {
			t.Errorf("answered by the killed pid %d", pid)
		}
	})

	t.Run("stops what is not wanted", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		urls, pids := crashedRegion(t, dir, webApp("shop", 1, "v1"), webApp("blog", 1, "blog v1"))
		b := newRegion(t, dir, 10*time.Second)
		if err := b.Reconcile(ctx, []regions.Deployment{webApp("shop", 2, "v2")}); err != nil {
			t.Fatal(err)
		}
		mustBeGone(t, pids[0])
		mustBeGone(t, pids[1])
		mustAnswer(t, urls[0], "v2")
		if _, err := get(urls[1]); !isRefused(err) {
			t.Errorf("blog still answers: %v", err)
		}
		st, err := b.Status(ctx, "blog")
		if err != nil || st.Running || st.Release != 0 {
			t.Errorf("blog Status = %+v, %v; want nothing running", st, err)
		}
	})
}

func TestCloseStopsApps(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r, err := local.New(local.Options{Name: "local-test", Dir: dir, Logger: testLogger(), Unpack: unpack})
	if err != nil {
		t.Fatal(err)
	}
	res := mustDeploy(t, r, webApp("shop", 1, "v1"))
	pid := mustAnswer(t, res.URL, "v1")
	killAtEnd(t, pid)
	if err := r.Close(true); err != nil {
		t.Fatal(err)
	}
	mustBeGone(t, pid)
	if _, err := r.Deploy(context.Background(), webApp("shop", 2, "v2")); !errors.Is(err, regions.ErrUnavailable) {
		t.Errorf("Deploy after Close = %v, want ErrUnavailable", err)
	}

	// The next start brings the app back on its URL.
	b := newRegion(t, dir, 10*time.Second)
	if err := b.Reconcile(context.Background(), []regions.Deployment{webApp("shop", 1, "v1")}); err != nil {
		t.Fatal(err)
	}
	mustAnswer(t, res.URL, "v1")
}

// TestTaskTimeLimit: a task past its time limit is stopped, everything it
// started included, and reported as failed with a line saying why.
func TestTaskTimeLimit(t *testing.T) {
	t.Parallel()
	for _, boxed := range []bool{false, true} {
		t.Run(fmt.Sprintf("sandboxed %v", boxed), func(t *testing.T) {
			r := newRegion(t, t.TempDir(), 10*time.Second)
			if boxed {
				r, _ = sandboxedRegion(t)
			}
			start := time.Now()
			res, err := r.RunTask(context.Background(), regions.Task{
				App: "shop", Release: 1, Name: "release", Command: "echo migrating; sleep 303 & sleep 304",
				Slug: regions.Slug{Digest: "sha256:shop-1", Path: slugPath}, Timeout: time.Second,
			})
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("a task with a 1s limit took %s", took)
			}
			if err != nil {
				t.Fatalf("RunTask = %v; want a failed result", err)
			}
			if res.ExitCode != 128+9 || !strings.HasPrefix(res.Output, "migrating\n") || !strings.Contains(res.Output, "stopped after 1s, its time limit") {
				t.Errorf("RunTask = %+v; want killed, saying the time limit stopped it", res)
			}
			if out, _ := exec.Command("pgrep", "-f", "^sleep 30[34]$").Output(); len(strings.TrimSpace(string(out))) > 0 {
				t.Errorf("the task's children outlived it: pids %s", out)
			}
		})
	}
}

// sandboxedRegion opens a region whose dir is inside a data dir holding a
// config key, running its tasks and apps under bubblewrap with that data
// dir hidden; the test is skipped where bubblewrap is not installed.
func sandboxedRegion(t *testing.T) (*local.Region, string) {
	t.Helper()
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "config-key"), []byte("config-key-the-app-must-not-read"), 0o600); err != nil {
		t.Fatal(err)
	}
	sb, err := sandbox.New(sandbox.Options{Mode: sandbox.ModeBwrap, Hide: []string{data}})
	if errors.Is(err, sandbox.ErrNoBwrap) {
		t.Skip("bubblewrap (bwrap) is not installed; the sandboxed region tests need it (apt-get install bubblewrap)")
	}
	if err != nil {
		t.Fatal(err)
	}
	r, err := local.New(local.Options{Name: "local-test", Dir: filepath.Join(data, "regions", "local-test"), HealthTimeout: 10 * time.Second,
		Logger: testLogger(), Unpack: unpack, Sandbox: sb})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(true); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r, data
}

// peek is a shell command that tries to read the data dir and its key and
// says which user it runs as.
func peek(data string) string {
	return "cat " + data + "/config-key 2>&1; ls " + data + " 2>&1; echo uid=$(id -u) home=$HOME pwd=$PWD"
}

func assertSandboxed(t *testing.T, out string) {
	t.Helper()
	if strings.Contains(out, "must-not-read") || strings.Contains(out, "\nregions\n") || strings.Count(out, "No such file or directory") != 2 {
		t.Fatalf("the sandbox saw the data dir:\n%s", out)
	}
	if !strings.Contains(out, "home=/app pwd=/app") {
		t.Errorf("HOME and the working dir are not /app:\n%s", out)
	}
	if os.Geteuid() == 0 && !strings.Contains(out, "uid=65534 ") {
		t.Fatalf("drover runs as root and the sandbox did not run as nobody:\n%s", out)
	}
}

// TestSandboxedTaskCannotReadTheDataDir: a release phase that tries to read
// drover's data dir finds no such dir.
func TestSandboxedTaskCannotReadTheDataDir(t *testing.T) {
	t.Parallel()
	r, data := sandboxedRegion(t)
	res, err := r.RunTask(context.Background(), regions.Task{
		App: "shop", Release: 1, Name: "release", Command: peek(data) + "; ls",
		Slug: regions.Slug{Digest: "sha256:shop-1", Path: slugPath},
	})
	if err != nil {
		t.Fatal(err)
	}
	assertSandboxed(t, res.Output)
	if !strings.HasSuffix(res.Output, "README\nserver\n") {
		t.Errorf("the task does not run in its slug:\n%s", res.Output)
	}
}

// TestSandboxedAppCannotSeeTheDataDir: an app process finds no data dir,
// still serves its PORT through the proxy, and stops on SIGTERM within the
// grace period.
func TestSandboxedAppCannotSeeTheDataDir(t *testing.T) {
	t.Parallel()
	r, data := sandboxedRegion(t)
	d := webApp("shop", 1, "v1")
	d.Procfile = pipelines.Procfile{{Type: "web", Command: "(" + peek(data) + ") > peek.txt; exec ./server"}}
	res := mustDeploy(t, r, d)
	mustAnswer(t, res.URL, "v1")
	out, err := os.ReadFile(filepath.Join(data, "regions", "local-test", "apps", "shop", "v1", "slug", "peek.txt"))
	if err != nil {
		t.Fatal(err)
	}
	assertSandboxed(t, string(out))
	start := time.Now()
	if err := r.Stop(context.Background(), "shop"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("stopping a sandboxed app took %s: SIGTERM did not reach it", took)
	}
	if body, err := get(res.URL); !isRefused(err) {
		t.Errorf("after Stop, GET = %q, %v; want connection refused", body, err)
	}
}

// TestOldReleaseDirsArePruned: after each deploy an app keeps the dirs
// (unpacked slug and logs) of its three newest releases only.
func TestOldReleaseDirsArePruned(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := newRegion(t, dir, 10*time.Second)
	for v := 1; v <= 5; v++ {
		mustDeploy(t, r, webApp("shop", v, fmt.Sprintf("v%d", v)))
	}
	// The old release stops, and its dirs go, after Deploy returns;
	// Status waits for that.
	if _, err := r.Status(context.Background(), "shop"); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "apps", "shop"))
	var got []string
	for _, e := range entries {
		if e.IsDir() {
			got = append(got, e.Name())
		}
	}
	if strings.Join(got, ",") != "v3,v4,v5" {
		t.Fatalf("release dirs = %v; want v3,v4,v5", got)
	}
}

// TestProcessesStartAsDynos: a process, and a task (the release phase),
// starts as Heroku starts a dyno whatever the buildpack: HOME is the app's
// directory, the slug's bin/ is on PATH (a Procfile names a binary there
// bare), every .profile.d/*.sh is sourced in order, then .profile, and
// what they set (exported or not) reaches the command.
func TestProcessesStartAsDynos(t *testing.T) {
	t.Parallel()
	bin, err := os.ReadFile(serverBin)
	if err != nil {
		t.Fatal(err)
	}
	slug := filepath.Join(t.TempDir(), "dyno.tgz")
	if err := writeSlugFiles(slug, []slugFile{
		{"bin/server", 0o755, bin},
		{".profile.d/10-first.sh", 0o644, []byte("export RESPONSE=from-profile-d ORDER=first\nPLAIN=not-exported\n")},
		{".profile.d/20-second.sh", 0o644, []byte("ORDER=\"$ORDER second\"\n")},
		{".profile.d/notes.txt", 0o644, []byte("export RESPONSE=not-a-script\n")},
		{".profile", 0o644, []byte("ORDER=\"$ORDER profile\"\n")},
	}); err != nil {
		t.Fatal(err)
	}
	r := newRegion(t, t.TempDir(), 10*time.Second)
	d := regions.Deployment{App: "dyno", Release: 1, Slug: regions.Slug{Digest: "sha256:dyno-1", Path: slug},
		Procfile: pipelines.Procfile{{Type: "web", Command: "server"}}, Formation: pipelines.Formation{"web": 1}}
	res := mustDeploy(t, r, d)
	if body := mustAnswerPrefix(t, res.URL); !strings.HasPrefix(body, "from-profile-d web.1 ") {
		t.Fatalf("web answered %q; want the RESPONSE .profile.d set", body)
	}
	task, err := r.RunTask(context.Background(), regions.Task{App: "dyno", Release: 1, Name: "release", ID: "dyno-env", Slug: d.Slug,
		Command: `echo "home=$HOME pwd=$PWD order=$ORDER plain=$PLAIN server=$(command -v server)"`})
	if err != nil {
		t.Fatal(err)
	}
	out := strings.TrimSpace(task.Output)
	home := strings.TrimSuffix(strings.TrimPrefix(strings.Fields(out)[0], "home="), "/")
	if want := fmt.Sprintf("home=%[1]s pwd=%[1]s order=first second profile plain=not-exported server=%[1]s/bin/server", home); out != want || task.ExitCode != 0 {
		t.Fatalf("the release phase saw %q (exit %d)\nwant                  %q", out, task.ExitCode, want)
	}
}

// mustAnswerPrefix GETs url until it answers, and returns the body.
func mustAnswerPrefix(t *testing.T, url string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		body, err := get(url)
		if err == nil {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestProcesses: ps lists each process of the current release, up with
// when it started; one that died on its own is crashed, with its exit
// code; an app that runs nothing lists none.
func TestProcesses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := newRegion(t, dir, 10*time.Second)
	d := webApp("ps", 1, "hi")
	// The worker exits with code 3 once told to.
	d.Procfile = append(d.Procfile, pipelines.Process{Type: "worker", Command: "while [ ! -e stop-$DYNO ]; do sleep 0.05; done; exit 3"})
	d.Formation["worker"] = 2
	before := time.Now().Add(-time.Second)
	mustDeploy(t, r, d)
	list := func() string {
		t.Helper()
		ps, err := r.Processes(context.Background(), "ps")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range ps {
			s := fmt.Sprintf("%s:%s:v%d", p.Dyno, p.State, p.Release)
			if p.ExitCode != nil {
				s += fmt.Sprintf(":exit %d", *p.ExitCode)
			}
			if p.Since.Before(before) || p.Since.After(time.Now()) {
				t.Errorf("%s since %v", p.Dyno, p.Since)
			}
			got = append(got, s)
		}
		return strings.Join(got, " ")
	}
	if got, want := list(), "web.1:up:v1 worker.1:up:v1 worker.2:up:v1"; got != want {
		t.Fatalf("processes = %s, want %s", got, want)
	}
	if err := os.WriteFile(filepath.Join(dir, "apps", "ps", "v1", "slug", "stop-worker.2"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	want := "web.1:up:v1 worker.1:up:v1 worker.2:crashed:v1:exit 3"
	deadline := time.Now().Add(5 * time.Second)
	for got := list(); got != want; got = list() {
		if time.Now().After(deadline) {
			t.Fatalf("processes = %s, want %s", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if none, err := r.Processes(context.Background(), "nothing-here"); err != nil || len(none) != 0 {
		t.Fatalf("an app that runs nothing: %v %v", none, err)
	}
}

// logCollector gathers what Logs sends, for tests that follow.
type logCollector struct{ applogtest.Collector }

func (c *logCollector) sink() applog.Sink { return c.Sink() }

// waitFor waits until a line from dyno (any when "") contains text.
func (c *logCollector) waitFor(t *testing.T, dyno, text string) applog.Line {
	t.Helper()
	return c.WaitFor(t, 5*time.Second, fmt.Sprintf("from %q saying %q", dyno, text), applogtest.Saying("", dyno, text))
}

func readLogs(t *testing.T, r *local.Region, app string, q applog.Query) []applog.Line {
	t.Helper()
	var c logCollector
	if err := r.Logs(context.Background(), app, q, c.sink()); err != nil {
		t.Fatalf("Logs: %v", err)
	}
	return c.Lines()
}

// TestLogs: what processes write comes back as stamped lines in Heroku's
// shape, with drover's own lines about them; -n keeps the newest, the
// filters keep a dyno, a type or a source; a tail goes on across a deploy,
// showing the new processes' lines as they start; a crash is a drover
// line with the exit code.
func TestLogs(t *testing.T) {
	t.Parallel()
	r := newRegion(t, t.TempDir(), 10*time.Second)
	d := webApp("logs", 1, "one")
	d.Formation = pipelines.Formation{"web": 2}
	res := mustDeploy(t, r, d)
	for i := range 5 {
		mustAnswer(t, fmt.Sprintf("%s/first-%d", res.URL, i), "one")
	}
	// The pump stamps lines as it reads them, within pumpEvery.
	time.Sleep(200 * time.Millisecond)
	before := time.Now()
	var all []applog.Line
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if all = readLogs(t, r, "logs", applog.Query{Num: 100}); len(all) >= 11 {
			break
		}
	}
	var text []string
	for _, l := range all {
		text = append(text, l.String())
		if l.Region != "local-test" || l.Time.After(before) || l.Time.Before(before.Add(-time.Minute)) {
			t.Errorf("line %q: region %q, time %v", l, l.Region, l.Time)
		}
	}
	joined := strings.Join(text, "\n")
	for _, re := range []string{
		`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00 drover\[web\.1\]: Starting process with command ` + "`./server`",
		`(?m)^\S+ app\[web\.[12]\]: listening on 127\.0\.0\.1:\d+$`,
		`(?m)^\S+ app\[web\.[12]\]: request /first-4$`,
	} {
		if !regexp.MustCompile(re).MatchString(joined) {
			t.Errorf("logs do not match %s:\n%s", re, joined)
		}
	}
	for i := 1; i < len(all); i++ {
		if all[i].Time.Before(all[i-1].Time) {
			t.Errorf("lines out of time order: %s before %s", all[i-1], all[i])
		}
	}
	if got := readLogs(t, r, "logs", applog.Query{Num: 2}); len(got) != 2 || got[1] != all[len(all)-1] {
		t.Errorf("Num 2 = %v, want the newest two", got)
	}
	for _, l := range readLogs(t, r, "logs", applog.Query{Num: 100, Dyno: "web.2"}) {
		if l.Dyno != "web.2" {
			t.Errorf("dyno web.2 query gave %s", l)
		}
	}
	for _, l := range readLogs(t, r, "logs", applog.Query{Num: 100, Source: applog.SourceDrover}) {
		if l.Source != applog.SourceDrover {
			t.Errorf("drover query gave %s", l)
		}
	}
	if got := readLogs(t, r, "logs", applog.Query{Num: 100, Type: "worker"}); len(got) != 0 {
		t.Errorf("worker query gave %v", got)
	}
	if err := r.Logs(context.Background(), "logs", applog.Query{Source: "router"}, applog.Lines(new([]applog.Line))); err == nil {
		t.Error("a bad source was accepted")
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var tail logCollector
	done := make(chan error, 1)
	go func() { done <- r.Logs(ctx, "logs", applog.Query{Num: 0, Tail: true}, tail.sink()) }()
	time.Sleep(100 * time.Millisecond)
	mustAnswer(t, res.URL+"/tailed", "one")
	got := tail.waitFor(t, "", "request /tailed")
	if lag := time.Since(got.Time); lag > time.Second {
		t.Errorf("tailed line came %v after it was stamped", lag)
	}
	// A deploy replaces the processes; the tail shows the new ones.
	d2 := webApp("logs", 2, "two")
	d2.Procfile = append(d2.Procfile, pipelines.Process{Type: "worker", Command: "echo working; sleep 2; exit 3"})
	d2.Formation = pipelines.Formation{"web": 1, "worker": 1}
	mustDeploy(t, r, d2)
	mustAnswer(t, res.URL+"/after-deploy", "two")
	tail.waitFor(t, "web.1", "request /after-deploy")
	tail.waitFor(t, "worker.1", "working")
	tail.waitFor(t, "worker.1", "Process exited with status 3")
	tail.waitFor(t, "worker.1", "State changed from up to crashed")
	tail.waitFor(t, "web.2", "Stopping process with SIGTERM")
	tail.waitFor(t, "web.1", "State changed from starting to up (v2)")
	cancel()
	if err := <-done; err != nil {
		t.Errorf("tail ended with %v", err)
	}
	for _, l := range tail.Lines() {
		if strings.Contains(l.Message, "first-") {
			t.Errorf("a tail with Num 0 repeated an old line: %s", l)
		}
	}
}

// TestRunOneOff: a one-off runs the command from the release's slug with
// its config vars and DYNO=run.N, attached to the caller's stdio, and
// its exit code is the caller's (0, 1, 137 for a kill); a caller that
// goes away kills it; a detached one writes to the app's log as run.N.
func TestRunOneOff(t *testing.T) {
	t.Parallel()
	r := newRegion(t, t.TempDir(), 10*time.Second)
	oneOff := func(n int, command string) regions.OneOff {
		return regions.OneOff{App: "runs", Release: 4, Number: n, Command: command,
			Slug: regions.Slug{Digest: "sha256:runs", Path: slugPath}, Env: map[string]string{"GREETING": "hi"}}
	}
	tests := []struct {
		name, command, stdin string
		code                 int
		out                  string
	}{
		{"exit 0 with stdin and env", `read line; echo "$GREETING $line from $DYNO"; ls README`, "there\n", 0, "hi there from run.1\nREADME\n"},
		{"exit 1", "echo failing >&2; exit 1", "", 1, "failing\n"},
		{"killed", "kill -9 $$", "", 137, ""},
		{"not found", "no-such-command", "", 127, "not found"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			wait, err := r.StartRun(context.Background(), oneOff(i+1, tt.command), &regions.Stdio{Stdin: strings.NewReader(tt.stdin), Stdout: &out, Stderr: &out})
			if err != nil {
				t.Fatal(err)
			}
			code, err := wait()
			if err != nil || code != tt.code || !strings.Contains(out.String(), tt.out) {
				t.Errorf("run %q = %d, %v, output %q; want %d, %q", tt.command, code, err, out.String(), tt.code, tt.out)
			}
		})
	}

	// On a terminal: the command sees one, of the caller's size, resized
	// when the caller's is.
	t.Run("tty", func(t *testing.T) {
		var out syncbuf.Buffer
		resize := make(chan regions.TermSize, 1)
		pr, pw := io.Pipe()
		defer pw.Close()
		wait, err := r.StartRun(context.Background(), oneOff(20, `test -t 0 && test -t 1 && echo on-a-tty; stty size; read go; stty size`),
			&regions.Stdio{Stdin: pr, Stdout: &out, Stderr: &out, TTY: true, Size: regions.TermSize{Rows: 24, Cols: 80}, Resize: resize})
		if err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(5 * time.Second); !strings.Contains(out.String(), "24 80"); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("output %q", out.String())
			}
		}
		resize <- regions.TermSize{Rows: 50, Cols: 132}
		time.Sleep(100 * time.Millisecond)
		pw.Write([]byte("go\n"))
		code, _ := wait()
		if code != 0 || !strings.Contains(out.String(), "on-a-tty") || !strings.Contains(out.String(), "50 132") {
			t.Errorf("tty run = %d, output %q", code, out.String())
		}
	})

	// The caller disconnects: the run and what it started are killed.
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	defer pw.Close()
	var out syncbuf.Buffer
	wait, err := r.StartRun(ctx, oneOff(10, "sleep 300 & echo child=$!; wait"), &regions.Stdio{Stdin: pr, Stdout: &out, Stderr: &out})
	if err != nil {
		t.Fatal(err)
	}
	var child int
	for deadline := time.Now().Add(5 * time.Second); child == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		fmt.Sscanf(strings.TrimSpace(out.String()), "child=%d", &child)
	}
	if child == 0 {
		t.Fatalf("no child pid in %q", out.String())
	}
	cancel()
	if code, _ := wait(); code != 137 {
		t.Errorf("disconnected run exit = %d, want 137 (killed)", code)
	}
	mustBeGone(t, child)

	// Detached: it runs on its own, into the log as run.11.
	dwait, err := r.StartRun(context.Background(), oneOff(11, "echo cleaning up; exit 3"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := dwait(); code != 3 {
		t.Errorf("detached exit = %d, want 3", code)
	}
	var logs logCollector
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		logs = logCollector{}
		r.Logs(context.Background(), "runs", applog.Query{Num: 100, Dyno: "run.11"}, logs.sink())
		if len(logs.Lines()) >= 3 {
			break
		}
	}
	logs.waitFor(t, "run.11", "cleaning up")
	logs.waitFor(t, "run.11", "Starting process with command `echo cleaning up; exit 3` (v4)")
	logs.waitFor(t, "run.11", "Process exited with status 3")
}

// TestSandboxedOneOffs: under bubblewrap a one-off runs as the sandbox
// runs apps (the data dir out of sight), attached with a terminal too,
// and its exit code comes back.
func TestSandboxedOneOffs(t *testing.T) {
	t.Parallel()
	r, data := sandboxedRegion(t)
	for _, tty := range []bool{false, true} {
		t.Run(fmt.Sprintf("tty %v", tty), func(t *testing.T) {
			var out syncbuf.Buffer
			n := 1
			if tty {
				n = 2
			}
			wait, err := r.StartRun(context.Background(), regions.OneOff{App: "boxed", Release: 1, Number: n,
				Command: `if test -t 0; then echo tty; fi; cat ` + filepath.Join(data, "config-key") + ` || echo hidden; exit 4`,
				Slug:    regions.Slug{Digest: "sha256:boxed", Path: slugPath}},
				&regions.Stdio{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out, TTY: tty, Size: regions.TermSize{Rows: 24, Cols: 80}})
			if err != nil {
				t.Fatal(err)
			}
			code, _ := wait()
			if code != 4 || !strings.Contains(out.String(), "hidden") || strings.Contains(out.String(), "must-not-read") || strings.Contains(out.String(), "tty") != tty {
				t.Errorf("sandboxed run = %d, output %q", code, out.String())
			}
		})
	}
}

// TestRegionsShareUnpackedSlugs: local regions of one host with a slug
// cache unpack a slug once between them, each running its own copy (a
// file one writes is not the other's), and a new slug is unpacked anew.
func TestRegionsShareUnpackedSlugs(t *testing.T) {
	t.Parallel()
	cache := filepath.Join(t.TempDir(), "slugs")
	var mu sync.Mutex
	unpacks := 0
	counting := func(ctx context.Context, slug, dir string) error {
		mu.Lock()
		unpacks++
		mu.Unlock()
		return unpack(ctx, slug, dir)
	}
	var rs []*local.Region
	var dirs []string
	for _, name := range []string{"local-a", "local-b", "local-c"} {
		dirs = append(dirs, filepath.Join(t.TempDir(), name))
		r, err := local.New(local.Options{Name: name, Dir: dirs[len(dirs)-1], HealthTimeout: 10 * time.Second,
			Logger: testLogger(), Unpack: counting, SlugCache: cache})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close(true) })
		rs = append(rs, r)
	}
	var wg sync.WaitGroup
	urls := make([]string, len(rs))
	for i, r := range rs {
		wg.Go(func() { urls[i] = mustDeploy(t, r, webApp("shared", 1, "one")).URL })
	}
	wg.Wait()
	for _, u := range urls {
		mustAnswer(t, u, "one")
	}
	if unpacks != 1 {
		t.Errorf("3 regions unpacked the slug %d times, want once", unpacks)
	}
	// The release phase runs from the cached slug too.
	res, err := rs[1].RunTask(context.Background(), regions.Task{App: "shared", Release: 1, Name: "release", Command: "cat README",
		Slug: regions.Slug{Digest: "sha256:shared-1", Path: slugPath}})
	if err != nil || res.ExitCode != 0 || res.Output != "test slug\n" {
		t.Fatalf("release phase = %+v, %v", res, err)
	}
	if unpacks != 1 {
		t.Errorf("the release phase unpacked the slug again (%d unpacks)", unpacks)
	}
	// Copies, not links: what one region's app writes stays its own.
	readme := func(i int) string {
		return filepath.Join(dirs[i], "apps", "shared", "v1", "slug", "README")
	}
	if err := os.WriteFile(readme(0), []byte("changed by a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(readme(1)); string(b) != "test slug\n" {
		t.Errorf("region b's README = %q after region a wrote its own", b)
	}
	d2 := webApp("shared", 2, "two")
	d2.Slug.Digest = "sha256:shared-2-other"
	mustDeploy(t, rs[0], d2)
	if unpacks != 2 {
		t.Errorf("a new slug: %d unpacks, want 2", unpacks)
	}
}
