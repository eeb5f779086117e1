package bot_test

import (
	"context"
	"fmt"
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

// A throttled tenant's backlog larger than one scan hid every other
// tenant's write-backs until it drained.
func TestRegressionWriteBackBacklogStarvesOtherTenants(t *testing.T) {
	h := newHarness(t)
	h.src.put(h.alert(tenantA, "bl1", bot.SeverityHigh))
	h.src.put(h.alert(tenantB, "bl2", bot.SeverityHigh))
	h.poll()
	h.drain()
	h.target.mu.Lock()
	h.target.errFor = map[string]error{tenantA: bot.RetryAfterError(time.Hour, errBoom)}
	h.target.mu.Unlock()
	for i := range 520 {
		h.run(chA, analyst, fmt.Sprintf("comment bl1 note %d", i))
	}
	h.run(chB, analyst, "ack bl2")
	if _, err := h.svc.ProcessWriteBacks(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := h.target.list()
	if len(got) != 1 || got[0].TenantID != tenantB || got[0].Kind != bot.WriteBackAck {
		t.Fatalf("applied %+v, want tenant B's ack despite A's throttled backlog", got)
	}
}
