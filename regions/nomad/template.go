package nomad

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

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
