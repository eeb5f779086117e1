package sqlite

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

func TestWriteBackQueue(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	ingest(t, db, tenantA, false, testAlert(t, tenantA, "w1", bot.SeverityHigh), testAlert(t, tenantA, "w2", bot.SeverityHigh))
	act := func(alert string, at time.Time) {
		must(t, db.RecordAction(ctx, bot.Action{TenantID: tenantA, AlertID: alert, Now: at,
			WriteBack: &bot.WriteBack{Kind: bot.WriteBackComment, Comment: "c " + alert, Actor: "analyst1@mssp.example"}}))
	}
	act("w1", t0)
	act("w2", t0.Add(time.Second))
	act("w1", t0.Add(2*time.Second))

	due, err := db.NextWriteBacks(ctx, t0.Add(time.Second), 10)
	must(t, err)
	if len(due) != 2 || due[0].AlertID != "w1" || due[1].AlertID != "w2" || due[0].Comment != "c w1" || due[0].Actor != "analyst1@mssp.example" {
		t.Fatalf("NextWriteBacks = %+v", due)
	}
	if got, _ := db.NextWriteBacks(ctx, t0.Add(time.Hour), 1); len(got) != 1 {
		t.Fatalf("limit ignored: %d", len(got))
	}
	if got, _ := db.NextWriteBacks(ctx, t0.Add(time.Hour), 0); len(got) != 0 {
		t.Fatalf("limit 0 returned %d", len(got))
	}

	// Throttling is not an attempt; a server error is.
	must(t, db.MarkWriteBackRetry(ctx, due[0].ID, t0.Add(time.Minute), "429", false))
	got, _ := db.NextWriteBacks(ctx, t0.Add(30*time.Second), 10)
	if len(got) != 2 || got[0].AlertID != "w2" {
		t.Fatalf("a retry was due early: %+v", got)
	}
	got, _ = db.NextWriteBacks(ctx, t0.Add(time.Minute), 10)
	if len(got) != 3 || got[0].ID != due[0].ID || got[0].Attempts != 0 || got[0].Error != "429" {
		t.Fatalf("after the throttle: %+v", got)
	}
	must(t, db.MarkWriteBackRetry(ctx, due[0].ID, t0.Add(time.Minute), "503", true))
	got, _ = db.NextWriteBacks(ctx, t0.Add(time.Minute), 10)
	if len(got) != 3 || got[0].ID != due[0].ID || got[0].Attempts != 1 || got[0].Error != "503" {
		t.Fatalf("after the backoff: %+v", got)
	}

	must(t, db.MarkWriteBackSent(ctx, due[1].ID))
	// Posted cards: the failure line goes to both.
	items, _ := next(t, db, t0.Add(time.Hour))
	for _, it := range items {
		if it.Entry.Kind == bot.OutboxPost {
			send(t, db, it, "m")
		}
	}
	before := len(outboxOf(t, db, tenantA, "w1"))
	must(t, db.FailWriteBack(ctx, due[0].ID, "403 Forbidden", "Defender refused the update: 403"))
	es := outboxOf(t, db, tenantA, "w1")
	if len(es) != before+2 || es[len(es)-1].Kind != bot.OutboxThread || es[len(es)-1].Text != "Defender refused the update: 403" {
		t.Fatalf("failure lines: %s", kinds(es[before:]))
	}
	pending, err := db.PendingWriteBacks(ctx, tenantA)
	must(t, err)
	if len(pending) != 1 || pending[0].AlertID != "w1" || pending[0].ID == due[0].ID {
		t.Fatalf("pending = %+v", pending)
	}

	// Finished write-backs stay finished; missing ones are not found.
	must(t, db.MarkWriteBackRetry(ctx, due[0].ID, t0, "late", true))
	must(t, db.FailWriteBack(ctx, due[1].ID, "late", "should not appear"))
	for _, e := range outboxOf(t, db, tenantA, "w2") {
		if e.Text == "should not appear" {
			t.Fatal("a sent write-back was failed")
		}
	}
	var state string
	must(t, db.r.QueryRow(`SELECT state FROM write_backs WHERE id = ?`, due[0].ID).Scan(&state))
	if state != "failed" {
		t.Fatalf("state = %s", state)
	}
	wantCode(t, db.MarkWriteBackSent(ctx, 999), bot.ENOTFOUND)
	wantCode(t, db.MarkWriteBackRetry(ctx, 999, t0, "", true), bot.ENOTFOUND)
	wantCode(t, db.FailWriteBack(ctx, 999, "", ""), bot.ENOTFOUND)
}

// The limit is per tenant: a tenant with a long backlog never hides
// another tenant's write-backs.
func TestNextWriteBacksPerTenant(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	ingest(t, db, tenantA, false, testAlert(t, tenantA, "wa", bot.SeverityHigh))
	ingest(t, db, tenantB, false, testAlert(t, tenantB, "wb", bot.SeverityHigh))
	act := func(tenant, alert string, n int) {
		for i := range n {
			must(t, db.RecordAction(ctx, bot.Action{TenantID: tenant, AlertID: alert, Now: t0,
				WriteBack: &bot.WriteBack{Kind: bot.WriteBackComment, Comment: fmt.Sprint("c", i)}}))
		}
	}
	act(tenantA, "wa", 30)
	act(tenantB, "wb", 2)
	got, err := db.NextWriteBacks(ctx, t0, 10)
	must(t, err)
	per := map[string][]string{}
	for _, wb := range got {
		per[wb.TenantID] = append(per[wb.TenantID], wb.Comment)
	}
	if len(per[tenantA]) != 10 || per[tenantA][0] != "c0" || per[tenantA][9] != "c9" {
		t.Errorf("tenant A: %v, want its 10 oldest in order", per[tenantA])
	}
	if len(per[tenantB]) != 2 {
		t.Errorf("tenant B: %v, want both behind A's backlog", per[tenantB])
	}
	for i := 1; i < len(got); i++ {
		if got[i].ID < got[i-1].ID {
			t.Fatalf("not oldest first: %d after %d", got[i].ID, got[i-1].ID)
		}
	}
}
