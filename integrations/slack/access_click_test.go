package slack

import (
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

// Prompt buttons reach the executor as clicks with their request id, so
// that one authorization table decides (Decline: anyone in the channel
// while open; Confirm: SOC users).
func TestAccessButtonsBecomeClicks(t *testing.T) {
	for i, action := range []string{bot.ActionDecline, bot.ActionConfirm, bot.ActionLinkConfrm} {
		exec := &fakeExec{}
		h, _ := newTestHandlers(t, exec)
		payload := blockActions(map[string]any{"type": "message", "message_ts": "1700000000.000009", "channel_id": "C0CONTOSO"},
			button(action, "42", "b"))
		if w := serve(h.Interactions(), signedRequest("/slack/interactions", interactionBody(t, payload), time.Now().Add(time.Duration(i)*time.Second))); w.Code != 200 {
			t.Fatalf("%s: status %d", action, w.Code)
		}
		h.Wait()
		cmds := exec.commands()
		if len(cmds) != 1 || cmds[0].Action != action || cmds[0].Value != "42" || cmds[0].Origin != bot.OriginClick ||
			cmds[0].Channel != "slack:C0CONTOSO" || cmds[0].MessageID != "1700000000.000009" {
			t.Fatalf("%s: commands %+v", action, cmds)
		}
	}
}
