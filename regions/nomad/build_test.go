package nomad_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions/nomad"
)

func TestRenderBuildJob(t *testing.T) {
	region := pipelines.RegionSpec{Name: "us", Driver: pipelines.DriverNomad, Nomad: pipelines.NomadSpec{
		Address: "http://nomad:4646", Region: "us-east", Namespace: "apps", NodePool: "apps",
	}}
	commit := "0123456789abcdef0123456789abcdef01234567"
	job := nomad.BuildJob{
		ID: nomad.BuildJobID("hello", commit, "k3x9"), App: "hello", Commit: commit,
		Args:    []string{"build-slug"},
		Env:     map[string]string{"DROVER_BUILD_COMMIT": commit},
		Secrets: map[string]string{"git_token": "s3cret"},
	}
	tests := []struct {
		name  string
		spec  pipelines.BuildsSpec
		check func(t *testing.T, got []byte)
	}{
		{"build-docker", pipelines.BuildsSpec{Region: "us", NodePool: "build", Datacenters: []string{"dc1", "dc2"}, Image: "ghcr.io/acme/drover:1.4"}, nil},
		{"build-raw-exec", pipelines.BuildsSpec{Region: "us", Driver: "raw_exec", Command: "/usr/local/bin/drover",
			Resources: pipelines.BuildResources{CPU: 3000, Memory: 8192}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := job
			b.Spec = tt.spec
			j, err := nomad.RenderBuildJob(region, b)
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(j, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			// The job spec is readable by whoever may read jobs; the
			// secret reaches the task through the variable only.
			if bytes.Contains(got, []byte("s3cret")) {
				t.Fatal("the secret is in the job spec")
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", "golden", tt.name+".json")
			golden(t, path, got)
		})
	}
}

func TestRenderBuildJobRefuses(t *testing.T) {
	region := pipelines.RegionSpec{Name: "us", Driver: pipelines.DriverNomad, Nomad: pipelines.NomadSpec{Address: "http://nomad:4646"}}
	spec := pipelines.BuildsSpec{Region: "us", Image: "drover"}
	for name, b := range map[string]nomad.BuildJob{
		"bad ID":         {ID: "build/../x", Spec: spec},
		"bad secret key": {ID: "build-1", Spec: spec, Secrets: map[string]string{"x }}{{ env": "v"}},
	} {
		if _, err := nomad.RenderBuildJob(region, b); !errors.Is(err, pipelines.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}
