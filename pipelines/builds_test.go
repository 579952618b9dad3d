package pipelines_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/drover/drover/pipelines"
)

const buildsRegions = `regions:
  us: { driver: nomad, address: http://127.0.0.1:4646 }
  dev: { driver: local }
`

func TestBuildsConfig(t *testing.T) {
	c, err := pipelines.ParseConfig("drover.yaml", []byte(buildsRegions+`builds:
  region: us
  node_pool: build
  datacenters: [dc1, dc2]
  driver: raw_exec
  command: /usr/local/bin/drover
  resources: { cpu: 2000, memory: 4096 }
  upload_url: https://drover.internal
  timeout: 30m
`))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	b := c.Builds
	if b == nil || b.Region != "us" || b.NodePool != "build" || strings.Join(b.Datacenters, ",") != "dc1,dc2" ||
		b.BuildDriver() != "raw_exec" || b.Command != "/usr/local/bin/drover" || b.Resources.CPU != 2000 ||
		b.Resources.Memory != 4096 || b.UploadURL != "https://drover.internal" || b.JobTimeout() != 30*time.Minute {
		t.Fatalf("builds = %+v", b)
	}
	c, err = pipelines.ParseConfig("drover.yaml", []byte(buildsRegions))
	if err != nil || c.Builds != nil {
		t.Fatalf("without builds: = %+v, %v; want nil (local builds)", c.Builds, err)
	}
	c, err = pipelines.ParseConfig("drover.yaml", []byte(buildsRegions+"builds: { region: us, image: ghcr.io/acme/drover:1 }\n"))
	if err != nil || c.Builds.BuildDriver() != pipelines.BuildDriverDocker || c.Builds.JobTimeout() != pipelines.DefaultBuildJobTimeout {
		t.Fatalf("docker default = %+v, %v", c.Builds, err)
	}
}

func TestBuildsConfigErrors(t *testing.T) {
	for _, tc := range []struct{ builds, key string }{
		{"{ image: x }", "builds.region"},
		{"{ region: eu, image: x }", "builds.region"},
		{"{ region: dev, image: x }", "builds.region"},
		{"{ region: us }", "builds.image"},
		{"{ region: us, image: x, command: /bin/drover }", "builds.command"},
		{"{ region: us, driver: exec }", "builds.command"},
		{"{ region: us, driver: raw_exec, command: /bin/drover, image: x }", "builds.image"},
		{"{ region: us, driver: java, command: x }", "builds.driver"},
		{"{ region: us, image: x, resources: { cpu: -1 } }", "builds.resources.cpu"},
		{"{ region: us, image: x, resources: { memory: -1 } }", "builds.resources.memory"},
		{"{ region: us, image: x, upload_url: ftp://x }", "builds.upload_url"},
		{"{ region: us, image: x, timeout: soon }", "builds.timeout"},
		{`{ region: us, image: x, datacenters: [""] }`, "builds.datacenters[0]"},
	} {
		t.Run(tc.builds, func(t *testing.T) {
			_, err := pipelines.ParseConfig("drover.yaml", []byte(buildsRegions+"builds: "+tc.builds+"\n"))
			var ce *pipelines.ConfigError
			if !errors.As(err, &ce) || ce.Key != tc.key {
				t.Fatalf("err = %v, want a ConfigError at %s", err, tc.key)
			}
		})
	}
}
