package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/drover/drover/deployments/slugs"
)

// SlugPutter stores a slug and names it by the digest it computed.
type SlugPutter interface {
	Put(ctx context.Context, r io.Reader) (string, error)
}

// Uploads is the route build jobs upload their slugs to. A build job runs
// the repository's code, so it holds nothing but a grant for one upload ID
// that expires with the build; drover hashes what it stores and answers
// with a receipt binding that upload ID to that digest, the only proof of
// the slug the build made that drover's worker accepts.
type Uploads struct {
	Store  SlugPutter
	Grants *slugs.Grants
	// MaxSize bounds one slug; DefaultMaxUpload when 0.
	MaxSize int64
	// ReceiptTTL is how long a receipt stays valid; an hour when 0.
	ReceiptTTL time.Duration
	Now        func() time.Time
}

// DefaultMaxUpload is the largest slug a build job may upload.
const DefaultMaxUpload = 1 << 30

// uploadReadTimeout replaces the server's short read timeout for one
// upload: a large slug from a far build node takes longer than a webhook.
const uploadReadTimeout = 15 * time.Minute

// Register adds PUT /slugs/uploads/:id: the body is the slug, the upload
// grant the bearer token. It answers 201 with slugs.Uploaded; 401 without a
// grant, 403 for a grant that is forged, for another upload or expired,
// 413 for a slug over MaxSize. Nothing is stored unless it answers 201.
func (u *Uploads) Register(r gin.IRoutes) {
	r.PUT("/slugs/uploads/:id", u.put)
}

func (u *Uploads) now() time.Time {
	if u.Now != nil {
		return u.Now()
	}
	return time.Now()
}

func (u *Uploads) put(c *gin.Context) {
	id := c.Param("id")
	if !slugs.ValidUploadID(id) {
		fail(c, http.StatusNotFound, "not_found", "no such upload")
		return
	}
	grant, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	if !ok || grant == "" {
		c.Header("WWW-Authenticate", `Bearer realm="drover slug upload"`)
		fail(c, http.StatusUnauthorized, "unauthorized", "an upload needs its grant as a bearer token")
		return
	}
	now := u.now()
	if err := u.Grants.Check(slugs.GrantUpload, id, grant, now); err != nil {
		fail(c, http.StatusForbidden, "forbidden", err.Error())
		return
	}
	max := u.MaxSize
	if max <= 0 {
		max = DefaultMaxUpload
	}
	if c.Request.ContentLength > max {
		fail(c, http.StatusRequestEntityTooLarge, "too_large", "the slug is larger than the upload limit")
		return
	}
	// The server's read timeout suits webhooks; a slug may take minutes.
	if err := http.NewResponseController(c.Writer).SetReadDeadline(time.Now().Add(uploadReadTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		fail(c, http.StatusInternalServerError, "internal", "could not extend the read deadline")
		return
	}
	body := &countingReader{r: http.MaxBytesReader(c.Writer, c.Request.Body, max)}
	digest, err := u.Store.Put(c.Request.Context(), body)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		fail(c, http.StatusRequestEntityTooLarge, "too_large", "the slug is larger than the upload limit")
		return
	case err != nil:
		fail(c, http.StatusInternalServerError, "internal", "could not store the slug")
		return
	}
	ttl := u.ReceiptTTL
	if ttl <= 0 {
		ttl = time.Hour
	}
	c.JSON(http.StatusCreated, slugs.Uploaded{Digest: digest, Size: body.n, Receipt: u.Grants.Receipt(id, digest, now.Add(ttl))})
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
