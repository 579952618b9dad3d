package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drover/drover/api"
)

// errNoBrowser says this machine has nothing to open a URL with.
var errNoBrowser = errors.New("no browser to open it with")

// openInBrowser opens u with the system's opener: open on macOS,
// xdg-open where a display is (DISPLAY or WAYLAND_DISPLAY); errNoBrowser
// elsewhere (a server, an SSH session).
func openInBrowser(u string) error {
	opener := ""
	switch {
	case runtime.GOOS == "darwin":
		opener = "open"
	case os.Getenv("DISPLAY") != "" || os.Getenv("WAYLAND_DISPLAY") != "":
		opener = "xdg-open"
	}
	if opener == "" {
		return errNoBrowser
	}
	path, err := exec.LookPath(opener)
	if err != nil {
		return errNoBrowser
	}
	cmd := exec.Command(path, u)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s %s: %w", opener, u, err)
	}
	// The opener hands the URL to the browser and exits; nothing waits.
	go cmd.Wait()
	return nil
}

// newOpenCmd is `drover open APP [--region R]`, as `heroku open`: the
// app's URL in a browser, printed where there is none. open is the
// opener; nil is the system's.
func newOpenCmd(s Streams, open func(string) error) *cobra.Command {
	if open == nil {
		open = openInBrowser
	}
	var region string
	cmd := &cobra.Command{
		Use:   "open APP",
		Short: "Open the app's URL in a browser (the first region's, or --region's)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var info api.AppInfo
			if err := newAPIClient().get(cmd.Context(), "/api/v1/apps/"+url.PathEscape(args[0]), &info); err != nil {
				return err
			}
			u, err := appURL(info, region)
			if err != nil {
				return err
			}
			if err := open(u); err != nil {
				if !errors.Is(err, errNoBrowser) {
					fmt.Fprintf(s.Err, "could not open a browser: %v\n", err)
				}
				fmt.Fprintln(s.Out, u)
				return nil
			}
			fmt.Fprintf(s.Out, "Opening %s\n", u)
			return nil
		},
	}
	cmd.Flags().StringVar(&region, "region", "", "the region whose URL to open (default: the app's first)")
	return cmd
}

// appURL is the app's URL in region, or in its first region that has one.
func appURL(info api.AppInfo, region string) (string, error) {
	names := make([]string, 0, len(info.Where))
	for _, w := range info.Where {
		names = append(names, w.Region)
		if region == "" && w.URL != "" || region != "" && w.Region == region {
			if w.URL == "" {
				break
			}
			return w.URL, nil
		}
	}
	switch {
	case region != "" && !slices.Contains(names, region):
		return "", &hintError{err: fmt.Errorf("%s does not run in region %q", info.Name, region),
			hint: "its regions: " + strings.Join(names, ", "), code: exitNotFound}
	case region != "":
		return "", fmt.Errorf("%s has no URL in %s yet: nothing runs there; deploy it first", info.Name, region)
	}
	return "", fmt.Errorf("%s has no URL yet: no release runs in any of its regions (%s); deploy it first", info.Name, strings.Join(names, ", "))
}
