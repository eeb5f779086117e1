package bot_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

type heldHookStore struct {
	bot.Store
	mu        sync.Mutex
	afterHeld func()
}

func (s *heldHookStore) HeldPosts(ctx context.Context, passID int64, chs ...bot.ChannelRef) (map[bot.ChannelRef][]bot.HeldPost, error) {
	out, err := s.Store.HeldPosts(ctx, passID, chs...)
	s.mu.Lock()
	f := s.afterHeld
	s.afterHeld = nil
	s.mu.Unlock()
	if f != nil {
		f()
	}
	return out, err
}

// Offboarding tenant B lands between finishPass's HeldPosts and its
// CreateDigest (the write connection is free then). CreateDigest fails with
// ECONFLICT, finishPass returns before ReleaseHeld, and every other held
// post of the pass (tenant A's cards here) stays held until a restart.
func TestRegressionDigestConflictLeavesPassHeld(t *testing.T) {
	h := newHarness(t, func(c *bot.Config) { c.StormThreshold = 3 })
	// B is not from config, so it can be offboarded: onboard it via tables directly.
	for i := range 5 {
		h.src.put(h.alert(tenantB, fmt.Sprintf("b%d", i), bot.SeverityHigh)) // SOC storm
	}
	h.src.put(h.alert(tenantA, "a-med", bot.SeverityMedium)) // customer A, normal card
	st := &heldHookStore{Store: h.db}
	svc := bot.New(h.cfg, bot.Deps{Store: st, Source: h.src, Target: h.target, Access: h.access,
		Notifiers: map[string]bot.Notifier{"test": h.chat}})
	h.svc = svc
	st.afterHeld = func() {
		// what RevokeTenant / Unlink do to tenant B's unsent posts
		if err := h.db.RevokeTenant(context.Background(), tenantB); err != nil {
			t.Fatal(err)
		}
	}
	err := svc.Poll(context.Background())
	t.Logf("poll: %v", err)
	for range 5 {
		h.drain()
		h.clk.Add(time.Minute)
	}
	if h.chat.cardFor(chA, "a-med") == nil {
		t.Errorf("tenant A's card stays held after the pass (until the next restart)")
	}
}
