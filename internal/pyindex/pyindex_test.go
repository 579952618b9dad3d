package pyindex_test

import (
	"archive/zip"
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover/drover/internal/pyindex"
)

func TestWheel(t *testing.T) {
	w := pyindex.Wheel("Hello.World", "1.2.0", map[string]string{
		"hello_world/__init__.py": "X = 1\n",
		pyindex.EntryPoints:       "[console_scripts]\nhello = hello_world:main\n",
		pyindex.Metadata:          "Requires-Dist: other\n",
	})
	if !bytes.Equal(w, pyindex.Wheel("Hello.World", "1.2.0", map[string]string{
		"hello_world/__init__.py": "X = 1\n",
		pyindex.EntryPoints:       "[console_scripts]\nhello = hello_world:main\n",
		pyindex.Metadata:          "Requires-Dist: other\n",
	})) {
		t.Error("the same wheel twice differs")
	}
	zr, err := zip.NewReader(bytes.NewReader(w), int64(len(w)))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range zr.File {
		rc, _ := f.Open()
		b, _ := io.ReadAll(rc)
		rc.Close()
		got[f.Name] = string(b)
	}
	const di = "hello_world-1.2.0.dist-info/"
	for name, want := range map[string]string{
		"hello_world/__init__.py": "X = 1\n",
		di + "METADATA":           "Metadata-Version: 2.1\nName: Hello.World\nVersion: 1.2.0\nRequires-Dist: other\n",
		di + "entry_points.txt":   "[console_scripts]\nhello = hello_world:main\n",
	} {
		if got[name] != want {
			t.Errorf("%s = %q, want %q", name, got[name], want)
		}
	}
	if !strings.Contains(got[di+"WHEEL"], "Root-Is-Purelib: true") {
		t.Errorf("WHEEL = %q", got[di+"WHEEL"])
	}
	// sha256 of "X = 1\n", urlsafe base64 without padding.
	if !strings.Contains(got[di+"RECORD"], "hello_world/__init__.py,sha256=") || !strings.HasSuffix(got[di+"RECORD"], di+"RECORD,,\n") {
		t.Errorf("RECORD = %q", got[di+"RECORD"])
	}
	if name := pyindex.Filename("Hello.World", "1.2.0"); name != "hello_world-1.2.0-py3-none-any.whl" {
		t.Errorf("Filename = %q", name)
	}
}

func TestServe(t *testing.T) {
	index := pyindex.Serve(t, pyindex.Wheel("Hello_World", "1.0", nil), pyindex.Wheel("hello-world", "2.0", nil))
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(index); code != 200 || !strings.Contains(body, `href="hello-world/"`) {
		t.Fatalf("index: %d %s", code, body)
	}
	// Redirected to the normalized name, which lists both versions.
	code, body := get(index + "Hello_World/")
	if code != 200 || !strings.Contains(body, "hello_world-1.0-py3-none-any.whl#sha256=") || !strings.Contains(body, "hello_world-2.0-py3-none-any.whl#sha256=") {
		t.Fatalf("project page: %d %s", code, body)
	}
	if code, _ := get(index + "nope/"); code != 404 {
		t.Fatalf("unknown project: %d", code)
	}
	if code, body := get(strings.TrimSuffix(index, "simple/") + "files/hello_world-1.0-py3-none-any.whl"); code != 200 || !strings.HasPrefix(body, "PK") {
		t.Fatalf("wheel: %d", code)
	}
}

// TestPipInstallsFromServe: pip really installs a wheel from the index,
// dependency and console script included.
func TestPipInstallsFromServe(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	if err := exec.Command(python, "-m", "pip", "--version").Run(); err != nil {
		t.Skip("python3 has no pip")
	}
	index := pyindex.Serve(t,
		pyindex.Wheel("greet", "1.0", map[string]string{
			"greet/__init__.py": "import dep\ndef main():\n    print('hi from', dep.NAME)\n",
			pyindex.EntryPoints: "[console_scripts]\ngreet = greet:main\n",
			pyindex.Metadata:    "Requires-Dist: dep>=1\n",
		}),
		pyindex.Wheel("dep", "1.1", map[string]string{"dep.py": "NAME = 'dep'\n"}),
	)
	target := t.TempDir()
	cmd := exec.Command(python, "-m", "pip", "install", "--no-input", "--disable-pip-version-check", "--no-cache-dir", "--index-url", index, "--target", target, "greet")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir(), "PIP_BREAK_SYSTEM_PACKAGES=1"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pip install: %v\n%s", err, out)
	}
	run := exec.Command(filepath.Join(target, "bin", "greet"))
	run.Env = []string{"PATH=/usr/bin:/bin", "PYTHONPATH=" + target}
	out, err := run.CombinedOutput()
	if err != nil || string(out) != "hi from dep\n" {
		t.Fatalf("greet: %q, %v", out, err)
	}
	if _, err := os.Stat(filepath.Join(target, "dep-1.1.dist-info", "RECORD")); err != nil {
		t.Fatal(err)
	}
}
