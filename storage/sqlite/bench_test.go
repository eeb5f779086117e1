package sqlite

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

// benchBatch is the size of one fetched page (MDE $top=10000).
const benchBatch = 10000

// benchAlerts builds batch i: the fixture alert without evidence, new ids.
func benchAlerts(b *testing.B, raw []byte, oldID string, i int) []bot.Alert {
	b.Helper()
	tmpl := alertFrom(b, raw, oldID, tenantA, oldID)
	alerts := make([]bot.Alert, benchBatch)
	for j := range alerts {
		id := fmt.Sprintf("da%012d%06d_-1234567890", i, j)
		a := tmpl
		a.ID = id
		a.Raw = []byte(strings.Replace(string(raw), oldID, id, 1))
		a.PortalURL = "https://security.microsoft.com/alerts/" + id + "?tid=" + tenantA
		alerts[j] = a
	}
	return alerts
}

// BenchmarkIngest measures Ingest: upsert, change detection, rule matching
// and a delivery with its post entry in each of two channels per alert.
func BenchmarkIngest(b *testing.B) {
	db := mustOpen(b)
	ctx := context.Background()
	mustTenant(b, db, tenantA, "Contoso", bot.TenantActive)
	must(b, db.Link(ctx, chanA, tenantA))
	raw, oldID := fixtureRaw(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		alerts := benchAlerts(b, raw, oldID, i)
		// A pass gives each tenant a deadline; the driver pays for cancellable contexts.
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		b.StartTimer()
		res, err := db.Ingest(cctx, bot.IngestBatch{TenantID: tenantA, Alerts: alerts, SOC: []bot.ChannelRef{chanSOC},
			Now: t0, Watermark: t0, PassID: int64(i), Plan: bot.PlanIngest})
		b.StopTimer()
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		if res.New != benchBatch || res.Deliveries != 2*benchBatch {
			b.Fatalf("result = %+v", res)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "alerts/s")
	b.ReportMetric(float64(len(raw)), "raw-bytes")
}

// BenchmarkIngestUnchanged re-ingests one batch that is stored already
// (a pass's overlap window): loads, plans, rewrites, queues nothing.
func BenchmarkIngestUnchanged(b *testing.B) {
	db := mustOpen(b)
	ctx := context.Background()
	mustTenant(b, db, tenantA, "Contoso", bot.TenantActive)
	must(b, db.Link(ctx, chanA, tenantA))
	raw, oldID := fixtureRaw(b)
	alerts := benchAlerts(b, raw, oldID, 0)
	batch := bot.IngestBatch{TenantID: tenantA, Alerts: alerts, SOC: []bot.ChannelRef{chanSOC}, Now: t0, Plan: bot.PlanIngest}
	if _, err := db.Ingest(ctx, batch); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := db.Ingest(ctx, batch)
		if err != nil {
			b.Fatal(err)
		}
		if res.Unchanged != benchBatch {
			b.Fatalf("result = %+v", res)
		}
	}
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "alerts/s")
}

// BenchmarkRawInsert inserts the same rows into the same alerts table
// (schema and indexes) in one transaction, with nothing else: the floor.
// rows=1 is one prepared single-row INSERT per alert; rows=16 uses the
// multi-row statements ingest uses.
func BenchmarkRawInsert(b *testing.B) {
	for _, rows := range []int{1, alertChunk} {
		b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) {
			db := mustOpen(b)
			ctx := context.Background()
			mustTenant(b, db, tenantA, "Contoso", bot.TenantActive)
			raw, oldID := fixtureRaw(b)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				alerts := benchAlerts(b, raw, oldID, i)
				b.StartTimer()
				if err := rawInsertRows(ctx, db, alerts, rows); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "alerts/s")
		})
	}
}

// rawInsert stores alerts with plain INSERTs, one per row.
func rawInsert(ctx context.Context, db *DB, alerts []bot.Alert) error {
	return rawInsertRows(ctx, db, alerts, 1)
}

// rawInsertRows stores alerts with plain INSERTs of up to rows rows each.
func rawInsertRows(ctx context.Context, db *DB, alerts []bot.Alert, rows int) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	row := alertRow
	query := func(n int) string {
		return strings.Replace(alertInsert, row, strings.TrimSuffix(strings.Repeat(row+`,`, n), `,`), 1)
	}
	stmt, err := tx.PrepareContext(ctx, query(rows))
	if err != nil {
		return err
	}
	defer stmt.Close()
	buf := make([]any, 0, alertColCount*rows)
	for i := range alerts {
		args, err := alertArgs(&alerts[i])
		if err != nil {
			return err
		}
		buf = append(buf, args...)
		if len(buf) == alertColCount*rows {
			if _, err := stmt.ExecContext(ctx, buf...); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	if len(buf) > 0 {
		if _, err := tx.ExecContext(ctx, query(len(buf)/alertColCount), buf...); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// BenchmarkFindAlerts is the `alerts` query of one customer channel (open,
// newest first, 20 rows and the count) against 1,000 tenants × 200 alerts,
// 10 % open.
func BenchmarkFindAlerts(b *testing.B) {
	db := mustOpen(b)
	ctx := context.Background()
	const tenants, perTenant = 1000, 200
	tx, err := db.w.BeginTx(ctx, nil)
	must(b, err)
	ids := make([]string, tenants)
	for i := range ids {
		ids[i] = fmt.Sprintf("%08d-0000-4000-8000-000000000000", i)
		if _, err := tx.Exec(`INSERT INTO tenants (id, name, state) VALUES (?, ?, 'active')`, ids[i], "t"+ids[i]); err != nil {
			b.Fatal(err)
		}
	}
	must(b, tx.Commit())
	for i, tenant := range ids {
		alerts := make([]bot.Alert, perTenant)
		for j := range alerts {
			status := bot.StatusResolved
			if j%10 == 0 {
				status = bot.StatusNew
			}
			alerts[j] = mk(tenant, fmt.Sprintf("da%06d_%04d", i, j), bot.Severity(j/10%5), status, t0.Add(time.Duration(j)*time.Minute))
		}
		must(b, rawInsertRows(ctx, db, alerts, alertChunk))
	}
	open := []bot.AlertStatus{bot.StatusNew, bot.StatusInProgress}
	for _, bc := range []struct {
		name  string
		f     bot.AlertFilter
		total int
	}{
		{"customer", bot.AlertFilter{TenantIDs: []string{ids[tenants/2]}, Statuses: open}, perTenant / 10},
		// A SOC channel sees every tenant.
		{"soc", bot.AlertFilter{TenantIDs: ids, Statuses: open}, min(tenants*perTenant/10, CountCap)},
		{"soc-high", bot.AlertFilter{TenantIDs: ids, Statuses: open, MinSeverity: bot.SeverityHigh}, min(tenants*perTenant/10*2/5, CountCap)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				got, total, err := db.FindAlerts(ctx, bc.f)
				if err != nil || len(got) != 20 || total != bc.total {
					b.Fatalf("FindAlerts = %d rows, total %d, %v", len(got), total, err)
				}
			}
		})
	}
}
