package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/msspbot/msspbot/bot"
)

const tenantCols = `id, name, state, from_config, activated_at, watermark, auth_failures,
	last_error, last_success, next_attempt, created_at`

func scanTenant(s scanner) (bot.Tenant, error) {
	var (
		t                                           bot.Tenant
		fromConfig                                  int
		activated, watermark, success, next, create int64
	)
	err := s.Scan(&t.ID, &t.Name, &t.State, &fromConfig, &activated, &watermark, &t.AuthFailures,
		&t.LastError, &success, &next, &create)
	if err != nil {
		return t, err
	}
	t.FromConfig = fromConfig != 0
	t.ActivatedAt, t.Watermark, t.LastSuccess = ft(activated), ft(watermark), ft(success)
	t.NextAttempt, t.CreatedAt = ft(next), ft(create)
	return t, nil
}

func findTenant(ctx context.Context, q queryer, id string) (bot.Tenant, error) {
	t, err := scanTenant(q.QueryRowContext(ctx, `SELECT `+tenantCols+` FROM tenants WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return t, bot.Errorf(bot.ENOTFOUND, "Tenant %s not found.", id)
	}
	if err != nil {
		return t, fmt.Errorf("sqlite: find tenant: %w", err)
	}
	return t, nil
}

// FindTenant implements bot.TenantStore.
func (db *DB) FindTenant(ctx context.Context, id string) (bot.Tenant, error) {
	return findTenant(ctx, db.r, bot.NormalizeTenantID(id))
}

// FindTenants implements bot.TenantStore.
func (db *DB) FindTenants(ctx context.Context, states ...bot.TenantState) ([]bot.Tenant, error) {
	query := `SELECT ` + tenantCols + ` FROM tenants`
	args := make([]any, len(states))
	for i, s := range states {
		args[i] = string(s)
	}
	if len(states) > 0 {
		query += ` WHERE state IN (` + placeholders(len(states)) + `)`
	}
	rows, err := db.r.QueryContext(ctx, query+` ORDER BY name COLLATE NOCASE, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: find tenants: %w", err)
	}
	defer rows.Close()
	var out []bot.Tenant
	for rows.Next() {
		t, err := scanTenant(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: find tenants: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: find tenants: %w", err)
	}
	return out, nil
}

// CreateTenant implements bot.TenantStore: a new tenant is inserted; a
// pending, failing or revoked one is reset to t (onboarding again), keeping
// only its creation time; an active one is ECONFLICT.
func (db *DB) CreateTenant(ctx context.Context, t bot.Tenant) error {
	t.ID = bot.NormalizeTenantID(t.ID)
	if t.ID == "" {
		return bot.Errorf(bot.EINVALID, "Tenant id is required.")
	}
	if t.State == "" {
		t.State = bot.TenantPending
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = db.now()
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: create tenant: %w", err)
	}
	defer tx.Rollback()

	old, err := findTenant(ctx, tx, t.ID)
	switch {
	case bot.ErrorCode(err) == bot.ENOTFOUND:
		_, err = tx.ExecContext(ctx, `INSERT INTO tenants (`+tenantCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?)`,
			t.ID, t.Name, string(t.State), boolInt(t.FromConfig), tm(t.ActivatedAt), tm(t.Watermark),
			t.AuthFailures, t.LastError, tm(t.LastSuccess), tm(t.NextAttempt), tm(t.CreatedAt))
	case err != nil:
		return err
	case old.State == bot.TenantActive:
		return bot.Errorf(bot.ECONFLICT, "Tenant %s is already active.", t.ID)
	default:
		_, err = tx.ExecContext(ctx, `UPDATE tenants SET name = ?, state = ?, from_config = ?, activated_at = ?,
			watermark = ?, auth_failures = ?, last_error = ?, last_success = ?, next_attempt = ? WHERE id = ?`,
			t.Name, string(t.State), boolInt(t.FromConfig), tm(t.ActivatedAt), tm(t.Watermark),
			t.AuthFailures, t.LastError, tm(t.LastSuccess), tm(t.NextAttempt), t.ID)
	}
	if err != nil {
		return fmt.Errorf("sqlite: create tenant: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: create tenant: %w", err)
	}
	return nil
}

// UpdateTenant implements bot.TenantStore. With upd.IfState it changes
// nothing unless the tenant is in that state (ECONFLICT otherwise).
func (db *DB) UpdateTenant(ctx context.Context, id string, upd bot.TenantUpdate) (bot.Tenant, error) {
	id = bot.NormalizeTenantID(id)
	sets, args := tenantSets(upd)

	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return bot.Tenant{}, fmt.Errorf("sqlite: update tenant: %w", err)
	}
	defer tx.Rollback()
	t, err := findTenant(ctx, tx, id)
	if err != nil {
		return t, err
	}
	if upd.IfState != nil && t.State != *upd.IfState {
		return t, bot.Errorf(bot.ECONFLICT, "Tenant %s is %s, not %s.", id, t.State, *upd.IfState)
	}
	if len(sets) > 0 {
		// The transaction holds the write lock: the state read above is current.
		if _, err := tx.ExecContext(ctx, `UPDATE tenants SET `+strings.Join(sets, ", ")+` WHERE id = ?`, append(args, id)...); err != nil {
			return bot.Tenant{}, fmt.Errorf("sqlite: update tenant: %w", err)
		}
		if t, err = findTenant(ctx, tx, id); err != nil {
			return t, err
		}
	}
	if err := tx.Commit(); err != nil {
		return bot.Tenant{}, fmt.Errorf("sqlite: update tenant: %w", err)
	}
	return t, nil
}

// tenantSets turns the set fields of upd into SQL assignments.
func tenantSets(upd bot.TenantUpdate) (sets []string, args []any) {
	set := func(col string, v any) {
		sets = append(sets, col+" = ?")
		args = append(args, v)
	}
	if upd.Name != nil {
		set("name", *upd.Name)
	}
	if upd.State != nil {
		set("state", string(*upd.State))
	}
	if upd.ActivatedAt != nil {
		set("activated_at", tm(*upd.ActivatedAt))
	}
	if upd.AuthFailures != nil {
		set("auth_failures", *upd.AuthFailures)
	}
	if upd.LastError != nil {
		set("last_error", *upd.LastError)
	}
	if upd.LastSuccess != nil {
		set("last_success", tm(*upd.LastSuccess))
	}
	if upd.NextAttempt != nil {
		set("next_attempt", tm(*upd.NextAttempt))
	}

	return sets, args
}

// ApplyConfigTenants implements bot.TenantStore. The config wins: a listed
// channel linked to another tenant by chat is moved to its config tenant.
// Config tenants are set active and keep their watermark.
func (db *DB) ApplyConfigTenants(ctx context.Context, tenants []bot.ConfigTenant) error {
	now := tm(db.now())
	owner := map[bot.ChannelRef]string{}
	ids := make([]string, 0, len(tenants))
	for i := range tenants {
		id := bot.NormalizeTenantID(tenants[i].ID)
		if id == "" {
			return bot.Errorf(bot.EINVALID, "A configured tenant has no id.")
		}
		for _, ch := range tenants[i].Channels {
			if o, ok := owner[ch]; ok && o != id {
				return bot.Errorf(bot.EINVALID, "Channel %s is configured for two tenants.", ch)
			}
			owner[ch] = id
		}
		ids = append(ids, id)
	}

	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: apply config tenants: %w", err)
	}
	defer tx.Rollback()

	// Tenants that left the config become chat-managed, without their config links.
	inList := map[string]bool{}
	for _, id := range ids {
		inList[id] = true
	}
	rows, err := tx.QueryContext(ctx, `SELECT id FROM tenants WHERE from_config = 1`)
	if err != nil {
		return fmt.Errorf("sqlite: apply config tenants: %w", err)
	}
	var gone []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return fmt.Errorf("sqlite: apply config tenants: %w", err)
		}
		if !inList[id] {
			gone = append(gone, id)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: apply config tenants: %w", err)
	}
	for _, id := range gone {
		if err := deleteLinks(ctx, tx, id, `DELETE FROM links WHERE tenant_id = ? AND from_config = 1 RETURNING channel`, id); err != nil {
			return fmt.Errorf("sqlite: apply config tenants: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE tenants SET from_config = 0 WHERE id = ?`, id); err != nil {
			return fmt.Errorf("sqlite: apply config tenants: %w", err)
		}
	}

	for i, t := range tenants {
		id := ids[i]
		if _, err := tx.ExecContext(ctx, `INSERT INTO tenants (id, name, state, from_config, created_at)
			VALUES (?, ?, 'active', 1, ?)
			ON CONFLICT (id) DO UPDATE SET name = excluded.name, from_config = 1,
				-- A restart during an outage keeps the tenant failing, with its
				-- count and backoff: resetting it would post "lost access" again.
				state = CASE WHEN tenants.state = 'failing' THEN 'failing' ELSE 'active' END`,
			id, t.Name, now); err != nil {
			return fmt.Errorf("sqlite: apply config tenant %s: %w", id, err)
		}
		// Exactly the configured channels: drop the others, then (re)link these.
		args := []any{id}
		for _, ch := range t.Channels {
			args = append(args, string(ch))
		}
		query := `DELETE FROM links WHERE tenant_id = ?`
		if len(t.Channels) > 0 {
			query += ` AND channel NOT IN (` + placeholders(len(t.Channels)) + `)`
		}
		if err := deleteLinks(ctx, tx, id, query+` RETURNING channel`, args...); err != nil {
			return fmt.Errorf("sqlite: apply config tenant %s: %w", id, err)
		}
		for _, ch := range t.Channels {
			// A channel taken over from another tenant stops receiving that
			// tenant's updates.
			var prev string
			err := tx.QueryRowContext(ctx, `SELECT tenant_id FROM links WHERE channel = ?`, string(ch)).Scan(&prev)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("sqlite: apply config tenant %s: %w", id, err)
			}
			if prev != "" && prev != id {
				if err := detachChannel(ctx, tx, ch, prev); err != nil {
					return fmt.Errorf("sqlite: apply config tenant %s: %w", id, err)
				}
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO links (channel, tenant_id, from_config, created_at)
				VALUES (?, ?, 1, ?)
				ON CONFLICT (channel) DO UPDATE SET tenant_id = excluded.tenant_id, from_config = 1`,
				string(ch), id, now); err != nil {
				return fmt.Errorf("sqlite: apply config tenant %s: %w", id, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: apply config tenants: %w", err)
	}
	return nil
}

// TenantOfChannel implements bot.TenantStore.
func (db *DB) TenantOfChannel(ctx context.Context, ch bot.ChannelRef) (string, error) {
	var id string
	err := db.r.QueryRowContext(ctx, `SELECT tenant_id FROM links WHERE channel = ?`, string(ch)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", bot.Errorf(bot.ENOTFOUND, "This channel is not linked to a tenant.")
	}
	if err != nil {
		return "", fmt.Errorf("sqlite: tenant of channel: %w", err)
	}
	return id, nil
}

// ChannelsOfTenant implements bot.TenantStore.
func (db *DB) ChannelsOfTenant(ctx context.Context, tenantID string) ([]bot.ChannelRef, error) {
	chs, err := linkedChannels(ctx, db.r, bot.NormalizeTenantID(tenantID))
	if err != nil {
		return nil, fmt.Errorf("sqlite: channels of tenant: %w", err)
	}
	return chs, nil
}

func linkedChannels(ctx context.Context, q queryer, tenantID string) ([]bot.ChannelRef, error) {
	rows, err := q.QueryContext(ctx, `SELECT channel FROM links WHERE tenant_id = ? ORDER BY channel`, tenantID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []bot.ChannelRef
	for rows.Next() {
		var ch string
		if err := rows.Scan(&ch); err != nil {
			return nil, err
		}
		out = append(out, bot.ChannelRef(ch))
	}
	return out, rows.Err()
}

// Link implements bot.TenantStore. Linking a channel to its own tenant
// again is a no-op; the tenant must exist (ENOTFOUND).
func (db *DB) Link(ctx context.Context, ch bot.ChannelRef, tenantID string) error {
	tenantID = bot.NormalizeTenantID(tenantID)
	if !ch.Valid() {
		return bot.Errorf(bot.EINVALID, "Invalid channel %q.", ch)
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: link: %w", err)
	}
	defer tx.Rollback()
	if _, err := findTenant(ctx, tx, tenantID); err != nil {
		return err
	}
	var cur string
	err = tx.QueryRowContext(ctx, `SELECT tenant_id FROM links WHERE channel = ?`, string(ch)).Scan(&cur)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO links (channel, tenant_id, created_at) VALUES (?, ?, ?)`,
			string(ch), tenantID, tm(db.now())); err != nil {
			return fmt.Errorf("sqlite: link: %w", err)
		}
	case err != nil:
		return fmt.Errorf("sqlite: link: %w", err)
	case cur != tenantID:
		return bot.Errorf(bot.ECONFLICT, "This channel is linked to another tenant.")
	default:
		return nil
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: link: %w", err)
	}
	return nil
}

// Unlink implements bot.TenantStore; ENOTFOUND when ch is not linked.
func (db *DB) Unlink(ctx context.Context, ch bot.ChannelRef) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: unlink: %w", err)
	}
	defer tx.Rollback()
	var tenantID string
	err = tx.QueryRowContext(ctx, `DELETE FROM links WHERE channel = ? RETURNING tenant_id`, string(ch)).Scan(&tenantID)
	if errors.Is(err, sql.ErrNoRows) {
		return bot.Errorf(bot.ENOTFOUND, "This channel is not linked to a tenant.")
	}
	if err != nil {
		return fmt.Errorf("sqlite: unlink: %w", err)
	}
	if err := detachChannel(ctx, tx, ch, tenantID); err != nil {
		return fmt.Errorf("sqlite: unlink: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: unlink: %w", err)
	}
	return nil
}

// detachChannel ends a channel's share in a tenant's alerts once the link
// is gone: unsent card posts, lines and edits are cancelled, and its cards
// no longer count as live, so later changes (thread lines, card edits with
// current details) reach only the channels still linked and the SOC.
func detachChannel(ctx context.Context, tx *sql.Tx, ch bot.ChannelRef, tenantID string) error {
	// A storm digest of the tenant's alerts in this channel goes with them
	// (its counts and top titles are the tenant's); one that also holds
	// another tenant's alerts is kept, or those would never be shown.
	digests := `SELECT d.id FROM deliveries d WHERE d.kind = 'digest' AND d.channel = ?1
		AND d.id IN (SELECT digest_id FROM deliveries WHERE channel = ?1 AND tenant_id = ?2 AND digest_id IS NOT NULL)
		AND NOT EXISTS (SELECT 1 FROM deliveries m WHERE m.digest_id = d.id AND m.tenant_id <> ?2)`
	if _, err := tx.ExecContext(ctx, `UPDATE outbox SET state = 'cancelled' WHERE state IN ('pending', 'held')
		AND delivery_id IN (`+digests+`)`, string(ch), tenantID); err != nil {
		return fmt.Errorf("detach %s: %w", ch, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = 'cancelled'
		WHERE state IN ('pending', 'posted') AND id IN (`+digests+`)`, string(ch), tenantID); err != nil {
		return fmt.Errorf("detach %s: %w", ch, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE outbox SET state = 'cancelled' WHERE state IN ('pending', 'held')
		AND delivery_id IN (SELECT id FROM deliveries WHERE channel = ?1 AND tenant_id = ?2 AND kind = 'alert')`,
		string(ch), tenantID); err != nil {
		return fmt.Errorf("detach %s: %w", ch, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = 'cancelled'
		WHERE channel = ?1 AND tenant_id = ?2 AND kind = 'alert' AND state IN ('pending', 'posted')`,
		string(ch), tenantID); err != nil {
		return fmt.Errorf("detach %s: %w", ch, err)
	}
	return nil
}

// deleteLinks runs a DELETE … RETURNING channel on links of tenantID and
// detaches every channel it removed.
func deleteLinks(ctx context.Context, tx *sql.Tx, tenantID, query string, args ...any) error {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	var chs []bot.ChannelRef
	for rows.Next() {
		var ch string
		if err := rows.Scan(&ch); err != nil {
			rows.Close()
			return err
		}
		chs = append(chs, bot.ChannelRef(ch))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, ch := range chs {
		if err := detachChannel(ctx, tx, ch, tenantID); err != nil {
			return err
		}
	}
	return nil
}

// RevokeTenant implements bot.TenantStore. It cancels the unsent entries
// of the tenant's alert deliveries only: notices and prompts (such as the
// offboarding notice itself) still go out. Cards in the tenant's channels
// are detached (cancelled); SOC cards stay posted, as history.
func (db *DB) RevokeTenant(ctx context.Context, id string) error {
	id = bot.NormalizeTenantID(id)
	now := tm(db.now())
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: revoke tenant: %w", err)
	}
	defer tx.Rollback()
	r, err := tx.ExecContext(ctx, `UPDATE tenants SET state = 'revoked' WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("sqlite: revoke tenant: %w", err)
	}
	if n, err := r.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: revoke tenant: %w", err)
	} else if n == 0 {
		return bot.Errorf(bot.ENOTFOUND, "Tenant %s not found.", id)
	}
	// Its channels' cards are detached as by Unlink: a later change (or the
	// tenant onboarded again elsewhere) must not reach them.
	if err := deleteLinks(ctx, tx, id, `DELETE FROM links WHERE tenant_id = ? RETURNING channel`, id); err != nil {
		return fmt.Errorf("sqlite: revoke tenant: %w", err)
	}
	steps := []string{
		// Cards never posted are withdrawn with their entries.
		`UPDATE deliveries SET state = 'cancelled' WHERE tenant_id = ?1 AND kind = 'alert' AND state = 'pending'
			AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.delivery_id = deliveries.id AND o.kind = 'post'
				AND o.state IN ('inflight', 'sent'))`,
		`UPDATE outbox SET state = 'cancelled' WHERE state IN ('pending', 'held') AND delivery_id IN (
			SELECT id FROM deliveries WHERE tenant_id = ?1 AND kind = 'alert')`,
		`UPDATE write_backs SET state = 'cancelled' WHERE tenant_id = ?1 AND state = 'pending'`,
		`UPDATE access_requests SET outcome = 'superseded', closed_at = ?2 WHERE tenant_id = ?1 AND outcome = 'open'`,
	}
	for _, s := range steps {
		if _, err := tx.ExecContext(ctx, s, id, now); err != nil {
			return fmt.Errorf("sqlite: revoke tenant: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: revoke tenant: %w", err)
	}
	return nil
}
