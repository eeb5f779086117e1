package sqlite

import (
	"context"
	"fmt"

	"github.com/msspbot/msspbot/bot"
)

const ruleCols = `id, channel, min_severity, category, source, grp, title, tenant_id, created_by, created_at`

func scanRule(s scanner) (bot.Rule, error) {
	var (
		r       bot.Rule
		ch      string
		created int64
	)
	err := s.Scan(&r.ID, &ch, &r.MinSeverity, &r.Category, &r.Source, &r.Group, &r.Title, &r.TenantID, &r.CreatedBy, &created)
	r.Channel, r.CreatedAt = bot.ChannelRef(ch), ft(created)
	return r, err
}

// FindRules implements bot.RuleStore: the channel's rules, oldest first.
func (db *DB) FindRules(ctx context.Context, ch bot.ChannelRef) ([]bot.Rule, error) {
	rules, err := rulesOf(ctx, db.r, []string{string(ch)})
	if err != nil {
		return nil, fmt.Errorf("sqlite: find rules: %w", err)
	}
	return rules, nil
}

// rulesOf returns the rules of the given channels, by id.
func rulesOf(ctx context.Context, q queryer, channels []string) ([]bot.Rule, error) {
	var out []bot.Rule
	for _, chunk := range chunks(channels) {
		args := make([]any, len(chunk))
		for i, c := range chunk {
			args[i] = c
		}
		rows, err := q.QueryContext(ctx, `SELECT `+ruleCols+` FROM rules WHERE channel IN (`+placeholders(len(chunk))+`) ORDER BY id`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			r, err := scanRule(rows)
			if err != nil {
				rows.Close()
				return nil, err
			}
			out = append(out, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// CreateRule implements bot.RuleStore and returns the rule with its id.
func (db *DB) CreateRule(ctx context.Context, r bot.Rule) (bot.Rule, error) {
	if !r.Channel.Valid() {
		return r, bot.Errorf(bot.EINVALID, "Invalid channel %q.", r.Channel)
	}
	r.TenantID = bot.NormalizeTenantID(r.TenantID)
	if r.CreatedAt.IsZero() {
		r.CreatedAt = db.now()
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return r, fmt.Errorf("sqlite: create rule: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `INSERT INTO rules (channel, min_severity, category, source, grp, title, tenant_id, created_by, created_at)
		VALUES (?,?,?,?,?,?,?,?,?)`,
		string(r.Channel), int(r.MinSeverity), r.Category, r.Source, r.Group, r.Title, r.TenantID, r.CreatedBy, tm(r.CreatedAt))
	if err != nil {
		return r, fmt.Errorf("sqlite: create rule: %w", err)
	}
	if r.ID, err = res.LastInsertId(); err != nil {
		return r, fmt.Errorf("sqlite: create rule: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return r, fmt.Errorf("sqlite: create rule: %w", err)
	}
	return r, nil
}

// DeleteRule implements bot.RuleStore.
func (db *DB) DeleteRule(ctx context.Context, ch bot.ChannelRef, id int64) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: delete rule: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM rules WHERE id = ? AND channel = ?`, id, string(ch))
	if err != nil {
		return fmt.Errorf("sqlite: delete rule: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: delete rule: %w", err)
	} else if n == 0 {
		return bot.Errorf(bot.ENOTFOUND, "Rule %d not found in this channel.", id)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: delete rule: %w", err)
	}
	return nil
}

// channelRules returns the tenant's linked channels, then the SOC channels,
// each once, with their rules (bot.PlanInput.Channels).
func channelRules(ctx context.Context, q queryer, tenantID string, soc []bot.ChannelRef) ([]bot.ChannelRules, error) {
	linked, err := linkedChannels(ctx, q, tenantID)
	if err != nil {
		return nil, err
	}
	var (
		out  []bot.ChannelRules
		seen = map[bot.ChannelRef]int{}
		all  []string
	)
	add := func(ch bot.ChannelRef, isSOC bool) {
		if _, ok := seen[ch]; ok {
			return
		}
		seen[ch] = len(out)
		out = append(out, bot.ChannelRules{Channel: ch, SOC: isSOC})
		all = append(all, string(ch))
	}
	for _, ch := range linked {
		add(ch, false)
	}
	for _, ch := range soc {
		add(ch, true)
	}
	rules, err := rulesOf(ctx, q, all)
	if err != nil {
		return nil, err
	}
	for _, r := range rules {
		i := seen[r.Channel]
		out[i].Rules = append(out[i].Rules, r)
	}
	return out, nil
}
