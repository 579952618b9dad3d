package local

import (
	"os"
	"sort"
	"strconv"
	"strings"
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
