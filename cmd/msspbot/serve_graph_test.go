package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msspbot/msspbot/config"
	"github.com/msspbot/msspbot/integrations/defender/defendertest"
)

// startServeGraph is startServe with defender.api: graph against the fake
// Graph API: tenant B (Fabrikam, slack:CFAB) is declared in the config and
// consented.
func startServeGraph(t *testing.T) (*e2e, *defendertest.Graph) {
	t.Helper()
	idp := defendertest.NewIdP(t)
	graph := defendertest.NewGraph(t, idp)
	slack := newFakeSlack(t)
	dir := t.TempDir()
	e := &e2e{t: t, slack: slack, idp: idp, db: filepath.Join(dir, "msspbot.db")}
	yaml := fmt.Sprintf(`
database: %s
http:
  listen: "127.0.0.1:0"
  public_url: "http://127.0.0.1:8080"
azure:
  client_id: %q
  client_secret_file: %s
  authority_host: %q
defender:
  api: graph
  base_url: %q
  schedule: "@every 1s"
  lookback: 24h
slack:
  enabled: true
  mode: http
  bot_token: %q
  signing_secret: %q
  api_url: %q
soc:
  channels: ["slack:CSOC"]
  users: ["slack:UANALYST"]
  identities: {"slack:UANALYST": "analyst1@mssp.example"}
tenants:
  - id: %q
    name: Fabrikam
    channels: ["slack:CFAB"]
`, e.db, idp.ClientID, filepath.Join(dir, "secret"), idp.URL, graph.URL, e2eToken, e2eSecret, slack.srv.URL+"/api/", e2eTenantB)
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte(idp.Secret()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, func(string) string { return "" }, os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	idp.Consent(e2eTenantB)
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan string, 1)
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	go func() {
		done <- serve(ctx, cfg, log, serveOptions{HTTPClient: graph.Client(), Started: func(u string) { started <- u }, ShutdownTimeout: 5 * time.Second})
	}()
	select {
	case e.base = <-started:
	case err := <-done:
		t.Fatalf("serve stopped at start: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not start")
	}
	var once sync.Once
	var stopErr error
	e.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(20 * time.Second):
				stopErr = fmt.Errorf("serve did not stop")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { e.stop() })
	return e, graph
}

// TestServeGraphEndToEnd drives the real serve wiring with defender.api:
// graph: a config tenant's alert in the fake Graph becomes a card in its
// Slack channel; a signed ack becomes a Graph PATCH plus a comment POST,
// a resolve a PATCH with Graph's enum names; onboarding asks for Graph's
// permissions and audience.
func TestServeGraphEndToEnd(t *testing.T) {
	e, graph := startServeGraph(t)
	eventually(t, "readyz 200", func() bool { code, _ := e.get("/readyz"); return code == 200 })

	// 1. An alert (medium, the customer channel's default threshold) in Graph.
	alert := defendertest.GraphFixtureAlerts()[0]
	id := graph.Put(e2eTenantB, alert)
	card := e.slack.waitMsg(t, "CFAB", func(m *slackMsg) bool { return m.ThreadTS == "" && strings.Contains(m.Text, id) })
	// The card links to Graph's alertWebUrl and shows the device from the
	// evidence.
	if !strings.Contains(card.Blocks, "https://security.microsoft.com/alerts/"+id+"?tid="+e2eTenantB) || !strings.Contains(card.Blocks, "ops-srv-04") {
		t.Errorf("card blocks: %s", card.Blocks)
	}
	for _, c := range graph.Calls() {
		if c.Method == "GET" && (c.Tenant != e2eTenantB || c.Prefer != "include-unknown-enum-members" || !strings.HasPrefix(c.Query.Get("$filter"), "lastUpdateDateTime ge ")) {
			t.Fatalf("list call %+v", c)
		}
	}

	// 2. A signed ack in the customer channel: PATCH, then the comment.
	_, body := signed(t, e.base, "/slack/commands", e2eSecret, command("CFAB", "UANALYST", "ack "+id+" on it"))
	if !strings.Contains(body, "Acknowledged") {
		t.Fatalf("ack answered %s", body)
	}
	eventually(t, "PATCH and comment", func() bool { return len(graph.Patches()) == 1 && len(graph.Comments()) == 1 })
	p, c := graph.Patches()[0], graph.Comments()[0]
	if p.Tenant != e2eTenantB || p.AlertID != id || p.Status != 200 || string(p.Body) != `{"status":"inProgress","assignedTo":"analyst1@mssp.example"}` {
		t.Errorf("PATCH %+v %s", p, p.Body)
	}
	if c.Tenant != e2eTenantB || c.AlertID != id || c.Status != 200 || string(c.Body) != `{"@odata.type":"microsoft.graph.security.alertComment","comment":"on it"}` {
		t.Errorf("comment %+v %s", c, c.Body)
	}
	e.slack.waitMsg(t, "CFAB", func(m *slackMsg) bool { return m.ThreadTS == card.TS && strings.Contains(m.Text, "Acknowledged") })
	if a, _ := graph.Alert(e2eTenantB, id); a["status"] != "inProgress" || a["assignedTo"] != "analyst1@mssp.example" {
		t.Errorf("alert in Graph after ack: %v %v", a["status"], a["assignedTo"])
	}

	// 3. Resolve with an MDE determination name: Graph gets its own names.
	_, body = signed(t, e.base, "/slack/commands", e2eSecret, command("CFAB", "UANALYST", "resolve "+id+" falsepositive determination=Clean benign"))
	if !strings.Contains(body, "Resolved") {
		t.Fatalf("resolve answered %s", body)
	}
	eventually(t, "resolve PATCH", func() bool { return len(graph.Patches()) == 2 && len(graph.Comments()) == 2 })
	if p := graph.Patches()[1]; string(p.Body) != `{"status":"resolved","classification":"falsePositive","determination":"notMalicious"}` || p.Status != 200 {
		t.Errorf("resolve PATCH %s (%d)", p.Body, p.Status)
	}

	// 4. Onboarding a new customer asks for Graph's permission and audience.
	_, body = signed(t, e.base, "/slack/commands", e2eSecret, command("CCONTOSO", "UANALYST", "onboard "+e2eTenantA+" Contoso"))
	if !strings.Contains(body, "Approval prompt") {
		t.Fatalf("onboard answered %s", body)
	}
	prompt := e.slack.waitMsg(t, "CCONTOSO", func(m *slackMsg) bool { return strings.Contains(m.Blocks, "adminconsent") })
	if !strings.Contains(prompt.Blocks, "SecurityAlert.ReadWrite.All") || !strings.Contains(prompt.Blocks, "scope=https%3A%2F%2Fgraph.microsoft.com%2F.default") {
		t.Errorf("approval prompt: %s", prompt.Blocks)
	}
	if err := e.stop(); err != nil {
		t.Fatalf("serve returned %v", err)
	}
}
