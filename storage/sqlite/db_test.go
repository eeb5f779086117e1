package sqlite

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

const (
	tenantA = "6f1c3e2a-0b7d-4c1e-9a55-1d2b3c4d5e6f" // Contoso
	tenantB = "0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d" // Fabrikam

	chanA   bot.ChannelRef = "slack:C0CONTOSO"
	chanB   bot.ChannelRef = "slack:C0FABRIKAM"
	chanSOC bot.ChannelRef = "slack:C0SOC"
)

var t0 = time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)

// mustOpen opens a fresh database in a temporary directory, closed at the end of the test.
func mustOpen(tb testing.TB) *DB {
	tb.Helper()
	db, err := Open(context.Background(), filepath.Join(tb.TempDir(), "msspbot.db"))
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// mustTenant creates a tenant in the given state.
func mustTenant(tb testing.TB, db *DB, id, name string, state bot.TenantState) {
	tb.Helper()
	if err := db.CreateTenant(context.Background(), bot.Tenant{ID: id, Name: name, State: state}); err != nil {
		tb.Fatalf("CreateTenant(%s): %v", id, err)
	}
}

// wantCode fails unless err carries the bot error code.
func wantCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if got := bot.ErrorCode(err); got != code {
		tb.Fatalf("error = %v (code %q), want code %q", err, got, code)
	}
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// mdeAlert is the part of an MDE alert the tests map (the defender package
// owns the real mapping).
type mdeAlert struct {
	ID              string     `json:"id"`
	IncidentID      int64      `json:"incidentId"`
	AssignedTo      *string    `json:"assignedTo"`
	Severity        string     `json:"severity"`
	Status          string     `json:"status"`
	DetectionSource string     `json:"detectionSource"`
	Category        string     `json:"category"`
	Title           string     `json:"title"`
	Description     string     `json:"description"`
	Created         time.Time  `json:"alertCreationTime"`
	Updated         time.Time  `json:"lastUpdateTime"`
	Resolved        *time.Time `json:"resolvedTime"`
	MachineID       string     `json:"machineId"`
	Computer        string     `json:"computerDnsName"`
	Group           string     `json:"rbacGroupName"`
	Mitre           []string   `json:"mitreTechniques"`
	User            *struct {
		UserName   string `json:"userName"`
		DomainName string `json:"domainName"`
	} `json:"relatedUser"`
}

// fixtureRaw is the first alert of testdata/alerts-page.json as it is
// written there, and its id.
func fixtureRaw(tb testing.TB) (raw []byte, id string) {
	tb.Helper()
	b, err := os.ReadFile("testdata/alerts-page.json")
	if err != nil {
		tb.Fatal(err)
	}
	var page struct {
		Value []json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(b, &page); err != nil {
		tb.Fatal(err)
	}
	var a mdeAlert
	if err := json.Unmarshal(page.Value[0], &a); err != nil {
		tb.Fatal(err)
	}
	return page.Value[0], a.ID
}

// alertFrom maps raw MDE JSON for tenant, with the alert's id replaced by id.
func alertFrom(tb testing.TB, raw []byte, oldID, tenant, id string) bot.Alert {
	tb.Helper()
	raw = bytes.Replace(raw, []byte(`"`+oldID+`"`), []byte(`"`+id+`"`), 1)
	var m mdeAlert
	if err := json.Unmarshal(raw, &m); err != nil {
		tb.Fatal(err)
	}
	sev, _ := bot.ParseSeverity(m.Severity)
	a := bot.Alert{
		TenantID: tenant, ID: m.ID, Title: m.Title, Description: m.Description, Severity: sev,
		Status: bot.ParseStatus(m.Status), Category: m.Category, DetectionSource: m.DetectionSource,
		DeviceName: m.Computer, DeviceID: m.MachineID, DeviceGroup: m.Group, MitreTechniques: m.Mitre,
		CreatedAt: m.Created, LastUpdatedAt: m.Updated, Raw: raw,
		PortalURL: "https://security.microsoft.com/alerts/" + m.ID + "?tid=" + tenant,
	}
	if m.IncidentID != 0 {
		a.IncidentID = strconv.FormatInt(m.IncidentID, 10)
	}
	if m.AssignedTo != nil {
		a.AssignedTo = *m.AssignedTo
	}
	if m.Resolved != nil {
		a.ResolvedAt = *m.Resolved
	}
	if m.User != nil {
		a.UserName = m.User.DomainName + `\` + m.User.UserName
	}
	return a
}

// testAlert is the fixture alert for tenant with the given id and severity.
func testAlert(tb testing.TB, tenant, id string, sev bot.Severity) bot.Alert {
	tb.Helper()
	raw, oldID := fixtureRaw(tb)
	a := alertFrom(tb, raw, oldID, tenant, id)
	a.Severity = sev
	return a
}

func TestOpenMigratesOnce(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "msspbot.db")
	db, err := Open(ctx, path)
	must(t, err)
	mustTenant(t, db, tenantA, "Contoso", bot.TenantActive)
	must(t, db.Close())

	db, err = Open(ctx, path)
	must(t, err)
	defer db.Close()
	if _, err := db.FindTenant(ctx, tenantA); err != nil {
		t.Fatalf("tenant lost after reopening: %v", err)
	}
	var version int
	must(t, db.r.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version))
	files, err := fs.Glob(migrations, "migration/*.sql")
	must(t, err)
	if version != len(files) {
		t.Fatalf("user_version = %d, want %d (one per migration file)", version, len(files))
	}
	var mode string
	must(t, db.r.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode))
	if mode != "wal" {
		t.Fatalf("journal_mode = %q, want wal", mode)
	}
	var fk int
	must(t, db.r.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk))
	if fk != 1 {
		t.Fatalf("foreign_keys = %d on a read connection, want 1", fk)
	}
	must(t, db.Ping(ctx))
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	for _, path := range []string{"", "a?b.db", filepath.Join(t.TempDir(), "missing", "dir", "x.db")} {
		if db, err := Open(ctx, path); err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded, want an error", path)
		}
	}
}

func TestReadPoolIsReadOnly(t *testing.T) {
	db := mustOpen(t)
	if _, err := db.r.Exec(`DELETE FROM tenants`); err == nil {
		t.Fatal("the read pool accepted a write")
	}
}

func TestPingAfterClose(t *testing.T) {
	db := mustOpen(t)
	must(t, db.Close())
	if err := db.Ping(context.Background()); err == nil {
		t.Fatal("Ping after Close succeeded")
	}
}

func TestPurge(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	mustTenant(t, db, tenantA, "Contoso", bot.TenantActive)
	must(t, db.Link(ctx, chanA, tenantA))

	long := t0.Add(-200 * 24 * time.Hour)
	old := testAlert(t, tenantA, "old-resolved", bot.SeverityHigh)
	old.Status, old.LastUpdatedAt = bot.StatusResolved, long
	oldOpen := testAlert(t, tenantA, "old-open", bot.SeverityHigh)
	oldOpen.LastUpdatedAt = long
	recent := testAlert(t, tenantA, "recent-resolved", bot.SeverityHigh)
	recent.Status, recent.LastUpdatedAt = bot.StatusResolved, t0.Add(-time.Hour)
	// Untouched in Defender for 200 days, resolved in chat an hour ago.
	chat := testAlert(t, tenantA, "resolved-in-chat", bot.SeverityHigh)
	chat.LastUpdatedAt = long
	// Old and resolved, but its write-back has not gone out yet.
	queued := testAlert(t, tenantA, "old-writeback-pending", bot.SeverityHigh)
	queued.Status, queued.LastUpdatedAt = bot.StatusResolved, long
	res := ingest(t, db, tenantA, false, old, oldOpen, recent, chat, queued)
	if res.Deliveries != 10 { // customer + SOC channel each
		t.Fatalf("deliveries = %d, want 10", res.Deliveries)
	}
	// A thread line and an edit per card of the old resolved alert, long
	// ago: six outbox rows for it once all is sent.
	must(t, db.RecordAction(ctx, bot.Action{TenantID: tenantA, AlertID: "old-resolved", ThreadText: "note", Now: long}))
	resolved := bot.StatusResolved
	must(t, db.RecordAction(ctx, bot.Action{TenantID: tenantA, AlertID: "resolved-in-chat", ThreadText: "resolved",
		Update: bot.AlertUpdate{Status: &resolved}, Now: t0.Add(-time.Hour)}))
	for i := 0; ; i++ {
		items, _ := next(t, db, t0)
		if len(items) == 0 {
			break
		}
		for j, it := range items {
			send(t, db, it, fmt.Sprintf("m%d-%d", i, j))
		}
	}
	must(t, db.RecordAction(ctx, bot.Action{TenantID: tenantA, AlertID: "old-writeback-pending", Now: long,
		WriteBack: &bot.WriteBack{Kind: bot.WriteBackComment, Comment: "c"}}))

	must(t, db.CreateAudit(ctx, bot.AuditEntry{Time: t0.Add(-500 * 24 * time.Hour), Action: "ack", TenantID: tenantA}))
	must(t, db.CreateAudit(ctx, bot.AuditEntry{Time: t0.Add(-time.Hour), Action: "ack", TenantID: tenantA}))
	// An unrelated notice must survive.
	notice, err := db.CreateDelivery(ctx, bot.Delivery{Kind: bot.DeliveryNotice, Channel: chanSOC, CreatedAt: t0.Add(-300 * 24 * time.Hour)})
	must(t, err)

	got, err := db.Purge(ctx, t0.Add(-180*24*time.Hour), t0.Add(-400*24*time.Hour))
	must(t, err)
	// old-resolved: its two cards with post, thread and edit each; RecordAction's audit entry is recent.
	want := bot.PurgeResult{Alerts: 1, Deliveries: 2, Outbox: 6, Audit: 1}
	if got != want {
		t.Fatalf("Purge = %+v, want %+v", got, want)
	}
	wantCode(t, func() error { _, err := db.FindAlert(ctx, tenantA, "old-resolved"); return err }(), bot.ENOTFOUND)
	for _, id := range []string{"old-open", "recent-resolved", "resolved-in-chat", "old-writeback-pending"} {
		if _, err := db.FindAlert(ctx, tenantA, id); err != nil {
			t.Errorf("alert %s purged: %v", id, err)
		}
	}
	if _, err := db.FindDelivery(ctx, notice.ID); err != nil {
		t.Errorf("notice purged: %v", err)
	}
	audit, err := db.FindAudit(ctx, bot.AuditFilter{Limit: 100})
	must(t, err)
	if len(audit) != 4 { // the recent one and the three RecordActions'
		t.Errorf("audit entries left = %d, want 4", len(audit))
	}
	// Running it again removes nothing.
	got, err = db.Purge(ctx, t0.Add(-180*24*time.Hour), t0.Add(-400*24*time.Hour))
	must(t, err)
	if got != (bot.PurgeResult{}) {
		t.Fatalf("second Purge = %+v, want nothing", got)
	}
}

func TestOpenCreatesPrivateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "msspbot.db")
	db, err := Open(context.Background(), path)
	must(t, err)
	defer db.Close()
	fi, err := os.Stat(path)
	must(t, err)
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Fatalf("database file mode = %o, want 600", mode)
	}
}

// Writers from many goroutines queue on the one writer connection instead
// of failing with "database is locked"; readers run beside them.
func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	raw, oldID := fixtureRaw(t)
	alerts := map[string]bot.Alert{}
	for g := range 8 {
		for i := 0; i < 20; i += 4 {
			id := "g" + strconv.Itoa(g) + "-" + strconv.Itoa(i)
			alerts[id] = alertFrom(t, raw, oldID, tenantA, id)
		}
	}
	errs := make(chan error, 64)
	for g := range 8 {
		go func() {
			var err error
			for i := range 20 {
				id := "g" + strconv.Itoa(g) + "-" + strconv.Itoa(i)
				switch i % 4 {
				case 0:
					_, err = db.Ingest(ctx, bot.IngestBatch{TenantID: tenantA, Now: t0, Plan: bot.PlanIngest, SOC: []bot.ChannelRef{chanSOC},
						Alerts: []bot.Alert{alerts[id]}})
				case 1:
					err = db.CreateAudit(ctx, bot.AuditEntry{Action: "ack", Target: id, TenantID: tenantA})
				case 2:
					var items []bot.OutboxItem
					if items, err = db.NextOutbox(ctx, t0, 10); err == nil && len(items) > 0 {
						if e := db.MarkInFlight(ctx, items[0].Entry.ID); e == nil {
							err = db.MarkSent(ctx, items[0].Entry.ID, "m-"+id, items[0].LastEditID)
						} else if bot.ErrorCode(e) != bot.ECONFLICT { // another goroutine took it
							err = e
						}
					}
				case 3:
					_, _, err = db.FindAlerts(ctx, bot.AlertFilter{TenantIDs: []string{tenantA}})
				}
				if err != nil {
					break
				}
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	_, total, err := db.FindAlerts(ctx, bot.AlertFilter{TenantIDs: []string{tenantA}})
	must(t, err)
	if total != 40 {
		t.Fatalf("alerts stored = %d, want 40", total)
	}
}
