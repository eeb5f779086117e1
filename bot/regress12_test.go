package bot_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

// A crash between post and record, then a lookup that can never succeed
// (history not readable: missing_scope): the post stayed in flight for
// good, its card never sent.
func TestRegressionOrphanWithPermanentLookupError(t *testing.T) {
	h := newHarness(t)
	h.src.put(h.alert(tenantA, "pl1", bot.SeverityMedium))
	h.poll()
	h.chat.crashBefore = true // the process dies before the post reaches the channel
	done := make(chan struct{})
	go func() { defer close(done); h.svc.Dispatch(context.Background()) }()
	<-done
	h.db.Close()
	h.open()
	fn := &findErrNotifier{fakeNotifier: h.chat, findErrs: 1000, permanent: true}
	h.svc = bot.New(h.cfg, bot.Deps{Store: h.db, Source: h.src, Target: h.target, Access: h.access,
		Notifiers: map[string]bot.Notifier{"test": fn}})
	if err := h.svc.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.drain()
	if h.chat.cardFor(chA, "pl1") == nil {
		t.Fatal("card never posted: the orphan waits for a lookup that cannot succeed")
	}
	if it, _ := h.db.InFlight(context.Background()); len(it) != 0 {
		t.Errorf("%d entries still in flight", len(it))
	}
}

// digestsIn returns the digest cards posted to ch.
func digestsIn(f *fakeNotifier, ch bot.ChannelRef) []*fakeMsg {
	var out []*fakeMsg
	for _, m := range f.posts(ch) {
		if m.Msg.Kind == bot.MessageDigest {
			out = append(out, m)
		}
	}
	return out
}

// A storm in a customer channel becomes a digest whose post is queued
// (the channel is rate limited, say). Offboarding the tenant must cancel
// it like every other pending outbox entry of the tenant (DESIGN §3:
// offboard "cancels pending outbox entries"); RevokeTenant and
// detachChannel cancelled only kind='alert' deliveries, so the digest card,
// with the tenant's alert counts and top titles, was still posted to the
// channel after it was unlinked.
func TestRegressionOffboardCancelsPendingDigest(t *testing.T) {
	h := newHarness(t, func(c *bot.Config) { c.StormThreshold = 3 })
	h.onboardedC(bot.TenantActive, 0)
	for i := range 5 {
		h.src.put(h.alert(tenantC, fmt.Sprintf("st%d", i), bot.SeverityHigh))
	}
	h.poll() // digest queued for chC, not sent yet
	contains(t, h.run(chC, analyst, "offboard"), "offboarded")
	h.drain()
	if d := digestsIn(h.chat, chC); len(d) != 0 {
		t.Errorf("digest of the offboarded tenant posted to %s after offboard: %q (top titles %q)",
			chC, d[0].Msg.Text, d[0].Msg.Digest.TopTitles)
	}
}

// The same through unlink: the channel's pending cards are cancelled, but
// the pending digest standing for them is not, and it is posted after the
// channel no longer belongs to the tenant (it may be linked to another
// customer by then).
func TestRegressionUnlinkCancelsPendingDigest(t *testing.T) {
	h := newHarness(t, func(c *bot.Config) { c.StormThreshold = 3 })
	h.onboardedC(bot.TenantActive, 0)
	for i := range 5 {
		h.src.put(h.alert(tenantC, fmt.Sprintf("su%d", i), bot.SeverityHigh))
	}
	h.poll()
	out := h.run(chC, analyst, "unlink")
	if !strings.Contains(out, "no longer linked") {
		t.Fatalf("unlink: %q", out)
	}
	h.drain()
	if d := digestsIn(h.chat, chC); len(d) != 0 {
		t.Errorf("digest of tenant %s posted to %s after unlink: %q (top titles %q)",
			tenantC, chC, d[0].Msg.Text, d[0].Msg.Digest.TopTitles)
	}
}

// A pre-consented onboarding whose Confirm is clicked after
// azure.consent_ttl is closed as `expired`, but unlike an expired consent
// callback (audited "refused: expired") nothing was written to the audit:
// `/mssp audit` did not show this step of the flow (issue 8 item 7).
func TestRegressionExpiredConfirmIsAudited(t *testing.T) {
	h := newHarness(t)
	h.access.consent(tenantN)
	contains(t, h.run(chN, analyst, "onboard "+tenantN+" Northwind"), "already consented")
	h.drain()
	soc := h.chat.posts(chSOC)
	p := soc[len(soc)-1]
	h.clk.Add(25 * time.Hour) // past the default 24 h consent_ttl
	contains(t, h.click(chSOC, analyst, bot.ActionConfirm, p.Msg.Buttons[0].Value, p.ID), "expired")
	if h.tenantState(tenantN) == bot.TenantActive {
		t.Fatal("expired Confirm activated the tenant")
	}
	entries, err := h.db.FindAudit(context.Background(), bot.AuditFilter{TenantIDs: []string{tenantN}, Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Action+": "+e.Outcome)
		if strings.Contains(e.Outcome, "expired") {
			return
		}
	}
	t.Errorf("no audit entry records the expired Confirm; tenant's audit: %q", got)
}

// A link Confirm clicked after the request expired was closed without an
// audit entry.
func TestRegressionExpiredLinkConfirmIsAudited(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	const id = "11111111-2222-3333-4444-555555555555"
	if err := h.db.CreateTenant(ctx, bot.Tenant{ID: id, Name: "Northwind", State: bot.TenantActive}); err != nil {
		t.Fatal(err)
	}
	chN := bot.ChannelRef("test:northwind")
	m := h.svc.Execute(ctx, bot.Command{Platform: "test", Channel: chN, User: analyst, Origin: bot.OriginTyped, Text: "link " + id})
	if len(m.Buttons) != 1 {
		t.Fatalf("link prompt %+v", m)
	}
	h.clk.Add(time.Hour)
	contains(t, h.click(chN, analyst, bot.ActionLinkConfrm, m.Buttons[0].Value, ""), "not valid")
	entries, err := h.db.FindAudit(ctx, bot.AuditFilter{TenantIDs: []string{id}, Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Action == "link" && strings.Contains(e.Outcome, "expired") {
			return
		}
	}
	t.Errorf("no audit entry records the expired link confirm: %+v", entries)
}

// Offboarding a pending tenant closed its open consent request without a
// word on the prompt: its Grant and Decline buttons stayed on screen.
func TestRegressionOffboardWithdrawsOpenPrompt(t *testing.T) {
	h := newHarness(t)
	prompt, _ := h.onboard()
	contains(t, h.run(chN, analyst, "offboard"), "offboarded")
	h.drain()
	m := h.chat.message(prompt.ID)
	if len(m.Msg.Buttons) != 0 {
		t.Errorf("prompt still has buttons after offboard: %+v", m.Msg.Buttons)
	}
	if lines := h.chat.lines(prompt.ID); len(lines) == 0 || !strings.Contains(lines[len(lines)-1], "offboarded") {
		t.Errorf("prompt thread %q", lines)
	}
}

// A Decline clicked after the request expired was recorded as declined.
func TestRegressionDeclineAfterExpiry(t *testing.T) {
	h := newHarness(t)
	prompt, _ := h.onboard()
	var id string
	for _, b := range prompt.Msg.Buttons {
		if b.ActionID == bot.ActionDecline {
			id = b.Value
		}
	}
	h.clk.Add(25 * time.Hour)
	contains(t, h.click(chN, custA, bot.ActionDecline, id, prompt.ID), "already expired")
	r, err := h.db.FindAccessRequest(context.Background(), mustInt(t, id))
	if err != nil || r.Outcome != bot.AccessExpired {
		t.Errorf("request outcome %q (%v), want expired", r.Outcome, err)
	}
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Right after a grant, Entra may refuse (401/403) while the permission
// propagates. A write-back refused then was failed at once with a
// "Could not update" line; it now waits quietly and is sent once access
// works, and only a refusal after the window is reported.
func TestRegressionWriteBackWaitsOutPropagationWindow(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.onboardedC(bot.TenantActive, 0)
	act := h.clk.Now().Add(-5 * time.Minute) // granted 5 minutes ago
	if _, err := h.db.UpdateTenant(ctx, tenantC, bot.TenantUpdate{ActivatedAt: &act}); err != nil {
		t.Fatal(err)
	}
	h.src.put(h.alert(tenantC, "pw1", bot.SeverityHigh))
	h.src.put(h.alert(tenantC, "pw2", bot.SeverityHigh))
	h.poll()
	h.drain()
	h.target.mu.Lock()
	h.target.errFor = map[string]error{tenantC: fmt.Errorf("patch: %w", bot.ErrAuth)}
	h.target.mu.Unlock()
	h.run(chC, analyst, "ack pw1")
	for range 5 {
		h.svc.ProcessWriteBacks(ctx)
		h.clk.Add(time.Minute)
	}
	h.drain()
	for _, l := range h.chat.lines(h.chat.cardFor(chC, "pw1").ID) {
		notContains(t, l, "Could not update")
	}
	// Access now works: the ack goes out.
	h.target.mu.Lock()
	h.target.errFor = nil
	h.target.mu.Unlock()
	h.svc.ProcessWriteBacks(ctx)
	if got := h.target.list(); len(got) != 1 || got[0].AlertID != "pw1" {
		t.Fatalf("applied %+v, want the ack of pw1", got)
	}
	// After the window a refusal is reported.
	h.clk.Add(30 * time.Minute)
	h.target.mu.Lock()
	h.target.errFor = map[string]error{tenantC: fmt.Errorf("patch: %w", bot.ErrAuth)}
	h.target.mu.Unlock()
	h.run(chC, analyst, "ack pw2")
	h.svc.ProcessWriteBacks(ctx)
	h.drain()
	var reported bool
	for _, l := range h.chat.lines(h.chat.cardFor(chC, "pw2").ID) {
		reported = reported || strings.Contains(l, "Could not update")
	}
	if !reported {
		t.Errorf("a 403 after the propagation window was not reported: %q", h.chat.lines(h.chat.cardFor(chC, "pw2").ID))
	}
}

// A write-back throttled with no Retry-After left (the client had already
// waited and given up) was retried after a second, again and again,
// because throttling does not grow the attempt count.
func TestRegressionThrottledWriteBackWaitsAMinute(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.src.put(h.alert(tenantA, "tw1", bot.SeverityHigh))
	h.poll()
	h.drain()
	h.target.mu.Lock()
	h.target.errFor = map[string]error{tenantA: fmt.Errorf("defender: giving up after 4 attempts: %w", bot.ErrThrottled)}
	h.target.mu.Unlock()
	h.run(chA, analyst, "ack tw1")
	h.svc.ProcessWriteBacks(ctx)
	h.target.mu.Lock()
	h.target.errFor = nil
	h.target.mu.Unlock()
	h.clk.Add(30 * time.Second)
	h.svc.ProcessWriteBacks(ctx)
	if n := len(h.target.list()); n != 0 {
		t.Fatalf("retried %d time(s) within 30 s of a throttle", n)
	}
	h.clk.Add(31 * time.Second)
	h.svc.ProcessWriteBacks(ctx)
	if n := len(h.target.list()); n != 1 {
		t.Fatalf("applied %d after a minute, want 1", n)
	}
}
