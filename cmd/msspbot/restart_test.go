package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
	"github.com/msspbot/msspbot/config"
	"github.com/msspbot/msspbot/integrations/defender/defendertest"
	"github.com/msspbot/msspbot/scheduler"
	"github.com/msspbot/msspbot/storage/sqlite"
)

// serveOnce runs the real serve wiring once on dbPath against the
// given fakes; the returned func stops it and returns serve's error.
func serveOnce(t *testing.T, dir, dbPath string, idp *defendertest.IdP, mde *defendertest.MDE, slack *fakeSlack) func() error {
	t.Helper()
	yaml := fmt.Sprintf(`
database: %s
http:
  listen: "127.0.0.1:0"
azure:
  client_id: %q
  client_secret_file: %s
  authority_host: %q
defender:
  base_url: %q
  schedule: "@every 1s"
slack:
  enabled: true
  mode: http
  bot_token: %q
  signing_secret: %q
  api_url: %q
soc:
  channels: ["slack:CSOC"]
  users: ["slack:UANALYST"]
tenants:
  - id: %q
    name: Fabrikam
    channels: ["slack:CFAB"]
`, dbPath, idp.ClientID, filepath.Join(dir, "secret"), idp.URL, mde.URL, e2eToken, e2eSecret, slack.srv.URL+"/api/", e2eTenantB)
	must(t, os.WriteFile(filepath.Join(dir, "secret"), []byte(idp.Secret()+"\n"), 0o600))
	path := filepath.Join(dir, "config.yaml")
	must(t, os.WriteFile(path, []byte(yaml), 0o600))
	cfg, err := config.Load(path, func(string) string { return "" }, os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, cfg, log, serveOptions{HTTPClient: mde.Client(), Started: func(u string) { started <- u }, ShutdownTimeout: 5 * time.Second})
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("serve stopped at start: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not start")
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			return fmt.Errorf("serve did not stop")
		}
	}
	t.Cleanup(func() { stop() })
	return stop
}

func (f *fakeSlack) count(channel, substr string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, m := range f.msgs {
		if m.Channel == channel && (strings.Contains(m.Text, substr) || strings.Contains(m.Blocks, substr)) {
			n++
		}
	}
	return n
}

// A config-declared tenant whose access is lost turns failing after three
// refusals, and every SOC channel and its customer channel get one "lost
// access" message. A restart re-applies the config tenants; it must keep
// the tenant failing (ApplyConfigTenants used to set it active with its
// failure count kept, so the first pass after each restart posted the same
// message again, with no "works again" in between).
func TestConfigTenantFailingSurvivesRestart(t *testing.T) {
	idp := defendertest.NewIdP(t) // tenant B never consents: every token request is refused
	mde := defendertest.NewMDE(t, idp)
	slack := newFakeSlack(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "msspbot.db")

	stop := serveOnce(t, dir, dbPath, idp, mde, slack)
	eventually(t, "lost-access message in the SOC channel", func() bool { return slack.count("CSOC", "Lost access") == 1 })
	eventually(t, "lost-access message in the customer channel", func() bool { return slack.count("CFAB", "lost access") == 1 })
	if err := stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	db, err := sqlite.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	tn, err := db.FindTenant(context.Background(), e2eTenantB)
	db.Close()
	if err != nil || tn.State != bot.TenantFailing {
		t.Fatalf("before restart: tenant %+v, %v", tn, err)
	}

	stop = serveOnce(t, dir, dbPath, idp, mde, slack)
	time.Sleep(2500 * time.Millisecond) // the start-up pass and two scheduled ones
	if err := stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	if n := slack.count("CSOC", "Lost access"); n != 1 {
		t.Errorf("SOC channel got %d lost-access messages for one outage across a restart, want 1", n)
	}
	if n := slack.count("CFAB", "lost access"); n != 1 {
		t.Errorf("customer channel got %d lost-access messages for one outage across a restart, want 1", n)
	}
}

// Retention ages a resolved alert by its last change, Defender's or
// msspbot's: an alert Defender last touched 200 days ago and an analyst
// resolved an hour ago must survive tonight's purge (it used to be purged
// with its pending thread line and card edit, and posted again as new when
// Defender next reported it).
func TestRetentionKeepsAlertResolvedToday(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "msspbot.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now().UTC()
	must(t, db.ApplyConfigTenants(ctx, []bot.ConfigTenant{{ID: e2eTenantB, Name: "Fabrikam", Channels: []bot.ChannelRef{"slack:CFAB"}}}))
	old := now.Add(-200 * 24 * time.Hour)
	alert := bot.Alert{TenantID: e2eTenantB, ID: "da-old-1", Title: "Old alert", Severity: bot.SeverityHigh,
		Status: bot.StatusNew, CreatedAt: old, LastUpdatedAt: old}
	ingest := func(a bot.Alert, pass int64) bot.IngestResult {
		t.Helper()
		res, err := db.Ingest(ctx, bot.IngestBatch{TenantID: e2eTenantB, Alerts: []bot.Alert{a}, PassID: pass,
			SOC: []bot.ChannelRef{"slack:CSOC"}, Now: now, Plan: bot.PlanIngest})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := ingest(alert, 1); res.Deliveries == 0 {
		t.Fatalf("no card planned: %+v", res)
	}

	// The analyst resolves it today, as bot's resolve does.
	st, class, by := bot.StatusResolved, bot.ClassFalsePositive, "slack:UANALYST"
	must(t, db.RecordAction(ctx, bot.Action{
		TenantID: e2eTenantB, AlertID: "da-old-1",
		Update:     bot.AlertUpdate{Status: &st, Classification: &class, ChangedBy: &by},
		WriteBack:  &bot.WriteBack{Kind: bot.WriteBackResolve, Status: st, Classification: class, Actor: "analyst1@mssp.example"},
		ThreadText: "Resolved by analyst1 as false positive",
		Audit:      bot.AuditEntry{Actor: by, Action: "resolve", Target: "da-old-1", Outcome: "ok"},
		Now:        now,
	}))

	// That night's purge with the default retention.
	r, err := scheduler.Purge(ctx, db, now.Add(time.Hour), 180*24*time.Hour, 400*24*time.Hour, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.FindAlert(ctx, e2eTenantB, "da-old-1"); err != nil || r.Alerts != 0 || r.Outbox != 0 {
		t.Errorf("purge removed an alert resolved an hour ago: %+v (alert lookup: %v)", r, err)
	}

	// Defender applies the write-back and reports the alert again.
	alert.Status, alert.Classification, alert.LastUpdatedAt = bot.StatusResolved, bot.ClassFalsePositive, now.Add(2*time.Hour)
	if res := ingest(alert, 2); res.Deliveries != 0 {
		t.Errorf("the alert's card is posted a second time after the purge: %+v", res)
	}
}
