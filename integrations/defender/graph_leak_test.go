package defender

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
	"github.com/msspbot/msspbot/integrations/defender/defendertest"
)

// TestGraphSecretsNeverLeak mirrors TestSecretsNeverLeak for the Graph
// paths: paging, foreign links, write-back PATCH and comment failures.
func TestGraphSecretsNeverLeak(t *testing.T) {
	const planted = "PLANTED-graph-s3cr3t-Vb8nQ2"
	e := newGraphEnv(t, func(c *Config) {
		c.ClientSecret = planted
		c.MaxAttempts = 2
		c.RequestTimeout = 100 * time.Millisecond
		c.PageSize = 1
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
	id := e.g.Put(tenantA, defendertest.GraphSampleAlert("leak-1"))
	e.g.Put(tenantA, defendertest.GraphSampleAlert("leak-2"))
	if _, err := e.c.Alerts(ctx, tenantA, time.Time{}); err != nil {
		t.Fatal(err)
	}
	_, err := e.c.Alerts(ctx, tenantB, time.Time{}) // not consented
	record(err)
	e.g.FailNext(2, http.StatusUnauthorized)
	_, err = e.c.Alerts(ctx, tenantA, time.Time{})
	record(err)
	e.g.FailNext(5, http.StatusInternalServerError)
	_, err = e.c.Alerts(ctx, tenantA, time.Time{})
	record(err)
	e.g.ClearFaults()
	e.g.BadJSONNext(1)
	_, err = e.c.Alerts(ctx, tenantA, time.Time{})
	record(err)
	e.g.ThrottleNext(5, 1)
	_, err = e.c.Alerts(ctx, tenantA, time.Time{})
	record(err)
	e.g.ClearFaults()
	// Servers that echo the token in use and the secret, in a list, a
	// PATCH and a comment. (Entra's real tokens are JWTs, which are
	// redacted whatever token they are.)
	tok, err := e.c.Tokens().Token(ctx, tenantA, graphScope)
	if err != nil {
		t.Fatal(err)
	}
	echo := fmt.Sprintf(`{"error":{"code":"BadRequest","message":"token %s with secret %s refused","innerError":{"request-id":"%s"}}}`, tok, planted, tok)
	e.g.Inject(defendertest.Fault{Status: http.StatusBadRequest, Body: echo}, 1)
	_, err = e.c.Alerts(ctx, tenantA, time.Time{})
	record(err)
	echoIdx := len(errs) - 1
	e.g.Inject(defendertest.Fault{Status: http.StatusBadRequest, Body: echo, Method: http.MethodPost}, 1)
	record(e.c.Apply(ctx, bot.WriteBack{TenantID: tenantA, AlertID: id, Kind: bot.WriteBackAck, Actor: "a@b"}))
	e.g.Inject(defendertest.Fault{Status: http.StatusConflict, Body: echo, Method: http.MethodPatch}, 1)
	record(e.c.Apply(ctx, bot.WriteBack{TenantID: tenantA, AlertID: id, Kind: bot.WriteBackReopen}))
	// A nextLink elsewhere, and timeouts.
	e.g.SetNextLinkBase("https://evil.example")
	_, err = e.c.Alerts(ctx, tenantA, time.Time{})
	record(err)
	e.g.SetNextLinkBase("")
	e.g.SlowNext(5, 5*time.Second)
	_, err = e.c.Alerts(ctx, tenantA, time.Time{})
	record(err)
	e.g.ClearFaults()
	e.g.SlowNext(1, 5*time.Second)
	dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = e.c.Alerts(dctx, tenantA, time.Time{})
	cancel()
	record(err)
	e.g.ClearFaults()
	e.g.FailNext(2, http.StatusForbidden)
	record(e.c.Apply(ctx, bot.WriteBack{TenantID: tenantA, AlertID: id, Kind: bot.WriteBackComment, Comment: "x"}))
	_, err = e.c.GetAlert(ctx, tenantA, "missing")
	record(err)
	issued := e.idp.IssuedTokens() // Revoke forgets them
	e.idp.Revoke(tenantA)
	_, err = e.c.Alerts(ctx, tenantA, time.Time{})
	record(err)
	dead := newGraphEnv(t, func(c *Config) { c.ClientSecret = planted; c.BaseURL = "https://127.0.0.1:1"; c.MaxAttempts = 1 })
	dead.idp.SetSecret(planted)
	dead.idp.Consent(tenantA)
	_, err = dead.c.Alerts(ctx, tenantA, time.Time{})
	record(err)

	secrets := append([]string{planted}, issued...)
	secrets = append(secrets, dead.idp.IssuedTokens()...)
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
	if !strings.Contains(errs[echoIdx].Error(), "[redacted]") {
		t.Errorf("echoed token not marked redacted: %v", errs[echoIdx])
	}
}
