package web

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/drover/drover/api"
	"github.com/drover/drover/workflows"
)

// events follows an operation for the page: it reads the API's own
// server-sent-events stream of it (GET /api/v1/operations/ID with Accept:
// text/event-stream) and sends each change on as the HTML of the progress
// block, rendered by the template the page itself uses, so the script
// only swaps it in. An event "done" follows the last.
func (p *Page) events(c *gin.Context, u user) {
	id := strings.TrimPrefix(c.Param("id"), "/")
	req, err := http.NewRequestWithContext(c.Request.Context(), http.MethodGet, "/api/v1/operations/"+id, nil)
	if err != nil {
		p.refuse(c, http.StatusBadRequest, err.Error())
		return
	}
	req.Header.Set("Authorization", "Bearer "+u.token)
	req.Header.Set("Accept", "text/event-stream")
	pr, pw := io.Pipe()
	sw := &apiWriter{header: http.Header{}, w: pw, gone: make(chan bool)}
	go func() {
		<-c.Request.Context().Done()
		close(sw.gone)
	}()
	go func() {
		p.API.ServeHTTP(sw, req)
		pw.Close()
	}()
	defer pr.Close()
	// The API answers an unknown operation, or a token that may not see
	// it, before any stream starts: pass that on as it is.
	rd := bufio.NewReader(pr)
	first, err := rd.Peek(1)
	if err == nil && len(first) > 0 && sw.status >= 300 {
		body, _ := io.ReadAll(rd)
		c.Data(sw.status, "application/json", body)
		return
	}
	c.Header("Content-Type", "text/event-stream")
	c.Header("Cache-Control", "no-cache")
	c.Header("X-Accel-Buffering", "no")
	c.Status(http.StatusOK)
	c.Writer.Flush()
	var event string
	var data bytes.Buffer
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		case line == "":
			if event == "operation" {
				var op api.Operation
				if json.Unmarshal(data.Bytes(), &op) == nil {
					p.sendProgress(c, &op)
				}
			} else if event == "error" {
				fmt.Fprintf(c.Writer, "event: failure\ndata: %s\n\n", strings.ReplaceAll(data.String(), "\n", " "))
				c.Writer.Flush()
			}
			event = ""
			data.Reset()
		}
	}
}

// sendProgress sends op's progress block as one event, and "done" after
// the block that shows it ended.
func (p *Page) sendProgress(c *gin.Context, op *api.Operation) {
	html, err := p.part("progress", op)
	if err != nil {
		return
	}
	fmt.Fprint(c.Writer, "event: progress\n")
	for _, l := range strings.Split(strings.TrimRight(string(html), "\n"), "\n") {
		fmt.Fprintf(c.Writer, "data: %s\n", l)
	}
	fmt.Fprint(c.Writer, "\n")
	if op.State == workflows.OperationSucceeded || op.State == workflows.OperationFailed {
		fmt.Fprintf(c.Writer, "event: done\ndata: %s\n\n", op.State)
	}
	c.Writer.Flush()
}

// renderPart writes one block of the board (for the script to swap in).
func (p *Page) renderPart(c *gin.Context, name string, data any) {
	html, err := p.part(name, data)
	if err != nil {
		c.String(http.StatusInternalServerError, "drover could not render this part: %v", err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Data(http.StatusOK, "text/html; charset=utf-8", html)
}

// part renders one block of the board's templates, logging why it could
// not.
func (p *Page) part(name string, data any) ([]byte, error) {
	var buf bytes.Buffer
	if err := p.pages["board"].ExecuteTemplate(&buf, name, data); err != nil {
		p.logger().Error("render part of the page", "part", name, "error", err)
		return nil, err
	}
	return buf.Bytes(), nil
}
