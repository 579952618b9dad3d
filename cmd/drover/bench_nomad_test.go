package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	nomadapi "github.com/hashicorp/nomad/api"
)

// BenchmarkNomadPromote measures a promotion into one Nomad region, from
// the API call until the ledger says it is live, against what `nomad job
// run` of the same job waits for: the job drover registered, read back
// from Nomad, registered under an ID of its own with one meta key changed
// (so it is a new version), until its deployment is successful. Run it
// with -benchtime 1x: the rounds are its own. bench/run prints the
// ratio. It needs a Nomad agent (NOMAD_ADDR) and says it
// skipped otherwise.
func BenchmarkNomadPromote(b *testing.B) {
	if testing.Short() {
		b.Skip("starts the dev stack; skipped by -short")
	}
	addr := os.Getenv("NOMAD_ADDR")
	if addr == "" {
		b.Skip("NOMAD_ADDR is not set: promotion into Nomad was not measured (start `nomad agent -dev` and set NOMAD_ADDR)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	b.Setenv(secretEnv, "bench-secret")
	app := fmt.Sprintf("bench-%d", time.Now().Unix()%100000)
	repo := newGitRepo(b)
	config := filepath.Join(b.TempDir(), "drover.yaml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`github: { webhook_secret_env: %s }
regions:
  nomad-dev: { driver: nomad, address: %q }
  local-a: { driver: local }
pipelines:
  hello:
    repo: octo-org/hello
    source: file://%s
    stages:
      staging: { app: %s-staging, branch: main, regions: [local-a] }
      production: { app: %s, regions: [nomad-dev] }
`, secretEnv, addr, repo.dir, app, app)), 0o644); err != nil {
		b.Fatal(err)
	}
	d, s := startDev(b, ctx, config, b.TempDir())
	defer d.Close()
	nomad, err := nomadapi.NewClient(&nomadapi.Config{Address: addr})
	if err != nil {
		b.Fatal(err)
	}
	bare := app + "-bare"
	defer func() {
		for _, id := range []string{app, bare} {
			nomad.Jobs().Deregister(id, true, nil)
		}
	}()
	c := repo.commit("bench", "web: bin/web\n")
	if code, body := s.push(ctx, "bench-1", pushPayload(b, repo.dir, c)); code != http.StatusAccepted {
		b.Fatalf("push: %d %s", code, body)
	}
	s.waitRelease(ctx, app+"-staging", 1)
	s.operation(ctx, http.MethodPost, "/api/v1/pipelines/hello/promote", "") // the job exists from here

	// Rounds alternate drover and the bare job run, and each reports the
	// median of its rounds (NOMAD_ROUNDS, default 3): a promotion on one
	// agent takes 11 to 15 s, mostly the client's own task setup, and
	// runs of one kind back to back (all drover's, then all bare ones)
	// measured the machine's drift as much as either.
	rounds := envInt(b, "NOMAD_ROUNDS", 3)
	runBare := func(n int) time.Duration {
		job, _, err := nomad.Jobs().Info(app, nil)
		if err != nil {
			b.Fatalf("read drover's job: %v", err)
		}
		job.ID, job.Name = &bare, &bare
		job.Meta["bench.run"] = strconv.Itoa(n)
		job.Version, job.ModifyIndex, job.JobModifyIndex, job.CreateIndex, job.SubmitTime, job.Status, job.Stable = nil, nil, nil, nil, nil, nil, nil
		start := time.Now()
		if _, _, err := nomad.Jobs().Register(job, nil); err != nil {
			b.Fatalf("register: %v", err)
		}
		waitNomadDeployment(ctx, b, nomad, bare)
		return time.Since(start)
	}
	// The bare job's first version, like drover's above, is not
	// measured: every measured round of either replaces a running
	// allocation.
	runBare(0)
	var droverTimes, bareTimes []time.Duration
	for n := range rounds {
		start := time.Now()
		s.operation(ctx, http.MethodPost, "/api/v1/pipelines/hello/promote", "")
		droverTimes = append(droverTimes, time.Since(start))
		bareTimes = append(bareTimes, runBare(n+1))
	}
	for _, r := range []struct {
		name  string
		times []time.Duration
	}{{"drover", droverTimes}, {"bare-job-run", bareTimes}} {
		b.Run(r.name, func(b *testing.B) {
			for b.Loop() {
			}
			b.Logf("each round: %v", r.times)
			b.ReportMetric(float64(medianDuration(r.times).Nanoseconds()), "ns/op")
		})
	}
}

// medianDuration is the median of ds (the upper one of an even count).
func medianDuration(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// waitNomadDeployment waits until job's latest version has a successful
// deployment, as `nomad job run` does.
func waitNomadDeployment(ctx context.Context, b *testing.B, nomad *nomadapi.Client, id string) {
	job, _, err := nomad.Jobs().Info(id, nil)
	if err != nil {
		b.Fatal(err)
	}
	for {
		dep, _, err := nomad.Jobs().LatestDeployment(id, nil)
		if err != nil {
			b.Fatal(err)
		}
		if dep != nil && dep.JobVersion == *job.Version {
			switch dep.Status {
			case "successful":
				return
			case "failed", "cancelled":
				b.Fatalf("deployment of %s v%d: %s (%s)", id, dep.JobVersion, dep.Status, dep.StatusDescription)
			}
		}
		select {
		case <-ctx.Done():
			b.Fatalf("deployment of %s never succeeded", id)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
