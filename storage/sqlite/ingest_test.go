package sqlite

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

// ingest runs one batch through bot.PlanIngest with chanSOC as SOC channel.
func ingest(tb testing.TB, db *DB, tenant string, hold bool, alerts ...bot.Alert) bot.IngestResult {
	tb.Helper()
	res, err := db.Ingest(context.Background(), bot.IngestBatch{
		TenantID: tenant, Alerts: alerts, PassID: 1, Hold: hold, SOC: []bot.ChannelRef{chanSOC},
		Now: t0, Plan: bot.PlanIngest,
	})
	if err != nil {
		tb.Fatalf("Ingest: %v", err)
	}
	return res
}

// entryRow is one outbox entry with its delivery's channel.
type entryRow struct {
	ID         int64
	DeliveryID int64
	Channel    bot.ChannelRef
	Kind       bot.OutboxKind
	State      bot.OutboxState
	Text       string
	PassID     int64
}

// outboxOf lists the outbox entries of an alert's deliveries in id order.
func outboxOf(tb testing.TB, db *DB, tenant, alertID string) []entryRow {
	tb.Helper()
	rows, err := db.r.Query(`SELECT o.id, o.delivery_id, d.channel, o.kind, o.state, o.text, o.pass_id
		FROM outbox o JOIN deliveries d ON d.id = o.delivery_id
		WHERE d.tenant_id = ? AND d.alert_id = ? ORDER BY o.id`, tenant, alertID)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var out []entryRow
	for rows.Next() {
		var e entryRow
		if err := rows.Scan(&e.ID, &e.DeliveryID, &e.Channel, &e.Kind, &e.State, &e.Text, &e.PassID); err != nil {
			tb.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// kinds summarises entries as "channel kind state" lines.
func kinds(es []entryRow) string {
	var b strings.Builder
	for _, e := range es {
		b.WriteString(string(e.Channel) + " " + string(e.Kind) + " " + string(e.State) + "\n")
	}
	return b.String()
}

func setup(tb testing.TB) *DB {
	tb.Helper()
	db := mustOpen(tb)
	mustTenant(tb, db, tenantA, "Contoso", bot.TenantActive)
	mustTenant(tb, db, tenantB, "Fabrikam", bot.TenantActive)
	must(tb, db.Link(context.Background(), chanA, tenantA))
	must(tb, db.Link(context.Background(), chanB, tenantB))
	return db
}

func TestIngestClassifiesAndNotifies(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	high := testAlert(t, tenantA, "a-high", bot.SeverityHigh)
	low := testAlert(t, tenantA, "a-low", bot.SeverityLow)
	med := testAlert(t, tenantA, "a-med", bot.SeverityMedium)

	wm := t0.Add(-5)
	res, err := db.Ingest(ctx, bot.IngestBatch{TenantID: tenantA, Alerts: []bot.Alert{high, low, med},
		SOC: []bot.ChannelRef{chanSOC}, Now: t0, Watermark: wm, PassID: 3, Plan: bot.PlanIngest})
	must(t, err)
	// Defaults: customer severity>=medium, SOC severity>=high.
	if want := (bot.IngestResult{New: 3, Deliveries: 3}); res != want {
		t.Fatalf("first batch = %+v, want %+v", res, want)
	}
	if got, want := kinds(outboxOf(t, db, tenantA, "a-high")), "slack:C0CONTOSO post pending\nslack:C0SOC post pending\n"; got != want {
		t.Fatalf("a-high entries:\n%s\nwant\n%s", got, want)
	}
	if es := outboxOf(t, db, tenantA, "a-high"); es[0].PassID != 3 {
		t.Errorf("post pass id = %d, want 3", es[0].PassID)
	}
	if es := outboxOf(t, db, tenantA, "a-low"); len(es) != 0 {
		t.Fatalf("a low alert was queued: %s", kinds(es))
	}
	tn, err := db.FindTenant(ctx, tenantA)
	must(t, err)
	if !tn.Watermark.Equal(wm) {
		t.Fatalf("watermark = %v, want %v", tn.Watermark, wm)
	}

	// Second pass: high unchanged, low raised to High, med moved to InProgress.
	low.Severity = bot.SeverityHigh
	med.Status = bot.StatusInProgress
	low.LastUpdatedAt = low.LastUpdatedAt.Add(time.Minute)
	med.LastUpdatedAt = med.LastUpdatedAt.Add(time.Minute)
	res = ingest(t, db, tenantA, false, high, low, med)
	if want := (bot.IngestResult{Changed: 2, Unchanged: 1, Deliveries: 2}); res != want {
		t.Fatalf("second batch = %+v, want %+v", res, want)
	}
	if got, want := kinds(outboxOf(t, db, tenantA, "a-low")), "slack:C0CONTOSO post pending\nslack:C0SOC post pending\n"; got != want {
		t.Fatalf("raised alert entries:\n%s\nwant\n%s", got, want)
	}
	es := outboxOf(t, db, tenantA, "a-med")
	if got, want := kinds(es), "slack:C0CONTOSO post pending\nslack:C0CONTOSO thread pending\nslack:C0CONTOSO edit pending\n"; got != want {
		t.Fatalf("changed alert entries:\n%s\nwant\n%s", got, want)
	}
	if !strings.Contains(es[1].Text, "status New → InProgress") {
		t.Errorf("thread line = %q", es[1].Text)
	}
	if got := kinds(outboxOf(t, db, tenantA, "a-high")); strings.Count(got, "\n") != 2 {
		t.Errorf("unchanged alert got entries:\n%s", got)
	}
	a, err := db.FindAlert(ctx, tenantA, "a-med")
	must(t, err)
	if a.Status != bot.StatusInProgress {
		t.Errorf("stored status = %s", a.Status)
	}
	// The watermark is kept when a batch carries none.
	tn, err = db.FindTenant(ctx, tenantA)
	must(t, err)
	if !tn.Watermark.Equal(wm) {
		t.Fatalf("watermark = %v after a batch without one, want %v", tn.Watermark, wm)
	}
}

func TestIngestRoundTripsAlert(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	in := testAlert(t, tenantA, "Da6386_Round", bot.SeverityHigh)
	in.Evidence = []bot.Evidence{{Type: "device", Name: "fin-ws-017", Verdict: "Suspicious", Group: "Finance"}}
	in.ServiceSource, in.Classification, in.Determination = "microsoftDefenderForEndpoint", bot.ClassTruePositive, "Malware"
	in.ResolvedAt = t0
	ingest(t, db, tenantA, false, in)
	got, err := db.FindAlert(ctx, tenantA, in.ID)
	must(t, err)
	if got.Title != in.Title || got.UserName != `CONTOSO\jdoe` || got.DeviceGroup != "Finance" ||
		got.IncidentID != "48213" || !got.CreatedAt.Equal(in.CreatedAt) || !got.LastUpdatedAt.Equal(in.LastUpdatedAt) ||
		!got.ResolvedAt.Equal(in.ResolvedAt) || got.Classification != in.Classification || got.Determination != "Malware" ||
		got.ServiceSource != in.ServiceSource || got.PortalURL != in.PortalURL || string(got.Raw) != string(in.Raw) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, in)
	}
	if len(got.MitreTechniques) != 1 || got.MitreTechniques[0] != "T1003.001" {
		t.Errorf("mitre = %v", got.MitreTechniques)
	}
	if len(got.Evidence) != 1 || got.Evidence[0] != in.Evidence[0] {
		t.Errorf("evidence = %+v", got.Evidence)
	}
	if got.LastUpdatedAt.Nanosecond() != 500000000 || got.CreatedAt.Nanosecond() != 123456700 {
		t.Errorf("fractional seconds lost: %v %v", got.CreatedAt, got.LastUpdatedAt)
	}
}

func TestIngestKeepsFieldsOfPendingWriteBack(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	a := testAlert(t, tenantA, "a1", bot.SeverityHigh)
	ingest(t, db, tenantA, false, a)

	inProgress, who := bot.StatusInProgress, "analyst1@mssp.example"
	must(t, db.RecordAction(ctx, bot.Action{TenantID: tenantA, AlertID: "a1",
		Update:     bot.AlertUpdate{Status: &inProgress, AssignedTo: &who},
		WriteBack:  &bot.WriteBack{Kind: bot.WriteBackAck, Status: inProgress, AssignedTo: who, Actor: who},
		ThreadText: "Acknowledged by analyst1", Now: t0,
		Audit: bot.AuditEntry{Actor: "slack:U1", Action: "ack", Target: "a1", Outcome: "ok"}}))
	before := len(outboxOf(t, db, tenantA, "a1"))

	// Defender has not seen the write-back yet: it still says New, unassigned.
	res := ingest(t, db, tenantA, false, a)
	if res.Unchanged != 1 {
		t.Fatalf("re-fetch during a pending write-back = %+v, want unchanged", res)
	}
	got, err := db.FindAlert(ctx, tenantA, "a1")
	must(t, err)
	if got.Status != bot.StatusInProgress || got.AssignedTo != who {
		t.Fatalf("local fields lost: status %s, assigned %q", got.Status, got.AssignedTo)
	}
	if n := len(outboxOf(t, db, tenantA, "a1")); n != before {
		t.Fatalf("entries %d -> %d: a pending write-back's own values produced a thread line", before, n)
	}

	// Once sent, Defender's values count again.
	wbs, err := db.PendingWriteBacks(ctx, tenantA)
	must(t, err)
	if len(wbs) != 1 {
		t.Fatalf("pending write-backs = %d", len(wbs))
	}
	must(t, db.MarkWriteBackSent(ctx, wbs[0].ID))
	a.LastUpdatedAt = a.LastUpdatedAt.Add(time.Minute) // a newer version
	res = ingest(t, db, tenantA, false, a)
	if res.Changed != 1 {
		t.Fatalf("after the write-back = %+v, want changed", res)
	}
	got, err = db.FindAlert(ctx, tenantA, "a1")
	must(t, err)
	if got.Status != bot.StatusNew {
		t.Fatalf("status = %s, want New from Defender", got.Status)
	}
}

func TestIngestHoldsPostsOfAPass(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	res, err := db.Ingest(ctx, bot.IngestBatch{TenantID: tenantA, PassID: 7, Hold: true, SOC: []bot.ChannelRef{chanSOC},
		Now: t0, Plan: bot.PlanIngest, Alerts: []bot.Alert{
			testAlert(t, tenantA, "h1", bot.SeverityHigh), testAlert(t, tenantA, "h2", bot.SeverityMedium)}})
	must(t, err)
	if res.Deliveries != 3 {
		t.Fatalf("deliveries = %d, want 3", res.Deliveries)
	}
	if got := kinds(outboxOf(t, db, tenantA, "h1")); got != "slack:C0CONTOSO post held\nslack:C0SOC post held\n" {
		t.Fatalf("held entries:\n%s", got)
	}
	if items, err := db.NextOutbox(ctx, t0.Add(1e9), 10); err != nil || len(items) != 0 {
		t.Fatalf("NextOutbox returned held posts: %v %v", items, err)
	}
	held, err := db.HeldPosts(ctx, 7)
	must(t, err)
	if len(held[chanA]) != 2 || len(held[chanSOC]) != 1 {
		t.Fatalf("held = %+v", held)
	}
	h := held[chanA][0]
	if h.AlertID != "h1" || h.TenantID != tenantA || h.Severity != bot.SeverityHigh || h.Title == "" || h.EntryID == 0 || h.DeliveryID == 0 {
		t.Fatalf("held post = %+v", h)
	}
	if other, err := db.HeldPosts(ctx, 8); err != nil || len(other) != 0 {
		t.Fatalf("HeldPosts(other pass) = %v, %v", other, err)
	}
	// Pass 0 means every pass (start-up after a crash).
	if all, err := db.HeldPosts(ctx, 0); err != nil || len(all[chanA]) != 2 || len(all[chanSOC]) != 1 {
		t.Fatalf("HeldPosts(0) = %v, %v", all, err)
	}
	must(t, db.ReleaseHeld(ctx, 7))
	items, err := db.NextOutbox(ctx, t0, 10)
	must(t, err)
	if len(items) != 3 {
		t.Fatalf("after release NextOutbox = %d items, want 3", len(items))
	}
}

func TestIngestRepeatedAlertInBatch(t *testing.T) {
	db := setup(t)
	a := testAlert(t, tenantA, "dup", bot.SeverityHigh)
	b := a
	b.Status, b.LastUpdatedAt = bot.StatusInProgress, a.LastUpdatedAt.Add(time.Minute)
	res := ingest(t, db, tenantA, false, a, b)
	if want := (bot.IngestResult{New: 1, Changed: 1, Deliveries: 2}); res != want {
		t.Fatalf("result = %+v, want %+v", res, want)
	}
	want := "slack:C0CONTOSO post pending\nslack:C0SOC post pending\n" +
		"slack:C0CONTOSO thread pending\nslack:C0CONTOSO edit pending\nslack:C0SOC thread pending\nslack:C0SOC edit pending\n"
	if got := kinds(outboxOf(t, db, tenantA, "dup")); got != want {
		t.Fatalf("entries:\n%s\nwant\n%s", got, want)
	}
}

func TestIngestTenantIsolation(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	// The same alert id in two tenants is two alerts.
	ingest(t, db, strings.ToUpper(tenantA), false, testAlert(t, tenantA, "same", bot.SeverityHigh))
	ingest(t, db, tenantB, false, testAlert(t, tenantB, "same", bot.SeverityLow))
	a, err := db.FindAlert(ctx, tenantA, "same")
	must(t, err)
	b, err := db.FindAlert(ctx, strings.ToUpper(tenantB), "same")
	must(t, err)
	if a.TenantID != tenantA || b.TenantID != tenantB || a.Severity != bot.SeverityHigh || b.Severity != bot.SeverityLow {
		t.Fatalf("a = %s %s, b = %s %s", a.TenantID, a.Severity, b.TenantID, b.Severity)
	}
	// B's customer channel never gets A's alert.
	for _, e := range outboxOf(t, db, tenantA, "same") {
		if e.Channel == chanB {
			t.Fatalf("tenant A's alert queued in B's channel")
		}
	}

	// A plan cannot store an alert under another tenant.
	evil := func(in bot.PlanInput) bot.PlanOutput {
		out := bot.PlanIngest(in)
		out.Store.TenantID = tenantB
		out.Store.ID = "moved"
		return out
	}
	_, err = db.Ingest(ctx, bot.IngestBatch{TenantID: tenantA, Alerts: []bot.Alert{testAlert(t, tenantB, "x1", bot.SeverityLow)},
		Now: t0, Plan: evil})
	must(t, err)
	if _, err := db.FindAlert(ctx, tenantA, "x1"); err != nil {
		t.Fatalf("alert not stored under the batch's tenant: %v", err)
	}
	wantCode(t, func() error { _, err := db.FindAlert(ctx, tenantB, "x1"); return err }(), bot.ENOTFOUND)
	wantCode(t, func() error { _, err := db.FindAlert(ctx, tenantB, "moved"); return err }(), bot.ENOTFOUND)
}

func TestIngestRespectsChannelRules(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	_, err := db.CreateRule(ctx, bot.Rule{Channel: chanA, Category: "Malware"})
	must(t, err)
	_, err = db.CreateRule(ctx, bot.Rule{Channel: chanSOC, MinSeverity: bot.SeverityLow, TenantID: tenantA})
	must(t, err)
	res := ingest(t, db, tenantA, false, testAlert(t, tenantA, "cred", bot.SeverityLow)) // CredentialAccess
	if res.Deliveries != 1 {
		t.Fatalf("deliveries = %d, want 1 (SOC rule only)", res.Deliveries)
	}
	if got := kinds(outboxOf(t, db, tenantA, "cred")); got != "slack:C0SOC post pending\n" {
		t.Fatalf("entries:\n%s", got)
	}
}

func TestIngestRevokedTenantQueuesNothing(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	ingest(t, db, tenantA, false, testAlert(t, tenantA, "early", bot.SeverityHigh))
	must(t, db.RevokeTenant(ctx, tenantA))
	changed := testAlert(t, tenantA, "early", bot.SeverityHigh)
	changed.Status, changed.LastUpdatedAt = bot.StatusResolved, changed.LastUpdatedAt.Add(time.Minute)
	late := testAlert(t, tenantA, "late", bot.SeverityHigh)
	// Even a plan that insists on channels gets no card for a revoked tenant.
	pushy := func(in bot.PlanInput) bot.PlanOutput {
		out := bot.PlanIngest(in)
		out.NewChannels = []bot.ChannelRef{chanSOC}
		return out
	}
	res, err := db.Ingest(ctx, bot.IngestBatch{TenantID: tenantA, Now: t0, Plan: pushy, SOC: []bot.ChannelRef{chanSOC},
		Alerts: []bot.Alert{changed, late, late}})
	must(t, err)
	if res.New != 1 || res.Changed != 1 || res.Deliveries != 0 {
		t.Fatalf("result = %+v, want stored without deliveries", res)
	}
	if a, err := db.FindAlert(ctx, tenantA, "early"); err != nil || a.Status != bot.StatusResolved {
		t.Fatalf("early = %+v, %v", a, err)
	}
	if es := outboxOf(t, db, tenantA, "late"); len(es) != 0 {
		t.Fatalf("late alert queued: %s", kinds(es))
	}
	if got := kinds(outboxOf(t, db, tenantA, "early")); strings.Contains(got, "pending") {
		t.Fatalf("revoked tenant's card got entries:\n%s", got)
	}
}

func TestIngestErrors(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	_, err := db.Ingest(ctx, bot.IngestBatch{TenantID: "11111111-2222-3333-4444-555555555555", Plan: bot.PlanIngest,
		Alerts: []bot.Alert{testAlert(t, tenantA, "x", bot.SeverityHigh)}})
	wantCode(t, err, bot.ENOTFOUND)
	_, err = db.Ingest(ctx, bot.IngestBatch{TenantID: tenantA})
	wantCode(t, err, bot.EINVALID)

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = db.Ingest(cctx, bot.IngestBatch{TenantID: tenantA, Plan: bot.PlanIngest, Now: t0,
		Alerts: []bot.Alert{testAlert(t, tenantA, "cancelled", bot.SeverityHigh)}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ingest: %v", err)
	}
	wantCode(t, func() error { _, err := db.FindAlert(ctx, tenantA, "cancelled"); return err }(), bot.ENOTFOUND)

	// A plan that panics partway leaves nothing behind.
	n := 0
	boom := func(in bot.PlanInput) bot.PlanOutput {
		if n++; n == 2 {
			panic("boom")
		}
		return bot.PlanIngest(in)
	}
	func() {
		defer func() { recover() }()
		db.Ingest(ctx, bot.IngestBatch{TenantID: tenantA, Plan: boom, Now: t0, Alerts: []bot.Alert{
			testAlert(t, tenantA, "p1", bot.SeverityHigh), testAlert(t, tenantA, "p2", bot.SeverityHigh)}})
	}()
	wantCode(t, func() error { _, err := db.FindAlert(ctx, tenantA, "p1"); return err }(), bot.ENOTFOUND)
	// And the writer is usable afterwards.
	ingest(t, db, tenantA, false, testAlert(t, tenantA, "p1", bot.SeverityHigh))
}

func TestIngestSavesTenantOutcomeInSameTransaction(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	now := t0.Add(time.Hour)
	zero, empty, active := 0, "", bot.TenantActive
	wm := t0.Add(30 * time.Minute)
	_, err := db.Ingest(ctx, bot.IngestBatch{TenantID: tenantA, Now: now, Plan: bot.PlanIngest, Watermark: wm,
		Tenant: &bot.TenantUpdate{LastSuccess: &now, AuthFailures: &zero, LastError: &empty, State: &active},
		Alerts: []bot.Alert{testAlert(t, tenantA, "o1", bot.SeverityLow)}})
	must(t, err)
	tn, err := db.FindTenant(ctx, tenantA)
	must(t, err)
	if !tn.LastSuccess.Equal(now) || !tn.Watermark.Equal(wm) || tn.State != bot.TenantActive {
		t.Fatalf("tenant after ingest: %+v", tn)
	}
	// A pass that found no alerts still records its outcome.
	later := now.Add(time.Hour)
	_, err = db.Ingest(ctx, bot.IngestBatch{TenantID: tenantA, Now: later, Plan: func(bot.PlanInput) bot.PlanOutput { panic("unreached") },
		Tenant: &bot.TenantUpdate{LastSuccess: &later}, Alerts: nil})
	must(t, err)
	if tn, _ = db.FindTenant(ctx, tenantA); !tn.LastSuccess.Equal(later) {
		t.Fatalf("an empty batch did not save the outcome: %+v", tn.LastSuccess)
	}
}

// An offboarding that lands during a fetch wins over the fetch's outcome:
// the tenant stays revoked (not polled, no "lost access" notices), while
// the outcome's other fields are still recorded.
func TestIngestNeverChangesRevokedState(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	must(t, db.RevokeTenant(ctx, tenantA))
	now := t0.Add(time.Hour)
	active := bot.TenantActive
	_, err := db.Ingest(ctx, bot.IngestBatch{TenantID: tenantA, Now: now, Plan: bot.PlanIngest,
		Tenant: &bot.TenantUpdate{State: &active, LastSuccess: &now, ActivatedAt: &now}})
	must(t, err)
	tn, err := db.FindTenant(ctx, tenantA)
	must(t, err)
	if tn.State != bot.TenantRevoked || !tn.LastSuccess.Equal(now) || !tn.ActivatedAt.IsZero() {
		t.Fatalf("revoked tenant after ingest = %+v", tn)
	}

	// IfState: the state changes only from the expected state; the ingest
	// and the rest of the outcome still go through.
	failing, pending := bot.TenantFailing, bot.TenantPending
	_, err = db.UpdateTenant(ctx, tenantB, bot.TenantUpdate{State: &pending})
	must(t, err)
	_, err = db.Ingest(ctx, bot.IngestBatch{TenantID: tenantB, Now: now, Plan: bot.PlanIngest,
		Tenant: &bot.TenantUpdate{State: &active, IfState: &failing, LastSuccess: &now},
		Alerts: []bot.Alert{testAlert(t, tenantB, "i1", bot.SeverityHigh)}})
	must(t, err)
	if tn, _ = db.FindTenant(ctx, tenantB); tn.State != bot.TenantPending || !tn.LastSuccess.Equal(now) {
		t.Fatalf("tenant B after a mismatched IfState = %+v", tn)
	}
	if _, err := db.FindAlert(ctx, tenantB, "i1"); err != nil {
		t.Fatalf("alert not stored: %v", err)
	}
	_, err = db.UpdateTenant(ctx, tenantB, bot.TenantUpdate{State: &failing})
	must(t, err)
	_, err = db.Ingest(ctx, bot.IngestBatch{TenantID: tenantB, Now: now, Plan: bot.PlanIngest,
		Tenant: &bot.TenantUpdate{State: &active, IfState: &failing}})
	must(t, err)
	if tn, _ = db.FindTenant(ctx, tenantB); tn.State != bot.TenantActive {
		t.Fatalf("tenant B after a matching IfState = %s", tn.State)
	}
}
