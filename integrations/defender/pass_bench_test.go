package defender_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
	"github.com/msspbot/msspbot/integrations/defender"
	"github.com/msspbot/msspbot/integrations/defender/defendertest"
	"github.com/msspbot/msspbot/storage/sqlite"
)

// The fetch pass of DESIGN §7: 1,000 tenants behind the fake API with
// 50 ms latency per answer.
const (
	passTenants         = 1000
	passAlertsPerTenant = 3 // fixture alerts per tenant, all inside the overlap window
	passLatency         = 50 * time.Millisecond
)

func passTenantID(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i) }

// passFakes are the fake Entra ID and MDE API, loaded with every tenant's
// consent and alerts. They outlive the sub-benchmarks.
type passFakes struct {
	idp     *defendertest.IdP
	mde     *defendertest.MDE
	tenants []bot.ConfigTenant
	// callBytes is what one answered request adds to the fake's call log
	// (MDE.Calls), which grows for the whole process: it is subtracted
	// from the heap figure with the fakes' baseline.
	callBytes float64
}

// BenchmarkFetchPass runs the real pass (bot.Service.Poll over a SQLite
// store, defender.Client, MSAL) over 1,000 active config tenants.
//
// Only MDE answers are delayed: defendertest.MDE.SetLatency applies to
// /api/alerts; the fake IdP (discovery and token endpoint) answers at once.
// Tokens are fetched by the warm-up pass only (one hour lifetime), so a
// steady-state pass makes exactly one delayed request per tenant: one
// GET /api/alerts page (3 alerts < $top), and the bound is
// tenants × 1 × 50 ms / concurrency. The requests per tenant are counted
// from the fake's call log and reported ("req/tenant"), not assumed.
func BenchmarkFetchPass(b *testing.B) {
	if testing.Short() {
		b.Skip("1,000-tenant fetch pass: not in -short")
	}
	f := newPassFakes(b)
	for _, conc := range []int{16, 32} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) { benchPass(b, f, conc) })
	}
}

func newPassFakes(b *testing.B) *passFakes {
	b.Helper()
	f := &passFakes{idp: defendertest.NewIdP(b)}
	f.mde = defendertest.NewMDE(b, f.idp)
	fixtures := defendertest.FixtureAlerts()
	// Inside the pass's 5-minute overlap: every steady-state pass reads
	// these alerts again and ingests them as unchanged.
	updated := time.Now().Add(-time.Minute)
	for i := range passTenants {
		id := passTenantID(i + 1)
		f.idp.Consent(id)
		for j := range passAlertsPerTenant {
			a := fixtures[j%len(fixtures)]
			a["id"] = fmt.Sprintf("da%08d%04d_-123456789", i, j)
			a["alertCreationTime"] = updated.Add(-time.Duration(j) * time.Second).UTC().Format(time.RFC3339Nano)
			f.mde.PutAt(id, a, updated)
		}
		f.tenants = append(f.tenants, bot.ConfigTenant{
			ID: id, Name: fmt.Sprintf("Customer %04d", i+1),
			Channels: []bot.ChannelRef{bot.NewChannelRef("slack", fmt.Sprintf("C%08d", i+1))},
		})
	}
	f.callBytes = calibrateCallLog(b, f.mde, 2000)
	f.mde.SetLatency(passLatency)
	return f
}

// calibrateCallLog sends n unauthenticated list requests shaped like the
// client's (same request line length, same query keys) and returns the
// live heap each adds to the fake's call log.
func calibrateCallLog(b *testing.B, mde *defendertest.MDE, n int) float64 {
	b.Helper()
	hc := defendertest.HTTPClient(mde.Certificate())
	q := "$filter=" + url.PathEscape("lastUpdateTime ge "+time.Now().UTC().Truncate(time.Second).Format("2006-01-02T15:04:05.9999999Z")) +
		"&$top=10000"
	get := func() {
		resp, err := hc.Get(mde.URL + "/api/alerts?" + q)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			b.Fatalf("calibration request: status %d, want 401", resp.StatusCode)
		}
	}
	get() // the connection's own buffers are not part of the log
	before := liveHeap()
	for range n - 1 {
		get()
	}
	after := liveHeap()
	hc.CloseIdleConnections()
	return float64(after-before) / float64(n-1)
}

// liveHeap returns the live heap after a full GC.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// passObserver checks every pass: all tenants fetched, none failed.
type passObserver struct {
	mu       sync.Mutex
	tenants  int
	failed   int
	alerts   int
	failures []string
}

func (o *passObserver) PassDone(_ time.Duration, tenants, failed int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.tenants, o.failed = tenants, failed
}

func (o *passObserver) AlertsIngested(n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.alerts += n
}

func (o *passObserver) FetchFailed(kind string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.failures = append(o.failures, kind)
}

func (o *passObserver) OutboxResult(string, string)               {}
func (o *passObserver) WriteBackResult(string)                    {}
func (o *passObserver) CommandDone(string, string, time.Duration) {}
func (o *passObserver) Purged(bot.PurgeResult)                    {}
func (o *passObserver) take() (tenants, failed, alerts int, failures []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	tenants, failed, alerts, failures = o.tenants, o.failed, o.alerts, o.failures
	o.tenants, o.failed, o.alerts, o.failures = 0, 0, 0, nil
	return tenants, failed, alerts, failures
}

// writerClock times the store's write transactions of a pass: Ingest and
// UpdateTenant, one at a time. The store has one writer connection, so
// these calls run one at a time anyway; holding a lock here makes the sum
// the writer's busy time rather than time spent queueing for it.
type writerClock struct {
	bot.Store
	mu      sync.Mutex
	ingest  time.Duration
	update  time.Duration
	ingests int
}

func (w *writerClock) Ingest(ctx context.Context, b bot.IngestBatch) (bot.IngestResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	start := time.Now()
	defer func() { w.ingest += time.Since(start); w.ingests++ }()
	return w.Store.Ingest(ctx, b)
}

func (w *writerClock) UpdateTenant(ctx context.Context, id string, upd bot.TenantUpdate) (bot.Tenant, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	start := time.Now()
	defer func() { w.update += time.Since(start) }()
	return w.Store.UpdateTenant(ctx, id, upd)
}

func (w *writerClock) take() (ingest, update time.Duration, ingests int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ingest, update, ingests = w.ingest, w.update, w.ingests
	w.ingest, w.update, w.ingests = 0, 0, 0
	return ingest, update, ingests
}

func benchPass(b *testing.B, f *passFakes, conc int) {
	ctx := context.Background()
	// Baseline: the fakes, loaded, with their call log so far; nothing of
	// the bot yet.
	baseCalls := len(f.mde.Calls())
	base := liveHeap()

	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "msspbot.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.ApplyConfigTenants(ctx, f.tenants); err != nil {
		b.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	// The production client's transport (New with a nil HTTPClient) keeps
	// 64 idle connections per host; the fakes' client does the same and
	// trusts their certificates.
	hc := defendertest.HTTPClient(f.idp.Certificate(), f.mde.Certificate())
	defer hc.CloseIdleConnections()
	client, err := defender.New(defender.Config{
		ClientID: f.idp.ClientID, ClientSecret: f.idp.Secret(), AuthorityHost: f.idp.URL, BaseURL: f.mde.URL,
		HTTPClient: hc, Logger: quiet, PerMinute: -1, PerHour: -1, MaxAttempts: 2,
	})
	if err != nil {
		b.Fatal(err)
	}
	obs := &passObserver{}
	clock := &writerClock{Store: db}
	svc := bot.New(bot.Config{
		Concurrency: conc,
		SOCChannels: []bot.ChannelRef{bot.NewChannelRef("slack", "CSOC00001")},
	}, bot.Deps{Store: clock, Source: client, Access: client, Observer: obs, Logger: quiet})

	check := func(pass string) {
		b.Helper()
		tenants, failed, alerts, failures := obs.take()
		if tenants != passTenants || failed != 0 || alerts != passTenants*passAlertsPerTenant || len(failures) > 0 {
			b.Fatalf("%s pass: %d tenants, %d failed (%v), %d alerts; want %d, 0, %d",
				pass, tenants, failed, failures, alerts, passTenants, passTenants*passAlertsPerTenant)
		}
	}

	// Warm-up: tokens (discovery + token request per tenant, undelayed),
	// TLS connections, 3,000 new alerts with their deliveries.
	start := time.Now()
	if err := svc.Poll(ctx); err != nil {
		b.Fatal(err)
	}
	first := time.Since(start)
	check("first")
	for i, tn := range f.tenants[:3] {
		if n := f.idp.TokenRequests(tn.ID); n < 1 {
			b.Fatalf("tenant %d: no token request in the first pass", i)
		}
	}
	callsBefore := len(f.mde.Calls())
	clock.take()

	var total time.Duration
	passes := 0
	for b.Loop() {
		t := time.Now()
		if err := svc.Poll(ctx); err != nil {
			b.Fatal(err)
		}
		total += time.Since(t)
		passes++
		check("steady")
	}
	calls := len(f.mde.Calls())
	ingest, update, ingests := clock.take()
	if ingests != passes*passTenants {
		b.Fatalf("%d ingests in %d passes", ingests, passes)
	}

	// Between passes: the bot with 1,000 active tenants, tokens cached,
	// connections idle. Subtract the fakes (baseline) and what their call
	// log has grown since.
	live := liveHeap()
	fakeLog := float64(calls-baseCalls) * f.callBytes
	heap := float64(live) - float64(base) - fakeLog
	runtime.KeepAlive(svc)
	runtime.KeepAlive(client)

	reqPerTenant := float64(calls-callsBefore) / float64(passes*passTenants)
	perPass := total.Seconds() / float64(passes)
	bound := float64(passTenants) * reqPerTenant * passLatency.Seconds() / float64(conc)
	b.ReportMetric(perPass, "s/pass")
	b.ReportMetric(bound, "bound-s")
	b.ReportMetric(perPass/bound, "x-bound")
	b.ReportMetric(first.Seconds(), "first-pass-s")
	b.ReportMetric(reqPerTenant, "req/tenant")
	b.ReportMetric(heap/(1<<20), "heap-MiB")
	b.ReportMetric(fakeLog/(1<<20), "fakelog-MiB")
	// The writer's share of a pass: when it nears s/pass, the single
	// writer connection, not the API latency, sets the pace.
	b.ReportMetric((ingest+update).Seconds()/float64(passes), "writer-s/pass")
	b.ReportMetric(float64(ingest.Microseconds())/float64(ingests), "ingest-us/tenant")
	b.ReportMetric(float64(update.Microseconds())/float64(ingests), "update-us/tenant")
}
