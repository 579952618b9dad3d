package applog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// Rotation bounds of a File, as the local driver keeps them: at most
// DefaultKeep files of DefaultMaxSize each per process.
const (
	DefaultMaxSize = 10 << 20
	DefaultKeep    = 10
)

// File is a log file that rotates by size: Path is the newest, Path.1 the
// one before, up to Path.(Keep-1); older ones are removed. It is not safe
// for concurrent use; one writer owns a path.
type File struct {
	Path    string
	MaxSize int64 // DefaultMaxSize when 0
	Keep    int   // DefaultKeep when 0
}

// Append writes lines, rotating first if they would take the file past
// its size.
func (f File) Append(lines ...Line) error {
	if len(lines) == 0 {
		return nil
	}
	var buf bytes.Buffer
	for _, l := range lines {
		buf.WriteString(l.String())
		buf.WriteByte('\n')
	}
	maxSize := f.MaxSize
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	if info, err := os.Stat(f.Path); err == nil && info.Size() > 0 && info.Size()+int64(buf.Len()) > maxSize {
		if err := f.rotate(); err != nil {
			return fmt.Errorf("rotate log %s: %w", f.Path, err)
		}
	}
	out, err := os.OpenFile(f.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("write log: %w", err)
	}
	_, err = out.Write(buf.Bytes())
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write log %s: %w", f.Path, err)
	}
	return nil
}

func (f File) keep() int {
	if f.Keep <= 0 {
		return DefaultKeep
	}
	return f.Keep
}

// rotate shifts Path.k to Path.k+1, dropping the oldest, and Path to
// Path.1. A reader that has Path open keeps reading the renamed file.
func (f File) rotate() error {
	keep := f.keep()
	if err := os.Remove(f.Path + "." + strconv.Itoa(keep-1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for k := keep - 2; k >= 1; k-- {
		err := os.Rename(f.Path+"."+strconv.Itoa(k), f.Path+"."+strconv.Itoa(k+1))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if keep == 1 {
		return os.Remove(f.Path)
	}
	return os.Rename(f.Path, f.Path+".1")
}

// Files are the paths of the log, oldest first, that exist.
func (f File) Files() []string {
	var out []string
	for k := f.keep() - 1; k >= 1; k-- {
		p := f.Path + "." + strconv.Itoa(k)
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	if _, err := os.Stat(f.Path); err == nil {
		out = append(out, f.Path)
	}
	return out
}

// readChunk is how much ReadLast reads from a file's end at a time.
const readChunk = 64 << 10

// ReadLast returns the newest n lines of the log that match q, oldest
// first, reading from the end of the newest file (Path up to end bytes,
// the rest of the rotations whole) so -n 100 of a 100 MB log reads
// kilobytes. Lines that do not parse are skipped.
func (f File) ReadLast(n int, end int64, q Query) ([]Line, error) {
	if n <= 0 {
		return nil, nil
	}
	files := f.Files()
	var out []Line // newest first
	for i := len(files) - 1; i >= 0 && len(out) < n; i-- {
		limit := int64(-1)
		if files[i] == f.Path {
			limit = end
		}
		got, err := readBackwards(files[i], limit, n-len(out), q)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// readBackwards reads up to n matching lines from the end of path
// (limited to its first limit bytes when limit ≥ 0), newest first.
func readBackwards(path string, limit int64, n int, q Query) ([]Line, error) {
	fh, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read log: %w", err)
	}
	defer fh.Close()
	info, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("read log: %w", err)
	}
	pos := info.Size()
	if limit >= 0 && limit < pos {
		pos = limit
	}
	var out []Line
	var carry []byte // the start of a line whose rest was read before
	for pos > 0 && len(out) < n {
		size := min(int64(readChunk), pos)
		pos -= size
		buf := make([]byte, size, int(size)+len(carry))
		if _, err := fh.ReadAt(buf, pos); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read log %s: %w", path, err)
		}
		buf = append(buf, carry...)
		lines := bytes.Split(buf, []byte{'\n'})
		if pos > 0 {
			carry, lines = lines[0], lines[1:]
		} else {
			carry = nil
		}
		for i := len(lines) - 1; i >= 0 && len(out) < n; i-- {
			if len(lines[i]) == 0 {
				continue
			}
			if l, err := Parse(string(lines[i])); err == nil && q.Match(l) {
				out = append(out, l)
			}
		}
	}
	return out, nil
}

// Follower reads the lines appended to a log after a point, across its
// rotations: it holds the file open, so a rotation (a rename) leaves it
// reading the renamed file to its end before it opens the new one.
type Follower struct {
	path    string
	fh      *os.File
	pending []byte
}

// Follow starts following path from its current end, which it returns
// (so a ReadLast up to there and the Follower together read every line
// once). A path that does not exist yet is followed from its start once
// it appears.
func Follow(path string) (*Follower, int64, error) {
	fl := &Follower{path: path}
	fh, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fl, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("follow log: %w", err)
	}
	end, err := fh.Seek(0, io.SeekEnd)
	if err != nil {
		fh.Close()
		return nil, 0, fmt.Errorf("follow log: %w", err)
	}
	fl.fh = fh
	return fl, end, nil
}

// Rewind makes the next Poll read the file from its start: for a log
// that appeared after the reader began, all of whose lines are new.
func (fl *Follower) Rewind() {
	if fl.fh != nil {
		fl.fh.Seek(0, io.SeekStart)
		fl.pending = nil
	}
}

// Poll returns the complete lines written since the last Poll.
func (fl *Follower) Poll() ([]Line, error) {
	var out []Line
	for range 2 { // the rest of a rotated file, then the new one
		if fl.fh == nil {
			fh, err := os.Open(fl.path)
			if errors.Is(err, fs.ErrNotExist) {
				return out, nil
			}
			if err != nil {
				return out, fmt.Errorf("follow log: %w", err)
			}
			fl.fh, fl.pending = fh, nil
		}
		lines, err := fl.readToEnd()
		out = append(out, lines...)
		if err != nil {
			return out, err
		}
		if !fl.rotated() {
			return out, nil
		}
		fl.fh.Close()
		fl.fh = nil
	}
	return out, nil
}

func (fl *Follower) readToEnd() ([]Line, error) {
	var out []Line
	r := bufio.NewReaderSize(fl.fh, readChunk)
	for {
		b, err := r.ReadSlice('\n')
		if len(b) > 0 && err == nil {
			s := strings.TrimSuffix(string(append(fl.pending, b...)), "\n")
			fl.pending = fl.pending[:0]
			if l, perr := Parse(s); perr == nil {
				out = append(out, l)
			}
			continue
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			fl.pending = append(fl.pending, b...)
			continue
		}
		fl.pending = append(fl.pending, b...)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		return out, fmt.Errorf("follow log %s: %w", fl.path, err)
	}
}

// rotated reports whether path now names another file than the one held.
func (fl *Follower) rotated() bool {
	held, err := fl.fh.Stat()
	if err != nil {
		return true
	}
	now, err := os.Stat(fl.path)
	if err != nil {
		return errors.Is(err, fs.ErrNotExist)
	}
	return !os.SameFile(held, now)
}

// Close releases the file.
func (fl *Follower) Close() {
	if fl.fh != nil {
		fl.fh.Close()
		fl.fh = nil
	}
}
