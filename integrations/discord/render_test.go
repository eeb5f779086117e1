package discord

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/msspbot/msspbot/bot"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

const (
	contoso = "6f1c3e2a-0b7d-4c1e-9a55-1d2b3c4d5e6f"
	alertID = "da638671234567890123_-1234567890"
)

// testAlert is the first alert of shared/fixtures/mde/alerts-page.json.
func testAlert() bot.Alert {
	return bot.Alert{
		TenantID:        contoso,
		ID:              alertID,
		Title:           "Suspicious access to LSASS service",
		Severity:        bot.SeverityHigh,
		Status:          bot.StatusNew,
		Category:        "CredentialAccess",
		DetectionSource: "WindowsDefenderAtp",
		DeviceName:      "fin-ws-017.contoso.local",
		DeviceGroup:     "Finance",
		UserName:        `CONTOSO\jdoe`,
		IncidentID:      "48213",
		IncidentURL:     "https://security.microsoft.com/incidents/48213?tid=" + contoso,
		PortalURL:       "https://security.microsoft.com/alerts/" + alertID + "?tid=" + contoso,
		CreatedAt:       time.Date(2026, 11, 20, 8, 14, 3, 123456700, time.UTC),
	}
}

func cardMessage(a bot.Alert) bot.Message {
	return bot.Message{Kind: bot.MessageCard, Text: "High: " + a.Title, Card: &bot.Card{Alert: a, TenantName: "Contoso"}}
}

// golden compares got (JSON) with testdata/name.json, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, got, "", "  "); err != nil {
		t.Fatalf("%s: not JSON: %v\n%s", name, err, got)
	}
	pretty.WriteByte('\n')
	path := filepath.Join("testdata", name+".json")
	if *update {
		if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(want, pretty.Bytes()) {
		t.Errorf("%s differs from %s (go test -update rewrites it)\n--- got\n%s", name, path, pretty.String())
	}
}

// TestGoldenPosts renders messages through Notifier.Post and compares the
// request body Discord receives.
func TestGoldenPosts(t *testing.T) {
	resolved := testAlert()
	resolved.Status = bot.StatusResolved
	resolved.AssignedTo = "analyst1@mssp.example"
	resolved.Classification = bot.ClassTruePositive
	resolved.Determination = "Malware"
	resolved.ServiceSource = "microsoftDefenderForEndpoint"
	resolvedCard := cardMessage(resolved)
	resolvedCard.Card.UpdatedBy = "alice"
	resolvedCard.Buttons = []bot.Button{} // resolved: no buttons

	cases := []struct {
		name string
		key  string
		msg  bot.Message
	}{
		{"card", "msspbot-17", cardMessage(testAlert())},
		{"card_resolved", "msspbot-18", resolvedCard},
		{"digest", "msspbot-19", bot.Message{Kind: bot.MessageDigest, Digest: &bot.Digest{
			Total:      42,
			BySeverity: map[bot.Severity]int{bot.SeverityHigh: 2, bot.SeverityMedium: 10, bot.SeverityLow: 30},
			TopTitles:  []string{"Suspicious access to LSASS service", "'Presenoker' unwanted software was detected"},
			Tenants:    []string{"Contoso"},
			Since:      time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC),
		}}},
		{"prompt", "msspbot-20", bot.Message{
			Kind:  bot.MessagePrompt,
			Title: "Access request for Contoso",
			Text:  "alice asks for read access to Microsoft Defender alerts of tenant " + contoso + ".",
			Fields: []bot.Field{
				{Label: "Permissions", Value: "WindowsDefenderATP Alert.ReadWrite.All"},
				{Label: "Expires", Value: "2026-11-21 08:00 UTC"},
			},
			Buttons: []bot.Button{
				{Label: "Grant access", ActionID: bot.ActionGrant, URL: "https://login.microsoftonline.com/" + contoso + "/v2.0/adminconsent?client_id=abc&scope=https%3A%2F%2Fapi.securitycenter.microsoft.com%2F.default&redirect_uri=https%3A%2F%2Fmsspbot.example.com%2Fconsent%2Fcallback&state=xyz"},
				{Label: "Decline", ActionID: bot.ActionDecline, Value: "12", Style: bot.ButtonDanger},
			},
		}},
		{"notice", "msspbot-21", bot.Message{Kind: bot.MessageNotice, Title: "Contoso: access lost", Text: "Defender refused the last 3 fetches (401)."}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeDiscord(t)
			n := NewNotifier(f.session(), nil)
			if _, err := n.Post(context.Background(), "discord:500", tc.key, tc.msg); err != nil {
				t.Fatal(err)
			}
			posts := f.reqs("POST", "/api/v9/channels/500/messages")
			if len(posts) != 1 {
				t.Fatalf("posts = %d, want 1", len(posts))
			}
			golden(t, "post_"+tc.name, posts[0].Body)
		})
	}
}

// TestGoldenReplies covers ephemeral answers: lists, text, a chooser.
func TestGoldenReplies(t *testing.T) {
	cases := []struct {
		name string
		msg  bot.Message
	}{
		{"list", bot.Message{Kind: bot.MessageList, Title: "Open alerts", List: &bot.List{
			Rows: []string{
				"🔴 High `" + alertID + "` Suspicious access to LSASS service",
				"🟡 Low da638671239999990001_884422110 'Presenoker' unwanted software was detected",
			},
			More: "12 more",
		}}},
		{"list_empty", bot.Message{Kind: bot.MessageList, List: &bot.List{Header: "Rules of this channel", Empty: "No rules: severity>=medium applies."}}},
		{"text", bot.Message{Kind: bot.MessageText, Text: "Acknowledged " + alertID + "; Defender is being updated."}},
		{"resolve_chooser", bot.Message{Kind: bot.MessagePrompt, Text: "Resolve " + alertID + " as:", Buttons: []bot.Button{
			{Label: "True positive", ActionID: bot.ActionResolveAs, Value: alertID + ":truepositive", Style: bot.ButtonDanger},
			{Label: "False positive", ActionID: bot.ActionResolveAs, Value: alertID + ":falsepositive"},
			{Label: "Informational", ActionID: bot.ActionResolveAs, Value: alertID + ":informational"},
		}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := responseJSON(messageResponse(tc.msg))
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "reply_"+tc.name, b)
		})
	}
}

func TestCardContent(t *testing.T) {
	r := render(cardMessage(testAlert()), "msspbot-1")
	if len(r.Embeds) != 1 {
		t.Fatalf("embeds = %d", len(r.Embeds))
	}
	e := r.Embeds[0]
	if e.Color != colorHigh {
		t.Errorf("color = %#x, want high", e.Color)
	}
	if e.Footer == nil || e.Footer.Text != "msspbot-1" {
		t.Errorf("footer = %+v, want the key", e.Footer)
	}
	fields := map[string]string{}
	for _, f := range e.Fields {
		fields[f.Name] = f.Value
	}
	want := map[string]string{
		"Tenant":           "Contoso",
		"Device":           "fin-ws-017.contoso.local",
		"User":             `CONTOSO\\jdoe`,
		"Category":         "CredentialAccess",
		"Detection source": "WindowsDefenderAtp",
		"Created":          "<t:1795162443:f>",
		"Status":           "New",
		"Alert ID":         "`" + alertID + "`",
		"Portal":           "[Open in Microsoft Defender](https://security.microsoft.com/alerts/" + alertID + "?tid=" + contoso + ")",
		"Incident":         "[Incident 48213](https://security.microsoft.com/incidents/48213?tid=" + contoso + ")",
	}
	for k, v := range want {
		if fields[k] != v {
			t.Errorf("field %s = %q, want %q", k, fields[k], v)
		}
	}
	row, ok := r.Components[0].(discordgo.ActionsRow)
	if !ok || len(row.Components) != 2 {
		t.Fatalf("components = %#v", r.Components)
	}
	if id := row.Components[0].(discordgo.Button).CustomID; id != "alert_ack:"+alertID {
		t.Errorf("ack custom id = %q", id)
	}
	if id := row.Components[1].(discordgo.Button).CustomID; id != "alert_resolve:"+alertID {
		t.Errorf("resolve custom id = %q", id)
	}
}

func TestColorsBySeverity(t *testing.T) {
	for s, want := range map[bot.Severity]int{
		bot.SeverityHigh: colorHigh, bot.SeverityMedium: colorMedium, bot.SeverityLow: colorLow,
		bot.SeverityInformational: colorInformational, bot.SeverityUnspecified: colorNeutral,
	} {
		a := testAlert()
		a.Severity = s
		if got := render(cardMessage(a), "").Embeds[0].Color; got != want {
			t.Errorf("%s: color %#x, want %#x", s, got, want)
		}
	}
}

func TestEscapesAlertText(t *testing.T) {
	a := testAlert()
	a.Title = "**bold** [click](https://evil.example) <@&123> `x`"
	a.DeviceName = "host_with_underscores|pipe"
	a.PortalURL = "javascript:alert(1)"
	a.IncidentURL = ""
	e := render(cardMessage(a), "").Embeds[0]
	if want := "🔴 High · \\*\\*bold\\*\\* \\[click\\](https://evil.example) \\<@&123\\> `x`"; e.Title != want {
		t.Errorf("title = %q, want %q", e.Title, want)
	}
	if e.URL != "" {
		t.Errorf("embed url = %q, want none for a non-http link", e.URL)
	}
	for _, f := range e.Fields {
		if f.Name == "Device" && f.Value != `host\_with\_underscores\|pipe` {
			t.Errorf("device = %q", f.Value)
		}
		if f.Name == "Portal" {
			t.Errorf("portal field for an unsafe URL: %q", f.Value)
		}
	}
	if got := render(bot.Message{Kind: bot.MessageText, Text: "@everyone *hi*"}, "").Content; got != `@everyone \*hi\*` {
		t.Errorf("content = %q", got)
	}
}

func TestLimits(t *testing.T) {
	long := strings.Repeat("é", 5000)
	a := testAlert()
	a.Title = long
	a.DeviceName = long
	a.UserName = long
	a.Category = long
	a.DetectionSource = long
	a.ServiceSource = long
	a.AssignedTo = long
	m := cardMessage(a)
	m.Card.TenantName = long
	e := render(m, "msspbot-1").Embeds[0]
	if n := utf16Len(e.Title); n > maxEmbedTitle {
		t.Errorf("title %d > %d", n, maxEmbedTitle)
	}
	total := utf16Len(e.Title) + utf16Len(e.Description) + utf16Len(e.Footer.Text)
	for _, f := range e.Fields {
		if utf16Len(f.Value) > maxFieldValue || utf16Len(f.Name) > maxFieldName {
			t.Errorf("field %s too long", f.Name)
		}
		total += utf16Len(f.Name) + utf16Len(f.Value)
	}
	if total > maxEmbedTotal {
		t.Errorf("embed total %d > %d", total, maxEmbedTotal)
	}
	// The long free-text fields are shortened; the short ones that matter
	// most are kept whole.
	keep := map[string]bool{}
	for _, f := range e.Fields {
		keep[f.Name] = true
		if f.Name == "Alert ID" && !strings.Contains(f.Value, a.ID) {
			t.Errorf("alert id field = %q", f.Value)
		}
	}
	for _, name := range []string{"Status", "Alert ID", "Portal"} {
		if !keep[name] {
			t.Errorf("%s field dropped to fit the embed; fields: %v", name, keep)
		}
	}

	// 30 fields, a long description, emoji counted as two UTF-16 units.
	var fields []bot.Field
	for i := 0; i < 30; i++ {
		fields = append(fields, bot.Field{Label: "f", Value: "v"})
	}
	e = render(bot.Message{Kind: bot.MessageNotice, Title: "t", Text: strings.Repeat("🔴", 3000), Fields: fields}, "").Embeds[0]
	if len(e.Fields) != maxFields {
		t.Errorf("fields = %d, want %d", len(e.Fields), maxFields)
	}
	if n := utf16Len(e.Description); n > maxEmbedDesc {
		t.Errorf("description %d UTF-16 units > %d", n, maxEmbedDesc)
	}

	// Long list: whole lines, then how many were left out.
	var rows []string
	for i := 0; i < 500; i++ {
		rows = append(rows, strings.Repeat("x", 40))
	}
	e = render(bot.Message{Kind: bot.MessageList, List: &bot.List{Rows: rows, More: "10 more"}}, "").Embeds[0]
	if utf16Len(e.Description) > maxEmbedDesc || !strings.Contains(e.Description, "more lines") || !strings.HasSuffix(e.Description, "… 10 more") {
		t.Errorf("list description: %d chars, ends %q", utf16Len(e.Description), e.Description[len(e.Description)-40:])
	}

	// Content of a plain line.
	if got := utf16Len(render(bot.Message{Kind: bot.MessageText, Text: long}, "").Content); got > maxContent {
		t.Errorf("content %d > %d", got, maxContent)
	}

	// Buttons: label cut to 80, custom id over 100 left out, rows of 5.
	var buttons []bot.Button
	for i := 0; i < 7; i++ {
		buttons = append(buttons, bot.Button{Label: strings.Repeat("L", 100), ActionID: bot.ActionAck, Value: "a"})
	}
	buttons = append(buttons, bot.Button{Label: "too long", ActionID: bot.ActionAck, Value: strings.Repeat("z", 100)})
	r := render(bot.Message{Kind: bot.MessagePrompt, Text: "x", Buttons: buttons}, "")
	if len(r.Components) != 2 || r.dropped != 1 {
		t.Fatalf("rows = %d, dropped = %d; want 2 rows, 1 dropped", len(r.Components), r.dropped)
	}
	first := r.Components[0].(discordgo.ActionsRow)
	if len(first.Components) != 5 || utf16Len(first.Components[0].(discordgo.Button).Label) != maxButtonLabel {
		t.Errorf("first row: %d buttons, label %d", len(first.Components), utf16Len(first.Components[0].(discordgo.Button).Label))
	}
}

func TestCustomIDRoundTrip(t *testing.T) {
	for _, tc := range []struct{ action, value string }{
		{bot.ActionAck, alertID},
		{bot.ActionResolveAs, alertID + ":falsepositive"},
		{bot.ActionDecline, "12"},
		{bot.ActionLinkConfrm, "7"},
	} {
		id := customID(tc.action, tc.value)
		a, v := splitCustomID(id)
		if a != tc.action || v != tc.value {
			t.Errorf("%q -> %q, %q", id, a, v)
		}
	}
}

func TestEscapeMarkdown(t *testing.T) {
	for in, want := range map[string]string{
		"plain":                  "plain",
		"a_b*c~d|e":              `a\_b\*c\~d\|e`,
		"id `da_1` ok":           "id `da_1` ok",
		"lone ` tick _x_":        "lone \\` tick \\_x\\_",
		"[x](https://e.example)": `\[x\](https://e.example)`,
		"<t:1:f> <@1> #chan":     `\<t:1:f\> \<@1\> \#chan`,
		"`a\nb` _":               "\\`a\nb\\` \\_",
		`back\slash`:             `back\\slash`,
		"``":                     "\\`\\`",
		"x `code [y](z)` [w](v)": "x `code [y](z)` \\[w\\](v)",
	} {
		if got := escapeMarkdown(in); got != want {
			t.Errorf("escapeMarkdown(%q) = %q, want %q", in, got, want)
		}
	}
}
