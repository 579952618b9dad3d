package nomad

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/nomad/api"

	"github.com/drover/drover/regions"
)

var _ regions.Planner = (*Region)(nil)

// Plan asks Nomad's scheduler, in a dry run, what registering d's job
// would do (POST /v1/job/<app>/plan with the diff): the job is the one
// Deploy would register, rendered the same way, so a promotion that
// cannot be placed is known before it starts. It writes nothing: neither
// the job nor its config variable (Nomad's plan endpoint registers
// nothing, and the variable is written by Deploy alone).
//
// The diff is reported by field name only. drover keeps config vars out
// of the job, but a user's template may put env in it, and the preview
// that shows the plan must never show a value.
//
// Errors are Deploy's: a slug without URL or a job Nomad rejects matches
// pipelines.ErrInvalid, an unreachable region regions.ErrUnavailable, and
// a job of that name that drover did not make pipelines.ErrConflict.
func (r *Region) Plan(ctx context.Context, d regions.Deployment) (regions.Plan, error) {
	if err := r.resolve(ctx); err != nil {
		return regions.Plan{}, err
	}
	job, err := r.renderJob(ctx, "plan", d)
	if err != nil {
		return regions.Plan{}, err
	}
	// Deploy would refuse to overwrite someone else's job; the plan says
	// so rather than show a diff against it.
	cur, err := r.jobInfo(ctx, d.App)
	if err != nil {
		return regions.Plan{}, err
	}
	if cur != nil && !managed(cur) {
		return regions.Plan{}, notManaged(r, d.App)
	}
	resp, _, err := r.client.Jobs().PlanOpts(job, &api.PlanOptions{Diff: true}, r.writeOpts(ctx))
	if err != nil {
		return regions.Plan{}, r.wrap(ctx, fmt.Sprintf("plan job %q", d.App), err)
	}
	return planOf(resp), nil
}

// planOf turns Nomad's plan into drover's, group by group in name order.
func planOf(resp *api.JobPlanResponse) regions.Plan {
	p := regions.Plan{Groups: []regions.GroupPlan{}, Failures: []regions.PlacementFailure{}, Warnings: splitWarnings(resp.Warnings)}
	groups := map[string]*regions.GroupPlan{}
	group := func(name string) *regions.GroupPlan {
		if g, ok := groups[name]; ok {
			return g
		}
		g := &regions.GroupPlan{Group: name, Change: regions.ChangeNone, Tasks: []regions.TaskChange{}}
		groups[name] = g
		return g
	}
	if resp.Diff != nil {
		for _, tg := range resp.Diff.TaskGroups {
			if tg == nil {
				continue
			}
			g := group(tg.Name)
			g.Change = change(tg.Type)
			if g.Change == regions.ChangeEdited {
				g.Fields = changedFields(tg.Fields, tg.Objects)
			}
			for _, t := range tg.Tasks {
				if t == nil {
					continue
				}
				tc := regions.TaskChange{Task: t.Name, Change: change(t.Type), Annotations: t.Annotations}
				if tc.Change == regions.ChangeEdited {
					tc.Fields = changedFields(t.Fields, t.Objects)
				}
				g.Tasks = append(g.Tasks, tc)
			}
			slices.SortFunc(g.Tasks, func(a, b regions.TaskChange) int { return cmp.Compare(a.Task, b.Task) })
			// Older Nomads annotate the diff only; DesiredTGUpdates below
			// wins where both are given.
			counts(g, updatesOf(tg.Updates))
		}
	}
	if resp.Annotations != nil {
		for name, u := range resp.Annotations.DesiredTGUpdates {
			if u != nil {
				counts(group(name), *u)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(resp.FailedTGAllocs)) {
		if m := resp.FailedTGAllocs[name]; m != nil {
			group(name)
			p.Failures = append(p.Failures, placementFailure(name, m))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(groups)) {
		p.Groups = append(p.Groups, *groups[name])
	}
	return p
}

// counts sets g's allocation counts from Nomad's desired updates.
func counts(g *regions.GroupPlan, u api.DesiredUpdates) {
	if u == (api.DesiredUpdates{}) {
		return
	}
	g.Create, g.Destroy, g.InPlace, g.Destructive = int(u.Place), int(u.Stop), int(u.InPlaceUpdate), int(u.DestructiveUpdate)
	g.Canary, g.Ignore, g.Migrate = int(u.Canary), int(u.Ignore), int(u.Migrate)
}

// updatesOf reads a task group diff's Updates, keyed as `nomad job plan`
// prints them.
func updatesOf(m map[string]uint64) api.DesiredUpdates {
	return api.DesiredUpdates{
		Place: m["create"], Stop: m["destroy"], InPlaceUpdate: m["in-place update"],
		DestructiveUpdate: m["create/destroy update"], Canary: m["canary"], Ignore: m["ignore"], Migrate: m["migrate"],
	}
}

// change is drover's word for a diff type Nomad spells "Added", "Edited",
// "Deleted" or "None".
func change(diffType string) string {
	switch strings.ToLower(diffType) {
	case "added":
		return regions.ChangeAdded
	case "deleted":
		return regions.ChangeDeleted
	case "edited":
		return regions.ChangeEdited
	}
	return regions.ChangeNone
}

// changedFields names the fields of a diff that changed, as dotted paths
// through its objects (Resources.MemoryMB), sorted and without repeats.
// Values (Old, New) are never read: an Env or Template field may hold a
// secret. Env and Meta are named as one block: their keys are the user's.
func changedFields(fields []*api.FieldDiff, objects []*api.ObjectDiff) []string {
	seen := map[string]bool{}
	var walk func(prefix string, fields []*api.FieldDiff, objects []*api.ObjectDiff)
	walk = func(prefix string, fields []*api.FieldDiff, objects []*api.ObjectDiff) {
		for _, f := range fields {
			if f != nil && change(f.Type) != regions.ChangeNone {
				seen[prefix+f.Name] = true
			}
		}
		for _, o := range objects {
			if o == nil || change(o.Type) == regions.ChangeNone {
				continue
			}
			if o.Name == "Env" || o.Name == "Meta" || (len(o.Fields) == 0 && len(o.Objects) == 0) {
				seen[prefix+o.Name] = true
				continue
			}
			walk(prefix+o.Name+".", o.Fields, o.Objects)
		}
	}
	walk("", fields, objects)
	// Nomad diffs a map as one field per key, "Env[KEY]": each is named
	// as its map.
	out := make([]string, 0, len(seen))
	for name := range seen {
		if i := strings.IndexByte(name, '['); i > 0 {
			name = name[:i]
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// placementFailure says why Nomad could not place group's allocations, in
// the words `nomad job plan` uses, as one sentence.
func placementFailure(group string, m *api.AllocationMetric) regions.PlacementFailure {
	f := regions.PlacementFailure{Group: group, Allocations: m.CoalescedFailures + 1,
		NodesEvaluated: m.NodesEvaluated, NodesExhausted: m.NodesExhausted}
	if len(m.DimensionExhausted) > 0 {
		f.Exhausted = maps.Clone(m.DimensionExhausted)
	}
	for _, filtered := range []map[string]int{m.ConstraintFiltered, m.ClassFiltered} {
		for k, n := range filtered {
			if f.Filtered == nil {
				f.Filtered = map[string]int{}
			}
			f.Filtered[k] += n
		}
	}
	var why []string
	if m.NodesEvaluated == 0 {
		why = append(why, "no nodes were eligible")
	}
	for _, dc := range slices.Sorted(maps.Keys(m.NodesAvailable)) {
		if m.NodesAvailable[dc] == 0 {
			why = append(why, fmt.Sprintf("no nodes are available in datacenter %q", dc))
		}
	}
	for _, c := range slices.Sorted(maps.Keys(m.ConstraintFiltered)) {
		why = append(why, fmt.Sprintf("constraint %q excludes %s", c, nodes(m.ConstraintFiltered[c])))
	}
	for _, c := range slices.Sorted(maps.Keys(m.ClassFiltered)) {
		why = append(why, fmt.Sprintf("class %q excludes %s", c, nodes(m.ClassFiltered[c])))
	}
	if m.NodesExhausted > 0 {
		s := "resources exhausted on " + nodes(m.NodesExhausted)
		if dims := slices.Sorted(maps.Keys(m.DimensionExhausted)); len(dims) > 0 {
			s += " (" + strings.Join(dims, ", ") + ")"
		}
		why = append(why, s)
	}
	for _, c := range slices.Sorted(maps.Keys(m.ClassExhausted)) {
		why = append(why, fmt.Sprintf("class %q exhausted on %s", c, nodes(m.ClassExhausted[c])))
	}
	for _, q := range m.QuotaExhausted {
		why = append(why, fmt.Sprintf("quota limit hit: %s", q))
	}
	noun := "allocations cannot"
	if f.Allocations == 1 {
		noun = "allocation cannot"
	}
	f.Reason = fmt.Sprintf("%d %s be placed", f.Allocations, noun)
	if len(why) > 0 {
		f.Reason += ": " + strings.Join(why, "; ")
	}
	return f
}

func nodes(n int) string {
	if n == 1 {
		return "1 node"
	}
	return fmt.Sprintf("%d nodes", n)
}

// splitWarnings splits Nomad's warnings, one string as a multierror
// prints it ("2 warnings:\n\n* first\n* second"), into one per warning.
func splitWarnings(s string) []string {
	out := []string{}
	s = strings.TrimSpace(s)
	if s == "" {
		return out
	}
	if !strings.Contains(s, "* ") {
		return append(out, s)
	}
	for line := range strings.SplitSeq(s, "\n") {
		if w, ok := strings.CutPrefix(strings.TrimSpace(line), "* "); ok && w != "" {
			out = append(out, w)
		}
	}
	return out
}
