package main

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drover/drover/api"
	"github.com/drover/drover/pipelines"
)

func newConfigCmd(s Streams) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Read and change an app's config vars"}
	getOpts := &outputOptions{}
	get := &cobra.Command{
		Use:   "get APP",
		Short: "Show an app's config vars",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var cv pipelines.ConfigVars
			if err := newAPIClient().get(cmd.Context(), "/api/v1/apps/"+url.PathEscape(args[0])+"/config", &cv); err != nil {
				return err
			}
			if getOpts.JSON {
				return printJSON(s.Out, cv)
			}
			keys := make([]string, 0, len(cv.Vars))
			for k := range cv.Vars {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(s.Out, "%s=%s\n", k, cv.Vars[k])
			}
			return nil
		},
	}
	get.Flags().BoolVar(&getOpts.JSON, "json", false, "print JSON")

	setOpts := &OperationOptions{}
	set := &cobra.Command{
		Use:   "set APP KEY=value...",
		Short: "Set config vars: a new release with the new config, rolled out",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]*string{}
			for _, kv := range args[1:] {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return &usageError{fmt.Errorf("%q: want KEY=value", kv)}
				}
				body[k] = &v
			}
			return changeConfig(cmd.Context(), s, args[0], body, "set "+keys(body), *setOpts)
		},
	}
	setOpts.flags(set)

	unsetOpts := &OperationOptions{}
	unset := &cobra.Command{
		Use:   "unset APP KEY...",
		Short: "Remove config vars: a new release without them, rolled out",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]*string{}
			for _, k := range args[1:] {
				body[k] = nil
			}
			return changeConfig(cmd.Context(), s, args[0], body, "unset "+keys(body), *unsetOpts)
		},
	}
	unsetOpts.flags(unset)
	cmd.AddCommand(get, set, unset)
	return cmd
}

func keys(m map[string]*string) string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// changeConfig writes the new config version, then releases the current
// slug with it. An app with no release yet only keeps the vars for its
// first deploy.
func changeConfig(ctx context.Context, s Streams, app string, body map[string]*string, desc string, opts OperationOptions) error {
	c := newAPIClient()
	var cv pipelines.ConfigVars
	if err := c.do(ctx, "PATCH", "/api/v1/apps/"+url.PathEscape(app)+"/config", body, &cv); err != nil {
		return err
	}
	var info api.AppInfo
	if err := c.get(ctx, "/api/v1/apps/"+url.PathEscape(app), &info); err != nil {
		return err
	}
	if info.Current == nil {
		fmt.Fprintf(s.Out, "config v%d saved; %s has no release yet, so its first deploy will use it\n", cv.Version, app)
		return nil
	}
	var op api.Operation
	if err := c.post(ctx, "/api/v1/apps/"+url.PathEscape(app)+"/releases", map[string]string{"description": desc}, &op); err != nil {
		return err
	}
	return followOperation(ctx, c, s, op, opts)
}

func newScaleCmd(s Streams) *cobra.Command {
	opts := &OperationOptions{}
	cmd := &cobra.Command{
		Use:   "ps:scale APP TYPE=N...",
		Short: "Change process counts: a new release with the new formation, rolled out",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			f := pipelines.Formation{}
			for _, tn := range args[1:] {
				typ, n, ok := strings.Cut(tn, "=")
				count, err := strconv.Atoi(n)
				if !ok || typ == "" || err != nil || count < 0 {
					return &usageError{fmt.Errorf("%q: want TYPE=N, e.g. web=2", tn)}
				}
				f[typ] = count
			}
			c := newAPIClient()
			var op api.Operation
			if err := c.post(cmd.Context(), "/api/v1/apps/"+url.PathEscape(args[0])+"/formation", f, &op); err != nil {
				return err
			}
			return followOperation(cmd.Context(), c, s, op, *opts)
		},
	}
	opts.flags(cmd)
	return cmd
}
