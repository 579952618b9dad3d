// Package web is drover's web page: the pipelines side by side, each
// stage's release and regions, promotion with a preview first, release
// history with roll back, and approvals. It is server-rendered HTML with
// one small script of its own, all embedded in the binary, and it is a
// client of the API like the CLI: every read and action is an in-process
// call to /api/v1 bearing the signed-in user's token, so the API's token
// scopes and pipeline limits are the page's too.
package web

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/drover/drover/api"
)

//go:embed templates/*.html assets/*
var files embed.FS

// SessionCookie holds the signed-in user's API token: HttpOnly, so no
// script reads it, and SameSite=Strict, so no other site's page sends it.
const SessionCookie = "drover_session"

// sessionAge is how long a sign-in lasts without coming back.
const sessionAge = 12 * time.Hour

// Page serves the web page beside the API.
type Page struct {
	// API serves /api/v1: the engine the page is registered on.
	API http.Handler
	// TemporalUI, when set, is the Temporal UI's address; every operation
	// links to its workflow there, in Namespace.
	TemporalUI string
	Namespace  string
	// GitHub is GitHub's web address for commit links; default
	// https://github.com.
	GitHub string
	Logger *slog.Logger
	// Now tells the time, for ages; default time.Now.
	Now func() time.Time

	pages  map[string]*template.Template
	assets map[string]asset
	csrf   *http.CrossOriginProtection
}

// Register mounts the page's routes on r: / and what it links to.
func (p *Page) Register(r gin.IRouter) error {
	if err := p.load(); err != nil {
		return err
	}
	p.csrf = http.NewCrossOriginProtection()
	r.GET("/", p.session(p.board))
	r.GET("/login", p.loginForm)
	r.POST("/login", p.login)
	r.POST("/logout", p.form(p.logout))
	r.GET("/assets/:file", p.asset)
	r.GET("/apps/:app", p.session(p.history))
	r.GET("/pipelines/:pipeline/promote", p.session(p.promotePreview))
	r.POST("/pipelines/:pipeline/promote", p.form(p.promote))
	r.GET("/apps/:app/rollback", p.session(p.rollbackPreview))
	r.POST("/apps/:app/rollback", p.form(p.rollback))
	r.POST("/approvals", p.form(p.approve))
	r.GET("/events/operations/*id", p.session(p.events))
	return nil
}

func (p *Page) logger() *slog.Logger {
	if p.Logger == nil {
		return slog.Default()
	}
	return p.Logger
}

func (p *Page) now() time.Time {
	if p.Now == nil {
		return time.Now()
	}
	return p.Now()
}

// user is who a request is signed in as.
type user struct {
	token string
	info  api.TokenInfo
}

// csrfToken is the token every form of the page carries: an HMAC of the
// session's API token, so it is the same on every drover server, needs no
// storage, and only a page served to that session knows it.
func (u user) csrfToken() string {
	m := hmac.New(sha256.New, []byte(u.token))
	m.Write([]byte("drover page form"))
	return hex.EncodeToString(m.Sum(nil))[:32]
}

// handler is a page handler for a signed-in user.
type handler func(c *gin.Context, u user)

// session lets signed-in users through to h and sends others to sign in.
func (p *Page) session(h handler) gin.HandlerFunc {
	return func(c *gin.Context) {
		u, ok := p.signedIn(c)
		if !ok {
			return
		}
		h(c, u)
	}
}

// signedIn reads the session cookie and asks the API whose token it is;
// without a valid one it redirects to the sign-in form and returns false.
func (p *Page) signedIn(c *gin.Context) (user, bool) {
	ck, err := c.Request.Cookie(SessionCookie)
	var token string
	if err == nil {
		token, err = tokenOf(ck.Value)
	}
	if err != nil || token == "" {
		p.toLogin(c, "")
		return user{}, false
	}
	u := user{token: token}
	if err := p.call(c.Request.Context(), u, http.MethodGet, "/api/v1/token", nil, &u.info); err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.status == http.StatusUnauthorized {
			p.clearSession(c)
			p.toLogin(c, "Your token is no longer valid; sign in again.")
			return user{}, false
		}
		p.fail(c, u, err)
		return user{}, false
	}
	return u, true
}

func (p *Page) toLogin(c *gin.Context, msg string) {
	q := url.Values{}
	if c.Request.URL.Path != "/" {
		q.Set("next", c.Request.URL.RequestURI())
	}
	if msg != "" {
		q.Set("msg", msg)
	}
	target := "/login"
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	c.Redirect(http.StatusSeeOther, target)
	c.Abort()
}

// form guards a POST: it must come from this site (Go's cross-origin
// protection, from the browser's Sec-Fetch-Site and Origin headers) and
// carry the session's CSRF token, then h runs for the signed-in user.
func (p *Page) form(h handler) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := p.csrf.Check(c.Request); err != nil {
			p.refuse(c, http.StatusForbidden, "This form was sent from another site, so drover refused it.")
			return
		}
		u, ok := p.signedIn(c)
		if !ok {
			return
		}
		sent := c.PostForm("csrf")
		if sent == "" || subtle.ConstantTimeCompare([]byte(sent), []byte(u.csrfToken())) != 1 {
			p.refuse(c, http.StatusForbidden, "This form's CSRF token is missing or wrong; reload the page and try again.")
			return
		}
		h(c, u)
	}
}

func (p *Page) loginForm(c *gin.Context) {
	p.render(c, http.StatusOK, "login", loginView{Next: safeNext(c.Query("next")), Message: c.Query("msg")})
}

// login checks the token against the API and keeps it in the session
// cookie.
func (p *Page) login(c *gin.Context) {
	if err := p.csrf.Check(c.Request); err != nil {
		p.refuse(c, http.StatusForbidden, "This form was sent from another site, so drover refused it.")
		return
	}
	next := safeNext(c.PostForm("next"))
	u := user{token: strings.TrimSpace(c.PostForm("token"))}
	if u.token == "" {
		p.render(c, http.StatusBadRequest, "login", loginView{Next: next, Message: "Paste an API token (drover tokens, or DROVER_TOKEN)."})
		return
	}
	if err := p.call(c.Request.Context(), u, http.MethodGet, "/api/v1/token", nil, &u.info); err != nil {
		status, msg := http.StatusBadGateway, "drover could not check the token: "+err.Error()
		var ae *apiError
		if errors.As(err, &ae) {
			status, msg = ae.status, ae.Message
		}
		p.render(c, status, "login", loginView{Next: next, Message: msg})
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: SessionCookie, Value: SessionValue(u.token), Path: "/", MaxAge: int(sessionAge.Seconds()),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure(c.Request)})
	c.Redirect(http.StatusSeeOther, next)
}

func (p *Page) logout(c *gin.Context, _ user) {
	p.clearSession(c)
	c.Redirect(http.StatusSeeOther, "/login")
}

func (p *Page) clearSession(c *gin.Context) {
	http.SetCookie(c.Writer, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure(c.Request)})
}

// SessionValue is the session cookie's value for token: the token in
// unpadded base64url, since a cookie may not carry every byte a token
// may hold (quotes, commas, semicolons, spaces).
func SessionValue(token string) string { return base64.RawURLEncoding.EncodeToString([]byte(token)) }

func tokenOf(value string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(value)
	return string(b), err
}

// secure says whether the page is served over TLS, directly or behind a
// proxy that says so: the cookie is then sent over TLS only.
func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// safeNext keeps a post-sign-in redirect on this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/"
	}
	return next
}

// apiError is an API answer that was not a success.
type apiError struct {
	status int
	api.ErrorBody
}

func (e *apiError) Error() string { return e.Message }

// call makes an in-process API request as u and decodes its JSON answer
// into out.
func (p *Page) call(ctx context.Context, u user, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+u.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	var answer bytes.Buffer
	w := &apiWriter{header: http.Header{}, w: &answer}
	p.API.ServeHTTP(w, req)
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.status >= 300 {
		var e api.Error
		if json.Unmarshal(answer.Bytes(), &e) != nil || e.Error.Message == "" {
			e.Error = api.ErrorBody{Code: "internal", Message: fmt.Sprintf("%s %s answered %d", method, path, w.status)}
		}
		return &apiError{status: w.status, ErrorBody: e.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(answer.Bytes(), out); err != nil {
		return fmt.Errorf("read %s %s: %w", method, path, err)
	}
	return nil
}

// apiWriter takes an in-process API answer: its status and headers,
// and its body written to w (a buffer, or a pipe to follow a stream).
type apiWriter struct {
	header http.Header
	status int
	w      io.Writer
	// gone, when set, closes when the page's own request ends; gin's
	// streams watch it to stop.
	gone chan bool
}

func (a *apiWriter) Header() http.Header { return a.header }
func (a *apiWriter) WriteHeader(status int) {
	if a.status == 0 {
		a.status = status
	}
}
func (a *apiWriter) Write(b []byte) (int, error) {
	a.WriteHeader(http.StatusOK)
	return a.w.Write(b)
}
func (a *apiWriter) Flush() {}

// CloseNotify is what gin's streams watch for the reader leaving.
func (a *apiWriter) CloseNotify() <-chan bool { return a.gone }

// fail shows an API error as a page, with the API's status and message.
func (p *Page) fail(c *gin.Context, u user, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		p.refuse(c, ae.status, ae.Message)
		return
	}
	p.logger().Error("page", "path", c.Request.URL.Path, "error", err)
	p.refuse(c, http.StatusInternalServerError, err.Error())
}

func (p *Page) refuse(c *gin.Context, status int, msg string) {
	p.render(c, status, "error", errorView{Status: status, Message: msg})
	c.Abort()
}

// render writes page name with data, under the page's security headers:
// its own scripts and styles only, no framing, no caching.
func (p *Page) render(c *gin.Context, status int, name string, data any) {
	var buf bytes.Buffer
	if err := p.pages[name].ExecuteTemplate(&buf, "page", data); err != nil {
		p.logger().Error("render page", "page", name, "error", err)
		c.String(http.StatusInternalServerError, "drover could not render this page: %v", err)
		return
	}
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

// asset is an embedded file, named by its digest in the page's links so
// browsers may keep it forever.
type asset struct {
	body   []byte
	typ    string
	digest string
}

func (p *Page) asset(c *gin.Context) {
	a, ok := p.assets[c.Param("file")]
	if !ok {
		c.Status(http.StatusNotFound)
		return
	}
	c.Header("Cache-Control", "public, max-age=31536000, immutable")
	c.Header("ETag", `"`+a.digest+`"`)
	c.Header("X-Content-Type-Options", "nosniff")
	c.Data(http.StatusOK, a.typ, a.body)
}

// load parses the templates and reads the assets.
func (p *Page) load() error {
	p.assets = map[string]asset{}
	entries, err := fs.ReadDir(files, "assets")
	if err != nil {
		return err
	}
	types := map[string]string{".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".png": "image/png"}
	for _, e := range entries {
		b, err := files.ReadFile("assets/" + e.Name())
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ext := e.Name()[strings.LastIndexByte(e.Name(), '.'):]
		p.assets[e.Name()] = asset{body: b, typ: types[ext], digest: hex.EncodeToString(sum[:8])}
	}
	funcs := p.funcs()
	p.pages = map[string]*template.Template{}
	for _, name := range []string{"login", "error", "board", "history", "preview"} {
		t, err := template.New(name).Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/parts.html", "templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("page template %s: %w", name, err)
		}
		p.pages[name] = t
	}
	return nil
}
