package console

import (
	"strings"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

var cet = time.FixedZone("CET", 3600)

const testAlertID = "da638671234567890123_-1234567890"

func testCard() bot.Message {
	return bot.Message{
		Kind:    bot.MessageCard,
		Text:    "High: Suspicious access to LSASS service",
		Buttons: bot.CardButtons(testAlertID),
		Card: &bot.Card{
			TenantName: "Contoso",
			Key:        "msspbot-1",
			Alert: bot.Alert{
				TenantID:        "6f1c3e2a-0b7d-4c1e-9a55-1d2b3c4d5e6f",
				ID:              testAlertID,
				Title:           "Suspicious access to LSASS service",
				Severity:        bot.SeverityHigh,
				Status:          bot.StatusNew,
				Category:        "CredentialAccess",
				DetectionSource: "WindowsDefenderAtp",
				ServiceSource:   "microsoftDefenderForEndpoint",
				DeviceName:      "fin-ws-017.contoso.local",
				UserName:        `CONTOSO\jdoe`,
				MitreTechniques: []string{"T1003.001"},
				PortalURL:       "https://security.microsoft.com/alerts/" + testAlertID + "?tid=6f1c3e2a-0b7d-4c1e-9a55-1d2b3c4d5e6f",
				CreatedAt:       time.Date(2026, 11, 20, 8, 14, 3, 123456700, time.UTC),
			},
		},
	}
}

func assertContains(t *testing.T, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("output lacks %q:\n%s", w, got)
		}
	}
}

func assertLacks(t *testing.T, got string, nots ...string) {
	t.Helper()
	for _, w := range nots {
		if strings.Contains(got, w) {
			t.Errorf("output has %q:\n%s", w, got)
		}
	}
}

func TestRenderCard(t *testing.T) {
	got := Renderer{Location: cet}.Render(testCard())
	assertContains(t, got,
		"🔴 HIGH",
		"Suspicious access to LSASS service",
		"│ Tenant: Contoso · Device: fin-ws-017.contoso.local · User: CONTOSO\\jdoe\n",
		"│ Category: CredentialAccess · Source: WindowsDefenderAtp (Defender for Endpoint) · MITRE: T1003.001\n",
		"│ Created: 2026-11-20 09:14:03 CET · Status: New · unassigned\n", // the viewer's zone, not UTC
		"│ Alert: `"+testAlertID+"`\n",
		"│ Portal: https://security.microsoft.com/alerts/"+testAlertID+"?tid=6f1c3e2a-0b7d-4c1e-9a55-1d2b3c4d5e6f\n",
		"[Acknowledge] /click alert_ack "+testAlertID+"\n",
		"[Resolve] /click alert_resolve "+testAlertID+"\n",
	)
	assertLacks(t, got, "\x1b[", "(only you)")
	if !strings.HasPrefix(got, "┌─") || !strings.HasSuffix(got, "└─\n") {
		t.Errorf("card is not boxed:\n%s", got)
	}
}

func TestRenderCardAssignedAndResolved(t *testing.T) {
	m := testCard()
	m.Card.Alert.Status = bot.StatusResolved
	m.Card.Alert.AssignedTo = "analyst@mssp.example"
	m.Card.Alert.Classification = bot.ClassTruePositive
	m.Card.Alert.Determination = "Malware"
	m.Card.UpdatedBy = "console:analyst"
	m.Card.Alert.DeviceName = ""
	m.Card.Alert.UserName = ""
	m.Buttons = nil // resolved cards carry no buttons
	got := Renderer{Location: cet}.Render(m)
	assertContains(t, got,
		"Status: Resolved · assigned to analyst@mssp.example · TruePositive/Malware",
		"Updated by: console:analyst",
		"Device: — · User: —",
	)
	assertLacks(t, got, "/click")
}

func TestRenderCardOwnButtons(t *testing.T) {
	m := testCard()
	m.Buttons = []bot.Button{{Label: "Reopen", ActionID: "alert_reopen", Value: "x"}}
	got := Renderer{}.Render(m)
	assertContains(t, got, "[Reopen] /click alert_reopen x")
	assertLacks(t, got, "alert_ack")
}

func TestRenderColour(t *testing.T) {
	got := Renderer{Color: true}.Render(testCard())
	assertContains(t, got, "\x1b[1m\x1b[31mHIGH\x1b[0m", ansiReset)
	// The id stays intact for copying even with colour on.
	assertContains(t, got, "`"+testAlertID+"`")
}

func TestRenderEphemeralText(t *testing.T) {
	got := Renderer{}.Render(bot.Message{Kind: bot.MessageText, Text: "Acknowledged.\nWrite-back queued.", Ephemeral: true})
	if got != "(only you) Acknowledged.\n  Write-back queued.\n" {
		t.Errorf("got %q", got)
	}
}

func TestRenderList(t *testing.T) {
	m := bot.Message{Kind: bot.MessageList, Title: "Open alerts", Ephemeral: true, List: &bot.List{
		Header: "Open alerts",
		Rows:   []string{"🔴 High · `a1` · Ransomware", "🟠 Medium · `a2` · PowerShell"},
		More:   "3 more",
	}}
	got := Renderer{}.Render(m)
	want := "(only you) Open alerts\n  • 🔴 High · `a1` · Ransomware\n  • 🟠 Medium · `a2` · PowerShell\n  … 3 more\n"
	if got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
	// A title different from the header is kept; an empty list says so.
	got = Renderer{}.Render(bot.Message{Kind: bot.MessageList, Title: "LSASS", List: &bot.List{Header: "Alert a1", Empty: "No matching alerts."}})
	assertContains(t, got, "LSASS\n", "Alert a1\n", "  No matching alerts.\n")
}

func TestRenderPromptButtons(t *testing.T) {
	m := bot.Message{
		Kind:  bot.MessagePrompt,
		Title: "Access request for Litware",
		Text:  "console:analyst asks for access.",
		Fields: []bot.Field{
			{Label: "Permissions", Value: "Alert.ReadWrite.All"},
		},
		Buttons: []bot.Button{
			{Label: "Grant access", URL: "https://login.example/consent?state=x", ActionID: bot.ActionGrant, Value: "7"},
			{Label: "Decline", ActionID: bot.ActionDecline, Value: "7", Style: bot.ButtonDanger},
			{Label: "Docs", URL: "https://docs.example"},
		},
	}
	got := Renderer{}.Render(m)
	assertContains(t, got,
		"Access request for Litware",
		"console:analyst asks for access.",
		"Permissions: Alert.ReadWrite.All",
		"[Grant access] https://login.example/consent?state=x /click access_grant 7\n",
		"[Decline] /click access_decline 7\n",
		"[Docs] https://docs.example\n",
	)
}

func TestRenderDigest(t *testing.T) {
	m := bot.Message{Kind: bot.MessageDigest, Digest: &bot.Digest{
		Total:      42,
		BySeverity: map[bot.Severity]int{bot.SeverityHigh: 2, bot.SeverityMedium: 30, bot.SeverityLow: 10},
		TopTitles:  []string{"Suspicious PowerShell command line (20)", "Ransomware behavior detected (2)"},
		Tenants:    []string{"Contoso"},
		Since:      time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC),
	}}
	got := Renderer{Location: cet}.Render(m)
	assertContains(t, got,
		"Alert storm: 42 alerts",
		"Tenants   Contoso",
		"Since     2026-11-20 09:00:00 CET",
		"42: 🔴 HIGH 2 · 🟠 MEDIUM 30 · 🟡 LOW 10",
		"Top       Suspicious PowerShell command line (20)",
		"Ransomware behavior detected (2)",
	)
}

func TestRenderNotice(t *testing.T) {
	got := Renderer{}.Render(bot.Message{Kind: bot.MessageNotice, Title: "Tenant failing", Text: "Contoso: access refused 3 times."})
	if got != "📣 Tenant failing\n  Contoso: access refused 3 times.\n" {
		t.Errorf("got %q", got)
	}
}

func TestRenderEmptyMessage(t *testing.T) {
	if got := (Renderer{}).Render(bot.Message{}); got != "\n" {
		t.Errorf("got %q", got)
	}
	// A card kind without a card falls back to text rather than panicking.
	if got := (Renderer{}).Render(bot.Message{Kind: bot.MessageCard, Text: "fallback"}); got != "fallback\n" {
		t.Errorf("got %q", got)
	}
}
