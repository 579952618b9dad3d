package nomad

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/hashicorp/nomad/api"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
)

// template returns the job template for a deployment: the app's own
// (Nomad JSON, or HCL turned into JSON by the server's parse endpoint, as
// `nomad job run` does), else the region's. A template that does not parse
// is the user's to fix, so it is pipelines.ErrInvalid.
func (r *Region) template(ctx context.Context, raw []byte) (*api.Job, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return r.tmpl, nil
	}
	if raw[0] == '{' {
		// Both `nomad job inspect` output ({"Job": …}) and a bare job.
		var wrapped struct{ Job *api.Job }
		if err := json.Unmarshal(raw, &wrapped); err == nil && wrapped.Job != nil {
			return wrapped.Job, nil
		}
		var job api.Job
		if err := json.Unmarshal(raw, &job); err != nil {
			return nil, fmt.Errorf("job template: %v: %w", err, pipelines.ErrInvalid)
		}
		return &job, nil
	}
	// Jobs().ParseHCLOpts takes no region or context; the raw call to the
	// same endpoint does, like every other call here.
	job := &api.Job{}
	_, err := r.client.Raw().Write("/v1/jobs/parse", &api.JobsParseRequest{JobHCL: string(raw)}, job, r.writeOpts(ctx))
	if err != nil {
		if unreachable(err) {
			return nil, fmt.Errorf("parse job template: %w: %w", regions.ErrUnavailable, err)
		}
		return nil, fmt.Errorf("job template: Nomad could not parse it: %v: %w", err, pipelines.ErrInvalid)
	}
	return job, nil
}

// OverlayRepoTemplate returns the operator's template (op, nil for none)
// with what the repository's own job file (repo) sets for the allowed
// fields (pipelines.RepoJob* values) laid over it, group by group. The
// rest of repo is dropped: a pull request cannot mount a volume, loosen a
// placement constraint or raise its priority unless the operator's
// drover.yaml lists that field. Neither input is modified.
func OverlayRepoTemplate(op, repo *api.Job, allowed []string) (*api.Job, error) {
	if repo == nil {
		return op, nil
	}
	out := &api.Job{}
	if op != nil {
		var err error
		if out, err = cloneJob(op); err != nil {
			return nil, fmt.Errorf("job template: %w", err)
		}
	}
	r, err := cloneJob(repo)
	if err != nil {
		return nil, fmt.Errorf("repository job file: %w", err)
	}
	may := func(f string) bool { return slices.Contains(allowed, f) }
	overlay(may(pipelines.RepoJobAffinities), &out.Affinities, r.Affinities)
	overlay(may(pipelines.RepoJobSpreads), &out.Spreads, r.Spreads)
	overlay(may(pipelines.RepoJobConstraints), &out.Constraints, r.Constraints)
	if may(pipelines.RepoJobPriority) && r.Priority != nil {
		out.Priority = r.Priority
	}
	if may(pipelines.RepoJobMeta) {
		// The operator's keys win, as drover's win over both.
		out.Meta = mergeMeta(out.Meta, r.Meta)
	}
	for _, rg := range r.TaskGroups {
		if rg == nil || rg.Name == nil {
			continue
		}
		g := templateGroup(out, *rg.Name)
		if g == nil {
			g = &api.TaskGroup{Name: rg.Name}
			out.TaskGroups = append(out.TaskGroups, g)
		}
		overlay(may(pipelines.RepoJobAffinities), &g.Affinities, rg.Affinities)
		overlay(may(pipelines.RepoJobSpreads), &g.Spreads, rg.Spreads)
		overlay(may(pipelines.RepoJobConstraints), &g.Constraints, rg.Constraints)
		if may(pipelines.RepoJobVolumes) && len(rg.Volumes) > 0 {
			g.Volumes = rg.Volumes
		}
		if may(pipelines.RepoJobEphemeralDisk) && rg.EphemeralDisk != nil {
			g.EphemeralDisk = rg.EphemeralDisk
		}
		if may(pipelines.RepoJobMeta) {
			g.Meta = mergeMeta(g.Meta, rg.Meta)
		}
		if len(rg.Tasks) > 0 {
			if len(g.Tasks) == 0 {
				g.Tasks = []*api.Task{{Name: rg.Tasks[0].Name}}
			}
			if may(pipelines.RepoJobResources) && rg.Tasks[0].Resources != nil {
				g.Tasks[0].Resources = rg.Tasks[0].Resources
			}
			overlay(may(pipelines.RepoJobVolumes), &g.Tasks[0].VolumeMounts, rg.Tasks[0].VolumeMounts)
		}
	}
	return out, nil
}

// overlay sets *dst to src when the field is allowed and the repository
// set it.
func overlay[T any](allowed bool, dst *[]T, src []T) {
	if allowed && len(src) > 0 {
		*dst = src
	}
}

// jobTemplate is the template d renders with: the operator's (the stage's
// job_template, else the region's), overlaid with the repository's job
// file for the fields the stage allows.
func (r *Region) jobTemplate(ctx context.Context, d regions.Deployment) (*api.Job, error) {
	op, err := r.template(ctx, d.JobTemplate)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(d.RepoJobTemplate)) == 0 {
		return op, nil
	}
	repo, err := r.template(ctx, d.RepoJobTemplate)
	if err != nil {
		return nil, fmt.Errorf("repository job file: %w", err)
	}
	return OverlayRepoTemplate(op, repo, d.RepoJobFields)
}
