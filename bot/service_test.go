package bot_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

func TestPollPostsCardsByRules(t *testing.T) {
	h := newHarness(t)
	h.src.put(h.alert(tenantA, "a-high", bot.SeverityHigh))
	h.src.put(h.alert(tenantA, "a-low", bot.SeverityLow))
	h.src.put(h.alert(tenantB, "b-med", bot.SeverityMedium))
	h.poll()
	h.drain()

	if got := len(h.chat.posts(chA)); got != 1 {
		t.Fatalf("customer A got %d cards, want 1 (High only; Low is below the default medium)", got)
	}
	if h.chat.cardFor(chA, "a-high") == nil {
		t.Fatal("a-high not posted to A")
	}
	if h.chat.cardFor(chB, "b-med") == nil {
		t.Fatal("b-med not posted to B")
	}
	if h.chat.cardFor(chA, "b-med") != nil || h.chat.cardFor(chB, "a-high") != nil {
		t.Fatal("an alert reached another tenant's channel")
	}
	soc := h.chat.posts(chSOC)
	if len(soc) != 1 || soc[0].Msg.Card.Alert.ID != "a-high" {
		t.Fatalf("SOC got %d cards, want only the High one", len(soc))
	}
	card := h.chat.cardFor(chA, "a-high").Msg
	if card.Card.TenantName != "Contoso" || !strings.Contains(card.Text, "a-high") || len(card.Buttons) != 2 {
		t.Fatalf("card content: %+v", card)
	}
	// A second pass with nothing new posts nothing.
	h.clk.Add(time.Minute)
	h.poll()
	h.drain()
	if got := len(h.chat.posts(chA)) + len(h.chat.posts(chSOC)); got != 2 {
		t.Fatalf("second pass reposted: %d cards", got)
	}
}

func TestLowRaisedToHighIsPostedThen(t *testing.T) {
	h := newHarness(t)
	a := h.alert(tenantA, "x1", bot.SeverityLow)
	h.src.put(a)
	h.poll()
	h.drain()
	if len(h.chat.posts(chA)) != 0 {
		t.Fatal("Low alert posted")
	}
	h.clk.Add(time.Minute)
	a.Severity, a.LastUpdatedAt = bot.SeverityHigh, h.clk.Now()
	h.src.put(a)
	h.poll()
	h.drain()
	if h.chat.cardFor(chA, "x1") == nil || h.chat.cardFor(chSOC, "x1") == nil {
		t.Fatal("alert raised to High not posted to customer and SOC channels")
	}
}

func TestChangeBeforePostLandsInThreadAfterCard(t *testing.T) {
	h := newHarness(t)
	a := h.alert(tenantA, "c1", bot.SeverityHigh)
	h.src.put(a)
	h.poll() // card queued, not sent
	h.clk.Add(time.Minute)
	a.Status, a.AssignedTo, a.LastUpdatedAt = bot.StatusInProgress, "soc@customer.example", h.clk.Now()
	h.src.put(a)
	h.poll() // change queued behind the unsent card
	h.drain()
	card := h.chat.cardFor(chA, "c1")
	if card == nil {
		t.Fatal("card not posted")
	}
	lines := h.chat.lines(card.ID)
	if len(lines) != 1 || !strings.Contains(lines[0], "status New → InProgress") {
		t.Fatalf("thread lines %q", lines)
	}
	if got := h.chat.messages[card.ID].Msg.Card.Alert.Status; got != bot.StatusInProgress {
		t.Fatalf("card shows %s after the edit", got)
	}
}

func TestStormBecomesDigest(t *testing.T) {
	h := newHarness(t, func(c *bot.Config) { c.StormThreshold = 3 })
	for i := range 5 {
		h.src.put(h.alert(tenantA, fmt.Sprintf("s%d", i), bot.SeverityHigh))
	}
	h.src.put(h.alert(tenantB, "b1", bot.SeverityHigh))
	h.poll()
	h.drain()
	posts := h.chat.posts(chA)
	if len(posts) != 1 || posts[0].Msg.Kind != bot.MessageDigest {
		t.Fatalf("customer A got %d posts (kind %v), want one digest", len(posts), posts)
	}
	if d := posts[0].Msg.Digest; d.Total != 5 || d.BySeverity[bot.SeverityHigh] != 5 {
		t.Fatalf("digest %+v", d)
	}
	lines := h.chat.lines(posts[0].ID)
	if len(lines) != 5 {
		t.Fatalf("digest thread has %d lines, want 5", len(lines))
	}
	// B stays under the threshold: a normal card.
	if h.chat.cardFor(chB, "b1") == nil {
		t.Fatal("B's single alert should be a normal card")
	}
	// The SOC channel got 6 > 3 posts: a digest too.
	if soc := h.chat.posts(chSOC); len(soc) != 1 || soc[0].Msg.Kind != bot.MessageDigest || soc[0].Msg.Digest.Total != 6 {
		t.Fatalf("SOC posts: %d", len(soc))
	}
	// A later change of a digest member goes to the digest's thread, no edit.
	h.clk.Add(time.Minute)
	a := h.alert(tenantA, "s2", bot.SeverityHigh)
	a.Status, a.LastUpdatedAt = bot.StatusResolved, h.clk.Now()
	h.src.put(a)
	edits := len(h.chat.edits)
	h.poll()
	h.drain()
	if got := h.chat.lines(posts[0].ID); len(got) != 6 || !strings.Contains(got[5], "Resolved") {
		t.Fatalf("digest thread after change: %q", got)
	}
	if len(h.chat.edits) != edits {
		t.Fatal("a digest member's change edited a card")
	}
}

func TestAckFromChatUpdatesCardThreadAuditAndDefender(t *testing.T) {
	h := newHarness(t)
	h.src.put(h.alert(tenantA, "k1", bot.SeverityHigh))
	h.poll()
	h.drain()
	out := h.run(chA, analyst, "ack k1 looking into it")
	contains(t, out, "Acknowledged `k1`")
	h.drain()
	for _, ch := range []bot.ChannelRef{chA, chSOC} {
		card := h.chat.cardFor(ch, "k1")
		m := h.chat.messages[card.ID].Msg
		if m.Card.Alert.Status != bot.StatusInProgress || m.Card.Alert.AssignedTo != "analyst1@mssp.example" {
			t.Fatalf("%s card not updated: %+v", ch, m.Card.Alert.Status)
		}
		lines := h.chat.lines(card.ID)
		if len(lines) != 1 || !strings.Contains(lines[0], "Acknowledged") || !strings.Contains(lines[0], "looking into it") {
			t.Fatalf("%s thread %q", ch, lines)
		}
	}
	if _, err := h.svc.ProcessWriteBacks(context.Background()); err != nil {
		t.Fatal(err)
	}
	wbs := h.target.list()
	if len(wbs) != 1 || wbs[0].Kind != bot.WriteBackAck || wbs[0].Status != bot.StatusInProgress ||
		wbs[0].AssignedTo != "analyst1@mssp.example" || wbs[0].Comment != "looking into it" {
		t.Fatalf("write-backs %+v", wbs)
	}
	contains(t, h.run(chA, analyst, "audit"), "ack k1")
	// Defender confirms the same values: no new thread line.
	h.clk.Add(time.Minute)
	a := h.alert(tenantA, "k1", bot.SeverityHigh)
	a.Status, a.AssignedTo, a.LastUpdatedAt = bot.StatusInProgress, "analyst1@mssp.example", h.clk.Now()
	h.src.put(a)
	h.poll()
	h.drain()
	if lines := h.chat.lines(h.chat.cardFor(chA, "k1").ID); len(lines) != 1 {
		t.Fatalf("confirmation of our own write-back added lines: %q", lines)
	}
}

func TestPendingWriteBackKeepsLocalValues(t *testing.T) {
	h := newHarness(t)
	h.src.put(h.alert(tenantA, "p1", bot.SeverityHigh))
	h.poll()
	h.drain()
	h.run(chA, analyst, "ack p1")
	// Defender still says New (the write-back has not been sent yet).
	h.clk.Add(time.Minute)
	a := h.alert(tenantA, "p1", bot.SeverityHigh)
	a.LastUpdatedAt = h.clk.Now()
	h.src.put(a)
	h.poll()
	h.drain()
	out := h.run(chA, analyst, "show p1")
	contains(t, out, "Status: InProgress")
	card := h.chat.cardFor(chA, "p1")
	for _, l := range h.chat.lines(card.ID) {
		notContains(t, l, "InProgress → New")
	}
}

func TestResolveCommentReopen(t *testing.T) {
	h := newHarness(t)
	h.src.put(h.alert(tenantA, "r1", bot.SeverityHigh))
	h.poll()
	h.drain()
	contains(t, h.run(chA, analyst, "resolve r1 falsepositive determination=notMalicious tuned rule"), "Resolved `r1` as FalsePositive (Clean)")
	contains(t, h.run(chA, analyst, "reopen r1"), "Reopened `r1`")
	contains(t, h.run(chA, analyst, "reopen r1"), "is not resolved")
	contains(t, h.run(chA, analyst, "comment r1 called the user"), "Comment added")
	contains(t, h.run(chA, analyst, "resolve r1"), "as unclassified (Other)")
	h.drain()
	if _, err := h.svc.ProcessWriteBacks(context.Background()); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, wb := range h.target.list() {
		kinds = append(kinds, string(wb.Kind))
	}
	if strings.Join(kinds, ",") != "resolve,reopen,comment,resolve" {
		t.Fatalf("write-backs in order: %v", kinds)
	}
	wb := h.target.list()[0]
	if wb.Classification != bot.ClassFalsePositive || wb.Determination != "Clean" || wb.Comment != "tuned rule" {
		t.Fatalf("resolve write-back %+v", wb)
	}
	lines := h.chat.lines(h.chat.cardFor(chA, "r1").ID)
	if len(lines) != 4 {
		t.Fatalf("thread %q", lines)
	}
}

func TestWriteBackFailureIsReportedInThread(t *testing.T) {
	h := newHarness(t)
	h.src.put(h.alert(tenantA, "w1", bot.SeverityHigh))
	h.poll()
	h.drain()
	h.target.err = fmt.Errorf("patch: %w", bot.ErrAuth)
	h.run(chA, analyst, "ack w1")
	if _, err := h.svc.ProcessWriteBacks(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.drain()
	lines := h.chat.lines(h.chat.cardFor(chA, "w1").ID)
	if len(lines) != 2 || !strings.Contains(lines[1], "Could not update the alert in Defender") ||
		!strings.Contains(lines[1], "WindowsDefenderATP Alert.ReadWrite.All") {
		t.Fatalf("thread %q", lines)
	}
}

func TestRetryableWriteBackRetriesInOrder(t *testing.T) {
	h := newHarness(t)
	h.src.put(h.alert(tenantA, "o1", bot.SeverityHigh))
	h.poll()
	h.target.err = errBoom
	h.run(chA, analyst, "ack o1")
	h.run(chA, analyst, "resolve o1 truepositive")
	if _, err := h.svc.ProcessWriteBacks(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.target.err = nil
	// The resolve is due but must wait behind the ack.
	if _, err := h.svc.ProcessWriteBacks(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(h.target.list()); n != 0 {
		t.Fatalf("%d write-backs overtook the retrying ack", n)
	}
	h.clk.Add(10 * time.Minute)
	for range 3 {
		if _, err := h.svc.ProcessWriteBacks(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	got := h.target.list()
	if len(got) != 2 || got[0].Kind != bot.WriteBackAck || got[1].Kind != bot.WriteBackResolve {
		t.Fatalf("applied %+v", got)
	}
}

func TestTenantIsolation(t *testing.T) {
	h := newHarness(t)
	h.src.put(h.alert(tenantB, "secret-b", bot.SeverityHigh))
	h.poll()
	h.drain()
	missing := h.run(chA, analyst, "show no-such-alert")
	for _, cmd := range []string{"show secret-b", "ack secret-b", "resolve secret-b truepositive", "comment secret-b hi", "reopen secret-b", "show " + tenantB + "/secret-b"} {
		out := h.run(chA, analyst, cmd)
		contains(t, out, "not found")
		notContains(t, out, "Fabrikam")
		// Indistinguishable from a missing id, apart from the id itself.
		if strings.ReplaceAll(out, strings.Fields(cmd)[1], "X") != strings.ReplaceAll(missing, "no-such-alert", "X") {
			t.Errorf("%q answered %q, a missing id answers %q", cmd, out, missing)
		}
	}
	// Customer channel lists only its tenant, and cannot ask for another.
	notContains(t, h.run(chA, analyst, "alerts all"), "secret-b")
	contains(t, h.run(chA, analyst, "alerts tenant="+tenantB), "only valid in SOC channels")
	// A click in A on B's card message is refused.
	card := h.chat.cardFor(chB, "secret-b")
	contains(t, h.click(chA, analyst, bot.ActionAck, "secret-b", card.ID), "does not belong")
	if _, err := h.svc.ProcessWriteBacks(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(h.target.list()) != 0 {
		t.Fatal("a refused command reached Defender")
	}
	// The SOC channel sees it.
	contains(t, h.run(chSOC, analyst, "show secret-b"), "Fabrikam")
}

func TestClicks(t *testing.T) {
	h := newHarness(t)
	h.src.put(h.alert(tenantA, "c1", bot.SeverityHigh))
	h.src.put(h.alert(tenantA, "c2", bot.SeverityHigh))
	h.poll()
	h.drain()
	c1, c2 := h.chat.cardFor(chA, "c1"), h.chat.cardFor(chA, "c2")
	// Ack button of c1 pressed on c2's card: refused.
	contains(t, h.click(chA, custA, bot.ActionAck, "c1", c2.ID), "does not belong")
	contains(t, h.click(chA, custA, bot.ActionAck, "c1", "nonexistent"), "does not belong")
	contains(t, h.click(chA, custA, bot.ActionAck, "c1", c1.ID), "Acknowledged `c1`")
	// Resolve opens the chooser, whose buttons resolve.
	out := h.click(chA, custA, bot.ActionResolve, "c2", c2.ID)
	contains(t, out, "alert_resolve_as c2:truepositive")
	contains(t, h.click(chA, custA, bot.ActionResolveAs, "c2:falsepositive", c1.ID), "does not belong") // another card
	contains(t, h.click(chA, custA, bot.ActionResolveAs, "c2:falsepositive", "ephemeral"), "does not belong")
	contains(t, h.click(chA, custA, bot.ActionResolveAs, "c2:falsepositive", c2.ID), "Resolved `c2` as FalsePositive")
	contains(t, h.click(chA, custA, bot.ActionResolveAs, "c2:bogus", c2.ID), "not valid")
	// Clicking in the SOC channel works on the SOC card.
	h.drain()
	soc := h.chat.cardFor(chSOC, "c1")
	contains(t, h.click(chSOC, analyst, bot.ActionAck, "c1", soc.ID), "Acknowledged")
}

func TestCustomersCannotAckWhenDisallowed(t *testing.T) {
	h := newHarness(t, func(c *bot.Config) { c.CustomersCanAck = false })
	h.src.put(h.alert(tenantA, "n1", bot.SeverityHigh))
	h.poll()
	h.drain()
	contains(t, h.run(chA, custA, "ack n1"), "Only the MSSP's SOC analysts")
	contains(t, h.click(chA, custA, bot.ActionAck, "n1", h.chat.cardFor(chA, "n1").ID), "Only the MSSP's SOC analysts")
	contains(t, h.run(chA, analyst, "ack n1"), "Acknowledged")
	contains(t, h.run(chA, analyst, "audit"), "refused")
}

func TestSOCAmbiguousAlertID(t *testing.T) {
	h := newHarness(t)
	h.src.put(h.alert(tenantA, "dup", bot.SeverityHigh))
	h.src.put(h.alert(tenantB, "dup", bot.SeverityHigh))
	h.poll()
	out := h.run(chSOC, analyst, "show dup")
	contains(t, out, "several tenants")
	contains(t, out, tenantA+"/dup")
	contains(t, h.run(chSOC, analyst, "show "+tenantB+"/dup"), "Fabrikam")
	contains(t, h.run(chSOC, analyst, "ack "+tenantA+"/dup"), "Acknowledged")
	// In a customer channel the id is its own tenant's.
	contains(t, h.run(chB, analyst, "show dup"), "Fabrikam")
}

func TestRulesCommands(t *testing.T) {
	h := newHarness(t)
	contains(t, h.run(chA, custA, "rules"), "default applies (severity>=medium)")
	contains(t, h.run(chSOC, analyst, "rules"), "severity>=high")
	contains(t, h.run(chA, custA, "rules add severity>=low"), "Only the MSSP's SOC analysts")
	out := h.run(chA, analyst, `rules add severity>=low title~"powershell command"`)
	contains(t, out, "added")
	var id int64
	if _, err := fmt.Sscanf(out[strings.Index(out, "#"):], "#%d", &id); err != nil {
		t.Fatalf("no rule id in %q", out)
	}
	contains(t, h.run(chA, custA, "rules"), fmt.Sprintf("#%d", id))
	contains(t, h.run(chA, analyst, "rules add tenant="+tenantB), "only valid in SOC channels")
	// Removing from another channel does not work.
	contains(t, h.run(chB, analyst, fmt.Sprintf("rules remove %d", id)), "not a rule of this channel")
	contains(t, h.run(chA, analyst, fmt.Sprintf("rules remove %d", id)), "removed")
	// The new rule changes what is posted: low alerts with the title.
	h.run(chA, analyst, `rules add severity>=low title~powershell`)
	a := h.alert(tenantA, "ps1", bot.SeverityLow)
	a.Title = "Suspicious PowerShell command line"
	h.src.put(a)
	h.src.put(h.alert(tenantA, "hi1", bot.SeverityHigh)) // no rule matches any more
	h.poll()
	h.drain()
	if h.chat.cardFor(chA, "ps1") == nil || h.chat.cardFor(chA, "hi1") != nil {
		t.Fatal("rules not applied")
	}
	contains(t, h.run(chSOC, analyst, "rules add tenant="+tenantA+" severity>=medium"), "added")
}

func TestLinkNeedsConfirmAndSOC(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if err := h.db.CreateTenant(ctx, bot.Tenant{ID: "11111111-2222-3333-4444-555555555555", Name: "Northwind", State: bot.TenantActive}); err != nil {
		t.Fatal(err)
	}
	chN := bot.ChannelRef("test:northwind")
	contains(t, h.run(chN, custA, "link 11111111-2222-3333-4444-555555555555"), "Only the MSSP's SOC analysts")
	contains(t, h.run(chA, analyst, "link 11111111-2222-3333-4444-555555555555"), "already linked to another tenant")
	contains(t, h.run(chA, analyst, "link "+tenantA), "already linked to Contoso")
	contains(t, h.run(chSOC, analyst, "link 11111111-2222-3333-4444-555555555555"), "SOC channel")
	contains(t, h.run(chN, analyst, "link "+tenantB), "managed in config")
	m := h.svc.Execute(ctx, bot.Command{Platform: "test", Channel: chN, User: analyst, Origin: bot.OriginTyped, Text: "link 11111111-2222-3333-4444-555555555555"})
	if len(m.Buttons) != 1 || m.Buttons[0].ActionID != bot.ActionLinkConfrm {
		t.Fatalf("link prompt %+v", m)
	}
	// Not linked until confirmed; a customer cannot confirm.
	contains(t, h.run(chN, analyst, "alerts"), "not linked")
	contains(t, h.click(chN, custA, bot.ActionLinkConfrm, m.Buttons[0].Value, ""), "Only the MSSP's SOC analysts")
	contains(t, h.click(chA, analyst, bot.ActionLinkConfrm, m.Buttons[0].Value, ""), "not valid")
	contains(t, h.click(chN, analyst, bot.ActionLinkConfrm, m.Buttons[0].Value, ""), "now linked to Northwind")
	contains(t, h.click(chN, analyst, bot.ActionLinkConfrm, m.Buttons[0].Value, ""), "not valid")
	contains(t, h.run(chN, custA, "alerts"), "Northwind")
	contains(t, h.run(chN, analyst, "unlink"), "no longer linked")
	contains(t, h.run(chA, analyst, "unlink"), "managed in config")
	contains(t, h.run(chSOC, analyst, "audit"), "link")
}

func TestListsStatusTenantsAudit(t *testing.T) {
	h := newHarness(t)
	for i := range 25 {
		a := h.alert(tenantA, fmt.Sprintf("l%02d", i), bot.SeverityMedium)
		a.CreatedAt = a.CreatedAt.Add(time.Duration(i) * time.Second)
		h.src.put(a)
	}
	h.poll()
	out := h.run(chA, custA, "alerts")
	contains(t, out, "`l24`")
	contains(t, out, "5 more")
	notContains(t, out, "`l00`") // newest first, limit 20
	contains(t, h.run(chA, custA, "alerts limit 5 severity>=high"), "No matching alerts")
	contains(t, h.run(chA, custA, "alerts bogus"), "Usage")
	contains(t, h.run(chA, custA, "tenants"), "Only the MSSP's SOC analysts")
	out = h.run(chSOC, analyst, "tenants")
	contains(t, out, tenantA)
	contains(t, out, "Fabrikam")
	contains(t, h.run(chA, custA, "status"), "Fetching OK")
	contains(t, h.run(chSOC, analyst, "status"), "2 active")
	contains(t, h.run(chA, custA, "help"), "alerts")
	contains(t, h.run(bot.ChannelRef("test:random"), custA, "alerts"), "not linked")
	contains(t, h.run(bot.ChannelRef("test:random"), custA, "help"), "alerts")
}

func TestAuthFailuresTurnTenantFailingOnce(t *testing.T) {
	h := newHarness(t)
	h.src.put(h.alert(tenantA, "f1", bot.SeverityHigh))
	h.poll()
	h.drain()
	socBefore, custBefore := len(h.chat.posts(chSOC)), len(h.chat.posts(chA))
	h.src.setErr(tenantA, fmt.Errorf("list alerts: %w", bot.ErrAuth))
	for range 2 {
		h.clk.Add(time.Minute)
		h.poll()
	}
	if tn, _ := h.db.FindTenant(context.Background(), tenantA); tn.State != bot.TenantActive {
		t.Fatalf("state after 2 failures: %s", tn.State)
	}
	for range 4 {
		h.clk.Add(time.Hour) // past any backoff
		h.poll()
	}
	h.drain()
	tn, _ := h.db.FindTenant(context.Background(), tenantA)
	if tn.State != bot.TenantFailing {
		t.Fatalf("state after 6 failures: %s", tn.State)
	}
	if got := len(h.chat.posts(chSOC)) - socBefore; got != 1 {
		t.Fatalf("SOC got %d notices, want 1", got)
	}
	if got := len(h.chat.posts(chA)) - custBefore; got != 1 {
		t.Fatalf("customer got %d notices, want 1", got)
	}
	contains(t, h.chat.posts(chA)[custBefore].Msg.Text, "lost access")
	contains(t, h.run(chSOC, analyst, "status"), "access refused")
	contains(t, h.run(chA, custA, "status"), "Access lost")
	// Tenant B is unaffected.
	if tb, _ := h.db.FindTenant(context.Background(), tenantB); tb.State != bot.TenantActive {
		t.Fatal("B affected")
	}
	// Recovery: one message each.
	h.src.setErr(tenantA, nil)
	h.clk.Add(time.Hour)
	h.poll()
	h.clk.Add(time.Hour)
	h.poll()
	h.drain()
	if tn, _ := h.db.FindTenant(context.Background(), tenantA); tn.State != bot.TenantActive {
		t.Fatalf("state after success: %s", tn.State)
	}
	if got := len(h.chat.posts(chSOC)) - socBefore; got != 2 {
		t.Fatalf("SOC got %d notices in all, want 2", got)
	}
	if got := len(h.chat.posts(chA)) - custBefore; got != 2 {
		t.Fatalf("customer got %d notices in all, want 2", got)
	}
	audit := h.run(chSOC, analyst, "audit")
	contains(t, audit, "tenant failing")
	contains(t, audit, "tenant active")
}

func TestPropagationWindowPostsNothing(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	now := h.clk.Now()
	if _, err := h.db.UpdateTenant(ctx, tenantA, bot.TenantUpdate{ActivatedAt: &now}); err != nil {
		t.Fatal(err)
	}
	h.src.setErr(tenantA, fmt.Errorf("403: %w", bot.ErrAuth))
	for range 5 {
		h.clk.Add(time.Minute)
		h.poll()
	}
	h.drain()
	if n := len(h.chat.posts(chSOC)) + len(h.chat.posts(chA)); n != 0 {
		t.Fatalf("%d messages during the propagation window", n)
	}
	if tn, _ := h.db.FindTenant(ctx, tenantA); tn.State != bot.TenantActive || tn.AuthFailures != 0 {
		t.Fatalf("tenant %s with %d failures during propagation", tn.State, tn.AuthFailures)
	}
}

func TestWatermarkAndOverlap(t *testing.T) {
	h := newHarness(t)
	a := h.alert(tenantA, "wm1", bot.SeverityHigh)
	h.src.put(a)
	h.poll()
	first := h.src.calls[tenantA][0]
	if want := h.clk.Now().Add(-24 * time.Hour); !first.Equal(want) {
		t.Fatalf("first pass since %v, want lookback %v", first, want)
	}
	h.clk.Add(time.Minute)
	h.poll()
	second := h.src.calls[tenantA][1]
	if want := a.LastUpdatedAt.Add(-5 * time.Minute); !second.Equal(want) {
		t.Fatalf("second pass since %v, want watermark-overlap %v", second, want)
	}
	h.drain()
	if n := len(h.chat.posts(chA)); n != 1 {
		t.Fatalf("overlap re-fetch posted %d cards", n)
	}
}

func TestDispatcherCrashAfterPostIsFoundNotReposted(t *testing.T) {
	h := newHarness(t)
	h.src.put(h.alert(tenantA, "cr1", bot.SeverityMedium))
	h.poll()
	h.chat.crashAfter = true
	if _, err := h.svc.Dispatch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(h.chat.posts(chA)); n != 1 {
		t.Fatalf("posted %d before the crash", n)
	}
	h.restart()
	h.drain()
	if n := len(h.chat.posts(chA)); n != 1 {
		t.Fatalf("card posted %d times after restart", n)
	}
	// The recovered message id is the card's: an ack edits it.
	contains(t, h.run(chA, analyst, "ack cr1"), "Acknowledged")
	h.drain()
	card := h.chat.cardFor(chA, "cr1")
	if len(h.chat.lines(card.ID)) != 1 {
		t.Fatal("thread line did not reach the recovered card")
	}
}

func TestDispatcherCrashBeforePostPostsOnce(t *testing.T) {
	h := newHarness(t)
	h.src.put(h.alert(tenantA, "cr2", bot.SeverityMedium))
	h.poll()
	h.chat.crashBefore = true
	if _, err := h.svc.Dispatch(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.restart()
	h.drain()
	if n := len(h.chat.posts(chA)); n != 1 {
		t.Fatalf("card posted %d times, want 1", n)
	}
}

func TestRetryAfterHoldsOnlyThatChannel(t *testing.T) {
	h := newHarness(t)
	h.src.put(h.alert(tenantA, "ra1", bot.SeverityMedium))
	h.src.put(h.alert(tenantB, "rb1", bot.SeverityMedium))
	h.poll()
	h.chat.failPost = func(ch bot.ChannelRef) error {
		if ch == chA {
			return bot.RetryAfterError(30*time.Second, errBoom)
		}
		return nil
	}
	h.drain()
	if h.chat.cardFor(chB, "rb1") == nil {
		t.Fatal("B was delayed by A's rate limit")
	}
	if len(h.chat.posts(chA)) != 0 {
		t.Fatal("A posted while rate limited")
	}
	h.chat.failPost = nil
	h.clk.Add(10 * time.Second)
	h.drain()
	if len(h.chat.posts(chA)) != 0 {
		t.Fatal("A posted before Retry-After elapsed")
	}
	h.clk.Add(25 * time.Second)
	h.drain()
	if h.chat.cardFor(chA, "ra1") == nil {
		t.Fatal("A not posted after Retry-After")
	}
}

func TestPermanentFailureReportedOnce(t *testing.T) {
	h := newHarness(t)
	h.chat.failPost = func(ch bot.ChannelRef) error {
		if ch == chA {
			return bot.PermanentError("channel_not_found", nil)
		}
		return nil
	}
	h.src.put(h.alert(tenantA, "pf1", bot.SeverityMedium))
	h.src.put(h.alert(tenantA, "pf2", bot.SeverityMedium))
	h.poll()
	h.drain()
	var notices int
	for _, m := range h.chat.posts(chSOC) {
		if m.Msg.Kind == bot.MessageNotice && strings.Contains(m.Msg.Text, "channel_not_found") {
			notices++
		}
	}
	if notices != 1 {
		t.Fatalf("SOC told %d times, want once", notices)
	}
	contains(t, h.run(chSOC, analyst, "status"), "channel_not_found")
	// Once the channel works again the failure clears.
	h.chat.failPost = nil
	h.clk.Add(time.Minute)
	h.src.put(h.alert(tenantA, "pf3", bot.SeverityMedium))
	h.poll()
	h.drain()
	notContains(t, h.run(chSOC, analyst, "status"), "channel_not_found")
}

func TestTransientSendErrorRetriesAndPostsOnce(t *testing.T) {
	h := newHarness(t)
	h.src.put(h.alert(tenantA, "t1", bot.SeverityMedium))
	h.poll()
	fails := 2
	h.chat.failPost = func(ch bot.ChannelRef) error {
		if fails > 0 {
			fails--
			return &bot.SendError{Reason: "500", Err: errBoom}
		}
		return nil
	}
	for range 5 {
		h.drain()
		h.clk.Add(10 * time.Minute)
	}
	if n := len(h.chat.posts(chA)); n != 1 {
		t.Fatalf("posted %d times", n)
	}
}

func TestAutocompleteAlertsStaysInTenant(t *testing.T) {
	h := newHarness(t)
	h.src.put(h.alert(tenantA, "da-a1", bot.SeverityHigh))
	h.src.put(h.alert(tenantB, "da-b1", bot.SeverityHigh))
	h.poll()
	got := h.svc.AutocompleteAlerts(context.Background(), chA, custA, "da")
	if len(got) != 1 || got[0] != "da-a1" {
		t.Fatalf("customer A autocomplete %v", got)
	}
	if got := h.svc.AutocompleteAlerts(context.Background(), chSOC, analyst, "DA-"); len(got) != 2 {
		t.Fatalf("SOC autocomplete %v", got)
	}
	if got := h.svc.AutocompleteAlerts(context.Background(), "test:unlinked", custA, ""); len(got) != 0 {
		t.Fatalf("unlinked channel autocomplete %v", got)
	}
}

func TestMessageOnlyFailureDoesNotFailChannel(t *testing.T) {
	h := newHarness(t)
	h.chat.failPost = func(ch bot.ChannelRef) error {
		if ch == chA {
			return bot.MessageError("msg_too_long", nil)
		}
		return nil
	}
	h.src.put(h.alert(tenantA, "mo1", bot.SeverityMedium))
	h.poll()
	h.drain()
	for _, m := range h.chat.posts(chSOC) {
		notContains(t, m.Msg.Text, "msg_too_long")
	}
	notContains(t, h.run(chSOC, analyst, "status"), "msg_too_long")
	contains(t, h.run(chSOC, analyst, "status"), "1 failed")
}

// The card shows who changed the alert from chat, until Defender changes it.
func TestCardShowsWhoChangedIt(t *testing.T) {
	h := newHarness(t)
	h.src.put(h.alert(tenantA, "wc1", bot.SeverityHigh))
	h.poll()
	h.drain()
	card := h.chat.cardFor(chA, "wc1")
	if got := h.chat.messages[card.ID].Msg.Card.UpdatedBy; got != "" {
		t.Fatalf("new card names %q", got)
	}
	h.run(chA, analyst, "resolve wc1 falsepositive")
	h.drain()
	if got := h.chat.messages[card.ID].Msg.Card.UpdatedBy; got != "test user analyst" {
		t.Fatalf("after resolve the card names %q", got)
	}
	// A re-fetch of the same version keeps it (after a restart too).
	h.restart()
	h.clk.Add(time.Minute)
	h.poll()
	h.drain()
	contains(t, h.run(chA, analyst, "ack wc1"), "resolved")
	if _, err := h.svc.ProcessWriteBacks(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Defender changes the alert: the card no longer names the analyst.
	a := h.alert(tenantA, "wc1", bot.SeverityHigh)
	a.Status, a.LastUpdatedAt = bot.StatusNew, h.clk.Now()
	h.src.put(a)
	h.clk.Add(time.Minute)
	h.poll()
	h.drain()
	if got := h.chat.messages[card.ID].Msg.Card.UpdatedBy; got != "" {
		t.Fatalf("after a Defender change the card still names %q", got)
	}
}
