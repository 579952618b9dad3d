package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
)

// etcRoot is the host's /etc, a variable for tests.
var etcRoot = "/etc"

// etcStage keeps the plain files of etcFiles copied into one dir, which a
// sandbox binds read-only as its /etc: one mount where a bind of each
// file made twenty, each twice (the bind and its read-only remount), and
// torn down again when the command ends. The kernel makes and unmakes
// mounts one at a time, machine-wide, so five regions starting their
// apps at once queued behind each other's: five sandboxes at once took
// twice as long as with the staged /etc (sandbox's BenchmarkStart).
// The dirs of etcFiles (CA certificates, alternatives) are still bound
// live, on top, at mount points the stage has for them.
//
// A stage is named by its contents, so unchanged files share one, and a
// command started after a file changed gets a new stage: its copy is as
// fresh as a bind made at its start, which also kept the file it found.
// Stages are never removed while drover runs, since a long-lived app's
// /etc is one; they are a few hundred kilobytes, one per distinct set of
// contents.
type etcStage struct {
	dir string // where stages are made

	mu    sync.Mutex
	print string   // the stat fingerprint of the files staged in cur
	cur   string   // the current stage
	dirs  []string // names in etcFiles that are dirs, bound on top
}

// args returns the bwrap arguments that make /etc: the current stage and
// the dirs bound on top, refreshing the stage when a file changed.
func (e *etcStage) args() ([]string, error) {
	print, files, dirs := fingerprint()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur == "" || print != e.print {
		cur, err := e.stage(files, dirs)
		if err != nil {
			return nil, err
		}
		e.cur, e.print, e.dirs = cur, print, dirs
	}
	a := []string{"--ro-bind", e.cur, "/etc"}
	for _, d := range e.dirs {
		a = append(a, "--ro-bind-try", filepath.Join(etcRoot, d), "/etc/"+d)
	}
	return a, nil
}

// fingerprint stats each of etcFiles (following links, as a bind does)
// and returns a string that changes when one does, the names that are
// files and those that are dirs.
func fingerprint() (print string, files, dirs []string) {
	var b []byte
	for _, name := range etcFiles {
		fi, err := os.Stat(filepath.Join(etcRoot, name))
		if err != nil {
			continue
		}
		switch {
		case fi.IsDir():
			dirs = append(dirs, name)
			b = append(b, "d "+name+"\n"...)
		case fi.Mode().IsRegular():
			files = append(files, name)
			b = append(b, "f "+name...)
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				b = strconv.AppendUint(append(b, ' '), uint64(st.Dev), 10)
				b = strconv.AppendUint(append(b, ' '), st.Ino, 10)
			}
			b = strconv.AppendInt(append(b, ' '), fi.Size(), 10)
			b = strconv.AppendInt(append(b, ' '), fi.ModTime().UnixNano(), 10)
			b = append(b, '\n')
		}
	}
	return string(b), files, dirs
}

// stage copies files into a stage named by their contents, with a mount
// point for each of dirs, unless that stage exists, and returns its path.
func (e *etcStage) stage(files, dirs []string) (string, error) {
	contents := make(map[string][]byte, len(files))
	h := sha256.New()
	for _, name := range files {
		b, err := os.ReadFile(filepath.Join(etcRoot, name))
		if err != nil {
			// Unreadable to drover (a root-only file when drover is not
			// root): the sandbox goes without it, as a bind would fail.
			continue
		}
		contents[name] = b
		fmt.Fprintf(h, "f %q %d\n", name, len(b))
		h.Write(b)
	}
	for _, d := range dirs {
		fmt.Fprintf(h, "d %q\n", d)
	}
	dst := filepath.Join(e.dir, "etc-"+hex.EncodeToString(h.Sum(nil))[:20])
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	if err := os.MkdirAll(e.dir, 0o755); err != nil {
		return "", fmt.Errorf("sandbox /etc: %w", err)
	}
	tmp, err := os.MkdirTemp(e.dir, ".etc-")
	if err != nil {
		return "", fmt.Errorf("sandbox /etc: %w", err)
	}
	defer os.RemoveAll(tmp) // gone once renamed
	for name, b := range contents {
		if err := os.WriteFile(filepath.Join(tmp, name), b, 0o444); err != nil {
			return "", fmt.Errorf("sandbox /etc: %w", err)
		}
	}
	for _, d := range dirs {
		if err := os.Mkdir(filepath.Join(tmp, d), 0o755); err != nil {
			return "", fmt.Errorf("sandbox /etc: %w", err)
		}
	}
	// MkdirTemp makes it 0700; the command, as nobody, reads it as /etc.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", fmt.Errorf("sandbox /etc: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		// Another drover on the same data dir staged the same contents.
		if _, serr := os.Stat(dst); serr == nil {
			return dst, nil
		}
		return "", fmt.Errorf("sandbox /etc: %w", err)
	}
	return dst, nil
}
