package gh

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	// The types ghinstallation takes its token options in.
	"github.com/google/go-github/v60/github"
	installgh "github.com/google/go-github/v88/github"
)

// PublicAPI is GitHub's API for github.com; GitHub Enterprise Server has
// its own (https://github.example.com/api/v3/).
const PublicAPI = "https://api.github.com/"

// Auth is how drover acts on one repository: as a token's owner, or as a
// GitHub App's installation on the repository's account.
type Auth interface {
	// Client returns an API client acting on repo ("owner/name").
	Client(ctx context.Context, repo string) (*github.Client, error)
	// Token returns a token git can fetch repo over https with.
	Token(ctx context.Context, repo string) (string, error)
}

// newClient returns a go-github client over hc for apiURL, which is
// GitHub's public API when empty.
func newClient(hc *http.Client, apiURL string) (*github.Client, error) {
	c := github.NewClient(hc)
	if apiURL == "" || apiURL == PublicAPI {
		return c, nil
	}
	c, err := c.WithEnterpriseURLs(apiURL, apiURL)
	if err != nil {
		return nil, fmt.Errorf("github api_url %q: %w", apiURL, err)
	}
	return c, nil
}

// TokenAuth acts with one token (a personal access token or an Actions
// token) on every repository.
type TokenAuth struct {
	client *github.Client
	token  string
}

// NewTokenAuth returns TokenAuth for token on apiURL ("" for github.com).
func NewTokenAuth(apiURL, token string) (*TokenAuth, error) {
	c, err := newClient(nil, apiURL)
	if err != nil {
		return nil, err
	}
	return &TokenAuth{client: c.WithAuthToken(token), token: token}, nil
}

// Client returns the token's client.
func (t *TokenAuth) Client(context.Context, string) (*github.Client, error) { return t.client, nil }

// Token returns the token.
func (t *TokenAuth) Token(context.Context, string) (string, error) { return t.token, nil }

// AppAuth acts as a GitHub App. It signs a JWT with the App's private key,
// finds the App's installation on each repository's account, and exchanges
// the JWT for that installation's token, which ghinstallation caches until
// a minute before it expires.
type AppAuth struct {
	apiURL string
	apps   *ghinstallation.AppsTransport
	// appClient authenticates as the App itself (the JWT), to find
	// installations.
	appClient *github.Client

	mu sync.Mutex
	// installations by account (repository owner, lower-cased): one
	// installation covers every repository of its account it was given.
	installations map[string]*installation
}

type installation struct {
	id        int64
	transport *ghinstallation.Transport
	client    *github.Client
	// git holds, by repository name (lower-cased), the transports that
	// mint git tokens for one repository with contents: read and nothing
	// else, so a token a build holds cannot write, or read another repo.
	git map[string]*ghinstallation.Transport
}

// NewAppAuth returns AppAuth for the App appID with its PEM private key.
func NewAppAuth(apiURL string, appID int64, privateKey []byte) (*AppAuth, error) {
	apps, err := ghinstallation.NewAppsTransport(http.DefaultTransport, appID, privateKey)
	if err != nil {
		return nil, fmt.Errorf("github app %d: private key: %w", appID, err)
	}
	if apiURL != "" {
		// ghinstallation wants the API root without the trailing slash.
		apps.BaseURL = strings.TrimRight(apiURL, "/")
	}
	appClient, err := newClient(&http.Client{Transport: apps}, apiURL)
	if err != nil {
		return nil, err
	}
	return &AppAuth{apiURL: apiURL, apps: apps, appClient: appClient, installations: map[string]*installation{}}, nil
}

// installationFor finds (once per account) the App's installation that
// covers repo.
func (a *AppAuth) installationFor(ctx context.Context, repo string) (*installation, error) {
	owner, name, ok := strings.Cut(repo, "/")
	if !ok {
		return nil, fmt.Errorf("repository %q: want owner/name", repo)
	}
	key := strings.ToLower(owner)
	a.mu.Lock()
	inst := a.installations[key]
	a.mu.Unlock()
	if inst != nil {
		return inst, nil
	}
	found, _, err := a.appClient.Apps.FindRepositoryInstallation(ctx, owner, name)
	if err != nil {
		return nil, fmt.Errorf("find the GitHub App's installation on %s (is the App installed there?): %w", repo, rateLimited(err, time.Now()))
	}
	tr := ghinstallation.NewFromAppsTransport(a.apps, found.GetID())
	client, err := newClient(&http.Client{Transport: tr}, a.apiURL)
	if err != nil {
		return nil, err
	}
	inst = &installation{id: found.GetID(), transport: tr, client: client, git: map[string]*ghinstallation.Transport{}}
	a.mu.Lock()
	if prev := a.installations[key]; prev != nil {
		inst = prev
	} else {
		a.installations[key] = inst
	}
	a.mu.Unlock()
	return inst, nil
}

// Client returns a client acting as the App's installation on repo.
func (a *AppAuth) Client(ctx context.Context, repo string) (*github.Client, error) {
	inst, err := a.installationFor(ctx, repo)
	if err != nil {
		return nil, err
	}
	return inst.client, nil
}

// Token returns a token for git to fetch repo, refreshed near expiry:
// the installation's, narrowed to that one repository and contents: read.
func (a *AppAuth) Token(ctx context.Context, repo string) (string, error) {
	inst, err := a.installationFor(ctx, repo)
	if err != nil {
		return "", err
	}
	_, name, _ := strings.Cut(repo, "/")
	key := strings.ToLower(name)
	a.mu.Lock()
	tr := inst.git[key]
	if tr == nil {
		tr = ghinstallation.NewFromAppsTransport(a.apps, inst.id)
		tr.InstallationTokenOptions = &installgh.InstallationTokenOptions{
			Repositories: []string{name},
			Permissions:  &installgh.InstallationPermissions{Contents: installgh.Ptr("read")},
		}
		inst.git[key] = tr
	}
	a.mu.Unlock()
	tok, err := tr.Token(ctx)
	if err != nil {
		return "", fmt.Errorf("installation token for %s: %w", repo, err)
	}
	return tok, nil
}
