package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/msspbot/msspbot/bot"
)

const writeBackCols = `id, tenant_id, alert_id, kind, status, assigned_to, classification, determination,
	comment, actor, state, attempts, next_attempt, error, created_at`

func scanWriteBack(s scanner) (bot.WriteBack, error) {
	var (
		w                          bot.WriteBack
		kind, status, class, state string
		next, created              int64
	)
	err := s.Scan(&w.ID, &w.TenantID, &w.AlertID, &kind, &status, &w.AssignedTo, &class, &w.Determination,
		&w.Comment, &w.Actor, &state, &w.Attempts, &next, &w.Error, &created)
	w.Kind, w.Status, w.Classification, w.State = bot.WriteBackKind(kind), bot.AlertStatus(status),
		bot.Classification(class), bot.WriteBackState(state)
	w.NextAttempt, w.CreatedAt = ft(next), ft(created)
	return w, err
}

func queryWriteBacks(ctx context.Context, q queryer, query string, args ...any) ([]bot.WriteBack, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []bot.WriteBack
	for rows.Next() {
		w, err := scanWriteBack(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

func insertWriteBack(ctx context.Context, tx *sql.Tx, w bot.WriteBack) (int64, error) {
	r, err := tx.ExecContext(ctx, `INSERT INTO write_backs (tenant_id, alert_id, kind, status, assigned_to,
		classification, determination, comment, actor, state, attempts, next_attempt, error, created_at)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		w.TenantID, w.AlertID, string(w.Kind), string(w.Status), w.AssignedTo, string(w.Classification),
		w.Determination, w.Comment, w.Actor, string(w.State), w.Attempts, tm(w.NextAttempt), w.Error, tm(w.CreatedAt))
	if err != nil {
		return 0, err
	}
	return r.LastInsertId()
}

// NextWriteBacks implements bot.WriteBackStore.
func (db *DB) NextWriteBacks(ctx context.Context, now time.Time, limit int) ([]bot.WriteBack, error) {
	if limit <= 0 {
		return nil, nil
	}
	// Per tenant, so one tenant's backlog (throttled for hours, say)
	// never hides another tenant's write-backs.
	out, err := queryWriteBacks(ctx, db.r, `SELECT `+writeBackCols+` FROM (
		SELECT *, ROW_NUMBER() OVER (PARTITION BY tenant_id ORDER BY id) AS rn
		FROM write_backs WHERE state = 'pending' AND next_attempt <= ?)
		WHERE rn <= ? ORDER BY id`, tm(now), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: next write-backs: %w", err)
	}
	return out, nil
}

// PendingWriteBacks implements bot.WriteBackStore, oldest first.
func (db *DB) PendingWriteBacks(ctx context.Context, tenantID string) ([]bot.WriteBack, error) {
	out, err := pendingWriteBacks(ctx, db.r, bot.NormalizeTenantID(tenantID))
	if err != nil {
		return nil, fmt.Errorf("sqlite: pending write-backs: %w", err)
	}
	return out, nil
}

func pendingWriteBacks(ctx context.Context, q queryer, tenantID string) ([]bot.WriteBack, error) {
	return queryWriteBacks(ctx, q, `SELECT `+writeBackCols+` FROM write_backs
		WHERE tenant_id = ? AND state = 'pending' ORDER BY id`, tenantID)
}

// updateWriteBack runs fn on one write-back; ENOTFOUND when missing.
// Unless always is set, a write-back that is no longer pending (cancelled
// by offboarding, say) is left as it is.
func (db *DB) updateWriteBack(ctx context.Context, id int64, what string, always bool, fn func(tx *sql.Tx, w bot.WriteBack) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: %s: %w", what, err)
	}
	defer tx.Rollback()
	w, err := scanWriteBack(tx.QueryRowContext(ctx, `SELECT `+writeBackCols+` FROM write_backs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return bot.Errorf(bot.ENOTFOUND, "Write-back %d not found.", id)
	}
	if err != nil {
		return fmt.Errorf("sqlite: %s: %w", what, err)
	}
	if w.State != bot.WriteBackPending && !always {
		return nil
	}
	if err := fn(tx, w); err != nil {
		return fmt.Errorf("sqlite: %s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: %s: %w", what, err)
	}
	return nil
}

// MarkWriteBackSent implements bot.WriteBackStore. It records the truth
// even when the write-back was cancelled while being sent.
func (db *DB) MarkWriteBackSent(ctx context.Context, id int64) error {
	return db.updateWriteBack(ctx, id, "mark write-back sent", true, func(tx *sql.Tx, _ bot.WriteBack) error {
		_, err := tx.ExecContext(ctx, `UPDATE write_backs SET state = 'sent', attempts = attempts + 1, error = '' WHERE id = ?`, id)
		return err
	})
}

// MarkWriteBackRetry implements bot.WriteBackStore; only a pending
// write-back changes, and attempts grows only when counted.
func (db *DB) MarkWriteBackRetry(ctx context.Context, id int64, next time.Time, reason string, counted bool) error {
	return db.updateWriteBack(ctx, id, "mark write-back retry", false, func(tx *sql.Tx, _ bot.WriteBack) error {
		_, err := tx.ExecContext(ctx, `UPDATE write_backs SET attempts = attempts + ?, next_attempt = ?, error = ? WHERE id = ?`,
			boolInt(counted), tm(next), reason, id)
		return err
	})
}

// FailWriteBack implements bot.WriteBackStore; only a pending write-back
// changes (a cancelled one gets no thread line).
func (db *DB) FailWriteBack(ctx context.Context, id int64, reason, threadText string) error {
	now := db.now()
	return db.updateWriteBack(ctx, id, "fail write-back", false, func(tx *sql.Tx, w bot.WriteBack) error {
		if _, err := tx.ExecContext(ctx, `UPDATE write_backs SET state = 'failed', attempts = attempts + 1, error = ? WHERE id = ?`,
			reason, id); err != nil {
			return err
		}
		return queueAlertUpdate(ctx, tx, w.TenantID, w.AlertID, threadText, false, now)
	})
}
