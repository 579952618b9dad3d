package slugs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// GrantUploaded is the action of a receipt: drover's word that an upload
// stored the slug with a digest. Only drover's servers sign it, after
// hashing the bytes themselves, so whoever holds one did upload that slug
// under that upload's ID.
const GrantUploaded = "uploaded"

// Receipt signs that upload uploadID stored the slug digest.
func (g *Grants) Receipt(uploadID, digest string, expires time.Time) string {
	return g.Sign(GrantUploaded, uploadID+":"+digest, expires)
}

// CheckReceipt returns nil if receipt says upload uploadID stored digest,
// and an error matching ErrGrant otherwise (forged, for another upload or
// digest, expired).
func (g *Grants) CheckReceipt(uploadID, digest, receipt string, now time.Time) error {
	if err := g.Check(GrantUploaded, uploadID+":"+digest, receipt, now); err != nil {
		return fmt.Errorf("receipt for upload %s of slug %s: %w", uploadID, digest, err)
	}
	return nil
}

// uploadIDRE is the shape of an upload's ID: it is part of a URL path.
var uploadIDRE = regexp.MustCompile(`^[0-9a-z-]{8,64}$`)

// ValidUploadID reports whether id may name an upload.
func ValidUploadID(id string) bool { return uploadIDRE.MatchString(id) }

// UploadPath is where a build job uploads its slug: PUT the tar.gz with
// the upload grant as a bearer token (a header, not a query parameter, so
// proxies do not log it).
func UploadPath(uploadID string) string { return "/slugs/uploads/" + uploadID }

// Uploaded is the answer to an upload: the digest drover computed and its
// receipt for it.
type Uploaded struct {
	Digest  string `json:"digest"`
	Size    int64  `json:"size"`
	Receipt string `json:"receipt"`
}

// Uploader is the slug store of a build job: Put streams the slug to
// drover's upload route instead of keeping it, so the job needs no bucket
// credentials, only its one upload grant.
type Uploader struct {
	// URL is the upload's full URL, base + UploadPath(id).
	URL   string
	Grant string
	// Client defaults to one with no overall timeout (slugs are large).
	Client *http.Client
	// Last is drover's answer to the last successful Put.
	Last Uploaded
}

// Put uploads the slug read from r and returns the digest drover computed,
// after checking it against its own.
func (u *Uploader) Put(ctx context.Context, r io.Reader) (string, error) {
	h := sha256.New()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.URL, io.TeeReader(r, h))
	if err != nil {
		return "", fmt.Errorf("upload slug: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+u.Grant)
	req.Header.Set("Content-Type", "application/gzip")
	c := u.Client
	if c == nil {
		c = &http.Client{}
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("upload slug to %s: %w", u.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("upload slug to %s: %s: %s", u.URL, resp.Status, strings.TrimSpace(string(body)))
	}
	var up Uploaded
	if err := json.Unmarshal(body, &up); err != nil {
		return "", fmt.Errorf("upload slug to %s: answer: %w", u.URL, err)
	}
	if mine := hex.EncodeToString(h.Sum(nil)); up.Digest != mine {
		return "", fmt.Errorf("upload slug to %s: drover stored %q, this job sent %s", u.URL, up.Digest, mine)
	}
	u.Last = up
	return up.Digest, nil
}
