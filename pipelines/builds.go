package pipelines

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// BuildsSpec runs builds as Nomad batch jobs on build nodes instead of in
// the worker (drover.yaml's builds: block), so code from a push or a pull
// request never runs on a machine that holds drover's secrets.
type BuildsSpec struct {
	// Region is the Nomad region of drover.yaml the build jobs run in.
	Region string `yaml:"region"`
	// NodePool and Datacenters place build jobs on build nodes.
	NodePool    string   `yaml:"node_pool"`
	Datacenters []string `yaml:"datacenters"`
	// Driver runs drover's build-slug command: docker (default) with
	// Image, or exec/raw_exec with Command, the path of the drover binary
	// on the build nodes.
	Driver  string `yaml:"driver"`
	Image   string `yaml:"image"`
	Command string `yaml:"command"`
	// Resources of each build job; DefaultBuildCPU and DefaultBuildMemory
	// when 0.
	Resources BuildResources `yaml:"resources"`
	// UploadURL is the base URL the job uploads its slug to; default
	// drover's public URL.
	UploadURL string `yaml:"upload_url"`
	// Timeout bounds one build job, e.g. "30m"; DefaultBuildJobTimeout
	// when unset.
	Timeout string `yaml:"timeout"`
}

// BuildResources are a build job's CPU (MHz) and memory (MB).
type BuildResources struct {
	CPU    int `yaml:"cpu"`
	Memory int `yaml:"memory"`
}

// Defaults of a build job.
const (
	DefaultBuildCPU    = 1000
	DefaultBuildMemory = 2048
	BuildDriverDocker  = "docker"
)

// DefaultBuildJobTimeout bounds a build job when builds.timeout is unset.
const DefaultBuildJobTimeout = 20 * time.Minute

// JobTimeout is how long one build job may take.
func (b BuildsSpec) JobTimeout() time.Duration { return durationOr(b.Timeout, DefaultBuildJobTimeout) }

// BuildDriver is the task driver of build jobs: docker unless set.
func (b BuildsSpec) BuildDriver() string {
	if b.Driver == "" {
		return BuildDriverDocker
	}
	return b.Driver
}

// validateBuilds checks the builds: block against the regions it names.
func (c *Config) validateBuilds(bad func(key, format string, args ...any) error) error {
	b := c.Builds
	if b == nil {
		return nil
	}
	r, ok := c.Regions[b.Region]
	switch {
	case b.Region == "":
		return bad("builds.region", "missing; name the Nomad region of regions: that runs build jobs")
	case !ok:
		return bad("builds.region", "unknown region %q; define it under regions", b.Region)
	case r.Driver != DriverNomad:
		return bad("builds.region", "region %q is not a Nomad region (driver: %s); builds run as Nomad batch jobs", b.Region, r.Driver)
	}
	for i, dc := range b.Datacenters {
		if dc == "" {
			return bad(fmt.Sprintf("builds.datacenters[%d]", i), "empty datacenter name")
		}
	}
	switch b.BuildDriver() {
	case BuildDriverDocker:
		if b.Image == "" {
			return bad("builds.image", "missing; the docker driver needs an image with drover, git and the buildpacks' toolchains (go, node) on its PATH")
		}
		if b.Command != "" {
			return bad("builds.command", "only exec and raw_exec builds run a command; docker builds run the image's drover")
		}
	case "exec", "raw_exec":
		if b.Command == "" {
			return bad("builds.command", "missing; the %s driver needs the path of the drover binary on the build nodes, e.g. /usr/local/bin/drover", b.Driver)
		}
		if b.Image != "" {
			return bad("builds.image", "only docker builds take an image; set driver: docker")
		}
	default:
		return bad("builds.driver", "unknown driver %q; want %s", b.Driver, joinQuoted([]string{BuildDriverDocker, "exec", "raw_exec"}))
	}
	if b.Resources.CPU < 0 {
		return bad("builds.resources.cpu", "%d: want MHz, 0 or more", b.Resources.CPU)
	}
	if b.Resources.Memory < 0 {
		return bad("builds.resources.memory", "%d: want MB, 0 or more", b.Resources.Memory)
	}
	if d, err := time.ParseDuration(b.Timeout); b.Timeout != "" && (err != nil || d <= 0) {
		return bad("builds.timeout", "%q: want a positive duration such as 20m", b.Timeout)
	}
	if b.UploadURL != "" {
		if u, err := url.Parse(b.UploadURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("builds.upload_url", "%q is not an http(s) URL; give drover's address as the build nodes reach it", b.UploadURL)
		}
	}
	return nil
}

func joinQuoted(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = strconv.Quote(v)
	}
	return strings.Join(q, ", ")
}
