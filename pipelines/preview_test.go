package pipelines_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/drover/drover/pipelines"
)

func TestNextFormation(t *testing.T) {
	procfile := pipelines.Procfile{{Type: "web", Command: "w"}, {Type: "worker", Command: "k"}, {Type: "release", Command: "m"}}
	current := &pipelines.Release{Formation: pipelines.Formation{"web": 3, "clock": 1}}
	from := &pipelines.Release{Formation: pipelines.Formation{"web": 2, "worker": 4}}
	tests := []struct {
		name           string
		current, from  *pipelines.Release
		initial, scale pipelines.Formation
		want           string
		wantErr        string
	}{
		{"first release: one web, no others, no release process", nil, nil, nil, nil, "map[web:1 worker:0]", ""},
		{"first release with app.json's formation, types the Procfile lacks ignored", nil, nil, pipelines.Formation{"worker": 2, "clock": 5}, nil, "map[web:1 worker:2]", ""},
		{"the current release's counts carry over; a new type starts at its default", current, nil, pipelines.Formation{"worker": 9}, nil, "map[web:3 worker:0]", ""},
		{"a rollback takes the old release's formation", current, from, nil, nil, "map[web:2 worker:4]", ""},
		{"scale last", current, nil, nil, pipelines.Formation{"worker": 2}, "map[web:3 worker:2]", ""},
		{"scale of a type the Procfile lacks", current, nil, nil, pipelines.Formation{"clock": 1}, "", `no process type "clock"; its Procfile has [web worker]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pipelines.NextFormation(procfile, tt.current, tt.from, tt.initial, tt.scale)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || fmt.Sprint(got) != tt.want {
				t.Fatalf("NextFormation = %v, %v; want %s", got, err, tt.want)
			}
		})
	}
	// Nothing given is changed.
	if fmt.Sprint(from.Formation) != "map[web:2 worker:4]" || fmt.Sprint(current.Formation) != "map[clock:1 web:3]" {
		t.Fatalf("inputs changed: %v %v", from.Formation, current.Formation)
	}
}

func TestDiffKeysNamesKeysNeverValues(t *testing.T) {
	d := pipelines.DiffKeys(
		map[string]string{"DATABASE_URL": "postgres://staging", "FEATURE_X": "on", "SAME": "1"},
		map[string]string{"DATABASE_URL": "postgres://prod", "SAME": "1", "SENTRY_DSN": "https://x"},
	)
	if got := fmt.Sprint(d.OnlyFrom, d.OnlyTo, d.Differ); got != "[FEATURE_X] [SENTRY_DSN] [DATABASE_URL]" {
		t.Fatalf("diff = %s", got)
	}
	if d.Empty() || !pipelines.DiffKeys(map[string]string{"A": "1"}, map[string]string{"A": "1"}).Empty() {
		t.Fatal("Empty is wrong")
	}
	if s := fmt.Sprintf("%+v", d); containsAny(s, "postgres", "https://x", "on]") {
		t.Fatalf("the diff holds a value: %s", s)
	}
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func TestDiffFormation(t *testing.T) {
	got := pipelines.DiffFormation(pipelines.Formation{"web": 1, "worker": 2, "clock": 1}, pipelines.Formation{"web": 3, "worker": 2, "mailer": 1})
	if fmt.Sprint(got) != "[{clock 1 0} {mailer 0 1} {web 1 3}]" {
		t.Fatalf("DiffFormation = %v", got)
	}
	if got := pipelines.DiffFormation(pipelines.Formation{"web": 1}, pipelines.Formation{"web": 1}); got != nil {
		t.Fatalf("no change = %v", got)
	}
}
