package pipelines

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// ReleaseStatus is where a release is in its life. Releases are append-only:
// only the status and region states of a release change after it is created.
type ReleaseStatus string

const (
	ReleasePending    ReleaseStatus = "pending"
	ReleaseSucceeded  ReleaseStatus = "succeeded"
	ReleaseFailed     ReleaseStatus = "failed"
	ReleaseSuperseded ReleaseStatus = "superseded"
	// ReleaseSkipped is a push that was not deployed because auto-deploy
	// is paused (after a manual rollback).
	ReleaseSkipped ReleaseStatus = "skipped"
)

// Terminal reports whether the status is final.
func (s ReleaseStatus) Terminal() bool { return s != ReleasePending }

// RegionStatus is where a release is in one region.
type RegionStatus string

const (
	RegionPending    RegionStatus = "pending"
	RegionRunning    RegionStatus = "running"
	RegionSuccessful RegionStatus = "successful"
	RegionFailed     RegionStatus = "failed"
	// RegionReverted is a region put back on the previous release after
	// the rollout failed elsewhere.
	RegionReverted RegionStatus = "reverted"
)

// RegionState is the state of one release in one region.
type RegionState struct {
	Region    string       `json:"region"`
	Status    RegionStatus `json:"status"`
	Message   string       `json:"message,omitempty"`
	URL       string       `json:"url,omitempty"`
	UpdatedAt time.Time    `json:"updated_at"`
}

// Release is vN of an app: what runs (slug), with what (config version and
// formation), built from which commit.
type Release struct {
	App           string        `json:"app"`
	Version       int           `json:"version"`
	Status        ReleaseStatus `json:"status"`
	Slug          string        `json:"slug,omitempty"`
	Commit        string        `json:"commit,omitempty"`
	ConfigVersion int           `json:"config_version"`
	Formation     Formation     `json:"formation,omitempty"`
	Procfile      Procfile      `json:"procfile,omitempty"`
	Description   string        `json:"description,omitempty"`
	// Operation is the ID of the workflow that made this release; retries of
	// that workflow find their own release by it.
	Operation string `json:"operation,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Output    string `json:"release_output,omitempty"`
	// ReleasePhaseExit is the release phase's exit code once it has run
	// (nil: not yet, or no release command).
	ReleasePhaseExit *int          `json:"release_phase_exit,omitempty"`
	Regions          []RegionState `json:"regions,omitempty"`
	CreatedAt        time.Time     `json:"created_at"`
	UpdatedAt        time.Time     `json:"updated_at"`
}

// Name is the user-facing release name, "v7".
func (r Release) Name() string { return fmt.Sprintf("v%d", r.Version) }

// RollbackTarget is the release a rollback with no version goes back to:
// the newest succeeded release before the current (newest succeeded) one,
// in releases listed newest first. ok is false when there is none.
func RollbackTarget(releases []Release) (target Release, ok bool) {
	seenCurrent := false
	for _, r := range releases {
		if r.Status != ReleaseSucceeded {
			continue
		}
		if seenCurrent {
			return r, true
		}
		seenCurrent = true
	}
	return Release{}, false
}

// RegionRelease is the release that should run in region, from releases
// listed newest first: the newest whose rollout reached the region
// (successful there), even if the release as a whole is still going. A
// drover restarted mid-rollout must put back what regions ran, not roll a
// region the rollout already passed back to the previous release.
func RegionRelease(releases []Release, region string) (Release, bool) {
	for _, r := range releases {
		for _, st := range r.Regions {
			if st.Region == region && st.Status == RegionSuccessful {
				return r, true
			}
		}
	}
	return Release{}, false
}

// ParseVersion accepts "v7" or "7".
func ParseVersion(s string) (int, error) {
	var n int
	if _, err := fmt.Sscanf(strings.TrimPrefix(strings.ToLower(s), "v"), "%d", &n); err != nil || n < 1 {
		return 0, fmt.Errorf("release %q: want vN with N ≥ 1: %w", s, ErrInvalid)
	}
	return n, nil
}

// Formation maps process type to instance count.
type Formation map[string]int

// DefaultFormation is a first release's formation, as Heroku's: one web
// process and none of the other types, which `drover ps:scale` (or
// app.json's formation) turns on. Every long-running type is listed, so
// it can be scaled.
func DefaultFormation(p Procfile) Formation {
	f := Formation{}
	for _, proc := range p.Services() {
		f[proc.Type] = 0
		if proc.Type == "web" {
			f[proc.Type] = 1
		}
	}
	return f
}

// Types returns the process types in sorted order.
func (f Formation) Types() []string {
	out := make([]string, 0, len(f))
	for t := range f {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// App is a deployable unit: one stage of one pipeline.
type App struct {
	Name     string   `json:"name"`
	Pipeline string   `json:"pipeline"`
	Stage    string   `json:"stage"`
	Repo     string   `json:"repo"`
	Branch   string   `json:"branch,omitempty"`
	Regions  []string `json:"regions"`
}

// ConfigVars are an app's environment at one version.
type ConfigVars struct {
	Version int               `json:"version"`
	Vars    map[string]string `json:"vars"`
}

// ReviewApp is the app of one pull request: made when the pull request
// opens, redeployed on each push to it, destroyed when it closes or sits
// idle past the review stage's TTL.
type ReviewApp struct {
	App      string `json:"app"`
	Pipeline string `json:"pipeline"`
	Repo     string `json:"repo"`
	PR       int    `json:"pr"`
	Title    string `json:"title,omitempty"`
	Branch   string `json:"branch,omitempty"`
	// Commit is the deployed commit, once one is.
	Commit string `json:"commit,omitempty"`
	URL    string `json:"url,omitempty"`
	// Fork is true for a pull request from another repository, which is
	// deployed only on purpose.
	Fork       bool       `json:"fork,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	DeployedAt *time.Time `json:"deployed_at,omitempty"`
	// DestroyedAt and Reason say when and why it was destroyed.
	DestroyedAt *time.Time `json:"destroyed_at,omitempty"`
	Reason      string     `json:"reason,omitempty"`
}

// LastActive is when the review app last deployed, or was made.
func (r ReviewApp) LastActive() time.Time {
	if r.DeployedAt != nil {
		return *r.DeployedAt
	}
	return r.CreatedAt
}

// StatusContextPrefix begins every commit status context drover posts
// (drover/<environment>). Those statuses report drover's own deploys, so
// they are never part of the CI verdict a deploy waits for.
const StatusContextPrefix = "drover/"

// StatusContext is the commit status context drover reports a deploy to
// environment (a stage or a review app) under.
func StatusContext(environment string) string { return StatusContextPrefix + environment }

// IsOwnStatusContext reports whether a commit status context is one drover
// posts.
func IsOwnStatusContext(context string) bool { return strings.HasPrefix(context, StatusContextPrefix) }
