package contract_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/drover/drover/regions"
	"github.com/drover/drover/regions/nomad"
)

// getRaw is the body at url, untrimmed.
func getRaw(url string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestConfigVars: on a real agent, a config var with a value an env file
// could mangle (quotes, a newline, '$', '=', '#', '&', a tab, a backslash,
// a carriage return) reaches the app's process and the release phase
// exactly; the job Nomad stores (every version) does not hold it; a
// blue/green deploy with a changed value leaves the old allocation
// serving, unrestarted, with the old value until the new release replaces
// it; and stop deletes the app's variables.
func TestConfigVars(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	app := fmt.Sprintf("drover-config-%d", time.Now().UnixNano()%100000)
	t.Cleanup(func() { e.region.Stop(context.Background(), app) })
	client, err := api.NewClient(&api.Config{Address: os.Getenv("NOMAD_ADDR"), SecretID: os.Getenv("NOMAD_TOKEN")})
	if err != nil {
		t.Fatal(err)
	}
	const marker = "s3cr3t-7f1c"
	v1 := marker + ` it's "quoted" $HOME ${NOMAD_TASK_NAME} a=b&c=<d> # no comment` + "\n\tline two \\ end\r\n"
	v2 := marker + "-two `$(id)` 'x' = \"y\"\nz"

	res, err := e.region.Deploy(ctx, e.deployment(app, 1, map[string]string{"SECRET": v1}))
	if err != nil {
		t.Fatalf("deploy v1: %v", err)
	}
	if got, err := getRaw(res.URL + "/env/SECRET"); err != nil || got != v1 {
		t.Fatalf("v1's process sees SECRET = %q, %v; want %q", got, err, v1)
	}
	for _, path := range []string{"/v1/job/" + app, "/v1/job/" + app + "/versions"} {
		var raw json.RawMessage
		if _, err := client.Raw().Query(path, &raw, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body := string(raw)
		if strings.Contains(body, marker) || !strings.Contains(body, nomad.ConfigVarPath(app)) {
			t.Errorf("GET %s holds the config value or does not read %s:\n%s", path, nomad.ConfigVarPath(app), body)
		}
	}

	// v2 starts slowly, so its canary runs beside v1's allocation for a
	// while after v2's item is written.
	oldURL := res.URL
	oldAlloc := liveAlloc(ctx, t, client, app)
	done := make(chan error, 1)
	go func() {
		_, err := e.region.Deploy(ctx, e.deployment(app, 2, map[string]string{"SECRET": v2, "START_AFTER": "5s"}))
		done <- err
	}()
	waitItem(ctx, t, client, app, 2)
	time.Sleep(2 * time.Second) // a template reacting to the write would have by now
	select {
	case err := <-done:
		t.Fatalf("v2 finished (%v) before the old allocation could be asked", err)
	default:
	}
	if got, err := getRaw(oldURL + "/env/SECRET"); err != nil || got != v1 {
		t.Errorf("during the rollout v1's allocation answers SECRET = %q, %v; want v1's value", got, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("deploy v2: %v", err)
	}
	// Right after the promotion the registry may still list v1's
	// allocation as live, so v2's is asked at its own address.
	if got, err := getRaw(allocURL(ctx, t, client, app, oldAlloc) + "/env/SECRET"); err != nil || got != v2 {
		t.Errorf("v2's process sees SECRET = %q, %v; want %q", got, err, v2)
	}
	a, _, err := client.Allocations().Info(oldAlloc, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, ts := range a.TaskStates {
		for _, ev := range ts.Events {
			if ev.Type == api.TaskRestartSignal || ev.Type == api.TaskSignaling || ev.Type == api.TaskRestarting {
				t.Errorf("v1's allocation was %s during v2's rollout: %s", ev.Type, ev.DisplayMessage)
			}
		}
	}

	t.Log("release phase")
	out, err := e.region.RunTask(ctx, regions.Task{App: app, Release: 3, Name: "release", Slug: e.slug,
		Command: `printf '%s' "$SECRET"`, Env: map[string]string{"SECRET": v1}})
	if err != nil {
		t.Fatalf("release phase: %v", err)
	}
	if out.ExitCode != 0 || out.Output != v1 {
		t.Errorf("the release phase printed %q (exit %d), want %q", out.Output, out.ExitCode, v1)
	}
	if v, _, err := client.Variables().Peek(nomad.ConfigVarPath(nomad.ReleaseJobID(app, 3)), nil); err != nil || v != nil {
		t.Errorf("the finished release phase's variable is still there: %v, %v", v, err)
	}

	if err := e.region.Stop(ctx, app); err != nil {
		t.Fatal(err)
	}
	if v, _, err := client.Variables().Peek(nomad.ConfigVarPath(app), nil); err != nil || v != nil {
		t.Errorf("after stop the app's variable is still there: %v, %v", v, err)
	}
}

// liveAlloc is the ID of the allocation behind app's live registration.
func liveAlloc(ctx context.Context, t *testing.T, c *api.Client, app string) string {
	t.Helper()
	regs, _, err := c.Services().Get(nomad.WebServiceName(app), (&api.QueryOptions{}).WithContext(ctx))
	if err != nil || len(regs) != 1 {
		t.Fatalf("registrations of %s = %d, %v; want one", app, len(regs), err)
	}
	return regs[0].AllocID
}

// allocURL is the address of a registration of app's web service by an
// allocation other than not.
func allocURL(ctx context.Context, t *testing.T, c *api.Client, app, not string) string {
	t.Helper()
	regs, _, err := c.Services().Get(nomad.WebServiceName(app), (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range regs {
		if r.AllocID != not {
			return fmt.Sprintf("http://%s:%d", r.Address, r.Port)
		}
	}
	t.Fatalf("no registration of %s but allocation %s's", app, not)
	return ""
}

// waitItem waits until app's variable holds release's config item.
func waitItem(ctx context.Context, t *testing.T, c *api.Client, app string, release int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		v, _, err := c.Variables().Peek(nomad.ConfigVarPath(app), (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			t.Fatal(err)
		}
		if v != nil && v.Items[nomad.ConfigItem(release)] != "" {
			var env map[string]string
			if err := json.Unmarshal([]byte(v.Items[nomad.ConfigItem(release)]), &env); err != nil {
				t.Fatalf("item %s: %v", nomad.ConfigItem(release), err)
			}
			return
		}
	}
	t.Fatalf("%s never got item %s", nomad.ConfigVarPath(app), nomad.ConfigItem(release))
}
