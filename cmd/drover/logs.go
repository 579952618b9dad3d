package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/drover/drover/api"
	"github.com/drover/drover/applog"
)

// logsOptions are `drover logs`'s flags, as `heroku logs`'s.
type logsOptions struct {
	App    string
	Num    int
	Tail   bool
	Source string
	Dyno   string
	Type   string
	Region string
	JSON   bool
}

// path is the API request for the options.
func (o logsOptions) path() string {
	q := url.Values{}
	q.Set("num", strconv.Itoa(o.Num))
	if o.Tail {
		q.Set("tail", "1")
	}
	for k, v := range map[string]string{"source": o.Source, "dyno": o.Dyno, "type": o.Type, "region": o.Region} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return "/api/v1/apps/" + url.PathEscape(o.App) + "/logs?" + q.Encode()
}

// newLogsCmd is `drover logs APP`, as `heroku logs`: the app's newest
// lines from every region, in Heroku's shape, and with --tail the new
// ones as they come, across deploys, until interrupted.
func newLogsCmd(s Streams, runF func(context.Context, logsOptions) error) *cobra.Command {
	opts := logsOptions{}
	cmd := &cobra.Command{
		Use:   "logs APP",
		Short: "Show the app's log lines from every region; --tail follows them",
		Example: `  drover logs hello --tail
  drover logs hello -n 200 --process-type web --region us-east
  drover logs hello --dyno web.2 --source drover`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.App = args[0]
			if err := (applog.Query{Num: opts.Num, Source: opts.Source, Dyno: opts.Dyno, Type: opts.Type}).Validate(); err != nil {
				return &hintError{err: err, code: exitUsage, hint: "see drover logs --help"}
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runLogs(cmd.Context(), s, newAPIClient(), opts)
		},
	}
	f := cmd.Flags()
	f.IntVarP(&opts.Num, "num", "n", applog.DefaultNum, "number of lines to show first")
	f.BoolVarP(&opts.Tail, "tail", "t", false, "keep showing new lines as they are written")
	f.StringVarP(&opts.Source, "source", "s", "", "only lines of this source: app (the processes' output) or drover (drover's events)")
	f.StringVarP(&opts.Dyno, "dyno", "d", "", "only lines of this process, e.g. web.2 or run.3")
	f.StringVarP(&opts.Type, "process-type", "p", "", "only lines of this process type, e.g. web")
	f.StringVar(&opts.Region, "region", "", "only lines of this region")
	f.BoolVar(&opts.JSON, "json", false, "print one JSON object a line")
	return cmd
}

// runLogs prints the stream; a region that cannot be read is named on
// stderr while the others' lines go on.
func runLogs(ctx context.Context, s Streams, c *apiClient, o logsOptions) error {
	body, err := c.stream(ctx, o.path(), api.ContentTypeNDJSON)
	if err != nil {
		return err
	}
	defer body.Close()
	out := bufio.NewWriter(s.Out)
	err = readLogStream(body, func(l applog.Line, raw []byte) {
		if o.JSON {
			out.Write(raw)
			out.WriteByte('\n')
		} else {
			out.WriteString(l.String())
			out.WriteByte('\n')
		}
	}, func(e api.LogError) {
		out.Flush()
		fmt.Fprintf(s.Err, "drover: %s\n", e.Error)
	}, func() { out.Flush() })
	out.Flush()
	if ctx.Err() != nil {
		return nil // interrupted: a tail ends so
	}
	if err != nil {
		return &hintError{err: fmt.Errorf("log stream from %s broke off: %w", c.base, err), hint: "run drover logs again"}
	}
	return nil
}

// readLogStream reads newline-delimited JSON: lines and region errors.
// idle is called whenever no more is buffered, so output is flushed as
// lines arrive rather than when a buffer fills.
func readLogStream(r io.Reader, line func(applog.Line, []byte), regionErr func(api.LogError), idle func()) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		b, err := br.ReadBytes('\n')
		if len(b) > 1 {
			raw := b[:len(b)-1]
			var probe struct {
				Error   *string `json:"error"`
				Message *string `json:"message"`
			}
			if jerr := json.Unmarshal(raw, &probe); jerr != nil {
				return fmt.Errorf("read log line: %w", jerr)
			}
			if probe.Error != nil && probe.Message == nil {
				var e api.LogError
				json.Unmarshal(raw, &e)
				regionErr(e)
			} else {
				var l applog.Line
				json.Unmarshal(raw, &l)
				line(l, raw)
			}
		}
		if br.Buffered() == 0 {
			idle()
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
