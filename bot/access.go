package bot

import "time"

// AccessOutcome is the state of an access request (DESIGN §2).
type AccessOutcome string

const (
	AccessOpen           AccessOutcome = "open"
	AccessGranted        AccessOutcome = "granted"
	AccessDeclined       AccessOutcome = "declined"
	AccessExpired        AccessOutcome = "expired"
	AccessFailedError    AccessOutcome = "failed:error"
	AccessFailedMismatch AccessOutcome = "failed:mismatch"
	AccessFailedProof    AccessOutcome = "failed:proof"
	AccessSuperseded     AccessOutcome = "superseded"
)

// AccessKind distinguishes the customer's consent from a SOC confirmation.
type AccessKind string

const (
	AccessConsent AccessKind = "consent" // customer admin consents in Entra
	AccessConfirm AccessKind = "confirm" // app already consented: a SOC user confirms
	AccessLink    AccessKind = "link"    // `link TENANT_ID` awaiting its Confirm
)

// AccessRequest is an onboarding request or a pending link.
type AccessRequest struct {
	ID          int64
	Kind        AccessKind
	TenantID    string
	TenantName  string
	Channel     ChannelRef // the customer channel
	RequestedBy string     // chat user ref, "slack:U012"
	StateHash   string     // hex SHA-256 of the consent state; never the state itself
	ExpiresAt   time.Time
	Outcome     AccessOutcome
	Reason      string // escaped-on-render reason of a failure/decline
	PromptID    int64  // delivery id of the prompt
	CreatedAt   time.Time
	ClosedAt    time.Time
}
