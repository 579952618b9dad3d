package workflows

import (
	"context"
	"strings"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
)

// Deployment turns a release from the ledger into what region runs: its
// slug, Procfile, formation and the config vars of its config version.
func (a *Activities) Deployment(ctx context.Context, rel pipelines.Release, region string) (regions.Deployment, error) {
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
	if a.SlugBaseURL != nil {
		if base := a.SlugBaseURL(region); base != "" {
			slug.URL = strings.TrimRight(base, "/") + "/slugs/" + rel.Slug + ".tar.gz"
		}
	}
	d := regions.Deployment{App: rel.App, Release: rel.Version, Slug: slug, Procfile: rel.Procfile,
		Formation: rel.Formation, Env: vars}
	if a.JobTemplates != nil {
		d.JobTemplate = a.JobTemplates(rel.App)
	}
	return d, nil
}
