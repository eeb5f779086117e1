package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"
)

const (
	// PropagationWindow: right after a grant Entra may still be replicating
	// the app's roles; 401/403 then mean "not yet", not "lost".
	PropagationWindow = 30 * time.Minute
	// authFailuresToFail consecutive 401/403 turn a tenant failing.
	authFailuresToFail = 3
	maxFailingBackoff  = 30 * time.Minute
)

// Poll runs one fetch pass over active and failing tenants. Callers must
// not run two passes at once (the scheduler guarantees it).
func (s *Service) Poll(ctx context.Context) error {
	start := s.cfg.Now()
	passID := start.UnixNano()
	tenants, err := s.store.FindTenants(ctx, TenantActive, TenantFailing)
	if err != nil {
		return fmt.Errorf("poll: tenants: %w", err)
	}
	names := tenantNames(tenants)
	var (
		wg     sync.WaitGroup
		sem    = make(chan struct{}, s.cfg.Concurrency)
		mu     sync.Mutex
		failed int
	)
loop:
	for _, t := range tenants {
		if t.State == TenantFailing && start.Before(t.NextAttempt) {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break loop // still finish the pass: nothing may stay held
		}
		wg.Add(1)
		go func(t Tenant) {
			defer func() { <-sem; wg.Done() }()
			if !s.pollTenant(ctx, t, passID, start) {
				mu.Lock()
				failed++
				mu.Unlock()
			}
		}(t)
	}
	wg.Wait()
	// Release even when ctx is cancelled so nothing stays held.
	ferr := s.finishPass(context.WithoutCancel(ctx), passID, names, nil)
	s.obs.PassDone(s.cfg.Now().Sub(start), len(tenants), failed)
	s.kick()
	if ferr != nil {
		return fmt.Errorf("poll: finish pass: %w", ferr)
	}
	// A pass cut short by shutdown is not a failure: its tenants are
	// fetched again from their watermarks at the next start.
	return nil
}

// tenantNames maps tenant ids to names, for digests.
func tenantNames(tenants []Tenant) map[string]string {
	names := make(map[string]string, len(tenants))
	for _, t := range tenants {
		names[t.ID] = t.Name
	}
	return names
}

// pollTenant fetches and ingests one tenant; it reports success.
func (s *Service) pollTenant(parent context.Context, t Tenant, passID int64, start time.Time) bool {
	if s.deps.Source == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(parent, s.cfg.TenantTimeout)
	defer cancel()
	since := start.Add(-s.cfg.Lookback)
	if !t.Watermark.IsZero() {
		since = t.Watermark.Add(-s.cfg.Overlap)
	}
	alerts, err := s.deps.Source.Alerts(ctx, t.ID, since)
	if err != nil {
		if parent.Err() != nil {
			return false // shutting down: not the tenant's fault
		}
		s.fetchFailed(context.WithoutCancel(ctx), t, err)
		return false
	}
	// The next pass reads from here (minus overlap): never past the pass
	// start, never backwards.
	wm := t.Watermark
	if wm.IsZero() {
		wm = since
	}
	for _, a := range alerts {
		lu := a.LastUpdatedAt
		if lu.After(start) {
			lu = start
		}
		if lu.After(wm) {
			wm = lu
		}
	}
	for i := range alerts {
		alerts[i].TenantID = t.ID
	}
	// The fetch's outcome is saved with the alerts: one commit per tenant.
	now := s.cfg.Now()
	zero, empty := 0, ""
	upd := TenantUpdate{LastSuccess: &now, AuthFailures: &zero, LastError: &empty}
	recovered := t.State == TenantFailing
	if recovered {
		st := TenantActive
		upd.State = &st
	}
	res, err := s.store.Ingest(ctx, IngestBatch{
		TenantID: t.ID, Alerts: alerts, Watermark: wm, Tenant: &upd, PassID: passID, Hold: true,
		SOC: s.cfg.SOCChannels, Now: now, Plan: PlanIngest,
	})
	if err != nil {
		s.logErr(ctx, "ingest failed", "tenant", t.ID, "err", err)
		s.obs.FetchFailed("ingest")
		return false
	}
	s.obs.AlertsIngested(len(alerts))
	s.log.DebugContext(ctx, "tenant fetched", "tenant", t.ID, "new", res.New, "changed", res.Changed, "deliveries", res.Deliveries)
	if res.Deliveries > 0 {
		// A customer channel sees one tenant: its storm is decided now, so
		// its cards never wait for slower tenants. SOC channels wait for
		// the end of the pass, which sees every tenant.
		s.releaseCustomerChannels(context.WithoutCancel(ctx), t, passID)
	}
	if recovered {
		// The store keeps an offboard that happened during the fetch.
		if cur, err := s.store.FindTenant(ctx, t.ID); err == nil && cur.State == TenantActive {
			s.recovered(ctx, t)
		}
	}
	return true
}

func (s *Service) releaseCustomerChannels(ctx context.Context, t Tenant, passID int64) {
	chs, err := s.store.ChannelsOfTenant(ctx, t.ID)
	if err != nil || len(chs) == 0 {
		if err != nil {
			s.logErr(ctx, "channels of tenant", "tenant", t.ID, "err", err)
		}
		return // finishPass releases them
	}
	if err := s.finishPass(ctx, passID, map[string]string{t.ID: t.Name}, chs); err != nil {
		s.logErr(ctx, "release customer channels", "tenant", t.ID, "err", err)
	}
	s.kick()
}

// recovered tells everyone once that a failing tenant works again.
func (s *Service) recovered(ctx context.Context, t Tenant) {
	s.audit(ctx, AuditEntry{Actor: "system", TenantID: t.ID, Action: "tenant active", Target: t.ID, Outcome: "access works again"})
	s.notifyTenantState(ctx, t,
		fmt.Sprintf("✅ Access to %s (`%s`) works again; alerts are flowing.", t.Name, t.ID),
		"✅ msspbot can read your alerts again. Thank you!")
}

func (s *Service) fetchFailed(ctx context.Context, t Tenant, err error) {
	now := s.cfg.Now()
	auth := errors.Is(err, ErrAuth)
	kind := "transient"
	switch {
	case auth:
		kind = "auth"
	case errors.Is(err, ErrThrottled):
		kind = "throttled"
	case errors.Is(err, context.DeadlineExceeded):
		kind = "timeout"
	}
	s.obs.FetchFailed(kind)
	s.log.WarnContext(ctx, "fetch failed", "tenant", t.ID, "kind", kind, "err", err)
	if auth && t.Propagating(now) {
		// Roles still replicating: get a fresh token for the next try, post nothing.
		if s.deps.Access != nil {
			_ = s.deps.Access.CheckAccess(ctx, t.ID, true)
		}
		return
	}
	reason := "fetch failed: " + kind
	if auth {
		reason = "access refused (401/403)"
	}
	// Conditional on the state this pass saw: an offboard meanwhile wins.
	upd := TenantUpdate{LastError: &reason, IfState: &t.State}
	failures := t.AuthFailures
	if auth {
		failures++
		upd.AuthFailures = &failures
	}
	turnsFailing := auth && t.State == TenantActive && failures >= authFailuresToFail
	if turnsFailing {
		st := TenantFailing
		upd.State = &st
	}
	if turnsFailing || t.State == TenantFailing {
		next := now.Add(failingBackoff(failures))
		upd.NextAttempt = &next
	}
	if _, err := s.store.UpdateTenant(ctx, t.ID, upd); err != nil {
		if ErrorCode(err) != ECONFLICT {
			s.logErr(ctx, "update tenant", "tenant", t.ID, "err", err)
		}
		return
	}
	if turnsFailing {
		s.audit(ctx, AuditEntry{Actor: "system", TenantID: t.ID, Action: "tenant failing", Target: t.ID, Outcome: reason})
		s.notifyTenantState(ctx, t,
			fmt.Sprintf("❌ Lost access to %s (`%s`): Defender refused %d requests in a row. The customer may have removed msspbot's enterprise app or its consent, or the app's secret expired. msspbot keeps retrying; to restore access, re-run /mssp onboard in the customer's channel or renew the app credential.", t.Name, t.ID, failures),
			"❌ msspbot has lost access to your Defender alerts (the admin consent or the enterprise app may have been removed). Your MSSP has been told; an admin may need to grant access again when they ask.")
	}
}

func failingBackoff(failures int) time.Duration {
	n := failures - authFailuresToFail
	if n < 0 {
		n = 0
	}
	if n > 10 {
		n = 10
	}
	d := time.Minute << n
	if d > maxFailingBackoff {
		d = maxFailingBackoff
	}
	return d
}

// notifyTenantState posts one notice to every SOC channel and one to each
// of the tenant's customer channels.
func (s *Service) notifyTenantState(ctx context.Context, t Tenant, socText, customerText string) {
	for _, ch := range s.cfg.SOCChannels {
		s.notice(ctx, ch, t.ID, socText)
	}
	chs, err := s.store.ChannelsOfTenant(ctx, t.ID)
	if err != nil {
		s.logErr(ctx, "channels of tenant", "tenant", t.ID, "err", err)
		return
	}
	for _, ch := range chs {
		s.notice(ctx, ch, t.ID, customerText)
	}
}

// notice queues a one-off public message.
func (s *Service) notice(ctx context.Context, ch ChannelRef, tenantID, text string) {
	s.noticeMessage(ctx, ch, tenantID, Message{Kind: MessageNotice, Text: text})
}

func (s *Service) noticeMessage(ctx context.Context, ch ChannelRef, tenantID string, m Message) (Delivery, error) {
	payload, err := json.Marshal(m)
	if err != nil {
		return Delivery{}, fmt.Errorf("notice: %w", err)
	}
	kind := DeliveryNotice
	if m.Kind == MessagePrompt {
		kind = DeliveryPrompt
	}
	d, err := s.store.CreateDelivery(ctx, Delivery{
		Kind: kind, Channel: ch, TenantID: tenantID, Payload: payload,
		State: DeliveryPending, CreatedAt: s.cfg.Now(),
	})
	if err != nil {
		s.logErr(ctx, "queue notice", "channel", ch, "err", err)
		return Delivery{}, fmt.Errorf("notice: %w", err)
	}
	s.kick()
	return d, nil
}

// finishPass turns storms into digests, then releases the pass's posts:
// of the given channels only, or of every channel when none is given. A
// failed digest is logged and its posts released as cards: nothing may
// stay held.
func (s *Service) finishPass(ctx context.Context, passID int64, names map[string]string, channels []ChannelRef) error {
	held, err := s.store.HeldPosts(ctx, passID, channels...)
	if err != nil {
		return errors.Join(err, s.store.ReleaseHeld(ctx, passID, channels...))
	}
	for ch, posts := range held {
		if len(posts) <= s.cfg.StormThreshold || (len(channels) > 0 && !slices.Contains(channels, ch)) {
			continue
		}
		msg, lines := buildDigest(posts, names, s.cfg.Now())
		payload, err := json.Marshal(msg)
		if err == nil {
			_, err = s.store.CreateDigest(ctx, Delivery{
				Kind: DeliveryDigest, Channel: ch, Payload: payload, State: DeliveryPending, CreatedAt: s.cfg.Now(),
			}, lines)
		}
		if err != nil {
			s.logErr(ctx, "storm digest failed; posting cards", "channel", ch, "err", err)
		}
	}
	return s.store.ReleaseHeld(ctx, passID, channels...)
}

func buildDigest(posts []HeldPost, names map[string]string, now time.Time) (Message, map[int64]string) {
	d := &Digest{Total: len(posts), BySeverity: map[Severity]int{}, Since: now}
	lines := make(map[int64]string, len(posts))
	seenTenant := map[string]bool{}
	sorted := append([]HeldPost(nil), posts...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Severity > sorted[j].Severity })
	for _, p := range sorted {
		d.BySeverity[p.Severity]++
		if !seenTenant[p.TenantID] {
			seenTenant[p.TenantID] = true
			d.Tenants = append(d.Tenants, names[p.TenantID])
		}
		if len(d.TopTitles) < 5 {
			d.TopTitles = append(d.TopTitles, p.Title)
		}
		lines[p.DeliveryID] = fmt.Sprintf("%s %s · `%s` · %s", SeverityEmoji(p.Severity), p.Severity, p.AlertID, p.Title)
	}
	text := fmt.Sprintf("🌩️ %d new alerts", d.Total)
	return Message{Kind: MessageDigest, Text: text, Title: text, Digest: d}, lines
}
