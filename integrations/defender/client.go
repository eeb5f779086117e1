package defender

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/msspbot/msspbot/bot"
)

// Config configures a Client; the fields follow the azure.* and
// defender.* configuration keys.
type Config struct {
	Cloud          string // azure.cloud; "" = public
	ClientID       string
	ClientSecret   string
	CertificatePEM []byte
	AuthorityHost  string // azure.authority_host
	API            string // defender.api: "mde" (default) or "graph"
	BaseURL        string // defender.base_url
	WriteBack      bool   // defender.write_back; false: Apply sends nothing
	// HTTPClient is used for Entra and the API; nil: a client with a
	// connection pool sized for many concurrent tenants.
	HTTPClient *http.Client
	Logger     *slog.Logger

	// Request budget per tenant, shared by fetch and write-back. 0: the
	// API's default (MDE: 100 calls/min and 1,500/h; Graph: 150/min and no
	// hourly limit, since Graph documents none); negative: no limit.
	PerMinute int
	PerHour   int
	// MaxAttempts bounds tries per request on 429, 5xx and timeouts
	// (default 5).
	MaxAttempts int
	// BackoffBase is the first backoff after a 5xx or timeout; it doubles
	// per attempt up to 30s, with jitter (default 1s).
	BackoffBase time.Duration
	// RequestTimeout bounds one HTTP attempt (default 30s).
	RequestTimeout time.Duration
	// PageSize is the $top of list calls (default and maximum: MDE 10,000,
	// Graph 1,000).
	PageSize int

	// Test hooks.
	sleep func(ctx context.Context, d time.Duration) error
}

// Client talks to one Defender alert API for all tenants. It implements
// bot.AlertSource, bot.WriteBackTarget and bot.AccessChecker and is safe for
// concurrent use; it starts no goroutines of its own.
type Client struct {
	api       string // APIMDE or APIGraph
	tokens    *Tokens
	ep        Endpoints
	http      *http.Client
	log       *slog.Logger
	writeBack bool
	perMin    int
	perHour   int
	attempts  int
	backoff   time.Duration
	timeout   time.Duration
	top       int
	sleep     func(ctx context.Context, d time.Duration) error
	red       redactor

	mu      sync.Mutex
	budgets map[string]*budget
}

const (
	mdeMaxTop       = 10000
	graphMaxTop     = 1000
	maxBackoff      = 30 * time.Second
	maxRetryAfter   = 5 * time.Minute
	maxResponseBody = 512 << 20
)

// New returns a Client. It makes no network call.
func New(cfg Config) (*Client, error) {
	api := strings.ToLower(cfg.API)
	if api == "" {
		api = APIMDE
	}
	if api != APIMDE && api != APIGraph {
		return nil, fmt.Errorf("defender: unknown defender.api %q (want mde or graph)", cfg.API)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		// Concurrent tenants share one API host: keep their connections.
		tr.MaxIdleConnsPerHost = 64
		hc = &http.Client{Transport: tr}
	}
	tokens, err := NewTokens(TokensConfig{
		ClientID:       cfg.ClientID,
		ClientSecret:   cfg.ClientSecret,
		CertificatePEM: cfg.CertificatePEM,
		Cloud:          cfg.Cloud,
		AuthorityHost:  cfg.AuthorityHost,
		API:            api,
		BaseURL:        cfg.BaseURL,
		HTTPClient:     hc,
		Logger:         cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	c := &Client{
		api:       api,
		tokens:    tokens,
		ep:        tokens.Endpoints(),
		http:      hc,
		log:       cfg.Logger,
		writeBack: cfg.WriteBack,
		perMin:    cfg.PerMinute,
		perHour:   cfg.PerHour,
		attempts:  cfg.MaxAttempts,
		backoff:   cfg.BackoffBase,
		timeout:   cfg.RequestTimeout,
		top:       cfg.PageSize,
		sleep:     cfg.sleep,
		red:       tokens.red,
		budgets:   map[string]*budget{},
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	maxTop := mdeMaxTop
	switch api {
	case APIGraph:
		maxTop = graphMaxTop
		if c.perMin == 0 {
			c.perMin = 150
		}
		if c.perHour == 0 {
			c.perHour = -1
		}
	default:
		if c.perMin == 0 {
			c.perMin = 100
		}
		if c.perHour == 0 {
			c.perHour = 1500
		}
	}
	if c.attempts <= 0 {
		c.attempts = 5
	}
	if c.backoff <= 0 {
		c.backoff = time.Second
	}
	if c.timeout <= 0 {
		c.timeout = 30 * time.Second
	}
	if c.top <= 0 || c.top > maxTop {
		c.top = maxTop
	}
	if c.sleep == nil {
		c.sleep = sleepCtx
	}
	return c, nil
}

// Tokens returns the token source the client uses.
func (c *Client) Tokens() *Tokens { return c.tokens }

// Endpoints returns the resolved hosts.
func (c *Client) Endpoints() Endpoints { return c.ep }

// CheckAccess implements bot.AccessChecker.
func (c *Client) CheckAccess(ctx context.Context, tenantID string, fresh bool) error {
	return c.tokens.CheckAccess(ctx, tenantID, fresh)
}

// ConsentURL is the admin-consent URL for tenantID (DESIGN §3).
func (c *Client) ConsentURL(tenantID, state, redirectURI string) string {
	return c.tokens.ConsentURL(tenantID, state, redirectURI)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// budget is one tenant's request budget. Each limiter allows a tenth of
// its window's calls at once and refills the rest over the window, so no
// window ever holds more than the documented number of calls.
type budget struct {
	minute, hour *rate.Limiter
}

func newLimiter(n int, window time.Duration) *rate.Limiter {
	if n < 0 {
		return rate.NewLimiter(rate.Inf, 0)
	}
	burst := max(1, n/10)
	return rate.NewLimiter(rate.Limit(float64(n-burst)/window.Seconds()), burst)
}

func (b *budget) wait(ctx context.Context) error {
	if err := b.minute.Wait(ctx); err != nil {
		return err
	}
	return b.hour.Wait(ctx)
}

func (c *Client) budget(tenant string) *budget {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.budgets[tenant]
	if !ok {
		b = &budget{minute: newLimiter(c.perMin, time.Minute), hour: newLimiter(c.perHour, time.Hour)}
		c.budgets[tenant] = b
	}
	return b
}

// ErrThrottled marks a request given up because Defender kept answering
// 429 (or asked to wait past the caller's deadline) or the tenant's
// request budget could not be met in time.
var ErrThrottled = fmt.Errorf("defender: %w", bot.ErrThrottled)

// ErrUnavailable marks a request given up after repeated 5xx answers,
// timeouts or network errors.
var ErrUnavailable = errors.New("service unavailable")

// APIError is an unsuccessful answer of the Defender API. 401/403 wrap
// bot.ErrAuth, 429 ErrThrottled, 5xx ErrUnavailable.
type APIError struct {
	Tenant  string
	Method  string
	Path    string
	Status  int
	Code    string // the API's error code, e.g. "Unauthorized"
	Message string // the API's message, redacted and shortened
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("defender: %s %s for tenant %s: http %d", e.Method, e.Path, e.Tenant, e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

func (e *APIError) Unwrap() error {
	switch {
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		return bot.ErrAuth
	case e.Status == http.StatusTooManyRequests:
		return ErrThrottled
	case e.Status >= 500:
		return ErrUnavailable
	}
	return nil
}

// request is one API call for a tenant.
type request struct {
	tenant string
	method string
	path   string // escaped path, e.g. /api/alerts (also names the call in errors)
	query  string // encoded query without '?'
	body   []byte
	// url, when set, is sent as given instead of base+path+query: a
	// Graph @odata.nextLink, already checked to be on the API host.
	url    string
	header http.Header // extra request headers
}

// attemptError is a failed attempt that may be retried.
type attemptError struct {
	err   error
	retry bool
	wait  time.Duration // 429: the server's Retry-After
	auth  bool
}

// do sends r with retries and returns the body of a 2xx answer. Every
// attempt waits for the tenant's budget and gets a token (cached by MSAL).
// A 401/403 with a cached token is tried once more with a fresh one: right
// after a grant, or after a revocation, the cached token is the problem.
func (c *Client) do(ctx context.Context, r request) ([]byte, error) {
	b := c.budget(r.tenant)
	triedFresh, wantFresh := false, false
	var last error
	for attempt := 1; ; attempt++ {
		if err := b.wait(ctx); err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("defender: %s %s for tenant %s: %w", r.method, r.path, r.tenant, ctx.Err())
			}
			return nil, fmt.Errorf("defender: %s %s for tenant %s: request budget: %w: %w", r.method, r.path, r.tenant, ErrThrottled, err)
		}
		tok, cached, err := c.tokens.token(ctx, r.tenant, c.ep.Scope(), wantFresh)
		if err == nil {
			wantFresh = false
		}
		var ae *attemptError
		switch {
		case err != nil && (errors.Is(err, bot.ErrAuth) || ctx.Err() != nil):
			return nil, err
		case err != nil:
			ae = &attemptError{err: err, retry: true}
		default:
			var body []byte
			body, ae = c.attempt(ctx, r, tok)
			if ae == nil {
				return body, nil
			}
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("defender: %s %s for tenant %s: %w", r.method, r.path, r.tenant, ctx.Err())
		}
		last = ae.err
		if ae.auth && cached && !triedFresh {
			c.log.Debug("defender: retrying with a fresh token", "tenant", r.tenant, "path", r.path)
			triedFresh, wantFresh = true, true
			attempt = 0 // the fresh try is not a retry
			continue
		}
		if !ae.retry {
			return nil, ae.err
		}
		if attempt >= c.attempts {
			return nil, fmt.Errorf("defender: giving up after %d attempts: %w", attempt, last)
		}
		wait := ae.wait
		if wait == 0 {
			wait = c.backoffFor(attempt)
		}
		if wait > maxRetryAfter {
			return nil, fmt.Errorf("defender: retry after %s is too long: %w", wait, last)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return nil, fmt.Errorf("defender: retry after %s would pass the deadline: %w", wait.Round(time.Millisecond), last)
		}
		c.log.Debug("defender: retrying", "tenant", r.tenant, "method", r.method, "path", r.path,
			"attempt", attempt, "wait", wait, "err", last)
		if err := c.sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("defender: %s %s for tenant %s: %w", r.method, r.path, r.tenant, err)
		}
	}
}

// backoffFor returns the jittered delay before retry n (n >= 1).
func (c *Client) backoffFor(n int) time.Duration {
	d := c.backoff << min(n-1, 16)
	if d <= 0 || d > maxBackoff {
		d = maxBackoff
	}
	half := d / 2
	return half + rand.N(half+1)
}

// attempt sends one HTTP request.
func (c *Client) attempt(ctx context.Context, r request, token string) ([]byte, *attemptError) {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	u := c.ep.API + r.path
	if r.query != "" {
		u += "?" + r.query
	}
	if r.url != "" {
		u = r.url
	}
	req, err := http.NewRequestWithContext(actx, r.method, u, body)
	if err != nil {
		return nil, &attemptError{err: fmt.Errorf("defender: %s %s for tenant %s: %w", r.method, r.path, r.tenant, err)}
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// url.Error names the URL (no secret in it); the token is only in a header.
		return nil, &attemptError{
			err:   fmt.Errorf("defender: %s %s for tenant %s: %w: %w", r.method, r.path, r.tenant, ErrUnavailable, c.red.wrap(err, token)),
			retry: true,
		}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody+1))
	if err == nil && len(data) > maxResponseBody {
		err = errors.New("response too large")
	}
	if err != nil {
		return nil, &attemptError{
			err:   fmt.Errorf("defender: %s %s for tenant %s: read body: %w: %w", r.method, r.path, r.tenant, ErrUnavailable, c.red.wrap(err, token)),
			retry: true,
		}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return data, nil
	}
	ae := &APIError{Tenant: r.tenant, Method: r.method, Path: r.path, Status: resp.StatusCode}
	var eb struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &eb) == nil {
		ae.Code = c.red.clean(eb.Error.Code, 64, token)
		ae.Message = c.red.clean(eb.Error.Message, 200, token)
	}
	out := &attemptError{err: ae}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		out.auth = true
	case resp.StatusCode == http.StatusTooManyRequests:
		out.retry = true
		out.wait = retryAfter(resp.Header.Get("Retry-After"))
		if out.wait == 0 {
			out.wait = c.backoffFor(1)
		}
	case resp.StatusCode >= 500:
		out.retry = true
	}
	return nil, out
}

// retryAfter parses Retry-After as seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}
