package slugs

import (
	"strings"
	"testing"
)

// TestPlanGoBuild: Heroku's Go rules. `// +heroku goVersion` wins over
// the go directive; a version newer than the builder's is refused naming
// both; `// +heroku install` picks the packages, and refuses what is not
// a package pattern.
func TestPlanGoBuild(t *testing.T) {
	const have = "go1.25.3"
	tests := []struct {
		name, mod string
		version   string
		install   string
		err       string
	}{
		{"go directive", "module x\n\ngo 1.22\n", "go1.22", "./...", ""},
		{"patch release", "module x\n\ngo 1.24.2 // pinned\n", "go1.24.2", "./...", ""},
		{"heroku goVersion wins", "module x\n// +heroku goVersion go1.21\ngo 1.24\n", "go1.21", "./...", ""},
		{"no version at all", "module x\n", "", "./...", ""},
		{"the builder's own", "module x\n\ngo 1.25.3\n", "go1.25.3", "./...", ""},
		{"newer than the builder", "module x\n\ngo 1.26\n", "", "", "go.mod's go directive asks for go1.26, newer than this builder's go1.25.3: lower it to go1.25 or less"},
		{"heroku goVersion newer", "module x\n// +heroku goVersion go1.30.1\ngo 1.22\n", "", "", "go.mod's // +heroku goVersion asks for go1.30.1, newer than this builder's go1.25.3"},
		{"not a version", "module x\n\ngo banana\n", "", "", `go.mod's go directive says Go "banana", which is not a Go version`},
		{"install list", "module x\n// +heroku install ./cmd/web ./cmd/worker\ngo 1.22\n", "go1.22", "./cmd/web ./cmd/worker", ""},
		{"install a module path", "module x\n// +heroku install example.com/x/cmd/...\n", "", "example.com/x/cmd/...", ""},
		{"install a flag", "module x\n// +heroku install -toolexec=/bin/evil ./...\n", "", "", `lists "-toolexec=/bin/evil", which is not a package`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := planGoBuild([]byte(tt.mod), have)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if plan.Version != tt.version || strings.Join(plan.Install, " ") != tt.install {
				t.Fatalf("plan = %+v, want version %q install %q", plan, tt.version, tt.install)
			}
		})
	}
}
