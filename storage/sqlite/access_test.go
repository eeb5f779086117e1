package sqlite

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

func TestAccessRequests(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	_, err := db.CreateAccessRequest(ctx, bot.AccessRequest{Kind: bot.AccessConsent})
	wantCode(t, err, bot.EINVALID)

	r1, err := db.CreateAccessRequest(ctx, bot.AccessRequest{Kind: bot.AccessConsent, TenantID: strings.ToUpper(tenantA), TenantName: "Contoso",
		Channel: chanA, RequestedBy: "slack:U1", StateHash: "hash1", ExpiresAt: t0.Add(24 * time.Hour), CreatedAt: t0,
		Outcome: bot.AccessGranted})
	must(t, err)
	if r1.ID == 0 || r1.Outcome != bot.AccessOpen || r1.TenantID != tenantA {
		t.Fatalf("created %+v", r1)
	}
	got, err := db.FindAccessRequestByState(ctx, "hash1")
	must(t, err)
	if got != r1 {
		t.Fatalf("FindAccessRequestByState = %+v\nwant %+v", got, r1)
	}
	_, err = db.FindAccessRequestByState(ctx, "unknown")
	wantCode(t, err, bot.ENOTFOUND)
	_, err = db.FindAccessRequestByState(ctx, "")
	wantCode(t, err, bot.ENOTFOUND)
	_, err = db.FindAccessRequest(ctx, r1.ID+100)
	wantCode(t, err, bot.ENOTFOUND)

	// A pending link of the same tenant is another kind: both stay open.
	link, err := db.CreateAccessRequest(ctx, bot.AccessRequest{Kind: bot.AccessLink, TenantID: tenantA, Channel: chanB, CreatedAt: t0})
	must(t, err)
	// A new consent request supersedes the open one.
	r2, err := db.CreateAccessRequest(ctx, bot.AccessRequest{Kind: bot.AccessConsent, TenantID: tenantA, StateHash: "hash2", CreatedAt: t0.Add(time.Minute)})
	must(t, err)
	old, err := db.FindAccessRequest(ctx, r1.ID)
	must(t, err)
	if old.Outcome != bot.AccessSuperseded || !old.ClosedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("superseded request = %+v", old)
	}
	if l, _ := db.FindAccessRequest(ctx, link.ID); l.Outcome != bot.AccessOpen || l.StateHash != "" {
		t.Fatalf("link request = %+v", l)
	}
	// A superseded state is still found (the callback must tell the user so).
	if got, err := db.FindAccessRequestByState(ctx, "hash1"); err != nil || got.Outcome != bot.AccessSuperseded {
		t.Fatalf("old state = %+v, %v", got, err)
	}
	_, err = db.CreateAccessRequest(ctx, bot.AccessRequest{Kind: bot.AccessConsent, TenantID: tenantB, StateHash: "hash2"})
	wantCode(t, err, bot.ECONFLICT)

	// Two callbacks: only the first closes it.
	must(t, db.CloseAccessRequest(ctx, r2.ID, bot.AccessGranted, "", t0.Add(time.Hour)))
	wantCode(t, db.CloseAccessRequest(ctx, r2.ID, bot.AccessDeclined, "access_denied", t0.Add(time.Hour)), bot.ECONFLICT)
	wantCode(t, db.CloseAccessRequest(ctx, r1.ID, bot.AccessGranted, "", t0), bot.ECONFLICT)
	wantCode(t, db.CloseAccessRequest(ctx, 999, bot.AccessGranted, "", t0), bot.ENOTFOUND)
	wantCode(t, db.CloseAccessRequest(ctx, link.ID, bot.AccessOpen, "", t0), bot.EINVALID)
	got, err = db.FindAccessRequest(ctx, r2.ID)
	must(t, err)
	if got.Outcome != bot.AccessGranted || !got.ClosedAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("closed request = %+v", got)
	}
	must(t, db.CloseAccessRequest(ctx, link.ID, bot.AccessFailedError, "boom <b>", t0))
	if l, _ := db.FindAccessRequest(ctx, link.ID); l.Outcome != bot.AccessFailedError || l.Reason != "boom <b>" {
		t.Fatalf("closed link = %+v", l)
	}

	must(t, db.SetAccessPrompt(ctx, r2.ID, 42))
	if got, _ := db.FindAccessRequest(ctx, r2.ID); got.PromptID != 42 {
		t.Fatalf("prompt id = %d", got.PromptID)
	}
	wantCode(t, db.SetAccessPrompt(ctx, 999, 1), bot.ENOTFOUND)
}

func TestSetAccessState(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	r, err := db.CreateAccessRequest(ctx, bot.AccessRequest{Kind: bot.AccessConsent, TenantID: tenantA, StateHash: "old", CreatedAt: t0})
	must(t, err)
	other, err := db.CreateAccessRequest(ctx, bot.AccessRequest{Kind: bot.AccessConsent, TenantID: tenantB, StateHash: "taken", CreatedAt: t0})
	must(t, err)
	must(t, db.SetAccessState(ctx, r.ID, "new"))
	_, err = db.FindAccessRequestByState(ctx, "old")
	wantCode(t, err, bot.ENOTFOUND)
	if got, err := db.FindAccessRequestByState(ctx, "new"); err != nil || got.ID != r.ID {
		t.Fatalf("by new state = %+v, %v", got, err)
	}
	wantCode(t, db.SetAccessState(ctx, r.ID, "taken"), bot.ECONFLICT)
	wantCode(t, db.SetAccessState(ctx, 999, "x"), bot.ENOTFOUND)
	must(t, db.CloseAccessRequest(ctx, other.ID, bot.AccessExpired, "", t0))
	wantCode(t, db.SetAccessState(ctx, other.ID, "fresh"), bot.ECONFLICT)
}

func TestOpenAccessRequests(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	a, err := db.CreateAccessRequest(ctx, bot.AccessRequest{Kind: bot.AccessConsent, TenantID: tenantA, StateHash: "h1", ExpiresAt: t0.Add(time.Hour)})
	must(t, err)
	_, err = db.CreateAccessRequest(ctx, bot.AccessRequest{Kind: bot.AccessLink, TenantID: tenantA, ExpiresAt: t0.Add(time.Hour)})
	must(t, err)
	open, err := db.OpenAccessRequests(ctx, strings.ToUpper(tenantA), bot.AccessConsent)
	must(t, err)
	if len(open) != 1 || open[0].ID != a.ID {
		t.Fatalf("open consent requests %+v", open)
	}
	must(t, db.CloseAccessRequest(ctx, a.ID, bot.AccessDeclined, "", t0))
	if open, _ = db.OpenAccessRequests(ctx, tenantA, bot.AccessConsent); len(open) != 0 {
		t.Fatalf("closed request listed: %+v", open)
	}
}
