package nomad

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/nomad/api"

	"github.com/drover/drover/pipelines"
)

// Config vars reach tasks through Nomad Variables, never the job spec.
//
// Each job drover registers has one variable, ConfigVarPath(job ID): the
// one path a task's workload identity reads with no ACL policy (Nomad
// grants nomad/jobs/<job>, /<group> and /<group>/<task>, and nothing
// below). The app's service job is one job across releases, so its
// variable holds one item per release, ConfigItem(release), the config
// vars as a JSON object; each release's tasks read their own item. The
// old allocations of a blue/green rollout keep the config they started
// with while the new ones read the new release's item, and auto_revert's
// previous version still finds its item: Deploy keeps KeepConfigs
// releases' items and prunes older ones. Stop deletes the app's
// variables.
const (
	// ConfigEnvFile is where the template renders the config vars, read
	// as the task's environment.
	ConfigEnvFile = "secrets/config.env"
	// KeepConfigs is how many releases' config items an app's variable
	// keeps, the new release's included.
	KeepConfigs = 5
	// ItemApp is the variable item naming the app the variable belongs
	// to; drover writes and deletes only variables that carry it.
	ItemApp = "drover.app"
	// MaxVariableSize is Nomad's cap on one variable: its items' keys and
	// values together.
	MaxVariableSize = 64 << 10
)

// MetadataEnv are the config vars drover itself sets (like Heroku's dyno
// metadata). They are not secret, so they stay plain env in the job spec.
var MetadataEnv = []string{"DROVER_APP", "DROVER_RELEASE", "DROVER_COMMIT", "DROVER_REGION"}

// ConfigVarPath is the Nomad variable holding the config of job jobID.
func ConfigVarPath(jobID string) string { return "nomad/jobs/" + jobID }

// ConfigItem is the item of a job's variable holding release's config vars.
func ConfigItem(release int) string { return "v" + strconv.Itoa(release) }

// configRelease is the release of a ConfigItem key, or 0 for another item.
func configRelease(key string) int {
	rest, ok := strings.CutPrefix(key, "v")
	if !ok || rest == "" || rest[0] == '0' {
		return 0
	}
	n, err := strconv.Atoi(rest)
	if err != nil || strconv.Itoa(n) != rest {
		return 0
	}
	return n
}

// ConfigJSON is the value of a release's config item: env without
// MetadataEnv, as a JSON object. Names must be environment variable names
// and values UTF-8 text (a variable holds JSON strings); anything else is
// pipelines.ErrInvalid.
func ConfigJSON(env map[string]string) (string, error) {
	out := make(map[string]string, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		if slices.Contains(MetadataEnv, k) {
			continue
		}
		if !pipelines.ValidEnvName(k) {
			return "", fmt.Errorf("config var %q: a name must be letters, digits and '_', not starting with a digit: %w", k, pipelines.ErrInvalid)
		}
		if !utf8.ValidString(env[k]) {
			return "", fmt.Errorf("config var %s: its value is not UTF-8 text, which Nomad variables require; store it base64-encoded: %w", k, pipelines.ErrInvalid)
		}
		out[k] = env[k]
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // '&' stays one byte of the variable's 64 KiB
	if err := enc.Encode(out); err != nil {
		return "", fmt.Errorf("encode config vars: %w", err)
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// variableSize is what Nomad counts against MaxVariableSize.
func variableSize(items map[string]string) int {
	n := 0
	for k, v := range items {
		n += len(k) + len(v)
	}
	return n
}

// casAttempts bounds the read-modify-write of a variable that others write
// at the same time.
const casAttempts = 3

// writeConfig puts release's config vars (env) into job jobID's variable
// for app, then prunes it to the KeepConfigs newest releases' items,
// keeping also the item of prefer (the release the job runs now, which
// auto_revert returns to; 0 for none) and dropping the oldest while the
// variable would exceed Nomad's size cap. The write is checked against the
// index read just before, so concurrent writers lose no item. A variable
// at that path not written by drover for app is pipelines.ErrConflict.
func (r *Region) writeConfig(ctx context.Context, jobID, app string, release, prefer int, env map[string]string) error {
	path := ConfigVarPath(jobID)
	value, err := ConfigJSON(env)
	if err != nil {
		return fmt.Errorf("config of %s v%d in region %s: %w", app, release, r.spec.Name, err)
	}
	item := ConfigItem(release)
	if size := len(ItemApp) + len(app) + len(item) + len(value); size > MaxVariableSize {
		return fmt.Errorf("config of %s v%d in region %s: its config vars take %d bytes; a Nomad variable holds at most %d: %w",
			app, release, r.spec.Name, size, MaxVariableSize, pipelines.ErrInvalid)
	}
	for attempt := 1; ; attempt++ {
		cur, _, err := r.client.Variables().Peek(path, r.queryOpts(ctx))
		if err != nil {
			return r.wrapVar(ctx, fmt.Sprintf("read variable %s", path), err)
		}
		old := map[string]string{}
		v := &api.Variable{Namespace: r.ns, Path: path}
		if cur != nil {
			if cur.Items[ItemApp] != app {
				return fmt.Errorf("variable %s in region %s exists and was not written by drover for %s (item %s is %q); remove it or rename the app: %w",
					path, r.spec.Name, app, ItemApp, cur.Items[ItemApp], pipelines.ErrConflict)
			}
			old, v.ModifyIndex = cur.Items, cur.ModifyIndex
		}
		v.Items = pruneConfigs(old, app, item, value, prefer)
		if cur == nil {
			_, _, err = r.client.Variables().CheckedCreate(v, r.writeOpts(ctx))
		} else {
			_, _, err = r.client.Variables().CheckedUpdate(v, r.writeOpts(ctx))
		}
		var conflict api.ErrCASConflict
		if errors.As(err, &conflict) {
			if attempt < casAttempts {
				continue
			}
			return fmt.Errorf("write variable %s in region %s: changed by another writer %d times in a row: %w", path, r.spec.Name, attempt, pipelines.ErrConflict)
		}
		if err != nil {
			return r.wrapVar(ctx, fmt.Sprintf("write variable %s", path), err)
		}
		return nil
	}
}

// pruneConfigs returns the items of a job's variable with value as item:
// ItemApp, item, prefer's item, then the newest other releases' items,
// KeepConfigs release items at most and within MaxVariableSize. Items
// drover does not know are dropped.
func pruneConfigs(old map[string]string, app, item, value string, prefer int) api.VariableItems {
	out := api.VariableItems{ItemApp: app, item: value}
	var others []int
	for k := range old {
		if n := configRelease(k); n > 0 && k != item {
			others = append(others, n)
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(others)))
	if i := slices.Index(others, prefer); i > 0 {
		others = slices.Insert(slices.Delete(others, i, i+1), 0, prefer)
	}
	size := variableSize(out)
	for _, n := range others {
		if len(out)-1 >= KeepConfigs {
			break
		}
		k := ConfigItem(n)
		if size+len(k)+len(old[k]) > MaxVariableSize {
			continue
		}
		out[k] = old[k]
		size += len(k) + len(old[k])
	}
	return out
}

// wrapVar is wrap for a variable call, saying which rights a refusal
// lacks: a token made before drover kept config vars in variables has none.
func (r *Region) wrapVar(ctx context.Context, what string, err error) error {
	werr := r.wrap(ctx, what, err)
	var ue api.UnexpectedResponseError
	if errors.As(err, &ue) && ue.StatusCode() == http.StatusForbidden {
		return fmt.Errorf("%w; the region's Nomad token needs read, write, destroy and list on variables nomad/jobs/* in namespace %q: apply deployments/nomad/drover-deployer.policy.hcl again",
			werr, cmp.Or(r.ns, "default"))
	}
	return werr
}

// deleteConfig deletes job jobID's variable if drover wrote it for app; a
// missing variable is not an error.
func (r *Region) deleteConfig(ctx context.Context, jobID, app string) error {
	path := ConfigVarPath(jobID)
	cur, _, err := r.client.Variables().Peek(path, r.queryOpts(ctx))
	if err != nil {
		return r.wrapVar(ctx, fmt.Sprintf("read variable %s", path), err)
	}
	if cur == nil || cur.Items[ItemApp] != app {
		return nil
	}
	if _, err := r.client.Variables().CheckedDelete(path, cur.ModifyIndex, r.writeOpts(ctx)); err != nil && !isNotFound(err) {
		return r.wrapVar(ctx, fmt.Sprintf("delete variable %s", path), err)
	}
	return nil
}

// deleteTaskConfigs deletes the variables of app's one-off task jobs
// ("<app>-release-v7", ...), including any whose job is already gone. The
// path prefix also matches other apps ("hello-" and "hello-staging"), so
// the variable's ItemApp decides.
func (r *Region) deleteTaskConfigs(ctx context.Context, app string) error {
	prefix := ConfigVarPath(app + "-")
	vars, _, err := r.client.Variables().PrefixList(prefix, r.queryOpts(ctx))
	if err != nil {
		return r.wrapVar(ctx, fmt.Sprintf("list variables under %s", prefix), err)
	}
	for _, v := range vars {
		if !taskJobRE.MatchString(strings.TrimPrefix(v.Path, prefix)) {
			continue
		}
		if err := r.deleteConfig(ctx, strings.TrimPrefix(v.Path, ConfigVarPath("")), app); err != nil {
			return err
		}
	}
	return nil
}
