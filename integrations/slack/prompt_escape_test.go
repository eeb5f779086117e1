package slack

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/msspbot/msspbot/bot"
)

// A declined consent puts Entra's error_description (attacker-controlled:
// it comes from the browser's query string) into the prompt's fields.
func TestPromptEscapesHostileReason(t *testing.T) {
	m := bot.Message{Kind: bot.MessagePrompt, Title: "Grant access",
		Fields: []bot.Field{{Label: "Outcome", Value: `🚫 Declined · access_denied: <script>alert(1)</script> <!channel> <https://evil.example|click>`}}}
	blocks, fallback := Render(m)
	var buf strings.Builder
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // see the text as Slack will
	if err := enc.Encode(blocks); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{buf.String(), fallback} {
		for _, bad := range []string{"<script>", "<!channel>", "<https://evil"} {
			if strings.Contains(out, bad) {
				t.Fatalf("unescaped %q in %s", bad, out)
			}
		}
		if !strings.Contains(out, "&lt;script&gt;") {
			t.Fatalf("reason missing or not escaped: %s", out)
		}
	}
}
