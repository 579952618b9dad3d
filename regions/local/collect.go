package local

import (
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// keepReleaseDirs is how many of an app's release dirs (unpacked slug and
// logs) a region keeps: the running one and the ones before it, whose
// logs `drover logs` may still want. Older ones are removed after each
// deploy: a slug unpacks to hundreds of MB, and nothing runs there.
const keepReleaseDirs = 3

// pruneReleases removes app's release dirs but the newest
// keepReleaseDirs and running's, which has just become current.
func (r *Region) pruneReleases(app string, running int) {
	entries, err := os.ReadDir(r.appDir(app))
	if err != nil {
		return
	}
	var versions []int
	for _, e := range entries {
		if v, err := strconv.Atoi(strings.TrimPrefix(e.Name(), "v")); err == nil && e.IsDir() && strings.HasPrefix(e.Name(), "v") {
			versions = append(versions, v)
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(versions)))
	for i, v := range versions {
		if i < keepReleaseDirs || v == running {
			continue
		}
		if err := os.RemoveAll(r.releaseDir(app, v)); err != nil {
			r.log.Warn("remove old release dir", "app", app, "release", v, "error", err)
		}
	}
}

// rotateLogs rotates every process log of the region's apps every
// interval, until the region closes.
func (r *Region) rotateLogs(interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-r.closing.Done():
			return
		case <-tick.C:
			logs, _ := filepath.Glob(filepath.Join(r.dir, "apps", "*", "v*", "*.log"))
			for _, path := range logs {
				if err := rotateLog(path); err != nil {
					r.log.Warn("rotate log", "log", path, "error", err)
				}
			}
		}
	}
}

// maxLogSize is how large a process's log grows before it is rotated.
const maxLogSize = 10 << 20

// rotateLog keeps a process's log under maxLogSize: the file is copied
// to <log>.1 (replacing the one before) and truncated in place, because
// the process writes to it through a descriptor of its own, in append
// mode, and keeps writing at the new end.
func rotateLog(path string) error {
	info, err := os.Stat(path)
	if err != nil || info.Size() <= maxLogSize {
		return err
	}
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".rotate-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, src); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path+".1"); err != nil {
		return err
	}
	return os.Truncate(path, 0)
}
