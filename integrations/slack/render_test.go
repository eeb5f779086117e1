package slack

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/msspbot/msspbot/bot"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json")

const (
	contosoID = "6f1c3e2a-0b7d-4c1e-9a55-1d2b3c4d5e6f"
	alertID   = "da638671234567890123_-1234567890"
)

func testAlert() bot.Alert {
	return bot.Alert{
		TenantID:        contosoID,
		ID:              alertID,
		Title:           `Suspicious access to LSASS <script>alert(1)</script> & <!channel>`,
		Severity:        bot.SeverityHigh,
		Status:          bot.StatusNew,
		Category:        "CredentialAccess",
		DetectionSource: "WindowsDefenderAtp",
		ServiceSource:   "microsoftDefenderForEndpoint",
		DeviceName:      "fin-ws-017.contoso.local",
		UserName:        `CONTOSO\jdoe`,
		IncidentID:      "48213",
		IncidentURL:     "https://security.microsoft.com/incidents/48213?tid=" + contosoID,
		PortalURL:       "https://security.microsoft.com/alerts/" + alertID + "?tid=" + contosoID,
		CreatedAt:       time.Date(2026, 11, 20, 8, 14, 3, 123456700, time.UTC),
	}
}

func cardMessage(a bot.Alert) bot.Message {
	return bot.CardMessage(a, "Contoso <Ltd> & Co", "msspbot-42")
}

func goldenCases() map[string]bot.Message {
	resolved := testAlert()
	resolved.Status = bot.StatusResolved
	resolved.AssignedTo = "analyst1@mssp.example"
	resolved.Classification = bot.ClassTruePositive
	resolved.Determination = "Malware"
	resolvedMsg := cardMessage(resolved)
	resolvedMsg.Card.UpdatedBy = "Ana Lyst"

	return map[string]bot.Message{
		"card":          cardMessage(testAlert()),
		"card_resolved": resolvedMsg,
		"digest": {Kind: bot.MessageDigest, Title: "🌩️ 1234 new alerts", Text: "🌩️ 1234 new alerts", Digest: &bot.Digest{
			Total:      1234,
			BySeverity: map[bot.Severity]int{bot.SeverityHigh: 4, bot.SeverityMedium: 30, bot.SeverityInformational: 1200},
			TopTitles:  []string{"Suspicious PowerShell command line", "'Presenoker' unwanted software was detected", "<b>bold</b> title"},
			Tenants:    []string{"Contoso"},
			Since:      time.Date(2026, 11, 19, 8, 0, 0, 0, time.UTC),
		}},
		"list": {Kind: bot.MessageList, Ephemeral: true, List: &bot.List{
			Header: "Open alerts for Contoso",
			Rows: []string{
				"🔴 `da638671234567890123_-1234567890` High · Suspicious access to LSASS · New",
				"🟡 `da638671239999990001_884422110` Low · 'Presenoker' unwanted software was detected · InProgress",
			},
			More: "12 more",
		}},
		"list_empty": {Kind: bot.MessageList, Ephemeral: true, List: &bot.List{Header: "Rules", Empty: "No rules: this channel uses severity>=medium."}},
		"prompt": {Kind: bot.MessagePrompt, Title: "Access request for Contoso",
			Text: "Ana Lyst (slack:U012ANALYST) asks for access to tenant " + contosoID + ".",
			Fields: []bot.Field{
				{Label: "Permissions", Value: "WindowsDefenderATP Alert.ReadWrite.All"},
				{Label: "Expires", Value: "in 24h"},
			},
			Buttons: []bot.Button{
				{Label: "Grant access", ActionID: bot.ActionGrant, URL: "https://login.microsoftonline.com/" + contosoID + "/v2.0/adminconsent?client_id=abc&scope=https%3A%2F%2Fapi.securitycenter.microsoft.com%2F.default&redirect_uri=https%3A%2F%2Fmsspbot.example.com%2Fconsent%2Fcallback&state=xyz", Style: bot.ButtonPrimary},
				{Label: "Decline", ActionID: bot.ActionDecline, Value: "17", Style: bot.ButtonDanger},
			}},
		"chooser": {Kind: bot.MessageText, Ephemeral: true, Text: "Resolve `" + alertID + "` as:",
			Buttons: []bot.Button{
				{Label: "True positive", ActionID: bot.ActionResolveAs, Value: alertID + ":truepositive", Style: bot.ButtonDanger},
				{Label: "False positive", ActionID: bot.ActionResolveAs, Value: alertID + ":falsepositive"},
				{Label: "Informational", ActionID: bot.ActionResolveAs, Value: alertID + ":informational"},
			}},
		"thread_line": {Kind: bot.MessageText, Text: "Status New → InProgress, assigned to analyst1@mssp.example by Ana Lyst"},
	}
}

type rendered struct {
	Text   string `json:"text"`
	Blocks any    `json:"blocks"`
}

func renderJSON(t *testing.T, m bot.Message) []byte {
	t.Helper()
	blocks, text := Render(m)
	return marshal(t, rendered{Text: text, Blocks: blocks})
}

// marshal is indented JSON without HTML escaping, so golden files show
// "&lt;" as Slack receives it rather than "\u0026lt;".
func marshal(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRenderGolden(t *testing.T) {
	for name, m := range goldenCases() {
		t.Run(name, func(t *testing.T) {
			got := renderJSON(t, m)
			checkLimits(t, got)
			path := filepath.Join("testdata", name+".golden.json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from golden file; got:\n%s", name, got)
			}
		})
	}
}

func TestRenderCardContent(t *testing.T) {
	m := cardMessage(testAlert())
	out := string(renderJSON(t, m))
	for _, want := range []string{
		"`" + alertID + "`", // id whole, in inline code
		"<!date^1795162443^{date_short_pretty} {time}|2026-11-20 08:14 UTC>",
		"<https://security.microsoft.com/alerts/" + alertID + "?tid=" + contosoID + "|Open in Defender>",
		"Incident 48213",
		"WindowsDefenderAtp (Defender for Endpoint)",
		`"action_id": "alert_ack"`,
		`"action_id": "alert_resolve"`,
		`"value": "` + alertID + `"`,
		"&lt;script&gt;",
		"&lt;!channel&gt;",
		"Contoso &lt;Ltd&gt; &amp; Co",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("card lacks %q", want)
		}
	}
	for _, bad := range []string{"<script>", "<!channel>", "<Ltd>"} {
		if strings.Contains(out, bad) {
			t.Errorf("card contains unescaped %q", bad)
		}
	}
	_, text := Render(m)
	for _, want := range []string{"High", "Suspicious access to LSASS", "Contoso", alertID} {
		if !strings.Contains(text, want) {
			t.Errorf("fallback %q lacks %q", text, want)
		}
	}
}

func TestRenderResolvedCardHasNoButtons(t *testing.T) {
	a := testAlert()
	a.Status = bot.StatusResolved
	m := cardMessage(a)
	m.Buttons = bot.CardButtons(a.ID) // even when asked to
	blocks, _ := Render(m)
	for _, b := range blocks {
		if b.BlockType() == "actions" {
			t.Fatal("a resolved card must not offer Acknowledge/Resolve")
		}
	}
	// an open card without buttons gets the standard two
	open := bot.Message{Kind: bot.MessageCard, Card: &bot.Card{Alert: testAlert(), TenantName: "Contoso"}}
	blocks, _ = Render(open)
	if last := blocks[len(blocks)-1]; last.BlockType() != "actions" {
		t.Fatalf("open card without actions: %s", last.BlockType())
	}
}

func TestRenderLimits(t *testing.T) {
	long := strings.Repeat("x&<", 3000)
	rows := make([]string, 400)
	for i := range rows {
		rows[i] = strings.Repeat("row ", 60)
	}
	buttons := make([]bot.Button, 30)
	for i := range buttons {
		buttons[i] = bot.Button{Label: strings.Repeat("L", 100), ActionID: bot.ActionDecline, Value: strings.Repeat("v", 3000)}
	}
	fields := make([]bot.Field, 13)
	for i := range fields {
		fields[i] = bot.Field{Label: "f", Value: long}
	}
	a := testAlert()
	a.Title = long
	cases := map[string]bot.Message{
		"card":   cardMessage(a),
		"list":   {Kind: bot.MessageList, List: &bot.List{Header: long, Rows: rows, More: "1,000+ more"}, Buttons: buttons},
		"fields": {Kind: bot.MessagePrompt, Title: long, Text: long + "\n" + long, Fields: fields, Buttons: buttons},
		"digest": {Kind: bot.MessageDigest, Title: "🌩️ 1234 new alerts", Text: "🌩️ 1234 new alerts", Digest: &bot.Digest{Total: 1 << 30, TopTitles: rows, Tenants: []string{long}}},
	}
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			blocks, text := Render(m)
			if len(blocks) > maxBlocks {
				t.Errorf("%d blocks", len(blocks))
			}
			if n := utf8.RuneCountInString(text); n > maxFallbackText {
				t.Errorf("fallback %d characters", n)
			}
			if len(m.Buttons) > 0 {
				if last := blocks[len(blocks)-1]; last.BlockType() != "actions" {
					t.Errorf("buttons dropped: last block is %s", last.BlockType())
				}
			}
			b := marshal(t, blocks)
			checkLimits(t, b)
			if strings.Contains(string(b), "x&<") {
				t.Error("unescaped text")
			}
		})
	}
}

// checkLimits walks rendered JSON and checks Block Kit's limits.
func checkLimits(t *testing.T, data []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	if m, ok := v.(map[string]any); ok {
		v = m["blocks"]
	}
	blocks, _ := v.([]any)
	if len(blocks) > maxBlocks {
		t.Errorf("%d blocks > %d", len(blocks), maxBlocks)
	}
	text := func(o any) string {
		m, _ := o.(map[string]any)
		s, _ := m["text"].(string)
		return s
	}
	runes := utf8.RuneCountInString
	for i, b := range blocks {
		blk := b.(map[string]any)
		switch blk["type"] {
		case "section":
			if n := runes(text(blk["text"])); n > maxSectionText {
				t.Errorf("block %d: section text %d", i, n)
			}
			fields, _ := blk["fields"].([]any)
			if len(fields) > maxFields {
				t.Errorf("block %d: %d fields", i, len(fields))
			}
			for _, f := range fields {
				if n := runes(text(f)); n > maxFieldText {
					t.Errorf("block %d: field %d", i, n)
				}
			}
		case "header":
			if n := runes(text(blk["text"])); n > maxHeaderText {
				t.Errorf("block %d: header %d", i, n)
			}
		case "actions":
			els, _ := blk["elements"].([]any)
			if len(els) > maxActionButtons {
				t.Errorf("block %d: %d buttons", i, len(els))
			}
			for _, e := range els {
				el := e.(map[string]any)
				if n := runes(text(el["text"])); n > maxButtonText || n == 0 {
					t.Errorf("block %d: button text %d", i, n)
				}
				if v, _ := el["value"].(string); runes(v) > maxButtonValue {
					t.Errorf("block %d: button value %d", i, runes(v))
				}
				if el["action_id"] == "" {
					t.Errorf("block %d: button without action_id", i)
				}
			}
		}
	}
}

func TestTruncateKeepsEntitiesAndMarkup(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"abcdef", 10, "abcdef"},
		{"abcdef", 4, "abc…"},
		{"ab&amp;cd", 5, "ab…"},                  // would cut "&amp;"
		{"ab <!date^1^{time}|x> cd", 10, "ab …"}, // would cut a date
		{"ab <x|y> cdefgh", 12, "ab <x|y> cd…"},
		{"ééééé", 3, "éé…"},
	} {
		if got := truncate(tc.in, tc.n); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestLinkRefusesOddSchemes(t *testing.T) {
	if l := link("javascript:alert(1)", "x"); l != "" {
		t.Errorf("link = %q", l)
	}
	if l := link("https://a.example/p?x=1&y=2|3", "x"); l != "<https://a.example/p?x=1&amp;y=2%7C3|x>" {
		t.Errorf("link = %q", l)
	}
}

func TestRenderOriginInBlockID(t *testing.T) {
	m := goldenCases()["chooser"]
	blocks, _ := render(m, "1700000000.000001")
	b := marshal(t, blocks)
	if !strings.Contains(string(b), `"block_id": "msspbot_origin:1700000000.000001"`) {
		t.Fatalf("origin not carried: %s", b)
	}
}
