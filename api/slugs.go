package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

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

// SlugURL returns the URL at which a Nomad client downloads digest from
// the drover at base: SlugPath with a download grant valid until expires.
func SlugURL(base string, grants *slugs.Grants, digest string, expires time.Time) string {
	return strings.TrimRight(base, "/") + SlugPath(digest) + "?grant=" + url.QueryEscape(grants.Sign(slugs.GrantDownload, digest, expires))
}

// SlugGrantExpiry is when a slug URL signed at now for ttl expires:
// now+ttl rounded up to a whole step (a day for long TTLs), so every
// deploy of a digest within that step renders the same artifact URL and
// Nomad sees no change in a job whose only difference would be the grant.
func SlugGrantExpiry(now time.Time, ttl time.Duration) time.Time {
	step := min(ttl/10, 24*time.Hour)
	if step <= 0 {
		return now.Add(ttl)
	}
	return now.Add(ttl).Truncate(step).Add(step)
}

// SlugAccess says who may download slugs: holders of a download grant for
// the digest (Nomad clients, given SlugURL) and callers with an API token
// that has the read scope.
type SlugAccess struct {
	Grants *slugs.Grants
	Tokens []Token
}

// RegisterSlugs serves slugs at /slugs/<sha256>.tar.gz to callers access
// lets through. A digest shows up in releases, job meta and logs, and a
// slug holds the app's whole source tree, so knowing one is not enough.
// Refusals (401, 403) come before the store is read and never say whether
// the digest exists.
func RegisterSlugs(r gin.IRoutes, files SlugFiles, access SlugAccess) {
	auth := newAuthenticator(access.Tokens)
	serve := func(c *gin.Context) {
		digest, hasSuffix := strings.CutSuffix(c.Param("file"), ".tar.gz")
		if !access.allows(c, auth, digest) {
			return
		}
		if !hasSuffix {
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
		// Content-addressed: the bytes behind a name never change. Private,
		// since a shared cache would serve them to callers without a grant.
		c.Header("Cache-Control", "private, max-age=31536000, immutable")
		c.Header("ETag", `"`+digest+`"`)
		http.ServeContent(c.Writer, c.Request, "", st.ModTime(), f)
	}
	r.GET("/slugs/:file", serve)
	r.HEAD("/slugs/:file", serve)
}

// allows checks the request's grant or bearer token against digest, and
// answers 401 or 403 when neither lets it through.
func (a SlugAccess) allows(c *gin.Context, auth *authenticator, digest string) bool {
	if grant, ok := c.GetQuery("grant"); ok {
		if a.Grants == nil {
			fail(c, http.StatusForbidden, "forbidden", "slug grants are not accepted here")
			return false
		}
		if err := a.Grants.Check(slugs.GrantDownload, digest, grant, time.Now()); err != nil {
			fail(c, http.StatusForbidden, "forbidden", err.Error()+"; ask drover for a new slug URL (redeploy the release)")
			return false
		}
		return true
	}
	if c.GetHeader("Authorization") == "" {
		fail(c, http.StatusUnauthorized, "unauthorized", "slugs are served only with a signed ?grant= (the URL drover gives Nomad) or a bearer token with the read scope")
		return false
	}
	t, ok := auth.authenticate(c)
	if !ok {
		return false
	}
	if !t.may(pipelines.ScopeRead) {
		fail(c, http.StatusForbidden, "forbidden", fmt.Sprintf("token %q lacks the read scope", t.Name))
		return false
	}
	// Which pipelines a slug belongs to is not known here, so a token
	// limited to some of them downloads none.
	if t.Pipelines != nil {
		fail(c, http.StatusForbidden, "forbidden", fmt.Sprintf("token %q is limited to some pipelines; downloading slugs needs a token for all of them", t.Name))
		return false
	}
	return true
}
