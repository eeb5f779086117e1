package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/msspbot/msspbot/bot"
)

const alertCols = `tenant_id, id, title, description, severity, status, classification, determination,
	assigned_to, category, detection_source, service_source, device_name, device_id, device_group,
	user_name, incident_id, incident_url, mitre, evidence, portal_url, created_at, last_updated_at,
	resolved_at, raw, changed_by`

// alertColCount is how many values one alert row takes.
var alertColCount = strings.Count(alertCols, ",") + 1

// alertInsert inserts one alert (the raw-insert benchmark's statement);
// ingest upserts rows with alertUpsertRows.
const (
	alertInsertPrefix = `INSERT INTO alerts (` + alertCols + `) VALUES `
	alertUpsertSuffix = ` ON CONFLICT (tenant_id, id) DO UPDATE SET
	title = excluded.title, description = excluded.description, severity = excluded.severity,
	status = excluded.status, classification = excluded.classification,
	determination = excluded.determination, assigned_to = excluded.assigned_to,
	category = excluded.category, detection_source = excluded.detection_source,
	service_source = excluded.service_source, device_name = excluded.device_name,
	device_id = excluded.device_id, device_group = excluded.device_group,
	user_name = excluded.user_name, incident_id = excluded.incident_id,
	incident_url = excluded.incident_url, mitre = excluded.mitre, evidence = excluded.evidence,
	portal_url = excluded.portal_url, created_at = excluded.created_at,
	last_updated_at = excluded.last_updated_at, resolved_at = excluded.resolved_at, raw = excluded.raw,
	changed_by = excluded.changed_by`
)

var (
	alertRow    = `(` + placeholders(alertColCount) + `)`
	alertInsert = alertInsertPrefix + alertRow
)

// evidenceJSON fixes the stored JSON names of bot.Evidence.
type evidenceJSON struct {
	Type    string `json:"type,omitempty"`
	Name    string `json:"name,omitempty"`
	Verdict string `json:"verdict,omitempty"`
	Group   string `json:"group,omitempty"`
}

// alertArgs returns the values for alertCols, in order.
func alertArgs(a *bot.Alert) ([]any, error) {
	var mitre, evidence any
	if len(a.MitreTechniques) > 0 {
		b, err := json.Marshal(a.MitreTechniques)
		if err != nil {
			return nil, fmt.Errorf("encode mitre techniques: %w", err)
		}
		mitre = string(b)
	}
	if len(a.Evidence) > 0 {
		ev := make([]evidenceJSON, len(a.Evidence))
		for i, e := range a.Evidence {
			ev[i] = evidenceJSON(e)
		}
		b, err := json.Marshal(ev)
		if err != nil {
			return nil, fmt.Errorf("encode evidence: %w", err)
		}
		evidence = string(b)
	}
	var raw any
	if len(a.Raw) > 0 {
		raw = a.Raw
	}
	return []any{
		a.TenantID, a.ID, a.Title, a.Description, int64(a.Severity), string(a.Status),
		string(a.Classification), a.Determination, a.AssignedTo, a.Category, a.DetectionSource,
		a.ServiceSource, a.DeviceName, a.DeviceID, a.DeviceGroup, a.UserName, a.IncidentID,
		a.IncidentURL, mitre, evidence, a.PortalURL, tm(a.CreatedAt), tm(a.LastUpdatedAt),
		tm(a.ResolvedAt), raw, a.ChangedBy,
	}, nil
}

func scanAlert(s scanner) (bot.Alert, error) {
	var (
		a                          bot.Alert
		sev                        int64
		status, class              string
		mitre, evidence            sql.NullString
		created, updated, resolved int64
	)
	err := s.Scan(&a.TenantID, &a.ID, &a.Title, &a.Description, &sev, &status, &class, &a.Determination,
		&a.AssignedTo, &a.Category, &a.DetectionSource, &a.ServiceSource, &a.DeviceName, &a.DeviceID,
		&a.DeviceGroup, &a.UserName, &a.IncidentID, &a.IncidentURL, &mitre, &evidence, &a.PortalURL,
		&created, &updated, &resolved, &a.Raw, &a.ChangedBy)
	if err != nil {
		return a, err
	}
	a.Severity, a.Status, a.Classification = bot.Severity(sev), bot.AlertStatus(status), bot.Classification(class)
	a.CreatedAt, a.LastUpdatedAt, a.ResolvedAt = ft(created), ft(updated), ft(resolved)
	if mitre.Valid && mitre.String != "" {
		if err := json.Unmarshal([]byte(mitre.String), &a.MitreTechniques); err != nil {
			return a, fmt.Errorf("decode mitre techniques of %s: %w", a.ID, err)
		}
	}
	if evidence.Valid && evidence.String != "" {
		var ev []evidenceJSON
		if err := json.Unmarshal([]byte(evidence.String), &ev); err != nil {
			return a, fmt.Errorf("decode evidence of %s: %w", a.ID, err)
		}
		a.Evidence = make([]bot.Evidence, len(ev))
		for i, e := range ev {
			a.Evidence[i] = bot.Evidence(e)
		}
	}
	return a, nil
}

func findAlert(ctx context.Context, q queryer, tenantID, alertID string) (bot.Alert, error) {
	a, err := scanAlert(q.QueryRowContext(ctx, `SELECT `+alertCols+` FROM alerts WHERE tenant_id = ? AND id = ?`, tenantID, alertID))
	if errors.Is(err, sql.ErrNoRows) {
		// The same words whether the alert is missing or another tenant's.
		return a, bot.Errorf(bot.ENOTFOUND, "Alert %s not found.", alertID)
	}
	if err != nil {
		return a, fmt.Errorf("sqlite: find alert: %w", err)
	}
	return a, nil
}

// FindAlert implements bot.AlertStore.
func (db *DB) FindAlert(ctx context.Context, tenantID, alertID string) (bot.Alert, error) {
	return findAlert(ctx, db.r, bot.NormalizeTenantID(tenantID), alertID)
}

// FindAlertsByID implements bot.AlertStore; no tenants means no alerts.
func (db *DB) FindAlertsByID(ctx context.Context, alertID string, tenantIDs []string) ([]bot.Alert, error) {
	var out []bot.Alert
	for _, chunk := range chunks(normTenants(tenantIDs)) {
		args := []any{alertID}
		for _, t := range chunk {
			args = append(args, t)
		}
		got, err := queryAlerts(ctx, db.r, `SELECT `+alertCols+` FROM alerts WHERE id = ? AND tenant_id IN (`+
			placeholders(len(chunk))+`) ORDER BY tenant_id`, args...)
		if err != nil {
			return nil, fmt.Errorf("sqlite: find alerts by id: %w", err)
		}
		out = append(out, got...)
	}
	return out, nil
}

func queryAlerts(ctx context.Context, q queryer, query string, args ...any) ([]bot.Alert, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []bot.Alert
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// FindAlerts implements bot.AlertStore. Only alerts of f.TenantIDs are
// returned (none when it is empty); Limit defaults to 20; total counts at
// most CountCap matches.
func (db *DB) FindAlerts(ctx context.Context, f bot.AlertFilter) ([]bot.Alert, int, error) {
	tenants := normTenants(f.TenantIDs)
	if len(tenants) == 0 {
		return nil, 0, nil
	}
	if len(tenants) > 30000 {
		return nil, 0, bot.Errorf(bot.EINVALID, "Too many tenants in one query.")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	var (
		from  = `alerts`
		where strings.Builder
		args  []any
	)
	if len(tenants) > openIndexTenants && onlyOpen(f.Statuses) {
		// Many tenants (a SOC channel): walk the open alerts newest
		// first and stop after a page. The literal term lets SQLite use
		// the partial index; INDEXED BY fails loudly if it ever cannot.
		from = `alerts INDEXED BY alerts_open`
		where.WriteString(`status IN ('New', 'InProgress') AND `)
	}
	if len(tenants) > openIndexTenants {
		// One JSON parameter instead of a thousand placeholders, whose
		// parsing cost more than the query itself.
		ids, err := json.Marshal(tenants)
		if err != nil {
			return nil, 0, fmt.Errorf("sqlite: find alerts: %w", err)
		}
		where.WriteString(`tenant_id IN (SELECT value FROM json_each(?))`)
		args = append(args, string(ids))
	} else {
		where.WriteString(`tenant_id IN (` + placeholders(len(tenants)) + `)`)
		for _, t := range tenants {
			args = append(args, t)
		}
	}
	if len(f.Statuses) > 0 {
		where.WriteString(` AND status IN (` + placeholders(len(f.Statuses)) + `)`)
		for _, s := range f.Statuses {
			args = append(args, string(s))
		}
	}
	if f.MinSeverity > bot.SeverityUnspecified {
		where.WriteString(` AND severity >= ?`)
		args = append(args, int64(f.MinSeverity))
	}

	// One read transaction: the page and its count see the same snapshot.
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite: find alerts: %w", err)
	}
	defer tx.Rollback()
	alerts, err := queryAlerts(ctx, tx, `SELECT `+alertCols+` FROM `+from+` WHERE `+where.String()+
		` ORDER BY created_at DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite: find alerts: %w", err)
	}
	total := len(alerts)
	if total >= limit {
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM `+from+` WHERE `+where.String()+
			` LIMIT ?)`, append(args, CountCap)...).Scan(&total); err != nil {
			return nil, 0, fmt.Errorf("sqlite: count alerts: %w", err)
		}
	}
	return alerts, total, nil
}

// openIndexTenants is the tenant count above which an open-alerts query
// walks alerts_open instead of each tenant's alerts_list entries.
const openIndexTenants = 16

// onlyOpen reports whether statuses asks for open alerts only.
func onlyOpen(statuses []bot.AlertStatus) bool {
	if len(statuses) == 0 {
		return false
	}
	for _, s := range statuses {
		if s != bot.StatusNew && s != bot.StatusInProgress {
			return false
		}
	}
	return true
}

// RecordAction implements bot.AlertStore.
func (db *DB) RecordAction(ctx context.Context, a bot.Action) error {
	a.TenantID = bot.NormalizeTenantID(a.TenantID)
	if a.Now.IsZero() {
		a.Now = db.now()
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: record action: %w", err)
	}
	defer tx.Rollback()

	if err := updateAlert(ctx, tx, a.TenantID, a.AlertID, a.Update); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE alerts SET local_updated_at = ? WHERE tenant_id = ? AND id = ?`,
		tm(a.Now), a.TenantID, a.AlertID); err != nil {
		return fmt.Errorf("sqlite: record action: %w", err)
	}
	if a.WriteBack != nil {
		wb := *a.WriteBack
		wb.TenantID, wb.AlertID = a.TenantID, a.AlertID
		wb.State, wb.NextAttempt = bot.WriteBackPending, a.Now
		if wb.CreatedAt.IsZero() {
			wb.CreatedAt = a.Now
		}
		if _, err := insertWriteBack(ctx, tx, wb); err != nil {
			return fmt.Errorf("sqlite: record action: %w", err)
		}
	}
	if err := queueAlertUpdate(ctx, tx, a.TenantID, a.AlertID, a.ThreadText, true, a.Now); err != nil {
		return fmt.Errorf("sqlite: record action: %w", err)
	}
	e := a.Audit
	if e.Time.IsZero() {
		e.Time = a.Now
	}
	if e.TenantID == "" {
		e.TenantID = a.TenantID
	}
	if err := insertAudit(ctx, tx, e); err != nil {
		return fmt.Errorf("sqlite: record action: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: record action: %w", err)
	}
	return nil
}

// updateAlert applies the set fields of upd; ENOTFOUND when the alert is
// not the tenant's.
func updateAlert(ctx context.Context, tx *sql.Tx, tenantID, alertID string, upd bot.AlertUpdate) error {
	sets := []string{"tenant_id = tenant_id"} // keeps the statement valid when nothing is set
	var args []any
	if upd.Status != nil {
		sets = append(sets, "status = ?")
		args = append(args, string(*upd.Status))
	}
	if upd.AssignedTo != nil {
		sets = append(sets, "assigned_to = ?")
		args = append(args, *upd.AssignedTo)
	}
	if upd.Classification != nil {
		sets = append(sets, "classification = ?")
		args = append(args, string(*upd.Classification))
	}
	if upd.Determination != nil {
		sets = append(sets, "determination = ?")
		args = append(args, *upd.Determination)
	}
	if upd.ChangedBy != nil {
		sets = append(sets, "changed_by = ?")
		args = append(args, *upd.ChangedBy)
	}
	r, err := tx.ExecContext(ctx, `UPDATE alerts SET `+strings.Join(sets, ", ")+` WHERE tenant_id = ? AND id = ?`,
		append(args, tenantID, alertID)...)
	if err != nil {
		return fmt.Errorf("sqlite: update alert: %w", err)
	}
	if n, err := r.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: update alert: %w", err)
	} else if n == 0 {
		return bot.Errorf(bot.ENOTFOUND, "Alert %s not found.", alertID)
	}
	return nil
}

// queueAlertUpdate adds a thread entry (when text is set) to every live
// delivery of the alert and, when edit, an edit entry to every live card
// outside a digest. Failed and cancelled deliveries have no root to reply
// under, so they get nothing. Entries are due at once (next_attempt 0):
// the caller's clock must not delay them.
func queueAlertUpdate(ctx context.Context, tx *sql.Tx, tenantID, alertID, text string, edit bool, now time.Time) error {
	n := tm(now)
	if text != "" {
		if _, err := tx.ExecContext(ctx, `INSERT INTO outbox (delivery_id, kind, text, state, next_attempt, created_at)
			SELECT id, 'thread', ?, 'pending', 0, ? FROM deliveries
			WHERE tenant_id = ? AND alert_id = ? AND state IN ('pending', 'posted') ORDER BY id`,
			text, n, tenantID, alertID); err != nil {
			return err
		}
	}
	if edit {
		if _, err := tx.ExecContext(ctx, `INSERT INTO outbox (delivery_id, kind, state, next_attempt, created_at)
			SELECT id, 'edit', 'pending', 0, ? FROM deliveries
			WHERE tenant_id = ? AND alert_id = ? AND state IN ('pending', 'posted') AND digest_id IS NULL ORDER BY id`,
			n, tenantID, alertID); err != nil {
			return err
		}
	}
	return nil
}
