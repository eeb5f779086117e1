package bot_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

// Throttling (429 + Retry-After) counts towards writeBackMaxAttempts: a
// tenant kept at its request budget for a few minutes loses the update.
func TestRegressionWriteBackThrottleCountsAsFailure(t *testing.T) {
	h := newHarness(t)
	h.src.put(h.alert(tenantA, "th1", bot.SeverityHigh))
	h.poll()
	h.drain()
	h.run(chA, analyst, "ack th1")
	h.target.err = bot.RetryAfterError(30*time.Second, errBoom)
	for range 8 {
		h.svc.ProcessWriteBacks(context.Background())
		h.clk.Add(31 * time.Second)
	}
	h.target.err = nil
	h.svc.ProcessWriteBacks(context.Background())
	h.drain()
	for _, l := range h.chat.lines(h.chat.cardFor(chA, "th1").ID) {
		if strings.Contains(l, "Could not update") {
			t.Errorf("write-back given up after ~4 min of throttling: %q", l)
		}
	}
	t.Logf("applied: %d", len(h.target.list()))
}
