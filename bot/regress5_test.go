package bot_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/msspbot/msspbot/bot"
)

// An ack typed while the pass is still running (tenant A ingested, its
// storm's posts held) queues an edit on a delivery that finishPass then
// puts into a digest: the edit is sent to the member's message id, which is
// the digest's, and the digest card is replaced by one alert's card.
func TestRegressionAckDuringPassOverwritesDigest(t *testing.T) {
	h := newHarness(t, func(c *bot.Config) { c.StormThreshold = 3; c.Concurrency = 1 })
	for i := range 5 {
		h.src.put(h.alert(tenantA, fmt.Sprintf("s%d", i), bot.SeverityMedium))
	}
	src := &hookSource{inner: h.src}
	svc := bot.New(h.cfg, bot.Deps{Store: h.db, Source: src, Target: h.target, Access: h.access,
		Notifiers: map[string]bot.Notifier{"test": h.chat}})
	h.svc = svc
	src.setAfter(func(tenant string) {
		if tenant == tenantB { // A is ingested, the pass is not finished
			t.Log(h.run(chA, custA, "ack s1"))
		}
	})
	if err := svc.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.drain()
	posts := h.chat.posts(chA)
	if len(posts) != 1 {
		t.Fatalf("%d posts", len(posts))
	}
	m := h.chat.messages[posts[0].ID].Msg
	t.Logf("posted kind %v; now shows kind %v (card alert: %v); edits: %d; lines: %q", posts[0].Msg.Kind, m.Kind,
		m.Card != nil, len(h.chat.edits), h.chat.lines(posts[0].ID))
	if m.Kind != bot.MessageDigest {
		t.Errorf("the digest card was overwritten by an alert card (%q)", m.Text)
	}
}
