package sqlite

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

func TestTenantLifecycle(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	db.now = func() time.Time { return t0 }
	upper := strings.ToUpper(tenantA)
	must(t, db.CreateTenant(ctx, bot.Tenant{ID: upper, Name: "Contoso"}))
	got, err := db.FindTenant(ctx, tenantA)
	must(t, err)
	if got.ID != tenantA || got.State != bot.TenantPending || got.Name != "Contoso" || !got.CreatedAt.Equal(t0) {
		t.Fatalf("FindTenant = %+v", got)
	}
	if _, err := db.FindTenant(ctx, upper); err != nil {
		t.Fatalf("tenant ids compare case-insensitively: %v", err)
	}
	_, err = db.FindTenant(ctx, tenantB)
	wantCode(t, err, bot.ENOTFOUND)
	wantCode(t, db.CreateTenant(ctx, bot.Tenant{}), bot.EINVALID)

	active, fails, errText, when := bot.TenantActive, 2, "token refused", t0.Add(time.Minute)
	got, err = db.UpdateTenant(ctx, tenantA, bot.TenantUpdate{State: &active, ActivatedAt: &when, AuthFailures: &fails,
		LastError: &errText, LastSuccess: &when, NextAttempt: &when})
	must(t, err)
	if got.State != active || got.AuthFailures != 2 || got.LastError != errText || !got.ActivatedAt.Equal(when) ||
		!got.LastSuccess.Equal(when) || !got.NextAttempt.Equal(when) || got.Name != "Contoso" {
		t.Fatalf("UpdateTenant = %+v", got)
	}
	if got, err := db.UpdateTenant(ctx, tenantA, bot.TenantUpdate{}); err != nil || got.State != active {
		t.Fatalf("empty update = %+v, %v", got, err)
	}
	_, err = db.UpdateTenant(ctx, tenantB, bot.TenantUpdate{State: &active})
	wantCode(t, err, bot.ENOTFOUND)
	_, err = db.UpdateTenant(ctx, tenantB, bot.TenantUpdate{})
	wantCode(t, err, bot.ENOTFOUND)

	// Onboarding an active tenant again is a conflict; a revoked one is reset.
	wantCode(t, db.CreateTenant(ctx, bot.Tenant{ID: tenantA, Name: "Other", State: bot.TenantPending}), bot.ECONFLICT)
	must(t, db.RevokeTenant(ctx, tenantA))
	must(t, db.CreateTenant(ctx, bot.Tenant{ID: tenantA, Name: "Contoso Ltd", State: bot.TenantPending, CreatedAt: t0.Add(time.Hour)}))
	got, err = db.FindTenant(ctx, tenantA)
	must(t, err)
	if got.State != bot.TenantPending || got.Name != "Contoso Ltd" || got.AuthFailures != 0 || got.LastError != "" ||
		!got.CreatedAt.Equal(t0) {
		t.Fatalf("re-onboarded tenant = %+v", got)
	}
}

func TestFindTenantsByStateAndName(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	mustTenant(t, db, tenantA, "contoso", bot.TenantActive)
	mustTenant(t, db, tenantB, "Fabrikam", bot.TenantFailing)
	mustTenant(t, db, "11111111-1111-1111-1111-111111111111", "Adatum", bot.TenantPending)
	all, err := db.FindTenants(ctx)
	must(t, err)
	if len(all) != 3 || all[0].Name != "Adatum" || all[1].Name != "contoso" || all[2].Name != "Fabrikam" {
		t.Fatalf("FindTenants() = %+v", all)
	}
	some, err := db.FindTenants(ctx, bot.TenantActive, bot.TenantFailing)
	must(t, err)
	if len(some) != 2 || some[0].ID != tenantA || some[1].ID != tenantB {
		t.Fatalf("FindTenants(active, failing) = %+v", some)
	}
	none, err := db.FindTenants(ctx, bot.TenantRevoked)
	must(t, err)
	if len(none) != 0 {
		t.Fatalf("FindTenants(revoked) = %+v", none)
	}
}

func TestLinks(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	mustTenant(t, db, tenantA, "Contoso", bot.TenantActive)
	mustTenant(t, db, tenantB, "Fabrikam", bot.TenantActive)
	_, err := db.TenantOfChannel(ctx, chanA)
	wantCode(t, err, bot.ENOTFOUND)
	must(t, db.Link(ctx, chanA, strings.ToUpper(tenantA)))
	must(t, db.Link(ctx, chanA, tenantA)) // again: no-op
	must(t, db.Link(ctx, "discord:1180000000000000000", tenantA))
	wantCode(t, db.Link(ctx, chanA, tenantB), bot.ECONFLICT)
	wantCode(t, db.Link(ctx, chanB, "22222222-2222-2222-2222-222222222222"), bot.ENOTFOUND)
	wantCode(t, db.Link(ctx, "bad", tenantB), bot.EINVALID)

	id, err := db.TenantOfChannel(ctx, chanA)
	must(t, err)
	if id != tenantA {
		t.Fatalf("TenantOfChannel = %q", id)
	}
	chs, err := db.ChannelsOfTenant(ctx, strings.ToUpper(tenantA))
	must(t, err)
	if len(chs) != 2 || chs[0] != "discord:1180000000000000000" || chs[1] != chanA {
		t.Fatalf("ChannelsOfTenant = %v", chs)
	}
	must(t, db.Unlink(ctx, chanA))
	wantCode(t, db.Unlink(ctx, chanA), bot.ENOTFOUND)
	must(t, db.Link(ctx, chanA, tenantB))
}

func TestApplyConfigTenants(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	// A chat-onboarded tenant that the config now declares.
	mustTenant(t, db, tenantB, "Fabrikam (chat)", bot.TenantPending)
	must(t, db.Link(ctx, "slack:CHAT", tenantB))

	must(t, db.ApplyConfigTenants(ctx, []bot.ConfigTenant{
		{ID: strings.ToUpper(tenantA), Name: "Contoso", Channels: []bot.ChannelRef{chanA, "slack:C2"}},
		{ID: tenantB, Name: "Fabrikam", Channels: []bot.ChannelRef{chanB}},
	}))
	a, err := db.FindTenant(ctx, tenantA)
	must(t, err)
	b, err := db.FindTenant(ctx, tenantB)
	must(t, err)
	if a.State != bot.TenantActive || !a.FromConfig || a.Name != "Contoso" || b.State != bot.TenantActive || !b.FromConfig || b.Name != "Fabrikam" {
		t.Fatalf("config tenants: %+v %+v", a, b)
	}
	chs, err := db.ChannelsOfTenant(ctx, tenantB)
	must(t, err)
	if len(chs) != 1 || chs[0] != chanB {
		t.Fatalf("links of B = %v, want exactly the configured one", chs)
	}

	// Applying again with changes: A loses a channel, B leaves the config.
	must(t, db.Link(ctx, "slack:CHAT-A", tenantA)) // a chat link on a config tenant goes too
	must(t, db.ApplyConfigTenants(ctx, []bot.ConfigTenant{{ID: tenantA, Name: "Contoso", Channels: []bot.ChannelRef{chanA}}}))
	chs, err = db.ChannelsOfTenant(ctx, tenantA)
	must(t, err)
	if len(chs) != 1 || chs[0] != chanA {
		t.Fatalf("links of A = %v", chs)
	}
	b, err = db.FindTenant(ctx, tenantB)
	must(t, err)
	if b.FromConfig || b.State != bot.TenantActive {
		t.Fatalf("tenant that left the config = %+v", b)
	}
	chs, err = db.ChannelsOfTenant(ctx, tenantB)
	must(t, err)
	if len(chs) != 0 {
		t.Fatalf("config links kept after leaving the config: %v", chs)
	}

	// The config wins a channel from a chat link; two tenants cannot share one.
	must(t, db.Link(ctx, "slack:C9", tenantB))
	must(t, db.ApplyConfigTenants(ctx, []bot.ConfigTenant{{ID: tenantA, Channels: []bot.ChannelRef{chanA, "slack:C9"}}}))
	if id, err := db.TenantOfChannel(ctx, "slack:C9"); err != nil || id != tenantA {
		t.Fatalf("TenantOfChannel(C9) = %q, %v", id, err)
	}
	wantCode(t, db.ApplyConfigTenants(ctx, []bot.ConfigTenant{
		{ID: tenantA, Channels: []bot.ChannelRef{chanA}}, {ID: tenantB, Channels: []bot.ChannelRef{chanA}}}), bot.EINVALID)
	wantCode(t, db.ApplyConfigTenants(ctx, []bot.ConfigTenant{{ID: " "}}), bot.EINVALID)
	must(t, db.ApplyConfigTenants(ctx, nil))
	if a, _ := db.FindTenant(ctx, tenantA); a.FromConfig {
		t.Fatal("an empty config left a tenant FromConfig")
	}
}

func TestRevokeTenant(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	wantCode(t, db.RevokeTenant(ctx, "33333333-3333-3333-3333-333333333333"), bot.ENOTFOUND)

	ingest(t, db, tenantA, false, testAlert(t, tenantA, "posted", bot.SeverityMedium), testAlert(t, tenantA, "unposted", bot.SeverityMedium))
	ingest(t, db, tenantB, false, testAlert(t, tenantB, "b1", bot.SeverityMedium))
	items, _ := next(t, db, t0)
	for _, it := range items {
		if it.Delivery.AlertID == "posted" {
			send(t, db, it, "m1")
		}
	}
	must(t, db.RecordAction(ctx, bot.Action{TenantID: tenantA, AlertID: "posted", ThreadText: "ack", Now: t0,
		WriteBack: &bot.WriteBack{Kind: bot.WriteBackComment, Comment: "x"}}))
	notice, err := db.CreateDelivery(ctx, bot.Delivery{Kind: bot.DeliveryNotice, Channel: chanA, TenantID: tenantA})
	must(t, err)
	req, err := db.CreateAccessRequest(ctx, bot.AccessRequest{Kind: bot.AccessConsent, TenantID: tenantA, StateHash: "h1"})
	must(t, err)
	must(t, db.CreateAudit(ctx, bot.AuditEntry{TenantID: tenantA, Action: "ack"}))

	must(t, db.RevokeTenant(ctx, strings.ToUpper(tenantA)))
	tn, err := db.FindTenant(ctx, tenantA)
	must(t, err)
	if tn.State != bot.TenantRevoked {
		t.Fatalf("state = %s", tn.State)
	}
	if chs, _ := db.ChannelsOfTenant(ctx, tenantA); len(chs) != 0 {
		t.Fatalf("links kept: %v", chs)
	}
	if got := kinds(outboxOf(t, db, tenantA, "posted")); got != "slack:C0CONTOSO post sent\nslack:C0CONTOSO thread cancelled\nslack:C0CONTOSO edit cancelled\n" {
		t.Fatalf("posted card:\n%s", got)
	}
	if got := kinds(outboxOf(t, db, tenantA, "unposted")); got != "slack:C0CONTOSO post cancelled\n" {
		t.Fatalf("unposted card:\n%s", got)
	}
	ds, _ := db.DeliveriesOfAlert(ctx, tenantA, "unposted")
	if len(ds) != 1 || ds[0].State != bot.DeliveryCancelled {
		t.Fatalf("unposted delivery = %+v", ds)
	}
	if got := kinds(outboxOf(t, db, tenantB, "b1")); got != "slack:C0FABRIKAM post pending\n" {
		t.Fatalf("tenant B touched:\n%s", got)
	}
	if wbs, _ := db.PendingWriteBacks(ctx, tenantA); len(wbs) != 0 {
		t.Fatalf("write-backs still pending: %+v", wbs)
	}
	r, err := db.FindAccessRequest(ctx, req.ID)
	must(t, err)
	if r.Outcome != bot.AccessSuperseded || r.ClosedAt.IsZero() {
		t.Fatalf("access request = %+v", r)
	}
	// History stays; the offboarding notice still goes out.
	if _, err := db.FindAlert(ctx, tenantA, "posted"); err != nil {
		t.Fatal(err)
	}
	if a, _ := db.FindAudit(ctx, bot.AuditFilter{TenantIDs: []string{tenantA}}); len(a) != 2 {
		t.Fatalf("audit = %+v", a)
	}
	items, _ = next(t, db, time.Now().Add(time.Hour))
	if find(items, chanA, bot.OutboxPost).Delivery.ID != notice.ID {
		t.Fatalf("the notice was cancelled: %+v", items)
	}
}

// After unlink, a channel gets no more of the tenant's thread lines or card
// edits, and its unsent cards are withdrawn; the SOC channel still gets them.
func TestUnlinkDetachesDeliveries(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	_, err := db.Ingest(ctx, bot.IngestBatch{TenantID: tenantA, Now: t0, Plan: bot.PlanIngest, SOC: []bot.ChannelRef{chanSOC},
		Alerts: []bot.Alert{testAlert(t, tenantA, "u1", bot.SeverityHigh), testAlert(t, tenantA, "u2", bot.SeverityHigh)}})
	must(t, err)
	// Post u1's cards; u2's stay unsent.
	items, err := db.NextOutbox(ctx, t0.Add(time.Hour), 100)
	must(t, err)
	for i, it := range items {
		if it.Delivery.AlertID == "u1" {
			must(t, db.MarkInFlight(ctx, it.Entry.ID))
			must(t, db.MarkSent(ctx, it.Entry.ID, fmt.Sprintf("m%d", i), 0))
		}
	}
	chs, err := db.ChannelsOfTenant(ctx, tenantA)
	must(t, err)
	must(t, db.Unlink(ctx, chs[0]))
	st := bot.StatusInProgress
	must(t, db.RecordAction(ctx, bot.Action{TenantID: tenantA, AlertID: "u1", Update: bot.AlertUpdate{Status: &st},
		ThreadText: "internal note", Now: t0}))
	items, err = db.NextOutbox(ctx, t0.Add(time.Hour), 100)
	must(t, err)
	for _, it := range items {
		if it.Delivery.Channel == chs[0] {
			t.Fatalf("unlinked channel still queued: %+v %+v", it.Delivery, it.Entry)
		}
	}
	var socLine bool
	for _, it := range items {
		socLine = socLine || (it.Delivery.Channel == chanSOC && it.Entry.Kind == bot.OutboxThread)
	}
	if !socLine {
		t.Fatal("the SOC channel lost its thread line")
	}
}

// IfState makes an update conditional: a fetch's outcome must not undo an
// offboarding that landed while it ran.
func TestUpdateTenantIfState(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	mustTenant(t, db, tenantA, "Contoso", bot.TenantActive)
	failing, active, revoked, fails := bot.TenantFailing, bot.TenantActive, bot.TenantRevoked, 3
	must(t, db.RevokeTenant(ctx, tenantA))
	_, err := db.UpdateTenant(ctx, tenantA, bot.TenantUpdate{State: &failing, AuthFailures: &fails, IfState: &active})
	wantCode(t, err, bot.ECONFLICT)
	got, err := db.FindTenant(ctx, tenantA)
	must(t, err)
	if got.State != bot.TenantRevoked || got.AuthFailures != 0 {
		t.Fatalf("a refused update changed the tenant: %+v", got)
	}
	got, err = db.UpdateTenant(ctx, tenantA, bot.TenantUpdate{AuthFailures: &fails, IfState: &revoked})
	must(t, err)
	if got.State != bot.TenantRevoked || got.AuthFailures != 3 {
		t.Fatalf("a matching update = %+v", got)
	}
	_, err = db.UpdateTenant(ctx, tenantB, bot.TenantUpdate{State: &failing, IfState: &active})
	wantCode(t, err, bot.ENOTFOUND)
}

// Offboarding detaches the tenant's channels like Unlink: their cards get
// no later lines or edits, even once the tenant is onboarded elsewhere;
// the SOC's cards stay live.
func TestRevokeTenantDetachesChannels(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	ingest(t, db, tenantA, false, testAlert(t, tenantA, "old", bot.SeverityHigh))
	items, _ := next(t, db, t0)
	for i, it := range items {
		send(t, db, it, fmt.Sprintf("m%d", i))
	}
	must(t, db.RevokeTenant(ctx, tenantA))
	ds, err := db.DeliveriesOfAlert(ctx, tenantA, "old")
	must(t, err)
	if len(ds) != 2 || ds[0].Channel != chanA || ds[0].State != bot.DeliveryCancelled || ds[1].State != bot.DeliveryPosted {
		t.Fatalf("deliveries after offboarding = %+v", ds)
	}

	// Onboarded again, in another channel.
	const chanNew bot.ChannelRef = "slack:C0CONTOSO2"
	must(t, db.CreateTenant(ctx, bot.Tenant{ID: tenantA, Name: "Contoso", State: bot.TenantActive}))
	must(t, db.Link(ctx, chanNew, tenantA))
	changed := testAlert(t, tenantA, "old", bot.SeverityHigh)
	changed.Status, changed.LastUpdatedAt = bot.StatusResolved, changed.LastUpdatedAt.Add(time.Minute)
	ingest(t, db, tenantA, false, changed)
	want := "slack:C0CONTOSO post sent\nslack:C0SOC post sent\nslack:C0SOC thread pending\nslack:C0SOC edit pending\n" +
		"slack:C0CONTOSO2 post pending\n" // the new channel gets its own card
	if got := kinds(outboxOf(t, db, tenantA, "old")); got != want {
		t.Fatalf("entries after a change:\n%s\nwant\n%s", got, want)
	}
}

// A restart re-applies the config tenants: one that is failing stays
// failing with its count, or the next pass would report the same outage
// again; a revoked or pending one becomes active.
func TestApplyConfigTenantsKeepsFailing(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	cfg := []bot.ConfigTenant{
		{ID: tenantA, Name: "Contoso", Channels: []bot.ChannelRef{chanA}},
		{ID: tenantB, Name: "Fabrikam", Channels: []bot.ChannelRef{"slack:C0FAB"}},
	}
	must(t, db.ApplyConfigTenants(ctx, cfg))
	failing, fails := bot.TenantFailing, 4
	_, err := db.UpdateTenant(ctx, tenantA, bot.TenantUpdate{State: &failing, AuthFailures: &fails})
	must(t, err)
	must(t, db.RevokeTenant(ctx, tenantB))
	must(t, db.ApplyConfigTenants(ctx, cfg))
	a, err := db.FindTenant(ctx, tenantA)
	must(t, err)
	if a.State != bot.TenantFailing || a.AuthFailures != 4 {
		t.Errorf("failing config tenant after restart: %s, %d failures", a.State, a.AuthFailures)
	}
	b, err := db.FindTenant(ctx, tenantB)
	must(t, err)
	if b.State != bot.TenantActive {
		t.Errorf("revoked config tenant after restart: %s, want active", b.State)
	}
}
