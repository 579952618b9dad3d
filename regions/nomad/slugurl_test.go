package nomad_test

import (
	"net/url"
	"testing"
	"time"

	droverapi "github.com/drover/drover/api"
	"github.com/drover/drover/deployments/slugs"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions/nomad"
)

// The artifact block fetches the slug with the grant the URL carries, and
// the checksum stays in the getter options, out of the URL.
func TestRenderedArtifactCarriesAGrant(t *testing.T) {
	grants := slugs.NewGrants([]byte("config key"))
	d := deployment(pipelines.Formation{"web": 2, "worker": 1})
	d.Slug.URL = droverapi.SlugURL("http://drover.internal:8080", grants, digest, time.Now().Add(time.Hour))
	job, err := nomad.Render(nomad.JobInput{Spec: spec(nil), Deployment: d})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range job.TaskGroups {
		for _, task := range g.Tasks {
			for _, a := range task.Artifacts {
				n++
				u, err := url.Parse(*a.GetterSource)
				if err != nil {
					t.Fatalf("%s/%s artifact source %q: %v", *g.Name, task.Name, *a.GetterSource, err)
				}
				if u.Path != droverapi.SlugPath(digest) {
					t.Errorf("%s/%s artifact path = %q, want %q", *g.Name, task.Name, u.Path, droverapi.SlugPath(digest))
				}
				if err := grants.Check(slugs.GrantDownload, digest, u.Query().Get("grant"), time.Now()); err != nil {
					t.Errorf("%s/%s artifact source %q: %v", *g.Name, task.Name, u, err)
				}
				if a.GetterOptions["checksum"] != "sha256:"+digest {
					t.Errorf("%s/%s checksum option = %q", *g.Name, task.Name, a.GetterOptions["checksum"])
				}
			}
		}
	}
	if n != 2 {
		t.Fatalf("%d artifacts, want one per process group (web, worker)", n)
	}
}
