package slugs

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/drover/drover/pipelines"
)

// nodeBuild is what a Node app asks of the build, by Heroku's Node.js
// buildpack's rules.
type nodeBuild struct {
	// Engines is package.json's engines.node ("" when unset).
	Engines string
	// Manager is npm, yarn or pnpm, chosen by the lock file.
	Manager string
	// Install is the install command.
	Install []string
}

// nodeLockFiles name the package manager each lock file belongs to, and
// how it installs exactly what the lock file says.
var nodeLockFiles = []struct {
	file, manager string
	install       []string
}{
	{"package-lock.json", "npm", []string{"npm", "ci"}},
	{"yarn.lock", "yarn", []string{"yarn", "install", "--frozen-lockfile"}},
	{"pnpm-lock.yaml", "pnpm", []string{"pnpm", "install", "--frozen-lockfile"}},
}

// nodeProfile is the slug's .profile.d script that makes NODE_ENV
// production at run time unless the app's config says otherwise, as on
// Heroku.
const (
	nodeProfileName = ".profile.d/000-drover-nodejs.sh"
	nodeProfile     = "export NODE_ENV=\"${NODE_ENV:-production}\"\n"
)

// planNodeBuild reads package.json and which lock files the app has
// (has reports a file at the root): the package manager from the one lock
// file (npm without any; two fail, naming them), and engines.node, which
// must be satisfied by the builder's Node (have, as `node --version`
// prints it, "v20.11.0"), or the build fails naming both.
func planNodeBuild(pkgJSON []byte, has func(string) bool, have string) (nodeBuild, error) {
	var pkg struct {
		Engines map[string]any `json:"engines"`
	}
	if err := json.Unmarshal(pkgJSON, &pkg); err != nil {
		return nodeBuild{}, fmt.Errorf("package.json: %v: %w", err, pipelines.ErrInvalid)
	}
	plan := nodeBuild{Manager: "npm", Install: []string{"npm", "install"}}
	var locks []string
	for _, l := range nodeLockFiles {
		if has(l.file) {
			locks = append(locks, l.file)
			plan.Manager, plan.Install = l.manager, l.install
		}
	}
	if len(locks) > 1 {
		return plan, fmt.Errorf("the app has %s: one lock file says which package manager builds it; delete the others: %w",
			strings.Join(locks, " and "), pipelines.ErrInvalid)
	}
	switch v := pkg.Engines["node"].(type) {
	case nil:
	case string:
		plan.Engines = strings.TrimSpace(v)
	default:
		return plan, fmt.Errorf("package.json's engines.node must be a version range like \"20.x\", not %v: %w", v, pipelines.ErrInvalid)
	}
	if plan.Engines == "" {
		return plan, nil
	}
	c, err := semver.NewConstraint(plan.Engines)
	if err != nil {
		return plan, fmt.Errorf("package.json's engines.node %q is not a version range like \"20.x\" or \">=18 <23\": %w", plan.Engines, pipelines.ErrInvalid)
	}
	hv, err := semver.NewVersion(strings.TrimPrefix(have, "v"))
	if err != nil {
		return plan, fmt.Errorf("package.json asks for Node %q and this builder's Node version (%q) cannot be read", plan.Engines, have)
	}
	if !c.Check(hv) {
		return plan, fmt.Errorf("package.json's engines.node asks for %q; this builder has Node %s: widen engines.node or give drover's builder that Node: %w",
			plan.Engines, have, pipelines.ErrInvalid)
	}
	return plan, nil
}
