package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/drover/drover/api"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/workflows"
)

// TestFollowOperationStreamsStepOutput: drover operations watch prints a
// running step's output as it is written, each part once, asking from
// where it got to; a partial line waits for its end; the next step's
// output starts from its own beginning; the result comes last.
func TestFollowOperationStreamsStepOutput(t *testing.T) {
	rel := &pipelines.Release{App: "hello", Version: 4, Status: pipelines.ReleasePending, Description: "Deploy abc"}
	steps := []api.Operation{
		{State: workflows.OperationRunning, Output: &api.StepOutput{Step: "build", From: 0, Text: "-----> Go app detected\n       $ go bu", Total: 40}},
		{State: workflows.OperationRunning, Output: &api.StepOutput{Step: "build", From: 23, Text: "       $ go build\n", Total: 41}},
		{State: workflows.OperationRunning, Release: rel, Output: &api.StepOutput{Step: "release phase", From: 0, Text: "migrating 1/2\n", Total: 14}},
		{State: workflows.OperationRunning, Release: rel, Output: &api.StepOutput{Step: "release phase", From: 14, Text: "migrating 2/2\n", Total: 28}},
		{State: workflows.OperationSucceeded, Release: &pipelines.Release{App: "hello", Version: 4, Status: pipelines.ReleaseSucceeded,
			Regions: []pipelines.RegionState{{Region: "local-a", Status: "succeeded"}}}},
	}
	var mu sync.Mutex
	var asked []string
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, r.URL.Query().Get("output_step")+"@"+r.URL.Query().Get("output_from"))
		op := steps[min(n, len(steps)-1)]
		op.ID, op.Kind, op.App = "deploy/hello/abc", "deploy", "hello"
		n++
		json.NewEncoder(w).Encode(op)
	}))
	defer srv.Close()
	var out, errOut bytes.Buffer
	c := &apiClient{base: srv.URL, http: srv.Client()}
	if err := followOperation(context.Background(), c, Streams{Out: &out, Err: &errOut}, api.Operation{ID: "deploy/hello/abc", Kind: "deploy", App: "hello"}, OperationOptions{}); err != nil {
		t.Fatal(err)
	}
	progress := errOut.String()
	// In order, between the progress lines.
	at := 0
	for _, want := range []string{"-----> Go app detected\n", "       $ go build\n", "migrating 1/2\n", "migrating 2/2\n"} {
		i := strings.Index(progress[at:], want)
		if i < 0 {
			t.Fatalf("progress lacks %q after byte %d:\n%s", want, at, progress)
		}
		at += i + len(want)
	}
	if strings.Count(progress, "Go app detected") != 1 || strings.Count(progress, "migrating 1/2") != 1 {
		t.Errorf("a part was printed twice:\n%s", progress)
	}
	if got := strings.Join(asked[:4], " "); got != "@0 build@23 build@41 release phase@14" {
		t.Errorf("asked for output from %s", got)
	}
	if !strings.Contains(out.String(), "hello v4 is running in local-a") {
		t.Errorf("result: %q", out.String())
	}
}
