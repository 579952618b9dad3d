package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover/drover/api"
	"github.com/drover/drover/internal/pyindex"
	"github.com/drover/drover/pipelines"
)

// flaskApp is a Flask-shaped app: requirements.txt, .python-version, an
// app object and a Procfile naming the WSGI server's console script, as
// Heroku's Python tutorial has (with gunicorn, which the packages below
// stand in for: nothing here can reach PyPI).
var flaskApp = map[string]string{
	"requirements.txt": "# as pip freeze writes it\ntinyflask==1.2.0\ntinyserve==0.3.1\nsignals-lite==1.0\nmarkup-lite==2.1.0\nconfig-lite>=0.9\n",
	".python-version":  "3.11\n",
	"app.py": `import os
from tinyflask import Flask
import signals_lite, markup_lite, config_lite

app = Flask(__name__)

@app.route("/")
def hello():
    return markup_lite.escape("Hello from Flask on " + os.environ.get("DROVER_APP", "?") + " " + os.environ.get("DROVER_RELEASE", "?"))
`,
	"Procfile": "web: tinyserve app:app\n",
}

// flaskIndex serves the app's five packages: a micro web framework, a
// WSGI server with a console script that writes an access log line per
// request to stdout (as gunicorn does with --access-logfile -), and three
// small libraries.
func flaskIndex(t *testing.T) string {
	return pyindex.Serve(t,
		pyindex.Wheel("tinyflask", "1.2.0", map[string]string{
			"tinyflask/__init__.py": `class Flask:
    def __init__(self, name):
        self.routes = {}
    def route(self, path):
        def add(f):
            self.routes[path] = f
            return f
        return add
    def __call__(self, environ, start_response):
        f = self.routes.get(environ.get("PATH_INFO", "/"), self.routes.get("/"))
        body = (f() + "\n").encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
`,
			pyindex.Metadata: "Requires-Dist: signals-lite\n",
		}),
		pyindex.Wheel("tinyserve", "0.3.1", map[string]string{
			"tinyserve/__init__.py": `import importlib, os, sys
from wsgiref.simple_server import make_server, WSGIRequestHandler

class AccessLog(WSGIRequestHandler):
    def log_message(self, format, *args):
        # To stdout, like gunicorn's --access-logfile -.
        print('%s - - "%s" %s' % (self.client_address[0], self.requestline, args[1]), flush=True)

def main():
    module, name = sys.argv[1].split(":")
    sys.path.insert(0, os.getcwd())
    app = getattr(importlib.import_module(module), name)
    port = int(os.environ["PORT"])
    print("tinyserve listening on", port, "workers", os.environ.get("WEB_CONCURRENCY"), flush=True)
    make_server("127.0.0.1", port, app, handler_class=AccessLog).serve_forever()
`,
			pyindex.EntryPoints: "[console_scripts]\ntinyserve = tinyserve:main\n",
		}),
		pyindex.Wheel("signals-lite", "1.0", map[string]string{"signals_lite/__init__.py": "SIGNALS = []\n"}),
		pyindex.Wheel("markup-lite", "2.1.0", map[string]string{"markup_lite/__init__.py": "import html\ndef escape(s):\n    return html.escape(s)\n"}),
		pyindex.Wheel("config-lite", "0.9.4", map[string]string{"config_lite/__init__.py": "VERSION = '0.9.4'\n"}),
	)
}

// TestE2EPythonApp: the dev stack builds a Flask-shaped app with
// Heroku's Python buildpack from a local package index, and runs it in
// both regions; `drover logs --tail` shows its access lines as they are
// written, `drover run` runs Python from the slug with the command's exit
// code, and `drover ps` shows web.1 up on the release.
func TestE2EPythonApp(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts the dev stack and builds apps; skipped by -short")
	}
	if err := exec.Command("/usr/bin/python3", "-m", "pip", "--version").Run(); err != nil {
		t.Skip("no /usr/bin/python3 with pip (Debian: apt-get install python3 python3-pip), which the Python buildpack builds with; .ci/run installs them")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	t.Setenv(secretEnv, "e2e-secret")
	// The builder's standard pip settings name the index.
	t.Setenv("PIP_INDEX_URL", flaskIndex(t))
	repo := newGitRepo(t)
	for name, body := range flaskApp {
		if err := os.WriteFile(filepath.Join(repo.dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	repo.git("add", "-A")
	repo.git("commit", "-q", "-m", "flask app")
	commit := repo.git("rev-parse", "HEAD")

	config, data := writeConfig(t, repo.dir), t.TempDir()
	d, s := startDev(t, ctx, config, data)
	defer d.Close()
	pushed := time.Now()
	if code, body := s.push(ctx, "py-1", pushPayload(t, repo.dir, commit)); code != http.StatusAccepted {
		t.Fatalf("push: %d %s", code, body)
	}
	v1 := s.waitRelease(ctx, "hello-staging", 1)
	if v1.Status != pipelines.ReleaseSucceeded {
		t.Fatalf("v1 = %s: %s", v1.Status, v1.Reason)
	}
	t.Logf("push to running in 2 regions: %v", time.Since(pushed).Round(time.Millisecond))
	var build struct {
		Output string `json:"output"`
	}
	if err := s.get(ctx, "/api/v1/apps/hello-staging/releases/v1/build", &build); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"-----> Python app detected", "-----> Installing requirements with pip", "Successfully installed"} {
		if !strings.Contains(build.Output, want) {
			t.Errorf("build output lacks %q:\n%s", want, build.Output)
		}
	}
	s.answersEverywhere(ctx, "hello-staging", 2, "Hello from Flask on hello-staging v1")

	t.Setenv("DROVER_URL", "")
	t.Setenv("DROVER_TOKEN", "")
	var info api.AppInfo
	if err := s.get(ctx, "/api/v1/apps/hello-staging", &info); err != nil {
		t.Fatal(err)
	}
	checkLogs(t, ctx, info.Where[0].URL, "v1", func(path string) string { return ` app[web.1]: 127.0.0.1 - - "GET ` + path + ` HTTP/1.1" 200` })

	var out, errOut bytes.Buffer
	code := Run(ctx, []string{"run", "hello-staging", "--", `python -c 'import tinyflask, config_lite, os; print("python run", config_lite.VERSION, os.environ["PYTHONUNBUFFERED"]); raise SystemExit(3)'`},
		Streams{In: strings.NewReader(""), Out: &out, Err: &errOut})
	if code != 3 || out.String() != "python run 0.9.4 true\n" {
		t.Fatalf("drover run: exit %d, out %q, err %q; want exit 3", code, out.String(), errOut.String())
	}

	ps := psWebUp(t, ctx, "hello-staging", 1)
	if len(ps.Runs) != 1 || ps.Runs[0].ExitCode == nil || *ps.Runs[0].ExitCode != 3 {
		t.Fatalf("ps runs = %+v, want the run that exited 3", ps.Runs)
	}
}
