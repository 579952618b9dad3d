package slugs

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/sandbox"
)

// The Python buildpack, by Heroku's Python buildpack's rules, on the
// builder's own interpreters rather than Heroku's downloaded ones.
//
// Dependencies go into the slug's .heroku/python as a Python "user base"
// (pip install --user with PYTHONUSERBASE): site-packages under
// lib/pythonX.Y, console scripts under bin. Nothing there names the path
// the slug was built at: pip's RECORD files are relative, bytecode is
// compiled from relative paths with hashes rather than times (Pack's fixed
// times would make time-stamped .pyc files stale), and console scripts
// start with `#!/usr/bin/env pythonX.Y`. So the slug runs wherever a
// Python X.Y is on PATH, at whatever path it is unpacked: the profile
// script sets PYTHONUSERBASE from $HOME at run time. A user base, unlike
// PYTHONPATH, is a real site dir: its .pth files work, and it comes after
// the standard library, so a backport package cannot shadow it.

// pythonManagers are the files that say how a Python app's dependencies
// are installed, in Heroku's order, and the tool each needs.
var pythonManagers = []struct {
	file, manager string
	// export writes the lock file as a pinned requirements file on
	// stdout, which pip then installs; nil for pip's own requirements.txt.
	export []string
}{
	{"requirements.txt", "pip", nil},
	{"Pipfile.lock", "pipenv", []string{"pipenv", "requirements", "--hash"}},
	{"poetry.lock", "poetry", []string{"poetry", "export", "--format", "requirements.txt"}},
	{"uv.lock", "uv", []string{"uv", "export", "--frozen", "--no-dev", "--no-editable", "--format", "requirements-txt"}},
}

// pythonFiles are the files that make a repository a Python app
// (Detect), whether or not they are enough to build it.
var pythonFiles = []string{"requirements.txt", "Pipfile.lock", "poetry.lock", "uv.lock", "Pipfile", "pyproject.toml", "setup.py"}

// pythonInterpreter is one Python on the builder.
type pythonInterpreter struct {
	// Version is platform.python_version(), e.g. "3.11.2".
	Version string
	// Path is where it was found, e.g. /usr/bin/python3.11.
	Path string
	// Executable is the interpreter itself, sys.executable, which builds
	// run (Path may be a shim, such as pyenv's).
	Executable string
	// Prefix is sys.base_prefix, the tree its standard library is in.
	Prefix string
	// Pip reports that it can import pip.
	Pip bool
	// Unusable says why a build cannot use it ("" if it can).
	Unusable string
}

// minor is "3.11" of "3.11.2".
func (p pythonInterpreter) minor() string {
	parts := strings.SplitN(p.Version, ".", 3)
	if len(parts) < 2 {
		return p.Version
	}
	return parts[0] + "." + parts[1]
}

// pythonBuild is what a Python app asks of the build.
type pythonBuild struct {
	// Manager is pip, pipenv, poetry or uv.
	Manager string
	// LockFile is the file that chose it.
	LockFile string
	// Export writes the lock file as requirements on stdout (nil for pip).
	Export []string
	// Requested is the version the app asks for ("3.12", "3.12.4"; ""
	// when it asks for none), and From the file that says so.
	Requested, From string
	// Python is the interpreter that builds and runs it.
	Python pythonInterpreter
}

// planPythonBuild reads the app's files in fsys (the checkout, through an
// os.Root, so no symlink leads out of it) and picks, by Heroku's
// rules: the one package manager (two fail, naming both files; a Pipfile
// without Pipfile.lock, or a pyproject.toml or setup.py with no lock or
// requirements file, fail saying what to add), which must be on the builder
// (onBuilder reports a tool on PATH); and the Python from .python-version,
// else runtime.txt, else the newest of have, which must have a match (the
// build fails naming the version asked for and those the builder has). A
// requirements.txt line pip cannot read, or that points pip at files
// outside the repository, fails naming the file and line. Every error
// matches pipelines.ErrInvalid.
func planPythonBuild(fsys fs.FS, have []pythonInterpreter, onBuilder func(string) bool) (pythonBuild, error) {
	has := func(name string) bool {
		_, err := fs.Stat(fsys, name)
		return !errors.Is(err, fs.ErrNotExist)
	}
	var plan pythonBuild
	var found []string
	for _, m := range pythonManagers {
		if has(m.file) {
			found = append(found, m.file+" ("+m.manager+")")
			plan.Manager, plan.LockFile, plan.Export = m.manager, m.file, m.export
		}
	}
	if has("Pipfile") && !has("Pipfile.lock") {
		if len(found) > 0 {
			found = append(found, "Pipfile (pipenv)")
		} else {
			return plan, fmt.Errorf("the app has a Pipfile and no Pipfile.lock: run `pipenv lock` and commit Pipfile.lock, which says exactly what to install: %w", pipelines.ErrInvalid)
		}
	}
	switch {
	case len(found) > 1:
		return plan, fmt.Errorf("the app has %s: one package manager installs its dependencies; delete the others' files: %w",
			strings.Join(found, " and "), pipelines.ErrInvalid)
	case len(found) == 0:
		var what []string
		for _, f := range []string{"pyproject.toml", "setup.py"} {
			if has(f) {
				what = append(what, f)
			}
		}
		return plan, fmt.Errorf("the app has %s but nothing that says what to install: add a requirements.txt (a line `.` installs the app itself), or commit the lock file of uv (uv.lock), Poetry (poetry.lock) or pipenv (Pipfile.lock): %w",
			cmp.Or(strings.Join(what, " and "), "no Python package files"), pipelines.ErrInvalid)
	}
	if plan.Export != nil && !onBuilder(plan.Manager) {
		return plan, fmt.Errorf("the app's %s calls for %s, which this builder does not have: install %s on drover's builder, or replace %s with a requirements.txt (`%s > requirements.txt` writes one): %w",
			plan.LockFile, plan.Manager, plan.Manager, plan.LockFile, strings.Join(plan.Export, " "), pipelines.ErrInvalid)
	}

	var err error
	if plan.Requested, plan.From, err = requestedPython(fsys); err != nil {
		return plan, err
	}
	if plan.Python, err = choosePython(plan.Requested, plan.From, have); err != nil {
		return plan, err
	}
	if !plan.Python.Pip {
		return plan, fmt.Errorf("Python %s (%s) on this builder has no pip: install it on drover's builder (Debian/Ubuntu: apt-get install python3-pip): %w",
			plan.Python.Version, plan.Python.Path, pipelines.ErrInvalid)
	}
	if plan.Manager == "pip" {
		if err := checkRequirements(fsys, "requirements.txt"); err != nil {
			return plan, err
		}
	}
	return plan, nil
}

var (
	pythonVersionRe = regexp.MustCompile(`^3\.[0-9]+(\.[0-9]+)?$`)
	runtimeTxtRe    = regexp.MustCompile(`^python-(3\.[0-9]+(\.[0-9]+)?)$`)
)

// requestedPython is the version .python-version (its first line that is
// not blank or a comment), else runtime.txt, asks for; "" if neither.
func requestedPython(fsys fs.FS) (version, from string, err error) {
	if b, err := fs.ReadFile(fsys, ".python-version"); err == nil {
		for line := range strings.Lines(string(b)) {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if !pythonVersionRe.MatchString(line) {
				return "", "", fmt.Errorf(".python-version asks for %q: want a Python 3 version like 3.12 (the newest 3.12 the builder has) or 3.12.4: %w", line, pipelines.ErrInvalid)
			}
			return line, ".python-version", nil
		}
		return "", "", fmt.Errorf(".python-version names no version: write one like 3.12, or delete the file: %w", pipelines.ErrInvalid)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", "", fmt.Errorf("read .python-version: %v: %w", err, pipelines.ErrInvalid)
	}
	if b, err := fs.ReadFile(fsys, "runtime.txt"); err == nil {
		s := strings.TrimSpace(string(b))
		m := runtimeTxtRe.FindStringSubmatch(s)
		if m == nil {
			return "", "", fmt.Errorf("runtime.txt asks for %q: want a line like python-3.12.4 (or replace runtime.txt with a .python-version saying 3.12): %w", s, pipelines.ErrInvalid)
		}
		return m[1], "runtime.txt", nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", "", fmt.Errorf("read runtime.txt: %v: %w", err, pipelines.ErrInvalid)
	}
	return "", "", nil
}

// choosePython picks the newest usable interpreter of have matching
// version: "3.12" is any 3.12, "3.12.4" that one, "" any.
func choosePython(version, from string, have []pythonInterpreter) (pythonInterpreter, error) {
	var usable, unusable []pythonInterpreter
	for _, p := range have {
		if p.Unusable != "" {
			unusable = append(unusable, p)
		} else {
			usable = append(usable, p)
		}
	}
	// Newest first; of one version, the first found (system dirs first)
	// and one with pip.
	slices.SortStableFunc(usable, func(a, b pythonInterpreter) int {
		if c := compareVersions(b.Version, a.Version); c != 0 {
			return c
		}
		if a.Pip != b.Pip {
			if a.Pip {
				return -1
			}
			return 1
		}
		return 0
	})
	for _, p := range usable {
		if version == "" || p.Version == version || p.minor() == version {
			return p, nil
		}
	}
	var versions []string
	for _, p := range usable {
		versions = append(versions, p.Version+" ("+p.Path+")")
	}
	builderHas := "this builder has no Python 3 (python3.X in /usr/local/bin, /usr/bin or on PATH)"
	if len(versions) > 0 {
		builderHas = "this builder has Python " + strings.Join(versions, ", ")
	}
	for _, p := range unusable {
		builderHas += fmt.Sprintf("; Python %s (%s) is there but %s", p.Version, p.Path, p.Unusable)
	}
	if version == "" {
		return pythonInterpreter{}, fmt.Errorf("%s: install one on drover's builder (Debian/Ubuntu: apt-get install python3 python3-pip): %w", builderHas, pipelines.ErrInvalid)
	}
	hint := ""
	if v := strings.Split(version, "."); len(v) == 3 {
		hint = fmt.Sprintf(" (%s alone takes any %s)", v[0]+"."+v[1], v[0]+"."+v[1])
	}
	return pythonInterpreter{}, fmt.Errorf("%s asks for Python %s; %s: change %s to a version the builder has%s, or install Python %s on drover's builder: %w",
		from, version, builderHas, from, hint, version, pipelines.ErrInvalid)
}

// compareVersions orders "3.11.2" and "3.12.0rc1" by their numbers.
func compareVersions(a, b string) int {
	num := func(v string) []int {
		var out []int
		for _, part := range strings.Split(v, ".") {
			end := 0
			for end < len(part) && part[end] >= '0' && part[end] <= '9' {
				end++
			}
			n, _ := strconv.Atoi(part[:end])
			out = append(out, n)
		}
		return out
	}
	return slices.Compare(num(a), num(b))
}

// requirementsError is a requirements file line pip would refuse, or that
// would show pip files outside the repository.
type requirementsError struct {
	File string
	Line int
	Msg  string
}

func (e *requirementsError) Error() string {
	return fmt.Sprintf("%s line %d: %s", e.File, e.Line, e.Msg)
}

// Unwrap makes a requirements error a pipelines.ErrInvalid: the app must change.
func (e *requirementsError) Unwrap() error { return pipelines.ErrInvalid }

// maxRequirementsDepth bounds -r files naming -r files.
const maxRequirementsDepth = 10

// checkRequirements reads the pip requirements file name (a path in the
// repository) and the files its -r and -c lines name, and returns a
// *requirementsError for the first line pip cannot read or that names a
// file outside the repository: an absolute path, "..", a file: URL or a
// variable in a file reference, or an editable (-e) install, which would
// record the build's path in the slug.
func checkRequirements(fsys fs.FS, name string) error {
	err := checkRequirementsFile(fsys, name, nil)
	var re *requirementsError
	if err != nil && !errors.As(err, &re) {
		// A symlink out of the repository, say.
		return fmt.Errorf("%s: cannot read it in the repository (%v): %w", name, pathError(err), pipelines.ErrInvalid)
	}
	return err
}

func checkRequirementsFile(fsys fs.FS, name string, stack []string) error {
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return err
	}
	stack = append(stack, name)
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		n := i + 1
		line := strings.TrimSuffix(lines[i], "\r")
		// pip joins a line ending in a backslash with the next.
		for strings.HasSuffix(line, `\`) && i+1 < len(lines) {
			i++
			line = strings.TrimSuffix(line, `\`) + strings.TrimSuffix(lines[i], "\r")
		}
		line = strings.TrimSpace(stripRequirementsComment(line))
		if line == "" {
			continue
		}
		if err := checkRequirementsLine(fsys, name, line, stack); err != nil {
			var re *requirementsError
			if errors.As(err, &re) {
				return err // a file it includes, naming its own line
			}
			return &requirementsError{File: name, Line: n, Msg: err.Error()}
		}
	}
	return nil
}

// stripRequirementsComment drops a comment as pip does: from a # at the
// start of the line or after whitespace (a URL's #egg= stays).
func stripRequirementsComment(line string) string {
	for i := 0; i < len(line); i++ {
		if line[i] == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
			return line[:i]
		}
	}
	return line
}

// requirementsOption is what a requirements file option takes.
type requirementsOption int

const (
	optFlag     requirementsOption = iota // no value
	optValue                              // a value pip does not read as a file
	optFile                               // -r, -c: a requirements file
	optIndex                              // an index URL
	optLinks                              // -f: a URL or a dir of the repository
	optEditable                           // -e
)

// requirementsOptions are the options pip reads at the start of a line,
// spelled in full: pip takes abbreviations (--requ for --requirement),
// which are refused here, so no spelling of a file option goes unchecked.
var requirementsOptions = map[string]requirementsOption{
	"-r": optFile, "--requirement": optFile, "-c": optFile, "--constraint": optFile,
	"-e": optEditable, "--editable": optEditable,
	"-i": optIndex, "--index-url": optIndex, "--extra-index-url": optIndex,
	"-f": optLinks, "--find-links": optLinks,
	"--no-index": optFlag, "--pre": optFlag, "--prefer-binary": optFlag, "--require-hashes": optFlag,
	"--trusted-host": optValue, "--no-binary": optValue, "--only-binary": optValue, "--use-feature": optValue,
}

// requirementOptions are the options pip reads after a requirement.
var requirementOptions = map[string]requirementsOption{
	"--hash": optValue, "--config-settings": optValue, "-C": optValue, "--global-option": optValue,
}

var (
	requirementRe = regexp.MustCompile(`^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(\[[^\]]*\])?\s*(.*)$`)
	extraRe       = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$`)
	specifierRe   = regexp.MustCompile(`^(~=|===|==|!=|<=|>=|<|>)\s*([A-Za-z0-9][A-Za-z0-9.*+!_-]*)$`)
	urlSchemeRe   = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*):`)
	hashRe        = regexp.MustCompile(`^(sha256|sha384|sha512|sha224|sha1|md5):[0-9a-fA-F]+$`)
)

// checkRequirementsLine checks one logical line of the requirements file
// name; its errors say what is wrong with the line.
func checkRequirementsLine(fsys fs.FS, name, line string, stack []string) error {
	fields := strings.Fields(line)
	opts := requirementOptions
	if !strings.HasPrefix(fields[0], "-") {
		// A requirement, then the options that apply to it.
		i := slices.IndexFunc(fields, func(f string) bool { return strings.HasPrefix(f, "-") })
		if i < 0 {
			i = len(fields)
		}
		if err := checkRequirement(fsys, strings.Join(fields[:i], " ")); err != nil {
			return err
		}
		fields = fields[i:]
	} else {
		opts = requirementsOptions
	}
	for len(fields) > 0 {
		opt, value, attached := fields[0], "", false
		if strings.HasPrefix(opt, "--") {
			if k, v, ok := strings.Cut(opt, "="); ok {
				opt, value, attached = k, v, true
			}
		} else if len(opt) > 2 {
			opt, value, attached = opt[:2], opt[2:], true
		}
		fields = fields[1:]
		kind, ok := opts[opt]
		if !ok {
			if _, other := requirementsOptions[opt]; other {
				return fmt.Errorf("%s must start its own line", opt)
			}
			return fmt.Errorf("%s is not an option pip reads in a requirements file", opt)
		}
		if kind == optFlag {
			if attached {
				return fmt.Errorf("%s takes no value", opt)
			}
			continue
		}
		if !attached {
			if len(fields) == 0 || strings.HasPrefix(fields[0], "-") {
				return fmt.Errorf("%s needs a value", opt)
			}
			value, fields = fields[0], fields[1:]
		}
		if value == "" {
			return fmt.Errorf("%s needs a value", opt)
		}
		if err := checkOptionValue(fsys, name, opt, kind, value, stack); err != nil {
			return err
		}
	}
	return nil
}

func checkOptionValue(fsys fs.FS, name, opt string, kind requirementsOption, value string, stack []string) error {
	switch kind {
	case optEditable:
		return fmt.Errorf("%s %s: editable installs are not supported: pip records the build's own path for them, and the slug runs elsewhere; list the requirement without %s", opt, value, opt)
	case optIndex:
		if !isHTTPURL(value) {
			return fmt.Errorf("%s %s: want an http(s) URL of a package index", opt, value)
		}
	case optLinks:
		if isHTTPURL(value) {
			return nil
		}
		// pip takes the dir beside the requirements file when there is
		// one, else the one in the working dir: both must be in the tree.
		for _, base := range []string{path.Dir(name), "."} {
			p, err := repoPath(base, value)
			if err != nil {
				return fmt.Errorf("%s %s: %v", opt, value, err)
			}
			if _, err := fs.Stat(fsys, p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%s %s: cannot read %s in the repository (%v)", opt, value, p, pathError(err))
			}
		}
	case optFile:
		if isHTTPURL(value) {
			return nil
		}
		p, err := repoPath(path.Dir(name), value)
		if err != nil {
			return fmt.Errorf("%s %s: %v", opt, value, err)
		}
		if slices.Contains(stack, p) {
			return fmt.Errorf("%s %s: %s includes itself", opt, value, p)
		}
		if len(stack) >= maxRequirementsDepth {
			return fmt.Errorf("%s %s: requirements files nest more than %d deep", opt, value, maxRequirementsDepth)
		}
		if err := checkRequirementsFile(fsys, p, stack); err != nil {
			var re *requirementsError
			if errors.As(err, &re) {
				return err
			}
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%s %s: the repository has no %s", opt, value, p)
			}
			return fmt.Errorf("%s %s: cannot read %s in the repository (%v)", opt, value, p, pathError(err))
		}
	case optValue:
		if opt == "--hash" && !hashRe.MatchString(value) {
			return fmt.Errorf("--hash %s: want algorithm:hex, like sha256:<64 hex digits>", value)
		}
	}
	return nil
}

// checkRequirement checks a requirement: a PEP 508 name with versions,
// extras and markers, a URL, or a path in the repository.
func checkRequirement(fsys fs.FS, req string) error {
	if m := urlSchemeRe.FindStringSubmatch(req); m != nil && len(m[1]) > 1 {
		return checkRequirementURL(req)
	}
	m := requirementRe.FindStringSubmatch(req)
	if m != nil && strings.HasPrefix(strings.TrimSpace(m[3]), "@") {
		url := strings.TrimSpace(strings.TrimSpace(m[3])[1:])
		if i := strings.Index(url, " ;"); i >= 0 {
			url = strings.TrimSpace(url[:i])
		}
		if url == "" {
			return fmt.Errorf("%q is not a requirement pip can read (nothing after @)", req)
		}
		return checkRequirementURL(url)
	}
	if isLocalPath(req) {
		// pip reads a path from its working dir, the repository's root,
		// after dropping markers and extras.
		file, _, _ := strings.Cut(req, ";")
		file = strings.TrimSpace(file)
		if i := strings.LastIndex(file, "["); i > 0 && strings.HasSuffix(file, "]") {
			file = file[:i]
		}
		p, err := repoPath(".", file)
		if err != nil {
			return fmt.Errorf("%q: %v", req, err)
		}
		if _, err := fs.Stat(fsys, p); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%q: the repository has no %s", req, p)
		} else if err != nil {
			return fmt.Errorf("%q: cannot read %s in the repository (%v)", req, p, pathError(err))
		}
		return nil
	}
	bad := func(why string) error {
		return fmt.Errorf("%q is not a requirement pip can read (%s); want a project name and optional versions, like flask==3.0.2 or \"flask>=3,<4\"", req, why)
	}
	if m == nil {
		return bad("it does not start with a project name")
	}
	if extras := m[2]; extras != "" {
		for _, e := range strings.Split(strings.Trim(extras, "[]"), ",") {
			if e = strings.TrimSpace(e); e != "" && !extraRe.MatchString(e) {
				return bad(fmt.Sprintf("extra %q", e))
			}
		}
	}
	rest := strings.TrimSpace(m[3])
	spec, marker, hasMarker := strings.Cut(rest, ";")
	if hasMarker && strings.TrimSpace(marker) == "" {
		return bad("nothing after ;")
	}
	spec = strings.TrimSpace(spec)
	if strings.HasPrefix(spec, "(") && strings.HasSuffix(spec, ")") {
		spec = strings.TrimSpace(spec[1 : len(spec)-1])
	}
	if spec == "" {
		return nil
	}
	for _, clause := range strings.Split(spec, ",") {
		clause = strings.TrimSpace(clause)
		if !specifierRe.MatchString(clause) {
			if clause == "" {
				return bad("an empty version")
			}
			return bad(fmt.Sprintf("version %q", clause))
		}
	}
	return nil
}

// checkRequirementURL refuses file: URLs, which could name any file on
// the builder; a file of the repository is named by its relative path.
func checkRequirementURL(url string) error {
	m := urlSchemeRe.FindStringSubmatch(url)
	if m == nil {
		return fmt.Errorf("%q: want a URL with a scheme, like https://", url)
	}
	if scheme := strings.ToLower(m[1]); scheme == "file" || strings.HasSuffix(scheme, "+file") {
		return fmt.Errorf("%q: file: URLs are not allowed, they can name files outside the repository; name a file of the repository by its relative path, like ./vendor/pkg.whl", url)
	}
	return nil
}

func isHTTPURL(s string) bool {
	return strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://")
}

// isLocalPath reports whether pip reads req as a path rather than a
// project name.
func isLocalPath(req string) bool {
	if strings.ContainsAny(req, `/\`) || strings.HasPrefix(req, ".") || strings.HasPrefix(req, "~") {
		return true
	}
	for _, ext := range []string{".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tar"} {
		if strings.HasSuffix(strings.ToLower(req), ext) {
			return true
		}
	}
	return false
}

// repoPath resolves ref, relative to the repository's dir base, to a path
// in the repository, refusing one that could lead out of it.
func repoPath(base, ref string) (string, error) {
	switch {
	case strings.ContainsAny(ref, `"'\`):
		return "", errors.New("quotes and backslashes are not supported in a file reference")
	case strings.Contains(ref, "$"):
		return "", errors.New("a file reference may not use variables, which could lead outside the repository")
	case strings.HasPrefix(ref, "~") || path.IsAbs(ref) || filepath.IsAbs(ref):
		return "", errors.New("the path must be relative, to a file in the repository")
	case urlSchemeRe.MatchString(ref) && len(urlSchemeRe.FindStringSubmatch(ref)[1]) > 1:
		return "", errors.New("want an http(s) URL or a path in the repository")
	}
	p := path.Clean(path.Join(base, ref))
	if p == ".." || strings.HasPrefix(p, "../") || path.IsAbs(p) {
		return "", errors.New("the path leads outside the repository")
	}
	return p, nil
}

// pathError drops the builder's own paths from an os.Root error.
func pathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// pythonSearchDirs are where the builder's interpreters are looked for:
// the system's dirs first, which every run host has and the sandbox
// shows, then PATH's.
func pythonSearchDirs() []string {
	dirs := []string{"/usr/local/bin", "/usr/bin", "/bin"}
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		if filepath.IsAbs(d) && !slices.Contains(dirs, filepath.Clean(d)) {
			dirs = append(dirs, filepath.Clean(d))
		}
	}
	return dirs
}

var (
	pythonBinRe     = regexp.MustCompile(`^python3\.[0-9]+$`)
	pythonReleaseRe = regexp.MustCompile(`^3\.[0-9]+\.[0-9]+`) // 3.13.0rc1 too
)

// pythonInterpreters are the builder's Pythons, probed once per process.
var pythonInterpreters = sync.OnceValue(func() []pythonInterpreter {
	return findPythons(pythonSearchDirs())
})

// findPythons runs each python3.X in dirs (once per real file) and says
// what it is. An interpreter that other users cannot reach (pyenv's under
// a 0700 /root) is kept, marked unusable, so a failed build can say so:
// sandboxed builds run as nobody, and so do apps in local regions.
func findPythons(dirs []string) []pythonInterpreter {
	var out []pythonInterpreter
	seen := map[string]bool{}
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		// A file before the links to it, so it is found by its own name.
		slices.SortStableFunc(entries, func(a, b fs.DirEntry) int {
			return cmp.Compare(a.Type()&fs.ModeSymlink, b.Type()&fs.ModeSymlink)
		})
		for _, e := range entries {
			if !pythonBinRe.MatchString(e.Name()) {
				continue
			}
			p := filepath.Join(dir, e.Name())
			real, err := filepath.EvalSymlinks(p)
			if err != nil || seen[real] {
				continue
			}
			seen[real] = true
			if py, ok := probePython(p); ok {
				if exe, err := filepath.EvalSymlinks(py.exe); err == nil && seen[exe] && exe != real {
					continue // a shim or wrapper of one already found
				} else if err == nil {
					seen[exe] = true
				}
				out = append(out, py.pythonInterpreter)
			}
		}
	}
	return out
}

type probed struct {
	pythonInterpreter
	exe string
}

const pythonProbe = `import importlib.util, platform, sys
print(platform.python_version())
print(sys.executable)
print(sys.base_prefix)
print(importlib.util.find_spec("pip") is not None)`

func probePython(p string) (probed, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, p, "-I", "-c", pythonProbe)
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	out, err := cmd.Output()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err != nil || len(lines) != 4 || !pythonReleaseRe.MatchString(lines[0]) || !filepath.IsAbs(lines[1]) {
		return probed{}, false
	}
	py := probed{exe: lines[1], pythonInterpreter: pythonInterpreter{Version: lines[0], Path: p, Executable: lines[1], Prefix: lines[2], Pip: lines[3] == "True"}}
	for _, need := range []string{lines[1], lines[2]} {
		if !reachableByAll(need) {
			py.Unusable = fmt.Sprintf("other users cannot reach %s (sandboxed builds and apps run as nobody)", need)
			break
		}
	}
	return py, true
}

// reachableByAll reports whether every user may reach p: each dir on the
// way searchable by others, and p itself readable (a dir) or executable.
func reachableByAll(p string) bool {
	real, err := filepath.EvalSymlinks(p)
	if err != nil || !filepath.IsAbs(real) {
		return false
	}
	fi, err := os.Stat(real)
	if err != nil || fi.Mode().Perm()&0o001 == 0 {
		return false
	}
	for d := filepath.Dir(real); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == "/" {
			return true
		}
	}
}

// The slug's files the Python buildpack writes, relative to the app dir.
const (
	pythonUserBase    = ".heroku/python"
	pythonLockExport  = pythonUserBase + "/requirements-lock.txt"
	pythonProfileName = ".profile.d/000-drover-python.sh"
)

// pythonProfile is the slug's .profile.d script for Python X.Y: its user
// base and bin on the paths, and Heroku's run-time defaults, each of which
// the app's config overrides. WEB_CONCURRENCY is Heroku's (its Python
// buildpack's vendor/WEB_CONCURRENCY.sh): the smaller of 2 × cores + 1 and
// one process per 256 MB of the memory limit, at least 1. Heroku reads
// the cgroup limit; so does this (v2, then v1), else the machine's memory,
// since under bwrap there is no /sys.
func pythonProfile(minor string) string {
	return `# Written by drover's Python buildpack: the app's dependencies, installed
# in the slug as a Python ` + minor + ` user base, and Heroku's defaults.
PYTHONUSERBASE="$HOME/` + pythonUserBase + `"
PATH="$PYTHONUSERBASE/bin:$PATH"
export PYTHONUSERBASE PATH
export PYTHONUNBUFFERED="${PYTHONUNBUFFERED:-true}"
export GUNICORN_CMD_ARGS="${GUNICORN_CMD_ARGS:---access-logfile -}"
if [ -z "${WEB_CONCURRENCY+set}" ]; then
	drover_mem=""
	drover_cg=""
	if [ -r /proc/self/cgroup ]; then
		while IFS=: read -r drover_id drover_ctl drover_path; do
			if [ "$drover_id" = 0 ] && [ -z "$drover_ctl" ]; then drover_cg=$drover_path; fi
		done < /proc/self/cgroup
	fi
	for drover_f in "/sys/fs/cgroup${drover_cg%/}/memory.max" /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes; do
		if [ -z "$drover_mem" ] && [ -r "$drover_f" ]; then
			read -r drover_v < "$drover_f" || drover_v=""
			case "$drover_v" in
			"" | *[!0-9]*) ;;
			*) drover_v=$((drover_v / 1048576))
				# cgroup v1 says thousands of TB when there is no limit.
				if [ "$drover_v" -le 1048576 ]; then drover_mem=$drover_v; fi ;;
			esac
		fi
	done
	if [ -r /proc/meminfo ]; then
		while read -r drover_k drover_v drover_unit; do
			if [ "$drover_k" = MemTotal: ]; then
				drover_v=$((drover_v / 1024))
				if [ -z "$drover_mem" ] || [ "$drover_v" -lt "$drover_mem" ]; then drover_mem=$drover_v; fi
			fi
		done < /proc/meminfo
	fi
	drover_cores=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
	case "$drover_cores" in "" | *[!0-9]*) drover_cores=1 ;; esac
	WEB_CONCURRENCY=$((drover_cores * 2 + 1))
	if [ -n "$drover_mem" ]; then
		drover_v=$((drover_mem / 256))
		if [ "$drover_v" -lt 1 ]; then drover_v=1; fi
		if [ "$drover_v" -lt "$WEB_CONCURRENCY" ]; then WEB_CONCURRENCY=$drover_v; fi
	fi
	export WEB_CONCURRENCY
	unset drover_mem drover_cg drover_id drover_ctl drover_path drover_f drover_v drover_k drover_unit drover_cores
fi
`
}

// compilePython is the Python buildpack's compile: it installs the app's
// dependencies into the slug (plan says how), compiles their bytecode,
// runs Django's collectstatic, and writes the profile script. It returns
// the default Procfile: gunicorn serving a Django project's wsgi module
// when there is exactly one and gunicorn is installed, else none.
func (b *Builder) compilePython(ctx context.Context, dir string, out io.Writer) (string, error) {
	fmt.Fprintln(out, "-----> Python app detected")
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", fmt.Errorf("open checkout: %w", err)
	}
	defer root.Close()
	fsys := root.FS()
	onBuilder := func(tool string) bool { _, err := exec.LookPath(tool); return err == nil }
	plan, err := planPythonBuild(fsys, pythonInterpreters(), onBuilder)
	if err != nil {
		return "", err
	}
	py := plan.Python
	if plan.Requested != "" {
		fmt.Fprintf(out, "-----> Python %s (from %s)\n", py.Version, plan.From)
	} else {
		fmt.Fprintf(out, "-----> Python %s (the builder's newest; pin a version in .python-version)\n", py.Version)
	}
	// The dir the buildpack owns: a repository's own .heroku/python (a
	// symlink out of the tree, say) would have pip write where it points.
	if fi, err := os.Lstat(filepath.Join(dir, ".heroku")); err == nil && !fi.IsDir() {
		return "", fmt.Errorf("the app's .heroku is not a directory; drover's Python buildpack installs into .heroku/python: remove it: %w", pipelines.ErrInvalid)
	}
	if _, err := os.Lstat(filepath.Join(dir, pythonUserBase)); err == nil {
		return "", fmt.Errorf("the repository has a .heroku/python; drover's Python buildpack installs the app's dependencies there: remove it from the repository: %w", pipelines.ErrInvalid)
	}

	// Inside the sandbox the app is at /app; the user base must be named
	// where the step sees it, and nothing records it (see the top).
	appDir := dir
	if b.Sandbox.Enabled() {
		appDir = sandbox.AppDir
	}
	pipEnv, pipFiles, err := b.pipSettings(dir)
	if err != nil {
		return "", err
	}
	readOnly := append(pythonReadOnly(py), pipFiles...)
	env := append(pipEnv,
		"PYTHONUSERBASE="+appDir+"/"+pythonUserBase,
		// Debian marks its Python EXTERNALLY-MANAGED, which refuses
		// --user; this install goes into the slug, not the system.
		"PIP_BREAK_SYSTEM_PACKAGES=1",
		"PIP_ROOT_USER_ACTION=ignore",
		"PIP_DISABLE_PIP_VERSION_CHECK=1",
		"PIP_NO_INPUT=1",
		"PYTHONDONTWRITEBYTECODE=1",
	)
	requirements := "requirements.txt"
	if plan.Export != nil {
		fmt.Fprintf(out, "-----> Installing dependencies from %s with %s\n", plan.LockFile, plan.Manager)
		// The lock as pinned requirements, for pip to install exactly.
		script := `mkdir -p "$(dirname "$1")" && out=$1 && shift && exec "$@" > "$out"`
		if err := b.run(ctx, dir, out, env, readOnly, "sh", append([]string{"-c", script, "sh", pythonLockExport}, plan.Export...)...); err != nil {
			return "", err
		}
		requirements = pythonLockExport
		if err := checkRequirements(fsys, requirements); err != nil {
			return "", fmt.Errorf("%s's export of %s: %w", plan.Manager, plan.LockFile, err)
		}
	} else {
		fmt.Fprintln(out, "-----> Installing requirements with pip")
	}
	args := []string{"-m", "pip", "install", "--user", "--ignore-installed", "--no-compile", "--no-warn-script-location", "--progress-bar", "off"}
	if plan.Export != nil {
		args = append(args, "--no-deps") // the lock has every one
	}
	if err := b.run(ctx, dir, out, env, readOnly, py.Executable, append(args, "-r", requirements)...); err != nil {
		return "", err
	}
	site := path.Join(pythonUserBase, "lib", "python"+py.minor(), "site-packages")
	if err := fixPythonScripts(root, py.minor(), site); err != nil {
		return "", err
	}
	// Bytecode, from relative paths and checked by nothing but its
	// source's hash (Pack's fixed times would make time-stamped bytecode
	// stale); a file that does not compile is skipped, as pip skips it.
	if fi, err := root.Lstat(site); err == nil && fi.IsDir() {
		// One process: the sandbox's /dev has no shared memory for
		// compileall's process pool.
		const compile = `import compileall as c, py_compile as p, sys; c.compile_dir(sys.argv[1], quiet=2, invalidation_mode=p.PycInvalidationMode.UNCHECKED_HASH)`
		if err := b.run(ctx, dir, out, env, readOnly, py.Executable, "-c", compile, site); err != nil {
			return "", err
		}
	}

	_, err = root.Lstat("manage.py")
	django := err == nil && pythonPackageInstalled(root, site, "django")
	if django {
		if v, ok := envValue(b.Env, "DISABLE_COLLECTSTATIC"); ok && v != "" && v != "0" {
			fmt.Fprintln(out, "-----> Skipping Django collectstatic (DISABLE_COLLECTSTATIC is set)")
		} else {
			fmt.Fprintln(out, "-----> Running Django collectstatic")
			if err := b.run(ctx, dir, out, env, readOnly, py.Executable, "manage.py", "collectstatic", "--noinput"); err != nil {
				return "", fmt.Errorf("%w (set DISABLE_COLLECTSTATIC=1 in the builder's environment to skip it)", err)
			}
		}
	}

	if err := writeIntoSlug(dir, pythonProfileName, []byte(pythonProfile(py.minor()))); err != nil {
		return "", err
	}
	if django && pythonPackageInstalled(root, site, "gunicorn") {
		if project := djangoProject(root); project != "" {
			return "web: gunicorn " + project + ".wsgi", nil
		}
	}
	return "", nil
}

// pythonReadOnly lists the interpreter's tree for the sandbox to show when
// it is outside the system dirs (bound already).
func pythonReadOnly(py pythonInterpreter) []string {
	var dirs []string
	for _, d := range []string{py.Prefix, filepath.Dir(py.Executable)} {
		if filepath.IsAbs(d) && !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// fixPythonScripts gives every console script pip wrote into the user
// base's bin a `#!/usr/bin/env pythonX.Y` line instead of the path of the
// interpreter that built it, updates the RECORD that lists it, and adds
// python and python3 commands running that Python, as Heroku's
// .heroku/python/bin has. root is the checkout: every path is opened
// through it, so a link a build step made cannot lead the write out.
func fixPythonScripts(root *os.Root, minor, site string) error {
	bin := path.Join(pythonUserBase, "bin")
	if err := root.MkdirAll(bin, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", bin, err)
	}
	entries, err := fs.ReadDir(root.FS(), bin)
	if err != nil {
		return fmt.Errorf("read %s: %w", bin, err)
	}
	shebang := "#!/usr/bin/env python" + minor + "\n"
	rewritten := map[string][]byte{}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		p := path.Join(bin, e.Name())
		body, err := root.ReadFile(p)
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		fixed, ok := withPythonShebang(body, shebang)
		if !ok {
			continue
		}
		if err := root.WriteFile(p, fixed, 0o755); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		rewritten[e.Name()] = fixed
	}
	if err := fixRecords(root, site, rewritten); err != nil {
		return err
	}
	wrapper := []byte("#!/bin/sh\n# The app's Python, as on Heroku.\nexec python" + minor + " \"$@\"\n")
	for _, name := range []string{"python", "python3"} {
		if _, err := root.Lstat(path.Join(bin, name)); err == nil {
			continue
		}
		if err := root.WriteFile(path.Join(bin, name), wrapper, 0o755); err != nil {
			return fmt.Errorf("write %s: %w", path.Join(bin, name), err)
		}
	}
	return nil
}

// withPythonShebang replaces a script's Python #! line (or the /bin/sh
// trampoline pip writes for a long interpreter path) with shebang.
func withPythonShebang(body []byte, shebang string) ([]byte, bool) {
	first, rest, _ := bytes.Cut(body, []byte("\n"))
	switch {
	case bytes.HasPrefix(first, []byte("#!")) && bytes.Contains(first, []byte("python")):
		return append([]byte(shebang), rest...), true
	case bytes.Equal(first, []byte("#!/bin/sh")) && bytes.HasPrefix(rest, []byte("'''exec' ")):
		// #!/bin/sh / '''exec' /long/path/python "$0" "$@" / ' '''
		lines := bytes.SplitN(rest, []byte("\n"), 3)
		if len(lines) == 3 && bytes.Equal(bytes.TrimSpace(lines[1]), []byte("' '''")) {
			return append([]byte(shebang), lines[2]...), true
		}
	}
	return body, false
}

// fixRecords updates the hashes and sizes of rewritten scripts in the
// RECORD files of site's .dist-info dirs.
func fixRecords(root *os.Root, site string, rewritten map[string][]byte) error {
	if len(rewritten) == 0 {
		return nil
	}
	entries, err := fs.ReadDir(root.FS(), site)
	if err != nil {
		return nil // no site-packages: nothing lists the scripts
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasSuffix(e.Name(), ".dist-info") {
			continue
		}
		p := path.Join(site, e.Name(), "RECORD")
		record, err := root.ReadFile(p)
		if err != nil {
			continue
		}
		lines := strings.SplitAfter(string(record), "\n")
		changed := false
		for i, line := range lines {
			file, _, ok := strings.Cut(line, ",")
			if !ok || path.Clean(path.Join(site, file)) != path.Join(pythonUserBase, "bin", path.Base(file)) {
				continue
			}
			body, ok := rewritten[path.Base(file)]
			if !ok {
				continue
			}
			sum := sha256.Sum256(body)
			lines[i] = fmt.Sprintf("%s,sha256=%s,%d\n", file, base64.RawURLEncoding.EncodeToString(sum[:]), len(body))
			changed = true
		}
		if changed {
			if err := root.WriteFile(p, []byte(strings.Join(lines, "")), 0o644); err != nil {
				return fmt.Errorf("write %s: %w", p, err)
			}
		}
	}
	return nil
}

// pythonPackageInstalled reports whether site has the import package pkg.
func pythonPackageInstalled(root *os.Root, site, pkg string) bool {
	fi, err := root.Stat(path.Join(site, pkg, "__init__.py"))
	return err == nil && fi.Mode().IsRegular()
}

// djangoProject is the package beside manage.py holding wsgi.py, when
// there is exactly one.
func djangoProject(root *os.Root) string {
	entries, err := fs.ReadDir(root.FS(), ".")
	if err != nil {
		return ""
	}
	var found []string
	for _, e := range entries {
		if !e.IsDir() || !pythonIdentRe.MatchString(e.Name()) {
			continue
		}
		if fi, err := root.Lstat(path.Join(e.Name(), "wsgi.py")); err == nil && fi.Mode().IsRegular() {
			found = append(found, e.Name())
		}
	}
	if len(found) == 1 {
		return found[0]
	}
	return ""
}

var pythonIdentRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// envValue is the last value of key in env.
func envValue(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// pipSettings makes the builder's pip settings files readable by a
// sandboxed step: PIP_CONFIG_FILE and PIP_CERT are copied into the build's
// HOME and named there (bwrap makes the missing parents of a file it binds
// 0700, so the sandbox's user could not reach a bound copy), and the
// system-wide /etc/pip.conf is bound read-only. Unsandboxed steps read
// them where they are. It returns the steps' env and read-only paths.
func (b *Builder) pipSettings(dir string) (env, readOnly []string, err error) {
	if !b.Sandbox.Enabled() {
		return nil, nil, nil
	}
	if _, err := os.Stat("/etc/pip.conf"); err == nil {
		readOnly = append(readOnly, "/etc/pip.conf")
	}
	home, err := buildHome(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, k := range []string{"PIP_CONFIG_FILE", "PIP_CERT"} {
		v := os.Getenv(k)
		if v == "" || v == os.DevNull || !filepath.IsAbs(v) {
			continue
		}
		data, err := os.ReadFile(v)
		if err != nil {
			return nil, nil, fmt.Errorf("the builder's %s: %w", k, err)
		}
		name := strings.ToLower(k)
		if err := os.MkdirAll(filepath.Join(home, ".drover"), 0o755); err != nil {
			return nil, nil, fmt.Errorf("build home: %w", err)
		}
		if err := os.WriteFile(filepath.Join(home, ".drover", name), data, 0o644); err != nil {
			return nil, nil, fmt.Errorf("build home: %w", err)
		}
		env = append(env, k+"="+sandbox.HomeDir+"/.drover/"+name)
	}
	return env, readOnly, nil
}
