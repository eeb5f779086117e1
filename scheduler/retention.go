package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/msspbot/msspbot/bot"
)

// Purger deletes old history (bot.Store has it).
type Purger interface {
	Purge(ctx context.Context, alertsBefore, auditBefore time.Time) (bot.PurgeResult, error)
}

// PurgeObserver is told what a purge removed (bot.Observer has it).
type PurgeObserver interface {
	Purged(r bot.PurgeResult)
}

// Purge removes resolved alerts (with their deliveries and outbox rows)
// last updated more than alertsAge before now, and audit entries older than
// auditAge; it logs the counts and reports them to obs (may be nil).
// Ages must be positive: a zero age would delete all history.
func Purge(ctx context.Context, store Purger, now time.Time, alertsAge, auditAge time.Duration, obs PurgeObserver, logger *slog.Logger) (bot.PurgeResult, error) {
	if alertsAge <= 0 || auditAge <= 0 {
		return bot.PurgeResult{}, errors.New("retention: ages must be positive")
	}
	if logger == nil {
		logger = slog.Default()
	}
	alertsBefore, auditBefore := now.Add(-alertsAge), now.Add(-auditAge)
	r, err := store.Purge(ctx, alertsBefore, auditBefore)
	if err != nil {
		return r, fmt.Errorf("retention: purge: %w", err)
	}
	if obs != nil {
		obs.Purged(r)
	}
	logger.Info("retention: purged",
		"alerts", r.Alerts, "deliveries", r.Deliveries, "outbox", r.Outbox, "audit", r.Audit,
		"alerts_before", alertsBefore, "audit_before", auditBefore)
	return r, nil
}

// Retention returns a job for AddDaily that purges with the clock now
// (nil: time.Now).
func Retention(store Purger, alertsAge, auditAge time.Duration, obs PurgeObserver, logger *slog.Logger, now func() time.Time) func(context.Context) error {
	if now == nil {
		now = time.Now
	}
	return func(ctx context.Context) error {
		_, err := Purge(ctx, store, now(), alertsAge, auditAge, obs, logger)
		return err
	}
}
