package slugs

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/drover/drover/pipelines"
)

// maxProcfile bounds the Procfile read from a slug.
const maxProcfile = 64 << 10

// Inspect reads what a build made from the slug itself, in one pass: its
// Procfile and the buildpack its root tree calls for (as Detect does). A
// slug built elsewhere (a build job, which runs the repository's code) says
// only this much about itself that drover believes. A slug without a
// Procfile, or one that does not parse, is an error matching
// pipelines.ErrInvalid.
func Inspect(ctx context.Context, slugPath string) (pipelines.Procfile, string, error) {
	f, err := os.Open(slugPath)
	if err != nil {
		return nil, "", fmt.Errorf("inspect slug: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, "", fmt.Errorf("inspect slug: %w: %w", err, pipelines.ErrInvalid)
	}
	tr := tar.NewReader(zr)
	var procfile []byte
	seen := map[string]bool{}
	for {
		if err := ctx.Err(); err != nil {
			return nil, "", err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, "", fmt.Errorf("inspect slug: %w: %w", err, pipelines.ErrInvalid)
		}
		name := strings.TrimPrefix(hdr.Name, "./")
		if strings.Contains(strings.TrimSuffix(name, "/"), "/") {
			continue
		}
		seen[strings.TrimSuffix(name, "/")] = true
		if name == "Procfile" && hdr.Typeflag == tar.TypeReg {
			if procfile, err = io.ReadAll(io.LimitReader(tr, maxProcfile+1)); err != nil {
				return nil, "", fmt.Errorf("inspect slug: %w", err)
			}
			if len(procfile) > maxProcfile {
				return nil, "", fmt.Errorf("Procfile in slug is larger than %d bytes: %w", maxProcfile, pipelines.ErrInvalid)
			}
		}
	}
	if procfile == nil {
		return nil, "", fmt.Errorf("slug has no Procfile at its root: %w", pipelines.ErrInvalid)
	}
	p, err := pipelines.ParseProcfile(strings.NewReader(string(procfile)))
	if err != nil {
		return nil, "", err
	}
	pack := BuildpackProcfile
	switch {
	case seen["go.mod"]:
		pack = BuildpackGo
	case seen["package.json"]:
		pack = BuildpackNode
	}
	return p, pack, nil
}
