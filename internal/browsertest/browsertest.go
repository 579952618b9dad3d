// Package browsertest starts the headless Chromium that the web page's
// tests and benchmarks drive with chromedp.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/chromedp/chromedp"
)

// Path finds Chromium: $DROVER_TEST_CHROMIUM, else Debian's chromium
// package, which .ci/run installs. Without one it skips tb, saying why.
func Path(tb testing.TB) string {
	tb.Helper()
	for _, p := range []string{os.Getenv("DROVER_TEST_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	tb.Skip("no Chromium here (Debian's chromium package, which .ci/run installs with apt-get): the web page's browser tests need a real browser")
	return ""
}

// New starts headless Chromium for tb, with opts besides chromedp's
// defaults, and returns the context of one tab. The browser stops when
// parent ends or tb's cleanup runs.
func New(tb testing.TB, parent context.Context, opts ...chromedp.ExecAllocatorOption) context.Context {
	tb.Helper()
	path := Path(tb)
	all := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU)
	actx, cancelAlloc := chromedp.NewExecAllocator(parent, append(all, opts...)...)
	tb.Cleanup(cancelAlloc)
	bctx, cancel := chromedp.NewContext(actx)
	tb.Cleanup(cancel)
	return bctx
}
