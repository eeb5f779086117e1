package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/msspbot/msspbot/bot"
)

// ErrSOCChannelShared is the reason a post to an externally shared SOC
// channel is refused: a SOC channel shows every tenant's alerts, so a
// customer invited into it would see the other customers.
const ErrSOCChannelShared = "soc channel is externally shared"

// notVerifiedRetry is how long the dispatcher waits before retrying a SOC
// post whose channel has not been checked yet.
const notVerifiedRetry = time.Minute

// SafetyCheckInterval is how often RunSafetyChecks checks the SOC channels.
const SafetyCheckInterval = time.Hour

// socChecker is the part of Notifier the guard needs.
type socChecker interface {
	CheckSOCChannels(ctx context.Context, channels []string) ([]string, error)
}

// Guard wraps a bot.Notifier and refuses to send to a SOC channel that is
// shared with another organisation (Slack Connect), or that has not been
// checked yet. Other channels pass through.
type Guard struct {
	next    bot.Notifier
	checker socChecker
	soc     []string
	log     *slog.Logger

	mu      sync.RWMutex
	state   map[string]channelState
	lastErr error
	checked bool // one check has run to completion
}

type channelState int

const (
	stateUnknown channelState = iota
	stateSafe
	stateUnsafe
)

// NewGuard guards n's posts to the Slack SOC channels of cfg.
func NewGuard(cfg Config, n *Notifier) *Guard {
	return newGuard(n, n, cfg.socChannelIDs(), cfg.logger())
}

func newGuard(next bot.Notifier, checker socChecker, soc []string, log *slog.Logger) *Guard {
	g := &Guard{next: next, checker: checker, soc: soc, log: log, state: map[string]channelState{}}
	for _, id := range soc {
		g.state[id] = stateUnknown
	}
	return g
}

// Check runs the shared-channel check once and records the result. A
// channel Slack cannot find is let through: posting to it fails with
// channel_not_found, which the dispatcher reports.
func (g *Guard) Check(ctx context.Context) (unsafe []string, err error) {
	if len(g.soc) == 0 {
		g.mu.Lock()
		g.checked, g.lastErr = true, nil
		g.mu.Unlock()
		return nil, nil
	}
	state := make(map[string]channelState, len(g.soc))
	var errs []error
	for _, id := range g.soc {
		u, err := g.checker.CheckSOCChannels(ctx, []string{id})
		switch {
		case err != nil && slackErrorCode(err) == "channel_not_found":
			state[id] = stateSafe
		case err != nil:
			errs = append(errs, err)
			g.mu.RLock()
			state[id] = g.state[id] // keep what we knew
			g.mu.RUnlock()
		case len(u) > 0:
			state[id] = stateUnsafe
			unsafe = append(unsafe, id)
		default:
			state[id] = stateSafe
		}
	}
	err = errors.Join(errs...)

	g.mu.Lock()
	for id, s := range state {
		was := g.state[id]
		g.state[id] = s
		if s == stateUnsafe && was != stateUnsafe {
			g.log.Error("slack: SOC channel is shared with another organisation; posts to it are refused",
				"channel", id)
		}
		if s == stateSafe && was == stateUnsafe {
			g.log.Info("slack: SOC channel is no longer externally shared", "channel", id)
		}
	}
	g.checked, g.lastErr = true, err
	g.mu.Unlock()
	if err != nil {
		g.log.Warn("slack: shared-channel check failed", "err", err)
	}
	return unsafe, err
}

// checkRetryMin and checkRetryMax bound the backoff after a failed check:
// until a SOC channel is verified its posts are held, so a blip at start
// must not cost an hour of SOC alerts.
const (
	checkRetryMin = 30 * time.Second
	checkRetryMax = 10 * time.Minute
)

// RunSafetyChecks checks at once and then hourly until ctx is done; a
// check that failed is retried sooner, with backoff.
func (g *Guard) RunSafetyChecks(ctx context.Context) error {
	retry := checkRetryMin
	for {
		wait := SafetyCheckInterval
		if _, err := g.Check(ctx); err != nil || g.unverified() {
			wait, retry = retry, min(2*retry, checkRetryMax)
		} else {
			retry = checkRetryMin
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// unverified reports whether a SOC channel's state is still unknown.
func (g *Guard) unverified() bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, id := range g.soc {
		if g.state[id] == stateUnknown {
			return true
		}
	}
	return false
}

// Ready reports whether every SOC channel has been checked and none is
// externally shared; it is meant for /readyz.
func (g *Guard) Ready() error {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if !g.checked {
		return errors.New("slack: SOC channels not checked yet")
	}
	var unsafe, unknown []string
	for _, id := range g.soc {
		switch g.state[id] {
		case stateUnsafe:
			unsafe = append(unsafe, id)
		case stateUnknown:
			unknown = append(unknown, id)
		}
	}
	if len(unsafe) > 0 {
		return fmt.Errorf("slack: SOC channels externally shared: %s", strings.Join(unsafe, ", "))
	}
	if len(unknown) > 0 {
		return fmt.Errorf("slack: SOC channels not verified (%s): %w", strings.Join(unknown, ", "), g.lastErr)
	}
	return nil
}

// socState returns ch's state; channels other than the guarded SOC
// channels are safe.
func (g *Guard) socState(ch bot.ChannelRef) channelState {
	if ch.Platform() != Platform || !slices.Contains(g.soc, ch.ID()) {
		return stateSafe
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.state[ch.ID()]
}

func (g *Guard) allow(ch bot.ChannelRef) error {
	switch g.socState(ch) {
	case stateUnsafe:
		return bot.PermanentError(ErrSOCChannelShared, nil)
	case stateUnknown:
		return &bot.SendError{RetryAfter: notVerifiedRetry, Reason: "soc channel not verified yet"}
	}
	return nil
}

// commandRefusal is the answer to a command or click in ch when ch is a
// SOC channel that is externally shared or not verified yet; "" lets it
// run. A guest from another organisation must not list every tenant.
func (g *Guard) commandRefusal(ch bot.ChannelRef) string {
	switch g.socState(ch) {
	case stateUnsafe:
		return "⛔ This SOC channel is shared with another organisation (Slack Connect), so msspbot does not answer here: " +
			"it would show every customer's alerts. Stop sharing it, or use an internal SOC channel."
	case stateUnknown:
		return "⏳ msspbot has not yet verified that this SOC channel is internal to your workspace. Try again in a minute."
	}
	return ""
}

// Post implements bot.Notifier.
func (g *Guard) Post(ctx context.Context, ch bot.ChannelRef, key string, m bot.Message) (string, error) {
	if err := g.allow(ch); err != nil {
		return "", err
	}
	return g.next.Post(ctx, ch, key, m)
}

// Thread implements bot.Notifier.
func (g *Guard) Thread(ctx context.Context, ch bot.ChannelRef, rootID string, m bot.Message) (string, error) {
	if err := g.allow(ch); err != nil {
		return "", err
	}
	return g.next.Thread(ctx, ch, rootID, m)
}

// Edit implements bot.Notifier.
func (g *Guard) Edit(ctx context.Context, ch bot.ChannelRef, messageID string, m bot.Message) error {
	if err := g.allow(ch); err != nil {
		return err
	}
	return g.next.Edit(ctx, ch, messageID, m)
}

// Find implements bot.Notifier; reading history reveals nothing, so it is
// never refused.
func (g *Guard) Find(ctx context.Context, ch bot.ChannelRef, key string) (string, bool, error) {
	return g.next.Find(ctx, ch, key)
}

func slackErrorCode(err error) string {
	if se, ok := errors.AsType[slackapi.SlackErrorResponse](err); ok {
		return se.Err
	}
	return ""
}
