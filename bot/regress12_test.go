package bot_test

import (
	"context"
	"testing"

	"github.com/msspbot/msspbot/bot"
)

// A crash between post and record, then a lookup that can never succeed
// (history not readable: missing_scope): the post stayed in flight for
// good, its card never sent.
func TestRegressionOrphanWithPermanentLookupError(t *testing.T) {
	h := newHarness(t)
	h.src.put(h.alert(tenantA, "pl1", bot.SeverityMedium))
	h.poll()
	h.chat.crashBefore = true // the process dies before the post reaches the channel
	done := make(chan struct{})
	go func() { defer close(done); h.svc.Dispatch(context.Background()) }()
	<-done
	h.db.Close()
	h.open()
	fn := &findErrNotifier{fakeNotifier: h.chat, findErrs: 1000, permanent: true}
	h.svc = bot.New(h.cfg, bot.Deps{Store: h.db, Source: h.src, Target: h.target, Access: h.access,
		Notifiers: map[string]bot.Notifier{"test": fn}})
	if err := h.svc.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.drain()
	if h.chat.cardFor(chA, "pl1") == nil {
		t.Fatal("card never posted: the orphan waits for a lookup that cannot succeed")
	}
	if it, _ := h.db.InFlight(context.Background()); len(it) != 0 {
		t.Errorf("%d entries still in flight", len(it))
	}
}
