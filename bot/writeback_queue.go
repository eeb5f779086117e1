package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

const (
	writeBackMaxAttempts = 8
	writeBackPerTenant   = 100 // read per round, per tenant
)

// ProcessWriteBacks sends one round of due write-backs. Write-backs of one
// alert go strictly in order (an ack retried after a later resolve would
// undo it); tenants proceed in parallel so one throttled tenant waits alone.
func (s *Service) ProcessWriteBacks(ctx context.Context) (int, error) {
	s.writeBackMu.Lock()
	defer s.writeBackMu.Unlock()
	now := s.cfg.Now()
	// Read every pending one (not only due ones) to find each alert's head.
	all, err := s.store.NextWriteBacks(ctx, now.Add(100*365*24*time.Hour), writeBackPerTenant)
	if err != nil {
		return 0, fmt.Errorf("write-backs: %w", err)
	}
	// Per tenant, per alert, in creation order: an alert's queue stops at
	// its first write-back that is not due or fails.
	type queue struct {
		alerts  []string
		byAlert map[string][]WriteBack
	}
	byTenant := map[string]*queue{}
	var tenants []string
	for _, wb := range all {
		q := byTenant[wb.TenantID]
		if q == nil {
			q = &queue{byAlert: map[string][]WriteBack{}}
			byTenant[wb.TenantID] = q
			tenants = append(tenants, wb.TenantID)
		}
		if _, ok := q.byAlert[wb.AlertID]; !ok {
			q.alerts = append(q.alerts, wb.AlertID)
		}
		q.byAlert[wb.AlertID] = append(q.byAlert[wb.AlertID], wb)
	}
	var (
		wg   sync.WaitGroup
		sem  = make(chan struct{}, s.cfg.Concurrency)
		mu   sync.Mutex
		done int
	)
	for _, t := range tenants {
		wg.Add(1)
		sem <- struct{}{}
		go func(q *queue) {
			defer func() { <-sem; wg.Done() }()
			for _, alert := range q.alerts {
				for _, wb := range q.byAlert[alert] {
					if ctx.Err() != nil || wb.NextAttempt.After(now) || !s.applyWriteBack(ctx, wb) {
						break
					}
					mu.Lock()
					done++
					mu.Unlock()
				}
			}
		}(byTenant[t])
	}
	wg.Wait()
	return done, nil
}

func (s *Service) applyWriteBack(ctx context.Context, wb WriteBack) bool {
	var err error
	if s.deps.Target != nil {
		err = s.deps.Target.Apply(ctx, wb)
	}
	rctx := context.WithoutCancel(ctx)
	if err == nil {
		if err := s.store.MarkWriteBackSent(rctx, wb.ID); err != nil {
			s.logErr(ctx, "mark write-back sent", "err", err)
		}
		s.obs.WriteBackResult("sent")
		return true
	}
	if ctx.Err() != nil {
		return false // shutting down: stays pending, retried at next start
	}
	var se *SendError
	errors.As(err, &se)
	// Throttling is not the write-back's fault: it never counts towards
	// giving up, however long Defender's budget keeps us waiting.
	throttled := errors.Is(err, ErrThrottled) || (se != nil && se.RetryAfter > 0)
	// Right after a grant Entra may still refuse (401/403) while the
	// permission propagates: wait like a throttle, say nothing yet.
	propagating := errors.Is(err, ErrAuth) && s.inPropagationWindow(ctx, wb.TenantID)
	throttled = throttled || propagating
	permanent := (errors.Is(err, ErrAuth) && !propagating) || (se != nil && se.Permanent) || (!throttled && wb.Attempts+1 >= writeBackMaxAttempts)
	if permanent {
		reason := firstLine(err.Error())
		if errors.Is(err, ErrAuth) {
			reason = "Defender refused the update (401/403): the app may lack " + s.writePermission() + " in this tenant"
		} else if se != nil && se.Reason != "" {
			reason = se.Reason
		}
		line := fmt.Sprintf("⚠️ Could not update the alert in Defender (%s): %s. The change is kept in msspbot only.", wb.Kind, reason)
		if err := s.store.FailWriteBack(rctx, wb.ID, reason, line); err != nil {
			s.logErr(ctx, "fail write-back", "err", err)
		}
		s.log.WarnContext(ctx, "write-back failed", "tenant", wb.TenantID, "alert", wb.AlertID, "err", err)
		s.obs.WriteBackResult("failed")
		s.kick()
		return false
	}
	delay := backoff(wb.Attempts)
	switch {
	case se != nil && se.RetryAfter > 0:
		delay = se.RetryAfter
	case throttled:
		// Throttled with no server hint (the client already honoured
		// Retry-After and gave up), or still propagating: throttling does
		// not count as an attempt, so the backoff would not grow.
		delay = max(delay, time.Minute)
	}
	if err := s.store.MarkWriteBackRetry(rctx, wb.ID, s.cfg.Now().Add(delay), firstLine(err.Error()), !throttled); err != nil {
		s.logErr(ctx, "retry write-back", "err", err)
	}
	s.obs.WriteBackResult("retry")
	return false
}

// inPropagationWindow reports whether the tenant was granted access less
// than PropagationWindow ago.
func (s *Service) inPropagationWindow(ctx context.Context, tenantID string) bool {
	t, err := s.store.FindTenant(ctx, tenantID)
	return err == nil && t.Propagating(s.cfg.Now())
}

// RunWriteBacks processes write-backs until ctx is done.
func (s *Service) RunWriteBacks(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.ProcessWriteBacks(ctx); err != nil && ctx.Err() == nil {
			s.logErr(ctx, "write-back round failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.wakeWB:
		}
	}
}

// writePermission names the permission write-back needs, as configured
// for the chosen API (MDE Alert.ReadWrite.All, Graph SecurityAlert.ReadWrite.All).
func (s *Service) writePermission() string {
	for _, p := range s.cfg.Permissions {
		if strings.Contains(p, "ReadWrite") {
			return p
		}
	}
	return "the alert write permission"
}
