package slack

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/msspbot/msspbot/bot"
)

// Slack allows about one message per second per channel, with short
// bursts. Pacing ahead of it keeps a storm in one channel from drawing
// 429s, and other channels from waiting behind it.
const (
	channelRate  = rate.Limit(1)
	channelBurst = 5
)

// Paced wraps a Notifier with per-channel pacing of new messages (cards
// and thread lines; edits have their own, looser limit). It never sleeps:
// a message whose slot is not free yet gets a retry-after, so the
// dispatcher holds only that channel and serves the others meanwhile.
type Paced struct {
	next bot.Notifier
	now  func() time.Time

	mu       sync.Mutex
	channels map[bot.ChannelRef]*rate.Limiter
}

// NewPaced returns next with per-channel pacing.
func NewPaced(next bot.Notifier) *Paced {
	return &Paced{next: next, now: time.Now, channels: map[bot.ChannelRef]*rate.Limiter{}}
}

func (p *Paced) take(ch bot.ChannelRef) error {
	p.mu.Lock()
	l := p.channels[ch]
	if l == nil {
		l = rate.NewLimiter(channelRate, channelBurst)
		p.channels[ch] = l
	}
	p.mu.Unlock()
	now := p.now()
	r := l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return bot.RetryAfterError(d, fmt.Errorf("slack: pacing %s", ch))
	}
	return nil
}

// Post implements bot.Notifier.
func (p *Paced) Post(ctx context.Context, ch bot.ChannelRef, key string, m bot.Message) (string, error) {
	if err := p.take(ch); err != nil {
		return "", err
	}
	return p.next.Post(ctx, ch, key, m)
}

// Thread implements bot.Notifier.
func (p *Paced) Thread(ctx context.Context, ch bot.ChannelRef, rootID string, m bot.Message) (string, error) {
	if err := p.take(ch); err != nil {
		return "", err
	}
	return p.next.Thread(ctx, ch, rootID, m)
}

// Edit implements bot.Notifier.
func (p *Paced) Edit(ctx context.Context, ch bot.ChannelRef, messageID string, m bot.Message) error {
	return p.next.Edit(ctx, ch, messageID, m)
}

// Find implements bot.Notifier.
func (p *Paced) Find(ctx context.Context, ch bot.ChannelRef, key string) (string, bool, error) {
	return p.next.Find(ctx, ch, key)
}
