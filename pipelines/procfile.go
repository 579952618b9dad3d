package pipelines

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
)

// ReleaseProcess is the Procfile process type run once per release, before
// any region changes (Heroku's release phase). It is never scaled.
const ReleaseProcess = "release"

// WebProcess is the process type that receives HTTP traffic on $PORT.
const WebProcess = "web"

// Process is one Procfile line: a process type and the shell command it runs.
type Process struct {
	Type    string `json:"type"`
	Command string `json:"command"`
}

// Procfile is a parsed Procfile, in the order its lines were written.
type Procfile []Process

// ProcfileError says which line of a Procfile is broken and why.
type ProcfileError struct {
	Line int
	Text string
	Msg  string
}

func (e *ProcfileError) Error() string {
	if e.Line == 0 {
		return "Procfile: " + e.Msg
	}
	return fmt.Sprintf("Procfile line %d: %s: %q", e.Line, e.Msg, e.Text)
}

// Is makes every ProcfileError match ErrInvalid: a broken Procfile never
// fixes itself on retry.
func (e *ProcfileError) Is(target error) bool { return target == ErrInvalid }

// processTypeRE is Heroku's rule for process type names, which also keeps
// them valid in Nomad group names and hostnames.
var processTypeRE = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// maxProcfileSize bounds what we read, since the file comes from user code.
const maxProcfileSize = 64 << 10

// ParseProcfile reads a Procfile. Blank lines and lines starting with # are
// ignored. It returns a *ProcfileError naming the line for a line without
// "type: command", an invalid type name, an empty command or a duplicate type,
// and for a file with no process at all.
func ParseProcfile(r io.Reader) (Procfile, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxProcfileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read Procfile: %w", err)
	}
	if len(data) > maxProcfileSize {
		return nil, &ProcfileError{Msg: fmt.Sprintf("larger than %d bytes", maxProcfileSize)}
	}
	var p Procfile
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxProcfileSize)
	for n := 1; sc.Scan(); n++ {
		raw := sc.Text()
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		typ, cmd, ok := strings.Cut(line, ":")
		if !ok {
			return nil, &ProcfileError{Line: n, Text: raw, Msg: `expected "<process type>: <command>"`}
		}
		typ, cmd = strings.TrimSpace(typ), strings.TrimSpace(cmd)
		switch {
		case !processTypeRE.MatchString(typ):
			return nil, &ProcfileError{Line: n, Text: raw, Msg: "process type must be letters, digits, '-' or '_'"}
		case cmd == "":
			return nil, &ProcfileError{Line: n, Text: raw, Msg: fmt.Sprintf("process type %q has no command", typ)}
		}
		if first, dup := seen[typ]; dup {
			return nil, &ProcfileError{Line: n, Text: raw, Msg: fmt.Sprintf("process type %q already defined on line %d", typ, first)}
		}
		seen[typ] = n
		p = append(p, Process{Type: typ, Command: cmd})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read Procfile: %w", err)
	}
	if len(p) == 0 {
		return nil, &ProcfileError{Msg: "no process types defined"}
	}
	return p, nil
}

// Types are the process types, in the Procfile's order.
func (p Procfile) Types() []string {
	types := make([]string, len(p))
	for i, proc := range p {
		types[i] = proc.Type
	}
	return types
}

// Command returns the command of a process type.
func (p Procfile) Command(typ string) (string, bool) {
	for _, proc := range p {
		if proc.Type == typ {
			return proc.Command, true
		}
	}
	return "", false
}

// Services returns the long-running process types, everything but release,
// sorted so callers iterate deterministically.
func (p Procfile) Services() []Process {
	var out []Process
	for _, proc := range p {
		if proc.Type != ReleaseProcess {
			out = append(out, proc)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Type < out[j].Type })
	return out
}

// String renders the Procfile back to its file form.
func (p Procfile) String() string {
	var b strings.Builder
	for _, proc := range p {
		fmt.Fprintf(&b, "%s: %s\n", proc.Type, proc.Command)
	}
	return b.String()
}
