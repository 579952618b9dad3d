package main

import (
	"bytes"
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

// newAPIClient finds drover and a token with no setup on the machine that
// runs `drover dev`: $DROVER_URL and $DROVER_TOKEN when set; else what the
// running dev stack wrote into the user's config dir (see devLogin); else
// http://127.0.0.1:8080 and the admin token in $DROVER_DATA (default .drover).
func newAPIClient() *apiClient {
	base, token := os.Getenv("DROVER_URL"), os.Getenv("DROVER_TOKEN")
	if login, err := readDevLogin(); err == nil && (base == "" || strings.TrimRight(base, "/") == login.URL) {
		base = login.URL
		if token == "" {
			token = login.Token
		}
	}
	if base == "" {
		base = "http://127.0.0.1:8080"
	}
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

// devLogin is where a running `drover dev` answers and its admin token.
type devLogin struct {
	URL   string `json:"url"`
	Token string `json:"token"`
}

// devLoginPath is <user config dir>/drover/dev.json, or under
// $DROVER_CONFIG_DIR when set.
func devLoginPath() (string, error) {
	dir := os.Getenv("DROVER_CONFIG_DIR")
	if dir == "" {
		base, err := os.UserConfigDir()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(base, "drover")
	}
	return filepath.Join(dir, "dev.json"), nil
}

func readDevLogin() (devLogin, error) {
	var l devLogin
	path, err := devLoginPath()
	if err != nil {
		return l, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return l, err
	}
	err = json.Unmarshal(b, &l)
	return l, err
}

// writeDevLogin records a dev stack's URL and token, readable by the user only.
func writeDevLogin(l devLogin) error {
	path, err := devLoginPath()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(l, "", "  ")
	return os.WriteFile(path, b, 0o600)
}

func (c *apiClient) get(ctx context.Context, path string, into any) error {
	return c.do(ctx, http.MethodGet, path, nil, into)
}

func (c *apiClient) post(ctx context.Context, path string, body, into any) error {
	return c.do(ctx, http.MethodPost, path, body, into)
}

func (c *apiClient) do(ctx context.Context, method, path string, body, into any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.unreachable(err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read answer from %s: %w", c.base, err)
	}
	if resp.StatusCode >= 300 {
		return answerError(resp.StatusCode, answer)
	}
	return json.Unmarshal(answer, into)
}

// unreachable is the error for a drover that did not answer at all.
func (c *apiClient) unreachable(err error) error {
	return &hintError{err: fmt.Errorf("reach drover at %s: %w", c.base, err),
		hint: "start it with `drover dev`, or set DROVER_URL to where it runs"}
}

// answerError turns an API error answer into an error with a hint.
func answerError(status int, answer []byte) error {
	var e api.Error
	msg := strings.TrimSpace(string(answer))
	if json.Unmarshal(answer, &e) == nil && e.Error.Message != "" {
		msg = e.Error.Message
	}
	he := &hintError{err: errors.New(msg)}
	switch status {
	case http.StatusUnauthorized:
		he.hint = "set DROVER_TOKEN to the token `drover dev` printed"
	case http.StatusNotFound:
		he.code, he.hint = exitNotFound, "`drover apps` lists the apps"
	}
	return he
}

// stream GETs path for a long answer (a log tail), with no timeout but
// ctx's; the caller closes the body. An error answer is an error.
func (c *apiClient) stream(ctx context.Context, path, accept string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", accept)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := (&http.Client{Transport: c.http.Transport}).Do(req)
	if err != nil {
		return nil, c.unreachable(err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, answerError(resp.StatusCode, answer)
	}
	return resp.Body, nil
}
