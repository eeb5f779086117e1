package defender

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
	"github.com/msspbot/msspbot/integrations/defender/defendertest"
)

func TestThrottledHonoursRetryAfter(t *testing.T) {
	onEachAPI(t, nil, func(t *testing.T, e *env, _ int) {
		e.fake.Put(tenantA, e.api.sample("a1"))
		e.fake.ThrottleNext(2, 7)
		got, err := e.c.Alerts(ctxT(t), tenantA, time.Time{})
		if err != nil || len(got) != 1 {
			t.Fatalf("Alerts after 429s: %v, %d alerts", err, len(got))
		}
		if s := e.sleeps.all(); len(s) != 2 || s[0] != 7*time.Second || s[1] != 7*time.Second {
			t.Errorf("waits = %v, want [7s 7s] from Retry-After", s)
		}
		if n := e.fake.CallCount(); n != 3 {
			t.Errorf("%d calls, want 3", n)
		}
		e.fake.ThrottleNext(10, 1)
		if _, err := e.c.Alerts(ctxT(t), tenantA, time.Time{}); !errors.Is(err, ErrThrottled) || !errors.Is(err, bot.ErrThrottled) {
			t.Errorf("429 forever: %v", err)
		}
	})
}

func TestServerErrorRetriedWithBackoff(t *testing.T) {
	onEachAPI(t, []int{http.StatusInternalServerError, http.StatusServiceUnavailable}, func(t *testing.T, e *env, status int) {
		e.fake.Put(tenantA, e.api.sample("a1"))
		e.fake.FailNext(2, status)
		got, err := e.c.Alerts(ctxT(t), tenantA, time.Time{})
		if err != nil || len(got) != 1 {
			t.Fatalf("Alerts after two %ds: %v", status, err)
		}
		s := e.sleeps.all()
		if len(s) != 2 {
			t.Fatalf("waits = %v, want 2", s)
		}
		// Exponential with jitter: [base/2, base], then [base, 2*base].
		if s[0] < 500*time.Millisecond || s[0] > time.Second || s[1] < time.Second || s[1] > 2*time.Second {
			t.Errorf("backoff waits = %v", s)
		}
	})
}

func TestServerErrorForeverGivesUp(t *testing.T) {
	onEachAPI(t, []int{http.StatusServiceUnavailable, http.StatusInternalServerError}, func(t *testing.T, e *env, status int) {
		e.fake.FailNext(100, status)
		_, err := e.c.Alerts(ctxT(t), tenantA, time.Time{})
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, bot.ErrAuth) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
		if n := e.fake.CallCount(); n != e.cfg.MaxAttempts {
			t.Errorf("%d calls, want MaxAttempts=%d", n, e.cfg.MaxAttempts)
		}
		if !strings.Contains(err.Error(), tenantA) || !strings.Contains(err.Error(), e.api.path) {
			t.Errorf("error %q does not name tenant and path", err)
		}
		var ae *APIError
		if status == http.StatusInternalServerError && (!errors.As(err, &ae) || ae.Code != "InternalServerError") {
			t.Errorf("500 forever: %v, want code InternalServerError", err)
		}
	})
}

func TestUnauthorizedIsAuthError(t *testing.T) {
	for _, api := range apis {
		// cachedEnv is an env whose client holds a token of tenantA.
		cachedEnv := func(t *testing.T) *env {
			e := api.newEnv(t)
			e.idp.Consent(tenantA)
			if _, err := e.c.Alerts(ctxT(t), tenantA, time.Time{}); err != nil {
				t.Fatal(err)
			}
			return e
		}
		t.Run(api.name+"/fresh token refused", func(t *testing.T) {
			e := api.newEnv(t)
			e.idp.Consent(tenantA)
			e.fake.FailNext(1, http.StatusUnauthorized) // a new token refused: not retried
			_, err := e.c.Alerts(ctxT(t), tenantA, time.Time{})
			var ae *APIError
			if !errors.Is(err, bot.ErrAuth) || !errors.As(err, &ae) || ae.Code != api.authCode {
				t.Fatalf("err = %v, want ErrAuth with code %s", err, api.authCode)
			}
			if n := e.fake.CallCount(); n != 1 || len(e.sleeps.all()) != 0 {
				t.Errorf("401 with a new token was retried: %d calls", n)
			}
		})
		t.Run(api.name+"/cached token refused then fresh accepted", func(t *testing.T) {
			e := cachedEnv(t)
			e.fake.FailNext(1, http.StatusForbidden) // e.g. roles not yet in the cached token
			if _, err := e.c.Alerts(ctxT(t), tenantA, time.Time{}); err != nil {
				t.Fatalf("after a 403 on a cached token: %v", err)
			}
			if n := e.idp.TokenRequests(tenantA); n != 2 {
				t.Errorf("token requests = %d, want 2 (one fresh)", n)
			}
		})
		t.Run(api.name+"/cached and fresh refused", func(t *testing.T) {
			e := cachedEnv(t)
			e.fake.FailNext(2, http.StatusUnauthorized)
			_, err := e.c.Alerts(ctxT(t), tenantA, time.Time{})
			var ae *APIError
			if !errors.Is(err, bot.ErrAuth) || !errors.As(err, &ae) || ae.Status != 401 || ae.Code != api.authCode {
				t.Fatalf("err = %v, want a 401 APIError wrapping ErrAuth", err)
			}
		})
		t.Run(api.name+"/cached and fresh forbidden", func(t *testing.T) {
			e := cachedEnv(t)
			e.fake.FailNext(2, http.StatusForbidden)
			if _, err := e.c.Alerts(ctxT(t), tenantA, time.Time{}); !errors.Is(err, bot.ErrAuth) || !strings.Contains(err.Error(), api.noRoles) {
				t.Errorf("403 twice: %v, want ErrAuth naming %s", err, api.noRoles)
			}
		})
		t.Run(api.name+"/consent revoked", func(t *testing.T) {
			e := cachedEnv(t)
			e.idp.Revoke(tenantA)
			if _, err := e.c.Alerts(ctxT(t), tenantA, time.Time{}); !errors.Is(err, bot.ErrAuth) {
				t.Fatalf("after revoke: %v, want ErrAuth", err)
			}
		})
	}
}

// expectTenantIsolation checks that alerts of tenantB, which has not
// consented, are out of reach, and that tenantA's list holds only its own.
func expectTenantIsolation(t *testing.T, e *env) {
	t.Helper()
	e.idp.Consent(tenantA)
	e.fake.Put(tenantA, e.api.sample("a-only"))
	e.fake.Put(tenantB, e.api.sample("b-only"))
	if got, err := e.c.Alerts(ctxT(t), tenantB, time.Time{}); !errors.Is(err, bot.ErrAuth) || got != nil {
		t.Fatalf("tenant B without consent: %v, %d alerts", err, len(got))
	}
	got, err := e.c.Alerts(ctxT(t), tenantA, time.Time{})
	if err != nil || len(got) != 1 || got[0].ID != "a-only" || got[0].TenantID != tenantA {
		t.Fatalf("tenant A: %v %+v", err, got)
	}
}

func TestTenantIsolation(t *testing.T) {
	e := newEnv(t)
	// B has not consented: nothing of B is reachable.
	expectTenantIsolation(t, e)
	// A's token, used directly, lists only A's alerts.
	tok, err := e.c.Tokens().Token(ctxT(t), tenantA, mdeScope)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, e.mde.URL+"/api/alerts", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := e.mde.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "a-only") || strings.Contains(string(body), "b-only") {
		t.Errorf("A's token listed %s", body)
	}
	// A token for the wrong audience is refused.
	wrong, err := e.c.Tokens().Token(ctxT(t), tenantA, "https://graph.microsoft.com/.default")
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+wrong)
	resp2, err := e.mde.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusUnauthorized {
		t.Errorf("graph token on MDE: %d", resp2.StatusCode)
	}
}

func TestTimeoutRetried(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.RequestTimeout = 100 * time.Millisecond })
	e.idp.Consent(tenantA)
	e.mde.Put(tenantA, defendertest.SampleAlert("a1"))
	e.mde.SlowNext(1, 5*time.Second)
	start := time.Now()
	got, err := e.c.Alerts(ctxT(t), tenantA, time.Time{})
	if err != nil || len(got) != 1 {
		t.Fatalf("Alerts after a timeout: %v", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
	if len(e.sleeps.all()) != 1 {
		t.Errorf("waits = %v, want one backoff", e.sleeps.all())
	}
}

func TestDeadlineAborts(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.sleep = sleepCtx; c.BackoffBase = 10 * time.Millisecond })
	e.idp.Consent(tenantA)
	if err := e.c.CheckAccess(ctxT(t), tenantA, false); err != nil {
		t.Fatal(err)
	}
	e.mde.SlowNext(10, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := e.c.Alerts(ctx, tenantA, time.Time{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("aborted after %v", d)
	}

	// A Retry-After beyond the deadline gives up at once.
	e.mde.ClearFaults()
	e.mde.ThrottleNext(1, 120)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	start = time.Now()
	_, err = e.c.Alerts(ctx2, tenantA, time.Time{})
	if !errors.Is(err, ErrThrottled) || time.Since(start) > 2*time.Second {
		t.Fatalf("429 with Retry-After past the deadline: %v after %v", err, time.Since(start))
	}
}

func TestBadJSONNamesTenantAndPath(t *testing.T) {
	onEachAPI(t, nil, func(t *testing.T, e *env, _ int) {
		e.fake.BadJSONNext(1)
		_, err := e.c.Alerts(ctxT(t), tenantA, time.Time{})
		if err == nil || !strings.Contains(err.Error(), tenantA) || !strings.Contains(err.Error(), "GET "+e.api.path) {
			t.Fatalf("err = %v, want tenant and endpoint named", err)
		}
		bodies := []string{`{}`, `{"value": null}`, `{"value": {"id": "x"}}`, `{"value": [{"id": 5}]}`, `{"value": [{"title": "no id"}]}`, `<html>oops</html>`}
		if e.g != nil {
			bodies = append(bodies, `{"value": [], "@odata.nextLink": "::not a url"}`)
		}
		for _, body := range bodies {
			e.fake.Inject(defendertest.Fault{Status: 200, Body: body}, 1)
			if _, err := e.c.Alerts(ctxT(t), tenantA, time.Time{}); err == nil || !strings.Contains(err.Error(), tenantA) {
				t.Errorf("body %s: err = %v", body, err)
			}
		}
	})
}

func TestTokenEndpointOutageRetried(t *testing.T) {
	e := newEnv(t)
	e.idp.Consent(tenantA)
	e.idp.FailNext(1, http.StatusServiceUnavailable)
	if _, err := e.c.Alerts(ctxT(t), tenantA, time.Time{}); err != nil {
		t.Fatalf("Alerts with one token endpoint 503: %v", err)
	}
	if len(e.sleeps.all()) != 1 {
		t.Errorf("waits = %v", e.sleeps.all())
	}
}

func TestNewRejects(t *testing.T) {
	if _, err := New(Config{ClientID: "x", ClientSecret: "y", API: "ews"}); err == nil {
		t.Errorf("unknown api accepted")
	}
	if _, err := New(Config{ClientID: "x", ClientSecret: "y", BaseURL: "http://example.com"}); err == nil {
		t.Errorf("plain http base_url accepted")
	}
	c, err := New(Config{ClientID: "x", ClientSecret: "y", PageSize: 50000})
	if err != nil || c.top != 10000 || c.perMin != 100 || c.perHour != 1500 || c.attempts != 5 {
		t.Errorf("defaults: %v %+v", err, c)
	}
}
