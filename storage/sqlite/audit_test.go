package sqlite

import (
	"context"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

func TestAudit(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	db.now = func() time.Time { return t0.Add(time.Hour) }
	entries := []bot.AuditEntry{
		{Time: t0, Actor: "slack:U1", Identity: "a@mssp.example", Channel: chanA, TenantID: tenantA, Action: "ack", Target: "x", Outcome: "ok", Detail: "d"},
		{Time: t0.Add(time.Minute), Actor: "slack:U2", Channel: chanB, TenantID: tenantB, Action: "ack", Outcome: "ok"},
		{Time: t0.Add(2 * time.Minute), Actor: "system", Channel: chanSOC, TenantID: tenantA, Action: "consent", Outcome: "failed: mismatch"},
		{Actor: "slack:U3", Channel: chanSOC, Action: "rules add", Outcome: "ok"}, // Time zero: now
	}
	for _, e := range entries {
		must(t, db.CreateAudit(ctx, e))
	}
	all, err := db.FindAudit(ctx, bot.AuditFilter{})
	must(t, err)
	if len(all) != 4 || all[0].Action != "rules add" || !all[0].Time.Equal(t0.Add(time.Hour)) || all[3].Detail != "d" || all[3].Identity != "a@mssp.example" {
		t.Fatalf("FindAudit(all) = %+v", all)
	}
	a, err := db.FindAudit(ctx, bot.AuditFilter{TenantIDs: []string{"6F1C3E2A-0B7D-4C1E-9A55-1D2B3C4D5E6F"}})
	must(t, err)
	if len(a) != 2 || a[0].Action != "consent" || a[1].Action != "ack" {
		t.Fatalf("FindAudit(A) = %+v", a)
	}
	inA, err := db.FindAudit(ctx, bot.AuditFilter{TenantIDs: []string{tenantA}, Channel: chanA})
	must(t, err)
	if len(inA) != 1 || inA[0].Target != "x" {
		t.Fatalf("FindAudit(A in chanA) = %+v", inA)
	}
	limited, err := db.FindAudit(ctx, bot.AuditFilter{Limit: 1})
	must(t, err)
	if len(limited) != 1 {
		t.Fatalf("limit 1 = %d", len(limited))
	}
}
