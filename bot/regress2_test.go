package bot_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

// A rate-limited channel with >= 200 due entries fills NextOutbox's whole
// batch; every other channel waits until the hold ends.
func TestRegressionHeldChannelStarvesOthers(t *testing.T) {
	h := newHarness(t, func(c *bot.Config) { c.StormThreshold = 10000 })
	for i := range 250 {
		h.src.put(h.alert(tenantA, fmt.Sprintf("m%03d", i), bot.SeverityMedium)) // customer A only (SOC wants High)
	}
	h.poll()
	h.clk.Add(time.Minute)
	h.src.put(h.alert(tenantB, "b-high", bot.SeverityHigh))
	h.poll()
	h.chat.failPost = func(ch bot.ChannelRef) error {
		if ch == chA {
			return bot.RetryAfterError(30*time.Second, errBoom)
		}
		return nil
	}
	h.drain()
	if h.chat.cardFor(chB, "b-high") == nil || h.chat.cardFor(chSOC, "b-high") == nil {
		t.Errorf("B and SOC cards delayed by A's Retry-After (B posted: %v, SOC posted: %v)",
			h.chat.cardFor(chB, "b-high") != nil, h.chat.cardFor(chSOC, "b-high") != nil)
	}
	_ = context.Background
}
