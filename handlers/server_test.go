package handlers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
	"github.com/msspbot/msspbot/metrics"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// mustOpen starts a server on :0 and closes it at the end of the test.
func mustOpen(t *testing.T, setup func(*Server)) (*Server, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	s := NewServer()
	s.Addr = "127.0.0.1:0"
	s.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if setup != nil {
		setup(s)
	}
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, logs
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestHealthz(t *testing.T) {
	s, _ := mustOpen(t, nil)
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") {
		t.Fatalf("URL = %q", s.URL())
	}
	code, body := get(t, s.URL()+"/healthz")
	if code != 200 || body != "ok\n" {
		t.Fatalf("GET /healthz = %d %q", code, body)
	}
	res, err := http.Post(s.URL()+"/healthz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /healthz = %d, want 405", res.StatusCode)
	}
}

func TestReadyz(t *testing.T) {
	var mu sync.Mutex
	dbErr := error(nil)
	s, logs := mustOpen(t, func(s *Server) {
		s.CheckTimeout = 200 * time.Millisecond
		s.AddCheck("database", func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			return dbErr
		})
		s.AddCheck("scheduler", func(context.Context) error { return nil })
	})
	if code, body := get(t, s.URL()+"/readyz"); code != 200 || body != "ok\n" {
		t.Fatalf("ready: %d %q", code, body)
	}

	mu.Lock()
	dbErr = errors.New("database is locked at /secret/path")
	mu.Unlock()
	code, body := get(t, s.URL()+"/readyz")
	if code != 503 || body != "not ready: database\n" {
		t.Fatalf("one failing: %d %q", code, body)
	}
	if !strings.Contains(logs.String(), "database is locked") {
		t.Error("the failing check's error is not logged")
	}

	// A check that ignores its context and one that panics: both failing,
	// and the probe still answers within the check timeout.
	release := make(chan struct{})
	defer close(release)
	s.AddCheck("slack", func(context.Context) error { <-release; return nil })
	s.AddCheck("discord", func(context.Context) error { panic("boom") })
	start := time.Now()
	code, body = get(t, s.URL()+"/readyz")
	if code != 503 || body != "not ready: database, slack, discord\n" {
		t.Fatalf("several failing: %d %q", code, body)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("readyz took %v with a stuck check", d)
	}
}

func TestReadyzWithoutChecks(t *testing.T) {
	rec := httptest.NewRecorder()
	NewServer().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != 200 {
		t.Fatalf("readyz without checks = %d", rec.Code)
	}
}

func TestMetrics(t *testing.T) {
	m := metrics.New(nil)
	m.CommandDone("slack", "6f1c3e2a-0b7d-4c1e-9a55-1d2b3c4d5e6f", time.Millisecond)
	m.FetchFailed("auth")
	s, _ := mustOpen(t, func(s *Server) { s.Metrics = m.Handler() })
	code, body := get(t, s.URL()+"/metrics")
	if code != 200 {
		t.Fatalf("GET /metrics = %d", code)
	}
	for _, want := range []string{"msspbot_fetch_passes_total", "msspbot_command_duration_seconds", "msspbot_fetch_failures_total", "go_goroutines"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, "tenant=") || regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-`).MatchString(body) {
		t.Error("/metrics exposes a tenant")
	}
}

func TestNoMetricsHandler(t *testing.T) {
	s, _ := mustOpen(t, nil)
	if code, _ := get(t, s.URL()+"/metrics"); code != 404 {
		t.Fatalf("/metrics without handler = %d, want 404", code)
	}
}

func TestMountedHandlersAndLogging(t *testing.T) {
	s, logs := mustOpen(t, func(s *Server) {
		s.HandleFunc("GET /consent/callback", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("state") == "" {
				http.Error(w, "no state", 400)
				return
			}
			fmt.Fprint(w, "granted")
		})
		s.Handle("POST /slack/commands", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusAccepted)
		}))
	})
	code, body := get(t, s.URL()+"/consent/callback?admin_consent=True&tenant=x&state=SECRETSTATE123")
	if code != 200 || body != "granted" {
		t.Fatalf("callback = %d %q", code, body)
	}
	if code, _ := get(t, s.URL()+"/slack/commands"); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET on a POST route = %d", code)
	}
	res, err := http.Post(s.URL()+"/slack/commands", "application/x-www-form-urlencoded", strings.NewReader("text=help"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /slack/commands = %d", res.StatusCode)
	}

	get(t, s.URL()+"/healthz")

	out := logs.String()
	if strings.Contains(out, "SECRETSTATE") || strings.Contains(out, "state=") {
		t.Fatalf("query string logged:\n%s", out)
	}
	for _, want := range []string{
		`level=INFO msg="http: request" method=GET path=/consent/callback route="GET /consent/callback" status=200 bytes=7`,
		`path=/slack/commands route="POST /slack/commands" status=202`,
		`level=DEBUG msg="http: request" method=GET path=/healthz`, // probes stay out of the info log
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestPanicRecovered(t *testing.T) {
	s, logs := mustOpen(t, func(s *Server) {
		s.HandleFunc("GET /boom", func(http.ResponseWriter, *http.Request) { panic("kaboom") })
	})
	if code, _ := get(t, s.URL()+"/boom"); code != 500 {
		t.Fatalf("panicking handler = %d, want 500", code)
	}
	if code, _ := get(t, s.URL()+"/healthz"); code != 200 {
		t.Fatal("server down after a panic")
	}
	if !strings.Contains(logs.String(), "kaboom") {
		t.Error("panic not logged")
	}
}

func TestCloseWaitsForInFlight(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	s := NewServer()
	s.Addr = "127.0.0.1:0"
	s.Logger = slog.New(slog.DiscardHandler)
	s.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		fmt.Fprint(w, "done")
	})
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	url := s.URL()

	type result struct {
		code int
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		res, err := http.Get(url + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		got <- result{code: res.StatusCode, body: string(b)}
	}()
	<-entered

	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		closed <- s.Close(ctx)
	}()
	select {
	case err := <-closed:
		t.Fatalf("Close returned before the request finished: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	// No new connections once closing.
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "http://"), time.Second); err == nil {
		c.Close()
		t.Error("new connection accepted while closing")
	}
	close(release)
	if r := <-got; r.err != nil || r.code != 200 || r.body != "done" {
		t.Fatalf("in-flight request: %+v", r)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestCloseDeadline(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	s := NewServer()
	s.Addr = "127.0.0.1:0"
	s.Logger = slog.New(slog.DiscardHandler)
	s.HandleFunc("GET /stuck", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
	})
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	go func() {
		if res, err := http.Get(s.URL() + "/stuck"); err == nil {
			res.Body.Close()
		}
	}()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v past its deadline", d)
	}
}

func TestReadHeaderTimeout(t *testing.T) {
	s, _ := mustOpen(t, func(s *Server) { s.ReadHeaderTimeout = 100 * time.Millisecond })
	c, err := net.Dial("tcp", strings.TrimPrefix(s.URL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n") // never finishes the headers
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	b, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("server kept a slow client's connection open")
	}
	if strings.Contains(string(b), "200 OK") {
		t.Fatalf("answered an incomplete request: %q", b)
	}
}

func TestOpenTwiceAndBadAddr(t *testing.T) {
	s, _ := mustOpen(t, nil)
	if err := s.Open(); err == nil {
		t.Error("second Open accepted")
	}
	bad := NewServer()
	bad.Addr = "127.0.0.1:notaport"
	if err := bad.Open(); err == nil {
		t.Error("bad address accepted")
	}
	if err := bad.Close(context.Background()); err != nil {
		t.Errorf("Close of an unopened server: %v", err)
	}
}

func TestStatus(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, 200},
		{bot.Errorf(bot.EINVALID, "bad"), 400},
		{bot.Errorf(bot.ENOTFOUND, "no"), 404},
		{bot.Errorf(bot.EFORBIDDEN, "no"), 403},
		{bot.Errorf(bot.ECONFLICT, "no"), 409},
		{bot.Errorf(bot.EUNAVAILABLE, "later"), 503},
		{bot.Errorf(bot.EINTERNAL, "oops"), 500},
		{fmt.Errorf("consent: %w", bot.Errorf(bot.ENOTFOUND, "unknown state")), 404},
		{errors.New("sql: connection refused"), 500},
	}
	for _, tt := range tests {
		if got := Status(tt.err); got != tt.want {
			t.Errorf("Status(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestError(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	rec := httptest.NewRecorder()
	Error(rec, httptest.NewRequest("GET", "/consent/callback?state=SECRET", nil), log,
		fmt.Errorf("consent: %w", bot.Errorf(bot.EINVALID, "This link has expired.")))
	if rec.Code != 400 || rec.Body.String() != "This link has expired.\n" || rec.Header().Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("coded error: %d %q %v", rec.Code, rec.Body.String(), rec.Header())
	}

	rec = httptest.NewRecorder()
	Error(rec, httptest.NewRequest("GET", "/consent/callback?state=SECRET", nil), log, errors.New("db: disk I/O error"))
	if rec.Code != 500 || strings.Contains(rec.Body.String(), "disk") {
		t.Fatalf("internal error shown to the user: %d %q", rec.Code, rec.Body.String())
	}
	if !strings.Contains(logs.String(), "disk I/O error") || strings.Contains(logs.String(), "SECRET") {
		t.Fatalf("log: %s", logs.String())
	}
}
