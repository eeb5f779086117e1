package main

import (
	"strings"
	"testing"

	"github.com/msspbot/msspbot/integrations/defender/defendertest"
)

// TestServeGraphEndToEnd drives the real serve wiring with defender.api:
// graph: a config tenant's alert in the fake Graph becomes a card in its
// Slack channel; a signed ack becomes a Graph PATCH plus a comment POST,
// a resolve a PATCH with Graph's enum names; onboarding asks for Graph's
// permissions and audience.
func TestServeGraphEndToEnd(t *testing.T) {
	e := startServeAPI(t, "graph")
	graph := e.graph
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
