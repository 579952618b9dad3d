package workflows

import (
	"context"
	"errors"
	"sync"

	"github.com/drover/drover/deployments/slugs"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
)

// DeploymentOf turns a release from the ledger into what region runs:
// its slug, Procfile, formation and the config vars of its config
// version. It is a function, not a method, so registering Activities
// does not make it an activity anything could schedule.
func DeploymentOf(ctx context.Context, a *Activities, rel pipelines.Release, region string) (regions.Deployment, error) {
	return a.deployment(ctx, rel, region)
}

func (a *Activities) deployment(ctx context.Context, rel pipelines.Release, region string) (regions.Deployment, error) {
	slug, env, err := a.slugAndEnv(ctx, rel)
	if err != nil {
		return regions.Deployment{}, err
	}
	// Like Heroku's dyno metadata, every process can tell which app and
	// release it belongs to.
	vars := make(map[string]string, len(env)+4)
	for k, v := range env {
		vars[k] = v
	}
	vars["DROVER_APP"], vars["DROVER_RELEASE"], vars["DROVER_COMMIT"], vars["DROVER_REGION"] = rel.App, rel.Name(), rel.Commit, region
	if a.SlugURL != nil {
		slug.URL = a.SlugURL(region, rel.Slug)
	}
	d := regions.Deployment{App: rel.App, Release: rel.Version, Commit: rel.Commit, Slug: slug, Procfile: rel.Procfile,
		Formation: rel.Formation, Env: vars, Proven: a.proven(ctx, rel)}
	if a.Exposure != nil {
		e := a.Exposure(rel.App)
		d.URL, d.ServiceTags = e.URL, e.Tags
	}
	if a.JobTemplates != nil {
		d.JobTemplate = a.JobTemplates(rel.App)
	}
	d.RepoJobFields = pipelines.DefaultRepoJobFields
	if a.RepoJobFields != nil {
		d.RepoJobFields = a.RepoJobFields(rel.App)
	}
	// Only regions that render jobs use it, and reading it means reading
	// the slug through: local regions skip it, and a slug, being
	// immutable, is read once per worker.
	if r, rerr := a.Regions.Region(region); rerr == nil {
		if _, ok := r.(regions.JobRenderer); ok {
			d.RepoJobTemplate, err = a.repoJobTemplate(ctx, slug)
		}
	}
	return d, err
}

// proven reports whether rel's slug and config ran healthy before: rel
// itself succeeded (a revert to it), or an earlier succeeded release has
// the same slug and config version (a rollback, a scale change).
func (a *Activities) proven(ctx context.Context, rel pipelines.Release) bool {
	if rel.Status == pipelines.ReleaseSucceeded {
		return true
	}
	ran, err := a.Store.RanBefore(ctx, rel.App, rel.Version, rel.Slug, rel.ConfigVersion)
	return err == nil && ran
}

// RepoJobTemplates are the files at a repository's root that extend the
// rendered Nomad job, looked for in this order. One in the repository
// travels with the code, but only for the fields the stage allows
// (repo_job_fields): it is merged over the stage's job_template, never in
// its place.
var RepoJobTemplates = []string{"drover.nomad.hcl", "drover.nomad.json"}

// maxJobTemplate bounds a job template read from user code.
const maxJobTemplate = 1 << 20

func (a *Activities) repoJobTemplate(ctx context.Context, slug regions.Slug) ([]byte, error) {
	if b, ok := a.repoTemplates.get(slug.Digest); ok {
		return b, nil
	}
	for _, name := range RepoJobTemplates {
		b, err := slugs.ReadFile(ctx, slug.Path, name, maxJobTemplate)
		if err == nil {
			a.repoTemplates.put(slug.Digest, b)
			return b, nil
		}
		if !errors.Is(err, pipelines.ErrNotFound) {
			return nil, permanent(err)
		}
	}
	a.repoTemplates.put(slug.Digest, nil)
	return nil, nil
}

// templateCache remembers the repository job template of the slugs read
// lately (nil for none): a slug's digest names its content. The zero
// value is ready for use.
type templateCache struct {
	mu sync.Mutex
	m  map[string][]byte
}

// maxCachedTemplates bounds a templateCache.
const maxCachedTemplates = 256

func (c *templateCache) get(digest string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.m[digest]
	return b, ok
}

func (c *templateCache) put(digest string, b []byte) {
	if digest == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string][]byte{}
	}
	if len(c.m) >= maxCachedTemplates {
		for k := range c.m { // any one: a miss only costs a read
			delete(c.m, k)
			break
		}
	}
	c.m[digest] = b
}
