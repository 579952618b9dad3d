package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover/drover/api"
	"github.com/drover/drover/workflows"
)

func TestZZTrace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	t.Setenv(secretEnv, "bench-secret")
	one, five := newGitRepo(t), newGitRepo(t)
	cfg := strings.NewReplacer("SECRET_ENV", secretEnv, "ONE_DIR", one.dir, "FIVE_DIR", five.dir).Replace(benchConfig)
	path := filepath.Join(t.TempDir(), "drover.yaml")
	os.WriteFile(path, []byte(cfg), 0o644)
	d, s := startDev(t, ctx, path, t.TempDir())
	c := one.commit("bench", "web: bin/web\n")
	s.push(ctx, "bench-0", pushPayloadFor(t, "bench/one", one.dir, c))
	s.waitRelease(ctx, "one-staging", 1)
	var op api.Operation
	for i := range 5 {
		s.patch(ctx, "/api/v1/apps/one-staging/config", fmt.Sprintf(`{"BENCH":"%d"}`, i))
		t0 := time.Now()
		s.call(ctx, http.MethodPost, "/api/v1/apps/one-staging/releases", "", &op)
		t1 := time.Now()
		for d.client.GetWorkflow(ctx, op.ID, "").Get(ctx, nil) != nil {
			time.Sleep(time.Millisecond)
		}
		fmt.Printf("api %v total %v\n", t1.Sub(t0), time.Since(t0))
		if i == 4 {
			fmt.Printf("t0 %s\n", t0.UTC().Format("15:04:05.000000"))
		}
	}
	for _, id := range []string{workflows.AppWorkflowID("one-staging"), op.ID} {
		it := d.client.GetWorkflowHistory(ctx, id, "", false, 0)
		var evs []string
		for it.HasNext() {
			e, _ := it.Next()
			evs = append(evs, fmt.Sprintf("%3d %s %s", e.EventId, e.EventTime.AsTime().Format("15:04:05.000000"), e.EventType))
		}
		if len(evs) > 40 {
			evs = evs[len(evs)-14:]
		}
		fmt.Println(id)
		fmt.Println(strings.Join(evs, "\n"))
	}
}
