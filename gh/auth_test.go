package gh_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v4"

	"github.com/drover/drover/gh"
	"github.com/drover/drover/pipelines"
)

// gitHubAppStandIn serves the parts of GitHub's API a GitHub App uses,
// shaped as GitHub documents them, under an Enterprise base path. It
// checks the App's JWT and the installation token on every request.
type gitHubAppStandIn struct {
	t      *testing.T
	key    *rsa.PrivateKey
	mu     sync.Mutex
	tokens int      // installation tokens issued
	scopes []string // what each token was narrowed to
	ttl    time.Duration
	calls  []string
}

func (s *gitHubAppStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, r.Method+" "+r.URL.Path)
	auth := r.Header.Get("Authorization")
	switch {
	case r.Method == "GET" && r.URL.Path == "/api/v3/repos/octo-org/hello/installation":
		s.checkJWT(auth)
		fmt.Fprint(w, `{"id":1234,"account":{"login":"octo-org","id":1},"app_id":42,"target_type":"Organization","permissions":{"checks":"read","deployments":"write","statuses":"write","contents":"read","pull_requests":"write"}}`)
	case r.Method == "GET" && r.URL.Path == "/api/v3/repos/other-org/app/installation":
		s.checkJWT(auth)
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"message":"Not Found","documentation_url":"https://docs.github.com/rest/apps/apps#get-a-repository-installation-for-the-authenticated-app"}`)
	case r.Method == "POST" && r.URL.Path == "/api/v3/app/installations/1234/access_tokens":
		s.checkJWT(auth)
		// GitHub narrows a token to the repositories and permissions the
		// body names, and answers with what it granted.
		var body struct {
			Repositories []string          `json:"repositories"`
			Permissions  map[string]string `json:"permissions"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		s.tokens++
		s.scopes = append(s.scopes, fmt.Sprintf("%v %v", body.Repositories, body.Permissions))
		granted := body.Permissions
		if granted == nil {
			granted = map[string]string{"checks": "read", "contents": "read", "statuses": "write"}
		}
		perms, _ := json.Marshal(granted)
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"token":"ghs_token%d","expires_at":%q,"permissions":%s,"repository_selection":"selected"}`,
			s.tokens, time.Now().Add(s.ttl).UTC().Format(time.RFC3339), perms)
	case r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/api/v3/repos/octo-org/hello/commits/"):
		if want := fmt.Sprintf("token ghs_token%d", s.tokens); auth != want {
			s.t.Errorf("%s: Authorization = %q, want %q", r.URL.Path, auth, want)
		}
		if strings.HasSuffix(r.URL.Path, "/status") {
			fmt.Fprint(w, `{"state":"pending","statuses":[],"total_count":0}`)
			return
		}
		fmt.Fprint(w, `{"total_count":1,"check_runs":[{"id":1,"name":"test","status":"completed","conclusion":"success"}]}`)
	default:
		s.t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
		w.WriteHeader(http.StatusNotFound)
	}
}

// checkJWT verifies the App's JWT as GitHub does: RS256 with the App's
// public key, issuer the App ID, short-lived.
func (s *gitHubAppStandIn) checkJWT(auth string) {
	raw, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		s.t.Errorf("App request without a bearer JWT: %q", auth)
		return
	}
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(raw, &claims, func(tok *jwt.Token) (any, error) {
		if tok.Method != jwt.SigningMethodRS256 {
			return nil, fmt.Errorf("alg %v, want RS256", tok.Method.Alg())
		}
		return &s.key.PublicKey, nil
	})
	if err != nil {
		s.t.Errorf("JWT: %v", err)
		return
	}
	if claims.Issuer != "42" || claims.ExpiresAt == nil || time.Until(claims.ExpiresAt.Time) > 10*time.Minute {
		s.t.Errorf("JWT claims = %+v; want issuer 42 and at most 10 minutes of life", claims)
	}
}

func (s *gitHubAppStandIn) issued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokens
}

func TestAppAuthExchangesAndCachesInstallationTokens(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	tests := []struct {
		name string
		ttl  time.Duration
		// wantTokens after three CI reads and a git token.
		wantTokens int
	}{
		// An hour-long token is fetched once and reused; git gets its own.
		{"cached until near expiry", time.Hour, 2},
		// A token that expires within a minute is refreshed before each of
		// the seven uses (two API calls per CI read, then git).
		{"refreshed near expiry", 30 * time.Second, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stand := &gitHubAppStandIn{t: t, key: key, ttl: tt.ttl}
			srv := httptest.NewServer(stand)
			defer srv.Close()
			auth, err := gh.NewAppAuth(srv.URL+"/api/v3/", 42, pemKey)
			if err != nil {
				t.Fatal(err)
			}
			c := &gh.Client{Auth: auth}
			ctx := context.Background()
			for range 3 {
				v, err := c.CIState(ctx, "octo-org/hello", "6dcb09b5b57875f334f61aebed695e2e4193db5e", nil)
				if err != nil || v.State != pipelines.CISuccess {
					t.Fatalf("CIState = %+v, %v", v, err)
				}
			}
			tok, err := auth.Token(ctx, "octo-org/hello")
			if err != nil || !strings.HasPrefix(tok, "ghs_token") {
				t.Fatalf("git token = %q, %v", tok, err)
			}
			if got := stand.issued(); got != tt.wantTokens {
				t.Fatalf("installation tokens issued = %d, want %d (calls %v)", got, tt.wantTokens, stand.calls)
			}
			// The API's tokens are the installation's; git's reads the one
			// repository's contents and nothing else.
			if first, last := stand.scopes[0], stand.scopes[len(stand.scopes)-1]; first != "[] map[]" || last != "[hello] map[contents:read]" {
				t.Fatalf("tokens narrowed to %q", stand.scopes)
			}
			installs := 0
			for _, call := range stand.calls {
				if strings.HasSuffix(call, "/installation") {
					installs++
				}
			}
			if installs != 1 {
				t.Fatalf("installation looked up %d times, want once per account", installs)
			}
		})
	}
}

func TestAppAuthNotInstalledSaysSo(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	stand := &gitHubAppStandIn{t: t, key: key, ttl: time.Hour}
	srv := httptest.NewServer(stand)
	defer srv.Close()
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	auth, err := gh.NewAppAuth(srv.URL+"/api/v3/", 42, pemKey)
	if err != nil {
		t.Fatal(err)
	}
	_, err = (&gh.Client{Auth: auth}).CIState(context.Background(), "other-org/app", "abc", nil)
	if err == nil || !strings.Contains(err.Error(), "is the App installed there?") || !strings.Contains(err.Error(), "other-org/app") {
		t.Fatalf("err = %v; want it to name the repository and the likely cause", err)
	}
	if _, err := gh.NewAppAuth("", 42, []byte("not a key")); err == nil || !strings.Contains(err.Error(), "private key") {
		t.Fatalf("a bad key: err = %v", err)
	}
}
