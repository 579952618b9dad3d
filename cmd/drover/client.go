package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/drover/drover/api"
)

// apiClient talks to a running drover's /api/v1.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

// newAPIClient reads $DROVER_URL (default http://127.0.0.1:8080) and
// $DROVER_TOKEN, falling back to the token `drover dev` wrote into
// $DROVER_DATA (default .drover), so the CLI works on the same machine with
// no setup.
func newAPIClient() *apiClient {
	base := os.Getenv("DROVER_URL")
	if base == "" {
		base = "http://127.0.0.1:8080"
	}
	token := os.Getenv("DROVER_TOKEN")
	if token == "" {
		data := os.Getenv("DROVER_DATA")
		if data == "" {
			data = ".drover"
		}
		if b, err := os.ReadFile(filepath.Join(data, "admin-token")); err == nil {
			token = strings.TrimSpace(string(b))
		}
	}
	return &apiClient{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{Timeout: 30 * time.Second}}
}

func (c *apiClient) get(ctx context.Context, path string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return &hintError{err: fmt.Errorf("reach drover at %s: %w", c.base, err),
			hint: "start it with `drover dev`, or set DROVER_URL to where it runs"}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read answer from %s: %w", c.base, err)
	}
	if resp.StatusCode >= 300 {
		var e api.Error
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
			msg = e.Error.Message
		}
		he := &hintError{err: errors.New(msg)}
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			he.hint = "set DROVER_TOKEN to the token `drover dev` printed"
		case http.StatusNotFound:
			he.code, he.hint = exitNotFound, "`drover apps` lists the apps"
		}
		return he
	}
	return json.Unmarshal(body, into)
}
