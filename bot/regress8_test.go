package bot_test

import (
	"context"
	"testing"

	"github.com/msspbot/msspbot/bot"
)

// Customer A's card (fetched and ingested) is not sent while tenant B's
// fetch is still running: every post of the pass waits for its slowest tenant.
func TestRegressionSlowTenantDelaysOthersCards(t *testing.T) {
	h := newHarness(t, func(c *bot.Config) { c.Concurrency = 1 })
	h.src.put(h.alert(tenantA, "fast", bot.SeverityHigh))
	src := &hookSource{inner: h.src}
	h.svcWith(src)
	sentDuringB := -1
	src.setAfter(func(tenant string) {
		if tenant == tenantB { // B is slow (imagine up to TenantTimeout = 2m here)
			n, _ := h.svc.Dispatch(context.Background())
			sentDuringB = n
		}
	})
	h.poll()
	t.Logf("entries sent while B was still being fetched: %d", sentDuringB)
	if sentDuringB == 0 {
		t.Errorf("A's card (customer channel, single tenant, no storm possible) waited for B's fetch")
	}
}
