package api

import (
	"errors"
	"net/http"
	"os"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/drover/drover/deployments/slugs"
	"github.com/drover/drover/pipelines"
)

// SlugFiles opens slugs by digest.
type SlugFiles interface {
	Open(digest string) (*os.File, error)
}

// SlugPath is where a slug is served: Nomad's artifact block fetches it
// from base + SlugPath(digest) and checks the digest itself.
func SlugPath(digest string) string { return "/slugs/" + digest + ".tar.gz" }

// RegisterSlugs serves slugs at /slugs/<sha256>.tar.gz with no login, so
// Nomad clients' go-getter can fetch them. The path is the content's own
// sha256, which cannot be guessed without the content or access to the
// ledger; the artifact block verifies the same checksum on arrival.
func RegisterSlugs(r gin.IRoutes, files SlugFiles) {
	serve := func(c *gin.Context) {
		digest, ok := strings.CutSuffix(c.Param("file"), ".tar.gz")
		if !ok {
			fail(c, http.StatusNotFound, "not_found", "no such slug")
			return
		}
		f, err := files.Open(digest)
		switch {
		case errors.Is(err, pipelines.ErrNotFound), errors.Is(err, pipelines.ErrInvalid):
			fail(c, http.StatusNotFound, "not_found", "no such slug")
			return
		case errors.Is(err, slugs.ErrCorrupt):
			// The bucket holds other bytes under this digest: never serve
			// them. Nomad's checksum would refuse them too, later and less clearly.
			fail(c, http.StatusBadGateway, "corrupt", "the stored slug does not match its digest; it is not served")
			return
		case err != nil:
			fail(c, http.StatusInternalServerError, "internal", "could not read the slug")
			return
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			fail(c, http.StatusInternalServerError, "internal", "could not read the slug")
			return
		}
		c.Header("Content-Type", "application/gzip")
		// Content-addressed: the bytes behind a name never change.
		c.Header("Cache-Control", "public, max-age=31536000, immutable")
		c.Header("ETag", `"`+digest+`"`)
		http.ServeContent(c.Writer, c.Request, "", st.ModTime(), f)
	}
	r.GET("/slugs/:file", serve)
	r.HEAD("/slugs/:file", serve)
}
