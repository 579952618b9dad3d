package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover/drover/pipelines"
)

// tcpProxy forwards one loopback port to a target, and can be cut (every
// connection dropped, the port refusing) and restored on the same port:
// the database or Temporal going away and coming back, as drover sees it.
type tcpProxy struct {
	t      *testing.T
	addr   string
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns []net.Conn
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	p := &tcpProxy{t: t, target: target, addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	p.restore()
	t.Cleanup(p.cut)
	return p
}

func (p *tcpProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("proxy listen %s: %v", p.addr, err)
	}
	p.ln = ln
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
}

func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestE2EDatabaseAndTemporalGoAway: drover server --with-worker on
// PostgreSQL and a Temporal server in its own process, each behind a port
// the test can cut. While either is away /readyz fails naming it and a
// push webhook is answered 503, so GitHub redelivers it; nothing is half
// written. When they come back drover carries on without a restart: the
// redelivered push deploys, once.
func TestE2EDatabaseAndTemporalGoAway(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts Temporal and drover on PostgreSQL; skipped by -short")
	}
	e := needProdEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	temporalAddr := startTemporal(ctx, t)
	tp := newTCPProxy(t, temporalAddr)
	dbURL, _ := neturl.Parse(e.freshDatabase(t))
	pp := newTCPProxy(t, dbURL.Host)
	dbURL.Host = pp.addr

	repo := newGitRepo(t)
	config := filepath.Join(t.TempDir(), "drover.yaml")
	os.WriteFile(config, []byte(`regions:
  local-a: { driver: local }
pipelines:
  hello:
    repo: octo-org/hello
    source: file://`+repo.dir+`
    stages:
      staging: { app: hello-staging, branch: main, regions: [local-a] }
`), 0o644)
	env := map[string]string{
		"DATABASE_URL": dbURL.String(), "TEMPORAL_ADDRESS": tp.addr,
		"DROVER_CONFIG_KEY": testConfigKey, "DROVER_WEBHOOK_SECRET": "faults-secret", "DROVER_ADMIN_TOKEN": "faults-token",
	}
	n := &Node{Logger: slog.New(slog.DiscardHandler), Options: NodeOptions{Mode: modeServer, WithWorker: true, Config: config,
		Data: t.TempDir(), Listen: "127.0.0.1:0", Getenv: func(k string) string { return env[k] }}}
	if testing.Verbose() {
		n.Logger = newLogger(os.Stderr, "warn")
	}
	if err := n.Start(ctx); err != nil {
		n.Close()
		t.Fatal(err)
	}
	defer n.Close()
	s := &stack{t: t, base: "http://" + n.HTTPAddr, token: "faults-token", secret: "faults-secret", config: config}
	waitReady(ctx, t, s.base)
	readyz := func() (int, string) {
		resp, err := http.Get(s.base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	for i, away := range []struct {
		name  string
		proxy *tcpProxy
	}{{"database", pp}, {"temporal", tp}} {
		t.Run(away.name+" away", func(t *testing.T) {
			s.t = t
			commit := repo.commit(fmt.Sprintf("release %d", i+1), "web: bin/web\n")
			delivery := "faults-" + away.name
			away.proxy.cut()
			eventually(ctx, t, "readyz to fail on "+away.name, func() bool {
				code, body := readyz()
				return code == http.StatusServiceUnavailable && strings.Contains(body, `"`+away.name+`"`)
			})
			code, body := s.push(ctx, delivery, pushPayload(t, repo.dir, commit))
			if code != http.StatusServiceUnavailable {
				t.Fatalf("push with the %s away: %d %s; want 503 so GitHub redelivers it", away.name, code, body)
			}
			away.proxy.restore()
			waitReady(ctx, t, s.base)
			// GitHub's redelivery has the same delivery ID.
			eventually(ctx, t, "the redelivered push to be accepted", func() bool {
				code, _ := s.push(ctx, delivery, pushPayload(t, repo.dir, commit))
				return code == http.StatusAccepted
			})
			rel := s.waitRelease(ctx, "hello-staging", i+1)
			if rel.Status != pipelines.ReleaseSucceeded || rel.Commit != commit {
				t.Fatalf("v%d = %s %s (%s)", i+1, rel.Status, rel.Commit, rel.Reason)
			}
			if rs := s.releases(ctx, "hello-staging"); len(rs) != i+1 {
				t.Fatalf("%d releases after the %s came back, want %d", len(rs), away.name, i+1)
			}
		})
		if t.Failed() {
			return
		}
	}
	s.t = t
	s.answersEverywhere(ctx, "hello-staging", 1, "release 2 from hello-staging v2")
}
