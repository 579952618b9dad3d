package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover/drover/api"
	"github.com/drover/drover/pipelines"
)

type outputOptions struct {
	JSON bool
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newAppsCmd(s Streams) *cobra.Command {
	opts := &outputOptions{}
	cmd := &cobra.Command{
		Use:   "apps",
		Short: "List apps with their current release",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var apps []api.AppInfo
			if err := newAPIClient().get(cmd.Context(), "/api/v1/apps", &apps); err != nil {
				return err
			}
			if opts.JSON {
				return printJSON(s.Out, apps)
			}
			tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "APP\tPIPELINE\tSTAGE\tRELEASE\tREGIONS")
			for _, a := range apps {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.Name, a.Pipeline, a.Stage, currentName(a.Current), strings.Join(a.Regions, ","))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print JSON")
	cmd.AddCommand(newAppsInfoCmd(s))
	return cmd
}

func currentName(r *pipelines.Release) string {
	if r == nil {
		return "-"
	}
	return r.Name()
}

func newAppsInfoCmd(s Streams) *cobra.Command {
	opts := &outputOptions{}
	cmd := &cobra.Command{
		Use:   "info APP",
		Short: "Show an app: its current release and where it answers in each region",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var info api.AppInfo
			if err := newAPIClient().get(cmd.Context(), "/api/v1/apps/"+url.PathEscape(args[0]), &info); err != nil {
				return err
			}
			if opts.JSON {
				return printJSON(s.Out, info)
			}
			fmt.Fprintf(s.Out, "=== %s\n", info.Name)
			fmt.Fprintf(s.Out, "Pipeline: %s (%s)\nRepo:     %s\n", info.Pipeline, info.Stage, info.Repo)
			if info.Branch != "" {
				fmt.Fprintf(s.Out, "Branch:   %s (auto-deploys)\n", info.Branch)
			}
			if c := info.Current; c != nil {
				fmt.Fprintf(s.Out, "Release:  %s  commit %s  slug %s\n", c.Name(), shortSHA(c.Commit), shortSHA(c.Slug))
			} else {
				fmt.Fprintln(s.Out, "Release:  none yet; push to the stage's branch to deploy")
			}
			tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
			// A region may run another release than the current one (a
			// rollout that failed there, or stopped): RUNS says which.
			fmt.Fprintln(tw, "REGION\tRUNS\tSTATUS\tURL")
			for _, w := range info.Where {
				runs := "-"
				if w.Release > 0 {
					runs = "v" + strconv.Itoa(w.Release)
				}
				status := orDash(string(w.Status))
				if w.Message != "" && w.Status != pipelines.RegionSuccessful {
					status += ": " + w.Message
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", w.Region, runs, status, orDash(w.URL))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print JSON")
	return cmd
}

func newReleasesCmd(s Streams) *cobra.Command {
	opts := &outputOptions{}
	cmd := &cobra.Command{
		Use:   "releases APP",
		Short: "List an app's releases, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var rs []pipelines.Release
			if err := newAPIClient().get(cmd.Context(), "/api/v1/apps/"+url.PathEscape(args[0])+"/releases", &rs); err != nil {
				return err
			}
			if opts.JSON {
				return printJSON(s.Out, rs)
			}
			tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "VERSION\tSTATUS\tCOMMIT\tSLUG\tCREATED\tREGIONS\tDESCRIPTION")
			for _, r := range rs {
				desc := r.Description
				if r.Reason != "" {
					desc += " (" + r.Reason + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name(), r.Status, shortSHA(r.Commit), orDash(shortSHA(r.Slug)),
					r.CreatedAt.Local().Format(time.DateTime), orDash(regionSummary(r)), desc)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print JSON")
	return cmd
}

// regionSummary is one release's regions on a line, e.g.
// "us-east:successful eu-west:running(web: 1/2 healthy)".
func regionSummary(r pipelines.Release) string {
	var parts []string
	for _, st := range r.Regions {
		part := st.Region + ":" + string(st.Status)
		if st.Status == pipelines.RegionRunning && st.Message != "" {
			part += "(" + st.Message + ")"
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, " ")
}

func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
