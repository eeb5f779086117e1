package defender

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"

	"github.com/msspbot/msspbot/bot"
	"github.com/msspbot/msspbot/integrations/defender/defendertest"
)

// TestSecretsNeverLeak plants a distinctive client secret, drives every
// error path, and checks that no error text and no log line carries the
// secret, an access token or private-key material.
func TestSecretsNeverLeak(t *testing.T) {
	const planted = "PLANTED-s3cr3t-Zq9xV7kW"
	e := leakEnv(t, newEnv, planted)
	ctx := ctxT(t)
	errs := &errLog{t: t}
	record := errs.record
	id := e.mde.Put(tenantA, defendertest.SampleAlert("leak-1"))
	if _, err := e.c.Alerts(ctx, tenantA, time.Time{}); err != nil {
		t.Fatal(err)
	}
	tok, err := e.c.Tokens().Token(ctx, tenantA, mdeScope)
	if err != nil {
		t.Fatal(err)
	}
	seenTokens := []string{tok}

	// Token refused (no consent), and a fresh-token refusal.
	_, err = e.c.Alerts(ctx, tenantB, time.Time{})
	record(err)
	record(e.c.CheckAccess(ctx, tenantB, true))
	// API answers.
	provokeAPIFaults(ctx, e, errs)
	// A server that echoes what it got.
	tok, err = e.c.Tokens().Token(ctx, tenantA, mdeScope)
	if err != nil {
		t.Fatal(err)
	}
	seenTokens = append(seenTokens, tok)
	echo := fmt.Sprintf(`{"error":{"code":"BadRequest","message":"token %s with secret %s refused"}}`, tok, planted)
	e.mde.Inject(defendertest.Fault{Status: http.StatusBadRequest, Body: echo}, 2)
	_, err = e.c.Alerts(ctx, tenantA, time.Time{})
	record(err)
	record(e.c.Apply(ctx, bot.WriteBack{TenantID: tenantA, AlertID: id, Kind: bot.WriteBackReopen}))
	// Timeouts and a deadline.
	provokeTimeouts(ctx, e, errs)
	// Write-back failures.
	e.mde.FailNext(2, http.StatusForbidden)
	record(e.c.Apply(ctx, bot.WriteBack{TenantID: tenantA, AlertID: id, Kind: bot.WriteBackAck, Actor: "a@b"}))
	record(e.c.Apply(ctx, bot.WriteBack{TenantID: tenantA, AlertID: "missing", Kind: bot.WriteBackReopen}))
	_, err = e.c.GetAlert(ctx, tenantA, "missing")
	record(err)
	// Token endpoint outage.
	e.idp.FailNext(1, http.StatusInternalServerError)
	record(e.c.CheckAccess(ctx, tenantA, true))
	// Consent revoked: the cached token is refused, then the fresh one.
	e.idp.Revoke(tenantA)
	_, err = e.c.Alerts(ctx, tenantA, time.Time{})
	record(err)
	// Unreachable API.
	dead := provokeDeadAPI(ctx, t, newEnv, planted, errs)

	// A wrong secret, and a certificate the IdP does not know.
	const wrong = "PLANTED-wrong-secret-Kp3m"
	wrongTk := newTokens(t, e.idp, func(c *TokensConfig) { c.ClientSecret = wrong; c.Logger = e.cfg.Logger })
	e.idp.Consent(tenantA)
	_, err = wrongTk.Token(ctx, tenantA, mdeScope)
	record(err)
	bundle, _ := selfSigned(t, "PKCS8")
	certTk := newTokens(t, e.idp, func(c *TokensConfig) { c.ClientSecret = ""; c.CertificatePEM = bundle; c.Logger = e.cfg.Logger })
	_, err = certTk.Token(ctx, tenantA, mdeScope)
	record(err)
	_, err = NewTokens(TokensConfig{ClientID: "app", CertificatePEM: bundle[:len(bundle)/2]})
	record(err)
	_, err = NewTokens(TokensConfig{ClientID: "app", CertificatePEM: append([]byte("junk\n"), bundle[len(bundle)/2:]...)})
	record(err)

	// An MSAL error whose body quotes the secret (belt and braces).
	callErr := msalerrors.CallErr{
		Req: &http.Request{},
		Resp: &http.Response{StatusCode: 401, Body: io.NopCloser(strings.NewReader(
			`{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret ` + planted + ` provided. Trace ID: x"}`))},
		Err: errors.New("http call(https://login/x/oauth2/v2.0/token)(POST) error: reply status code was 401: client_secret=" + planted),
	}
	te := e.c.Tokens().tokenError(tenantA, callErr)
	record(te)
	if !errors.Is(te, bot.ErrAuth) {
		t.Errorf("synthetic 401 is not ErrAuth: %v", te)
	}
	record(e.c.Tokens().tokenError(tenantA, errors.New("dial tcp: secret "+planted)))
	// Entra's tokens are JWTs: any JWT-shaped text is dropped.
	jwt := "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2FwaSJ9.c2lnbmF0dXJlLWJ5dGVz"
	record(e.c.red.wrap(errors.New("upstream said: Bearer " + jwt)))

	seenTokens = append(seenTokens, e.idp.IssuedTokens()...)
	secrets := []string{planted, wrong, jwt}
	for _, line := range strings.Split(string(bundle), "\n") {
		if len(line) == 64 && !strings.HasPrefix(line, "-----") {
			secrets = append(secrets, line) // base64 lines of the cert and key
		}
	}
	secrets = append(secrets, seenTokens...)
	checkNoLeaks(t, secrets, errs.errs, e.logs.String()+dead.logs.String())
	if !strings.Contains(errs.errs[0].Error(), tenantB) {
		t.Errorf("errors should still say which tenant: %v", errs.errs[0])
	}
	if !strings.Contains(fmt.Sprint(errs.errs[6]), "[redacted]") {
		t.Errorf("echoed token not marked redacted: %v", errs.errs[6])
	}
}

// leakEnv is an env of newEnv whose client secret is planted, with few
// attempts and a short request timeout; tenantA has consented.
func leakEnv(t *testing.T, newEnv func(*testing.T, ...func(*Config)) *env, planted string, mutate ...func(*Config)) *env {
	t.Helper()
	e := newEnv(t, append([]func(*Config){func(c *Config) {
		c.ClientSecret = planted
		c.MaxAttempts = 2
		c.RequestTimeout = 100 * time.Millisecond
	}}, mutate...)...)
	e.idp.SetSecret(planted)
	e.idp.Consent(tenantA)
	return e
}

// errLog collects the errors a leak test provokes.
type errLog struct {
	t    *testing.T
	errs []error
}

// record keeps err, which must not be nil.
func (l *errLog) record(err error) {
	l.t.Helper()
	if err == nil {
		l.t.Errorf("expected an error")
		return
	}
	l.errs = append(l.errs, err)
}

// provokeAPIFaults records tenantA's list failing on 401s, 500s, a
// malformed body and 429s.
func provokeAPIFaults(ctx context.Context, e *env, errs *errLog) {
	errs.t.Helper()
	e.fake.FailNext(2, http.StatusUnauthorized)
	_, err := e.c.Alerts(ctx, tenantA, time.Time{})
	errs.record(err)
	e.fake.FailNext(5, http.StatusInternalServerError)
	_, err = e.c.Alerts(ctx, tenantA, time.Time{})
	errs.record(err)
	e.fake.ClearFaults()
	e.fake.BadJSONNext(1)
	_, err = e.c.Alerts(ctx, tenantA, time.Time{})
	errs.record(err)
	e.fake.ThrottleNext(5, 1)
	_, err = e.c.Alerts(ctx, tenantA, time.Time{})
	errs.record(err)
	e.fake.ClearFaults()
}

// provokeTimeouts records tenantA's list failing on answers slower than
// the request timeout, and on the caller's deadline.
func provokeTimeouts(ctx context.Context, e *env, errs *errLog) {
	errs.t.Helper()
	e.fake.SlowNext(5, 5*time.Second)
	_, err := e.c.Alerts(ctx, tenantA, time.Time{})
	errs.record(err)
	e.fake.ClearFaults()
	e.fake.SlowNext(1, 5*time.Second)
	dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = e.c.Alerts(dctx, tenantA, time.Time{})
	cancel()
	errs.record(err)
	e.fake.ClearFaults()
}

// provokeDeadAPI records the error of a client (secret planted) whose API
// is unreachable, and returns its env for its logs.
func provokeDeadAPI(ctx context.Context, t *testing.T, newEnv func(*testing.T, ...func(*Config)) *env, planted string, errs *errLog) *env {
	t.Helper()
	dead := newEnv(t, func(c *Config) { c.ClientSecret = planted; c.BaseURL = "https://127.0.0.1:1"; c.MaxAttempts = 1 })
	dead.idp.SetSecret(planted)
	dead.idp.Consent(tenantA)
	_, err := dead.c.Alerts(ctx, tenantA, time.Time{})
	errs.record(err)
	return dead
}

// checkNoLeaks fails when an error (as %v or %+v) or the log carries one
// of secrets, or when the debug log shows no retries.
func checkNoLeaks(t *testing.T, secrets []string, errs []error, logs string) {
	t.Helper()
	check := func(where, text string) {
		t.Helper()
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s leaks a secret (%.12s…): %s", where, s, text)
			}
		}
	}
	for i, err := range errs {
		t.Logf("error %d: %v", i, err)
		check(fmt.Sprintf("error %d", i), err.Error())
		check(fmt.Sprintf("error %d (%%+v)", i), fmt.Sprintf("%+v", err))
	}
	if !strings.Contains(logs, "retrying") {
		t.Errorf("debug log captured nothing useful: %q", logs)
	}
	check("log", logs)
}
