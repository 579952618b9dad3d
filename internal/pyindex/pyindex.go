// Package pyindex makes Python packages and a package index for tests, so
// the Python buildpack is tested end to end on a machine that cannot reach
// PyPI: Wheel writes a pure-Python wheel in Go, Serve serves wheels as a
// PEP 503 simple index from httptest.
package pyindex

import (
	"archive/zip"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// Files of Wheel's files map that are not package files.
const (
	// EntryPoints is the wheel's entry_points.txt, e.g.
	// "[console_scripts]\nhello-serve = hello:main\n".
	EntryPoints = "entry_points.txt"
	// Metadata is added to the wheel's METADATA after Name and Version,
	// e.g. "Requires-Dist: other>=1.0\n".
	Metadata = "METADATA"
)

// Wheel returns a pure-Python wheel (py3-none-any) of the distribution
// name at version, holding files (paths relative to site-packages, such as
// "hello/__init__.py") and its .dist-info: METADATA, WHEEL, RECORD and,
// when files has EntryPoints, entry_points.txt. The same arguments always
// give the same bytes. It panics on a name or version a wheel cannot have.
func Wheel(name, version string, files map[string]string) []byte {
	if !validName.MatchString(name) || !validVersion.MatchString(version) {
		panic(fmt.Sprintf("pyindex: wheel %q %q: not a distribution name and version", name, version))
	}
	distInfo := escape(name) + "-" + version + ".dist-info/"
	contents := map[string]string{
		distInfo + "METADATA": "Metadata-Version: 2.1\nName: " + name + "\nVersion: " + version + "\n" + files[Metadata],
		distInfo + "WHEEL":    "Wheel-Version: 1.0\nGenerator: drover-pyindex\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
	}
	for path, body := range files {
		switch path {
		case Metadata:
		case EntryPoints:
			contents[distInfo+EntryPoints] = body
		default:
			contents[strings.TrimPrefix(path, "/")] = body
		}
	}
	var record strings.Builder
	paths := make([]string, 0, len(contents))
	for p := range contents {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		sum := sha256.Sum256([]byte(contents[p]))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", p, base64.RawURLEncoding.EncodeToString(sum[:]), len(contents[p]))
	}
	fmt.Fprintf(&record, "%sRECORD,,\n", distInfo)
	contents[distInfo+"RECORD"] = record.String()
	paths = append(paths, distInfo+"RECORD")

	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, p := range paths {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: p, Method: zip.Deflate, Modified: epoch})
		if err != nil {
			panic(err)
		}
		w.Write([]byte(contents[p]))
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// epoch is every wheel entry's time: zip cannot say 1970, 1980 is its first.
var epoch = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

var (
	validName    = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9._-]*[a-z0-9])?$`)
	validVersion = regexp.MustCompile(`^[0-9][0-9a-zA-Z.+!]*$`)
	separators   = regexp.MustCompile(`[-_.]+`)
)

// Normalize is a project name as PEP 503 indexes it: lower case, runs of
// "-", "_" and "." as one "-".
func Normalize(name string) string {
	return strings.ToLower(separators.ReplaceAllString(name, "-"))
}

// escape is a name as a wheel's file name spells it (PEP 427).
func escape(name string) string {
	return strings.ToLower(separators.ReplaceAllString(name, "_"))
}

// Filename is the file name of Wheel(name, version, ...).
func Filename(name, version string) string {
	return escape(name) + "-" + version + "-py3-none-any.whl"
}

// Serve serves wheels (as Wheel makes them) as a PEP 503 simple index
// until the test ends, and returns the index's URL, ending in "/simple/",
// for pip's --index-url. Each project page links its files with their
// sha256, as PyPI does. The test fails if a wheel has no readable
// METADATA.
func Serve(tb testing.TB, wheels ...[]byte) string {
	tb.Helper()
	type file struct {
		name string
		body []byte
	}
	projects := map[string][]file{}
	files := map[string][]byte{}
	for _, w := range wheels {
		name, version, err := nameVersion(w)
		if err != nil {
			tb.Fatalf("pyindex: %v", err)
		}
		f := file{Filename(name, version), w}
		projects[Normalize(name)] = append(projects[Normalize(name)], f)
		files[f.name] = w
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /simple/{$}", func(w http.ResponseWriter, r *http.Request) {
		var names []string
		for p := range projects {
			names = append(names, p)
		}
		slices.Sort(names)
		var b strings.Builder
		b.WriteString("<!DOCTYPE html>\n<html><body>\n")
		for _, p := range names {
			fmt.Fprintf(&b, "<a href=\"%s/\">%s</a>\n", p, p)
		}
		b.WriteString("</body></html>\n")
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(b.String()))
	})
	mux.HandleFunc("GET /simple/{project}/{$}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("project")
		if n := Normalize(name); n != name {
			http.Redirect(w, r, "/simple/"+n+"/", http.StatusMovedPermanently)
			return
		}
		fs, ok := projects[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		var b strings.Builder
		fmt.Fprintf(&b, "<!DOCTYPE html>\n<html><head><title>Links for %s</title></head><body>\n", html.EscapeString(name))
		for _, f := range fs {
			sum := sha256.Sum256(f.body)
			fmt.Fprintf(&b, "<a href=\"../../files/%s#sha256=%s\">%s</a>\n", f.name, hex.EncodeToString(sum[:]), f.name)
		}
		b.WriteString("</body></html>\n")
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(b.String()))
	})
	mux.HandleFunc("GET /files/{file}", func(w http.ResponseWriter, r *http.Request) {
		body, ok := files[r.PathValue("file")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(body)
	})
	srv := httptest.NewServer(mux)
	tb.Cleanup(srv.Close)
	return srv.URL + "/simple/"
}

// nameVersion reads a wheel's distribution name and version from its
// METADATA.
func nameVersion(wheel []byte) (string, string, error) {
	zr, err := zip.NewReader(bytes.NewReader(wheel), int64(len(wheel)))
	if err != nil {
		return "", "", fmt.Errorf("wheel: %w", err)
	}
	for _, f := range zr.File {
		dir, base, ok := strings.Cut(f.Name, "/")
		if !ok || base != "METADATA" || !strings.HasSuffix(dir, ".dist-info") {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return "", "", fmt.Errorf("wheel %s: %w", f.Name, err)
		}
		defer rc.Close()
		h, err := textproto.NewReader(bufio.NewReader(rc)).ReadMIMEHeader()
		if err != nil && h == nil {
			return "", "", fmt.Errorf("wheel %s: %w", f.Name, err)
		}
		if h.Get("Name") == "" || h.Get("Version") == "" {
			return "", "", fmt.Errorf("wheel %s: no Name or Version", f.Name)
		}
		return h.Get("Name"), h.Get("Version"), nil
	}
	return "", "", fmt.Errorf("wheel has no .dist-info/METADATA")
}
