package slack

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/msspbot/msspbot/bot"
)

func TestCheckSOCChannels(t *testing.T) {
	n, f := newTestNotifier(t)
	f.setShared("C0SHARED", true)
	unsafe, err := n.CheckSOCChannels(context.Background(), []string{"C0SOC", "C0SHARED"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(unsafe, []string{"C0SHARED"}) {
		t.Errorf("unsafe = %v", unsafe)
	}
}

func TestGuard(t *testing.T) {
	f := newFakeSlack(t)
	cfg := f.config()
	cfg.SOCChannels = []string{"slack:C0SOC", "slack:C0SHARED", "discord:1180000000000000000", "C0BARE"}
	n, err := NewNotifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g := NewGuard(cfg, n)
	var _ bot.Notifier = g
	ctx := context.Background()
	msg := bot.Message{Kind: bot.MessageText, Text: "x"}

	// before the first check a SOC channel is held back, retryably
	_, err = g.Post(ctx, "slack:C0SOC", "k", msg)
	var se *bot.SendError
	if !errors.As(err, &se) || se.Permanent || se.RetryAfter <= 0 {
		t.Fatalf("unchecked SOC channel: err = %v", err)
	}
	if g.Ready() == nil {
		t.Error("ready before any check")
	}
	// customer channels are never held back
	if _, err := g.Post(ctx, testChannel, "k", msg); err != nil {
		t.Fatalf("customer channel: %v", err)
	}

	f.setShared("C0SHARED", true)
	unsafe, err := g.Check(ctx)
	if err != nil || !slices.Equal(unsafe, []string{"C0SHARED"}) {
		t.Fatalf("Check = %v, %v", unsafe, err)
	}
	if f.callCount("conversations.info") != 3 {
		t.Errorf("conversations.info calls = %d, want 3 (discord channel ignored)", f.callCount("conversations.info"))
	}
	if _, err := g.Post(ctx, "slack:C0SOC", "k", msg); err != nil {
		t.Errorf("safe SOC channel: %v", err)
	}
	before := f.callCount("chat.postMessage")
	for _, send := range []func() error{
		func() error { _, err := g.Post(ctx, "slack:C0SHARED", "k", msg); return err },
		func() error { _, err := g.Thread(ctx, "slack:C0SHARED", "1.1", msg); return err },
		func() error { return g.Edit(ctx, "slack:C0SHARED", "1.1", msg) },
	} {
		err := send()
		if !errors.As(err, &se) || !se.Permanent || se.Reason != ErrSOCChannelShared {
			t.Errorf("shared SOC channel: err = %v", err)
		}
	}
	if f.callCount("chat.postMessage") != before || f.callCount("chat.update") != 0 {
		t.Error("a refused message reached Slack")
	}
	if _, _, err := g.Find(ctx, "slack:C0SHARED", "k"); err != nil {
		t.Errorf("Find is read-only and allowed: %v", err)
	}
	if err := g.Ready(); err == nil {
		t.Error("ready with a shared SOC channel")
	}

	// unshared again: posts resume, ready
	f.setShared("C0SHARED", false)
	if _, err := g.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if err := g.Ready(); err != nil {
		t.Errorf("Ready = %v", err)
	}
	if _, err := g.Post(ctx, "slack:C0SHARED", "k", msg); err != nil {
		t.Errorf("after unsharing: %v", err)
	}

	// a failed check keeps what was known and reports not ready
	f.failNext("conversations.info", slackError("missing_scope"))
	if _, err := g.Check(ctx); err == nil {
		t.Error("Check hid a failure")
	}
	if _, err := g.Post(ctx, "slack:C0SOC", "k", msg); err != nil {
		t.Errorf("known-safe channel after a failed check: %v", err)
	}
}

func TestGuardUnknownChannelPassesThrough(t *testing.T) {
	f := newFakeSlack(t)
	f.setUnknown("C0GONE")
	cfg := f.config()
	cfg.SOCChannels = []string{"slack:C0GONE"}
	n, _ := NewNotifier(cfg)
	g := NewGuard(cfg, n)
	if _, err := g.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	// the real post reports channel_not_found, which the dispatcher shows
	f.failNext("chat.postMessage", slackError("channel_not_found"))
	_, err := g.Post(context.Background(), "slack:C0GONE", "k", bot.Message{Kind: bot.MessageText, Text: "x"})
	var se *bot.SendError
	if !errors.As(err, &se) || se.Reason != "channel_not_found" {
		t.Errorf("err = %v", err)
	}
}

func TestRunSafetyChecksStopsWithContext(t *testing.T) {
	f := newFakeSlack(t)
	cfg := f.config()
	cfg.SOCChannels = []string{"slack:C0SOC"}
	n, _ := NewNotifier(cfg)
	g := NewGuard(cfg, n)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- g.RunSafetyChecks(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for g.Ready() != nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := g.Ready(); err != nil {
		t.Fatalf("not ready after the start-up check: %v", err)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RunSafetyChecks did not stop")
	}
}

// flakyChecker fails its first conversations.info round (a 5xx, a network
// blip or a 429 at start-up) and then reports the channel as safe.
type flakyChecker struct {
	mu    sync.Mutex
	calls int
}

func (c *flakyChecker) CheckSOCChannels(ctx context.Context, ids []string) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.calls == 1 {
		return nil, errors.New("slack: conversations.info: http 503")
	}
	return nil, nil
}

// A start-up check that fails transiently leaves the SOC channel
// unverified, its posts held: it is retried within minutes, not at the
// next hourly check; once it succeeds, checks go back to hourly.
func TestGuardRetriesFailedCheckSoon(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		chk := &flakyChecker{}
		next := &countingNotifier{}
		g := newGuard(next, chk, []string{"C0SOC"}, slog.New(slog.DiscardHandler))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan struct{})
		go func() { _ = g.RunSafetyChecks(ctx); close(done) }()

		synctest.Wait() // the start-up check ran and failed
		if g.Ready() == nil {
			t.Fatal("ready after a failed check")
		}
		msg := bot.Message{Kind: bot.MessageText, Text: "x"}
		if _, err := g.Post(ctx, "slack:C0SOC", "k", msg); err == nil {
			t.Fatal("post to an unverified SOC channel went through")
		}

		// Ten minutes later the dispatcher has retried ten times; Slack
		// has long recovered.
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		if _, err := g.Post(ctx, "slack:C0SOC", "k", msg); err != nil {
			t.Errorf("10 minutes after a transient start-up failure the SOC channel is still held: %v (checks run: %d)", err, func() int { chk.mu.Lock(); defer chk.mu.Unlock(); return chk.calls }())
		}
		// Verified: back to one check an hour.
		calls := func() int { chk.mu.Lock(); defer chk.mu.Unlock(); return chk.calls }
		before := calls()
		time.Sleep(3*time.Hour - time.Second)
		synctest.Wait()
		if got := calls() - before; got != 3 {
			t.Errorf("checks in 3 hours after success = %d, want 3", got)
		}
		cancel()
		<-done
	})
}

// sharedChecker reports the channels in shared as externally shared.
type sharedChecker struct{ shared map[string]bool }

func (c sharedChecker) CheckSOCChannels(ctx context.Context, ids []string) ([]string, error) {
	var out []string
	for _, id := range ids {
		if c.shared[id] {
			out = append(out, id)
		}
	}
	return out, nil
}

// A guest from another organisation in a shared SOC channel must not run
// commands there (`alerts` would list every tenant); nor may anyone before
// the channel is verified. Customer channels are not affected.
func TestGuardRefusesCommandsInSharedSOCChannel(t *testing.T) {
	g := newGuard(&countingNotifier{}, sharedChecker{shared: map[string]bool{"C0SHARED": true}},
		[]string{"C0SOC", "C0SHARED"}, slog.New(slog.DiscardHandler))
	exec := &fakeExec{}
	h, _ := newTestHandlers(t, exec, WithGuard(g))
	ask := func(channel, text string) string {
		body := url.Values{"team_id": {"T1"}, "channel_id": {channel}, "user_id": {"U0GUEST"}, "user_name": {"guest"},
			"command": {"/mssp"}, "text": {text}, "response_url": {"https://hooks.slack.com/commands/T1/1/x"}, "trigger_id": {"1.2.3"}}.Encode()
		w := serve(h.Commands(), signedRequest("/slack/commands", body, time.Now()))
		h.Wait()
		return w.Body.String()
	}
	click := func(channel string) {
		payload := blockActions(map[string]any{"type": "message", "message_ts": "1.1", "channel_id": channel},
			button(bot.ActionAck, "a1", "b"))
		payload["channel"] = map[string]any{"id": channel}
		serve(h.Interactions(), signedRequest("/slack/interactions", interactionBody(t, payload), time.Now()))
		h.Wait()
	}

	// Not checked yet: every SOC channel refuses.
	if got := ask("C0SOC", "alerts"); !strings.Contains(got, "not yet verified") {
		t.Errorf("unverified SOC channel answered %s", got)
	}
	if _, err := g.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := ask("C0SHARED", "alerts"); !strings.Contains(got, "shared with another organisation") {
		t.Errorf("shared SOC channel answered %s", got)
	}
	click("C0SHARED")
	if n := len(exec.commands()); n != 0 {
		t.Fatalf("executor ran %d commands from refused channels", n)
	}
	ask("C0SOC", "alerts limit=5") // another body: the first one is in the replay cache
	ask("C0CONTOSO", "alerts")
	click("C0SOC")
	if n := len(exec.commands()); n != 3 {
		t.Errorf("executor ran %d commands (%+v), want the internal SOC channel's two and the customer channel's one", n, exec.commands())
	}
}
