package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/drover/drover/api"
	"github.com/drover/drover/internal/browsertest"
	"github.com/drover/drover/pipelines"
)

// screenshotDir is where the browser test keeps a screenshot of each
// step: $DROVER_SCREENSHOTS, else drover-page-screenshots under the
// system's temp dir, kept after the test for people to look at.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("DROVER_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "drover-page-screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// writeApprovalConfig is writeConfig with staging in one region and its
// releases waiting for approval, so the page has one to approve.
func writeApprovalConfig(t *testing.T, repoDir string) string {
	t.Helper()
	path := writeConfig(t, repoDir)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const staging = "branch: main, regions: [local-a, local-b] }"
	if !strings.Contains(string(b), staging) {
		t.Fatalf("writeConfig's staging changed: %s", b)
	}
	b = []byte(strings.Replace(string(b), staging, "branch: main, regions: [local-a], require_approval: true }", 1))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestE2EPage drives the web page in headless Chromium against drover
// dev: sign in, see both stages with their releases, preview and
// promote, watch the regions' progress change live, see production's
// release change, roll back from the history, and approve a release that
// waits.
func TestE2EPage(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts the dev stack and a browser; skipped by -short")
	}
	browsertest.Path(t) // skips first, before the stack starts, where there is no Chromium
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	t.Setenv(secretEnv, "e2e-secret")
	repo := newGitRepo(t)
	d, s := startDev(t, ctx, writeApprovalConfig(t, repo.dir), t.TempDir())
	defer d.Close()

	// Staging's releases wait for approval: approve the first two through
	// the API, and promote the first, so both stages run something.
	approvePush := func(version int) {
		t.Helper()
		var waiting []api.PendingApproval
		eventually(ctx, t, fmt.Sprintf("hello-staging v%d waiting for approval", version), func() bool {
			waiting = nil
			return s.get(ctx, "/api/v1/approvals", &waiting) == nil && len(waiting) == 1 && waiting[0].Release == version
		})
		if err := s.call(ctx, http.MethodPost, "/api/v1/approvals", fmt.Sprintf(`{"operation":%q,"approved":true}`, waiting[0].Operation), nil); err != nil {
			t.Fatal(err)
		}
		if r := s.waitRelease(ctx, "hello-staging", version); r.Status != pipelines.ReleaseSucceeded {
			t.Fatalf("hello-staging v%d = %s: %s", version, r.Status, r.Reason)
		}
	}
	push := func(greeting string) {
		t.Helper()
		c := repo.commit(greeting, "web: bin/web\n")
		if code, body := s.push(ctx, "page-"+greeting, pushPayload(t, repo.dir, c)); code != http.StatusAccepted {
			t.Fatalf("push %s: %d %s", greeting, code, body)
		}
	}
	push("A")
	approvePush(1)
	var op api.Operation
	if err := s.call(ctx, http.MethodPost, "/api/v1/pipelines/hello/promote", "", &op); err != nil {
		t.Fatal(err)
	}
	s.waitRelease(ctx, "hello", 1)
	s.answersEverywhere(ctx, "hello", 2, "A from hello v1")
	push("B")
	approvePush(2)

	bctx := browsertest.New(t, ctx, chromedp.WindowSize(1280, 900))
	shots := screenshotDir(t)
	step := 0
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			step++
			png, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return err
			}
			path := filepath.Join(shots, fmt.Sprintf("%02d-%s.png", step, name))
			t.Logf("screenshot: %s", path)
			return os.WriteFile(path, png, 0o644)
		})
	}
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return s
	}
	eval := func(expr string) {
		t.Helper()
		if _, err := chromedp.Run(bctx, chromedp.Evaluate[any](expr)); err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
	}
	base := s.base

	// Sign in with the admin token; the cookie is HttpOnly, so no script
	// of the page can read it.
	run("sign in",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
		shot("sign-in"),
		chromedp.SendKeys(chromedp.CSS(`#token`), s.token),
		chromedp.Submit(chromedp.CSS(`#token`)),
		chromedp.WaitVisible(chromedp.CSS(`article.stage.production`)),
	)
	if cookieSeen, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.cookie`)); err != nil || strings.Contains(cookieSeen, "drover_session") {
		t.Fatalf("document.cookie = %q, %v: a script can read the session token", cookieSeen, err)
	}
	cookies, err := chromedp.Call(bctx, network.GetCookies, network.GetCookiesParams{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range cookies.Cookies {
		if c.Name == "drover_session" {
			found = true
			if !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict {
				t.Fatalf("session cookie %+v is not HttpOnly and SameSite=Strict", c)
			}
		}
	}
	if !found {
		t.Fatal("no session cookie after signing in")
	}

	// Two stages with their releases.
	if st, pr := text(`article.stage.staging .release`), text(`article.stage.production .release`); !strings.Contains(st, "v2") || !strings.Contains(pr, "v1") {
		t.Fatalf("stages show staging %q, production %q; want v2 and v1", st, pr)
	}
	run("the pipeline", shot("pipeline"))
	// Every action is a button of a form, which the keyboard reaches.
	if ok, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`[...document.querySelectorAll("button")].every(b => b.form !== null && b.tabIndex >= 0)`)); err != nil || !ok {
		t.Fatalf("a button outside a form, or out of the tab order (%v)", err)
	}
	narrowAndDark(t, bctx, shot)

	// The preview first, then the confirm button.
	run("open the preview",
		chromedp.Click(chromedp.CSS(`article.stage.staging form.act button`)),
		chromedp.WaitVisible(chromedp.CSS(`form.confirm`)),
		shot("promote-preview"),
	)
	if h := text(`section.preview h1`); h != "Promote hello-staging v2 to hello" {
		t.Fatalf("preview heading %q", h)
	}
	if rs := s.releases(ctx, "hello"); len(rs) != 1 {
		t.Fatalf("the preview made a release: %d", len(rs))
	}

	// Promote, and watch the progress block change in place: the page is
	// not reloaded (a marker set on window survives), each region's line
	// appears as the stream brings it.
	run("promote",
		chromedp.Click(chromedp.CSS(`form.confirm button.go`)),
		chromedp.WaitVisible(chromedp.CSS(`#operation .progress`)),
	)
	eval(`window.droverMarker = 1`)
	seen := watchProgress(t, bctx, ctx, `body[data-refreshed]`)
	if len(seen) < 2 || !strings.Contains(seen[len(seen)-1], "succeeded") {
		t.Fatalf("progress seen: %q; want it to change live and end succeeded", seen)
	}
	run("promoted", shot("promoted"))
	if marker, err := chromedp.Run(bctx, chromedp.Evaluate[int](`window.droverMarker || 0`)); err != nil || marker != 1 {
		t.Fatal("the page reloaded to show the progress")
	}
	if pr := text(`article.stage.production .release`); !strings.Contains(pr, "v2") {
		t.Fatalf("production shows %q after the promotion; want v2", pr)
	}
	s.answersEverywhere(ctx, "hello", 2, "B from hello v2")

	// Roll back from the history, through its preview.
	run("roll back",
		chromedp.Click(chromedp.CSS(`article.stage.production p.app a`)),
		chromedp.WaitVisible(chromedp.CSS(`section.history table`)),
		shot("history"),
		chromedp.Click(chromedp.CSS(`section.history form button`)),
		chromedp.WaitVisible(chromedp.CSS(`form.confirm`)),
		shot("rollback-preview"),
	)
	if h := text(`section.preview h1`); h != "Roll hello back to v1" {
		t.Fatalf("rollback preview heading %q", h)
	}
	run("confirm the rollback",
		chromedp.Click(chromedp.CSS(`form.confirm button.go`)),
		chromedp.WaitVisible(chromedp.CSS(`#operation .progress`)),
	)
	watchProgress(t, bctx, ctx, `body[data-refreshed]`)
	if pr := text(`article.stage.production .release`); !strings.Contains(pr, "v3") {
		t.Fatalf("production shows %q after the rollback; want v3", pr)
	}
	run("rolled back", shot("rolled-back"))
	s.answersEverywhere(ctx, "hello", 2, "A from hello v3")

	// A push waits for approval; approve it on the page.
	push("C")
	eventually(ctx, t, "hello-staging v3 waiting for approval", func() bool {
		var waiting []api.PendingApproval
		return s.get(ctx, "/api/v1/approvals", &waiting) == nil && len(waiting) == 1
	})
	// The CLI lists it too, with the command that decides it.
	t.Setenv("DROVER_URL", "")
	t.Setenv("DROVER_TOKEN", "")
	var listed bytes.Buffer
	if code := Run(ctx, []string{"approvals"}, Streams{Out: &listed, Err: io.Discard}); code != exitOK ||
		!strings.Contains(listed.String(), "hello-staging  v3") || !strings.Contains(listed.String(), "drover approve deploy/hello-staging/") {
		t.Fatalf("drover approvals: exit %d\n%s", code, listed.String())
	}
	run("approve",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`section.approvals`)),
		shot("waiting-for-approval"),
		chromedp.Click(chromedp.CSS(`section.approvals button[value="approve"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#operation .progress`)),
	)
	watchProgress(t, bctx, ctx, `body[data-refreshed]`)
	run("approved", shot("approved"))
	if r := s.waitRelease(ctx, "hello-staging", 3); r.Status != pipelines.ReleaseSucceeded || !strings.HasSuffix(r.Description, "approved by admin") {
		t.Fatalf("hello-staging v3 = %s %q", r.Status, r.Description)
	}
	if st := text(`article.stage.staging .release`); !strings.Contains(st, "v3") {
		t.Fatalf("staging shows %q after the approval; want v3", st)
	}
}

// narrowAndDark looks at the page 360 px wide and in dark mode: nothing
// is wider than the screen, and the background turns dark.
func narrowAndDark(t *testing.T, bctx context.Context, shot func(string) chromedp.Action[chromedp.Void]) {
	t.Helper()
	if _, err := chromedp.Call(bctx, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{Width: 360, Height: 740, DeviceScaleFactor: 1, Mobile: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(bctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}}); err != nil {
		t.Fatal(err)
	}
	width, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
	if err != nil || width > 360 {
		t.Fatalf("at 360 px the page is %d px wide (%v): it scrolls sideways", width, err)
	}
	bg, err := chromedp.Run(bctx, chromedp.Evaluate[string](`getComputedStyle(document.body).backgroundColor`))
	if err != nil || bg != "rgb(13, 17, 23)" {
		t.Fatalf("in dark mode the background is %q (%v)", bg, err)
	}
	if err := chromedp.Do(bctx, shot("pipeline-360px-dark")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(bctx, emulation.ClearDeviceMetricsOverride, struct{}{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(bctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{}); err != nil {
		t.Fatal(err)
	}
}

// watchProgress reads the progress block until done (a selector that
// appears when the operation ended and the stages were refreshed), and
// returns each distinct text it showed, in order.
func watchProgress(t *testing.T, bctx, ctx context.Context, done string) []string {
	t.Helper()
	var seen []string
	for {
		text, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(`#operation`)))
		if err != nil {
			t.Fatal(err)
		}
		finished, err := chromedp.Run(bctx, chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector(%q) !== null`, done)))
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) == 0 || seen[len(seen)-1] != text {
			seen = append(seen, text)
		}
		if finished {
			t.Logf("progress as the page showed it:\n%s", strings.Join(seen, "\n---\n"))
			return seen
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the operation did not end on the page; it showed:\n%s", strings.Join(seen, "\n---\n"))
		case <-time.After(20 * time.Millisecond):
		}
	}
}
