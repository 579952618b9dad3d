package slugs

import (
	"slices"
	"strings"
	"testing"
)

// TestPlanNodeBuild: Heroku's Node rules: the lock file picks the package
// manager (two are refused), engines.node must be met by the builder's
// Node, and what is not a version range is refused naming the key.
func TestPlanNodeBuild(t *testing.T) {
	const have = "v20.11.0"
	tests := []struct {
		name    string
		pkg     string
		locks   []string
		manager string
		install string
		err     string
	}{
		{"npm without a lock", `{}`, nil, "npm", "npm install", ""},
		{"npm lock", `{"engines":{"node":"20.x"}}`, []string{"package-lock.json"}, "npm", "npm ci", ""},
		{"yarn", `{"engines":{"node":">=18 <23"}}`, []string{"yarn.lock"}, "yarn", "yarn install --frozen-lockfile", ""},
		{"pnpm", `{"engines":{"node":"^20.1"}}`, []string{"pnpm-lock.yaml"}, "pnpm", "pnpm install --frozen-lockfile", ""},
		{"either major", `{"engines":{"node":"18.x || 20.x"}}`, nil, "npm", "npm install", ""},
		{"two lock files", `{}`, []string{"package-lock.json", "yarn.lock"}, "", "", "the app has package-lock.json and yarn.lock: one lock file says which package manager builds it"},
		{"too new", `{"engines":{"node":"22.x"}}`, nil, "", "", `package.json's engines.node asks for "22.x"; this builder has Node v20.11.0`},
		{"not a range", `{"engines":{"node":"latest please"}}`, nil, "", "", `engines.node "latest please" is not a version range`},
		{"not a string", `{"engines":{"node":20}}`, nil, "", "", "engines.node must be a version range"},
		{"broken package.json", `{"engines":`, nil, "", "", "package.json: unexpected end of JSON input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := planNodeBuild([]byte(tt.pkg), func(f string) bool { return slices.Contains(tt.locks, f) }, have)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if plan.Manager != tt.manager || strings.Join(plan.Install, " ") != tt.install {
				t.Fatalf("plan = %+v, want %s with %q", plan, tt.manager, tt.install)
			}
		})
	}
}
