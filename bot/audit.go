package bot

import "time"

// AuditEntry records who did what, when, from which chat identity, to which
// tenant, with what outcome.
type AuditEntry struct {
	ID       int64
	Time     time.Time
	Actor    string // chat user ref ("slack:U012") or "system"
	Identity string // resolved identity (e-mail) where known
	Channel  ChannelRef
	TenantID string
	Action   string // "ack", "rules add", "onboard", "consent", …
	Target   string // alert id, rule id, request id
	Outcome  string // "ok", "refused: …", "failed: …"
	Detail   string
}

// AuditFilter selects audit entries, newest first.
type AuditFilter struct {
	TenantIDs []string // empty: all (SOC only)
	Channel   ChannelRef
	Limit     int
}
