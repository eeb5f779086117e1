package bot_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

const chD = bot.ChannelRef("test:northwind-new")

// Offboard deletes the links without detaching the channel's cards; when
// the tenant is onboarded again in another channel, Defender changes of
// old alerts still go to the old (unlinked) channel.
func TestRegressionOffboardThenReonboardElsewhereLeaksToOldChannel(t *testing.T) {
	h := newHarness(t)
	h.onboardedC(bot.TenantActive, 0)
	a := h.alert(tenantC, "c-old", bot.SeverityHigh)
	h.src.put(a)
	h.poll()
	h.drain()
	if h.chat.cardFor(chC, "c-old") == nil {
		t.Fatal("no card")
	}
	t.Log(h.run(chC, analyst, "offboard"))
	h.drain()
	// onboard again, in another channel (what activate() does after consent)
	ctx := context.Background()
	if err := h.db.Link(ctx, chD, tenantC); err != nil {
		t.Fatal(err)
	}
	st, now := bot.TenantActive, h.clk.Now()
	h.db.UpdateTenant(ctx, tenantC, bot.TenantUpdate{State: &st, ActivatedAt: &now})
	h.clk.Add(time.Minute)
	a.Status, a.LastUpdatedAt = bot.StatusResolved, h.clk.Now()
	h.src.put(a)
	h.poll()
	h.drain()
	card := h.chat.cardFor(chC, "c-old")
	if lines := h.chat.lines(card.ID); len(lines) > 0 {
		t.Errorf("old, unlinked channel %s still gets lines: %q (edits to it: %d)", chC, lines, countEdits(h.chat, chC))
	}
}

func countEdits(f *fakeNotifier, ch bot.ChannelRef) int {
	n := 0
	for _, e := range f.edits {
		if e.Ch == ch {
			n++
		}
	}
	return n
}

type postHookNotifier struct {
	*fakeNotifier
	once   sync.Once
	during func(ch bot.ChannelRef)
}

func (p *postHookNotifier) Post(ctx context.Context, ch bot.ChannelRef, key string, m bot.Message) (string, error) {
	id, err := p.fakeNotifier.Post(ctx, ch, key, m)
	if ch == chC {
		p.once.Do(func() { p.during(ch) })
	}
	return id, err
}

// Unlink while the card's post is in flight: MarkSent sets the delivery
// back to 'posted', so it is live again and later changes reach the
// unlinked channel.
func TestRegressionUnlinkDuringInflightPostRevivesDelivery(t *testing.T) {
	h := newHarness(t)
	h.onboardedC(bot.TenantActive, 0)
	a := h.alert(tenantC, "c-if", bot.SeverityHigh)
	h.src.put(a)
	h.poll()
	pn := &postHookNotifier{fakeNotifier: h.chat}
	h.svc = bot.New(h.cfg, bot.Deps{Store: h.db, Source: h.src, Target: h.target, Access: h.access,
		Notifiers: map[string]bot.Notifier{"test": pn}})
	pn.during = func(ch bot.ChannelRef) { t.Log(h.run(chC, analyst, "unlink")) }
	h.drain()
	h.clk.Add(time.Minute)
	a.Status, a.LastUpdatedAt = bot.StatusResolved, h.clk.Now()
	h.src.put(a)
	h.poll()
	h.drain()
	card := h.chat.cardFor(chC, "c-if")
	if lines := h.chat.lines(card.ID); len(lines) > 0 {
		t.Errorf("unlinked channel still gets lines: %q", lines)
	}
}
