// Package sandbox turns a command drover does not trust (a build step, a
// release phase, an app process: code anyone with push access wrote) into
// an *exec.Cmd that reaches as little of the machine as it needs.
//
// Under bubblewrap (bwrap) the command gets its own mount, PID, IPC and UTS
// namespaces: the system's programs and libraries read-only, a minimal
// /etc, a private /tmp, its working dir at /app and its caches writable,
// and nothing else of the host's files, so drover's data dir, keys and
// HOME are not there to read. When drover runs as root the command runs as
// an unprivileged user (nobody, 65534), so an escape from the namespaces
// is not an escape to root. The network is the host's when the spec asks
// for it (registries, migrations, serving PORT) and none otherwise.
//
// Without bubblewrap (ModeNone) the command runs as drover's user with
// only the environment the caller allows: better than nothing, not a
// sandbox.
//
// Either way the command is its own session and process group, so the
// caller can kill all of it at once, and has no controlling terminal.
package sandbox

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Mode is how untrusted commands run.
type Mode string

// Modes.
const (
	// ModeAuto is bubblewrap where it is installed, else ModeNone with a
	// warning.
	ModeAuto Mode = "auto"
	// ModeBwrap requires bubblewrap.
	ModeBwrap Mode = "bwrap"
	// ModeNone runs commands directly, as drover's user.
	ModeNone Mode = "none"
)

// ParseMode reads a --sandbox value; "" is ModeAuto.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case "":
		return ModeAuto, nil
	case ModeAuto, ModeBwrap, ModeNone:
		return m, nil
	}
	return "", fmt.Errorf("sandbox %q: want auto, bwrap or none", s)
}

// Paths inside the sandbox. They are the same for every command, which
// also keeps what a build writes free of per-build scratch paths.
const (
	// AppDir is Spec.Dir, the working dir, as on a Heroku dyno.
	AppDir = "/app"
	// HomeDir is Spec.Home.
	HomeDir = "/home/app"
	// CacheDir holds Spec.Caches, one subdir each.
	CacheDir = "/cache"
)

// NobodyID is the user and group sandboxed commands run as when drover
// runs as root.
const NobodyID = 65534

// ErrNoBwrap is New's error for ModeBwrap on a machine without bubblewrap.
var ErrNoBwrap = errors.New("bubblewrap (bwrap) is not installed; install it (Debian/Ubuntu: apt-get install bubblewrap) or run with --sandbox none")

// Options configure a Sandbox.
type Options struct {
	Mode Mode
	// Hide lists host dirs (drover's data dir) that are never bound into
	// a sandbox whole or as a parent of a read-only dir; only a Spec's
	// own Dir, Home and Caches, which may lie inside them, are.
	Hide []string
	// Logger gets the warning when ModeAuto finds no bubblewrap.
	Logger *slog.Logger
	// StateDir, when set, is a dir of drover's own where the sandbox
	// keeps the /etc its commands see (etcStage); without it each file
	// of that /etc is bound on its own, which costs every start twenty
	// mounts more.
	StateDir string
}

// Sandbox makes commands. A nil *Sandbox is ModeNone.
type Sandbox struct {
	bwrap   string // path to bwrap; "" for ModeNone
	setpriv string // path to setpriv when dropping root; "" otherwise
	uid     int    // the user commands run as under bwrap; -1 to keep drover's
	hide    []string
	pathRO  []string  // bin dirs on PATH outside the system dirs
	etc     *etcStage // nil: bind each file of /etc
}

// New returns the Sandbox for o.Mode. ModeBwrap without bubblewrap is an
// error wrapping ErrNoBwrap; ModeAuto falls back to ModeNone and logs a
// warning saying so.
func New(o Options) (*Sandbox, error) {
	mode, err := ParseMode(string(o.Mode))
	if err != nil {
		return nil, err
	}
	if mode == ModeNone {
		return &Sandbox{uid: -1}, nil
	}
	bwrap, err := exec.LookPath("bwrap")
	if err != nil {
		if mode == ModeBwrap {
			return nil, fmt.Errorf("sandbox: %w", ErrNoBwrap)
		}
		if o.Logger != nil {
			o.Logger.Warn("builds, release phases and apps are NOT sandboxed: bubblewrap (bwrap) is not on PATH; install it (apt-get install bubblewrap) to keep them away from drover's data dir")
		}
		return &Sandbox{uid: -1}, nil
	}
	s := &Sandbox{bwrap: bwrap, uid: -1}
	if o.StateDir != "" {
		s.etc = &etcStage{dir: filepath.Join(o.StateDir, "etc")}
	}
	for _, h := range o.Hide {
		if h, err := filepath.Abs(h); err == nil {
			s.hide = append(s.hide, h)
		}
	}
	if os.Geteuid() == 0 {
		// bwrap started by root creates the namespaces itself; its --uid
		// would need a user namespace, where the sandbox's uid would still
		// be root outside. setpriv really changes the uid, inside, after
		// the mounts are made.
		if s.setpriv, err = exec.LookPath("setpriv"); err != nil {
			return nil, fmt.Errorf("sandbox: drover runs as root and needs setpriv (util-linux) to run sandboxed commands as nobody: %w", err)
		}
		s.uid = NobodyID
	}
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if filepath.IsAbs(dir) && filepath.Base(dir) == "bin" && !underSystem(dir) && !s.hidden(dir) {
			s.pathRO = append(s.pathRO, filepath.Clean(dir))
		}
	}
	return s, nil
}

// Enabled reports whether commands run under bubblewrap.
func (s *Sandbox) Enabled() bool { return s != nil && s.bwrap != "" }

// String describes the sandbox for a banner.
func (s *Sandbox) String() string {
	switch {
	case !s.Enabled():
		return "none: builds, release phases and apps run as drover's user and can read its data dir (install bubblewrap to sandbox them)"
	case s.uid >= 0:
		return "bubblewrap, as uid " + strconv.Itoa(s.uid)
	}
	return "bubblewrap"
}

// Cache is a writable dir a command keeps between runs, named to it by an
// environment variable (GOCACHE, npm_config_cache).
type Cache struct {
	Env string
	Dir string // on the host
}

// Spec is one command to run.
type Spec struct {
	Args []string
	// Dir is the host dir the command works in, writable; AppDir inside.
	Dir string
	// Home is a writable host dir for HOME (HomeDir inside); "" makes
	// HOME the working dir, as on a dyno.
	Home   string
	Caches []Cache
	// ReadOnly lists host dirs bound read-only at the same path, such as
	// a toolchain outside /usr.
	ReadOnly []string
	// Env is the command's environment, without HOME or the caches.
	Env []string
	// Network keeps the host's network; otherwise the command has none.
	Network bool
	// Detach lets the command outlive drover (app processes, adopted by
	// the next drover); otherwise it is killed when drover dies.
	Detach bool
}

// Command returns spec as a command in its own session and process group.
// Cancelling ctx kills the whole group; callers that stop it otherwise
// signal -cmd.Process.Pid. Dir, Home and Caches are created if missing
// and, when commands run as another user, handed to that user.
func (s *Sandbox) Command(ctx context.Context, spec Spec) (*exec.Cmd, error) {
	if len(spec.Args) == 0 || spec.Dir == "" {
		return nil, errors.New("sandbox: a command needs args and a dir")
	}
	var cmd *exec.Cmd
	var env []string
	if !s.Enabled() {
		for _, dir := range append([]string{spec.Dir, spec.Home}, cacheDirs(spec.Caches)...) {
			if err := mkdir(dir); err != nil {
				return nil, err
			}
		}
		cmd = exec.CommandContext(ctx, spec.Args[0], spec.Args[1:]...)
		cmd.Dir = spec.Dir
		env = append(slices.Clone(spec.Env), "HOME="+cmp.Or(spec.Home, spec.Dir))
		for _, c := range spec.Caches {
			env = append(env, c.Env+"="+c.Dir)
		}
	} else {
		args, err := s.bwrapArgs(spec)
		if err != nil {
			return nil, err
		}
		cmd = exec.CommandContext(ctx, s.bwrap, args...)
		home := AppDir
		if spec.Home != "" {
			home = HomeDir
		}
		env = append(slices.Clone(spec.Env), "HOME="+home)
		for _, c := range spec.Caches {
			env = append(env, c.Env+"="+CacheDir+"/"+cacheName(c))
		}
	}
	// bwrap passes its environment on; nothing else of drover's is there.
	cmd.Env = env
	// A session of its own: its own process group, and no controlling
	// terminal to push input into when drover runs in one.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd, nil
}

func (s *Sandbox) bwrapArgs(spec Spec) ([]string, error) {
	for _, dir := range append([]string{spec.Dir, spec.Home}, cacheDirs(spec.Caches)...) {
		if err := s.own(dir); err != nil {
			return nil, err
		}
	}

	a := []string{"--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"}
	if s.uid < 0 {
		a = append(a, "--unshare-user")
	} else {
		// Root's bwrap keeps capabilities for the command unless told;
		// setpriv needs these two to drop to nobody, and loses them then.
		a = append(a, "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP")
	}
	if !spec.Network {
		a = append(a, "--unshare-net")
	}
	if !spec.Detach {
		a = append(a, "--die-with-parent")
	}
	a = append(a, "--ro-bind", "/usr", "/usr")
	for _, d := range []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"} {
		fi, err := os.Lstat(d)
		switch {
		case err != nil:
		case fi.Mode()&fs.ModeSymlink != 0:
			if target, err := os.Readlink(d); err == nil {
				a = append(a, "--symlink", target, d)
			}
		case fi.IsDir():
			a = append(a, "--ro-bind", d, d)
		}
	}
	// Only what programs need of /etc: not the operator's config files,
	// which may hold drover's own settings.
	// A dir or file bound read-only inside /etc (a build's
	// /etc/pip.conf) needs a mount point there, which the staged /etc,
	// read-only, cannot be given: such a command binds /etc file by file.
	if s.etc != nil && !slices.ContainsFunc(spec.ReadOnly, func(d string) bool { return within(filepath.Clean(d), "/etc") }) {
		etc, err := s.etc.args()
		if err != nil {
			return nil, err
		}
		a = append(a, etc...)
	} else {
		a = append(a, "--perms", "0755", "--dir", "/etc")
		for _, f := range etcFiles {
			a = append(a, "--ro-bind-try", "/etc/"+f, "/etc/"+f)
		}
	}
	a = append(a, "--proc", "/proc", "--dev", "/dev", "--perms", "01777", "--tmpfs", "/tmp")
	a = append(a, "--bind", spec.Dir, AppDir)
	if spec.Home != "" {
		a = append(a, "--perms", "0755", "--dir", "/home", "--bind", spec.Home, HomeDir)
	}
	if len(spec.Caches) > 0 {
		a = append(a, "--perms", "0755", "--dir", CacheDir)
		for _, c := range spec.Caches {
			a = append(a, "--bind", c.Dir, CacheDir+"/"+cacheName(c))
		}
	}
	for _, dir := range append(slices.Clone(spec.ReadOnly), s.pathRO...) {
		dir = filepath.Clean(dir)
		if !filepath.IsAbs(dir) || underSystem(dir) || s.hidden(dir) {
			continue
		}
		a = append(a, "--ro-bind-try", dir, dir)
	}
	a = append(a, "--chdir", AppDir, "--")
	if s.uid >= 0 {
		id := strconv.Itoa(s.uid)
		a = append(a, s.setpriv, "--reuid="+id, "--regid="+id, "--clear-groups",
			"--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--")
	}
	return append(a, spec.Args...), nil
}

// etcFiles are the files of /etc a sandboxed command sees: users, name
// resolution, CA certificates, time zone and the dynamic linker's cache.
var etcFiles = []string{
	"passwd", "group", "hosts", "resolv.conf", "nsswitch.conf", "host.conf", "gai.conf",
	"services", "protocols", "localtime", "timezone", "mime.types", "os-release",
	"ssl", "ca-certificates", "pki", "alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d",
}

// cacheName is the subdir of CacheDir a cache is bound at.
func cacheName(c Cache) string { return strings.ToLower(c.Env) }

// own creates dir and, when commands run as another user, gives it and
// everything in it to that user; a tree that user already owns is left
// alone, so a checkout is walked once, before any of its code ran.
func (s *Sandbox) own(dir string) error {
	if err := mkdir(dir); err != nil || dir == "" || s.uid < 0 {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("sandbox dir: %w", err)
	}
	// bwrap enters the dir as root without capabilities, before setpriv
	// makes it nobody: it must be open to others, as dirs made with
	// MkdirTemp are not.
	if perm := fi.Mode().Perm(); perm&0o005 != 0o005 {
		if err := os.Chmod(dir, perm|0o055); err != nil {
			return fmt.Errorf("sandbox dir: %w", err)
		}
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == s.uid {
		return nil
	}
	// Lchown: a symlink in the tree is changed itself, never followed.
	err = filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, s.uid, s.uid)
	})
	if err != nil {
		return fmt.Errorf("sandbox dir %s: give it to uid %d: %w", dir, s.uid, err)
	}
	return nil
}

func mkdir(dir string) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("sandbox dir: %w", err)
	}
	return nil
}

func cacheDirs(caches []Cache) []string {
	dirs := make([]string, len(caches))
	for i, c := range caches {
		dirs[i] = c.Dir
	}
	return dirs
}

// underSystem reports whether dir is bound already as a system dir.
func underSystem(dir string) bool {
	for _, sys := range []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"} {
		if within(dir, sys) {
			return true
		}
	}
	return false
}

// hidden reports whether binding dir would show a hidden dir or part of one.
func (s *Sandbox) hidden(dir string) bool {
	for _, h := range s.hide {
		if within(dir, h) || within(h, dir) {
			return true
		}
	}
	if home, err := os.UserHomeDir(); err == nil && within(home, dir) {
		return true // HOME itself, or a parent of it
	}
	return false
}

// within reports whether path is dir or inside it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}
