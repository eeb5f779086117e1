package sqlite

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

// seed stores alerts directly, bypassing ingest.
func seed(tb testing.TB, db *DB, alerts ...bot.Alert) {
	tb.Helper()
	if err := rawInsert(context.Background(), db, alerts); err != nil {
		tb.Fatal(err)
	}
}

func mk(tenant, id string, sev bot.Severity, status bot.AlertStatus, created time.Time) bot.Alert {
	return bot.Alert{TenantID: tenant, ID: id, Title: "alert " + id, Severity: sev, Status: status, CreatedAt: created, LastUpdatedAt: created}
}

func ids(alerts []bot.Alert) string {
	var s []string
	for _, a := range alerts {
		s = append(s, a.ID)
	}
	return strings.Join(s, ",")
}

func TestFindAlert(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	seed(t, db, mk(tenantA, "Da1", bot.SeverityHigh, bot.StatusNew, t0), mk(tenantB, "db1", bot.SeverityHigh, bot.StatusNew, t0))
	a, err := db.FindAlert(ctx, strings.ToUpper(tenantA), "Da1")
	must(t, err)
	if a.ID != "Da1" || a.TenantID != tenantA {
		t.Fatalf("FindAlert = %+v", a)
	}
	_, err = db.FindAlert(ctx, tenantA, "da1") // ids are case-sensitive
	wantCode(t, err, bot.ENOTFOUND)
	_, errOther := db.FindAlert(ctx, tenantA, "db1") // B's alert, asked for as A
	wantCode(t, errOther, bot.ENOTFOUND)
	_, errMissing := db.FindAlert(ctx, tenantA, "nope")
	if strings.Replace(bot.ErrorMessage(errOther), "db1", "X", 1) != strings.Replace(bot.ErrorMessage(errMissing), "nope", "X", 1) {
		t.Errorf("another tenant's alert is distinguishable from a missing one: %q vs %q", bot.ErrorMessage(errOther), bot.ErrorMessage(errMissing))
	}
}

func TestFindAlertsByID(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	seed(t, db, mk(tenantA, "same", bot.SeverityHigh, bot.StatusNew, t0), mk(tenantB, "same", bot.SeverityLow, bot.StatusNew, t0),
		mk(tenantB, "onlyB", bot.SeverityLow, bot.StatusNew, t0))
	got, err := db.FindAlertsByID(ctx, "same", []string{tenantA, strings.ToUpper(tenantB)})
	must(t, err)
	if len(got) != 2 {
		t.Fatalf("FindAlertsByID across both = %+v", got)
	}
	got, err = db.FindAlertsByID(ctx, "onlyB", []string{tenantA})
	must(t, err)
	if len(got) != 0 {
		t.Fatalf("B's alert found through A: %+v", got)
	}
	got, err = db.FindAlertsByID(ctx, "same", nil)
	must(t, err)
	if len(got) != 0 {
		t.Fatalf("no tenants returned %+v", got)
	}
}

func TestFindAlerts(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	seed(t, db,
		mk(tenantA, "a-old-new-high", bot.SeverityHigh, bot.StatusNew, t0),
		mk(tenantA, "a-mid-inprog-low", bot.SeverityLow, bot.StatusInProgress, t0.Add(time.Minute)),
		mk(tenantA, "a-new-resolved-med", bot.SeverityMedium, bot.StatusResolved, t0.Add(2*time.Minute)),
		mk(tenantA, "a-newest-new-med", bot.SeverityMedium, bot.StatusNew, t0.Add(3*time.Minute)),
		mk(tenantB, "b-new-high", bot.SeverityHigh, bot.StatusNew, t0.Add(4*time.Minute)),
	)
	open := []bot.AlertStatus{bot.StatusNew, bot.StatusInProgress}
	cases := []struct {
		name  string
		f     bot.AlertFilter
		want  string
		total int
	}{
		{"no tenants: nothing", bot.AlertFilter{}, "", 0},
		{"A all", bot.AlertFilter{TenantIDs: []string{tenantA}}, "a-newest-new-med,a-new-resolved-med,a-mid-inprog-low,a-old-new-high", 4},
		{"A open", bot.AlertFilter{TenantIDs: []string{strings.ToUpper(tenantA)}, Statuses: open}, "a-newest-new-med,a-mid-inprog-low,a-old-new-high", 3},
		{"A open >= medium", bot.AlertFilter{TenantIDs: []string{tenantA}, Statuses: open, MinSeverity: bot.SeverityMedium}, "a-newest-new-med,a-old-new-high", 2},
		{"A resolved", bot.AlertFilter{TenantIDs: []string{tenantA}, Statuses: []bot.AlertStatus{bot.StatusResolved}}, "a-new-resolved-med", 1},
		{"A limit 2", bot.AlertFilter{TenantIDs: []string{tenantA}, Limit: 2}, "a-newest-new-med,a-new-resolved-med", 4},
		{"A and B high", bot.AlertFilter{TenantIDs: []string{tenantA, tenantB}, MinSeverity: bot.SeverityHigh}, "b-new-high,a-old-new-high", 2},
		{"unknown tenant", bot.AlertFilter{TenantIDs: []string{"44444444-4444-4444-4444-444444444444"}}, "", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, total, err := db.FindAlerts(ctx, c.f)
			must(t, err)
			if ids(got) != c.want || total != c.total {
				t.Fatalf("got %s (total %d), want %s (total %d)", ids(got), total, c.want, c.total)
			}
		})
	}
}

func TestFindAlertsCountIsCapped(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	var alerts []bot.Alert
	for i := range CountCap + 5 {
		alerts = append(alerts, mk(tenantA, fmt.Sprintf("c%04d", i), bot.SeverityHigh, bot.StatusNew, t0.Add(time.Duration(i)*time.Second)))
	}
	seed(t, db, alerts...)
	got, total, err := db.FindAlerts(ctx, bot.AlertFilter{TenantIDs: []string{tenantA}})
	must(t, err)
	if len(got) != defaultLimit || total != CountCap || got[0].ID != fmt.Sprintf("c%04d", CountCap+4) {
		t.Fatalf("len %d total %d first %s", len(got), total, got[0].ID)
	}
}

// The `alerts` query of one tenant must walk the (tenant, status, created)
// index, never the table: a million rows must not make it slower.
func TestFindAlertsUsesIndex(t *testing.T) {
	db := mustOpen(t)
	rows, err := db.r.Query(`EXPLAIN QUERY PLAN SELECT `+alertCols+` FROM alerts
		WHERE tenant_id IN (?) AND status IN (?, ?) AND severity >= ? ORDER BY created_at DESC LIMIT ?`,
		tenantA, "New", "InProgress", 2, 20)
	must(t, err)
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		must(t, rows.Scan(&id, &parent, &unused, &detail))
		plan = append(plan, detail)
	}
	p := strings.Join(plan, "; ")
	if !strings.Contains(p, "alerts_list") || strings.Contains(p, "SCAN alerts") {
		t.Fatalf("query plan: %s", p)
	}
}

func TestRecordAction(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	ingest(t, db, tenantA, false, testAlert(t, tenantA, "a1", bot.SeverityHigh))
	ingest(t, db, tenantB, false, testAlert(t, tenantB, "b1", bot.SeverityHigh))
	resolved, class, det := bot.StatusResolved, bot.ClassTruePositive, "Malware"
	act := bot.Action{
		TenantID: strings.ToUpper(tenantA), AlertID: "a1",
		Update:     bot.AlertUpdate{Status: &resolved, Classification: &class, Determination: &det},
		WriteBack:  &bot.WriteBack{Kind: bot.WriteBackResolve, Status: resolved, Classification: class, Determination: det, Actor: "analyst1@mssp.example", TenantID: tenantB, AlertID: "b1"},
		ThreadText: "Resolved by analyst1", Now: t0,
		Audit: bot.AuditEntry{Actor: "slack:U1", Identity: "analyst1@mssp.example", Channel: chanA, Action: "resolve", Target: "a1", Outcome: "ok"},
	}
	must(t, db.RecordAction(ctx, act))
	a, err := db.FindAlert(ctx, tenantA, "a1")
	must(t, err)
	if a.Status != resolved || a.Classification != class || a.Determination != det || a.AssignedTo != "" {
		t.Fatalf("alert = %+v", a)
	}
	wbs, err := db.PendingWriteBacks(ctx, tenantA)
	must(t, err)
	if len(wbs) != 1 || wbs[0].AlertID != "a1" || wbs[0].TenantID != tenantA || wbs[0].State != bot.WriteBackPending ||
		!wbs[0].NextAttempt.Equal(t0) || wbs[0].Kind != bot.WriteBackResolve || wbs[0].Classification != class {
		t.Fatalf("write-backs = %+v", wbs)
	}
	if other, _ := db.PendingWriteBacks(ctx, tenantB); len(other) != 0 {
		t.Fatalf("the write-back went to tenant B: %+v", other)
	}
	want := "slack:C0CONTOSO post pending\nslack:C0SOC post pending\nslack:C0CONTOSO thread pending\n" +
		"slack:C0SOC thread pending\nslack:C0CONTOSO edit pending\nslack:C0SOC edit pending\n"
	if got := kinds(outboxOf(t, db, tenantA, "a1")); got != want {
		t.Fatalf("entries:\n%s\nwant\n%s", got, want)
	}
	audit, err := db.FindAudit(ctx, bot.AuditFilter{TenantIDs: []string{tenantA}})
	must(t, err)
	if len(audit) != 1 || audit[0].Action != "resolve" || audit[0].TenantID != tenantA || !audit[0].Time.Equal(t0) ||
		audit[0].Identity != "analyst1@mssp.example" || audit[0].Channel != chanA {
		t.Fatalf("audit = %+v", audit)
	}

	// Another tenant's alert is not found, and nothing is written.
	before := len(outboxOf(t, db, tenantB, "b1"))
	err = db.RecordAction(ctx, bot.Action{TenantID: tenantA, AlertID: "b1", Update: bot.AlertUpdate{Status: &resolved},
		WriteBack: &bot.WriteBack{Kind: bot.WriteBackReopen}, ThreadText: "x", Now: t0, Audit: bot.AuditEntry{Action: "resolve"}})
	wantCode(t, err, bot.ENOTFOUND)
	if b, _ := db.FindAlert(ctx, tenantB, "b1"); b.Status != bot.StatusNew {
		t.Fatalf("B's alert changed: %s", b.Status)
	}
	if n := len(outboxOf(t, db, tenantB, "b1")); n != before {
		t.Fatal("entries queued for another tenant's alert")
	}
	if wbs, _ := db.PendingWriteBacks(ctx, tenantA); len(wbs) != 1 {
		t.Fatalf("write-back stored for a refused action: %+v", wbs)
	}
	if audit, _ := db.FindAudit(ctx, bot.AuditFilter{}); len(audit) != 1 {
		t.Fatalf("audit written for a refused action: %+v", audit)
	}

	// Without a write-back or text: fields and the card only.
	who := "someone"
	must(t, db.RecordAction(ctx, bot.Action{TenantID: tenantA, AlertID: "a1", Update: bot.AlertUpdate{AssignedTo: &who}, Now: t0}))
	if got := kinds(outboxOf(t, db, tenantA, "a1")[6:]); got != "slack:C0CONTOSO edit pending\nslack:C0SOC edit pending\n" {
		t.Fatalf("entries without text:\n%s", got)
	}
}

// Many tenants (a SOC channel) take the alerts_open path: it must return
// exactly what a plain filter would, and never an alert of a tenant the
// caller did not pass.
func TestFindAlertsManyTenants(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	var all []bot.Alert
	var tenants []string
	statuses := []bot.AlertStatus{bot.StatusNew, bot.StatusInProgress, bot.StatusResolved, bot.StatusUnknown}
	for i := range 3 * openIndexTenants {
		tenant := fmt.Sprintf("%08d-0000-4000-8000-%012d", i, i)
		tenants = append(tenants, tenant)
		if _, err := db.w.Exec(`INSERT INTO tenants (id, name, state) VALUES (?, ?, 'active')`, tenant, "t"+tenant); err != nil {
			t.Fatal(err)
		}
		for j := range 15 {
			n := i*15 + j
			all = append(all, mk(tenant, fmt.Sprintf("m%04d", n), bot.Severity(n*7%5), statuses[n*3%4],
				t0.Add(time.Duration(n*37%500)*time.Second)))
		}
	}
	seed(t, db, all...)
	// Visible: two thirds of the tenants, upper-cased as a caller may.
	var visible []string
	seen := map[string]bool{}
	for i, tn := range tenants {
		if i%3 != 0 {
			visible = append(visible, strings.ToUpper(tn))
			seen[tn] = true
		}
	}
	for _, f := range []bot.AlertFilter{
		{TenantIDs: visible, Statuses: []bot.AlertStatus{bot.StatusNew, bot.StatusInProgress}},
		{TenantIDs: visible, Statuses: []bot.AlertStatus{bot.StatusNew, bot.StatusInProgress}, MinSeverity: bot.SeverityHigh, Limit: 7},
		{TenantIDs: visible, Statuses: []bot.AlertStatus{bot.StatusInProgress}, Limit: 500},
		{TenantIDs: visible, Statuses: []bot.AlertStatus{bot.StatusResolved}},
		{TenantIDs: visible},
	} {
		var want []bot.Alert
		for _, a := range all {
			if seen[a.TenantID] && (len(f.Statuses) == 0 || slices.Contains(f.Statuses, a.Status)) && a.Severity >= f.MinSeverity {
				want = append(want, a)
			}
		}
		// Newest first; equal times in any order, so compare as sets per time.
		slices.SortStableFunc(want, func(x, y bot.Alert) int { return y.CreatedAt.Compare(x.CreatedAt) })
		limit := cmp.Or(f.Limit, defaultLimit)
		got, total, err := db.FindAlerts(ctx, f)
		must(t, err)
		if total != len(want) || len(got) != min(limit, len(want)) {
			t.Fatalf("%+v: %d rows (total %d), want %d (total %d)", f.Statuses, len(got), total, min(limit, len(want)), len(want))
		}
		for i, a := range got {
			if !seen[a.TenantID] {
				t.Fatalf("alert %s of tenant %s not passed by the caller", a.ID, a.TenantID)
			}
			if !a.CreatedAt.Equal(want[i].CreatedAt) {
				t.Fatalf("%+v: row %d created %v, want %v", f.Statuses, i, a.CreatedAt, want[i].CreatedAt)
			}
		}
	}
}
