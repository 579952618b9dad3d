package web_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/drover/drover/internal/browsertest"
	"github.com/drover/drover/pipelines"
)

// bigSite is a site with 25 pipelines (50 apps: staging and production
// each) and 1,000 releases, 20 per app, each rolled out to two regions.
func bigSite(b *testing.B) *site {
	b.Helper()
	var yaml strings.Builder
	yaml.WriteString("github:\n  webhook_secret: bench\nregions:\n  local-a: { driver: local }\n  local-b: { driver: local }\npipelines:\n")
	for i := range 25 {
		fmt.Fprintf(&yaml, "  app%02d:\n    repo: octo-org/app%02d\n    stages:\n      staging: { app: app%02d-staging, branch: main, regions: [local-a] }\n      production: { app: app%02d, regions: [local-a, local-b] }\n", i, i, i, i)
	}
	path := filepath.Join(b.TempDir(), "drover.yaml")
	if err := os.WriteFile(path, []byte(yaml.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	cfg, err := pipelines.LoadConfig(path)
	if err != nil {
		b.Fatal(err)
	}
	s := newSiteWith(b, cfg)
	for _, app := range cfg.Apps() {
		for v := range 20 {
			s.release(app.Name, fmt.Sprintf("%040d", v), fmt.Sprintf("sha256:%064d", v), fmt.Sprintf("push to main by octocat: change %d", v), app.Regions...)
		}
	}
	return s
}

// BenchmarkBoard is the server's side of the pipelines page with 50 apps
// and 1,000 releases: every API read it makes and the HTML.
func BenchmarkBoard(b *testing.B) {
	if testing.Short() {
		b.Skip("seeds 1,000 releases; skipped by -short")
	}
	s := bigSite(b)
	var size int
	b.ResetTimer()
	for b.Loop() {
		w := s.do(request{method: "GET", path: "/", token: adminToken})
		if w.Code != 200 || !strings.Contains(w.Body.String(), "app24-staging") {
			b.Fatalf("= %d", w.Code)
		}
		size = w.Body.Len()
	}
	b.ReportMetric(float64(size), "html-bytes")
}

// BenchmarkBoardFirstRender loads the pipelines page with 50 apps and
// 1,000 releases in headless Chromium and reports the browser's own first
// contentful paint, from navigation start: the request, the server's
// work, the stylesheet and script, and the render.
func BenchmarkBoardFirstRender(b *testing.B) {
	if testing.Short() {
		b.Skip("starts Chromium; skipped by -short")
	}
	browsertest.Path(b) // skips first, before seeding, where there is no Chromium
	s := bigSite(b)
	srv := httptest.NewServer(s.e)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bctx := browsertest.New(b, ctx)
	// Signing in sets the cookie the page's loads carry.
	if err := chromedp.Do(bctx,
		chromedp.Navigate(srv.URL+"/login"),
		chromedp.SendKeys(chromedp.CSS(`#token`), adminToken),
		chromedp.Submit(chromedp.CSS(`#token`)),
		chromedp.WaitVisible(chromedp.CSS(`article.stage.production`)),
	); err != nil {
		b.Fatal(err)
	}
	var fcp, bytes float64
	b.ResetTimer()
	for b.Loop() {
		if err := chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`#pipelines`))); err != nil {
			b.Fatal(err)
		}
		paint, err := chromedp.Run(bctx, chromedp.Evaluate[float64](`new Promise(r => {
			const e = performance.getEntriesByName("first-contentful-paint")[0];
			if (e) { r(e.startTime); return; }
			new PerformanceObserver(l => r(l.getEntries()[0].startTime)).observe({type: "paint", buffered: true});
		})`, chromedp.EvalAwaitPromise))
		if err != nil {
			b.Fatal(err)
		}
		weight, err := chromedp.Run(bctx, chromedp.Evaluate[float64](`performance.getEntriesByType("navigation")[0].decodedBodySize +
			performance.getEntriesByType("resource").reduce((n, r) => n + r.decodedBodySize, 0)`))
		if err != nil {
			b.Fatal(err)
		}
		fcp += paint
		bytes = weight
	}
	b.ReportMetric(fcp/float64(b.N), "ms-first-paint")
	b.ReportMetric(bytes, "page-bytes")
}
