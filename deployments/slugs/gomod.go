package slugs

import (
	"fmt"
	"go/version"
	"regexp"
	"strings"

	"github.com/drover/drover/pipelines"
)

// goBuild is what a Go app's go.mod asks of the build, by Heroku's Go
// buildpack's rules.
type goBuild struct {
	// Version is the Go version wanted ("go1.22"), and From says where it
	// came from.
	Version, From string
	// Install are the packages to build into bin/ (`// +heroku install`),
	// default ./... .
	Install []string
}

var (
	herokuGoVersionRE = regexp.MustCompile(`(?m)^//\s*\+heroku\s+goVersion\s+(\S+)\s*$`)
	herokuInstallRE   = regexp.MustCompile(`(?m)^//\s*\+heroku\s+install\s+(.+?)\s*$`)
	goDirectiveRE     = regexp.MustCompile(`(?m)^go\s+(\S+)\s*(?://.*)?$`)
	// installPackageRE is a package pattern as go build takes one, and
	// nothing a shell or go would read as a flag.
	installPackageRE = regexp.MustCompile(`^\.{1,2}(/[A-Za-z0-9._~+-]+)*(/\.\.\.)?$|^[A-Za-z0-9][A-Za-z0-9._~+/-]*$`)
)

// planGoBuild reads go.mod: the Go version from `// +heroku goVersion`,
// else the go directive; the packages from `// +heroku install`. It
// refuses a version newer than the builder's Go (have, e.g. "go1.25.3"),
// naming both, and an install list that is not package patterns.
func planGoBuild(goMod []byte, have string) (goBuild, error) {
	mod := string(goMod)
	plan := goBuild{Install: []string{"./..."}}
	switch m, d := herokuGoVersionRE.FindStringSubmatch(mod), goDirectiveRE.FindStringSubmatch(mod); {
	case m != nil:
		plan.Version, plan.From = m[1], "go.mod's // +heroku goVersion"
	case d != nil:
		plan.Version, plan.From = d[1], "go.mod's go directive"
	}
	if plan.Version != "" {
		v := "go" + strings.TrimPrefix(plan.Version, "go")
		if !version.IsValid(v) {
			return plan, fmt.Errorf("%s says Go %q, which is not a Go version like 1.22 or 1.22.3: %w", plan.From, plan.Version, pipelines.ErrInvalid)
		}
		plan.Version = v
		if version.IsValid(have) && version.Compare(v, have) > 0 {
			return plan, fmt.Errorf("%s asks for %s, newer than this builder's %s: lower it to %s or less, or give drover's builder a newer Go: %w",
				plan.From, v, have, version.Lang(have), pipelines.ErrInvalid)
		}
	}
	if m := herokuInstallRE.FindStringSubmatch(mod); m != nil {
		plan.Install = strings.Fields(m[1])
		for _, p := range plan.Install {
			if !installPackageRE.MatchString(p) {
				return plan, fmt.Errorf("go.mod's // +heroku install lists %q, which is not a package like ./cmd/web: %w", p, pipelines.ErrInvalid)
			}
		}
	}
	return plan, nil
}
