package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/gorilla/websocket"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/drover/drover/api"
)

// runOptions are `drover run`'s flags.
type runOptions struct {
	App    string
	Args   []string
	Detach bool
	Size   string
	Region string
}

// newRunCmd is `drover run APP [--detach] -- COMMAND...`, as `heroku run`:
// a one-off process from the app's current release, with its config
// vars, attached to this terminal, exiting with the command's exit code
// (Heroku's --exit-code is always on). A first word that names a
// Procfile process type runs that type's command with the rest as its
// arguments.
func newRunCmd(s Streams, runF func(context.Context, runOptions) error) *cobra.Command {
	opts := runOptions{}
	cmd := &cobra.Command{
		Use:   "run APP [--detach] [--region R] [--size S] -- COMMAND [ARG...]",
		Short: "Run a one-off process from the app's current release, attached; it exits with the command's code",
		Example: `  drover run hello -- python manage.py migrate
  drover run hello --detach -- rake cleanup
  drover run hello worker 42`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.App, opts.Args = args[0], args[1:]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			c := newAPIClient()
			if opts.Detach {
				return runDetached(cmd.Context(), s, c, opts)
			}
			return runAttached(cmd.Context(), s, c, opts)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.Detach, "detach", "d", false, "run in the background, into the app's log; prints how to follow it")
	f.StringVarP(&opts.Size, "size", "s", "", "the process size, where the region has sizes")
	f.StringVar(&opts.Region, "region", "", "the region to run in (default: the app's first)")
	return cmd
}

func (o runOptions) request() api.RunRequest {
	return api.RunRequest{Args: o.Args, Region: o.Region, Size: o.Size}
}

// runDetached starts the run and prints how to follow it.
func runDetached(ctx context.Context, s Streams, c *apiClient, o runOptions) error {
	var started api.RunStarted
	if err := c.post(ctx, "/api/v1/apps/"+url.PathEscape(o.App)+"/runs", o.request(), &started); err != nil {
		return err
	}
	r := started.Run
	fmt.Fprintf(s.Out, "Running `%s` on %s (v%d, region %s)... up, %s\n", r.Command, r.App, r.Release, r.Region, r.Dyno())
	fmt.Fprintf(s.Out, "follow it with: %s\n", started.Follow)
	return nil
}

// runExit is an attached run's non-zero exit code, which becomes drover's.
type runExit struct{ code int }

func (e *runExit) Error() string { return fmt.Sprintf("the command exited with code %d", e.code) }

// runAttached runs the command over the run WebSocket, copying this
// process's stdin to it and its output here.
func runAttached(ctx context.Context, s Streams, c *apiClient, o runOptions) error {
	u := strings.Replace(c.base, "http", "ws", 1) + "/api/v1/apps/" + url.PathEscape(o.App) + "/run"
	h := http.Header{}
	if c.token != "" {
		h.Set("Authorization", "Bearer "+c.token)
	}
	ws, resp, err := websocket.DefaultDialer.DialContext(ctx, u, h)
	if err != nil {
		if resp != nil {
			defer resp.Body.Close()
			answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			return answerError(resp.StatusCode, answer)
		}
		return c.unreachable(err)
	}
	defer ws.Close()
	var mu sync.Mutex
	write := func(kind int, b []byte) error {
		mu.Lock()
		defer mu.Unlock()
		return ws.WriteMessage(kind, b)
	}
	request := o.request()
	// On a terminal, the run gets one too, as `heroku run` does: keys go
	// to it as typed (raw mode), and its size follows this one's.
	var restore func()
	if in, ok := s.In.(*os.File); ok && term.IsTerminal(int(in.Fd())) {
		request.TTY = true
		if cols, rows, err := term.GetSize(int(in.Fd())); err == nil {
			request.Rows, request.Cols = uint16(rows), uint16(cols)
		}
		if st, err := term.MakeRaw(int(in.Fd())); err == nil {
			restore = func() { term.Restore(int(in.Fd()), st) }
			defer restore()
		}
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for range winch {
				if cols, rows, err := term.GetSize(int(in.Fd())); err == nil {
					b, _ := json.Marshal(api.RunMessage{Type: "resize", Rows: uint16(rows), Cols: uint16(cols)})
					if write(websocket.TextMessage, b) != nil {
						return
					}
				}
			}
		}()
	}
	req, _ := json.Marshal(request)
	if err := write(websocket.TextMessage, req); err != nil {
		return fmt.Errorf("start run: %w", err)
	}
	go func() {
		<-ctx.Done()
		ws.Close() // interrupted: the run is killed by the server
	}()
	stdinStarted := false
	for {
		kind, b, err := ws.ReadMessage()
		if err != nil {
			if ctx.Err() != nil {
				return errors.New("interrupted; the run was stopped")
			}
			return &hintError{err: fmt.Errorf("lost the connection to drover during the run: %w", err), hint: "the run was stopped; run it again"}
		}
		if kind == websocket.BinaryMessage && len(b) > 0 {
			if b[0] == api.RunStderr {
				s.Err.Write(b[1:])
			} else {
				s.Out.Write(b[1:])
			}
			continue
		}
		var m api.RunMessage
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("run: unreadable message from drover: %w", err)
		}
		switch m.Type {
		case "error":
			return &hintError{err: errors.New(m.Error), hint: "`drover releases " + o.App + "` shows its releases"}
		case "started":
			if m.Run != nil {
				eol := "\n"
				if request.TTY {
					eol = "\r\n" // the terminal is raw
				}
				fmt.Fprintf(s.Err, "Running `%s` on %s (v%d, region %s)... up, %s%s", m.Run.Command, m.Run.App, m.Run.Release, m.Run.Region, m.Run.Dyno(), eol)
			}
			if !stdinStarted && s.In != nil {
				stdinStarted = true
				go copyStdin(s.In, write)
			}
		case "exit":
			if m.ExitCode == nil || *m.ExitCode == 0 {
				return nil
			}
			switch *m.ExitCode {
			case 126, 127:
				// The shell's own line said which; say what to do.
				fmt.Fprintf(s.Err, "error: the command could not start (exit %d): check its name, and that the slug has it (bin/, or what the buildpack installs)\n", *m.ExitCode)
			}
			return &runExit{code: *m.ExitCode}
		}
	}
}

// copyStdin sends in as binary messages, then an eof message.
func copyStdin(in io.Reader, write func(int, []byte) error) {
	buf := make([]byte, 32<<10)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			if write(websocket.BinaryMessage, append([]byte(nil), buf[:n]...)) != nil {
				return
			}
		}
		if err != nil {
			write(websocket.TextMessage, []byte(`{"type":"eof"}`))
			return
		}
	}
}
