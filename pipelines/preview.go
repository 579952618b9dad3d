package pipelines

import (
	"fmt"
	"maps"
	"slices"
)

// NextFormation is the formation a new release of procfile runs: each of
// the Procfile's process types at its default count (one web, none of the
// others), then
//   - with from (a rollback), the formation of the release gone back to;
//   - else, with current, current's counts of the types both have;
//   - with no current release, initial's counts of the Procfile's types
//     (app.json's formation, for a review app's first release);
//
// and last scale's counts, which may name only types the formation has.
// current and from may be nil. Nothing it is given is changed.
func NextFormation(procfile Procfile, current, from *Release, initial, scale Formation) (Formation, error) {
	formation := DefaultFormation(procfile)
	if from != nil {
		formation = maps.Clone(from.Formation)
		if formation == nil {
			formation = Formation{}
		}
	}
	switch {
	case current != nil && from == nil:
		for typ := range formation {
			if n, ok := current.Formation[typ]; ok {
				formation[typ] = n
			}
		}
	case current == nil:
		for typ, n := range initial {
			if _, ok := formation[typ]; ok {
				formation[typ] = n
			}
		}
	}
	for _, typ := range slices.Sorted(maps.Keys(scale)) {
		if _, ok := formation[typ]; !ok {
			return nil, fmt.Errorf("no process type %q; its Procfile has %v", typ, formation.Types())
		}
		formation[typ] = scale[typ]
	}
	return formation, nil
}

// KeyDiff names the config vars that differ between two apps' config,
// never their values: what a promotion preview shows.
type KeyDiff struct {
	// OnlyFrom are set only in the app promoted from, OnlyTo only in the
	// app promoted to, Differ in both with different values.
	OnlyFrom []string `json:"only_from"`
	OnlyTo   []string `json:"only_to"`
	Differ   []string `json:"differ"`
}

// Empty reports whether the two configs had the same keys and values.
func (d KeyDiff) Empty() bool { return len(d.OnlyFrom)+len(d.OnlyTo)+len(d.Differ) == 0 }

// DiffKeys compares two apps' config vars by name, each list sorted.
func DiffKeys(from, to map[string]string) KeyDiff {
	d := KeyDiff{OnlyFrom: []string{}, OnlyTo: []string{}, Differ: []string{}}
	for _, k := range slices.Sorted(maps.Keys(from)) {
		v, ok := to[k]
		switch {
		case !ok:
			d.OnlyFrom = append(d.OnlyFrom, k)
		case v != from[k]:
			d.Differ = append(d.Differ, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(to)) {
		if _, ok := from[k]; !ok {
			d.OnlyTo = append(d.OnlyTo, k)
		}
	}
	return d
}

// FormationChange is one process type whose count a release changes.
type FormationChange struct {
	Type string `json:"type"`
	From int    `json:"from"`
	To   int    `json:"to"`
}

// DiffFormation lists the process types whose counts differ between was
// and will, sorted by type; a type one lacks counts as 0 there.
func DiffFormation(was, will Formation) []FormationChange {
	types := map[string]bool{}
	for t := range was {
		types[t] = true
	}
	for t := range will {
		types[t] = true
	}
	var out []FormationChange
	for _, t := range slices.Sorted(maps.Keys(types)) {
		if was[t] != will[t] {
			out = append(out, FormationChange{Type: t, From: was[t], To: will[t]})
		}
	}
	return out
}

// Comparison is what lies between two commits of a repository, as
// GitHub's compare API says: Status is identical, ahead, behind or
// diverged; Total counts the commits head has that base lacks, of which
// Commits lists the oldest first (at most a page of them).
type Comparison struct {
	Status  string
	Total   int
	Commits []CommitInfo
}

// CommitInfo is one commit of a Comparison; Message is its first line.
type CommitInfo struct {
	SHA, Author, Message string
}
