package slugs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/drover/drover/pipelines"
)

// Artifacts is where slugs live, whichever backend keeps them: the local
// Store for `drover dev`, the S3Store for replicas that share one bucket.
// Digests are 64 lowercase hex digits; any other is refused with an error
// wrapping pipelines.ErrInvalid.
type Artifacts interface {
	// Put stores the slug read from r and returns its sha256 digest.
	Put(ctx context.Context, r io.Reader) (string, error)
	// Path returns a local file holding the slug; an error wrapping
	// pipelines.ErrNotFound if there is no such slug.
	Path(digest string) (string, error)
	// Has reports whether the slug exists.
	Has(digest string) bool
	// Open opens the slug for reading; an error wrapping
	// pipelines.ErrNotFound if there is no such slug.
	Open(digest string) (*os.File, error)
	// Check returns an error if the store cannot answer, for a readiness
	// probe.
	Check(ctx context.Context) error
	// String says where slugs live, without secrets, for a start-up banner.
	String() string
	// List returns every slug stored, for collection.
	List(ctx context.Context) ([]Stored, error)
	// Delete removes a slug; one that is not there is already deleted.
	Delete(ctx context.Context, digest string) error
}

var (
	_ Artifacts = (*Store)(nil)
	_ Artifacts = (*S3Store)(nil)
)

// SpecVar is the environment variable that names the slug store.
const SpecVar = "DROVER_SLUG_STORE"

// specWant is the shape of a good spec, shown in every refusal.
const specWant = "want s3://bucket?endpoint=https://s3.example.com&region=us-east-1 or file:///var/lib/drover/slugs"

// StoreSpec is a parsed DROVER_SLUG_STORE value. Exactly one of Dir (a
// file store) and Bucket (an S3 store) is set.
type StoreSpec struct {
	// Dir is the absolute directory of a file store.
	Dir string

	// Bucket is the S3 bucket; the fields below go with it.
	Bucket string
	// Endpoint is the server's base URL, scheme and host only; http://
	// means no TLS.
	Endpoint string
	// Region signs the requests (us-east-1 suits most self-hosted servers).
	Region string
	// Prefix is put as it is before <digest>.tar.gz in every key; end it
	// with "/" for a folder.
	Prefix string
	// PathStyle addresses the bucket as endpoint/bucket rather than
	// bucket.endpoint; true by default since most self-hosted servers have
	// no wildcard DNS for buckets.
	PathStyle bool
}

// String says where slugs live, for a start-up banner: e.g.
// "s3://drover-slugs at https://s3.internal (region us-east-1, path-style)".
// It holds no secret, since a spec that carries one is refused.
func (s StoreSpec) String() string {
	if s.Bucket == "" {
		return (&url.URL{Scheme: "file", Path: s.Dir}).String()
	}
	style := "path-style"
	if !s.PathStyle {
		style = "virtual-hosted-style"
	}
	where := "s3://" + s.Bucket
	if s.Prefix != "" {
		where += "/" + s.Prefix
	}
	return fmt.Sprintf("%s at %s (region %s, %s)", where, s.Endpoint, s.Region, style)
}

// prefixRE keeps key prefixes to plain folder-like names: no leading "/",
// no empty, "." or ".." segments, which some servers map onto a file
// system.
var prefixRE = regexp.MustCompile(`^([A-Za-z0-9_-][A-Za-z0-9._-]*/)*([A-Za-z0-9_-][A-Za-z0-9._-]*)?$`)

// ParseStoreSpec parses a DROVER_SLUG_STORE value:
//
//	file:///var/lib/drover/slugs
//	s3://bucket?endpoint=https://s3.internal&region=us-east-1[&prefix=slugs/][&path_style=true|false]
//
// It returns an error wrapping pipelines.ErrInvalid that names the
// variable and shows a good value. Credentials never belong in the spec
// (they come from the AWS_* variables): a spec carrying any is refused, and
// no error repeats a part of the spec that could hold one.
func ParseStoreSpec(spec string) (StoreSpec, error) {
	u, err := url.Parse(spec)
	if err != nil {
		// url's own error repeats the whole value, secrets and all.
		return StoreSpec{}, fmt.Errorf("%s: not a URL: %s: %w", SpecVar, specWant, pipelines.ErrInvalid)
	}
	shown := spec
	if mayHoldSecret(u) {
		shown = redactSpec(u)
	}
	if u.User != nil {
		return StoreSpec{}, specError(shown, "credentials do not belong in the URL: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	if u.Fragment != "" || strings.Contains(spec, "#") {
		return StoreSpec{}, specError(shown, "a fragment (#…) means nothing here")
	}
	switch u.Scheme {
	case "file":
		return parseFileSpec(u, shown)
	case "s3":
		return parseS3Spec(u, shown)
	case "":
		return StoreSpec{}, specError(shown, "no scheme")
	default:
		return StoreSpec{}, specError(shown, fmt.Sprintf("unknown scheme %q", u.Scheme))
	}
}

func parseFileSpec(u *url.URL, shown string) (StoreSpec, error) {
	if u.Opaque != "" || (u.Host != "" && u.Host != "localhost") {
		return StoreSpec{}, specError(shown, "a file store needs an absolute path after file:// (three slashes)")
	}
	if u.RawQuery != "" {
		return StoreSpec{}, specError(shown, "a file store takes no parameters")
	}
	if u.Path == "" || !filepath.IsAbs(u.Path) {
		return StoreSpec{}, specError(shown, "a file store needs an absolute path")
	}
	return StoreSpec{Dir: filepath.Clean(u.Path)}, nil
}

func parseS3Spec(u *url.URL, shown string) (StoreSpec, error) {
	if u.Opaque != "" {
		return StoreSpec{}, specError(shown, "want s3:// and a bucket")
	}
	if u.Host == "" {
		return StoreSpec{}, specError(shown, "no bucket")
	}
	if err := s3utils.CheckValidBucketNameStrict(u.Host); err != nil {
		return StoreSpec{}, specError(shown, fmt.Sprintf("bucket %q: %v", u.Host, err))
	}
	if u.Path != "" && u.Path != "/" {
		return StoreSpec{}, specError(shown, "no path after the bucket: put a key prefix in prefix=")
	}
	s := StoreSpec{Bucket: u.Host, PathStyle: true}
	params, err := queryParams(u.RawQuery)
	if err != nil {
		return StoreSpec{}, specError(shown, err.Error())
	}
	for _, p := range params {
		switch p.key {
		case "endpoint":
			e, err := parseEndpoint(p.value)
			if err != nil {
				return StoreSpec{}, specError(shown, err.Error())
			}
			s.Endpoint = e
		case "region":
			if !regionRE.MatchString(p.value) {
				return StoreSpec{}, specError(shown, fmt.Sprintf("region %q: want a name such as us-east-1", p.value))
			}
			s.Region = p.value
		case "prefix":
			if !prefixRE.MatchString(p.value) {
				return StoreSpec{}, specError(shown, fmt.Sprintf("prefix %q: want letters, digits, '.', '_', '-' in segments joined by '/', such as slugs/", p.value))
			}
			s.Prefix = p.value
		case "path_style":
			b, err := strconv.ParseBool(p.value)
			if err != nil {
				return StoreSpec{}, specError(shown, fmt.Sprintf("path_style %q: want true or false", p.value))
			}
			s.PathStyle = b
		default:
			return StoreSpec{}, specError(shown, fmt.Sprintf("unknown parameter %q: want endpoint, region, prefix or path_style", p.key))
		}
	}
	if s.Endpoint == "" {
		return StoreSpec{}, specError(shown, "no endpoint=")
	}
	if s.Region == "" {
		return StoreSpec{}, specError(shown, "no region=")
	}
	return s, nil
}

// regionRE is what S3 region names look like; anything else is a typo.
var regionRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

type param struct{ key, value string }

// queryParams splits a query keeping its order and refusing repeats, which
// url.Values would silently merge.
func queryParams(raw string) ([]param, error) {
	var params []param
	seen := map[string]bool{}
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return nil, errors.New("a parameter name is badly escaped")
		}
		value, err := url.QueryUnescape(v)
		if err != nil {
			return nil, fmt.Errorf("parameter %s is badly escaped", key)
		}
		if seen[key] {
			return nil, fmt.Errorf("parameter %q given twice", key)
		}
		seen[key] = true
		params = append(params, param{key, value})
	}
	return params, nil
}

// parseEndpoint accepts a base URL of scheme and host only: minio-go
// addresses buckets below the root and cannot use a path.
func parseEndpoint(raw string) (string, error) {
	e, err := url.Parse(raw)
	if err != nil || e.Host == "" || (e.Scheme != "http" && e.Scheme != "https") {
		return "", errors.New("endpoint: want http:// or https:// and a host, such as https://s3.example.com")
	}
	if e.User != nil {
		return "", errors.New("endpoint: credentials do not belong in the URL: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	if (e.Path != "" && e.Path != "/") || e.RawQuery != "" || e.Fragment != "" {
		return "", fmt.Errorf("endpoint %s: want scheme and host only, no path", (&url.URL{Scheme: e.Scheme, Host: e.Host}).String())
	}
	return e.Scheme + "://" + e.Host, nil
}

// mayHoldSecret reports whether a spec has user info, in itself or in its
// endpoint, or a parameter it does not know, any of which could be a key.
func mayHoldSecret(u *url.URL) bool {
	if u.User != nil {
		return true
	}
	for _, part := range strings.Split(u.RawQuery, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		key, _ := url.QueryUnescape(k)
		switch key {
		case "region", "prefix", "path_style":
		case "endpoint":
			if value, err := url.QueryUnescape(v); err != nil || strings.Contains(value, "@") {
				return true
			}
		default:
			return true
		}
	}
	return false
}

// redactSpec renders a spec for an error with every place a secret could hide
// blanked: user info, in the spec and in its endpoint, and the values of
// parameters it does not know.
func redactSpec(u *url.URL) string {
	c := *u
	if c.User != nil {
		c.User = url.User("REDACTED")
	}
	c.Fragment, c.RawFragment = "", ""
	var parts []string
	for _, part := range strings.Split(u.RawQuery, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		key, _ := url.QueryUnescape(k)
		switch key {
		case "endpoint":
			value, _ := url.QueryUnescape(v)
			if e, err := url.Parse(value); err == nil && e.User != nil {
				e.User = url.User("REDACTED")
				v = e.String()
			} else if err != nil || strings.Contains(value, "@") {
				v = "REDACTED"
			}
		case "region", "prefix", "path_style":
		default:
			if len(k) > 32 || strings.ContainsAny(key, "@:/") {
				k = "REDACTED"
			}
			v = "REDACTED"
		}
		parts = append(parts, k+"="+v)
	}
	c.RawQuery = strings.Join(parts, "&")
	c.ForceQuery = false
	return c.String()
}

func specError(shown, problem string) error {
	return fmt.Errorf("%s %q: %s: %s: %w", SpecVar, shown, problem, specWant, pipelines.ErrInvalid)
}

// openCheckTimeout bounds the bucket check at start when the caller's
// context has no deadline, so a server that never answers fails the start
// rather than hanging it.
const openCheckTimeout = 30 * time.Second

// OpenStore opens the slug store that spec, a DROVER_SLUG_STORE value,
// names (see ParseStoreSpec). A file store lives in its directory, created
// if need be, and does not use cacheDir; an S3 store keeps a verified local copy of each slug it has
// stored or fetched in cacheDir, created if need be, and takes its
// credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
// AWS_SESSION_TOKEN, or else the shared credentials file
// (AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE).
//
// It returns an error wrapping pipelines.ErrInvalid for a bad spec, and an
// error naming the bucket and endpoint if the bucket does not answer or
// does not exist: buckets are made by whoever runs the object storage,
// never by drover.
func OpenStore(ctx context.Context, spec, cacheDir string) (Artifacts, error) {
	s, err := ParseStoreSpec(spec)
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, openCheckTimeout)
		defer cancel()
	}
	if s.Bucket == "" {
		st, err := NewStore(s.Dir)
		if err != nil {
			return nil, err
		}
		if err := st.Check(ctx); err != nil {
			return nil, err
		}
		return st, nil
	}
	st, err := newS3Store(s, cacheDir)
	if err != nil {
		return nil, err
	}
	if err := st.Check(ctx); err != nil {
		return nil, err
	}
	return st, nil
}
