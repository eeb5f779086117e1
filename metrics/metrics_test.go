package metrics

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

const tenant = "6f1c3e2a-0b7d-4c1e-9a55-1d2b3c4d5e6f"

var guidRE = regexp.MustCompile(`(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

type fakeOutbox struct {
	mu     sync.Mutex
	counts []bot.OutboxCount
	err    error
	calls  int
}

func (f *fakeOutbox) OutboxCounts(ctx context.Context) ([]bot.OutboxCount, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if _, ok := ctx.Deadline(); !ok {
		return nil, errors.New("no deadline on the scrape query")
	}
	return f.counts, f.err
}

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("scrape status %d: %s", res.StatusCode, body)
	}
	return string(body)
}

// record drives every Observer method, feeding tenant ids and names where
// a careless caller might.
func record(m bot.Observer) {
	m.PassDone(1500*time.Millisecond, 12, 2)
	m.AlertsIngested(7)
	m.AlertsIngested(-1)
	m.FetchFailed("auth")
	m.FetchFailed("auth " + tenant)
	m.FetchFailed("Contoso")
	m.OutboxResult("slack", "sent")
	m.OutboxResult("discord", "failed")
	m.OutboxResult("slack:C0CONTOSO", tenant)
	m.WriteBackResult("retry")
	m.WriteBackResult(tenant)
	m.CommandDone("slack", "ack", 20*time.Millisecond)
	m.CommandDone("discord", "rules add", 30*time.Millisecond)
	m.CommandDone("slack", tenant, time.Millisecond)
	m.CommandDone("slack", "onboard Contoso", time.Millisecond)
	m.Purged(bot.PurgeResult{Alerts: 3, Deliveries: 4, Outbox: 5, Audit: 6})
}

func TestScrape(t *testing.T) {
	m := New(slog.New(slog.DiscardHandler))
	ob := &fakeOutbox{counts: []bot.OutboxCount{
		{Platform: "slack", State: bot.OutboxPending, N: 3}, {Platform: "slack", State: bot.OutboxFailed, N: 1},
		{Platform: "discord", State: bot.OutboxPending, N: 2}, {Platform: "irc", State: bot.OutboxPending, N: 5}}}
	if err := m.WatchOutbox(ob); err != nil {
		t.Fatal(err)
	}
	record(m)
	body := scrape(t, m.Handler())

	for _, want := range []string{
		"msspbot_fetch_passes_total 1",
		"msspbot_fetch_pass_duration_seconds_count 1",
		"msspbot_fetch_pass_tenants 12",
		"msspbot_fetch_pass_failed_tenants 2",
		"msspbot_fetch_last_pass_timestamp_seconds ",
		"msspbot_alerts_ingested_total 7",
		`msspbot_fetch_failures_total{kind="auth"} 1`,
		`msspbot_fetch_failures_total{kind="other"} 2`,
		`msspbot_fetch_failures_total{kind="timeout"} 0`,
		`msspbot_outbox_results_total{platform="slack",result="sent"} 1`,
		`msspbot_outbox_results_total{platform="discord",result="failed"} 1`,
		`msspbot_outbox_results_total{platform="other",result="other"} 1`,
		`msspbot_writeback_results_total{result="retry"} 1`,
		`msspbot_writeback_results_total{result="other"} 1`,
		`msspbot_command_duration_seconds_count{command="ack",platform="slack"} 1`,
		`msspbot_command_duration_seconds_count{command="rules add",platform="discord"} 1`,
		`msspbot_command_duration_seconds_count{command="other",platform="slack"} 2`,
		`msspbot_purged_rows_total{kind="alerts"} 3`,
		`msspbot_purged_rows_total{kind="audit"} 6`,
		`msspbot_outbox_entries{platform="slack",state="pending"} 3`,
		`msspbot_outbox_entries{platform="slack",state="failed"} 1`,
		`msspbot_outbox_entries{platform="slack",state="held"} 0`,
		`msspbot_outbox_entries{platform="discord",state="pending"} 2`,
		`msspbot_outbox_entries{platform="other",state="pending"} 5`,
		"go_goroutines ",
		"process_", // not on every OS, but on Linux
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if strings.Contains(body, `state="sent"`) {
		t.Error("sent entries are exported; they only grow until the purge")
	}
	if ob.calls != 1 {
		t.Errorf("outbox counted %d times in one scrape, want 1", ob.calls)
	}
}

// TestNoTenantInLabels is the guard for DESIGN §4.3: whatever the callers
// pass, no label name or value names a tenant.
func TestNoTenantInLabels(t *testing.T) {
	m := New(slog.New(slog.DiscardHandler))
	if err := m.WatchOutbox(&fakeOutbox{counts: []bot.OutboxCount{{Platform: "slack", State: bot.OutboxPending, N: 1}}}); err != nil {
		t.Fatal(err)
	}
	record(m)

	body := scrape(t, m.Handler())
	if loc := guidRE.FindStringIndex(body); loc != nil {
		t.Errorf("a GUID is exposed: %q", body[max(0, loc[0]-80):loc[1]])
	}
	if strings.Contains(body, "Contoso") || strings.Contains(body, "C0CONTOSO") {
		t.Error("a tenant or channel name is exposed")
	}

	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	allowedNames := set("kind", "platform", "result", "command", "state", "version", "cause")
	allowedValues := map[string]map[string]bool{
		"kind":     set("auth", "throttled", "transient", "timeout", "ingest", "alerts", "deliveries", "outbox", "audit", other),
		"platform": set("slack", "discord", "console", other),
		"result":   set("sent", "retry", "failed", other),
		"command":  set(other),
		"state":    set("held", "pending", "inflight", "failed"),
	}
	for c := range commandNames {
		allowedValues["command"][c] = true
	}
	for _, f := range families {
		for _, mt := range f.GetMetric() {
			for _, lp := range mt.GetLabel() {
				name, value := lp.GetName(), lp.GetValue()
				if !allowedNames[name] || strings.Contains(strings.ToLower(name), "tenant") {
					t.Errorf("%s: label %q not allowed", f.GetName(), name)
				}
				if vs, ok := allowedValues[name]; ok && strings.HasPrefix(f.GetName(), namespace) && !vs[value] {
					t.Errorf("%s: %s=%q not in the allowed set", f.GetName(), name, value)
				}
			}
		}
	}
}

func TestOutboxErrorKeepsTheRest(t *testing.T) {
	var logs bytes.Buffer
	m := New(slog.New(slog.NewTextHandler(&logs, nil)))
	if err := m.WatchOutbox(&fakeOutbox{err: errors.New("database is locked")}); err != nil {
		t.Fatal(err)
	}
	m.PassDone(time.Second, 1, 0)
	body := scrape(t, m.Handler())
	if !strings.Contains(body, "msspbot_fetch_passes_total 1") {
		t.Error("a failing outbox query hid the other metrics")
	}
	if strings.Contains(body, "msspbot_outbox_entries{") {
		t.Error("outbox entries exported despite the error")
	}
	if !strings.Contains(logs.String(), "database is locked") {
		t.Errorf("scrape error not logged: %s", logs.String())
	}
	body = scrape(t, m.Handler())
	if !strings.Contains(body, `promhttp_metric_handler_errors_total{cause="gathering"} 1`) {
		t.Error("gathering error not counted")
	}
}

func TestWatchOutboxTwice(t *testing.T) {
	m := New(nil)
	if err := m.WatchOutbox(&fakeOutbox{}); err != nil {
		t.Fatal(err)
	}
	if err := m.WatchOutbox(&fakeOutbox{}); err == nil {
		t.Fatal("second WatchOutbox accepted")
	}
}

func TestConcurrentObserve(t *testing.T) {
	m := New(nil)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				record(m)
			}
		})
	}
	wg.Wait()
	if body := scrape(t, m.Handler()); !strings.Contains(body, "msspbot_fetch_passes_total 800") {
		t.Error("lost updates under concurrency")
	}
}
