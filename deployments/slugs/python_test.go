package slugs

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/drover/drover/pipelines"
)

// repoFiles is a repository of files, as planPythonBuild reads the
// checkout; a file whose body is escapes stands for a symlink out of it,
// which os.Root refuses to follow.
func repoFiles(files map[string]string) fs.FS {
	m := fstest.MapFS{}
	for name, body := range files {
		m[name] = &fstest.MapFile{Data: []byte(body)}
	}
	return escapingFS{m}
}

const escapes = "\x00escapes"

type escapingFS struct{ fstest.MapFS }

func (e escapingFS) escape(name string) error {
	if f, ok := e.MapFS[name]; ok && string(f.Data) == escapes {
		return &fs.PathError{Op: "openat", Path: name, Err: errors.New("path escapes from parent")}
	}
	return nil
}

func (e escapingFS) Open(name string) (fs.File, error) {
	if err := e.escape(name); err != nil {
		return nil, err
	}
	return e.MapFS.Open(name)
}

func (e escapingFS) ReadFile(name string) ([]byte, error) {
	if err := e.escape(name); err != nil {
		return nil, err
	}
	return e.MapFS.ReadFile(name)
}

func (e escapingFS) Stat(name string) (fs.FileInfo, error) {
	if err := e.escape(name); err != nil {
		return nil, err
	}
	return e.MapFS.Stat(name)
}

// TestPlanPythonBuild: Heroku's Python rules: one package manager, whose
// tool must be on the builder; the version from .python-version, else
// runtime.txt, else the builder's newest, matched against the builder's
// usable interpreters; and requirements.txt lines checked, naming the
// line.
func TestPlanPythonBuild(t *testing.T) {
	have := []pythonInterpreter{
		{Version: "3.11.2", Path: "/usr/bin/python3.11", Executable: "/usr/bin/python3.11", Prefix: "/usr", Pip: true},
		{Version: "3.12.4", Path: "/usr/local/bin/python3.12", Prefix: "/usr/local", Pip: true},
		{Version: "3.13.1", Path: "/root/.pyenv/shims/python3.13", Prefix: "/root/.pyenv/versions/3.13.1", Pip: true, Unusable: "other users cannot reach /root/.pyenv/versions/3.13.1"},
		{Version: "3.10.12", Path: "/usr/bin/python3.10", Prefix: "/usr"},
	}
	tools := []string{"pipenv", "uv"} // not poetry
	onBuilder := func(tool string) bool { return strings.Contains(strings.Join(tools, " "), tool) }
	const req = "flask==3.0.2\n"
	tests := []struct {
		name    string
		files   map[string]string
		manager string
		python  string // the interpreter's path
		from    string
		err     string
	}{
		{"requirements.txt, builder's newest", map[string]string{"requirements.txt": req}, "pip", "/usr/local/bin/python3.12", "", ""},
		{".python-version minor", map[string]string{"requirements.txt": req, ".python-version": "3.11\n"}, "pip", "/usr/bin/python3.11", ".python-version", ""},
		{".python-version exact, after comments", map[string]string{"requirements.txt": req, ".python-version": "# pinned for prod\n\n3.12.4\n3.11\n"}, "pip", "/usr/local/bin/python3.12", ".python-version", ""},
		{".python-version wins over runtime.txt", map[string]string{"requirements.txt": req, ".python-version": "3.11", "runtime.txt": "python-3.12.4"}, "pip", "/usr/bin/python3.11", ".python-version", ""},
		{"runtime.txt", map[string]string{"requirements.txt": req, "runtime.txt": "python-3.11.2\n"}, "pip", "/usr/bin/python3.11", "runtime.txt", ""},
		{"runtime.txt minor", map[string]string{"requirements.txt": req, "runtime.txt": "python-3.12"}, "pip", "/usr/local/bin/python3.12", "runtime.txt", ""},
		{"bad runtime.txt", map[string]string{"requirements.txt": req, "runtime.txt": "3.11.2\n"}, "", "", "", `runtime.txt asks for "3.11.2": want a line like python-3.12.4`},
		{"bad .python-version", map[string]string{"requirements.txt": req, ".python-version": "python3.12\n"}, "", "", "", `.python-version asks for "python3.12": want a Python 3 version like 3.12`},
		{"empty .python-version", map[string]string{"requirements.txt": req, ".python-version": "# nothing\n"}, "", "", "", ".python-version names no version"},
		{"no matching interpreter", map[string]string{"requirements.txt": req, ".python-version": "3.13"}, "", "", "",
			".python-version asks for Python 3.13; this builder has Python 3.12.4 (/usr/local/bin/python3.12), 3.11.2 (/usr/bin/python3.11), 3.10.12 (/usr/bin/python3.10); Python 3.13.1 (/root/.pyenv/shims/python3.13) is there but other users cannot reach"},
		{"no matching patch", map[string]string{"requirements.txt": req, "runtime.txt": "python-3.11.9"}, "", "", "", "runtime.txt asks for Python 3.11.9; this builder has Python 3.12.4 (/usr/local/bin/python3.12), 3.11.2 (/usr/bin/python3.11), 3.10.12 (/usr/bin/python3.10); Python 3.13.1 (/root/.pyenv/shims/python3.13) is there but other users cannot reach /root/.pyenv/versions/3.13.1: change runtime.txt to a version the builder has (3.11 alone takes any 3.11)"},
		{"interpreter without pip", map[string]string{"requirements.txt": req, ".python-version": "3.10"}, "", "", "", "Python 3.10.12 (/usr/bin/python3.10) on this builder has no pip: install it on drover's builder (Debian/Ubuntu: apt-get install python3-pip)"},
		{"two managers", map[string]string{"requirements.txt": req, "poetry.lock": ""}, "", "", "", "the app has requirements.txt (pip) and poetry.lock (poetry): one package manager installs its dependencies"},
		{"Pipfile without its lock", map[string]string{"Pipfile": "[packages]\n"}, "", "", "", "the app has a Pipfile and no Pipfile.lock: run `pipenv lock` and commit Pipfile.lock"},
		{"Pipfile and requirements.txt", map[string]string{"Pipfile": "", "requirements.txt": req}, "", "", "", "the app has requirements.txt (pip) and Pipfile (pipenv)"},
		{"pipenv", map[string]string{"Pipfile": "", "Pipfile.lock": "{}"}, "pipenv", "/usr/local/bin/python3.12", "", ""},
		{"uv", map[string]string{"pyproject.toml": "", "uv.lock": "", ".python-version": "3.11"}, "uv", "/usr/bin/python3.11", ".python-version", ""},
		{"poetry not on the builder", map[string]string{"pyproject.toml": "", "poetry.lock": ""}, "", "", "", "the app's poetry.lock calls for poetry, which this builder does not have: install poetry on drover's builder, or replace poetry.lock with a requirements.txt (`poetry export --format requirements.txt > requirements.txt` writes one)"},
		{"pyproject.toml alone", map[string]string{"pyproject.toml": ""}, "", "", "", "the app has pyproject.toml but nothing that says what to install: add a requirements.txt"},
		{"setup.py alone", map[string]string{"setup.py": ""}, "", "", "", "the app has setup.py but nothing that says what to install"},
		{"broken requirements line", map[string]string{"requirements.txt": "# deps\nflask==3.0.2\n\nrequests>>2\n"}, "", "", "", `requirements.txt line 4: "requests>>2" is not a requirement pip can read (version ">>2")`},
		{"requirement without a version", map[string]string{"requirements.txt": "flask==\n"}, "", "", "", `requirements.txt line 1: "flask==" is not a requirement pip can read`},
		{"broken line in an included file", map[string]string{"requirements.txt": "-r requirements/base.txt\n", "requirements/base.txt": "flask\n-r common.txt\n", "requirements/common.txt": "ok\nnot a requirement\n"}, "", "", "", `requirements/common.txt line 2: "not a requirement" is not a requirement pip can read`},
		{"line numbers count continued lines", map[string]string{"requirements.txt": "flask \\\n  ==3.0.2\n!!\n"}, "", "", "", "requirements.txt line 3:"},
		{"-r of a file outside", map[string]string{"requirements.txt": "flask\n-r /etc/passwd\n"}, "", "", "", "requirements.txt line 2: -r /etc/passwd: the path must be relative, to a file in the repository"},
		{"-c up and out", map[string]string{"requirements.txt": "-c ../../../etc/passwd\n"}, "", "", "", "requirements.txt line 1: -c ../../../etc/passwd: the path leads outside the repository"},
		{"-r through a variable", map[string]string{"requirements.txt": "--requirement=${HOME}/x.txt\n"}, "", "", "", "may not use variables"},
		{"abbreviated option", map[string]string{"requirements.txt": "--requ /etc/passwd\n"}, "", "", "", "requirements.txt line 1: --requ is not an option pip reads in a requirements file"},
		{"-r of a missing file", map[string]string{"requirements.txt": "-r base.txt\n"}, "", "", "", "requirements.txt line 1: -r base.txt: the repository has no base.txt"},
		{"-r of itself", map[string]string{"requirements.txt": "-r ./requirements.txt\n"}, "", "", "", "includes itself"},
		{"file URL", map[string]string{"requirements.txt": "pkg @ file:///etc/passwd\n"}, "", "", "", "file: URLs are not allowed"},
		{"editable", map[string]string{"requirements.txt": "-e .\n"}, "", "", "", "requirements.txt line 1: -e .: editable installs are not supported"},
		{"index URL that is a path", map[string]string{"requirements.txt": "--index-url /srv/wheels\n"}, "", "", "", "want an http(s) URL"},
		{"requirements.txt that cannot be read", map[string]string{"requirements.txt": escapes}, "", "", "", "requirements.txt: cannot read it in the repository (path escapes from parent)"},
		{"-r of a symlink out", map[string]string{"requirements.txt": "-r base.txt\n", "base.txt": escapes}, "", "", "", "requirements.txt line 1: -r base.txt: cannot read base.txt in the repository (path escapes from parent)"},
		{"a path requirement through a symlink out", map[string]string{"requirements.txt": "flask\n./vendor/pkg\n", "vendor/pkg": escapes}, "", "", "", `requirements.txt line 2: "./vendor/pkg": cannot read vendor/pkg in the repository`},
		{"-f through a symlink out", map[string]string{"requirements.txt": "-f wheels\n", "wheels": escapes}, "", "", "", "requirements.txt line 1: -f wheels: cannot read wheels in the repository"},
		{"a path requirement up and out", map[string]string{"requirements.txt": "../other/pkg\n"}, "", "", "", "the path leads outside the repository"},
		{"a quoted file reference", map[string]string{"requirements.txt": "-r '/etc/passwd'\n"}, "", "", "", "quotes and backslashes are not supported"},
		{"an escaped file reference", map[string]string{"requirements.txt": "-r \\/etc/passwd\n"}, "", "", "", "quotes and backslashes are not supported"},
		{"requirements Heroku takes", map[string]string{"requirements.txt": "--index-url https://mirror.example/simple\n--extra-index-url https://${TOKEN}@private.example/simple\n--trusted-host mirror.example\n" +
			"Flask[async, dotenv] >= 3.0, <4 ; python_version >= \"3.8\"  # web\nrequests==2.31.0 --hash=sha256:58cd2187c01e70e6e26505bca751777aa9f2ee0b7f4300988b709f44e013003f\n" +
			"gunicorn~=21.2\nzope.interface===6.0\nDjango (>=4.2)\npkg @ https://example.com/pkg-1.0.tar.gz#sha256=abc\ngit+https://github.com/org/repo@v1#egg=repo\n./vendor/thing-1.0-py3-none-any.whl\n-r requirements/prod.txt\n" +
			"--find-links vendor\n", "requirements/prod.txt": "-c ../constraints.txt\n", "constraints.txt": "urllib3<3\n", "vendor/thing-1.0-py3-none-any.whl": "PK"}, "pip", "/usr/local/bin/python3.12", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := planPythonBuild(repoFiles(tt.files), have, onBuilder)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v\nwant %q", err, tt.err)
				}
				if !errors.Is(err, pipelines.ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if plan.Manager != tt.manager || plan.Python.Path != tt.python || plan.From != tt.from {
				t.Fatalf("plan = %+v, want %s with %s from %q", plan, tt.manager, tt.python, tt.from)
			}
		})
	}

	t.Run("no Python on the builder", func(t *testing.T) {
		_, err := planPythonBuild(repoFiles(map[string]string{"requirements.txt": req}), nil, onBuilder)
		if err == nil || !strings.Contains(err.Error(), "this builder has no Python 3") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestWithPythonShebang(t *testing.T) {
	const want = "#!/usr/bin/env python3.11\n"
	tests := []struct {
		name, in, out string
		ok            bool
	}{
		{"interpreter path", "#!/tmp/build-1/app/x/bin/python3.11\nimport sys\n", want + "import sys\n", true},
		{"trampoline", "#!/bin/sh\n'''exec' /very/long/path/bin/python3.11 \"$0\" \"$@\"\n' '''\nimport sys\n", want + "import sys\n", true},
		{"a shell script", "#!/bin/sh\necho hi\n", "#!/bin/sh\necho hi\n", false},
		{"no #!", "data", "data", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := withPythonShebang([]byte(tt.in), want)
			if string(got) != tt.out || ok != tt.ok {
				t.Fatalf("= %q, %v; want %q, %v", got, ok, tt.out, tt.ok)
			}
		})
	}
}

// TestPythonProfile sources the profile script the way a dyno does and
// checks Heroku's defaults, WEB_CONCURRENCY computed by Heroku's rule from
// this machine's memory and cores, and that the app's config wins.
func TestPythonProfile(t *testing.T) {
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".profile.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, pythonProfileName), []byte(pythonProfile("3.11")), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(env ...string) map[string]string {
		t.Helper()
		cmd := exec.Command("sh", pipelines.DynoArgs(home, `printf '%s\n' "WEB_CONCURRENCY=$WEB_CONCURRENCY" "PYTHONUNBUFFERED=$PYTHONUNBUFFERED" "GUNICORN_CMD_ARGS=$GUNICORN_CMD_ARGS" "PYTHONUSERBASE=$PYTHONUSERBASE" "PATH=$PATH"`)[1:]...)
		cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		vars := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			k, v, _ := strings.Cut(line, "=")
			vars[k] = v
		}
		return vars
	}
	got := run()
	if want := strconv.Itoa(herokuWebConcurrency(t, 0)); got["WEB_CONCURRENCY"] != want {
		t.Errorf("WEB_CONCURRENCY = %q, want %s", got["WEB_CONCURRENCY"], want)
	}
	// So many cores that memory decides, at 256 MB a process.
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "nproc"), []byte("#!/bin/sh\necho 100000\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, want := run("PATH=" + bin + ":/usr/bin:/bin")["WEB_CONCURRENCY"], strconv.Itoa(herokuWebConcurrency(t, 100000)); got != want {
		t.Errorf("with 100000 cores WEB_CONCURRENCY = %q, want %s", got, want)
	}
	if got["PYTHONUNBUFFERED"] != "true" || got["GUNICORN_CMD_ARGS"] != "--access-logfile -" {
		t.Errorf("defaults: %v", got)
	}
	if got["PYTHONUSERBASE"] != home+"/.heroku/python" || !strings.HasPrefix(got["PATH"], home+"/.heroku/python/bin:"+home+"/bin:") {
		t.Errorf("paths: %v", got)
	}
	got = run("WEB_CONCURRENCY=7", "PYTHONUNBUFFERED=", "GUNICORN_CMD_ARGS=--workers 3")
	if got["WEB_CONCURRENCY"] != "7" || got["GUNICORN_CMD_ARGS"] != "--workers 3" {
		t.Errorf("the app's config lost: %v", got)
	}
	// Empty, like unset, takes the default: ${VAR:-default}.
	if got["PYTHONUNBUFFERED"] != "true" {
		t.Errorf("PYTHONUNBUFFERED = %q", got["PYTHONUNBUFFERED"])
	}
}

// herokuWebConcurrency is Heroku's rule, min(2 × cores + 1, MB / 256) with
// at least 1, from this process's cgroup memory limit or the machine's
// memory, whichever is less, and cores (nproc's when 0).
func herokuWebConcurrency(t *testing.T, cores int) int {
	t.Helper()
	if cores == 0 {
		cores = runtime.NumCPU()
		if out, err := exec.Command("nproc").Output(); err == nil {
			cores, _ = strconv.Atoi(strings.TrimSpace(string(out)))
		}
	}
	mem := -1
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.Atoi(f[1])
				mem = kb / 1024
			}
		}
	}
	cg := ""
	if b, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if p, ok := strings.CutPrefix(line, "0::"); ok {
				cg = strings.TrimSuffix(p, "/")
			}
		}
	}
	for _, f := range []string{"/sys/fs/cgroup" + cg + "/memory.max", "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n/1048576 <= 1048576 {
			if limit := int(n / 1048576); mem < 0 || limit < mem {
				mem = limit
			}
			break
		}
	}
	n := cores*2 + 1
	if mem >= 0 {
		m := max(mem/256, 1)
		n = min(n, m)
	}
	return n
}

// TestFindPythons finds python3.X interpreters by running them, once per
// real file, and marks one other users cannot reach as unusable.
func TestFindPythons(t *testing.T) {
	base := t.TempDir()
	// t.TempDir's dirs are 0700; the interpreters must be reachable.
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fake := func(dir, name, version string, pip bool) {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		body := "#!/bin/sh\nprintf '%s\\n' " + version + " " + p + " " + dir + " " + map[bool]string{true: "True", false: "False"}[pip] + "\n"
		if version == "" {
			body = "#!/bin/sh\nexit 1\n"
		}
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	system, private, broken := filepath.Join(base, "usr/bin"), filepath.Join(base, "private/bin"), filepath.Join(base, "broken")
	fake(system, "python3.9", "3.9.18", true)
	fake(system, "python3.9-config", "3.9.18", true)          // not an interpreter
	os.Symlink("python3.9", filepath.Join(system, "python3")) // nor is an unversioned name
	os.Symlink("python3.9", filepath.Join(system, "python3.10"))
	fake(private, "python3.12", "3.12.1", false)
	if err := os.Chmod(filepath.Dir(private), 0o700); err != nil {
		t.Fatal(err)
	}
	fake(broken, "python3.8", "", false)

	got := findPythons([]string{system, private, broken, system})
	if len(got) != 2 {
		t.Fatalf("found %+v, want python3.9 and python3.12", got)
	}
	if p := got[0]; p.Version != "3.9.18" || p.Path != filepath.Join(system, "python3.9") || !p.Pip || p.Unusable != "" {
		t.Errorf("first = %+v", p)
	}
	if p := got[1]; p.Version != "3.12.1" || p.Pip || !strings.Contains(p.Unusable, "other users cannot reach "+filepath.Join(private, "python3.12")) {
		t.Errorf("second = %+v, want it unusable", p)
	}
}
