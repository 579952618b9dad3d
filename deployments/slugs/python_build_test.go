package slugs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drover/drover/deployments/slugs"
	"github.com/drover/drover/internal/pyindex"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/sandbox"
)

// needPython skips a test where the builder has no Python with pip.
func needPython(t *testing.T) string {
	t.Helper()
	version, pip := slugs.BuilderPython()
	if version == "" || !pip {
		t.Skip("the builder has no usable Python 3 with pip (Debian/Ubuntu: apt-get install python3 python3-pip); the Python buildpack tests need one")
	}
	return version
}

// pythonIndex serves the five packages of pythonApp, and more versions of
// one of them that its requirements.txt rules out, and returns the index.
func pythonIndex(t *testing.T) string {
	t.Helper()
	return pyindex.Serve(t,
		// A console script, like gunicorn's, needing a dependency.
		pyindex.Wheel("hello-serve", "1.0.0", map[string]string{
			"hello_serve/__init__.py": `import os, sys
import greeting_lib
def main():
    print(greeting_lib.greet("dyno"))
    for k in ("PYTHONUNBUFFERED", "GUNICORN_CMD_ARGS", "WEB_CONCURRENCY"):
        print(k + "=" + os.environ.get(k, "<unset>"))
    print("python=%d.%d" % sys.version_info[:2])
`,
			pyindex.EntryPoints: "[console_scripts]\nhello-serve = hello_serve:main\n",
			pyindex.Metadata:    "Requires-Dist: greeting-lib>=2\n",
		}),
		pyindex.Wheel("greeting-lib", "1.0", map[string]string{"greeting_lib.py": "def greet(who): return 'old ' + who\n"}),
		pyindex.Wheel("greeting-lib", "2.1", map[string]string{"greeting_lib.py": "def greet(who): return 'hello, ' + who\n"}),
		pyindex.Wheel("greeting-lib", "3.0", map[string]string{"greeting_lib.py": "def greet(who): return 'too new ' + who\n"}),
		pyindex.Wheel("tinyjson", "0.3", map[string]string{"tinyjson/__init__.py": "import json\ndef dumps(x): return json.dumps(x, sort_keys=True)\n"}),
		// Stand-ins for Django and gunicorn: enough for the buildpack to
		// find them and for the default Procfile to run.
		pyindex.Wheel("Django", "4.2.0", map[string]string{"django/__init__.py": "VERSION = (4, 2, 0)\n"}),
		pyindex.Wheel("gunicorn", "21.2.0", map[string]string{
			"gunicorn/__init__.py": `import importlib, os, sys
def main():
    sys.path.insert(0, os.getcwd())
    mod = importlib.import_module(sys.argv[1])
    print("gunicorn serving", sys.argv[1], mod.application(), "workers", os.environ.get("WEB_CONCURRENCY"), "args", os.environ.get("GUNICORN_CMD_ARGS"))
`,
			pyindex.EntryPoints: "[console_scripts]\ngunicorn = gunicorn:main\n",
		}),
	)
}

// pythonApp is a Django-shaped app with five requirements and no Procfile.
func pythonApp() map[string]string {
	return map[string]string{
		"requirements.txt": `# From the builder's pip index (PIP_INDEX_URL or PIP_CONFIG_FILE).
--prefer-binary
hello-serve==1.0.0
Greeting_Lib>=2.0,<3 ; python_version >= "3.8"
tinyjson==0.3  # pinned
Django>=4.2
gunicorn
`,
		"manage.py": `import os, sys
import django
if sys.argv[1:] == ["collectstatic", "--noinput"]:
    os.makedirs("staticfiles", exist_ok=True)
    with open("staticfiles/collected.txt", "w") as f:
        f.write("django %d.%d\n" % django.VERSION[:2])
    print("1 static file copied to 'staticfiles'.")
`,
		"mysite/__init__.py": "",
		"mysite/wsgi.py":     "def application(): return 'mysite'\n",
	}
}

// dyno runs command in the unpacked slug dir as a dyno would, with no
// environment but a PATH and env: on the host at dir's own path, or, when
// sb is set, in the sandbox at /app, as local regions run apps.
func dyno(t *testing.T, sb *sandbox.Sandbox, dir, command string, env ...string) string {
	t.Helper()
	env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin"}, env...)
	var cmd *exec.Cmd
	if sb != nil {
		var err error
		cmd, err = sb.Command(context.Background(), sandbox.Spec{Args: pipelines.DynoArgs(sandbox.AppDir, command), Dir: dir, Env: env})
		if err != nil {
			t.Fatal(err)
		}
	} else {
		cmd = exec.Command("sh", pipelines.DynoArgs(dir, command)[1:]...)
		cmd.Env = env
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", command, err, out)
	}
	return string(out)
}

// TestBuildPythonApp builds a pip app of five packages from a package
// index the test serves, unsandboxed and sandboxed, unpacks each slug at
// another path than it was built at, and runs its console scripts, its
// Python and its default Procfile's web command as a dyno would, on the
// host and in the sandbox.
func TestBuildPythonApp(t *testing.T) {
	version := needPython(t)
	minor := strings.Join(strings.SplitN(version, ".", 3)[:2], ".")
	index := pythonIndex(t)
	r := newRepo(t)
	c := r.commit(pythonApp())

	digests := map[bool]string{}
	for _, boxed := range []bool{false, true} {
		t.Run(fmt.Sprintf("sandboxed %v", boxed), func(t *testing.T) {
			b := newBuilder(t, nil)
			var sb *sandbox.Sandbox
			if boxed {
				b, _ = bwrapBuilder(t, nil)
				sb = b.Sandbox
				// The index through a pip config file, which the sandbox
				// must show the build.
				conf := filepath.Join(t.TempDir(), "pip.conf")
				if err := os.WriteFile(conf, []byte("[global]\nindex-url = "+index+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				t.Setenv("PIP_CONFIG_FILE", conf)
			} else {
				t.Setenv("PIP_INDEX_URL", index)
			}
			start := time.Now()
			var out bytes.Buffer
			res, err := b.Build(context.Background(), slugs.BuildInput{CloneURL: r.url(), Commit: c}, &out)
			took := time.Since(start)
			if err != nil {
				t.Fatalf("build: %v\n%s", err, out.String())
			}
			t.Logf("5-package pip build (sandboxed %v) took %v", boxed, took.Round(time.Millisecond))
			// The same slug in the sandbox (built at /app, as nobody) as
			// out of it (built in a scratch dir): nothing in it depends on
			// where it was built.
			digests[boxed] = res.Digest
			if d := digests[!boxed]; d != "" && d != res.Digest {
				t.Errorf("digest %s, want %s as the other build made", res.Digest, d)
			}
			if testing.Verbose() {
				t.Log(out.String())
			}
			if res.Buildpack != slugs.BuildpackPython || res.Procfile.String() != "web: gunicorn mysite.wsgi\n" {
				t.Fatalf("result = %+v\n%s", res, out.String())
			}
			for _, line := range []string{
				"-----> Python app detected",
				"-----> Python " + version + " (the builder's newest; pin a version in .python-version)",
				"-----> Installing requirements with pip",
				"Successfully installed",
				"-----> Running Django collectstatic",
				"1 static file copied",
				`using "web: gunicorn mysite.wsgi"`,
			} {
				if !strings.Contains(out.String(), line) {
					t.Errorf("output lacks %q:\n%s", line, out.String())
				}
			}
			assertWorkDirClean(t, b)

			dir := unpacked(t, b.Store.(*slugs.Store), res.Digest)
			site := filepath.Join(dir, ".heroku/python/lib/python"+minor+"/site-packages")
			if _, err := os.Stat(filepath.Join(site, "greeting_lib.py")); err != nil {
				t.Fatalf("the dependencies are not in the slug: %v", err)
			}
			script, err := os.ReadFile(filepath.Join(dir, ".heroku/python/bin/hello-serve"))
			if err != nil || !strings.HasPrefix(string(script), "#!/usr/bin/env python"+minor+"\n") {
				t.Fatalf("bin/hello-serve = %q, %v; want a #! naming python%s, not a path", script, err, minor)
			}
			if pyc, _ := filepath.Glob(filepath.Join(site, "hello_serve/__pycache__/__init__.*.pyc")); len(pyc) != 1 {
				t.Errorf("bytecode = %v, want one .pyc", pyc)
			}
			if static, err := os.ReadFile(filepath.Join(dir, "staticfiles/collected.txt")); err != nil || string(static) != "django 4.2\n" {
				t.Errorf("collectstatic output = %q, %v", static, err)
			}
			// Nothing in the slug names where it was built.
			built := b.WorkDir
			if boxed {
				built = sandbox.AppDir + "/"
			}
			if files := filesContaining(t, dir, built); len(files) > 0 {
				t.Errorf("the slug names its build dir %s in %v", built, files)
			}

			for _, run := range []struct {
				name string
				sb   *sandbox.Sandbox
			}{{"on the host", nil}, {"in the sandbox", sb}} {
				if run.name == "in the sandbox" && run.sb == nil {
					continue
				}
				t.Run(run.name, func(t *testing.T) {
					got := dyno(t, run.sb, dir, "hello-serve")
					for _, want := range []string{"hello, dyno\n", "PYTHONUNBUFFERED=true\n", "GUNICORN_CMD_ARGS=--access-logfile -\n", "python=" + minor + "\n"} {
						if !strings.Contains(got, want) {
							t.Errorf("hello-serve printed %q, want %q in it", got, want)
						}
					}
					if !regexp.MustCompile(`(?m)^WEB_CONCURRENCY=[1-9][0-9]*$`).MatchString(got) {
						t.Errorf("hello-serve printed %q, want WEB_CONCURRENCY set", got)
					}
					if got := dyno(t, run.sb, dir, `python -c 'import tinyjson, greeting_lib, django; print(tinyjson.dumps({"b": greeting_lib.greet("x"), "a": django.VERSION[0]}))'`); got != `{"a": 4, "b": "hello, x"}`+"\n" {
						t.Errorf("python -c = %q", got)
					}
					web, _ := res.Procfile.Command("web")
					if got := dyno(t, run.sb, dir, web, "WEB_CONCURRENCY=3"); got != "gunicorn serving mysite.wsgi mysite workers 3 args --access-logfile -\n" {
						t.Errorf("%s = %q", web, got)
					}
				})
			}
		})
	}

	t.Run("DISABLE_COLLECTSTATIC and .python-version", func(t *testing.T) {
		t.Setenv("PIP_INDEX_URL", index)
		files := pythonApp()
		files[".python-version"] = "# the builder's\n" + minor + "\n"
		files["Procfile"] = "web: hello-serve\n"
		c := r.commit(files)
		b := newBuilder(t, nil)
		b.Env = []string{"DISABLE_COLLECTSTATIC=1"}
		var out bytes.Buffer
		res, err := b.Build(context.Background(), slugs.BuildInput{CloneURL: r.url(), Commit: c}, &out)
		if err != nil {
			t.Fatalf("build: %v\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), "-----> Python "+version+" (from .python-version)") || !strings.Contains(out.String(), "Skipping Django collectstatic") {
			t.Errorf("output:\n%s", out.String())
		}
		if res.Procfile.String() != "web: hello-serve\n" {
			t.Errorf("Procfile = %q, want the repository's", res.Procfile.String())
		}
		if _, err := os.Stat(filepath.Join(unpacked(t, b.Store.(*slugs.Store), res.Digest), "staticfiles")); err == nil {
			t.Error("collectstatic ran")
		}
	})
}

// filesContaining lists the files under dir whose bytes contain s.
func filesContaining(t *testing.T, dir, s string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		body, err := os.ReadFile(p)
		if err == nil && bytes.Contains(body, []byte(s)) {
			rel, _ := filepath.Rel(dir, p)
			found = append(found, rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestBuildPythonFailures: what the app must fix fails the build saying
// what and where, before pip runs when drover can tell; what pip refuses
// fails with pip's own words.
func TestBuildPythonFailures(t *testing.T) {
	needPython(t)
	t.Setenv("PIP_INDEX_URL", pythonIndex(t))
	tests := []struct {
		name         string
		files        map[string]string
		err, notOut  string
		pipRan, skip bool
	}{
		{name: "broken requirements line", files: map[string]string{"requirements.txt": "tinyjson==0.3\n\ngunicorn>>21\n"},
			err: `requirements.txt line 3: "gunicorn>>21" is not a requirement pip can read`},
		{name: "a file outside the repository", files: map[string]string{"requirements.txt": "-r /etc/passwd\n"},
			err: "requirements.txt line 1: -r /etc/passwd: the path must be relative", notOut: "root:"},
		{name: "a symlink out of the repository", files: map[string]string{"requirements.txt": "-r other.txt\n", "other.txt": "->/etc/passwd"},
			err: "requirements.txt line 1: -r other.txt: cannot read other.txt in the repository", notOut: "root:"},
		{name: "a package the index lacks", files: map[string]string{"requirements.txt": "tinyjson==0.3\nnosuchthing==1.0\n"},
			err: "No matching distribution found for nosuchthing==1.0", pipRan: true},
		{name: "two package managers", files: map[string]string{"requirements.txt": "tinyjson\n", "uv.lock": ""},
			err: "the app has requirements.txt (pip) and uv.lock (uv)"},
		{name: "Pipfile without its lock", files: map[string]string{"Pipfile": "[packages]\n"},
			err: "the app has a Pipfile and no Pipfile.lock: run `pipenv lock`"},
		{name: "poetry not on the builder", files: map[string]string{"pyproject.toml": "", "poetry.lock": ""},
			err: "the app's poetry.lock calls for poetry, which this builder does not have", skip: onPath("poetry")},
		{name: "a Python the builder lacks", files: map[string]string{"requirements.txt": "tinyjson\n", ".python-version": "3.99\n"},
			err: ".python-version asks for Python 3.99; this builder has Python 3."},
		{name: "a committed .heroku/python", files: map[string]string{"requirements.txt": "tinyjson\n", ".heroku/python": "->/tmp"},
			err: "the repository has a .heroku/python"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.skip {
				t.Skip("the tool is on this builder")
			}
			r := newRepo(t)
			c := r.commit(tt.files)
			b := newBuilder(t, nil)
			var out bytes.Buffer
			_, err := b.Build(context.Background(), slugs.BuildInput{CloneURL: r.url(), Commit: c}, &out)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v\nwant %q\n%s", err, tt.err, out.String())
			}
			if !errors.Is(err, pipelines.ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
			if ran := strings.Contains(out.String(), "-m pip install"); ran != tt.pipRan {
				t.Errorf("pip ran: %v, want %v\n%s", ran, tt.pipRan, out.String())
			}
			if tt.notOut != "" && strings.Contains(out.String()+err.Error(), tt.notOut) {
				t.Errorf("a builder file leaked into the build:\n%s\n%v", out.String(), err)
			}
			assertWorkDirClean(t, b)
		})
	}
}

func onPath(tool string) bool {
	_, err := exec.LookPath(tool)
	return err == nil
}
