// Command drover is drover's one binary: the dev stack (`drover dev`) and
// the user commands that talk to a running drover over its API.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes, named so scripts and tests agree on them.
const (
	exitOK       = 0
	exitError    = 1
	exitUsage    = 2
	exitNotFound = 3
)

// Streams are where a command writes; tests pass buffers.
type Streams struct {
	In       io.Reader
	Out, Err io.Writer
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, os.Args[1:], Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	stop()
	os.Exit(code)
}

// Run runs the drover command line and returns its exit code.
func Run(ctx context.Context, args []string, s Streams) int {
	root := newRootCmd(s)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	// A one-off's exit code is drover's, as `heroku run --exit-code`.
	var re *runExit
	if errors.As(err, &re) {
		return re.code
	}
	fmt.Fprintln(s.Err, "error:", err)
	var he *hintError
	if errors.As(err, &he) && he.hint != "" {
		fmt.Fprintln(s.Err, "hint: "+he.hint)
	}
	return exitCode(err)
}

// exitCode is the exit code a command's error calls for.
func exitCode(err error) int {
	var ue *usageError
	var he *hintError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &he) && he.code != 0:
		return he.code
	}
	return exitError
}

func newRootCmd(s Streams) *cobra.Command {
	root := &cobra.Command{
		Use:           "drover",
		Short:         "Heroku-style deploys to Nomad: git push, review apps, promotion, rollback",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.Err)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return &usageError{err} })
	root.AddCommand(newDevCmd(s, nil), newServerCmd(s, nil), newWorkerCmd(s, nil), newMigrateCmd(s), newTemporalDevCmd(s), newAppsCmd(s), newReleasesCmd(s), newPromoteCmd(s, nil), newRollbackCmd(s, nil), newOperationsCmd(s), newConfigCmd(s), newScaleCmd(s), newAutoDeployCmd(s), newApprovalsCmd(s), newApproveCmd(s, true), newApproveCmd(s, false), newReviewAppsCmd(s), newOpenCmd(s, nil), newPsCmd(s), newLogsCmd(s, nil), newRunCmd(s, nil), newTokensCmd(s), newKeysCmd(s), newBuildSlugCmd(s))
	return root
}

// usageError is a command line that could not be understood.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() + " (see --help)" }
func (e *usageError) Unwrap() error { return e.err }

// hintError carries what the user can do next, and an exit code.
type hintError struct {
	err  error
	hint string
	code int
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }
