package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// appState is app.json: what must outlive drover so the app comes back on
// the same URL running the same release.
type appState struct {
	Port    int    `json:"port,omitempty"`
	Release int    `json:"release,omitempty"`
	Slug    string `json:"slug,omitempty"`
}

// release is procs.json: the processes one release runs. A record exists
// exactly while its processes may be alive, so whatever drover finds on disk
// at start-up is either adopted or killed.
type release struct {
	App     string  `json:"app"`
	Version int     `json:"release"`
	Slug    string  `json:"slug"`
	Procs   []*proc `json:"procs"`
	dir     string
}

func (r *Region) appDir(app string) string { return filepath.Join(r.dir, "apps", app) }

func (r *Region) releaseDir(app string, version int) string {
	return filepath.Join(r.appDir(app), "v"+strconv.Itoa(version))
}

// load reads a's state from disk the first time a is used in this run. The
// current release's processes are taken as they are, alive or not; Deploy
// and Reconcile decide what to do about them.
func (r *Region) load(a *app) error {
	if a.loaded {
		return nil
	}
	st, err := readAppState(r.appDir(a.name))
	if err != nil {
		return err
	}
	a.state = st
	if st.Release > 0 {
		rec, err := readRecord(r.releaseDir(a.name, st.Release))
		if err != nil {
			return err
		}
		if rec != nil && rec.Slug == st.Slug {
			a.cur = rec
		}
	}
	a.loaded = true
	return nil
}

func readAppState(dir string) (appState, error) {
	var st appState
	b, err := os.ReadFile(filepath.Join(dir, "app.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read app state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("read app state %s: %w", filepath.Join(dir, "app.json"), err)
	}
	return st, nil
}

func (r *Region) writeAppState(a *app) error {
	return writeJSON(filepath.Join(r.appDir(a.name), "app.json"), a.state)
}

// readRecord returns the release recorded in dir, or nil if none is.
func readRecord(dir string) (*release, error) {
	b, err := os.ReadFile(filepath.Join(dir, "procs.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read process record: %w", err)
	}
	var rec release
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("read process record %s: %w", filepath.Join(dir, "procs.json"), err)
	}
	rec.dir = dir
	// A damaged record must never make us signal someone else's processes:
	// we only ever create groups led by the process itself, and pid 1 or a
	// group of 0 would address far more than one app.
	procs := rec.Procs[:0]
	for _, p := range rec.Procs {
		if p != nil && p.PID > 1 && p.PGID == p.PID {
			procs = append(procs, p)
		}
	}
	rec.Procs = procs
	return &rec, nil
}

// readRecords returns every release of app that has a process record.
func (r *Region) readRecords(app string) ([]*release, error) {
	entries, err := os.ReadDir(r.appDir(app))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list releases of %s: %w", app, err)
	}
	var out []*release
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "v") {
			continue
		}
		rec, err := readRecord(filepath.Join(r.appDir(app), e.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if rec != nil {
			out = append(out, rec)
		}
	}
	return out, errors.Join(errs...)
}

func writeRecord(rel *release) error {
	return writeJSON(filepath.Join(rel.dir, "procs.json"), rel)
}

func removeRecord(rel *release) error {
	err := os.Remove(filepath.Join(rel.dir, "procs.json"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove process record: %w", err)
	}
	return nil
}

// appNamesOnDisk lists the apps this region has state for.
func (r *Region) appNamesOnDisk() []string {
	entries, err := os.ReadDir(filepath.Join(r.dir, "apps"))
	if err != nil {
		r.log.Warn("list apps", "error", err)
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && checkApp(e.Name()) == nil {
			out = append(out, e.Name())
		}
	}
	return out
}

// writeJSON replaces path atomically, so a crash mid-write leaves the old
// record, never half of a new one.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	return writeFileAtomic(path, append(b, '\n'))
}

func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
