package sqlite

import (
	"context"
	"fmt"
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
		a.Raw = []byte(replaceOnce(string(raw), oldID, id))
		a.PortalURL = "https://security.microsoft.com/alerts/" + id + "?tid=" + tenantA
		alerts[j] = a
	}
	return alerts
}

func replaceOnce(s, old, new string) string {
	for i := 0; i+len(old) <= len(s); i++ {
		if s[i:i+len(old)] == old {
			return s[:i] + new + s[i+len(old):]
		}
	}
	return s
}

// BenchmarkIngest measures Ingest: upsert, change detection, rule matching
// and a delivery with its post entry in each of two channels per alert.
func BenchmarkIngest(b *testing.B) {
	db := mustOpen(b)
	ctx := context.Background()
	mustTenant(b, db, tenantA, "Contoso", bot.TenantActive)
	must(b, db.Link(ctx, chanA, tenantA))
	raw, oldID := fixtureRaw(b)
	b.ReportMetric(float64(len(raw)), "raw-bytes")
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
}

// BenchmarkRawInsert inserts the same rows into the same alerts table
// (schema and indexes) in one transaction, with nothing else: the floor.
func BenchmarkRawInsert(b *testing.B) {
	db := mustOpen(b)
	ctx := context.Background()
	mustTenant(b, db, tenantA, "Contoso", bot.TenantActive)
	raw, oldID := fixtureRaw(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		alerts := benchAlerts(b, raw, oldID, i)
		b.StartTimer()
		if err := rawInsert(ctx, db, alerts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "alerts/s")
}

func rawInsert(ctx context.Context, db *DB, alerts []bot.Alert) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, alertInsert)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for i := range alerts {
		args, err := alertArgs(&alerts[i])
		if err != nil {
			return err
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return err
		}
	}
	return tx.Commit()
}
