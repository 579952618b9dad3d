package local

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"
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
		groupMembers.Delete(pgid)
		return false
	}
	// A stop polls this every few milliseconds per process, and reading
	// every process's stat each time made stopping five regions' apps at
	// once cost most of a core. So look first at the group's leader, then
	// at the members the last full scan found; scan /proc only when
	// neither is alive while the group still has members.
	if memberAlive(pgid, pgid) {
		return true
	}
	if known, ok := groupMembers.Load(pgid); ok {
		for _, pid := range known.([]int) {
			if memberAlive(pid, pgid) {
				return true
			}
		}
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	var members []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		st, err := parseProcStat("/proc/" + e.Name() + "/stat")
		if err == nil && st.pgrp == pgid && st.state != 'Z' {
			members = append(members, pid)
		}
	}
	if len(members) == 0 {
		groupMembers.Delete(pgid)
		return false
	}
	groupMembers.Store(pgid, members)
	return true
}

// groupMembers remembers, per process group, the live members the last
// scan of /proc found (pgid → []int).
var groupMembers sync.Map

// memberAlive reports whether pid is a live, non-zombie member of pgid.
func memberAlive(pid, pgid int) bool {
	st, err := readProcStat(pid)
	return err == nil && st.pgrp == pgid && st.state != 'Z'
}
