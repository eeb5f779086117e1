package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/msspbot/msspbot/bot"
)

const accessCols = `id, kind, tenant_id, tenant_name, channel, requested_by, COALESCE(state_hash, ''),
	expires_at, outcome, reason, prompt_id, created_at, closed_at`

func scanAccess(s scanner) (bot.AccessRequest, error) {
	var (
		r                        bot.AccessRequest
		kind, ch, outcome        string
		expires, created, closed int64
	)
	err := s.Scan(&r.ID, &kind, &r.TenantID, &r.TenantName, &ch, &r.RequestedBy, &r.StateHash,
		&expires, &outcome, &r.Reason, &r.PromptID, &created, &closed)
	r.Kind, r.Channel, r.Outcome = bot.AccessKind(kind), bot.ChannelRef(ch), bot.AccessOutcome(outcome)
	r.ExpiresAt, r.CreatedAt, r.ClosedAt = ft(expires), ft(created), ft(closed)
	return r, err
}

func findAccess(ctx context.Context, q queryer, where string, arg any) (bot.AccessRequest, error) {
	r, err := scanAccess(q.QueryRowContext(ctx, `SELECT `+accessCols+` FROM access_requests WHERE `+where, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return r, bot.Errorf(bot.ENOTFOUND, "Request not found.")
	}
	if err != nil {
		return r, fmt.Errorf("sqlite: find access request: %w", err)
	}
	return r, nil
}

// CreateAccessRequest implements bot.AccessStore. The new request is open;
// an open one of the same kind and tenant is closed as superseded.
func (db *DB) CreateAccessRequest(ctx context.Context, r bot.AccessRequest) (bot.AccessRequest, error) {
	r.TenantID = bot.NormalizeTenantID(r.TenantID)
	if r.Kind == "" || r.TenantID == "" {
		return r, bot.Errorf(bot.EINVALID, "A request needs a kind and a tenant.")
	}
	r.Outcome, r.ClosedAt, r.Reason = bot.AccessOpen, time.Time{}, ""
	if r.CreatedAt.IsZero() {
		r.CreatedAt = db.now()
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return r, fmt.Errorf("sqlite: create access request: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE access_requests SET outcome = 'superseded', closed_at = ?
		WHERE tenant_id = ? AND kind = ? AND outcome = 'open'`, tm(r.CreatedAt), r.TenantID, string(r.Kind)); err != nil {
		return r, fmt.Errorf("sqlite: create access request: %w", err)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO access_requests (kind, tenant_id, tenant_name, channel, requested_by,
		state_hash, expires_at, outcome, reason, prompt_id, created_at, closed_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,0)`,
		string(r.Kind), r.TenantID, r.TenantName, string(r.Channel), r.RequestedBy, nullStr(r.StateHash),
		tm(r.ExpiresAt), string(r.Outcome), r.Reason, r.PromptID, tm(r.CreatedAt))
	if isUnique(err) {
		return r, bot.Errorf(bot.ECONFLICT, "This consent state is in use.")
	}
	if err != nil {
		return r, fmt.Errorf("sqlite: create access request: %w", err)
	}
	if r.ID, err = res.LastInsertId(); err != nil {
		return r, fmt.Errorf("sqlite: create access request: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return r, fmt.Errorf("sqlite: create access request: %w", err)
	}
	return r, nil
}

// FindAccessRequest implements bot.AccessStore.
func (db *DB) FindAccessRequest(ctx context.Context, id int64) (bot.AccessRequest, error) {
	return findAccess(ctx, db.r, `id = ?`, id)
}

// FindAccessRequestByState implements bot.AccessStore, whatever the
// request's outcome: the caller tells used and expired states apart.
func (db *DB) FindAccessRequestByState(ctx context.Context, stateHash string) (bot.AccessRequest, error) {
	if stateHash == "" {
		return bot.AccessRequest{}, bot.Errorf(bot.ENOTFOUND, "Request not found.")
	}
	return findAccess(ctx, db.r, `state_hash = ?`, stateHash)
}

// CloseAccessRequest implements bot.AccessStore. The open check and the
// update are one statement, so of two concurrent callbacks one wins.
func (db *DB) CloseAccessRequest(ctx context.Context, id int64, outcome bot.AccessOutcome, reason string, now time.Time) error {
	if outcome == "" || outcome == bot.AccessOpen {
		return bot.Errorf(bot.EINVALID, "A request closes with an outcome other than open.")
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: close access request: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE access_requests SET outcome = ?, reason = ?, closed_at = ?
		WHERE id = ? AND outcome = 'open'`, string(outcome), reason, tm(now), id)
	if err != nil {
		return fmt.Errorf("sqlite: close access request: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlite: close access request: %w", err)
	}
	if n == 0 {
		if _, err := findAccess(ctx, tx, `id = ?`, id); err != nil {
			return err
		}
		return bot.Errorf(bot.ECONFLICT, "This request is no longer open.")
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: close access request: %w", err)
	}
	return nil
}

// SetAccessPrompt implements bot.AccessStore.
func (db *DB) SetAccessPrompt(ctx context.Context, id, promptDeliveryID int64) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: set access prompt: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE access_requests SET prompt_id = ? WHERE id = ?`, promptDeliveryID, id)
	if err != nil {
		return fmt.Errorf("sqlite: set access prompt: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: set access prompt: %w", err)
	} else if n == 0 {
		return bot.Errorf(bot.ENOTFOUND, "Request not found.")
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: set access prompt: %w", err)
	}
	return nil
}

// SetAccessState implements bot.AccessStore: ENOTFOUND when the request is
// missing, ECONFLICT when it is no longer open or the hash is in use.
func (db *DB) SetAccessState(ctx context.Context, id int64, stateHash string) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: set access state: %w", err)
	}
	defer tx.Rollback()
	r, err := findAccess(ctx, tx, `id = ?`, id)
	if err != nil {
		return err
	}
	if r.Outcome != bot.AccessOpen {
		return bot.Errorf(bot.ECONFLICT, "This request is no longer open.")
	}
	_, err = tx.ExecContext(ctx, `UPDATE access_requests SET state_hash = ? WHERE id = ?`, nullStr(stateHash), id)
	if isUnique(err) {
		return bot.Errorf(bot.ECONFLICT, "This consent state is in use.")
	}
	if err != nil {
		return fmt.Errorf("sqlite: set access state: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: set access state: %w", err)
	}
	return nil
}

// OpenAccessRequests implements bot.AccessStore.
func (db *DB) OpenAccessRequests(ctx context.Context, tenantID string, kind bot.AccessKind) ([]bot.AccessRequest, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+accessCols+` FROM access_requests
		WHERE tenant_id = ? AND kind = ? AND outcome = 'open' ORDER BY id`, bot.NormalizeTenantID(tenantID), string(kind))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open access requests: %w", err)
	}
	defer rows.Close()
	var out []bot.AccessRequest
	for rows.Next() {
		r, err := scanAccess(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: open access requests: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: open access requests: %w", err)
	}
	return out, nil
}
