package main

import (
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover/drover/api"
	"github.com/drover/drover/regions"
)

// newPsCmd is `drover ps APP [--json]`, as `heroku ps`: each process of
// the app per region, its state, since when, its release, restarts and
// last exit.
func newPsCmd(s Streams) *cobra.Command {
	opts := &outputOptions{}
	cmd := &cobra.Command{
		Use:   "ps APP",
		Short: "List the app's processes in every region: state, since when, release, restarts, last exit",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ps api.Processes
			if err := newAPIClient().get(cmd.Context(), "/api/v1/apps/"+url.PathEscape(args[0])+"/ps", &ps); err != nil {
				return err
			}
			if opts.JSON {
				return printJSON(s.Out, ps)
			}
			printProcesses(s.Out, ps, time.Now())
			return nil
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print JSON")
	return cmd
}

// printProcesses writes one section per region:
//
//	=== local-a
//	web.1: up 3h ago (v12)
//	worker.1: crashed 2m ago (v12): exit 1
func printProcesses(w io.Writer, ps api.Processes, now time.Time) {
	for _, r := range ps.Regions {
		switch {
		case r.Error != "":
			fmt.Fprintf(w, "=== %s: cannot say: %s\n", r.Region, r.Error)
			continue
		case len(r.Processes) == 0:
			fmt.Fprintf(w, "=== %s: nothing runs\n", r.Region)
			continue
		}
		fmt.Fprintf(w, "=== %s\n", r.Region)
		for _, p := range r.Processes {
			line := fmt.Sprintf("%s: %s", p.Dyno, p.State)
			if !p.Since.IsZero() {
				line += " " + ago(now.Sub(p.Since))
			}
			line += fmt.Sprintf(" (v%d)", p.Release)
			if p.Restarts > 0 {
				line += fmt.Sprintf(", %d restarts", p.Restarts)
			}
			if p.ExitCode != nil && p.State != regions.ProcessUp {
				line += fmt.Sprintf(": exit %d", *p.ExitCode)
			}
			if p.Message != "" {
				line += " (" + p.Message + ")"
			}
			fmt.Fprintln(w, line)
		}
	}
	if len(ps.Runs) == 0 {
		return
	}
	fmt.Fprintln(w, "=== one-off runs")
	for _, r := range ps.Runs {
		line := fmt.Sprintf("%s: ", r.Dyno())
		switch {
		case r.ExitCode != nil && r.EndedAt != nil:
			line += fmt.Sprintf("exited %d %s", *r.ExitCode, ago(now.Sub(*r.EndedAt)))
		case r.EndedAt == nil:
			line += "up " + ago(now.Sub(r.StartedAt))
		}
		line += fmt.Sprintf(" (v%d, %s, by %s): `%s`", r.Release, r.Region, r.By, r.Command)
		fmt.Fprintln(w, line)
	}
}

// ago says how long ago, to the unit that matters: 40s ago, 3m ago, 5h ago, 2d ago.
func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", max(0, int(d.Seconds())))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}
