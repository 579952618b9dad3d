package applog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// Pump turns what a process writes to its raw output file into stamped
// lines in a rotated File. The process writes Raw itself, through a
// descriptor of its own in append mode, so it keeps running, and writing,
// while drover restarts; the pump picks up where it left off (its offset
// is kept in Raw+".pos") and stamps lines with the time it reads them,
// which is the time they were written to within a poll while drover runs.
//
// Raw never takes more disk than a little over keepRaw: the pump frees
// what it has read by punching holes in the file (where the file system
// can), so its length grows but its blocks do not, and the process's
// descriptor stays valid.
type Pump struct {
	Raw    string
	Out    File
	Source string
	Dyno   string

	offset  int64 // of the first byte not yet turned into a line
	loaded  bool
	pending []byte    // an unfinished last line
	since   time.Time // when pending was first seen
	punched int64     // bytes of Raw already freed
}

// keepRaw is how much of Raw's already-read tail is kept as bytes (the
// local driver quotes a crashed process's last lines from it).
const keepRaw = 64 << 10

// flushAfter is how long an unfinished line waits for its newline before
// it is written as a line of its own (a prompt, a progress bar).
const flushAfter = 500 * time.Millisecond

// Step reads what the process wrote since the last Step and writes it out
// as lines stamped now. It returns how many lines it wrote.
func (p *Pump) Step(now time.Time) (int, error) {
	if !p.loaded {
		p.offset = readPos(p.Raw + ".pos")
		p.loaded = true
	}
	fh, err := os.OpenFile(p.Raw, os.O_RDWR, 0) // RDWR: punching holes writes
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read output: %w", err)
	}
	defer fh.Close()
	info, err := fh.Stat()
	if err != nil {
		return 0, fmt.Errorf("read output: %w", err)
	}
	if info.Size() < p.offset {
		// Truncated by someone else: start again from its start.
		p.offset, p.pending, p.punched = 0, nil, 0
	}
	start := p.offset + int64(len(p.pending))
	var lines []Line
	if n := info.Size() - start; n > 0 {
		buf := make([]byte, min(n, 4<<20))
		got, err := fh.ReadAt(buf, start)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("read output %s: %w", p.Raw, err)
		}
		data := append(p.pending, buf[:got]...)
		consumed := int64(0)
		for {
			i := bytes.IndexByte(data[consumed:], '\n')
			if i < 0 {
				break
			}
			lines = p.appendLines(lines, data[consumed:consumed+int64(i)], now)
			consumed += int64(i) + 1
		}
		p.offset += consumed
		if rest := data[consumed:]; len(rest) > 0 {
			if len(p.pending) == 0 || consumed > 0 {
				p.since = now
			}
			p.pending = append([]byte(nil), rest...)
		} else {
			p.pending = nil
		}
	}
	if len(p.pending) > 0 && (now.Sub(p.since) >= flushAfter || len(p.pending) >= MaxLineBytes) {
		lines = p.appendLines(lines, p.pending, now)
		p.offset += int64(len(p.pending))
		p.pending = nil
	}
	if len(lines) == 0 {
		return 0, nil
	}
	if err := p.Out.Append(lines...); err != nil {
		return 0, err
	}
	if err := writePos(p.Raw+".pos", p.offset); err != nil {
		return len(lines), err
	}
	if free := (p.offset - keepRaw) &^ (holeAlign - 1); free > p.punched {
		if punchHole(fh, free) == nil {
			p.punched = free
		}
	}
	return len(lines), nil
}

func (p *Pump) appendLines(lines []Line, b []byte, now time.Time) []Line {
	for _, msg := range Split(bytes.ToValidUTF8(b, []byte("\uFFFD"))) {
		lines = append(lines, Line{Time: now, Source: p.Source, Dyno: p.Dyno, Message: string(bytes.Trim([]byte(msg), "\x00"))})
	}
	return lines
}

// holeAlign is the block size holes are punched in.
const holeAlign = 4096

func readPos(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil || len(b) != 8 {
		return 0
	}
	return int64(binary.LittleEndian.Uint64(b))
}

func writePos(path string, pos int64) error {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(pos))
	if err := os.WriteFile(path, b[:], 0o644); err != nil {
		return fmt.Errorf("record output offset: %w", err)
	}
	return nil
}
