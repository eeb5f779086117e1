// Package handlers is msspbot's HTTP server: health, readiness and
// metrics, the mount point for the chat platforms' and the consent
// callback's handlers, request logging, and the one table from bot error
// codes to HTTP status.
package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Server is the HTTP server. Set the exported fields, mount handlers and
// add readiness checks, then Open; Close shuts it down.
type Server struct {
	Addr    string       // http.listen; ":0" picks a free port
	Logger  *slog.Logger // nil: slog.Default()
	Metrics http.Handler // served at GET /metrics when set

	// Timeouts; zero values get the defaults of NewServer.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	// CheckTimeout bounds each readiness check.
	CheckTimeout time.Duration

	mux    *http.ServeMux
	mu     sync.Mutex
	checks []check
	srv    *http.Server
	ln     net.Listener
	served chan struct{} // closed when Serve returns
}

type check struct {
	name string
	fn   func(context.Context) error
}

// NewServer returns a server with /healthz and /readyz mounted.
func NewServer() *Server {
	s := &Server{
		Addr:              ":8080",
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// Above the 3 s chat platforms allow for an answer and the
		// metrics handler's own 10 s limit.
		WriteTimeout: 30 * time.Second,
		IdleTimeout:  2 * time.Minute,
		CheckTimeout: 2 * time.Second,
		mux:          http.NewServeMux(),
	}
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	return s
}

// Handle mounts h on pattern ("POST /slack/commands", "GET /consent/callback").
// It panics on a conflicting pattern, as http.ServeMux does.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// HandleFunc mounts f on pattern.
func (s *Server) HandleFunc(pattern string, f http.HandlerFunc) { s.mux.Handle(pattern, f) }

// AddCheck registers a readiness check: /readyz answers 200 only while
// every check returns nil. name is shown to the prober; the error is only
// logged.
func (s *Server) AddCheck(name string, fn func(ctx context.Context) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks = append(s.checks, check{name: name, fn: fn})
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// Open listens on Addr and serves in the background.
func (s *Server) Open() error {
	if s.srv != nil {
		return errors.New("handlers: server already open")
	}
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("handlers: listen on %s: %w", s.Addr, err)
	}
	if s.Metrics != nil {
		s.mux.Handle("GET /metrics", s.Metrics)
	}
	log := s.logger()
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.ReadHeaderTimeout,
		ReadTimeout:       s.ReadTimeout,
		WriteTimeout:      s.WriteTimeout,
		IdleTimeout:       s.IdleTimeout,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	s.served = make(chan struct{})
	go func() {
		defer close(s.served)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http: serve", "error", err)
		}
	}()
	log.Info("http: listening", "addr", ln.Addr().String())
	return nil
}

// Close stops accepting connections and waits for in-flight requests
// until ctx is done; then it closes the remaining connections and returns
// ctx's error.
func (s *Server) Close(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
		err = fmt.Errorf("handlers: shutdown: %w", err)
	}
	<-s.served
	return err
}

// URL is the server's base URL once open, e.g. "http://127.0.0.1:41234".
func (s *Server) URL() string {
	if s.ln == nil {
		return ""
	}
	host, port, _ := net.SplitHostPort(s.ln.Addr().String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// ServeHTTP serves the mux with request logging and panic recovery; tests
// may call it without a listener.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	log := s.logger()
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			log.Error("http: handler panic", "method", r.Method, "path", logPath(r), "panic", fmt.Sprint(p))
			if !rec.wrote {
				http.Error(rec, "internal error", http.StatusInternalServerError)
			}
		}
		s.logRequest(log, r, rec, time.Since(start))
	}()
	s.mux.ServeHTTP(rec, r)
}

// logRequest logs one request. The query string is never logged: the
// consent callback's state is a secret.
func (s *Server) logRequest(log *slog.Logger, r *http.Request, rec *recorder, d time.Duration) {
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	level := slog.LevelInfo
	switch {
	case status >= 500:
		level = slog.LevelWarn
	case status < 400 && (r.Pattern == "GET /healthz" || r.Pattern == "GET /readyz" || r.Pattern == "GET /metrics"):
		level = slog.LevelDebug // probes and scrapes would drown the log
	}
	log.Log(r.Context(), level, "http: request",
		"method", r.Method,
		"path", logPath(r),
		"route", r.Pattern,
		"status", status,
		"bytes", rec.bytes,
		"duration", d,
		"remote", r.RemoteAddr,
	)
}

// logPath is the request path, capped: scanners send long junk.
func logPath(r *http.Request) string {
	p := r.URL.Path
	if len(p) > 200 {
		p = p[:200] + "…"
	}
	return p
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintln(w, "ok")
}

// readyz runs every check at once, each bounded by CheckTimeout.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	checks := append([]check(nil), s.checks...)
	s.mu.Unlock()

	errs := make([]error, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(r.Context(), s.CheckTimeout)
			defer cancel()
			errs[i] = runCheck(ctx, c.fn)
		})
	}
	wg.Wait()

	var failing []string
	for i, err := range errs {
		if err != nil {
			failing = append(failing, checks[i].name)
			s.logger().Warn("http: readiness check failed", "check", checks[i].name, "error", err)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if len(failing) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %s\n", strings.Join(failing, ", "))
		return
	}
	fmt.Fprintln(w, "ok")
}

// runCheck returns when fn does or ctx ends, so a check that ignores its
// context cannot hold the probe; a panicking check counts as failing.
func runCheck(ctx context.Context, fn func(context.Context) error) error {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("check panicked: %v", p)
			}
		}()
		done <- fn(ctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// recorder notes the status and size of a response for the log.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int
	wrote  bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.status, r.wrote = http.StatusOK, true
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += n
	return n, err
}

// Flush lets streaming handlers flush through the recorder.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		if !r.wrote {
			r.status, r.wrote = http.StatusOK, true
		}
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
