// Package sqlite implements bot's stores on SQLite (modernc.org/sqlite, pure
// Go): one writer connection that serialises write transactions, a separate
// read pool, and embedded numbered migrations.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/msspbot/msspbot/bot"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migration/*.sql
var migrations embed.FS

// CountCap caps the total FindAlerts counts: counting stops there, so a
// list over a million alerts stays cheap ("1,000+").
const CountCap = 1000

// defaultLimit applies when a filter's Limit is not positive.
const defaultLimit = 20

// maxVars bounds the parameters of one IN list (SQLite allows 32766).
const maxVars = 500

// Per-connection settings (DESIGN §8). Pragmas are per connection, so they
// go in the DSN, which the driver applies to every pooled connection.
const dsnPragmas = "_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)"

// DB is the SQLite store. It implements bot.Store.
type DB struct {
	w    *sql.DB // the one writer: write transactions queue here, not in SQLITE_BUSY
	r    *sql.DB // readers: WAL lets them run beside the writer
	path string
	now  func() time.Time
}

var _ bot.Store = (*DB)(nil)

// Open opens (creating if needed) the database at path and applies any
// migrations not applied yet.
func Open(ctx context.Context, path string) (*DB, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite: open: invalid database path %q", path)
	}
	// The file names customers and their alerts: readable by the owner only.
	// SQLite gives its -wal and -shm files the same mode.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	} else {
		f.Close()
	}
	base := "file:" + path + "?" + dsnPragmas
	// Immediate transactions take the write lock at BEGIN, so a
	// read-then-write transaction cannot fail halfway with "database is locked".
	// A 32 MiB page cache holds a 10,000-alert batch without spilling dirty
	// pages to the WAL mid-transaction (about 15 % faster ingest).
	w, err := sql.Open("sqlite", base+"&_txlock=immediate&_pragma=cache_size(-32768)")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	db := &DB{w: w, path: path, now: time.Now}
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := db.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	// The read pool opens after the migrations, so the file is in WAL mode
	// already and query_only cannot get in the way of the journal pragma.
	r, err := sql.Open("sqlite", base+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	db.r = r
	return db, nil
}

// Close closes both pools.
func (db *DB) Close() error {
	var errs []error
	if db.r != nil {
		errs = append(errs, db.r.Close())
	}
	if db.w != nil {
		errs = append(errs, db.w.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

// Ping checks that the database answers, for /readyz.
func (db *DB) Ping(ctx context.Context) error {
	var one int
	if err := db.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// migrate applies the embedded migration files numbered above the
// database's user_version, one transaction each.
func (db *DB) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migration/*.sql")
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	type file struct {
		n    int
		name string
	}
	var files []file
	for _, name := range names {
		base := strings.TrimPrefix(name, "migration/")
		num, _, _ := strings.Cut(base, "_")
		n, err := strconv.Atoi(num)
		if err != nil || n <= 0 {
			return fmt.Errorf("sqlite: migrate: bad migration name %q", base)
		}
		files = append(files, file{n, name})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].n < files[j].n })

	var version int
	if err := db.w.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("sqlite: migrate: read version: %w", err)
	}
	for _, f := range files {
		if f.n <= version {
			continue
		}
		body, err := migrations.ReadFile(f.name)
		if err != nil {
			return fmt.Errorf("sqlite: migrate: %w", err)
		}
		if err := db.applyMigration(ctx, f.n, string(body)); err != nil {
			return fmt.Errorf("sqlite: migrate %s: %w", f.name, err)
		}
	}
	return nil
}

func (db *DB) applyMigration(ctx context.Context, n int, body string) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, body); err != nil {
		return err
	}
	// user_version lives in the file header, so it commits with the schema.
	if _, err := tx.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(n)); err != nil {
		return err
	}
	return tx.Commit()
}

// Purge implements bot.Store: resolved alerts last updated before
// alertsBefore go with their deliveries and outbox rows; audit entries
// before auditBefore go. Nothing else is touched.
func (db *DB) Purge(ctx context.Context, alertsBefore, auditBefore time.Time) (bot.PurgeResult, error) {
	var res bot.PurgeResult
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return res, fmt.Errorf("sqlite: purge: %w", err)
	}
	defer tx.Rollback()

	// Collect the doomed alerts once; the three deletes then join on it.
	if _, err := tx.ExecContext(ctx, `CREATE TEMP TABLE IF NOT EXISTS purge_alerts (tenant_id TEXT, id TEXT, PRIMARY KEY (tenant_id, id))`); err != nil {
		return res, fmt.Errorf("sqlite: purge: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM purge_alerts`); err != nil {
		return res, fmt.Errorf("sqlite: purge: %w", err)
	}
	// Aged by the later of Defender's and msspbot's last change, and never
	// while a message or a write-back about it is still to be sent.
	if _, err := tx.ExecContext(ctx, `INSERT INTO purge_alerts (tenant_id, id)
		SELECT a.tenant_id, a.id FROM alerts a
		WHERE a.status = 'Resolved' AND a.last_updated_at < ?1 AND a.local_updated_at < ?1
		AND NOT EXISTS (SELECT 1 FROM write_backs w WHERE w.tenant_id = a.tenant_id AND w.alert_id = a.id AND w.state = 'pending')
		AND NOT EXISTS (SELECT 1 FROM deliveries d JOIN outbox o ON o.delivery_id = d.id
			WHERE d.tenant_id = a.tenant_id AND d.alert_id = a.id AND o.state IN ('pending', 'held', 'inflight'))`,
		tm(alertsBefore)); err != nil {
		return res, fmt.Errorf("sqlite: purge: select alerts: %w", err)
	}
	steps := []struct {
		n     *int64
		query string
		args  []any
	}{
		{&res.Outbox, `DELETE FROM outbox WHERE delivery_id IN (
			SELECT d.id FROM deliveries d JOIN purge_alerts p ON d.tenant_id = p.tenant_id AND d.alert_id = p.id)`, nil},
		{&res.Deliveries, `DELETE FROM deliveries WHERE id IN (
			SELECT d.id FROM deliveries d JOIN purge_alerts p ON d.tenant_id = p.tenant_id AND d.alert_id = p.id)`, nil},
		{&res.Alerts, `DELETE FROM alerts WHERE (tenant_id, id) IN (SELECT tenant_id, id FROM purge_alerts)`, nil},
		{&res.Audit, `DELETE FROM audit WHERE time < ?`, []any{tm(auditBefore)}},
	}
	for _, s := range steps {
		r, err := tx.ExecContext(ctx, s.query, s.args...)
		if err != nil {
			return res, fmt.Errorf("sqlite: purge: %w", err)
		}
		if *s.n, err = r.RowsAffected(); err != nil {
			return res, fmt.Errorf("sqlite: purge: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM purge_alerts`); err != nil {
		return res, fmt.Errorf("sqlite: purge: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return res, fmt.Errorf("sqlite: purge: %w", err)
	}
	return res, nil
}

// tm encodes a time as Unix nanoseconds; the zero time is 0.
func tm(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// ft decodes tm.
func ft(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// nullStr stores "" as NULL (for columns whose unique index must ignore it).
func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullInt(n int64) any {
	if n == 0 {
		return nil
	}
	return n
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// placeholders returns "?,?,…" with n marks.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?,", n-1) + "?"
}

// chunks splits ss into slices of at most maxVars.
func chunks(ss []string) [][]string {
	var out [][]string
	for len(ss) > maxVars {
		out = append(out, ss[:maxVars])
		ss = ss[maxVars:]
	}
	if len(ss) > 0 {
		out = append(out, ss)
	}
	return out
}

// normTenants lower-cases and de-duplicates tenant ids.
func normTenants(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		id = bot.NormalizeTenantID(id)
		if id == "" || seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, id)
	}
	return out
}

// queryer is what both *sql.DB and *sql.Tx offer for reads.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// step is one statement of a multi-statement change.
type step struct {
	query string
	args  []any
}

// execSteps runs steps in order, stopping at the first error.
func execSteps(ctx context.Context, tx *sql.Tx, steps ...step) error {
	for _, s := range steps {
		if _, err := tx.ExecContext(ctx, s.query, s.args...); err != nil {
			return err
		}
	}
	return nil
}
