package pipelines

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
)

// AppJSON is the part of Heroku's app.json
// (https://devcenter.heroku.com/articles/app-json-schema) drover uses for
// review apps. Other keys (buildpacks, addons, stack, logo…) are accepted
// and ignored.
type AppJSON struct {
	Name      string
	Env       map[string]AppJSONEnv
	Formation map[string]AppJSONFormation
	Scripts   AppJSONScripts
	// Environments holds per-environment overrides; review apps use
	// "review".
	Environments map[string]AppJSON
}

// AppJSONEnv is one config var's description. As in Heroku's schema, the
// object form is required unless it says "required": false, and the
// string form is a value that is not required.
type AppJSONEnv struct {
	Description string
	Value       string
	// Generator "secret" makes a random secret, once per app.
	Generator string
	Required  bool
}

// MaxAppJSONQuantity bounds a process type's count in app.json: the file
// is the repository's, so a pull request could otherwise start any number
// of processes for its review app.
const MaxAppJSONQuantity = 10

// MaxFormationCount bounds a process type's count in any release.
const MaxFormationCount = 1000

// AppJSONFormation is one process type's count and size.
type AppJSONFormation struct {
	Quantity int
	Size     string
}

// AppJSONScripts are the lifecycle scripts drover runs for review apps.
type AppJSONScripts struct {
	// Postdeploy runs once, after a review app's first successful deploy.
	Postdeploy string
	// PrPredestroy runs before a review app is destroyed.
	PrPredestroy string
}

// appJSONError is an app.json fault, naming the key.
func appJSONError(key, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if key != "" {
		msg = key + ": " + msg
	}
	return fmt.Errorf("app.json: %s: %w", msg, ErrInvalid)
}

var envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

type rawAppJSON struct {
	Name         string                     `json:"name"`
	Env          map[string]json.RawMessage `json:"env"`
	Formation    map[string]json.RawMessage `json:"formation"`
	Scripts      map[string]json.RawMessage `json:"scripts"`
	Environments map[string]json.RawMessage `json:"environments"`
}

// ParseAppJSON parses an app.json.
func ParseAppJSON(data []byte) (AppJSON, error) {
	return parseAppJSON(data, "", true)
}

func parseAppJSON(data []byte, prefix string, top bool) (AppJSON, error) {
	var raw rawAppJSON
	if err := json.Unmarshal(data, &raw); err != nil {
		return AppJSON{}, appJSONError(strings.TrimSuffix(prefix, "."), "%v", err)
	}
	a := AppJSON{Name: raw.Name}
	if len(raw.Env) > 0 {
		a.Env = map[string]AppJSONEnv{}
	}
	for _, k := range sortedKeys(raw.Env) {
		key := prefix + "env." + k
		if !envKeyRE.MatchString(k) {
			return AppJSON{}, appJSONError(key, "not a config var name")
		}
		var s string
		if json.Unmarshal(raw.Env[k], &s) == nil {
			a.Env[k] = AppJSONEnv{Value: s}
			continue
		}
		var obj struct {
			Description string `json:"description"`
			Value       string `json:"value"`
			Generator   string `json:"generator"`
			Required    *bool  `json:"required"`
		}
		if err := json.Unmarshal(raw.Env[k], &obj); err != nil {
			return AppJSON{}, appJSONError(key, "want a string or an object with description, value, required and generator")
		}
		if obj.Generator != "" && obj.Generator != "secret" {
			return AppJSON{}, appJSONError(key+".generator", "unknown generator %q; want secret", obj.Generator)
		}
		e := AppJSONEnv{Description: obj.Description, Value: obj.Value, Generator: obj.Generator, Required: true}
		if obj.Required != nil {
			e.Required = *obj.Required
		}
		a.Env[k] = e
	}
	if len(raw.Formation) > 0 {
		a.Formation = map[string]AppJSONFormation{}
	}
	for _, k := range sortedKeys(raw.Formation) {
		var f struct {
			Quantity *int   `json:"quantity"`
			Size     string `json:"size"`
		}
		if err := json.Unmarshal(raw.Formation[k], &f); err != nil {
			return AppJSON{}, appJSONError(prefix+"formation."+k, "want an object with quantity and size")
		}
		q := 1
		if f.Quantity != nil {
			q = *f.Quantity
		}
		if q < 0 || q > MaxAppJSONQuantity {
			return AppJSON{}, appJSONError(prefix+"formation."+k+".quantity", "must be 0 to %d; an operator can scale beyond that with drover ps:scale", MaxAppJSONQuantity)
		}
		a.Formation[k] = AppJSONFormation{Quantity: q, Size: f.Size}
	}
	for _, k := range sortedKeys(raw.Scripts) {
		// A script is a command, or {"command": …, "size": …}.
		var cmd string
		if json.Unmarshal(raw.Scripts[k], &cmd) != nil {
			var obj struct {
				Command string `json:"command"`
			}
			if err := json.Unmarshal(raw.Scripts[k], &obj); err != nil {
				return AppJSON{}, appJSONError(prefix+"scripts."+k, "want a command or an object with command")
			}
			cmd = obj.Command
		}
		switch k {
		case "postdeploy":
			a.Scripts.Postdeploy = cmd
		case "pr-predestroy":
			a.Scripts.PrPredestroy = cmd
		}
	}
	if top {
		for _, k := range sortedKeys(raw.Environments) {
			e, err := parseAppJSON(raw.Environments[k], prefix+"environments."+k+".", false)
			if err != nil {
				return AppJSON{}, err
			}
			if a.Environments == nil {
				a.Environments = map[string]AppJSON{}
			}
			a.Environments[k] = e
		}
	}
	return a, nil
}

// ForReview returns the app.json as a review app sees it: the "review"
// environment's env, formation and scripts over the top level's (a review
// env entry replaces the top level's entry of that name).
func (a AppJSON) ForReview() AppJSON {
	r, ok := a.Environments["review"]
	out := AppJSON{Name: a.Name, Env: map[string]AppJSONEnv{}, Formation: map[string]AppJSONFormation{}, Scripts: a.Scripts}
	for k, v := range a.Env {
		out.Env[k] = v
	}
	for k, v := range a.Formation {
		out.Formation[k] = v
	}
	if !ok {
		return out
	}
	for k, v := range r.Env {
		out.Env[k] = v
	}
	for k, v := range r.Formation {
		out.Formation[k] = v
	}
	if r.Scripts.Postdeploy != "" {
		out.Scripts.Postdeploy = r.Scripts.Postdeploy
	}
	if r.Scripts.PrPredestroy != "" {
		out.Scripts.PrPredestroy = r.Scripts.PrPredestroy
	}
	return out
}

// ReviewEnv resolves a review app's config vars. base holds the vars of
// the config_from stage's app, which win over app.json values, as
// Heroku's pipeline config vars do. kept holds the app's vars so far: a
// kept value is never replaced, so a secret is generated once in the
// app's life. A "secret" generator makes 64 hex characters from rand. It
// returns every var (base included), the secrets it generated, and an
// error naming each required var that has no value anywhere.
func (a AppJSON) ReviewEnv(base, kept map[string]string, rand io.Reader) (env, generated map[string]string, err error) {
	env, generated = map[string]string{}, map[string]string{}
	for k, v := range base {
		env[k] = v
	}
	var missing []string
	for _, k := range sortedKeys(a.Env) {
		e := a.Env[k]
		if v, ok := kept[k]; ok {
			env[k] = v
			continue
		}
		if _, ok := base[k]; ok {
			continue
		}
		switch {
		case e.Generator == "secret":
			b := make([]byte, 32)
			if _, err := io.ReadFull(rand, b); err != nil {
				return nil, nil, fmt.Errorf("app.json: env.%s: generate a secret: %w", k, err)
			}
			env[k] = hex.EncodeToString(b)
			generated[k] = env[k]
		case e.Value != "":
			env[k] = e.Value
		case e.Required:
			missing = append(missing, k)
		}
	}
	for k, v := range kept {
		env[k] = v
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, nil, appJSONError("", "env %s required and has no value; set it on the config_from stage's app or give it a value or a generator", strings.Join(missing, ", "))
	}
	return env, generated, nil
}
