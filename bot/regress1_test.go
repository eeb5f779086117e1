package bot_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

// Write-back sent, Defender not yet reflecting it (or the fetch started
// before the PATCH): the next ingest reverts the local values and posts a
// misleading "Updated in Defender" line; the following pass flips them back.
func TestRegressionSentWriteBackRevertedByStaleFetch(t *testing.T) {
	h := newHarness(t)
	h.src.put(h.alert(tenantA, "w1", bot.SeverityHigh))
	h.poll()
	h.drain()
	h.run(chA, analyst, "ack w1")
	h.drain()
	if _, err := h.svc.ProcessWriteBacks(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(h.target.list()) != 1 {
		t.Fatal("write-back not sent")
	}
	// Next pass: Defender's list still returns the old version (within the overlap window).
	h.clk.Add(time.Minute)
	h.poll()
	h.drain()
	card := h.chat.cardFor(chA, "w1")
	lines := h.chat.lines(card.ID)
	t.Logf("thread after stale fetch: %q", lines)
	t.Logf("card status now: %s", h.chat.messages[card.ID].Msg.Card.Alert.Status)
	t.Logf("show: %s", h.run(chA, analyst, "show w1"))
	// Defender catches up.
	h.clk.Add(time.Minute)
	a := h.alert(tenantA, "w1", bot.SeverityHigh)
	a.Status, a.AssignedTo, a.LastUpdatedAt = bot.StatusInProgress, "analyst1@mssp.example", h.clk.Now()
	h.src.put(a)
	h.poll()
	h.drain()
	lines = h.chat.lines(card.ID)
	t.Logf("thread after Defender catches up: %q", lines)
	for _, l := range lines {
		if strings.Contains(l, "InProgress → New") {
			t.Errorf("local ack reverted by a stale fetch after the write-back was sent: %q", l)
		}
	}
}

// hookSource runs a hook after a tenant's fetch returns, to pin an
// interleaving; tenants are fetched concurrently, hence the mutex.
type hookSource struct {
	inner *fakeSource
	mu    sync.Mutex
	after func(tenant string)
}

func (s *hookSource) setAfter(f func(tenant string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.after = f
}

func (s *hookSource) Alerts(ctx context.Context, tenant string, since time.Time) ([]bot.Alert, error) {
	out, err := s.inner.Alerts(ctx, tenant, since)
	s.mu.Lock()
	f := s.after
	s.mu.Unlock()
	if f != nil {
		f(tenant)
	}
	return out, err
}

// Same with a perfectly consistent Defender: the GET returns before the
// write-back worker's PATCH lands, the ingest commits after it was marked sent.
func TestRegressionWriteBackRaceWithFetch(t *testing.T) {
	h := newHarness(t)
	h.src.put(h.alert(tenantA, "w2", bot.SeverityHigh))
	h.poll()
	h.drain()
	h.run(chA, analyst, "ack w2")
	h.drain()
	src := &hookSource{inner: h.src}
	svc := bot.New(h.cfg, bot.Deps{Store: h.db, Source: src, Target: h.target, Access: h.access,
		Notifiers: map[string]bot.Notifier{"test": h.chat}})
	src.setAfter(func(tenant string) {
		if tenant != tenantA {
			return
		}
		src.setAfter(nil)
		// The write-back worker runs concurrently: it sends the PATCH now.
		if _, err := svc.ProcessWriteBacks(context.Background()); err != nil {
			t.Error(err)
		}
		a := h.alert(tenantA, "w2", bot.SeverityHigh)
		a.Status, a.AssignedTo, a.LastUpdatedAt = bot.StatusInProgress, "analyst1@mssp.example", h.clk.Now()
		h.src.put(a) // Defender has applied it
	})
	h.clk.Add(time.Minute)
	if err := svc.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Dispatch(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.clk.Add(time.Minute)
	if err := svc.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		svc.Dispatch(context.Background())
	}
	card := h.chat.cardFor(chA, "w2")
	lines := h.chat.lines(card.ID)
	t.Logf("thread: %q", lines)
	if len(lines) != 1 {
		t.Errorf("want only the ack line, got %d lines", len(lines))
	}
}

func TestRegressionFailedWriteBackKeptLocallyIsReverted(t *testing.T) {
	h := newHarness(t)
	h.src.put(h.alert(tenantA, "w3", bot.SeverityHigh))
	h.poll()
	h.drain()
	h.target.err = bot.PermanentError("bad request", nil)
	h.run(chA, analyst, "ack w3")
	h.svc.ProcessWriteBacks(context.Background())
	h.drain()
	h.clk.Add(time.Minute)
	h.poll() // w3 still in the overlap window, unchanged in Defender
	h.drain()
	t.Logf("thread: %q", h.chat.lines(h.chat.cardFor(chA, "w3").ID))
}

func TestRegressionWriteBackOffAckRevertedByOverlap(t *testing.T) {
	h := newHarness(t, func(c *bot.Config) { c.WriteBack = false })
	h.src.put(h.alert(tenantA, "w4", bot.SeverityHigh))
	h.poll()
	h.drain()
	t.Log(h.run(chA, analyst, "ack w4"))
	h.drain()
	h.clk.Add(time.Minute)
	h.poll() // nothing changed in Defender; w4 is re-read inside the overlap window
	h.drain()
	card := h.chat.cardFor(chA, "w4")
	t.Logf("thread: %q; card status %s", h.chat.lines(card.ID), h.chat.messages[card.ID].Msg.Card.Alert.Status)
	if h.chat.messages[card.ID].Msg.Card.Alert.Status != bot.StatusInProgress {
		t.Error("local-only ack undone by re-reading an unchanged alert")
	}
}
