package slack

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

type countingNotifier struct{ posts int }

func (c *countingNotifier) Post(context.Context, bot.ChannelRef, string, bot.Message) (string, error) {
	c.posts++
	return "ts", nil
}
func (c *countingNotifier) Thread(context.Context, bot.ChannelRef, string, bot.Message) (string, error) {
	c.posts++
	return "ts", nil
}
func (c *countingNotifier) Edit(context.Context, bot.ChannelRef, string, bot.Message) error {
	return nil
}
func (c *countingNotifier) Find(context.Context, bot.ChannelRef, string) (string, bool, error) {
	return "", false, nil
}

func TestPacedHoldsOnlyTheBusyChannel(t *testing.T) {
	inner := &countingNotifier{}
	p := NewPaced(inner)
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	p.now = func() time.Time { return now }
	ctx := context.Background()
	for i := 0; i < channelBurst; i++ {
		if _, err := p.Thread(ctx, "slack:C1", "root", bot.Message{}); err != nil {
			t.Fatalf("burst message %d: %v", i, err)
		}
	}
	_, err := p.Post(ctx, "slack:C1", "k", bot.Message{})
	var se *bot.SendError
	if !errors.As(err, &se) || se.Permanent || se.RetryAfter <= 0 || se.RetryAfter > time.Second {
		t.Fatalf("over the burst: %v", err)
	}
	if inner.posts != channelBurst {
		t.Fatalf("a paced message was sent: %d", inner.posts)
	}
	// Another channel is not held; edits are not paced.
	if _, err := p.Post(ctx, "slack:C2", "k", bot.Message{}); err != nil {
		t.Fatalf("C2 held: %v", err)
	}
	if err := p.Edit(ctx, "slack:C1", "ts", bot.Message{}); err != nil {
		t.Fatalf("edit paced: %v", err)
	}
	// After the retry-after, C1 has a slot again.
	now = now.Add(se.RetryAfter)
	if _, err := p.Post(ctx, "slack:C1", "k", bot.Message{}); err != nil {
		t.Fatalf("after the wait: %v", err)
	}
}
