package main

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/drover/drover/buildjobs"
	"github.com/drover/drover/deployments/slugs"
	"github.com/drover/drover/pipelines"
)

// TestBuilderWiring: builds: makes the worker build in Nomad jobs and the
// server take uploads; without it, builds stay in the worker's sandbox
// and there is no upload route.
func TestBuilderWiring(t *testing.T) {
	const yaml = "regions:\n  us: { driver: nomad, address: http://127.0.0.1:4646 }\n"
	const builds = "builds: { region: us, node_pool: build, driver: raw_exec, command: /usr/local/bin/drover }\n"
	for _, tc := range []struct {
		name, config string
		mode         string
		public       string
		nomad        bool
		err          bool
	}{
		{"no builds block", yaml, modeServer, "", false, false},
		{"builds on a server", yaml + builds, modeServer, "", true, false},
		{"builds on a worker with a public URL", yaml + builds, modeWorker, "https://drover.internal", true, false},
		{"builds on a worker with nowhere to upload", yaml + builds, modeWorker, "", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := pipelines.ParseConfig("drover.yaml", []byte(tc.config))
			if err != nil {
				t.Fatal(err)
			}
			store, err := slugs.NewStore(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			n := &Node{Options: NodeOptions{Mode: tc.mode, PublicURL: tc.public, Getenv: func(string) string { return "" }},
				Config: cfg, Logger: slog.New(slog.DiscardHandler), slugs: store, grants: slugs.NewGrants([]byte("key")), DataDir: t.TempDir()}
			b, err := n.builder()
			var he *hintError
			if tc.err {
				if !errors.As(err, &he) || !strings.Contains(err.Error(), "builds.upload_url") {
					t.Fatalf("builder = %T, %v; want an error naming builds.upload_url", b, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := b.(*buildjobs.Builder); ok != tc.nomad {
				t.Fatalf("builder is %T", b)
			}
			if _, ok := b.(*slugs.Builder); ok == tc.nomad {
				t.Fatalf("builder is %T", b)
			}
			gin.SetMode(gin.TestMode)
			e := gin.New()
			n.registerUploads(e)
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/slugs/uploads/0123456789abcdef", bytes.NewReader(nil)))
			if got, want := rec.Code != http.StatusNotFound, tc.nomad; got != want {
				t.Fatalf("PUT upload = %d; want the route only with builds:", rec.Code)
			}
		})
	}
}
