package pipelines

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
)

// GitSource is where builds of a pipeline fetch its code.
type GitSource struct {
	// URL is what git fetches from.
	URL string
	// GitHub is true when URL is the repository on the configured GitHub
	// host: the only place drover's GitHub credentials are ever sent.
	GitHub bool
}

// GitHost is the host repositories are cloned from: github.api_url's host
// for GitHub Enterprise (https://ghe.example.com/api/v3/ → ghe.example.com),
// else github.com. Its scheme is https, or http only where api_url says so
// (a stand-in on the loopback).
func (c *Config) GitHost() (scheme, host string) {
	u, err := url.Parse(c.GitHub.APIURL)
	if c.GitHub.APIURL == "" || err != nil || u.Host == "" || strings.EqualFold(u.Host, "api.github.com") {
		return "https", "github.com"
	}
	if u.Scheme == "http" {
		return "http", u.Host
	}
	return "https", u.Host
}

// SourceOf is where builds of repo fetch it: its pipeline's source when
// drover.yaml sets one, else the repository on the GitHub host. A fork's
// pull request is fetched from the base repository too, which serves its
// head (GitHub keeps refs/pull/N/head), so no URL from a payload is ever
// fetched and no credential goes to a fork's or any other host. Returns
// ErrNotFound if no pipeline deploys repo.
func (c *Config) SourceOf(repo string) (GitSource, error) {
	for _, name := range sortedKeys(c.Pipelines) {
		p := c.Pipelines[name]
		if !strings.EqualFold(p.Repo, repo) {
			continue
		}
		if p.Source != "" {
			return GitSource{URL: p.Source}, nil
		}
		scheme, host := c.GitHost()
		return GitSource{URL: scheme + "://" + host + "/" + p.Repo + ".git", GitHub: true}, nil
	}
	return GitSource{}, fmt.Errorf("no pipeline in %s deploys %s: %w", c.File, repo, ErrNotFound)
}

// validSource checks a pipeline's source: an absolute file:// path or an
// https URL with a host, and nothing git would read as an option or a
// command (ext::, fd::).
func validSource(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %w", s, err)
	}
	switch u.Scheme {
	case "file":
		if (u.Host != "" && u.Host != "localhost") || !filepath.IsAbs(u.Path) {
			return fmt.Errorf("%q: want an absolute path, file:///path/to/repo", s)
		}
	case "https":
		if u.Host == "" || u.User != nil {
			return fmt.Errorf("%q: want https://host/owner/name.git with no credentials in it", s)
		}
	default:
		return errors.New("want file:///path/to/repo or an https:// URL")
	}
	return nil
}
