package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

const (
	dispatchBatch    = 200
	dispatchParallel = 8
	maxSendBackoff   = 5 * time.Minute
	// orphanSweep is how often in-flight entries nobody sends are settled.
	orphanSweep = time.Minute
)

// dispatchState is the dispatcher's in-memory view: channels on hold after
// a retry-after, and channels known to fail (so success clears them).
type dispatchState struct {
	mu      sync.Mutex
	holds   map[ChannelRef]time.Time
	failing map[ChannelRef]bool
	sending map[int64]bool // entries this process marked in flight and is sending
	// lastSweep is when in-flight orphans were last settled (Dispatch).
	lastSweep time.Time
}

func (d *dispatchState) held(ch ChannelRef, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return now.Before(d.holds[ch])
}

func (d *dispatchState) hold(ch ChannelRef, until time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.holds == nil {
		d.holds = map[ChannelRef]time.Time{}
	}
	if until.After(d.holds[ch]) {
		d.holds[ch] = until
	}
}

func (d *dispatchState) setFailing(ch ChannelRef, v bool) (was bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failing == nil {
		d.failing = map[ChannelRef]bool{}
	}
	was = d.failing[ch]
	if v {
		d.failing[ch] = true
	} else {
		delete(d.failing, ch)
	}
	return was
}

// Recover handles outbox entries left in flight by a crash: a post is
// looked up on the platform by its delivery key and only sent again when
// not found. Posts held by an interrupted pass are released as the pass
// would have: a storm still becomes a digest. Call once at start, before
// dispatching.
func (s *Service) Recover(ctx context.Context) error {
	tenants, err := s.store.FindTenants(ctx)
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	if err := s.finishPass(ctx, 0, tenantNames(tenants), nil); err != nil {
		return fmt.Errorf("recover: release held: %w", err)
	}
	fails, err := s.store.ChannelFailures(ctx)
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	for _, f := range fails {
		s.ds.setFailing(f.Channel, true)
	}
	s.ds.lastSweep = s.cfg.Now()
	return s.settleOrphans(ctx)
}

// settleOrphans handles entries in flight that no send of this process
// owns: left by a crash, by a failed lookup, or by a send whose result
// could not be recorded. A post is looked up on the platform by its
// delivery key and only queued again when not found; a failed lookup
// leaves it for the next sweep.
func (s *Service) settleOrphans(ctx context.Context) error {
	items, err := s.store.InFlight(ctx)
	if err != nil {
		return fmt.Errorf("orphans: in flight: %w", err)
	}
	now := s.cfg.Now()
	for _, it := range items {
		if s.sending(it.Entry.ID) {
			continue
		}
		ch := it.Delivery.Channel
		if it.Entry.Kind == OutboxPost {
			if n := s.deps.Notifiers[ch.Platform()]; n != nil {
				id, found, err := n.Find(ctx, ch, it.Delivery.Key())
				var se *SendError
				switch {
				case err != nil && errors.As(err, &se) && se.Permanent:
					// The lookup can never succeed (history not readable, channel
					// gone): send again rather than keep the card forever. A
					// duplicate is better than a lost alert, and a gone channel
					// fails the send and is reported.
					s.log.WarnContext(ctx, "orphaned post: lookup cannot succeed; sending again", "channel", ch, "key", it.Delivery.Key(), "err", err)
					found = false
				case err != nil:
					s.log.WarnContext(ctx, "orphaned post: lookup failed; retried at the next sweep", "channel", ch, "key", it.Delivery.Key(), "err", err)
					continue
				}
				if found {
					if err := s.store.MarkSent(ctx, it.Entry.ID, id, 0); err != nil {
						return fmt.Errorf("orphans: %w", err)
					}
					s.log.InfoContext(ctx, "orphaned post was already posted", "channel", ch, "key", it.Delivery.Key())
					continue
				}
			}
		}
		if err := s.store.MarkRetry(ctx, it.Entry.ID, now, "orphaned in flight", false); err != nil {
			return fmt.Errorf("orphans: %w", err)
		}
	}
	return nil
}

// sending reports whether a send of this process owns the entry.
func (s *Service) sending(id int64) bool {
	s.ds.mu.Lock()
	defer s.ds.mu.Unlock()
	return s.ds.sending[id]
}

func (s *Service) setSending(id int64, on bool) {
	s.ds.mu.Lock()
	defer s.ds.mu.Unlock()
	if s.ds.sending == nil {
		s.ds.sending = map[int64]bool{}
	}
	if on {
		s.ds.sending[id] = true
	} else {
		delete(s.ds.sending, id)
	}
}

// Dispatch sends one round of ready outbox entries and returns how many
// were sent. Entries of one channel go in order; channels run in parallel;
// a channel on hold (retry-after) is skipped without delaying the others.
func (s *Service) Dispatch(ctx context.Context) (int, error) {
	s.dispatchMu.Lock()
	defer s.dispatchMu.Unlock()
	now := s.cfg.Now()
	if now.Sub(s.ds.lastSweep) >= orphanSweep {
		s.ds.lastSweep = now
		if err := s.settleOrphans(ctx); err != nil {
			s.logErr(ctx, "orphan sweep failed", "err", err)
		}
	}
	items, err := s.store.NextOutbox(ctx, now, dispatchBatch)
	if err != nil {
		return 0, fmt.Errorf("dispatch: %w", err)
	}
	byChannel := map[ChannelRef][]OutboxItem{}
	var order []ChannelRef
	for _, it := range items {
		ch := it.Delivery.Channel
		if s.ds.held(ch, now) {
			continue
		}
		if _, ok := byChannel[ch]; !ok {
			order = append(order, ch)
		}
		byChannel[ch] = append(byChannel[ch], it)
	}
	var (
		wg   sync.WaitGroup
		sem  = make(chan struct{}, dispatchParallel)
		mu   sync.Mutex
		sent int
	)
	for _, ch := range order {
		wg.Add(1)
		sem <- struct{}{}
		go func(list []OutboxItem) {
			defer func() { <-sem; wg.Done() }()
			for _, it := range list {
				ok, stop := s.send(ctx, it)
				if ok {
					mu.Lock()
					sent++
					mu.Unlock()
				}
				if stop || ctx.Err() != nil {
					return
				}
			}
		}(byChannel[ch])
	}
	wg.Wait()
	return sent, nil
}

// send delivers one entry; stop says the channel must not be used again
// this round (rate limited or failing).
func (s *Service) send(ctx context.Context, it OutboxItem) (ok, stop bool) {
	ch := it.Delivery.Channel
	platform := ch.Platform()
	n := s.deps.Notifiers[platform]
	if n == nil {
		_ = s.store.MarkFailed(ctx, it.Entry.ID, "no notifier for platform "+platform)
		s.obs.OutboxResult(platform, "failed")
		return false, true
	}
	// Owned from before MarkInFlight until the result is recorded, so the
	// orphan sweep never takes an entry that is being sent.
	s.setSending(it.Entry.ID, true)
	defer s.setSending(it.Entry.ID, false)
	if err := s.store.MarkInFlight(ctx, it.Entry.ID); err != nil {
		s.logErr(ctx, "mark in flight", "err", err)
		return false, true
	}
	if it.Entry.Kind == OutboxEdit && it.Delivery.DigestID != 0 {
		// A digest member has no card of its own: its message is the digest.
		if err := s.store.MarkSent(context.WithoutCancel(ctx), it.Entry.ID, "", it.LastEditID); err != nil {
			s.logErr(ctx, "mark sent", "entry", it.Entry.ID, "err", err)
		}
		return false, false
	}
	var (
		msgID string
		err   error
	)
	switch it.Entry.Kind {
	case OutboxPost:
		var m Message
		if m, err = s.render(ctx, it.Delivery); err == nil {
			msgID, err = n.Post(ctx, ch, it.Delivery.Key(), m)
		}
	case OutboxThread:
		_, err = n.Thread(ctx, ch, it.RootMessageID, Message{Kind: MessageText, Text: it.Entry.Text})
	case OutboxEdit:
		var m Message
		if m, err = s.render(ctx, it.Delivery); err == nil {
			err = n.Edit(ctx, ch, it.Delivery.MessageID, m)
		}
	default:
		err = PermanentError("unknown outbox kind "+string(it.Entry.Kind), nil)
	}
	// Record with a context that survives shutdown: the message is out.
	rctx := context.WithoutCancel(ctx)
	if err == nil {
		if err := s.store.MarkSent(rctx, it.Entry.ID, msgID, it.LastEditID); err != nil {
			s.logErr(ctx, "mark sent", "entry", it.Entry.ID, "err", err)
		}
		if s.ds.setFailing(ch, false) {
			_ = s.store.ClearChannelFailure(rctx, ch)
		}
		s.obs.OutboxResult(platform, "sent")
		return true, false
	}
	var se *SendError
	permanent := errors.As(err, &se) && se.Permanent
	rateLimited := se != nil && se.RetryAfter > 0
	// Transient failures never give up (nothing is lost; backoff caps at
	// maxSendBackoff), and a rate limit does not even count as an attempt.
	if permanent {
		reason := "send failed"
		if se != nil && se.Reason != "" {
			reason = se.Reason
		}
		s.log.WarnContext(ctx, "message failed permanently", "channel", ch, "kind", it.Entry.Kind, "reason", reason, "err", err)
		if err := s.store.MarkFailed(rctx, it.Entry.ID, reason); err != nil {
			s.logErr(ctx, "mark failed", "err", err)
		}
		s.obs.OutboxResult(platform, "failed")
		if se != nil && se.MessageOnly {
			return false, false
		}
		s.channelFailed(rctx, ch, reason)
		return false, true
	}
	delay := backoff(it.Entry.Attempts)
	if se != nil && se.RetryAfter > 0 {
		delay = se.RetryAfter
		s.ds.hold(ch, s.cfg.Now().Add(delay))
	}
	if err := s.store.MarkRetry(rctx, it.Entry.ID, s.cfg.Now().Add(delay), firstLine(err.Error()), !rateLimited); err != nil {
		s.logErr(ctx, "mark retry", "err", err)
	}
	s.log.InfoContext(ctx, "message will be retried", "channel", ch, "in", delay, "err", err)
	s.obs.OutboxResult(platform, "retry")
	return false, true
}

// channelFailed tells every SOC channel once that a channel stopped working.
func (s *Service) channelFailed(ctx context.Context, ch ChannelRef, reason string) {
	s.ds.setFailing(ch, true)
	first, err := s.store.RecordChannelFailure(ctx, ch, reason, s.cfg.Now())
	if err != nil || !first {
		return
	}
	for _, soc := range s.cfg.SOCChannels {
		if soc == ch {
			continue
		}
		s.notice(ctx, soc, "", fmt.Sprintf("⚠️ msspbot cannot post to %s: %s. Check that the channel exists and the bot is still in it; /mssp status shows failing channels.", ch, reason))
	}
}

func backoff(attempts int) time.Duration {
	if attempts > 8 {
		attempts = 8
	}
	d := time.Second << attempts
	if d > maxSendBackoff {
		d = maxSendBackoff
	}
	// Jitter spreads retries of many entries that failed together.
	return d/2 + rand.N(d/2+1)
}

// render builds the message a delivery shows now: alert cards from the
// alert's current state (so edits coalesce), others from their payload.
func (s *Service) render(ctx context.Context, d Delivery) (Message, error) {
	if d.Kind != DeliveryAlert {
		var m Message
		if err := json.Unmarshal(d.Payload, &m); err != nil {
			return Message{}, PermanentError("bad stored payload", err)
		}
		if d.Kind == DeliveryPrompt {
			return s.renderPrompt(ctx, d, m)
		}
		return m, nil
	}
	a, err := s.store.FindAlert(ctx, d.TenantID, d.AlertID)
	if err != nil {
		return Message{}, fmt.Errorf("render card: %w", err)
	}
	name := d.TenantID
	if t, err := s.store.FindTenant(ctx, d.TenantID); err == nil {
		name = t.Name
	}
	return CardMessage(a, name, d.Key()), nil
}

// CardMessage is the platform-neutral alert card.
func CardMessage(a Alert, tenantName, key string) Message {
	m := Message{
		Kind:  MessageCard,
		Title: a.Title,
		Text:  fmt.Sprintf("%s %s: %s · %s · %s", SeverityEmoji(a.Severity), a.Severity, a.Title, tenantName, a.ID),
		Card:  &Card{Alert: a, TenantName: tenantName, Key: key, UpdatedBy: a.ChangedBy},
	}
	if a.Status != StatusResolved {
		m.Buttons = CardButtons(a.ID)
	}
	return m
}

// kick wakes the dispatcher and the write-back worker.
func (s *Service) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
	select {
	case s.wakeWB <- struct{}{}:
	default:
	}
}

// RunDispatcher dispatches until ctx is done, every interval and whenever
// new entries are queued.
func (s *Service) RunDispatcher(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for {
			n, err := s.Dispatch(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.logErr(ctx, "dispatch round failed", "err", err)
				break
			}
			if n == 0 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.wake:
		}
	}
}
