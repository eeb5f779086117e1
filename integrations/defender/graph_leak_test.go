package defender

import (
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
	e := leakEnv(t, newGraphEnv, planted, func(c *Config) { c.PageSize = 1 })
	ctx := ctxT(t)
	errs := &errLog{t: t}
	record := errs.record
	id := e.g.Put(tenantA, defendertest.GraphSampleAlert("leak-1"))
	e.g.Put(tenantA, defendertest.GraphSampleAlert("leak-2"))
	if _, err := e.c.Alerts(ctx, tenantA, time.Time{}); err != nil {
		t.Fatal(err)
	}
	_, err := e.c.Alerts(ctx, tenantB, time.Time{}) // not consented
	record(err)
	provokeAPIFaults(ctx, e, errs)
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
	echoIdx := len(errs.errs) - 1
	e.g.Inject(defendertest.Fault{Status: http.StatusBadRequest, Body: echo, Method: http.MethodPost}, 1)
	record(e.c.Apply(ctx, bot.WriteBack{TenantID: tenantA, AlertID: id, Kind: bot.WriteBackAck, Actor: "a@b"}))
	e.g.Inject(defendertest.Fault{Status: http.StatusConflict, Body: echo, Method: http.MethodPatch}, 1)
	record(e.c.Apply(ctx, bot.WriteBack{TenantID: tenantA, AlertID: id, Kind: bot.WriteBackReopen}))
	// A nextLink elsewhere, and timeouts.
	e.g.SetNextLinkBase("https://evil.example")
	_, err = e.c.Alerts(ctx, tenantA, time.Time{})
	record(err)
	e.g.SetNextLinkBase("")
	provokeTimeouts(ctx, e, errs)
	e.g.FailNext(2, http.StatusForbidden)
	record(e.c.Apply(ctx, bot.WriteBack{TenantID: tenantA, AlertID: id, Kind: bot.WriteBackComment, Comment: "x"}))
	_, err = e.c.GetAlert(ctx, tenantA, "missing")
	record(err)
	issued := e.idp.IssuedTokens() // Revoke forgets them
	e.idp.Revoke(tenantA)
	_, err = e.c.Alerts(ctx, tenantA, time.Time{})
	record(err)
	dead := provokeDeadAPI(ctx, t, newGraphEnv, planted, errs)

	secrets := append([]string{planted}, issued...)
	secrets = append(secrets, dead.idp.IssuedTokens()...)
	checkNoLeaks(t, secrets, errs.errs, e.logs.String()+dead.logs.String())
	if !strings.Contains(errs.errs[echoIdx].Error(), "[redacted]") {
		t.Errorf("echoed token not marked redacted: %v", errs.errs[echoIdx])
	}
}
