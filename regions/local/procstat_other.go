//go:build unix && !linux

package local

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
)

// readProcStat, without /proc, can only tell whether pid exists: start time
// and group are unknown (0), so a reused pid cannot be told apart from ours
// here.
func readProcStat(pid int) (procStat, error) {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return procStat{}, fmt.Errorf("process %d: %w", pid, fs.ErrNotExist)
	}
	return procStat{state: 'S'}, nil
}

// groupAlive reports whether process group pgid has members; zombies count.
func groupAlive(pgid int) bool { return syscall.Kill(-pgid, 0) == nil }
