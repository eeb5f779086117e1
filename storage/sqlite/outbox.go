package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/msspbot/msspbot/bot"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

const deliveryCols = `d.id, d.kind, d.channel, d.tenant_id, COALESCE(d.alert_id, ''), COALESCE(d.digest_id, 0),
	d.ref_id, d.payload, COALESCE(d.message_id, ''), d.state, d.error, d.created_at`

const entryCols = `o.id, o.delivery_id, o.kind, o.text, o.state, o.attempts, o.next_attempt, o.error, o.pass_id, o.created_at`

// itemQuery selects OutboxItems. The root of a digest member is its
// digest's message; an edit covers every live edit of its card.
const itemQuery = `SELECT ` + entryCols + `, ` + deliveryCols + `,
	COALESCE(g.message_id, d.message_id, '') AS root,
	CASE WHEN o.kind = 'edit' THEN (SELECT max(e.id) FROM outbox e
		WHERE e.delivery_id = o.delivery_id AND e.kind = 'edit' AND e.state IN ('pending', 'inflight')) ELSE 0 END
	FROM outbox o
	JOIN deliveries d ON d.id = o.delivery_id
	LEFT JOIN deliveries g ON g.id = d.digest_id`

func scanDelivery(s scanner) (bot.Delivery, error) {
	var (
		d               bot.Delivery
		kind, ch, state string
		payload         []byte
		created         int64
	)
	err := s.Scan(&d.ID, &kind, &ch, &d.TenantID, &d.AlertID, &d.DigestID, &d.RefID, &payload, &d.MessageID,
		&state, &d.Error, &created)
	d.Kind, d.Channel, d.State, d.Payload, d.CreatedAt = bot.DeliveryKind(kind), bot.ChannelRef(ch),
		bot.DeliveryState(state), payload, ft(created)
	return d, err
}

func scanItem(s scanner) (bot.OutboxItem, error) {
	var (
		it                               bot.OutboxItem
		e                                = &it.Entry
		d                                = &it.Delivery
		ekind, estate, dkind, ch, dstate string
		next, ecreated, dcreated         int64
		lastEdit                         sql.NullInt64
	)
	err := s.Scan(&e.ID, &e.DeliveryID, &ekind, &e.Text, &estate, &e.Attempts, &next, &e.Error, &e.PassID, &ecreated,
		&d.ID, &dkind, &ch, &d.TenantID, &d.AlertID, &d.DigestID, &d.RefID, &d.Payload, &d.MessageID,
		&dstate, &d.Error, &dcreated, &it.RootMessageID, &lastEdit)
	e.Kind, e.State, e.NextAttempt, e.CreatedAt = bot.OutboxKind(ekind), bot.OutboxState(estate), ft(next), ft(ecreated)
	d.Kind, d.Channel, d.State, d.CreatedAt = bot.DeliveryKind(dkind), bot.ChannelRef(ch), bot.DeliveryState(dstate), ft(dcreated)
	it.LastEditID = lastEdit.Int64
	return it, err
}

func queryItems(ctx context.Context, q queryer, query string, args ...any) ([]bot.OutboxItem, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []bot.OutboxItem
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

func isUnique(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && (e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
}

// insertDelivery inserts d and returns its id.
func insertDelivery(ctx context.Context, tx *sql.Tx, d bot.Delivery) (int64, error) {
	var alertID any
	if d.Kind == bot.DeliveryAlert {
		alertID = d.AlertID
	}
	var payload any
	if len(d.Payload) > 0 {
		payload = d.Payload
	}
	r, err := tx.ExecContext(ctx, `INSERT INTO deliveries (kind, channel, tenant_id, alert_id, digest_id, ref_id, payload, message_id, state, error, created_at)
		VALUES (?,?,?,?,?,?,?,?,?,?,?)`,
		string(d.Kind), string(d.Channel), d.TenantID, alertID, nullInt(d.DigestID), d.RefID, payload,
		nullStr(d.MessageID), string(d.State), d.Error, tm(d.CreatedAt))
	if err != nil {
		return 0, err
	}
	return r.LastInsertId()
}

// insertEntry queues one outbox entry and returns its id.
func insertEntry(ctx context.Context, tx *sql.Tx, e bot.OutboxEntry) (int64, error) {
	r, err := tx.ExecContext(ctx, `INSERT INTO outbox (delivery_id, kind, text, state, attempts, next_attempt, error, pass_id, created_at)
		VALUES (?,?,?,?,?,?,?,?,?)`,
		e.DeliveryID, string(e.Kind), e.Text, string(e.State), e.Attempts, tm(e.NextAttempt), e.Error, e.PassID, tm(e.CreatedAt))
	if err != nil {
		return 0, err
	}
	return r.LastInsertId()
}

func findDelivery(ctx context.Context, q queryer, id int64) (bot.Delivery, error) {
	d, err := scanDelivery(q.QueryRowContext(ctx, `SELECT `+deliveryCols+` FROM deliveries d WHERE d.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return d, bot.Errorf(bot.ENOTFOUND, "Message %d not found.", id)
	}
	if err != nil {
		return d, fmt.Errorf("sqlite: find delivery: %w", err)
	}
	return d, nil
}

// CreateDelivery implements bot.OutboxStore: d is inserted pending with a
// pending post entry due at once. An alert delivery that exists already for
// the channel is ECONFLICT.
func (db *DB) CreateDelivery(ctx context.Context, d bot.Delivery) (bot.Delivery, error) {
	if d.Kind == "" || !d.Channel.Valid() {
		return d, bot.Errorf(bot.EINVALID, "A message needs a kind and a valid channel.")
	}
	d.TenantID = bot.NormalizeTenantID(d.TenantID)
	d.State, d.MessageID, d.Error = bot.DeliveryPending, "", ""
	if d.CreatedAt.IsZero() {
		d.CreatedAt = db.now()
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return d, fmt.Errorf("sqlite: create delivery: %w", err)
	}
	defer tx.Rollback()
	if d.ID, err = insertDelivery(ctx, tx, d); err != nil {
		if isUnique(err) {
			return d, bot.Errorf(bot.ECONFLICT, "Alert %s already has a card in %s.", d.AlertID, d.Channel)
		}
		return d, fmt.Errorf("sqlite: create delivery: %w", err)
	}
	if _, err := insertEntry(ctx, tx, bot.OutboxEntry{DeliveryID: d.ID, Kind: bot.OutboxPost, State: bot.OutboxPending,
		NextAttempt: d.CreatedAt, CreatedAt: d.CreatedAt}); err != nil {
		return d, fmt.Errorf("sqlite: create delivery: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return d, fmt.Errorf("sqlite: create delivery: %w", err)
	}
	return d, nil
}

// FindDelivery implements bot.OutboxStore.
func (db *DB) FindDelivery(ctx context.Context, id int64) (bot.Delivery, error) {
	return findDelivery(ctx, db.r, id)
}

// FindDeliveryByMessage implements bot.OutboxStore. Digest members share
// their digest's message id; the digest (the message's own delivery) wins.
func (db *DB) FindDeliveryByMessage(ctx context.Context, ch bot.ChannelRef, msgID string) (bot.Delivery, error) {
	if msgID == "" {
		return bot.Delivery{}, bot.Errorf(bot.ENOTFOUND, "Message not found.")
	}
	d, err := scanDelivery(db.r.QueryRowContext(ctx, `SELECT `+deliveryCols+` FROM deliveries d
		WHERE d.channel = ? AND d.message_id = ? ORDER BY d.digest_id IS NOT NULL, d.id LIMIT 1`, string(ch), msgID))
	if errors.Is(err, sql.ErrNoRows) {
		return d, bot.Errorf(bot.ENOTFOUND, "Message not found.")
	}
	if err != nil {
		return d, fmt.Errorf("sqlite: find delivery by message: %w", err)
	}
	return d, nil
}

// DeliveriesOfAlert implements bot.OutboxStore, oldest first.
func (db *DB) DeliveriesOfAlert(ctx context.Context, tenantID, alertID string) ([]bot.Delivery, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+deliveryCols+` FROM deliveries d
		WHERE d.tenant_id = ? AND d.alert_id = ? ORDER BY d.id`, bot.NormalizeTenantID(tenantID), alertID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: deliveries of alert: %w", err)
	}
	defer rows.Close()
	var out []bot.Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: deliveries of alert: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: deliveries of alert: %w", err)
	}
	return out, nil
}

// EditDelivery implements bot.OutboxStore. A delivery that failed or was
// cancelled gets its payload replaced but nothing queued: it has no message.
func (db *DB) EditDelivery(ctx context.Context, id int64, payload []byte, threadText string) error {
	now := db.now()
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: edit delivery: %w", err)
	}
	defer tx.Rollback()
	d, err := findDelivery(ctx, tx, id)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET payload = ? WHERE id = ?`, payload, id); err != nil {
		return fmt.Errorf("sqlite: edit delivery: %w", err)
	}
	if d.State == bot.DeliveryPending || d.State == bot.DeliveryPosted {
		// Due at once (zero next attempt), whatever the caller's clock says.
		if _, err := insertEntry(ctx, tx, bot.OutboxEntry{DeliveryID: id, Kind: bot.OutboxEdit, State: bot.OutboxPending,
			CreatedAt: now}); err != nil {
			return fmt.Errorf("sqlite: edit delivery: %w", err)
		}
		if threadText != "" {
			if _, err := insertEntry(ctx, tx, bot.OutboxEntry{DeliveryID: id, Kind: bot.OutboxThread, Text: threadText,
				State: bot.OutboxPending, CreatedAt: now}); err != nil {
				return fmt.Errorf("sqlite: edit delivery: %w", err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: edit delivery: %w", err)
	}
	return nil
}

// outboxPerChannel caps one channel's share of a NextOutbox call, so a
// channel with a long backlog (a storm, or one held by a rate limit) cannot
// fill the batch while other channels' entries wait.
const outboxPerChannel = 20

// NextOutbox implements bot.OutboxStore. An entry is returned only when
// every earlier entry of its delivery is finished (sent, failed or
// cancelled), so at most one per delivery, in entry order; and at most
// outboxPerChannel of one channel.
func (db *DB) NextOutbox(ctx context.Context, now time.Time, limit int) ([]bot.OutboxItem, error) {
	if limit <= 0 {
		return nil, nil
	}
	items, err := queryItems(ctx, db.r, `WITH ready AS (
		SELECT o.id, ROW_NUMBER() OVER (PARTITION BY d.channel ORDER BY o.id) AS n
		FROM outbox o
		JOIN deliveries d ON d.id = o.delivery_id
		LEFT JOIN deliveries g ON g.id = d.digest_id
		WHERE o.state = 'pending' AND o.next_attempt <= ?
		AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.delivery_id = o.delivery_id AND p.id < o.id
			AND p.state IN ('held', 'pending', 'inflight'))
		AND (o.kind = 'post' OR COALESCE(g.message_id, d.message_id, '') != ''))
		`+itemQuery+`
		JOIN ready r ON r.id = o.id
		WHERE r.n <= ?
		ORDER BY o.id LIMIT ?`, tm(now), outboxPerChannel, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: next outbox: %w", err)
	}
	return items, nil
}

// InFlight implements bot.OutboxStore.
func (db *DB) InFlight(ctx context.Context) ([]bot.OutboxItem, error) {
	items, err := queryItems(ctx, db.r, itemQuery+` WHERE o.state = 'inflight' ORDER BY o.id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: in flight: %w", err)
	}
	return items, nil
}

// entryState returns an entry's kind, delivery and state; ENOTFOUND when missing.
func entryState(ctx context.Context, tx *sql.Tx, id int64) (kind bot.OutboxKind, deliveryID int64, state bot.OutboxState, err error) {
	err = tx.QueryRowContext(ctx, `SELECT kind, delivery_id, state FROM outbox WHERE id = ?`, id).Scan(&kind, &deliveryID, &state)
	if errors.Is(err, sql.ErrNoRows) {
		return kind, 0, state, bot.Errorf(bot.ENOTFOUND, "Outbox entry %d not found.", id)
	}
	return kind, deliveryID, state, err
}

// MarkInFlight implements bot.OutboxStore; it does not count an attempt
// (MarkRetry and MarkFailed do, once the outcome is known). Only a
// pending entry can be taken, so two senders never both get it: ECONFLICT
// otherwise (taken already, or cancelled by offboarding meanwhile). After
// a crash, MarkSent or MarkRetry settle an in-flight entry.
func (db *DB) MarkInFlight(ctx context.Context, entryID int64) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: mark in flight: %w", err)
	}
	defer tx.Rollback()
	_, _, state, err := entryState(ctx, tx, entryID)
	if err != nil {
		return err
	}
	if state != bot.OutboxPending {
		return bot.Errorf(bot.ECONFLICT, "Outbox entry %d is %s.", entryID, state)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE outbox SET state = 'inflight' WHERE id = ?`, entryID); err != nil {
		return fmt.Errorf("sqlite: mark in flight: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: mark in flight: %w", err)
	}
	return nil
}

// MarkSent implements bot.OutboxStore. A post needs the message id: it is
// the root of every later line. A delivery cancelled while its post was in
// flight (unlink, offboard) gets the message id but stays cancelled, so no
// later line or edit reaches the channel.
func (db *DB) MarkSent(ctx context.Context, entryID int64, messageID string, lastEditID int64) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: mark sent: %w", err)
	}
	defer tx.Rollback()
	kind, deliveryID, _, err := entryState(ctx, tx, entryID)
	if err != nil {
		return err
	}
	if kind == bot.OutboxPost && messageID == "" {
		return bot.Errorf(bot.EINVALID, "A sent post needs its message id.")
	}
	steps := []step{{`UPDATE outbox SET state = 'sent', error = '' WHERE id = ?`, []any{entryID}}}
	switch kind {
	case bot.OutboxPost:
		steps = append(steps,
			step{`UPDATE deliveries SET message_id = ?, error = '',
				state = CASE WHEN state = 'cancelled' THEN state ELSE 'posted' END WHERE id = ?`, []any{messageID, deliveryID}},
			// A digest's members thread under the digest's message; a member
			// cancelled meanwhile stays cancelled (as does a failed one).
			step{`UPDATE deliveries SET message_id = ?, state = CASE WHEN state = 'pending' THEN 'posted' ELSE state END
				WHERE digest_id = ?`, []any{messageID, deliveryID}})
	case bot.OutboxEdit:
		steps = append(steps, step{`UPDATE outbox SET state = 'sent', error = '' WHERE delivery_id = ? AND kind = 'edit'
			AND state = 'pending' AND id <= ?`, []any{deliveryID, lastEditID}})
	}
	if err := execSteps(ctx, tx, steps...); err != nil {
		return fmt.Errorf("sqlite: mark sent: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: mark sent: %w", err)
	}
	return nil
}

// MarkRetry implements bot.OutboxStore; attempts grows only when counted.
// An entry finished meanwhile (say, cancelled by offboarding) stays finished.
func (db *DB) MarkRetry(ctx context.Context, entryID int64, next time.Time, reason string, counted bool) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: mark retry: %w", err)
	}
	defer tx.Rollback()
	if _, _, _, err := entryState(ctx, tx, entryID); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE outbox SET state = 'pending', next_attempt = ?, error = ?, attempts = attempts + ?
		WHERE id = ? AND state IN ('pending', 'inflight')`, tm(next), reason, boolInt(counted), entryID); err != nil {
		return fmt.Errorf("sqlite: mark retry: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: mark retry: %w", err)
	}
	return nil
}

// MarkFailed implements bot.OutboxStore and counts the failed attempt. A
// failed digest post also fails its members, whose lines would otherwise
// wait for a root forever.
func (db *DB) MarkFailed(ctx context.Context, entryID int64, reason string) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: mark failed: %w", err)
	}
	defer tx.Rollback()
	kind, deliveryID, _, err := entryState(ctx, tx, entryID)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE outbox SET state = 'failed', error = ?, attempts = attempts + 1 WHERE id = ?`, reason, entryID); err != nil {
		return fmt.Errorf("sqlite: mark failed: %w", err)
	}
	if kind == bot.OutboxPost {
		steps := []string{
			`UPDATE deliveries SET state = 'failed', error = ?1 WHERE id = ?2 OR digest_id = ?2`,
			`UPDATE outbox SET state = 'cancelled' WHERE delivery_id = ?2 AND id > ?3 AND state IN ('held', 'pending', 'inflight')`,
			`UPDATE outbox SET state = 'cancelled' WHERE state IN ('held', 'pending', 'inflight')
				AND delivery_id IN (SELECT id FROM deliveries WHERE digest_id = ?2)`,
		}
		for _, s := range steps {
			if _, err := tx.ExecContext(ctx, s, reason, deliveryID, entryID); err != nil {
				return fmt.Errorf("sqlite: mark failed: %w", err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: mark failed: %w", err)
	}
	return nil
}

// HeldPosts implements bot.OutboxStore; each channel's posts in entry order.
func (db *DB) HeldPosts(ctx context.Context, passID int64, channels ...bot.ChannelRef) (map[bot.ChannelRef][]bot.HeldPost, error) {
	var args []any
	inPass := ""
	if passID != 0 {
		inPass, args = ` AND o.pass_id = ?`, append(args, passID)
	}
	inChannels := ""
	if len(channels) > 0 {
		inChannels = ` AND d.channel IN (` + placeholders(len(channels)) + `)`
		for _, ch := range channels {
			args = append(args, string(ch))
		}
	}
	rows, err := db.r.QueryContext(ctx, `SELECT o.id, d.id, d.channel, d.tenant_id, COALESCE(d.alert_id, ''),
			COALESCE(a.severity, 0), COALESCE(a.title, '')
		FROM outbox o
		JOIN deliveries d ON d.id = o.delivery_id
		LEFT JOIN alerts a ON a.tenant_id = d.tenant_id AND a.id = d.alert_id
		WHERE o.state = 'held' AND o.kind = 'post'`+inPass+inChannels+`
		ORDER BY o.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: held posts: %w", err)
	}
	defer rows.Close()
	out := map[bot.ChannelRef][]bot.HeldPost{}
	for rows.Next() {
		var (
			h   bot.HeldPost
			ch  string
			sev int64
		)
		if err := rows.Scan(&h.EntryID, &h.DeliveryID, &ch, &h.TenantID, &h.AlertID, &sev, &h.Title); err != nil {
			return nil, fmt.Errorf("sqlite: held posts: %w", err)
		}
		h.Severity = bot.Severity(sev)
		out[bot.ChannelRef(ch)] = append(out[bot.ChannelRef(ch)], h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: held posts: %w", err)
	}
	return out, nil
}

// CreateDigest implements bot.OutboxStore. Members must be alert
// deliveries of d's channel not in a digest yet, else EINVALID (ENOTFOUND
// for a missing one) and nothing changes. A member whose post is no longer
// held or pending (posted, or cancelled by an unlink or offboarding since
// the pass listed it) is left out; when no member is left, ECONFLICT and
// nothing is stored. Members' queued edits are cancelled: a member has no
// card of its own, and an edit would replace the digest's message.
func (db *DB) CreateDigest(ctx context.Context, d bot.Delivery, lines map[int64]string) (bot.Delivery, error) {
	if !d.Channel.Valid() {
		return d, bot.Errorf(bot.EINVALID, "A digest needs a valid channel.")
	}
	d.Kind, d.State, d.MessageID, d.Error, d.DigestID, d.AlertID = bot.DeliveryDigest, bot.DeliveryPending, "", "", 0, ""
	d.TenantID = bot.NormalizeTenantID(d.TenantID)
	if d.CreatedAt.IsZero() {
		d.CreatedAt = db.now()
	}
	now := d.CreatedAt
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return d, fmt.Errorf("sqlite: create digest: %w", err)
	}
	defer tx.Rollback()
	if d.ID, err = insertDelivery(ctx, tx, d); err != nil {
		return d, fmt.Errorf("sqlite: create digest: %w", err)
	}
	if _, err := insertEntry(ctx, tx, bot.OutboxEntry{DeliveryID: d.ID, Kind: bot.OutboxPost, State: bot.OutboxPending,
		NextAttempt: now, CreatedAt: now}); err != nil {
		return d, fmt.Errorf("sqlite: create digest: %w", err)
	}
	ids := make([]int64, 0, len(lines))
	for id := range lines {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	joined := 0
	for _, id := range ids {
		m, err := findDelivery(ctx, tx, id)
		if err != nil {
			return d, err
		}
		if m.Kind != bot.DeliveryAlert || m.Channel != d.Channel || m.DigestID != 0 {
			return d, bot.Errorf(bot.EINVALID, "Message %d cannot join a digest in %s.", id, d.Channel)
		}
		if m.State != bot.DeliveryPending {
			continue // cancelled (or failed) meanwhile
		}
		r, err := tx.ExecContext(ctx, `UPDATE outbox SET state = 'cancelled'
			WHERE delivery_id = ? AND kind = 'post' AND state IN ('held', 'pending')`, id)
		if err != nil {
			return d, fmt.Errorf("sqlite: create digest: %w", err)
		}
		if n, err := r.RowsAffected(); err != nil {
			return d, fmt.Errorf("sqlite: create digest: %w", err)
		} else if n == 0 {
			continue // its post is on its way or sent: it keeps its card
		}
		if _, err := tx.ExecContext(ctx, `UPDATE outbox SET state = 'cancelled'
			WHERE delivery_id = ? AND kind = 'edit' AND state IN ('held', 'pending')`, id); err != nil {
			return d, fmt.Errorf("sqlite: create digest: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET digest_id = ? WHERE id = ?`, d.ID, id); err != nil {
			return d, fmt.Errorf("sqlite: create digest: %w", err)
		}
		if _, err := insertEntry(ctx, tx, bot.OutboxEntry{DeliveryID: id, Kind: bot.OutboxThread, Text: lines[id],
			State: bot.OutboxPending, NextAttempt: now, CreatedAt: now}); err != nil {
			return d, fmt.Errorf("sqlite: create digest: %w", err)
		}
		joined++
	}
	if joined == 0 {
		d.ID = 0
		return d, bot.Errorf(bot.ECONFLICT, "None of the messages for a digest in %s is still waiting to be posted.", d.Channel)
	}
	if err := tx.Commit(); err != nil {
		return d, fmt.Errorf("sqlite: create digest: %w", err)
	}
	return d, nil
}

// ReleaseHeld implements bot.OutboxStore.
func (db *DB) ReleaseHeld(ctx context.Context, passID int64, channels ...bot.ChannelRef) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: release held: %w", err)
	}
	defer tx.Rollback()
	query, args := `UPDATE outbox SET state = 'pending' WHERE state = 'held'`, []any{}
	if passID != 0 {
		query, args = query+` AND pass_id = ?`, append(args, passID)
	}
	if len(channels) > 0 {
		query += ` AND delivery_id IN (SELECT id FROM deliveries WHERE channel IN (` + placeholders(len(channels)) + `))`
		for _, ch := range channels {
			args = append(args, string(ch))
		}
	}
	if _, err := tx.ExecContext(ctx, query, args...); err != nil {
		return fmt.Errorf("sqlite: release held: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: release held: %w", err)
	}
	return nil
}

// RecordChannelFailure implements bot.OutboxStore; a repeated failure
// updates the reason and keeps the first time.
func (db *DB) RecordChannelFailure(ctx context.Context, ch bot.ChannelRef, reason string, now time.Time) (bool, error) {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("sqlite: record channel failure: %w", err)
	}
	defer tx.Rollback()
	r, err := tx.ExecContext(ctx, `INSERT INTO channel_failures (channel, reason, since) VALUES (?, ?, ?)
		ON CONFLICT (channel) DO NOTHING`, string(ch), reason, tm(now))
	if err != nil {
		return false, fmt.Errorf("sqlite: record channel failure: %w", err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("sqlite: record channel failure: %w", err)
	}
	if n == 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE channel_failures SET reason = ? WHERE channel = ?`, reason, string(ch)); err != nil {
			return false, fmt.Errorf("sqlite: record channel failure: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("sqlite: record channel failure: %w", err)
	}
	return n == 1, nil
}

// ClearChannelFailure implements bot.OutboxStore; clearing a channel that
// has no failure is not an error.
func (db *DB) ClearChannelFailure(ctx context.Context, ch bot.ChannelRef) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: clear channel failure: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM channel_failures WHERE channel = ?`, string(ch)); err != nil {
		return fmt.Errorf("sqlite: clear channel failure: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: clear channel failure: %w", err)
	}
	return nil
}

// ChannelFailures implements bot.OutboxStore, oldest first.
func (db *DB) ChannelFailures(ctx context.Context) ([]bot.ChannelFailure, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT channel, reason, since FROM channel_failures ORDER BY since, channel`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: channel failures: %w", err)
	}
	defer rows.Close()
	var out []bot.ChannelFailure
	for rows.Next() {
		var (
			f     bot.ChannelFailure
			ch    string
			since int64
		)
		if err := rows.Scan(&ch, &f.Reason, &since); err != nil {
			return nil, fmt.Errorf("sqlite: channel failures: %w", err)
		}
		f.Channel, f.Since = bot.ChannelRef(ch), ft(since)
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: channel failures: %w", err)
	}
	return out, nil
}

// OutboxCounts implements bot.OutboxStore.
// Sent and cancelled entries are not counted: they pile up until the
// retention purge, and a metrics scrape must stay cheap.
func (db *DB) OutboxCounts(ctx context.Context) ([]bot.OutboxCount, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT substr(d.channel, 1, instr(d.channel, ':') - 1), o.state, count(*)
		FROM outbox o JOIN deliveries d ON d.id = o.delivery_id
		WHERE o.state IN ('held', 'pending', 'inflight', 'failed')
		GROUP BY 1, 2 ORDER BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: outbox counts: %w", err)
	}
	defer rows.Close()
	var out []bot.OutboxCount
	for rows.Next() {
		var c bot.OutboxCount
		if err := rows.Scan(&c.Platform, &c.State, &c.N); err != nil {
			return nil, fmt.Errorf("sqlite: outbox counts: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: outbox counts: %w", err)
	}
	return out, nil
}
