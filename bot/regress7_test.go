package bot_test

import (
	"context"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

const tenantC = "11111111-2222-4333-8444-555555555555"
const chC = bot.ChannelRef("test:northwind")

func (h *harness) onboardedC(state bot.TenantState, failures int) {
	ctx := context.Background()
	if err := h.db.CreateTenant(ctx, bot.Tenant{ID: tenantC, Name: "Northwind", State: bot.TenantPending, CreatedAt: h.clk.Now()}); err != nil {
		h.t.Fatal(err)
	}
	if err := h.db.Link(ctx, chC, tenantC); err != nil {
		h.t.Fatal(err)
	}
	act := h.clk.Now().Add(-time.Hour)
	if _, err := h.db.UpdateTenant(ctx, tenantC, bot.TenantUpdate{State: &state, AuthFailures: &failures, ActivatedAt: &act}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) svcWith(src bot.AlertSource) {
	h.svc = bot.New(h.cfg, bot.Deps{Store: h.db, Source: src, Target: h.target, Access: h.access,
		Notifiers: map[string]bot.Notifier{"test": h.chat}})
}

// Offboard lands while the tenant's third 401 is in flight: fetchFailed
// writes state=failing from its stale snapshot and resurrects the tenant.
func TestRegressionOffboardDuringFailingFetchResurrects(t *testing.T) {
	h := newHarness(t)
	h.onboardedC(bot.TenantActive, 2)
	h.src.setErr(tenantC, bot.ErrAuth)
	src := &hookSource{inner: h.src}
	h.svcWith(src)
	src.setAfter(func(tenant string) {
		if tenant == tenantC {
			src.setAfter(nil)
			t.Log(h.run(chC, analyst, "offboard"))
		}
	})
	h.poll()
	got, _ := h.db.FindTenant(context.Background(), tenantC)
	t.Logf("state after pass: %s", got.State)
	if got.State != bot.TenantRevoked {
		t.Errorf("offboarded tenant is %s again (polled again, 'lost access' notices)", got.State)
	}
}

// Same for a failing tenant that recovers: the ingest's tenant update sets
// state=active over the revoke.
func TestRegressionOffboardDuringRecoveringFetchReactivates(t *testing.T) {
	h := newHarness(t)
	h.onboardedC(bot.TenantFailing, 3)
	h.src.put(h.alert(tenantC, "c1", bot.SeverityLow))
	src := &hookSource{inner: h.src}
	h.svcWith(src)
	src.setAfter(func(tenant string) {
		if tenant == tenantC {
			src.setAfter(nil)
			t.Log(h.run(chC, analyst, "offboard"))
		}
	})
	h.poll()
	got, _ := h.db.FindTenant(context.Background(), tenantC)
	t.Logf("state after pass: %s", got.State)
	if got.State != bot.TenantRevoked {
		t.Errorf("offboarded tenant is %s again", got.State)
	}
	h.drain()
	for _, m := range h.chat.posts(chSOC) {
		t.Logf("SOC: %s", m.Msg.Text)
	}
}
