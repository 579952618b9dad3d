package slugs_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover/drover/deployments/slugs"
	"github.com/drover/drover/pipelines"
)

func TestParseStoreSpec(t *testing.T) {
	tests := []struct {
		spec   string
		want   slugs.StoreSpec
		banner string
	}{
		{
			"file:///var/lib/drover/slugs",
			slugs.StoreSpec{Dir: "/var/lib/drover/slugs"},
			"file:///var/lib/drover/slugs",
		},
		{
			"file://localhost/var/lib/drover/slugs/",
			slugs.StoreSpec{Dir: "/var/lib/drover/slugs"},
			"file:///var/lib/drover/slugs",
		},
		{
			"s3://drover-slugs?endpoint=https://s3.internal&region=us-east-1",
			slugs.StoreSpec{Bucket: "drover-slugs", Endpoint: "https://s3.internal", Region: "us-east-1", PathStyle: true},
			"s3://drover-slugs at https://s3.internal (region us-east-1, path-style)",
		},
		{
			"s3://drover-slugs/?endpoint=http://127.0.0.1:9000/&region=eu-west-3&prefix=slugs/v1/&path_style=false",
			slugs.StoreSpec{Bucket: "drover-slugs", Endpoint: "http://127.0.0.1:9000", Region: "eu-west-3", Prefix: "slugs/v1/"},
			"s3://drover-slugs/slugs/v1/ at http://127.0.0.1:9000 (region eu-west-3, virtual-hosted-style)",
		},
		{
			"s3://my.bucket-1?region=us-east-1&endpoint=https%3A%2F%2Fs3.example.com%3A8443&path_style=1",
			slugs.StoreSpec{Bucket: "my.bucket-1", Endpoint: "https://s3.example.com:8443", Region: "us-east-1", PathStyle: true},
			"s3://my.bucket-1 at https://s3.example.com:8443 (region us-east-1, path-style)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := slugs.ParseStoreSpec(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if got.String() != tt.banner {
				t.Fatalf("String() = %q, want %q", got.String(), tt.banner)
			}
		})
	}
}

func TestParseStoreSpecRefuses(t *testing.T) {
	const want = "want s3://bucket?endpoint=https://s3.example.com&region=us-east-1 or file:///var/lib/drover/slugs"
	tests := []struct {
		name, spec, says string
		secrets          []string // must not appear in the error
	}{
		{"empty", "", `DROVER_SLUG_STORE "": no scheme`, nil},
		{"bare s3", "s3://", `DROVER_SLUG_STORE "s3://": no bucket`, nil},
		{"plain path", "/var/lib/drover/slugs", "no scheme", nil},
		{"relative file", "file://var/lib/slugs", "absolute path after file://", nil},
		{"opaque file", "file:slugs", "absolute path after file://", nil},
		{"file with query", "file:///srv/slugs?x=1", "takes no parameters", nil},
		{"unknown scheme", "gs://bucket", `unknown scheme "gs"`, nil},
		{"no endpoint", "s3://b-1?region=us-east-1", "no endpoint=", nil},
		{"no region", "s3://b-1?endpoint=https://s3.example.com", "no region=", nil},
		{"bad bucket", "s3://B_ad?endpoint=https://s3.example.com&region=us-east-1", `bucket "B_ad"`, nil},
		{"short bucket", "s3://ab?endpoint=https://s3.example.com&region=us-east-1", `bucket "ab"`, nil},
		{"path after bucket", "s3://b-1/slugs?endpoint=https://s3.example.com&region=us-east-1", "prefix=", nil},
		{"endpoint without scheme", "s3://b-1?endpoint=s3.example.com&region=us-east-1", "endpoint: want http:// or https://", nil},
		{"endpoint with path", "s3://b-1?endpoint=https://s3.example.com/s3&region=us-east-1", "no path", nil},
		{"ftp endpoint", "s3://b-1?endpoint=ftp://s3.example.com&region=us-east-1", "endpoint: want http://", nil},
		{"bad path_style", "s3://b-1?endpoint=https://s3.example.com&region=us-east-1&path_style=maybe", `path_style "maybe"`, nil},
		{"bad region", "s3://b-1?endpoint=https://s3.example.com&region=US%20East", `region "US East"`, nil},
		{"absolute prefix", "s3://b-1?endpoint=https://s3.example.com&region=us-east-1&prefix=/slugs/", `prefix "/slugs/"`, nil},
		{"dot dot prefix", "s3://b-1?endpoint=https://s3.example.com&region=us-east-1&prefix=a/../b/", `prefix "a/../b/"`, nil},
		{"repeated", "s3://b-1?endpoint=https://s3.example.com&region=us-east-1&region=eu-west-1", `"region" given twice`, nil},
		{"fragment", "s3://b-1?endpoint=https://s3.example.com&region=us-east-1#x", "fragment", nil},
		{
			"keys in the spec", "s3://AKIAEXAMPLE:wJalrXUtnFEMI@b-1?endpoint=https://s3.example.com&region=us-east-1",
			"credentials do not belong in the URL", []string{"AKIAEXAMPLE", "wJalrXUtnFEMI"},
		},
		{
			"keys in the endpoint", "s3://b-1?endpoint=https://AKIAEXAMPLE:wJalrXUtnFEMI@s3.example.com&region=us-east-1",
			"credentials do not belong in the URL", []string{"AKIAEXAMPLE", "wJalrXUtnFEMI"},
		},
		{
			"unknown parameter holding a secret", "s3://b-1?endpoint=https://s3.example.com&region=us-east-1&secret_key=wJalrXUtnFEMI",
			`unknown parameter "secret_key"`, []string{"wJalrXUtnFEMI"},
		},
		{
			"nameless parameter", "s3://b-1?endpoint=https://s3.example.com&region=us-east-1&=wJalrXUtnFEMI",
			`unknown parameter ""`, []string{"wJalrXUtnFEMI"},
		},
		{
			"not a URL", "s3://b-1?endpoint=x&region=us-east-1&secret=wJalrXUtnFEMI%zz\x7f",
			"DROVER_SLUG_STORE: not a URL", []string{"wJalrXUtnFEMI"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := slugs.ParseStoreSpec(tt.spec)
			if err == nil {
				t.Fatal("parsed; want a refusal")
			}
			if !errors.Is(err, pipelines.ErrInvalid) {
				t.Errorf("error %v does not wrap pipelines.ErrInvalid", err)
			}
			msg := err.Error()
			t.Log(msg)
			for _, s := range []string{"DROVER_SLUG_STORE", tt.says, want} {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not say %q", msg, s)
				}
			}
			for _, secret := range tt.secrets {
				if strings.Contains(msg, secret) {
					t.Errorf("error %q shows the secret %q", msg, secret)
				}
			}
			// OpenStore refuses it the same way, before touching anything.
			if _, err := slugs.OpenStore(context.Background(), tt.spec, t.TempDir()); !errors.Is(err, pipelines.ErrInvalid) {
				t.Errorf("OpenStore: %v, want ErrInvalid", err)
			}
		})
	}
}

func TestOpenStoreFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "slugs")
	st, err := slugs.OpenStore(context.Background(), "file://"+dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.(*slugs.Store); !ok {
		t.Fatalf("OpenStore gave a %T, want the file store", st)
	}
	if got, want := st.String(), "file://"+dir; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	digest, err := st.Put(context.Background(), strings.NewReader("slug"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := st.Open(digest)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "slug" {
		t.Fatalf("read back %q", b)
	}
	if err := st.Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := st.Check(context.Background()); err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Check with the directory gone = %v, want an error naming it", err)
	}
}

// TestOpenStoreS3NeedsCredentials runs without a server: with no key in
// the environment or a shared file, the store refuses to start rather than
// send anonymous requests.
func TestOpenStoreS3NeedsCredentials(t *testing.T) {
	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"} {
		t.Setenv(v, "")
	}
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	_, err := slugs.OpenStore(context.Background(), "s3://drover-slugs?endpoint=http://127.0.0.1:1&region=us-east-1", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") || !strings.Contains(err.Error(), "s3://drover-slugs") {
		t.Fatalf("OpenStore = %v, want a refusal naming the bucket and AWS_ACCESS_KEY_ID", err)
	}
}
