package bot_test

import (
	"context"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

type findErrNotifier struct {
	*fakeNotifier
	findErrs  int
	permanent bool // the lookup can never succeed (missing_scope)
}

func (f *findErrNotifier) Find(ctx context.Context, ch bot.ChannelRef, key string) (string, bool, error) {
	if f.findErrs > 0 {
		f.findErrs--
		if f.permanent {
			return "", false, bot.PermanentError("missing_scope", errBoom)
		}
		return "", false, &bot.SendError{Reason: "503", Err: errBoom}
	}
	return f.fakeNotifier.Find(ctx, ch, key)
}

// A crash between post and record, then one transient lookup failure at
// start: the post stays in flight until the next restart; its later lines
// and edits never go out.
func TestRegressionRecoverFindErrorStuckUntilRestart(t *testing.T) {
	h := newHarness(t)
	h.src.put(h.alert(tenantA, "rf1", bot.SeverityMedium))
	h.poll()
	h.chat.crashAfter = true
	done := make(chan struct{})
	go func() { defer close(done); h.svc.Dispatch(context.Background()) }()
	<-done
	// restart with a platform whose lookup fails once
	h.db.Close()
	h.open()
	fn := &findErrNotifier{fakeNotifier: h.chat, findErrs: 1}
	h.svc = bot.New(h.cfg, bot.Deps{Store: h.db, Source: h.src, Target: h.target, Access: h.access,
		Notifiers: map[string]bot.Notifier{"test": fn}})
	if err := h.svc.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.run(chA, analyst, "ack rf1")
	for range 20 {
		h.drain()
		h.clk.Add(10 * time.Minute)
	}
	card := h.chat.cardFor(chA, "rf1")
	if card == nil {
		t.Fatal("no card")
	}
	if n := len(h.chat.lines(card.ID)); n == 0 {
		t.Errorf("ack line never sent: the post stays in flight until the next process start")
	}
	it, _ := h.db.InFlight(context.Background())
	t.Logf("in flight after 200 min: %d", len(it))
}
