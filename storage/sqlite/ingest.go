package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/msspbot/msspbot/bot"
)

// deliveryRef is what ingest needs of an existing delivery.
type deliveryRef struct {
	id       int64
	channel  bot.ChannelRef
	digestID int64
	state    bot.DeliveryState
}

// live reports whether the delivery has (or will have) a message to reply under.
func (d deliveryRef) live() bool {
	return d.state == bot.DeliveryPending || d.state == bot.DeliveryPosted
}

// ingestState is what one batch reads before planning.
type ingestState struct {
	prev       map[string]*bot.Alert
	pending    map[string][]bot.WriteBack
	deliveries map[string][]deliveryRef
	channels   []bot.ChannelRules
	repeats    map[string]bool // ids that occur more than once in the batch
	notify     bool            // false: store only (a revoked tenant)
}

// Ingest implements bot.AlertStore (see bot.IngestBatch). A revoked
// tenant's alerts are stored but queue nothing: its cards are withdrawn;
// and b.Tenant never changes its state. b.Tenant.IfState, unlike in
// UpdateTenant, only skips the state change, not the ingest.
// ENOTFOUND when the tenant does not exist.
func (db *DB) Ingest(ctx context.Context, b bot.IngestBatch) (bot.IngestResult, error) {
	var res bot.IngestResult
	if b.Plan == nil {
		return res, bot.Errorf(bot.EINVALID, "Ingest needs a plan.")
	}
	tenantID := bot.NormalizeTenantID(b.TenantID)
	now := b.Now
	if now.IsZero() {
		now = db.now()
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return res, fmt.Errorf("sqlite: ingest: %w", err)
	}
	defer tx.Rollback()

	t, err := findTenant(ctx, tx, tenantID)
	if err != nil {
		return res, err
	}
	st, err := loadIngestState(ctx, tx, tenantID, b.Alerts, b.SOC, t.State != bot.TenantRevoked)
	if err != nil {
		return res, fmt.Errorf("sqlite: ingest %s: %w", tenantID, err)
	}
	if res, err = writeIngest(ctx, tx, tenantID, b, now, st); err != nil {
		return res, fmt.Errorf("sqlite: ingest %s: %w", tenantID, err)
	}
	var upd bot.TenantUpdate
	if b.Tenant != nil {
		upd = *b.Tenant
	}
	// The fetch began before this transaction: an offboarding (or another
	// state change, per IfState) since then wins over the fetch's outcome,
	// which is still recorded.
	if t.State == bot.TenantRevoked || (upd.IfState != nil && t.State != *upd.IfState) {
		upd.State, upd.ActivatedAt = nil, nil
	}
	sets, args := tenantSets(upd)
	if !b.Watermark.IsZero() {
		sets, args = append(sets, "watermark = ?"), append(args, tm(b.Watermark))
	}
	if len(sets) > 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE tenants SET `+strings.Join(sets, ", ")+` WHERE id = ?`, append(args, tenantID)...); err != nil {
			return res, fmt.Errorf("sqlite: ingest %s: update tenant: %w", tenantID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return res, fmt.Errorf("sqlite: ingest %s: %w", tenantID, err)
	}
	return res, nil
}

// loadIngestState reads, for the batch's alerts, the stored versions, the
// pending write-backs and the existing deliveries; and the channels that
// may receive them (none when notify is false).
func loadIngestState(ctx context.Context, tx *sql.Tx, tenantID string, alerts []bot.Alert, soc []bot.ChannelRef, notify bool) (*ingestState, error) {
	st := &ingestState{
		prev:       make(map[string]*bot.Alert),
		pending:    make(map[string][]bot.WriteBack),
		deliveries: make(map[string][]deliveryRef),
		repeats:    make(map[string]bool),
		notify:     notify,
	}
	seen := make(map[string]bool, len(alerts))
	ids := make([]string, 0, len(alerts))
	for i := range alerts {
		id := alerts[i].ID
		if seen[id] {
			st.repeats[id] = true
			continue
		}
		seen[id] = true
		ids = append(ids, id)
	}
	for _, chunk := range chunks(ids) {
		args := make([]any, 0, len(chunk)+1)
		args = append(args, tenantID)
		for _, id := range chunk {
			args = append(args, id)
		}
		in := `(` + placeholders(len(chunk)) + `)`
		got, err := queryAlerts(ctx, tx, `SELECT `+alertCols+` FROM alerts WHERE tenant_id = ? AND id IN `+in, args...)
		if err != nil {
			return nil, fmt.Errorf("load alerts: %w", err)
		}
		for i := range got {
			st.prev[got[i].ID] = &got[i]
		}
		if err := loadDeliveries(ctx, tx, st.deliveries, `SELECT id, alert_id, channel, COALESCE(digest_id, 0), state
			FROM deliveries WHERE tenant_id = ? AND alert_id IN `+in+` ORDER BY id`, args); err != nil {
			return nil, fmt.Errorf("load deliveries: %w", err)
		}
	}
	wbs, err := pendingWriteBacks(ctx, tx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("load write-backs: %w", err)
	}
	for _, w := range wbs {
		if seen[w.AlertID] {
			st.pending[w.AlertID] = append(st.pending[w.AlertID], w)
		}
	}
	if notify {
		if st.channels, err = channelRules(ctx, tx, tenantID, soc); err != nil {
			return nil, fmt.Errorf("load channels: %w", err)
		}
	}
	return st, nil
}

func loadDeliveries(ctx context.Context, tx *sql.Tx, into map[string][]deliveryRef, query string, args []any) error {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			d              deliveryRef
			alertID, ch, s string
		)
		if err := rows.Scan(&d.id, &alertID, &ch, &d.digestID, &s); err != nil {
			return err
		}
		d.channel, d.state = bot.ChannelRef(ch), bot.DeliveryState(s)
		into[alertID] = append(into[alertID], d)
	}
	return rows.Err()
}

// Rows per multi-row INSERT: round trips through database/sql cost more
// than the b-tree work, so the batch's rows go in chunks.
const (
	alertChunk    = 16  // × alertColCount values
	deliveryChunk = 100 // × 5 columns
)

// ingestWriter writes one batch. New deliveries get their ids here: the
// transaction holds the write lock, so ids above both the largest and the
// largest ever used (AUTOINCREMENT) are free. That lets them
// go in multi-row INSERTs and their post entries in one INSERT … SELECT.
type ingestWriter struct {
	tx                  *sql.Tx
	ctx                 context.Context
	upsert, entry, bulk *sql.Stmt
	tenantID            string
	nowNS               int64
	firstID, nextID     int64 // this batch's deliveries are ids > firstID
	alerts, deliveries  []any // buffered rows
	later               []any // thread/edit entries of this batch's own deliveries, after their posts
}

func newIngestWriter(ctx context.Context, tx *sql.Tx, tenantID string, now time.Time) (*ingestWriter, error) {
	w := &ingestWriter{tx: tx, ctx: ctx, tenantID: tenantID, nowNS: tm(now)}
	if err := tx.QueryRowContext(ctx, `SELECT max(COALESCE((SELECT max(id) FROM deliveries), 0),
		COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'deliveries'), 0))`).Scan(&w.firstID); err != nil {
		return nil, err
	}
	w.nextID = w.firstID
	var err error
	if w.upsert, err = tx.PrepareContext(ctx, alertUpsertRows(alertChunk)); err != nil {
		return nil, err
	}
	if w.entry, err = tx.PrepareContext(ctx, `INSERT INTO outbox (delivery_id, kind, text, state, next_attempt, created_at)
		VALUES (?, ?, ?, 'pending', ?, ?)`); err != nil {
		w.close()
		return nil, err
	}
	if w.bulk, err = tx.PrepareContext(ctx, deliveryInsert(deliveryChunk)); err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

// alertUpsertRows is the multi-row upsert of n alerts (ingest).
func alertUpsertRows(n int) string {
	values := strings.TrimSuffix(strings.Repeat(alertRow+`,`, n), `,`)
	return alertInsertPrefix + values + alertUpsertSuffix
}

// deliveryInsert inserts n alert deliveries of (id, channel, tenant, alert, created).
func deliveryInsert(n int) string {
	const row = `(?, 'alert', ?, ?, ?, 'pending', ?)`
	return `INSERT INTO deliveries (id, kind, channel, tenant_id, alert_id, state, created_at) VALUES ` +
		strings.TrimSuffix(strings.Repeat(row+`,`, n), `,`)
}

func (w *ingestWriter) close() {
	for _, s := range []*sql.Stmt{w.upsert, w.entry, w.bulk} {
		if s != nil {
			s.Close()
		}
	}
}

// store buffers one alert's row.
func (w *ingestWriter) store(a *bot.Alert) error {
	args, err := alertArgs(a)
	if err != nil {
		return err
	}
	w.alerts = append(w.alerts, args...)
	if len(w.alerts) == alertColCount*alertChunk {
		return w.flushAlerts()
	}
	return nil
}

func (w *ingestWriter) flushAlerts() error {
	var err error
	switch n := len(w.alerts) / alertColCount; n {
	case 0:
		return nil
	case alertChunk:
		_, err = w.upsert.ExecContext(w.ctx, w.alerts...)
	default:
		_, err = w.tx.ExecContext(w.ctx, alertUpsertRows(n), w.alerts...)
	}
	if err != nil {
		return fmt.Errorf("upsert alerts: %w", err)
	}
	w.alerts = w.alerts[:0]
	return nil
}

// queue adds a thread or edit entry for delivery id.
func (w *ingestWriter) queue(id int64, kind bot.OutboxKind, text string) error {
	if id > w.firstID { // its post is not written yet
		w.later = append(w.later, id, string(kind), text)
		return nil
	}
	_, err := w.entry.ExecContext(w.ctx, id, string(kind), text, w.nowNS, w.nowNS)
	return err
}

// deliver creates a delivery of alertID in ch and returns its id.
func (w *ingestWriter) deliver(ch bot.ChannelRef, alertID string) (int64, error) {
	w.nextID++
	w.deliveries = append(w.deliveries, w.nextID, string(ch), w.tenantID, alertID, w.nowNS)
	if len(w.deliveries) == 5*deliveryChunk {
		if _, err := w.bulk.ExecContext(w.ctx, w.deliveries...); err != nil {
			return 0, err
		}
		w.deliveries = w.deliveries[:0]
	}
	return w.nextID, nil
}

// finish writes the buffered rows, a post entry for each of the batch's
// deliveries, then the entries that must follow those posts.
func (w *ingestWriter) finish(postState bot.OutboxState, passID int64) error {
	if err := w.flushAlerts(); err != nil {
		return err
	}
	if len(w.deliveries) > 0 {
		if _, err := w.tx.ExecContext(w.ctx, deliveryInsert(len(w.deliveries)/5), w.deliveries...); err != nil {
			return fmt.Errorf("create deliveries: %w", err)
		}
		w.deliveries = w.deliveries[:0]
	}
	if w.nextID == w.firstID {
		return nil
	}
	if _, err := w.tx.ExecContext(w.ctx, `INSERT INTO outbox (delivery_id, kind, state, next_attempt, pass_id, created_at)
		SELECT id, 'post', ?, ?, ?, ? FROM deliveries WHERE id > ? ORDER BY id`,
		string(postState), w.nowNS, passID, w.nowNS, w.firstID); err != nil {
		return fmt.Errorf("queue posts: %w", err)
	}
	for i := 0; i < len(w.later); i += 3 {
		if _, err := w.entry.ExecContext(w.ctx, w.later[i], w.later[i+1], w.later[i+2], w.nowNS, w.nowNS); err != nil {
			return fmt.Errorf("queue thread line: %w", err)
		}
	}
	return nil
}

// writeIngest plans and writes every alert of the batch.
func writeIngest(ctx context.Context, tx *sql.Tx, tenantID string, b bot.IngestBatch, now time.Time, st *ingestState) (bot.IngestResult, error) {
	var res bot.IngestResult
	// Per-row statements run without the caller's cancellation, which costs
	// the driver a goroutine per statement; the transaction still ends when
	// ctx does, and the loop checks ctx itself.
	w, err := newIngestWriter(context.WithoutCancel(ctx), tx, tenantID, now)
	if err != nil {
		return res, fmt.Errorf("prepare: %w", err)
	}
	defer w.close()

	for i := range b.Alerts {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return res, err
			}
		}
		next := b.Alerts[i]
		next.TenantID = tenantID
		repeat := st.repeats[next.ID]
		if repeat {
			// Its earlier row must be written before this one replaces it.
			if err := w.flushAlerts(); err != nil {
				return res, err
			}
		}
		existing := st.deliveries[next.ID]
		var delivered map[bot.ChannelRef]bool
		if len(existing) > 0 {
			delivered = make(map[bot.ChannelRef]bool, len(existing))
			for _, d := range existing {
				delivered[d.channel] = true
			}
		}
		out := b.Plan(bot.PlanInput{
			Prev:      st.prev[next.ID],
			Next:      next,
			Pending:   st.pending[next.ID],
			Delivered: delivered,
			Channels:  st.channels,
		})
		stored := out.Store
		stored.TenantID, stored.ID = tenantID, next.ID // the plan cannot move an alert
		// A byte-identical re-fetch (the overlap window) needs no write.
		if prev := st.prev[next.ID]; repeat || out.Change != bot.ChangeUnchanged || prev == nil ||
			!prev.LastUpdatedAt.Equal(stored.LastUpdatedAt) || !bytes.Equal(prev.Raw, stored.Raw) {
			if err := w.store(&stored); err != nil {
				return res, err
			}
		}
		switch out.Change {
		case bot.ChangeNew:
			res.New++
		case bot.ChangeChanged:
			res.Changed++
		default:
			res.Unchanged++
		}
		if repeat {
			st.prev[next.ID] = &stored
		}
		if !st.notify {
			continue
		}

		for _, d := range existing {
			if !d.live() {
				continue
			}
			if out.ThreadText != "" {
				if err := w.queue(d.id, bot.OutboxThread, out.ThreadText); err != nil {
					return res, fmt.Errorf("queue thread line: %w", err)
				}
			}
			if out.Edit && d.digestID == 0 {
				if err := w.queue(d.id, bot.OutboxEdit, ""); err != nil {
					return res, fmt.Errorf("queue edit: %w", err)
				}
			}
		}

		for j, ch := range out.NewChannels {
			if delivered[ch] || slices.Contains(out.NewChannels[:j], ch) {
				continue // one card per channel, whatever the plan says
			}
			id, err := w.deliver(ch, next.ID)
			if err != nil {
				return res, fmt.Errorf("create delivery: %w", err)
			}
			res.Deliveries++
			if repeat { // its next occurrence must see this card
				st.deliveries[next.ID] = append(st.deliveries[next.ID],
					deliveryRef{id: id, channel: ch, state: bot.DeliveryPending})
			}
		}
	}
	postState := bot.OutboxPending
	if b.Hold {
		postState = bot.OutboxHeld
	}
	if err := w.finish(postState, b.PassID); err != nil {
		return res, err
	}
	return res, nil
}
