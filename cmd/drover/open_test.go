package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/drover/drover/api"
	"github.com/drover/drover/pipelines"
)

// TestOpen: drover open opens the first region's URL, or --region's, and
// prints it where there is no browser; an app that runs nowhere, and a
// region it is not in, are refused saying so.
func TestOpen(t *testing.T) {
	apps := map[string]api.AppInfo{
		"hello": {App: pipelines.App{Name: "hello"}, Where: []api.RegionInfo{
			{Region: "us-east", Release: 3, URL: "https://hello.us.example"}, {Region: "eu-west", Release: 3, URL: "https://hello.eu.example"}}},
		"starting": {App: pipelines.App{Name: "starting"}, Where: []api.RegionInfo{{Region: "us-east"}, {Region: "eu-west", Release: 1, URL: "https://s.eu.example"}}},
		"new":      {App: pipelines.App{Name: "new"}, Where: []api.RegionInfo{{Region: "us-east"}}},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info, ok := apps[strings.TrimPrefix(r.URL.Path, "/api/v1/apps/")]
		if !ok || r.Header.Get("Authorization") != "Bearer t" {
			http.Error(w, `{"error":{"code":"not_found","message":"app not found"}}`, http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(info)
	}))
	defer srv.Close()
	t.Setenv("DROVER_URL", srv.URL)
	t.Setenv("DROVER_TOKEN", "t")
	t.Setenv("DROVER_CONFIG_DIR", t.TempDir())
	tests := []struct {
		name    string
		args    []string
		browser bool
		code    int
		opened  string
		out     string
	}{
		{"first region", []string{"hello"}, true, exitOK, "https://hello.us.example", "Opening https://hello.us.example\n"},
		{"named region", []string{"hello", "--region", "eu-west"}, true, exitOK, "https://hello.eu.example", "Opening https://hello.eu.example\n"},
		{"no browser prints it", []string{"hello"}, false, exitOK, "", "https://hello.us.example\n"},
		{"first region with a URL", []string{"starting"}, true, exitOK, "https://s.eu.example", "Opening https://s.eu.example\n"},
		{"region not running yet", []string{"starting", "--region", "us-east"}, true, exitError, "", ""},
		{"unknown region", []string{"hello", "--region", "ap-south"}, true, exitNotFound, "", ""},
		{"runs nowhere", []string{"new"}, true, exitError, "", ""},
		{"unknown app", []string{"nope"}, true, exitNotFound, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			opened := ""
			cmd := newOpenCmd(Streams{Out: &out, Err: &errOut}, func(u string) error {
				if !tt.browser {
					return errNoBrowser
				}
				opened = u
				return nil
			})
			root := newRootCmd(Streams{Out: &out, Err: &errOut})
			for _, c := range root.Commands() {
				if c.Name() == "open" {
					root.RemoveCommand(c)
				}
			}
			root.AddCommand(cmd)
			root.SetArgs(append([]string{"open"}, tt.args...))
			code := exitOK
			if err := root.ExecuteContext(context.Background()); err != nil {
				code = exitCode(err)
				errOut.WriteString(err.Error())
			}
			if code != tt.code || opened != tt.opened || out.String() != tt.out {
				t.Fatalf("exit %d, opened %q, printed %q (%s); want exit %d, opened %q, printed %q", code, opened, out.String(), errOut.String(), tt.code, tt.opened, tt.out)
			}
		})
	}
}
