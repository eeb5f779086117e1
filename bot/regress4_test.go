package bot_test

import (
	"strings"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

// "Being rate limited ... never counts towards giving up" — but MarkInFlight
// counts every attempt, so 11 rate limits + one 5xx = permanent failure,
// card withdrawn and the channel reported as broken.
func TestRegressionRateLimitsCountTowardsMaxAttempts(t *testing.T) {
	h := newHarness(t)
	h.src.put(h.alert(tenantA, "rl1", bot.SeverityMedium))
	h.poll()
	n := 0
	h.chat.failPost = func(ch bot.ChannelRef) error {
		if ch != chA {
			return nil
		}
		n++
		if n <= 11 {
			return bot.RetryAfterError(time.Second, errBoom)
		}
		if n == 12 {
			return &bot.SendError{Reason: "500 internal_error", Err: errBoom}
		}
		return nil
	}
	for range 30 {
		h.drain()
		h.clk.Add(10 * time.Minute)
	}
	if h.chat.cardFor(chA, "rl1") == nil {
		t.Errorf("card never posted after %d attempts (11 rate-limited, 1 transient)", n)
	}
	for _, m := range h.chat.posts(chSOC) {
		if m.Msg.Kind == bot.MessageNotice && strings.Contains(m.Msg.Text, "cannot post to") {
			t.Errorf("SOC told the channel is broken: %s", m.Msg.Text)
		}
	}
}
