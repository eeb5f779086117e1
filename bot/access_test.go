package bot_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

const tenantN = "11111111-2222-3333-4444-555555555555" // Northwind, not in config

var chN = bot.ChannelRef("test:northwind")

// onboard runs onboard in chN and returns the posted prompt and its state.
func (h *harness) onboard() (*fakeMsg, string) {
	h.t.Helper()
	out := h.run(chN, analyst, "onboard "+tenantN+" Northwind Traders")
	if !strings.Contains(out, "Approval prompt") {
		h.t.Fatalf("onboard answered %q", out)
	}
	h.drain()
	posts := h.chat.posts(chN)
	if len(posts) == 0 {
		h.t.Fatal("no prompt posted")
	}
	p := posts[len(posts)-1]
	for _, b := range p.Msg.Buttons {
		if b.URL != "" {
			u, err := url.Parse(b.URL)
			if err != nil {
				h.t.Fatal(err)
			}
			return p, u.Query().Get("state")
		}
	}
	h.t.Fatalf("prompt without Grant link: %+v", p.Msg)
	return nil, ""
}

func (h *harness) callback(q url.Values) bot.ConsentResult {
	return h.svc.ConsentCallback(context.Background(), q)
}

func ok(tenant, state string) url.Values {
	return url.Values{"admin_consent": {"True"}, "tenant": {tenant}, "state": {state}}
}

func (h *harness) tenantState(id string) bot.TenantState {
	t, err := h.db.FindTenant(context.Background(), id)
	if err != nil {
		return ""
	}
	return t.State
}

func TestOnboardConsentGrant(t *testing.T) {
	h := newHarness(t)
	prompt, state := h.onboard()
	if len(state) < 43 { // 32 bytes base64url
		t.Fatalf("state %q too short", state)
	}
	m := prompt.Msg
	if m.Kind != bot.MessagePrompt || !strings.Contains(fieldText(m), "Alert.ReadWrite.All") || !strings.Contains(render(m), "access_decline") {
		t.Fatalf("prompt %s", render(m))
	}
	if h.tenantState(tenantN) != bot.TenantPending {
		t.Fatalf("tenant %s before consent", h.tenantState(tenantN))
	}
	// Alerts do not flow before the grant.
	h.src.put(h.alert(tenantN, "n1", bot.SeverityHigh))
	h.poll()
	h.drain()
	if h.chat.cardFor(chN, "n1") != nil {
		t.Fatal("alerts flowed before consent")
	}
	h.access.consent(tenantN)
	res := h.callback(ok(tenantN, state))
	if res.Status != 200 || !strings.Contains(res.Title, "granted") {
		t.Fatalf("callback %+v", res)
	}
	if h.tenantState(tenantN) != bot.TenantActive || h.triggers.Load() != 1 {
		t.Fatalf("tenant %s, triggers %d", h.tenantState(tenantN), h.triggers.Load())
	}
	h.poll()
	h.drain()
	if h.chat.cardFor(chN, "n1") == nil {
		t.Fatal("no alerts after the grant")
	}
	// Prompt edited (no buttons, outcome), SOC told, audit.
	got := h.chat.messages[prompt.ID].Msg
	if len(got.Buttons) != 0 || !strings.Contains(render(got)+fieldText(got), "Access granted") {
		t.Fatalf("prompt after grant: %s %s", render(got), fieldText(got))
	}
	var told bool
	for _, p := range h.chat.posts(chSOC) {
		told = told || strings.Contains(p.Msg.Text, "granted access")
	}
	if !told {
		t.Fatal("SOC not told")
	}
	audit := h.run(chSOC, analyst, "audit")
	contains(t, audit, "onboard "+tenantN)
	contains(t, audit, "consent")
	// Replayed state: refused, nothing changes.
	if res := h.callback(ok(tenantN, state)); res.Status != 400 {
		t.Fatalf("replay answered %d", res.Status)
	}
	// Decline after grant is refused.
	contains(t, h.click(chN, custA, bot.ActionDecline, "1", prompt.ID), "not open")
	if h.tenantState(tenantN) != bot.TenantActive {
		t.Fatal("decline after grant changed the tenant")
	}
	contains(t, h.run(chN, analyst, "onboard "+tenantN+" Northwind"), "already active")
}

func fieldText(m bot.Message) string {
	var b strings.Builder
	for _, f := range m.Fields {
		b.WriteString(f.Label + ": " + f.Value + "\n")
	}
	return b.String()
}

func TestConsentCallbackFailures(t *testing.T) {
	cases := []struct {
		name    string
		query   func(state string) url.Values
		status  int
		outcome string
		consent bool
		advance time.Duration
	}{
		{"access denied", func(s string) url.Values {
			q := ok(tenantN, s)
			q.Set("error", "access_denied")
			q.Set("error_description", `<script>alert("x")</script> AADSTS65004: User declined`)
			return q
		}, 200, "Declined", false, 0},
		{"other error", func(s string) url.Values {
			q := ok(tenantN, s)
			q.Set("error", "server_error")
			return q
		}, 200, "Consent failed", false, 0},
		{"forged state", func(s string) url.Values { return ok(tenantN, s+"x") }, 400, "", true, 0},
		{"no state", func(s string) url.Values { return url.Values{"tenant": {tenantN}} }, 400, "", true, 0},
		{"tenant mismatch", func(s string) url.Values { return ok(tenantA, s) }, 400, "another tenant", true, 0},
		{"proof fails", func(s string) url.Values { return ok(tenantN, s) }, 400, "could not be verified", false, 0},
		{"expired", func(s string) url.Values { return ok(tenantN, s) }, 400, "Expired", true, 25 * time.Hour},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			prompt, state := h.onboard()
			if tc.consent {
				h.access.consent(tenantN)
			}
			h.clk.Add(tc.advance)
			res := h.callback(tc.query(state))
			if res.Status != tc.status {
				t.Fatalf("status %d, want %d (%+v)", res.Status, tc.status, res)
			}
			notContains(t, res.Text, state)
			if h.tenantState(tenantN) != bot.TenantPending {
				t.Fatalf("tenant %s, want pending", h.tenantState(tenantN))
			}
			h.drain()
			got := h.chat.messages[prompt.ID].Msg
			if tc.outcome != "" {
				contains(t, fieldText(got), tc.outcome)
				if len(got.Buttons) != 0 {
					t.Fatal("closed prompt still has buttons")
				}
				// The state is used up: the same callback again is refused.
				if res := h.callback(ok(tenantN, state)); res.Status != 400 {
					t.Fatalf("state reusable after %s", tc.name)
				}
			} else if len(got.Buttons) != 2 {
				t.Fatal("a forged callback changed the prompt")
			}
			if h.triggers.Load() != 0 {
				t.Fatal("fetch triggered without a grant")
			}
		})
	}
}

func TestSupersededState(t *testing.T) {
	h := newHarness(t)
	first, oldState := h.onboard()
	_, newState := h.onboard()
	h.drain()
	old := h.chat.messages[first.ID].Msg
	if len(old.Buttons) != 0 || !strings.Contains(fieldText(old), "Superseded") {
		t.Fatalf("the old prompt still offers its buttons: %s %s", render(old), fieldText(old))
	}
	if lines := h.chat.lines(first.ID); len(lines) != 1 || !strings.Contains(lines[0], "newer approval prompt") {
		t.Fatalf("old prompt thread %q", lines)
	}
	h.access.consent(tenantN)
	if res := h.callback(ok(tenantN, oldState)); res.Status != 400 {
		t.Fatalf("superseded state answered %d", res.Status)
	}
	if res := h.callback(ok(tenantN, newState)); res.Status != 200 {
		t.Fatalf("new state answered %d", res.Status)
	}
}

func TestDecline(t *testing.T) {
	h := newHarness(t)
	prompt, state := h.onboard()
	var id string
	for _, b := range prompt.Msg.Buttons {
		if b.ActionID == bot.ActionDecline {
			id = b.Value
		}
	}
	contains(t, h.click(chA, custA, bot.ActionDecline, id, prompt.ID), "not open") // another channel
	contains(t, h.click(chN, custA, bot.ActionDecline, id, prompt.ID), "Declined")
	h.access.consent(tenantN)
	if res := h.callback(ok(tenantN, state)); res.Status != 400 {
		t.Fatal("consent accepted after decline")
	}
	if h.tenantState(tenantN) != bot.TenantPending {
		t.Fatal("declined tenant not pending")
	}
	contains(t, h.run(chSOC, analyst, "audit"), "decline")
}

func TestOnboardRefusals(t *testing.T) {
	h := newHarness(t)
	contains(t, h.run(chSOC, analyst, "onboard "+tenantN+" X"), "not in a SOC channel")
	contains(t, h.run(chN, custA, "onboard "+tenantN+" X"), "Only the MSSP's SOC analysts")
	contains(t, h.run(chA, analyst, "onboard "+tenantN+" X"), "already linked to another tenant")
	contains(t, h.run(chN, analyst, "onboard "+tenantA+" X"), "managed in config")
	contains(t, h.run(chN, analyst, "onboard not-a-guid X"), "Usage")
	h.onboard()
	contains(t, h.run(bot.ChannelRef("test:other"), analyst, "onboard "+tenantN+" X"), "linked to another channel")
	contains(t, h.run(chN, analyst, "link "+tenantB), "already linked to another tenant")
	contains(t, h.run(chN, custA, "offboard"), "Only the MSSP's SOC analysts")
	contains(t, h.run(chSOC, analyst, "audit"), "refused")
}

func TestOnboardDisabledWithoutPublicURL(t *testing.T) {
	h := newHarness(t, func(c *bot.Config) { c.PublicURL = "" })
	contains(t, h.run(chN, analyst, "onboard "+tenantN+" X"), "http.public_url")
}

func TestPreconsentedNeedsConfirm(t *testing.T) {
	h := newHarness(t)
	h.access.consent(tenantN)
	out := h.run(chN, analyst, "onboard "+tenantN+" Northwind")
	contains(t, out, "already consented")
	h.drain()
	if len(h.chat.posts(chN)) != 0 {
		t.Fatal("customer prompt posted for a pre-consented tenant")
	}
	soc := h.chat.posts(chSOC)
	p := soc[len(soc)-1]
	if len(p.Msg.Buttons) != 1 || p.Msg.Buttons[0].ActionID != bot.ActionConfirm {
		t.Fatalf("SOC prompt %s", render(p.Msg))
	}
	if h.tenantState(tenantN) == bot.TenantActive {
		t.Fatal("active before confirm")
	}
	contains(t, h.click(chSOC, custA, bot.ActionConfirm, p.Msg.Buttons[0].Value, p.ID), "Only the MSSP's SOC analysts")
	contains(t, h.click(chN, analyst, bot.ActionConfirm, p.Msg.Buttons[0].Value, p.ID), "not open")
	contains(t, h.click(chSOC, analyst, bot.ActionConfirm, p.Msg.Buttons[0].Value, p.ID), "Confirmed")
	if h.tenantState(tenantN) != bot.TenantActive {
		t.Fatal("not active after confirm")
	}
	contains(t, h.run(chN, custA, "status"), "first fetch")
	contains(t, h.click(chSOC, analyst, bot.ActionConfirm, p.Msg.Buttons[0].Value, p.ID), "not open")
}

func TestOffboard(t *testing.T) {
	h := newHarness(t)
	_, state := h.onboard()
	h.access.consent(tenantN)
	h.callback(ok(tenantN, state))
	h.poll()
	h.drain()
	h.src.put(h.alert(tenantN, "o1", bot.SeverityHigh))
	h.poll() // queued, not sent
	h.run(chN, analyst, "ack o1")
	contains(t, h.run(chN, analyst, "offboard"), "offboarded")
	if h.tenantState(tenantN) != bot.TenantRevoked {
		t.Fatal("not revoked")
	}
	h.drain()
	if h.chat.cardFor(chN, "o1") != nil {
		t.Fatal("pending card sent after offboard")
	}
	if _, err := h.svc.ProcessWriteBacks(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(h.target.list()) != 0 {
		t.Fatal("pending write-back sent after offboard")
	}
	posts := h.chat.posts(chN)
	contains(t, posts[len(posts)-1].Msg.Text, "app-1234")
	// Not fetched any more.
	calls := len(h.src.calls[tenantN])
	h.clk.Add(time.Hour)
	h.poll()
	if len(h.src.calls[tenantN]) != calls {
		t.Fatal("revoked tenant fetched")
	}
	contains(t, h.run(chN, custA, "alerts"), "not linked")
	// A later onboard starts over.
	h.access.consented[tenantN] = false
	h.onboard()
	if h.tenantState(tenantN) != bot.TenantPending {
		t.Fatal("re-onboard did not start over")
	}
}

func TestPromptStateRegeneratedAfterRestart(t *testing.T) {
	h := newHarness(t)
	h.run(chN, analyst, "onboard "+tenantN+" Northwind")
	h.restart() // the state lived only in memory
	h.drain()
	posts := h.chat.posts(chN)
	var state string
	for _, b := range posts[len(posts)-1].Msg.Buttons {
		if b.URL != "" {
			u, _ := url.Parse(b.URL)
			state = u.Query().Get("state")
		}
	}
	if state == "" {
		t.Fatal("prompt posted after restart without a Grant link")
	}
	h.access.consent(tenantN)
	if res := h.callback(ok(tenantN, state)); res.Status != 200 {
		t.Fatalf("regenerated state answered %+v", res)
	}
}

// An Entra outage during the pre-consent check must not be taken for "not
// consented": that would skip the SOC Confirm for a consented tenant.
func TestOnboardRefusedWhenAccessCheckFails(t *testing.T) {
	h := newHarness(t)
	h.access.consent(tenantN)
	h.access.outage = errors.New("token endpoint: 503")
	contains(t, h.run(chN, analyst, "onboard "+tenantN+" Northwind"), "Could not check")
	h.drain()
	if len(h.chat.posts(chN)) != 0 || h.tenantState(tenantN) != "" {
		t.Fatal("onboard went ahead without knowing whether the tenant is consented")
	}
	if _, err := h.db.TenantOfChannel(context.Background(), chN); err == nil {
		t.Fatal("channel linked")
	}
}

// A consent link made for a channel that was unlinked must not link it
// later, even once the tenant was confirmed elsewhere.
func TestStaleConsentCannotRelinkOldChannel(t *testing.T) {
	h := newHarness(t)
	_, state := h.onboard() // in chN, the wrong channel
	contains(t, h.run(chN, analyst, "unlink"), "no longer linked")
	h.access.consent(tenantN)
	chRight := bot.ChannelRef("test:right")
	contains(t, h.run(chRight, analyst, "onboard "+tenantN+" Northwind"), "already consented")
	h.drain()
	soc := h.chat.posts(chSOC)
	p := soc[len(soc)-1]
	contains(t, h.click(chSOC, analyst, bot.ActionConfirm, p.Msg.Buttons[0].Value, p.ID), "Confirmed")
	if res := h.callback(ok(tenantN, state)); res.Status != 400 {
		t.Fatalf("stale state answered %+v", res)
	}
	chs, err := h.db.ChannelsOfTenant(context.Background(), tenantN)
	if err != nil || len(chs) != 1 || chs[0] != chRight {
		t.Fatalf("tenant channels %v, %v", chs, err)
	}
}

// The unlinked channel's prompt is closed and the Confirm path supersedes
// an open consent prompt in the customer's channel.
func TestConfirmSupersedesOpenConsent(t *testing.T) {
	h := newHarness(t)
	prompt, state := h.onboard()
	h.access.consent(tenantN) // consented out of band meanwhile
	contains(t, h.run(chN, analyst, "onboard "+tenantN+" Northwind"), "already consented")
	h.drain()
	if got := h.chat.messages[prompt.ID].Msg; len(got.Buttons) != 0 {
		t.Fatal("the customer's consent prompt still offers Grant and Decline")
	}
	if res := h.callback(ok(tenantN, state)); res.Status != 400 {
		t.Fatalf("superseded consent answered %+v", res)
	}
}

// Replaying a used state again and again adds one thread line, not one each.
func TestLateCallbacksReportedOnce(t *testing.T) {
	h := newHarness(t)
	prompt, state := h.onboard()
	h.access.consent(tenantN)
	if res := h.callback(ok(tenantN, state)); res.Status != 200 {
		t.Fatal(res)
	}
	h.drain()
	before := len(h.chat.lines(prompt.ID))
	for range 5 {
		if res := h.callback(ok(tenantN, state)); res.Status != 400 {
			t.Fatal(res)
		}
	}
	h.drain()
	if got := len(h.chat.lines(prompt.ID)) - before; got != 1 {
		t.Fatalf("%d thread lines for 5 replays, want 1", got)
	}
}
