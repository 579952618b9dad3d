package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover/drover/api"
	"github.com/drover/drover/pipelines"
)

// newReviewAppsCmd is `drover review-apps PIPELINE` and its create and
// destroy subcommands.
func newReviewAppsCmd(s Streams) *cobra.Command {
	opts := &outputOptions{}
	cmd := &cobra.Command{
		Use:   "review-apps PIPELINE",
		Short: "List a pipeline's pull request review apps: PR, commit, age and URL",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var list []pipelines.ReviewApp
			if err := newAPIClient().get(cmd.Context(), "/api/v1/pipelines/"+url.PathEscape(args[0])+"/review-apps", &list); err != nil {
				return err
			}
			if opts.JSON {
				return printJSON(s.Out, list)
			}
			if len(list) == 0 {
				fmt.Fprintf(s.Out, "%s has no review apps; opening a pull request makes one\n", args[0])
				return nil
			}
			tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PR\tAPP\tCOMMIT\tAGE\tURL")
			now := time.Now()
			for _, r := range list {
				commit, where := "-", r.URL
				if r.Commit != "" {
					commit = shortSHA(r.Commit)
				}
				if where == "" {
					where = "-"
				}
				if r.Fork && r.Commit == "" {
					where = "(fork: not deployed; drover review-apps create " + args[0] + " " + strconv.Itoa(r.PR) + " --commit SHA)"
				}
				fmt.Fprintf(tw, "#%d\t%s\t%s\t%s\t%s\n", r.PR, r.App, commit, age(now.Sub(r.CreatedAt)), where)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print JSON")
	for _, sub := range []struct{ use, short, method, verb string }{
		{"create", "Deploy a pull request's review app on purpose (a fork's, a draft, or after a failure)", http.MethodPost, "deploying"},
		{"destroy", "Destroy a pull request's review app in every region", http.MethodDelete, "destroying"},
	} {
		var commit string
		c := &cobra.Command{
			Use:   sub.use + " PIPELINE PR",
			Short: sub.short,
			Args:  cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				n, err := strconv.Atoi(args[1])
				if err != nil || n <= 0 {
					return &usageError{fmt.Errorf("%q is not a pull request number", args[1])}
				}
				var out api.ReviewAppAnswer
				path := "/api/v1/pipelines/" + url.PathEscape(args[0]) + "/review-apps/" + strconv.Itoa(n)
				var body any
				if commit != "" {
					body = map[string]string{"commit": commit}
				}
				if err := newAPIClient().do(cmd.Context(), sub.method, path, body, &out); err != nil {
					return err
				}
				fmt.Fprintf(s.Out, "%s %s (pull request #%d); follow it with `drover review-apps %s`\n", sub.verb, out.App, n, args[0])
				return nil
			},
		}
		if sub.use == "create" {
			c.Flags().StringVar(&commit, "commit", "", "the commit you reviewed: deployed exactly, refused if the head has moved on (required for a fork)")
		}
		cmd.AddCommand(c)
	}
	return cmd
}

// age says how long ago, the way people do: 3m, 5h, 2d.
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
