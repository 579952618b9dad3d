package applog_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/drover/drover/applog"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 123456000, time.UTC)

func TestLineFormat(t *testing.T) {
	tests := []struct {
		line applog.Line
		want string
	}{
		{applog.Line{Time: t0, Source: "app", Dyno: "web.1", Message: "message"}, "2026-12-01T10:00:00.123456+00:00 app[web.1]: message"},
		{applog.Line{Time: t0.In(time.FixedZone("EST", -5*3600)), Source: "drover", Dyno: "worker.2", Message: "Process exited with status 1"},
			"2026-12-01T10:00:00.123456+00:00 drover[worker.2]: Process exited with status 1"},
		{applog.Line{Time: t0, Source: "app", Dyno: "run.3", Message: ""}, "2026-12-01T10:00:00.123456+00:00 app[run.3]: "},
		{applog.Line{Time: t0, Source: "app", Dyno: "web.1", Message: "a]: b [c]"}, "2026-12-01T10:00:00.123456+00:00 app[web.1]: a]: b [c]"},
	}
	for _, tt := range tests {
		if got := tt.line.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
		back, err := applog.Parse(tt.want)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.want, err)
		}
		if !back.Time.Equal(tt.line.Time) || back.Source != tt.line.Source || back.Dyno != tt.line.Dyno || back.Message != tt.line.Message {
			t.Errorf("Parse(%q) = %+v, want %+v", tt.want, back, tt.line)
		}
	}
	for _, bad := range []string{"", "hello", "2026-12-01 app[web.1]: x", "2026-12-01T10:00:00.123456+00:00 nothing"} {
		if _, err := applog.Parse(bad); err == nil {
			t.Errorf("Parse(%q) = nil error", bad)
		}
	}
}

func TestSplit(t *testing.T) {
	long := strings.Repeat("a", applog.MaxLineBytes-1) + "é" + strings.Repeat("b", 25000)
	tests := []struct {
		in   string
		want []int // lengths
	}{
		{"short\r", []int{5}},
		{strings.Repeat("x", applog.MaxLineBytes), []int{applog.MaxLineBytes}},
		{strings.Repeat("x", applog.MaxLineBytes+1), []int{applog.MaxLineBytes, 1}},
		// The two-byte é straddles the limit: the cut moves before it.
		{long, []int{applog.MaxLineBytes - 1, applog.MaxLineBytes, applog.MaxLineBytes, 5002}},
	}
	for _, tt := range tests {
		got := applog.Split([]byte(tt.in))
		var lens []int
		for _, g := range got {
			lens = append(lens, len(g))
			if !utf8.ValidString(g) {
				t.Errorf("piece is not valid UTF-8: %q…", g[:10])
			}
		}
		if fmt.Sprint(lens) != fmt.Sprint(tt.want) {
			t.Errorf("Split(%d bytes) lengths = %v, want %v", len(tt.in), lens, tt.want)
		}
		if joined := strings.Join(got, ""); joined != strings.TrimSuffix(tt.in, "\r") {
			t.Errorf("Split lost bytes")
		}
	}
}

func TestQuery(t *testing.T) {
	web2 := applog.Line{Source: "app", Dyno: "web.2"}
	drover := applog.Line{Source: "drover", Dyno: "web.2"}
	tests := []struct {
		q    applog.Query
		line applog.Line
		want bool
	}{
		{applog.Query{}, web2, true},
		{applog.Query{Dyno: "web.2"}, web2, true},
		{applog.Query{Dyno: "web.1"}, web2, false},
		{applog.Query{Type: "web"}, web2, true},
		{applog.Query{Type: "worker"}, web2, false},
		{applog.Query{Source: "drover"}, web2, false},
		{applog.Query{Source: "drover", Dyno: "web.2"}, drover, true},
	}
	for _, tt := range tests {
		if got := tt.q.Match(tt.line); got != tt.want {
			t.Errorf("%+v.Match(%+v) = %v", tt.q, tt.line, got)
		}
	}
	for _, bad := range []applog.Query{{Num: -1}, {Num: applog.MaxNum + 1}, {Source: "router"}, {Dyno: "web 1"}, {Type: "../x"}} {
		if bad.Validate() == nil {
			t.Errorf("%+v.Validate() = nil", bad)
		}
	}
}

func TestMergeOrder(t *testing.T) {
	at := func(ms int, dyno string) applog.Line {
		return applog.Line{Time: t0.Add(time.Duration(ms) * time.Millisecond), Dyno: dyno, Message: fmt.Sprint(ms)}
	}
	a := []applog.Line{at(1, "web.1"), at(5, "web.1"), at(5, "web.1"), at(9, "web.1")}
	b := []applog.Line{at(2, "web.2"), at(5, "web.2"), at(10, "web.2")}
	got := applog.Merge(-1, a, b)
	var order []string
	for _, l := range got {
		order = append(order, l.Dyno+"@"+l.Message)
	}
	want := "web.1@1 web.2@2 web.1@5 web.1@5 web.2@5 web.1@9 web.2@10"
	if strings.Join(order, " ") != want {
		t.Errorf("Merge = %s, want %s", strings.Join(order, " "), want)
	}
	if got := applog.Merge(2, a, b); len(got) != 2 || got[0].Message != "9" || got[1].Message != "10" {
		t.Errorf("Merge(2) = %v, want the newest two", got)
	}
}

func lines(from, n int, dyno string) []applog.Line {
	out := make([]applog.Line, n)
	for i := range out {
		out[i] = applog.Line{Time: t0.Add(time.Duration(from+i) * time.Microsecond), Source: "app", Dyno: dyno, Message: fmt.Sprintf("line %d %s", from+i, strings.Repeat("x", 80))}
	}
	return out
}

func TestFileRotationBounds(t *testing.T) {
	dir := t.TempDir()
	f := applog.File{Path: filepath.Join(dir, "web.1.log"), MaxSize: 10_000, Keep: 4}
	for i := 0; i < 2000; i += 10 {
		if err := f.Append(lines(i, 10, "web.1")...); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 4 {
		t.Errorf("%d files, want Keep=4: %v", len(entries), entries)
	}
	for _, e := range entries {
		info, _ := e.Info()
		if info.Size() > f.MaxSize {
			t.Errorf("%s is %d bytes, over MaxSize %d", e.Name(), info.Size(), f.MaxSize)
		}
	}
	got, err := f.ReadLast(250, 1<<62, applog.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 250 {
		t.Fatalf("ReadLast(250) = %d lines", len(got))
	}
	for i, l := range got {
		if want := fmt.Sprintf("line %d ", 1750+i); !strings.HasPrefix(l.Message, want) {
			t.Fatalf("line %d = %q, want it to start %q (the newest 250, oldest first, across rotations)", i, l.Message[:12], want)
		}
	}
	// Everything kept is readable, and the oldest lines were dropped.
	all, _ := f.ReadLast(applog.MaxNum, 1<<62, applog.Query{})
	if len(all) >= 2000 || len(all) < 200 {
		t.Errorf("kept %d lines of 2000 in 4 × 10 kB", len(all))
	}
}

func TestReadLastFilters(t *testing.T) {
	f := applog.File{Path: filepath.Join(t.TempDir(), "drover.log")}
	var mixed []applog.Line
	for i := range 300 {
		l := lines(i, 1, "web.1")[0]
		if i%3 == 0 {
			l.Dyno = "worker.1"
		}
		mixed = append(mixed, l)
	}
	f.Append(mixed...)
	got, _ := f.ReadLast(5, 1<<62, applog.Query{Dyno: "worker.1"})
	if len(got) != 5 || !strings.HasPrefix(got[4].Message, "line 297 ") || !strings.HasPrefix(got[0].Message, "line 285 ") {
		t.Errorf("ReadLast(5, worker.1) = %v", got)
	}
}

func TestFollowerAcrossRotation(t *testing.T) {
	dir := t.TempDir()
	f := applog.File{Path: filepath.Join(dir, "web.1.log"), MaxSize: 2000, Keep: 3}
	f.Append(lines(0, 5, "web.1")...)
	fl, end, err := applog.Follow(f.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	before, _ := f.ReadLast(100, end, applog.Query{})
	var seen []applog.Line
	for i := 5; i < 200; i += 5 {
		f.Append(lines(i, 5, "web.1")...) // rotates every ~20 lines
		got, err := fl.Poll()
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, got...)
	}
	if len(before) != 5 || len(seen) != 195 {
		t.Fatalf("read %d before and followed %d lines, want 5 and 195 (each once)", len(before), len(seen))
	}
	for i, l := range seen {
		if want := fmt.Sprintf("line %d ", 5+i); !strings.HasPrefix(l.Message, want) {
			t.Fatalf("followed line %d = %q, want %q", i, l.Message[:10], want)
		}
	}
}

func TestFollowerOfAFileNotYetThere(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.1.log")
	fl, end, err := applog.Follow(path)
	if err != nil || end != 0 {
		t.Fatal(end, err)
	}
	if got, _ := fl.Poll(); len(got) != 0 {
		t.Fatal(got)
	}
	applog.File{Path: path}.Append(lines(0, 3, "run.1")...)
	if got, _ := fl.Poll(); len(got) != 3 {
		t.Fatalf("Poll after the file appeared = %d lines, want 3", len(got))
	}
}

func TestPump(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "web.1.out")
	out := applog.File{Path: filepath.Join(dir, "web.1.log")}
	w, err := os.OpenFile(raw, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	p := &applog.Pump{Raw: raw, Out: out, Source: "app", Dyno: "web.1"}
	fmt.Fprint(w, "one\ntwo\r\nthr")
	if n, err := p.Step(t0); n != 2 || err != nil {
		t.Fatalf("Step = %d, %v; want the 2 finished lines", n, err)
	}
	fmt.Fprint(w, "ee\n"+strings.Repeat("z", applog.MaxLineBytes+5)+"\nprompt> ")
	if n, _ := p.Step(t0.Add(time.Second)); n != 3 {
		t.Fatalf("Step = %d, want three (the long line split in two)", n)
	}
	// An unfinished line is written once it has waited long enough.
	if n, _ := p.Step(t0.Add(1100 * time.Millisecond)); n != 0 {
		t.Fatalf("unfinished line written after 100ms")
	}
	if n, _ := p.Step(t0.Add(2 * time.Second)); n != 1 {
		t.Fatalf("unfinished line not written after 1s")
	}
	got, _ := out.ReadLast(10, 1<<62, applog.Query{})
	var msgs []string
	for _, l := range got {
		msgs = append(msgs, fmt.Sprintf("%s@%d", l.Message[:min(5, len(l.Message))], l.Time.Sub(t0)/time.Second))
	}
	if want := "one@0 two@0 three@1 zzzzz@1 zzzzz@1 promp@2"; strings.Join(msgs, " ") != want {
		t.Errorf("stamped lines = %s, want %s", strings.Join(msgs, " "), want)
	}

	// A new pump (drover restarted) carries on from the recorded offset.
	fmt.Fprint(w, "after restart\n")
	p2 := &applog.Pump{Raw: raw, Out: out, Source: "app", Dyno: "web.1"}
	if n, _ := p2.Step(t0.Add(3 * time.Second)); n != 1 {
		t.Fatalf("restarted pump wrote %d lines, want only the new one", n)
	}
}

func TestPumpFreesWhatItRead(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "web.1.out")
	w, _ := os.OpenFile(raw, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	defer w.Close()
	p := &applog.Pump{Raw: raw, Out: applog.File{Path: filepath.Join(dir, "web.1.log"), MaxSize: 1 << 20, Keep: 2}, Source: "app", Dyno: "web.1"}
	line := strings.Repeat("y", 999) + "\n"
	for i := range 40 {
		for range 1000 {
			w.WriteString(line)
		}
		if _, err := p.Step(t0.Add(time.Duration(i) * time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(raw, &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != 40_000_000 {
		t.Fatalf("raw size %d, want 40 MB written", st.Size)
	}
	if used := st.Blocks * 512; used > 4<<20 {
		t.Errorf("raw output holds %d bytes of disk after 40 MB were read: holes not punched", used)
	}
	total := int64(0)
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "web.1.log") {
			info, _ := e.Info()
			total += info.Size()
		}
	}
	if total > 2<<20 {
		t.Errorf("stamped logs take %d bytes, over Keep × MaxSize", total)
	}
}
