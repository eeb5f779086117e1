package defender

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msspbot/msspbot/integrations/defender/defendertest"
)

func tenantID(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i) }

// fetchAll runs one fetch pass over tenants with a worker pool, as
// bot.Service.Poll does.
func fetchAll(t testing.TB, c *Client, tenants []string, workers int) int64 {
	var total atomic.Int64
	jobs := make(chan string)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for tn := range jobs {
				as, err := c.Alerts(t.Context(), tn, time.Time{})
				if err != nil {
					t.Errorf("tenant %s: %v", tn, err)
					continue
				}
				total.Add(int64(len(as)))
			}
		})
	}
	for _, tn := range tenants {
		jobs <- tn
	}
	close(jobs)
	wg.Wait()
	return total.Load()
}

func TestManyTenantsConcurrentNoLeak(t *testing.T) {
	e := newEnv(t)
	var tenants []string
	for i := range 200 {
		tn := tenantID(i + 1)
		tenants = append(tenants, tn)
		e.idp.Consent(tn)
		e.mde.Put(tn, defendertest.SampleAlert(fmt.Sprintf("a-%d-1", i)))
		e.mde.Put(tn, defendertest.SampleAlert(fmt.Sprintf("a-%d-2", i)))
	}
	before := runtime.NumGoroutine()
	if n := fetchAll(t, e.c, tenants, 32); n != 400 {
		t.Fatalf("fetched %d alerts, want 400", n)
	}
	// A second pass uses cached tokens only.
	if n := fetchAll(t, e.c, tenants, 32); n != 400 {
		t.Fatalf("second pass fetched %d alerts", n)
	}
	for _, tn := range tenants {
		if n := e.idp.TokenRequests(tn); n != 1 {
			t.Fatalf("tenant %s: %d token requests over two passes", tn, n)
		}
	}
	e.cfg.HTTPClient.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+4 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		e.cfg.HTTPClient.CloseIdleConnections()
	}
	if after := runtime.NumGoroutine(); after > before+4 {
		t.Errorf("goroutines: %d before, %d after two passes", before, after)
	}
}

// BenchmarkClientListManyTenants: the client alone (no store, no pass), 1,000 tenants behind a fake API with 50 ms latency,
// 32 workers (DESIGN §7). The bound is tenants × requests × latency /
// concurrency = 1000 × 1 × 50ms / 32 ≈ 1.56 s per pass.
func BenchmarkClientListManyTenants(b *testing.B) {
	idp := defendertest.NewIdP(b)
	mde := defendertest.NewMDE(b, idp)
	c, err := New(Config{
		ClientID: idp.ClientID, ClientSecret: idp.Secret(), AuthorityHost: idp.URL, BaseURL: mde.URL,
		HTTPClient: mde.Client(), PerMinute: -1, PerHour: -1,
	})
	if err != nil {
		b.Fatal(err)
	}
	var tenants []string
	for i := range 1000 {
		tn := tenantID(i + 1)
		tenants = append(tenants, tn)
		idp.Consent(tn)
		mde.Put(tn, defendertest.SampleAlert(fmt.Sprintf("a-%d", i)))
	}
	fetchAll(b, c, tenants, 32) // tokens cached, connections warm
	mde.SetLatency(50 * time.Millisecond)
	b.ResetTimer()
	for b.Loop() {
		if n := fetchAll(b, c, tenants, 32); n != 1000 {
			b.Fatalf("fetched %d", n)
		}
	}
	b.ReportMetric(1000*0.050/32, "bound-s/op")
}
