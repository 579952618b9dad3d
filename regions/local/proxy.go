package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"
)

// proxy is an app's stable front door: it listens on one port for the app's
// whole life and forwards to whichever release's web processes are current,
// round-robin, so a deploy swaps releases without changing the URL.
type proxy struct {
	port    int
	url     string
	srv     *http.Server
	rp      *httputil.ReverseProxy
	targets atomic.Pointer[[]*url.URL]
	next    atomic.Uint64
}

type targetKey struct{}

// startProxy listens on port, or on a free port if port is 0 or taken.
func (r *Region) startProxy(app string, port int) (*proxy, error) {
	log := r.log.With("app", app)
	var ln net.Listener
	var err error
	if port > 0 {
		ln, err = net.Listen("tcp", net.JoinHostPort(r.host, strconv.Itoa(port)))
		if err != nil {
			log.Warn("app's port is taken; its URL changes", "port", port, "error", err)
		}
	}
	if ln == nil {
		if ln, err = net.Listen("tcp", net.JoinHostPort(r.host, "0")); err != nil {
			return nil, fmt.Errorf("listen for app %s: %w", app, err)
		}
	}
	p := &proxy{port: ln.Addr().(*net.TCPAddr).Port}
	p.url = "http://" + net.JoinHostPort(r.dialHost, strconv.Itoa(p.port))
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(pr.In.Context().Value(targetKey{}).(*url.URL))
			pr.SetXForwarded()
			// Apps see the host the client asked for, as behind Heroku's router.
			pr.Out.Host = pr.In.Host
		},
		Transport: r.transport,
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				return // the client went away
			}
			log.Debug("proxy", "error", err)
			http.Error(w, "drover: app "+app+" did not answer: "+err.Error(), http.StatusBadGateway)
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	p.srv = &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go p.srv.Serve(ln)
	log.Info("proxy listening", "url", p.url)
	return p, nil
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	ts := p.targets.Load()
	if ts == nil || len(*ts) == 0 {
		http.Error(w, "drover: no web process is running", http.StatusServiceUnavailable)
		return
	}
	t := (*ts)[p.next.Add(1)%uint64(len(*ts))]
	p.rp.ServeHTTP(w, req.WithContext(context.WithValue(req.Context(), targetKey{}, t)))
}

// setTargets points the proxy at web processes listening on ports of host.
func (p *proxy) setTargets(host string, ports []int) {
	ts := make([]*url.URL, len(ports))
	for i, port := range ports {
		ts[i] = &url.URL{Scheme: "http", Host: net.JoinHostPort(host, strconv.Itoa(port))}
	}
	p.targets.Store(&ts)
}

// close stops accepting at once, so the port refuses connections when it
// returns, and gives requests in flight a moment to finish.
func (p *proxy) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := p.srv.Shutdown(ctx); err != nil {
		p.srv.Close()
	}
}
