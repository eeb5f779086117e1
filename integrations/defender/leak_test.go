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
	e := newEnv(t, func(c *Config) {
		c.ClientSecret = planted
		c.MaxAttempts = 2
		c.RequestTimeout = 100 * time.Millisecond
	})
	e.idp.SetSecret(planted)
	e.idp.Consent(tenantA)
	ctx := ctxT(t)
	var errs []error
	record := func(err error) {
		t.Helper()
		if err == nil {
			t.Errorf("expected an error")
			return
		}
		errs = append(errs, err)
	}
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
	e.mde.FailNext(2, http.StatusUnauthorized)
	_, err = e.c.Alerts(ctx, tenantA, time.Time{})
	record(err)
	e.mde.FailNext(5, http.StatusInternalServerError)
	_, err = e.c.Alerts(ctx, tenantA, time.Time{})
	record(err)
	e.mde.ClearFaults()
	e.mde.BadJSONNext(1)
	_, err = e.c.Alerts(ctx, tenantA, time.Time{})
	record(err)
	e.mde.ThrottleNext(5, 1)
	_, err = e.c.Alerts(ctx, tenantA, time.Time{})
	record(err)
	e.mde.ClearFaults()
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
	e.mde.SlowNext(5, 5*time.Second)
	_, err = e.c.Alerts(ctx, tenantA, time.Time{})
	record(err)
	e.mde.ClearFaults()
	e.mde.SlowNext(1, 5*time.Second)
	dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = e.c.Alerts(dctx, tenantA, time.Time{})
	cancel()
	record(err)
	e.mde.ClearFaults()
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
	dead := newEnv(t, func(c *Config) { c.ClientSecret = planted; c.BaseURL = "https://127.0.0.1:1"; c.MaxAttempts = 1 })
	dead.idp.SetSecret(planted)
	dead.idp.Consent(tenantA)
	_, err = dead.c.Alerts(ctx, tenantA, time.Time{})
	record(err)

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
	logs := e.logs.String() + dead.logs.String()
	if !strings.Contains(logs, "retrying") {
		t.Errorf("debug log captured nothing useful: %q", logs)
	}
	check("log", logs)
	if !strings.Contains(errs[0].Error(), tenantB) {
		t.Errorf("errors should still say which tenant: %v", errs[0])
	}
	if !strings.Contains(fmt.Sprint(errs[6]), "[redacted]") {
		t.Errorf("echoed token not marked redacted: %v", errs[6])
	}
}
