package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
)

// hostileRequest is one request of the hostile corpus.
type hostileRequest struct {
	kind, event, delivery string
	body                  []byte
	// signature is the X-Hub-Signature-256 value; "" sends none.
	signature string
	// sha1 is an X-Hub-Signature (SHA-1) value sent alongside.
	sha1 string
}

// hostileCorpus makes at least a thousand requests no GitHub would send
// for this drover, from GitHub's own payloads: bad and absent signatures,
// truncated and malformed JSON, wrong types in every field drover reads,
// hostile refs and SHAs, unknown repositories and events, and bodies
// too big.
func hostileCorpus(t *testing.T, secret string) []hostileRequest {
	t.Helper()
	var out []hostileRequest
	n := 0
	add := func(kind, event string, body []byte, sign bool) {
		n++
		r := hostileRequest{kind: kind, event: event, delivery: fmt.Sprintf("hostile-%d", n), body: body}
		if sign {
			r.signature = signBody(secret, body)
		}
		out = append(out, r)
	}
	fixtures := map[string]string{
		"push": "push.payload.json", "pull_request": "pull_request.opened.payload.json",
		"check_suite": "check_suite.completed.payload.json", "check_run": "check_run.completed.payload.json",
		"status": "status.payload.json", "workflow_run": "workflow_run.completed.payload.json",
	}
	events := make([]string, 0, len(fixtures))
	for e := range fixtures {
		events = append(events, e)
	}
	sort.Strings(events)
	const sha = "0123456789abcdef0123456789abcdef01234567"
	for _, event := range events {
		p := fixture(t, fixtures[event])
		// Pointed at the configured repository, as a real delivery is.
		p["repository"].(map[string]any)["full_name"] = "octo-org/hello"
		if event == "push" {
			p["ref"], p["after"], p["deleted"] = "refs/heads/main", sha, false
		}
		good, _ := json.Marshal(p)

		// Signatures: none, SHA-1 only, another secret's, malformed, and
		// a good one of another body.
		add("no signature", event, good, false)
		mac := hmac.New(sha1.New, []byte(secret))
		mac.Write(good)
		out = append(out, hostileRequest{kind: "SHA-1 only", event: event, delivery: fmt.Sprintf("hostile-sha1-%s", event), body: good, sha1: "sha1=" + hex.EncodeToString(mac.Sum(nil))})
		for _, sig := range []string{signBody("another secret", good), "sha256=", "sha256=zz", "md5=" + strings.Repeat("0", 32), signBody(secret, append([]byte(" "), good...))} {
			n++
			out = append(out, hostileRequest{kind: "bad signature", event: event, delivery: fmt.Sprintf("hostile-%d", n), body: good, signature: sig})
		}
		// Truncated JSON, signed: every cut of the payload's first part.
		for cut := 0; cut < len(good) && cut < 1600; cut += 8 {
			add("truncated JSON", event, good[:cut], true)
		}
		add("not JSON", event, []byte("<xml/>"), true)
		add("JSON array", event, []byte("[1,2,3]"), true)
		// Wrong types in every field drover reads.
		for _, path := range hostileFields[event] {
			for _, v := range []any{42, true, []any{"x"}, map[string]any{"x": 1}, "a string"} {
				q := fixture(t, fixtures[event])
				q["repository"].(map[string]any)["full_name"] = "octo-org/hello"
				if event == "push" {
					q["ref"], q["after"], q["deleted"] = "refs/heads/main", sha, false
				}
				// A type of its own kind (or null, GitHub's "absent") is
				// no wrong type.
				if was, ok := getPath(q, path); !ok || was == nil || jsonKind(was) == jsonKind(v) {
					continue
				}
				if !setPath(q, path, v) {
					continue
				}
				b, _ := json.Marshal(q)
				add("wrong type at "+path, event, b, true)
			}
		}
	}
	// Hostile refs and SHAs, and unknown repositories, signed.
	push := func(edit func(map[string]any)) []byte {
		p := fixture(t, "push.payload.json")
		p["repository"].(map[string]any)["full_name"] = "octo-org/hello"
		p["ref"], p["after"], p["deleted"] = "refs/heads/main", sha, false
		edit(p)
		b, _ := json.Marshal(p)
		return b
	}
	for _, ref := range []string{"", "main", "refs/heads/", "refs/heads/../../etc/passwd", "refs/heads/main\x00", "refs/tags/v1", "refs/heads/" + strings.Repeat("m", 5000), "refs/heads/main;rm -rf /", "refs/pull/1/head"} {
		add("hostile ref", "push", push(func(p map[string]any) { p["ref"] = ref }), true)
	}
	for _, s := range []string{"", "HEAD", "-rf", "--upload-pack=touch /tmp/x", strings.Repeat("0", 40), sha[:39], sha + "0", strings.ToUpper(sha), "../../" + sha[:34], sha[:39] + "g", strings.Repeat("a", 10000)} {
		add("hostile SHA", "push", push(func(p map[string]any) { p["after"] = s }), true)
		pr := fixture(t, "pull_request.opened.payload.json")
		pr["repository"].(map[string]any)["full_name"] = "octo-org/hello"
		pr["pull_request"].(map[string]any)["head"].(map[string]any)["sha"] = s
		b, _ := json.Marshal(pr)
		add("hostile SHA", "pull_request", b, true)
	}
	for _, repo := range []string{"mallory/evil", "", "octo-org", "../octo-org/hello", "octo-org/hello/../../x", strings.Repeat("o", 300) + "/x"} {
		add("unknown repository", "push", push(func(p map[string]any) { p["repository"].(map[string]any)["full_name"] = repo }), true)
	}
	// Events nobody handles, and no event at all.
	for _, e := range []string{"", "issues", "deployment", "../push", strings.Repeat("e", 300)} {
		add("unhandled event", e, push(func(map[string]any) {}), true)
	}
	// 30 MB bodies, signed and not.
	big := bytes.Repeat([]byte("x"), 30<<20)
	add("30 MB body", "push", big, false)
	add("30 MB body, signed", "push", big, true)
	return out
}

// hostileFields are the payload fields drover reads, per event.
var hostileFields = map[string][]string{
	"push":         {"ref", "after", "before", "deleted", "repository", "repository.full_name", "head_commit", "head_commit.message", "head_commit.id", "pusher", "pusher.name", "sender.login"},
	"pull_request": {"action", "number", "pull_request", "pull_request.number", "pull_request.head", "pull_request.head.sha", "pull_request.head.ref", "pull_request.head.repo", "pull_request.head.repo.full_name", "pull_request.draft", "pull_request.title", "pull_request.state", "repository.full_name"},
	"check_suite":  {"action", "check_suite", "check_suite.head_sha", "check_suite.status", "check_suite.conclusion", "repository.full_name"},
	"check_run":    {"action", "check_run", "check_run.head_sha", "check_run.name", "check_run.status", "check_run.conclusion", "repository.full_name"},
	"status":       {"sha", "state", "context", "repository.full_name"},
	"workflow_run": {"action", "workflow_run", "workflow_run.head_sha", "workflow_run.conclusion", "repository.full_name"},
}

// setPath sets a dotted path in a decoded payload, reporting false when
// the path's parent is not there.
func setPath(m map[string]any, path string, v any) bool {
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			return false
		}
		m = next
	}
	m[parts[len(parts)-1]] = v
	return true
}

// getPath reads a dotted path in a decoded payload.
func getPath(m map[string]any, path string) (any, bool) {
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			return nil, false
		}
		m = next
	}
	v, ok := m[parts[len(parts)-1]]
	return v, ok
}

// jsonKind names a decoded JSON value's kind.
func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case float64, int:
		return "number"
	case bool:
		return "bool"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "null"
}

func signBody(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// TestFaultHostileInput sends the hostile corpus to the dev stack. Every
// request gets a 4xx, or a 2xx that says it was ignored, and none has a
// side effect: no workflow, no release, no delivery remembered, no build
// or slug on disk.
func TestFaultHostileInput(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end fault suite; skipped by -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t.Setenv(secretEnv, "e2e-secret")
	repo := newGitRepo(t)
	data := t.TempDir()
	// A review stage too, so pull_request payloads reach their handler.
	config := filepath.Join(t.TempDir(), "drover.yaml")
	os.WriteFile(config, []byte(fmt.Sprintf(`github: { webhook_secret_env: %s }
regions: { local-a: { driver: local } }
pipelines:
  hello:
    repo: octo-org/hello
    source: file://%s
    stages:
      review:  { regions: [local-a] }
      staging: { app: hello-staging, branch: main, regions: [local-a] }
`, secretEnv, repo.dir)), 0o644)
	d, s := startDev(t, ctx, config, data)
	corpus := hostileCorpus(t, s.secret)
	if len(corpus) < 1000 {
		t.Fatalf("corpus of %d requests; want at least 1,000", len(corpus))
	}
	type outcome struct{ kind, answer string }
	counts := map[outcome]int{}
	for _, r := range corpus {
		req, _ := http.NewRequestWithContext(ctx, "POST", s.base+"/webhooks/github", bytes.NewReader(r.body))
		req.Header.Set("Content-Type", "application/json")
		if r.event != "" {
			req.Header.Set("X-GitHub-Event", r.event)
		}
		req.Header.Set("X-GitHub-Delivery", r.delivery)
		if r.signature != "" {
			req.Header.Set("X-Hub-Signature-256", r.signature)
		}
		if r.sha1 != "" {
			req.Header.Set("X-Hub-Signature", r.sha1)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", r.kind, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		answer := fmt.Sprint(resp.StatusCode)
		switch {
		case resp.StatusCode >= 400 && resp.StatusCode < 500 && len(body) > 0:
		case resp.StatusCode < 300 && strings.Contains(string(body), `"ignored"`):
			answer += " ignored"
		default:
			t.Errorf("%s (%s %s): %d %s; want a 4xx with a reason, or ignored", r.kind, r.event, r.delivery, resp.StatusCode, body)
		}
		kind, _, _ := strings.Cut(r.kind, " at ")
		counts[outcome{kind, answer}]++
	}

	// No side effects anywhere.
	list, err := d.client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(list.GetExecutions()); n != 0 {
		t.Errorf("%d workflows started, e.g. %s", n, list.GetExecutions()[0].GetExecution().GetWorkflowId())
	}
	for _, app := range []string{"hello-staging"} {
		if rs := s.releases(ctx, app); len(rs) != 0 {
			t.Errorf("%s has %d releases", app, len(rs))
		}
	}
	for _, r := range corpus {
		if fresh, err := d.store.RecordDelivery(ctx, r.delivery, "check"); err != nil || !fresh {
			t.Errorf("delivery %s (%s) was remembered", r.delivery, r.kind)
		}
	}
	for _, dir := range []string{"builds", "slugs"} {
		entries, _ := os.ReadDir(filepath.Join(data, dir))
		if len(entries) != 0 {
			t.Errorf("%s holds %d entries", dir, len(entries))
		}
	}
	keys := make([]outcome, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].kind+keys[i].answer < keys[j].kind+keys[j].answer })
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %-28s %-14s %5d", k.kind, k.answer, counts[k])
	}
	t.Logf("%d hostile requests, 0 side effects:%s", len(corpus), b.String())
}
