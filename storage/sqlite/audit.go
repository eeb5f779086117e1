package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/msspbot/msspbot/bot"
)

func insertAudit(ctx context.Context, tx *sql.Tx, e bot.AuditEntry) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO audit (time, actor, identity, channel, tenant_id, action, target, outcome, detail)
		VALUES (?,?,?,?,?,?,?,?,?)`,
		tm(e.Time), e.Actor, e.Identity, string(e.Channel), bot.NormalizeTenantID(e.TenantID), e.Action, e.Target, e.Outcome, e.Detail)
	return err
}

// CreateAudit implements bot.AuditStore; a zero Time means now.
func (db *DB) CreateAudit(ctx context.Context, e bot.AuditEntry) error {
	if e.Time.IsZero() {
		e.Time = db.now()
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: create audit: %w", err)
	}
	defer tx.Rollback()
	if err := insertAudit(ctx, tx, e); err != nil {
		return fmt.Errorf("sqlite: create audit: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: create audit: %w", err)
	}
	return nil
}

// FindAudit implements bot.AuditStore: newest first; TenantIDs and Channel
// narrow when set; Limit defaults to 20.
func (db *DB) FindAudit(ctx context.Context, f bot.AuditFilter) ([]bot.AuditEntry, error) {
	var (
		where []string
		args  []any
	)
	if tenants := normTenants(f.TenantIDs); len(tenants) > 0 {
		if len(tenants) > 30000 {
			return nil, bot.Errorf(bot.EINVALID, "Too many tenants in one query.")
		}
		where = append(where, `tenant_id IN (`+placeholders(len(tenants))+`)`)
		for _, t := range tenants {
			args = append(args, t)
		}
	}
	if f.Channel != "" {
		where = append(where, `channel = ?`)
		args = append(args, string(f.Channel))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	query := `SELECT id, time, actor, identity, channel, tenant_id, action, target, outcome, detail FROM audit`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	rows, err := db.r.QueryContext(ctx, query+` ORDER BY time DESC, id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: find audit: %w", err)
	}
	defer rows.Close()
	var out []bot.AuditEntry
	for rows.Next() {
		var (
			e  bot.AuditEntry
			t  int64
			ch string
		)
		if err := rows.Scan(&e.ID, &t, &e.Actor, &e.Identity, &ch, &e.TenantID, &e.Action, &e.Target, &e.Outcome, &e.Detail); err != nil {
			return nil, fmt.Errorf("sqlite: find audit: %w", err)
		}
		e.Time, e.Channel = ft(t), bot.ChannelRef(ch)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: find audit: %w", err)
	}
	return out, nil
}
