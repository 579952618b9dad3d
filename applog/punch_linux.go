package applog

import (
	"os"
	"syscall"
)

// punchHole frees the first n bytes of f's blocks, keeping its size
// (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE): the range reads as zeros.
func punchHole(f *os.File, n int64) error {
	return syscall.Fallocate(int(f.Fd()), 0x02|0x01, 0, n)
}
