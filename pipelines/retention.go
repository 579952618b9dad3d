package pipelines

import (
	"cmp"
	"time"
)

// Retention is what drover keeps of what it made, and how often it
// collects the rest. The ledger's releases are never deleted; their slugs
// are, once no kept release uses them.
type Retention struct {
	// Releases is how many of each app's newest releases keep their slugs,
	// so they can be rolled back to; DefaultKeepReleases when 0. An app's
	// current release keeps its slug however old it is.
	Releases int `yaml:"releases"`
	// Deliveries is how long webhook delivery IDs are remembered, to
	// answer GitHub's redeliveries as duplicates; DefaultKeepDeliveries
	// when empty. A replayed push of a released commit is refused by the
	// ledger however old it is.
	Deliveries string `yaml:"deliveries"`
	// Every is how often drover collects; DefaultCollectEvery when empty.
	Every string `yaml:"every"`
}

// Retention defaults.
const (
	DefaultKeepReleases   = 10
	DefaultKeepDeliveries = 30 * 24 * time.Hour
	DefaultCollectEvery   = time.Hour
)

// KeepReleases is Releases or its default.
func (r Retention) KeepReleases() int { return cmp.Or(r.Releases, DefaultKeepReleases) }

// KeepDeliveries is Deliveries or its default.
func (r Retention) KeepDeliveries() time.Duration {
	d, _ := time.ParseDuration(r.Deliveries)
	return cmp.Or(d, DefaultKeepDeliveries)
}

// CollectEvery is Every or its default.
func (r Retention) CollectEvery() time.Duration {
	d, _ := time.ParseDuration(r.Every)
	return cmp.Or(d, DefaultCollectEvery)
}

func (r Retention) validate(bad func(key, format string, args ...any) error) error {
	if r.Releases < 0 {
		return bad("retention.releases", "%d: want 1 or more (0 or unset: %d)", r.Releases, DefaultKeepReleases)
	}
	for _, dur := range []struct{ key, value, like string }{
		{"deliveries", r.Deliveries, "720h"},
		{"every", r.Every, "1h"},
	} {
		if d, err := time.ParseDuration(dur.value); dur.value != "" && (err != nil || d < time.Minute) {
			return bad("retention."+dur.key, "%q is not a duration of a minute or more, like %s", dur.value, dur.like)
		}
	}
	return nil
}
