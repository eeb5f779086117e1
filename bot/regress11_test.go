package bot_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/msspbot/msspbot/bot"
)

func TestRegressionAlertsCounts(t *testing.T) {
	h := newHarness(t)
	for i := range 25 {
		a := h.alert(tenantA, fmt.Sprintf("q%02d", i), bot.SeverityLow)
		if i%5 == 0 {
			a.Status = bot.StatusResolved
		}
		h.src.put(a)
	}
	h.poll()
	contains(t, h.run(chA, custA, "alerts limit 3"), "17 more") // 20 open
	all := h.run(chA, custA, "alerts all severity>=low limit 30")
	if n := strings.Count(all, "`q"); n != 25 || strings.Contains(all, "more") {
		t.Errorf("alerts all: %d rows\n%s", n, all)
	}
	if n := strings.Count(h.run(chA, custA, "alerts resolved"), "`q"); n != 5 {
		t.Errorf("alerts resolved: %d rows", n)
	}
	contains(t, h.run(chSOC, analyst, "alerts tenant="+tenantA+" limit 1"), "19 more")
}

// A crash after a tenant's ingest but before the pass ended released its
// held posts at start one card each, even when they were a storm.
func TestRegressionCrashMidPassStillDigests(t *testing.T) {
	h := newHarness(t, func(c *bot.Config) { c.StormThreshold = 3 })
	var alerts []bot.Alert
	for i := range 5 {
		alerts = append(alerts, h.alert(tenantA, fmt.Sprintf("cm%d", i), bot.SeverityHigh))
	}
	// What a pass does for tenant A before the process dies: its batch
	// is committed with the posts held.
	if _, err := h.db.Ingest(context.Background(), bot.IngestBatch{
		TenantID: tenantA, Alerts: alerts, PassID: 42, Hold: true,
		SOC: []bot.ChannelRef{chSOC}, Now: h.clk.Now(), Plan: bot.PlanIngest,
	}); err != nil {
		t.Fatal(err)
	}
	h.restart()
	h.drain()
	for _, ch := range []bot.ChannelRef{chA, chSOC} {
		posts := h.chat.posts(ch)
		if len(posts) != 1 || posts[0].Msg.Kind != bot.MessageDigest || posts[0].Msg.Digest.Total != 5 {
			t.Fatalf("%s got %d posts, want one digest of 5", ch, len(posts))
		}
		if got := h.chat.lines(posts[0].ID); len(got) != 5 {
			t.Errorf("%s digest thread: %q", ch, got)
		}
		if d := posts[0].Msg.Digest; len(d.Tenants) != 1 || d.Tenants[0] != "Contoso" {
			t.Errorf("%s digest names tenants %q", ch, d.Tenants)
		}
	}
}
