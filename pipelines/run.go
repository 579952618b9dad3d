package pipelines

import (
	"strconv"
	"time"
)

// Run is one one-off process (`drover run`), dyno run.N of its app, as
// the ledger records it.
type Run struct {
	App     string `json:"app"`
	Number  int    `json:"number"`
	Command string `json:"command"`
	By      string `json:"by"`
	Region  string `json:"region"`
	Release int    `json:"release"`
	// Attached runs talk to the CLI that started them; detached ones log.
	Attached  bool       `json:"attached"`
	StartedAt time.Time  `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
	// ExitCode is how it ended; nil while it runs, or if nobody saw it end.
	ExitCode *int `json:"exit_code,omitempty"`
}

// Dyno is the run's dyno name, run.N.
func (r Run) Dyno() string { return "run." + strconv.Itoa(r.Number) }
