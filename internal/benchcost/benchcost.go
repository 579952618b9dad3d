// Package benchcost adds what an operation costs, besides its mean time, to
// drover's benchmarks: the CPU the whole process spent on it (the embedded
// Temporal server included), which is what limits parallel work on a small
// machine, and the median, which one slow disk flush does not move.
package benchcost

import (
	"slices"
	"syscall"
	"testing"
	"time"
)

// Meter times each operation of a benchmark.
type Meter struct {
	b    *testing.B
	cpu0 time.Duration
	ops  []time.Duration
}

// Start begins measuring; call it after the benchmark's setup.
func Start(b *testing.B) *Meter {
	return &Meter{b: b, cpu0: cpuTime()}
}

// Time runs op and keeps how long it took.
func (m *Meter) Time(op func()) {
	t0 := time.Now()
	op()
	m.ops = append(m.ops, time.Since(t0))
}

// Report adds cpu-ms/op and p50-ms to the benchmark's line.
func (m *Meter) Report() {
	if len(m.ops) == 0 {
		return
	}
	cpu := cpuTime() - m.cpu0
	m.b.ReportMetric(float64(cpu.Microseconds())/1000/float64(len(m.ops)), "cpu-ms/op")
	slices.Sort(m.ops)
	m.b.ReportMetric(float64(m.ops[len(m.ops)/2].Microseconds())/1000, "p50-ms")
}

// cpuTime is the user and system CPU this process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
