package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/drover/drover/api"
	"github.com/drover/drover/regions"
	"github.com/drover/drover/workflows"
)

// OperationOptions are the flags every operation command shares.
type OperationOptions struct {
	JSON   bool
	NoWait bool
}

func (o *OperationOptions) flags(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the operation's result as JSON")
	cmd.Flags().BoolVar(&o.NoWait, "no-wait", false, "return once the operation is queued")
}

// PromoteOptions are `drover promote`'s arguments.
type PromoteOptions struct {
	OperationOptions
	Target  string
	Release string
	// Preview prints what the promotion would change; with Yes it then
	// goes ahead, promoting exactly the release previewed.
	Preview, Yes bool
}

func newPromoteCmd(s Streams, runF func(context.Context, *PromoteOptions) error) *cobra.Command {
	opts := &PromoteOptions{}
	cmd := &cobra.Command{
		Use:   "promote PIPELINE|APP",
		Short: "Release staging's current (or --release) slug to production, with no build",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Target = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			c := newAPIClient()
			if opts.Preview {
				p, err := previewPromotion(cmd.Context(), c, s, opts)
				if err != nil || !opts.Yes {
					return err
				}
				opts.Release = fmt.Sprintf("v%d", p.From.Version)
			}
			var op api.Operation
			body := map[string]string{}
			if opts.Release != "" {
				body["release"] = opts.Release
			}
			if err := c.post(cmd.Context(), "/api/v1/pipelines/"+url.PathEscape(opts.Target)+"/promote", body, &op); err != nil {
				return err
			}
			return followOperation(cmd.Context(), c, s, op, opts.OperationOptions)
		},
	}
	cmd.Flags().StringVar(&opts.Release, "release", "", "the staging release to promote, e.g. v7 (default: the current one)")
	cmd.Flags().BoolVar(&opts.Preview, "preview", false, "show what the promotion would change, and change nothing")
	cmd.Flags().BoolVar(&opts.Yes, "yes", false, "with --preview: then promote the release previewed")
	opts.flags(cmd)
	return cmd
}

// previewPromotion prints what promoting opts.Target would change.
func previewPromotion(ctx context.Context, c *apiClient, s Streams, opts *PromoteOptions) (api.PromotionPreview, error) {
	path := "/api/v1/pipelines/" + url.PathEscape(opts.Target) + "/promote/preview"
	if opts.Release != "" {
		path += "?release=" + url.QueryEscape(opts.Release)
	}
	return showPreview(ctx, c, s, path, opts.JSON)
}

// showPreview reads the preview at path and prints it, as JSON with asJSON.
func showPreview(ctx context.Context, c *apiClient, s Streams, path string, asJSON bool) (api.PromotionPreview, error) {
	var p api.PromotionPreview
	if err := c.get(ctx, path, &p); err != nil {
		return p, err
	}
	if asJSON {
		enc := json.NewEncoder(s.Out)
		enc.SetIndent("", "  ")
		return p, enc.Encode(p)
	}
	printPreview(s.Out, p)
	return p, nil
}

// printPreview writes a promotion preview for people.
func printPreview(w io.Writer, p api.PromotionPreview) {
	now := "no release yet"
	if p.To.Version > 0 {
		now = fmt.Sprintf("v%d at %s", p.To.Version, shortSHA(p.To.Commit))
	}
	if p.From.App == p.To.App {
		fmt.Fprintf(w, "Roll %s back to v%d (%s, slug %s) with its config and formation (now %s)\n", p.To.App, p.From.Version, shortSHA(p.From.Commit), shortSHA(p.From.Slug), now)
	} else {
		fmt.Fprintf(w, "Promote %s v%d (%s, slug %s) to %s (now %s)\n", p.From.App, p.From.Version, shortSHA(p.From.Commit), shortSHA(p.From.Slug), p.To.App, now)
	}
	switch {
	case p.Commits.Compared && p.Commits.Count > 0:
		fmt.Fprintf(w, "Commits: %d\n", p.Commits.Count)
		for _, c := range p.Commits.Commits {
			fmt.Fprintf(w, "  %s %s: %s\n", shortSHA(c.SHA), c.Author, c.Message)
		}
	default:
		fmt.Fprintf(w, "Commits: %s\n", p.Commits.Note)
	}
	if p.Config.Empty() {
		fmt.Fprintf(w, "Config: %s and %s set the same vars\n", p.From.App, p.To.App)
	} else {
		var parts []string
		for _, part := range []struct {
			what string
			keys []string
		}{{"only in " + p.From.App, p.Config.OnlyFrom}, {"only in " + p.To.App, p.Config.OnlyTo}, {"different", p.Config.Differ}} {
			if len(part.keys) > 0 {
				parts = append(parts, part.what+": "+strings.Join(part.keys, ", "))
			}
		}
		keeps := p.To.App + " keeps its own"
		if p.From.App == p.To.App {
			parts = nil
			for _, part := range []struct {
				what string
				keys []string
			}{{"back", p.Config.OnlyFrom}, {"gone", p.Config.OnlyTo}, {"changed back", p.Config.Differ}} {
				if len(part.keys) > 0 {
					parts = append(parts, part.what+": "+strings.Join(part.keys, ", "))
				}
			}
			keeps = fmt.Sprintf("v%d's config comes back", p.From.Version)
		}
		fmt.Fprintf(w, "Config vars that differ (%s): %s\n", keeps, strings.Join(parts, "; "))
	}
	if len(p.Formation) == 0 {
		fmt.Fprintln(w, "Formation: unchanged")
	} else {
		var parts []string
		for _, f := range p.Formation {
			parts = append(parts, fmt.Sprintf("%s %d -> %d", f.Type, f.From, f.To))
		}
		fmt.Fprintf(w, "Formation: %s\n", strings.Join(parts, ", "))
	}
	if p.ReleasePhase != nil {
		fmt.Fprintf(w, "Release phase: %q would run once\n", p.ReleasePhase.Command)
	} else {
		fmt.Fprintln(w, "Release phase: none (the Procfile has no release command)")
	}
	for _, r := range p.Regions {
		stop := "nothing"
		if len(r.Stop) > 0 {
			stop = strings.Join(r.Stop, ", ")
		}
		fmt.Fprintf(w, "%s (%s): start %s; stop %s\n", r.Region, r.Driver, strings.Join(r.Start, ", "), stop)
		printPlan(w, r)
	}
	// Last, where they are seen: what would keep the release from running.
	for _, warning := range p.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", warning)
	}
}

// printPlan prints a Nomad region's own plan under its line: per group
// "+create -destroy ~in-place" and what else Nomad would do, the tasks
// that change and the fields that do (never values), and each placement
// failure on a line of its own that says so loudly.
func printPlan(w io.Writer, r api.RegionPreview) {
	if r.Error != "" {
		fmt.Fprintf(w, "  Nomad plan: none: %s\n", r.Error)
		return
	}
	if r.Plan == nil {
		return
	}
	fmt.Fprintln(w, "  Nomad plan:")
	for _, g := range r.Plan.Groups {
		line := fmt.Sprintf("    %s (%s): +%d -%d ~%d", g.Group, g.Change, g.Create, g.Destroy, g.InPlace)
		for _, n := range []struct {
			count int
			what  string
		}{{g.Destructive, "replaced"}, {g.Canary, "canaries"}, {g.Migrate, "migrated"}, {g.Ignore, "unchanged"}} {
			if n.count > 0 {
				line += fmt.Sprintf(", %d %s", n.count, n.what)
			}
		}
		if len(g.Fields) > 0 {
			line += "; changes " + strings.Join(g.Fields, ", ")
		}
		fmt.Fprintln(w, line)
		for _, t := range g.Tasks {
			// A new group's tasks are new too: nothing more to say.
			if t.Change == regions.ChangeNone || t.Change == regions.ChangeAdded && g.Change == regions.ChangeAdded {
				continue
			}
			line := fmt.Sprintf("      task %s %s", t.Task, t.Change)
			if len(t.Fields) > 0 {
				line += ": " + strings.Join(t.Fields, ", ")
			}
			if len(t.Annotations) > 0 {
				line += " (" + strings.Join(t.Annotations, "; ") + ")"
			}
			fmt.Fprintln(w, line)
		}
	}
	for _, f := range r.Plan.Failures {
		fmt.Fprintf(w, "  !! CANNOT PLACE %s: %s\n", f.Group, f.Reason)
	}
	for _, warning := range r.Plan.Warnings {
		fmt.Fprintf(w, "    Nomad warns: %s\n", warning)
	}
}

// RollbackOptions are `drover rollback`'s arguments.
type RollbackOptions struct {
	OperationOptions
	App             string
	Release         string
	RunReleasePhase bool
	// Preview and Yes are as promote's.
	Preview, Yes bool
}

func newRollbackCmd(s Streams, runF func(context.Context, *RollbackOptions) error) *cobra.Command {
	opts := &RollbackOptions{}
	cmd := &cobra.Command{
		Use:   "rollback APP [vN]",
		Short: "Make a new release from an earlier one's slug, config and formation (default: the one before the current)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.App = args[0]
			if len(args) == 2 {
				opts.Release = args[1]
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			c := newAPIClient()
			if opts.Preview {
				q := url.Values{}
				if opts.Release != "" {
					q.Set("release", opts.Release)
				}
				if opts.RunReleasePhase {
					q.Set("run_release_phase", "true")
				}
				p, err := showPreview(cmd.Context(), c, s, "/api/v1/apps/"+url.PathEscape(opts.App)+"/rollback/preview?"+q.Encode(), opts.JSON)
				if err != nil || !opts.Yes {
					return err
				}
				opts.Release = fmt.Sprintf("v%d", p.From.Version)
			}
			var op api.Operation
			body := map[string]any{"run_release_phase": opts.RunReleasePhase}
			if opts.Release != "" {
				body["release"] = opts.Release
			}
			if err := c.post(cmd.Context(), "/api/v1/apps/"+url.PathEscape(opts.App)+"/rollback", body, &op); err != nil {
				return err
			}
			return followOperation(cmd.Context(), c, s, op, opts.OperationOptions)
		},
	}
	cmd.Flags().BoolVar(&opts.RunReleasePhase, "run-release-phase", false, "run the release command again (it already ran for that slug)")
	cmd.Flags().BoolVar(&opts.Preview, "preview", false, "show what the rollback would change, and change nothing")
	cmd.Flags().BoolVar(&opts.Yes, "yes", false, "with --preview: then roll back to the release previewed")
	opts.flags(cmd)
	return cmd
}

func newOperationsCmd(s Streams) *cobra.Command {
	cmd := &cobra.Command{Use: "operations", Short: "Follow promotions and rollbacks"}
	opts := &OperationOptions{}
	watch := &cobra.Command{
		Use:   "watch ID",
		Short: "Follow an operation until it ends",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return followOperation(cmd.Context(), newAPIClient(), s, api.Operation{ID: args[0]}, *opts)
		},
	}
	watch.Flags().BoolVar(&opts.JSON, "json", false, "print the operation's result as JSON")
	cmd.AddCommand(watch)
	return cmd
}

// followOperation prints an operation's progress, a line each time its
// state or a region's changes, until it ends; non-zero exit on failure.
func followOperation(ctx context.Context, c *apiClient, s Streams, op api.Operation, opts OperationOptions) error {
	if opts.NoWait {
		if opts.JSON {
			return printJSON(s.Out, op)
		}
		fmt.Fprintf(s.Out, "%s queued as %s\n", op.Kind, op.ID)
		if op.Ahead != nil && *op.Ahead > 0 {
			fmt.Fprintf(s.Out, "%d other operation(s) of %s run or wait before it\n", *op.Ahead, op.App)
		}
		fmt.Fprintf(s.Out, "follow it with: drover operations watch %s\n", op.ID)
		return nil
	}
	progress := s.Err
	if opts.JSON {
		progress = io.Discard
	}
	fmt.Fprintf(progress, "operation %s\n", op.ID)
	if op.Ahead != nil && *op.Ahead > 0 {
		fmt.Fprintf(progress, "  queued behind %d other operation(s) of %s\n", *op.Ahead, op.App)
	}
	if link := temporalLink(op.ID); link != "" {
		fmt.Fprintf(progress, "  %s\n", link)
	}
	// On a terminal, one live line per region, redrawn in place; else a
	// plain line each time something changes.
	live := !opts.JSON && isTerminal(s.Err)
	seen := map[string]string{}
	say := func(key, line string) {
		if seen[key] != line {
			seen[key] = line
			fmt.Fprintln(progress, line)
		}
	}
	drawn := 0
	var outputFrom int64
	outputStep := ""
	for {
		var cur api.Operation
		q := url.Values{"output_from": {strconv.FormatInt(outputFrom, 10)}, "output_step": {outputStep}}
		if err := c.get(ctx, "/api/v1/operations/"+op.ID+"?"+q.Encode(), &cur); err != nil {
			return err
		}
		lines := progressLines(cur)
		if live && drawn > 0 {
			fmt.Fprintf(progress, "\x1b[%dA", drawn) // back to the block's first line
		}
		// The running step's output (the build's -----> lines, the
		// release phase's), as it is written, above the progress block.
		if o := cur.Output; o != nil && o.Step != outputStep {
			outputStep, outputFrom = o.Step, 0 // the next step's output starts
		}
		if o := cur.Output; o != nil && o.Text != "" && !opts.JSON {
			if live {
				fmt.Fprint(progress, "\x1b[J")
			}
			if o.From > outputFrom && outputFrom > 0 {
				fmt.Fprintf(progress, "       [%d bytes of %s output not shown]\n", o.From-outputFrom, o.Step)
			}
			text := o.Text
			if !strings.HasSuffix(text, "\n") {
				// Keep a partial line until it is finished.
				if i := strings.LastIndexByte(text, '\n'); i >= 0 {
					text = text[:i+1]
				} else {
					text = ""
				}
			}
			fmt.Fprint(progress, text)
			outputFrom = o.From + int64(len(text))
		}
		if live {
			for _, l := range lines {
				fmt.Fprintf(progress, "\x1b[2K%s\n", l)
			}
			drawn = len(lines)
		} else {
			for i, l := range lines {
				key := "state"
				if i > 0 || cur.Release != nil {
					key = strings.Fields(l)[0]
				}
				say(key, l)
			}
		}
		switch cur.State {
		case workflows.OperationSucceeded, workflows.OperationFailed:
			if opts.JSON {
				if err := printJSON(s.Out, cur); err != nil {
					return err
				}
			}
			if cur.State == workflows.OperationFailed {
				msg := cur.Error
				if cur.Release != nil && cur.Release.Reason != "" {
					msg = cur.Release.Reason
				}
				return &hintError{err: fmt.Errorf("%s %s failed: %s", cur.Kind, cur.App, msg),
					hint: "`drover releases " + cur.App + "` shows the ledger; every region was left as the message says"}
			}
			if !opts.JSON && cur.Release != nil {
				var where []string
				for _, st := range cur.Release.Regions {
					where = append(where, st.Region)
				}
				fmt.Fprintf(s.Out, "%s %s is running in %s\n", cur.App, cur.Release.Name(), strings.Join(where, ", "))
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), fmt.Errorf("stopped following; the operation goes on: drover operations watch %s", op.ID))
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func newAutoDeployCmd(s Streams) *cobra.Command {
	cmd := &cobra.Command{Use: "autodeploy", Short: "Pause or resume deploying an app's pushes"}
	for _, verb := range []string{"pause", "resume"} {
		cmd.AddCommand(&cobra.Command{
			Use:   verb + " APP",
			Short: map[string]string{"pause": "Record pushes as skipped instead of deploying them", "resume": "Deploy pushes again (a manual rollback pauses them)"}[verb],
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var out map[string]any
				if err := newAPIClient().post(cmd.Context(), "/api/v1/apps/"+url.PathEscape(args[0])+"/autodeploy", map[string]bool{"paused": verb == "pause"}, &out); err != nil {
					return err
				}
				fmt.Fprintf(s.Out, "auto-deploy of %s %sd\n", args[0], verb)
				return nil
			},
		})
	}
	return cmd
}

// progressLines is an operation's state as lines: the release, then one
// line per region; before there is a release, the operation's state.
func progressLines(op api.Operation) []string {
	lines := op.Lines()
	if lines == nil {
		return []string{"  " + op.State}
	}
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return lines
}

// isTerminal reports whether w is a terminal, where progress can be redrawn.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

// temporalLink is where the Temporal UI shows an operation's workflow, when
// $DROVER_TEMPORAL_UI names the UI's address (e.g. http://127.0.0.1:8233).
func temporalLink(id string) string {
	ui := strings.TrimRight(os.Getenv("DROVER_TEMPORAL_UI"), "/")
	if ui == "" {
		return ""
	}
	return ui + "/namespaces/default/workflows/" + url.PathEscape(id)
}

func newApprovalsCmd(s Streams) *cobra.Command {
	opts := &outputOptions{}
	cmd := &cobra.Command{
		Use:   "approvals",
		Short: "List the releases waiting for approval, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var waiting []api.PendingApproval
			if err := newAPIClient().get(cmd.Context(), "/api/v1/approvals", &waiting); err != nil {
				return err
			}
			if opts.JSON {
				return printJSON(s.Out, waiting)
			}
			return printApprovals(s.Out, waiting, time.Now())
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print JSON")
	return cmd
}

// printApprovals prints one line per release waiting, with the command
// that decides it.
func printApprovals(w io.Writer, waiting []api.PendingApproval, now time.Time) error {
	if len(waiting) == 0 {
		_, err := fmt.Fprintln(w, "no release waits for approval")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tRELEASE\tCOMMIT\tREQUESTED BY\tWAITING\tDEADLINE\tDESCRIPTION\tDECIDE")
	for _, a := range waiting {
		deadline := "-"
		if !a.Deadline.IsZero() {
			deadline = "in " + a.Deadline.Sub(now).Round(time.Minute).String()
		}
		fmt.Fprintf(tw, "%s\tv%d\t%s\t%s\t%s\t%s\t%s\tdrover approve %s\n", a.App, a.Release, orDash(shortSHA(a.Commit)), orDash(a.RequestedBy),
			now.Sub(a.CreatedAt).Round(time.Second), deadline, a.Description, a.Operation)
	}
	return tw.Flush()
}

func newApproveCmd(s Streams, approve bool) *cobra.Command {
	verb := map[bool]string{true: "approve", false: "reject"}[approve]
	return &cobra.Command{
		Use:   verb + " OPERATION",
		Short: map[bool]string{true: "Let a release waiting for approval go ahead", false: "Refuse a release waiting for approval; it fails and nothing changes"}[approve],
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				By string `json:"by"`
			}
			if err := newAPIClient().post(cmd.Context(), "/api/v1/approvals", map[string]any{"operation": args[0], "approved": approve}, &out); err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "%s %sd by %s\n", args[0], verb, out.By)
			return nil
		},
	}
}
