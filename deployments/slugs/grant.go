package slugs

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Grant actions: what a grant lets its holder do with one slug or upload.
const (
	// GrantDownload lets a Nomad client fetch one slug by digest.
	GrantDownload = "download"
	// GrantUpload lets one build job upload the slug it built.
	GrantUpload = "upload"
)

// ErrGrant is returned by Grants.Check for a grant that is missing,
// malformed, forged, for something else, or expired.
var ErrGrant = errors.New("slug grant refused")

// Grants signs short-lived permissions to read or write one slug, so
// drover can hand a URL to a Nomad client or a build job without a login:
// a grant names its action, its subject (a digest, an upload's ID) and its
// expiry, under an HMAC-SHA256 only drover's servers and workers can make.
//
// A grant is "<expiry unix seconds>.<base64url MAC>"; the MAC covers the
// action, subject and expiry, so one for a digest is worthless for
// another, or for an upload.
type Grants struct {
	key []byte
	// previous are grant keys of previous config keys: grants they signed
	// (in Nomad jobs already running) still pass while the key rotates.
	previous [][]byte
}

// NewGrants derives the grant key from secret (drover's config key, which
// every server and worker shares), so a grant one replica signs another
// accepts. The derivation keeps the grant key from being the key that
// seals config vars. Grants signed under the previous secrets still pass
// Check.
func NewGrants(secret []byte, previous ...[]byte) *Grants {
	g := &Grants{key: grantKey(secret)}
	for _, p := range previous {
		g.previous = append(g.previous, grantKey(p))
	}
	return g
}

func grantKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("drover slug grants v1"))
	return m.Sum(nil)
}

// Sign returns a grant for action on subject, valid until expires.
func (g *Grants) Sign(action, subject string, expires time.Time) string {
	exp := strconv.FormatInt(expires.Unix(), 10)
	return exp + "." + base64.RawURLEncoding.EncodeToString(mac(g.key, action, subject, exp))
}

// Check returns nil if grant allows action on subject at now, and an error
// matching ErrGrant saying why not otherwise.
func (g *Grants) Check(action, subject, grant string, now time.Time) error {
	exp, sig, ok := strings.Cut(grant, ".")
	if grant == "" {
		return fmt.Errorf("%w: no grant", ErrGrant)
	}
	unix, err := strconv.ParseInt(exp, 10, 64)
	if !ok || err != nil {
		return fmt.Errorf("%w: malformed grant", ErrGrant)
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !g.signed(got, action, subject, exp) {
		return fmt.Errorf("%w: bad signature", ErrGrant)
	}
	if !now.Before(time.Unix(unix, 0)) {
		return fmt.Errorf("%w: expired at %s", ErrGrant, time.Unix(unix, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

// signed reports whether got is the MAC of the current or a previous key.
func (g *Grants) signed(got []byte, action, subject, exp string) bool {
	ok := hmac.Equal(got, mac(g.key, action, subject, exp))
	for _, k := range g.previous {
		ok = hmac.Equal(got, mac(k, action, subject, exp)) || ok
	}
	return ok
}

func mac(key []byte, action, subject, exp string) []byte {
	m := hmac.New(sha256.New, key)
	// Lengths first, so no two (action, subject, expiry) triples share
	// the bytes the MAC covers.
	fmt.Fprintf(m, "%d:%s|%d:%s|%s", len(action), action, len(subject), subject, exp)
	return m.Sum(nil)
}
