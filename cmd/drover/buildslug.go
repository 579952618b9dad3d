package main

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gin-gonic/gin"
	"github.com/spf13/cobra"

	"github.com/drover/drover/api"
	"github.com/drover/drover/buildjobs"
	"github.com/drover/drover/deployments/slugs"
	"github.com/drover/drover/regions/nomad"
	"github.com/drover/drover/workflows"
)

// newBuildSlugCmd is the body of a Nomad build job: it builds the commit
// its environment names and uploads the slug to drover (slugs.RunJob).
// Hidden: only build jobs run it.
func newBuildSlugCmd(s Streams) *cobra.Command {
	return &cobra.Command{
		Use:    buildjobs.Command,
		Short:  "Build one commit into a slug and upload it to drover (the body of a Nomad build job)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := slugs.RunJob(cmd.Context(), os.Getenv, s.Out); err != nil {
				return fmt.Errorf("build failed: %w", err)
			}
			return nil
		},
	}
}

// builder is the worker's Builder: with builds: in drover.yaml a Nomad
// batch job per build on the build nodes, else the sandbox in this process.
func (n *Node) builder() (workflows.Builder, error) {
	b := n.Config.Builds
	if b == nil {
		return &slugs.Builder{Store: n.slugs, WorkDir: filepath.Join(n.DataDir, "builds"), Logger: n.Logger,
			Sandbox: n.sandbox, CacheDir: n.Options.getenv(envBuildCache)}, nil
	}
	r, ok := n.regions[b.Region].(*nomad.Region)
	if !ok {
		var err error
		if r, err = n.nomadRegion(b.Region, n.Config.Regions[b.Region]); err != nil {
			return nil, err
		}
	}
	if b.UploadURL == "" && !n.serves() && n.publicURL() == "" {
		return nil, &hintError{err: fmt.Errorf("%s: builds.upload_url is not set and neither is --public-url: build jobs would not know where to upload slugs", n.Config.File),
			hint: "pass --public-url https://drover.internal (or set " + envPublicURL + "), the address of drover's servers as build nodes reach it"}
	}
	n.say("Builds:", fmt.Sprintf("Nomad batch jobs in region %s, node pool %s", b.Region, cmp.Or(b.NodePool, "default")))
	return &buildjobs.Builder{Jobs: r, Spec: *b, Grants: n.grants, Slugs: n.slugs,
		UploadURL: func() string { return cmp.Or(b.UploadURL, n.publicURL()) }}, nil
}

// registerUploads adds the route build jobs upload slugs to, on servers of
// a drover that builds in Nomad.
func (n *Node) registerUploads(r gin.IRoutes) {
	if n.Config.Builds == nil {
		return
	}
	(&api.Uploads{Store: n.slugs, Grants: n.grants}).Register(r)
}
