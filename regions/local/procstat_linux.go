package local

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// readProcStat reads /proc/<pid>/stat. It returns an error wrapping
// fs.ErrNotExist when no such process exists.
func readProcStat(pid int) (procStat, error) {
	return parseProcStat("/proc/" + strconv.Itoa(pid) + "/stat")
}

func parseProcStat(path string) (procStat, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return procStat{}, err
	}
	// The command name (field 2) is in parentheses and may itself hold
	// spaces and parentheses, so count fields from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("parse %s: no command name", path)
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state), f[2] field 5 (pgrp), f[19] field 22 (starttime).
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("parse %s: %d fields", path, len(f)+2)
	}
	pgrp, err := strconv.Atoi(string(f[2]))
	if err != nil {
		return procStat{}, fmt.Errorf("parse %s: process group: %w", path, err)
	}
	start, err := strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("parse %s: start time: %w", path, err)
	}
	return procStat{state: f[0][0], pgrp: pgrp, start: start}, nil
}

// groupAlive reports whether process group pgid has a member that is not a
// zombie. Zombies count as gone: where pid 1 does not reap orphans (many
// containers), they would otherwise keep a stopped app "running" forever.
func groupAlive(pgid int) bool {
	if syscall.Kill(-pgid, 0) != nil {
		return false
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err != nil || pid <= 0 {
			continue
		}
		st, err := parseProcStat("/proc/" + e.Name() + "/stat")
		if err == nil && st.pgrp == pgid && st.state != 'Z' {
			return true
		}
	}
	return false
}
