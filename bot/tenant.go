package bot

import (
	"regexp"
	"strings"
	"time"
)

// TenantState follows DESIGN §2: pending -> active <-> failing -> revoked.
type TenantState string

const (
	TenantPending TenantState = "pending"
	TenantActive  TenantState = "active"
	TenantFailing TenantState = "failing"
	TenantRevoked TenantState = "revoked"
)

// Tenant is a customer's Entra ID tenant.
type Tenant struct {
	ID           string // GUID, lower case
	Name         string
	State        TenantState
	FromConfig   bool      // declared in the config: managed only there
	ActivatedAt  time.Time // start of the post-grant propagation window
	Watermark    time.Time // zero until the first successful pass
	AuthFailures int       // consecutive 401/403 outside the propagation window
	LastError    string    // user-safe reason of the last failure
	LastSuccess  time.Time
	NextAttempt  time.Time // failing tenants: not before this
	CreatedAt    time.Time
}

// Propagating reports whether now is within PropagationWindow of the
// tenant's grant, when Entra may still refuse its tokens (401/403).
func (t Tenant) Propagating(now time.Time) bool {
	return !t.ActivatedAt.IsZero() && now.Sub(t.ActivatedAt) < PropagationWindow
}

// TenantUpdate changes the fields that are set.
type TenantUpdate struct {
	Name         *string
	State        *TenantState
	ActivatedAt  *time.Time
	AuthFailures *int
	LastError    *string
	LastSuccess  *time.Time
	NextAttempt  *time.Time
	// IfState makes the update conditional: it applies only while the
	// tenant is in this state, else ECONFLICT and nothing changes (a fetch
	// must not undo an offboard that happened meanwhile).
	IfState *TenantState
}

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// ValidTenantID reports whether s is a GUID.
func ValidTenantID(s string) bool { return guidRE.MatchString(s) }

// NormalizeTenantID lower-cases a GUID; tenant ids compare case-insensitively.
func NormalizeTenantID(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// ChannelRef names a chat channel as "platform:id", e.g. "slack:C024BE91L".
type ChannelRef string

// NewChannelRef joins platform and id.
func NewChannelRef(platform, id string) ChannelRef { return ChannelRef(platform + ":" + id) }

// Platform returns the part before the first colon.
func (c ChannelRef) Platform() string {
	p, _, _ := strings.Cut(string(c), ":")
	return p
}

// ID returns the platform's channel id.
func (c ChannelRef) ID() string {
	_, id, _ := strings.Cut(string(c), ":")
	return id
}

// Valid reports whether c has a platform and an id.
func (c ChannelRef) Valid() bool {
	p, id, ok := strings.Cut(string(c), ":")
	return ok && p != "" && id != ""
}
