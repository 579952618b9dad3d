package metrics_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/drover/drover/metrics"
)

// TestWebhooksCountsByEventAndOutcome: each delivery is counted under its
// event and what drover answered, and the registry serves it to Prometheus.
func TestWebhooksCountsByEventAndOutcome(t *testing.T) {
	gin.SetMode(gin.TestMode)
	reg := metrics.New()
	e := gin.New()
	g := e.Group("", reg.Webhooks())
	g.POST("/hook", func(c *gin.Context) { c.Status(map[string]int{"ok": 202, "bad": 401, "down": 503}[c.Query("r")]) })
	for _, d := range []struct{ event, r string }{{"push", "ok"}, {"push", "ok"}, {"push", "bad"}, {"check_suite", "down"}, {"", "ok"}} {
		req := httptest.NewRequest("POST", "/hook?r="+d.r, nil)
		if d.event != "" {
			req.Header.Set("X-GitHub-Event", d.event)
		}
		e.ServeHTTP(httptest.NewRecorder(), req)
	}
	got, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]float64{
		"drover_webhooks_total,event=push,outcome=queued":             2,
		"drover_webhooks_total,event=push,outcome=bad_signature":      1,
		"drover_webhooks_total,event=check_suite,outcome=unavailable": 1,
		"drover_webhooks_total,event=unknown,outcome=queued":          1,
		"drover_webhook_duration_seconds,event=push":                  3,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
	rec := httptest.NewRecorder()
	reg.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `drover_webhooks_total{event="push",outcome="queued"} 2`) {
		t.Fatalf("/metrics = %d\n%.500s", rec.Code, rec.Body)
	}
}
