package bot

import (
	"context"
	"time"
)

// Store is everything the bot persists. storage/sqlite implements it; every
// method that changes more than one row does so in one transaction.
// Lookups of missing rows return an *Error with code ENOTFOUND.
type Store interface {
	TenantStore
	AlertStore
	RuleStore
	OutboxStore
	WriteBackStore
	AuditStore
	AccessStore
	// Purge deletes resolved alerts last updated before alertsBefore (with
	// their deliveries and outbox rows) and audit entries before auditBefore.
	Purge(ctx context.Context, alertsBefore, auditBefore time.Time) (PurgeResult, error)
}

// PurgeResult counts what Purge removed.
type PurgeResult struct {
	Alerts, Deliveries, Outbox, Audit int64
}

// TenantStore keeps tenants and channel links.
type TenantStore interface {
	FindTenant(ctx context.Context, id string) (Tenant, error)
	// FindTenants returns tenants in the given states (all when empty), by name.
	FindTenants(ctx context.Context, states ...TenantState) ([]Tenant, error)
	// CreateTenant inserts a tenant, or resets a revoked/pending/failing one
	// to t's state and name (onboarding again). ECONFLICT if it is active.
	CreateTenant(ctx context.Context, t Tenant) error
	UpdateTenant(ctx context.Context, id string, upd TenantUpdate) (Tenant, error)
	// ApplyConfigTenants makes the config authoritative for its tenants:
	// upserted active with FromConfig, their links exactly the given channels.
	// Tenants no longer in the config lose FromConfig and their config links.
	ApplyConfigTenants(ctx context.Context, tenants []ConfigTenant) error

	// TenantOfChannel returns the tenant linked to a customer channel;
	// ENOTFOUND when the channel is not linked.
	TenantOfChannel(ctx context.Context, ch ChannelRef) (string, error)
	ChannelsOfTenant(ctx context.Context, tenantID string) ([]ChannelRef, error)
	// Link links a channel to a tenant; ECONFLICT if the channel is linked
	// to another tenant.
	Link(ctx context.Context, ch ChannelRef, tenantID string) error
	Unlink(ctx context.Context, ch ChannelRef) error

	// RevokeTenant sets the tenant revoked, removes its links, cancels its
	// pending outbox entries (not yet posted cards and lines), pending
	// write-backs and open access requests; history is kept.
	RevokeTenant(ctx context.Context, id string) error
}

// ConfigTenant is a tenant declared in the configuration.
type ConfigTenant struct {
	ID       string
	Name     string
	Channels []ChannelRef
}

// AlertFilter selects alerts for `alerts`, newest (CreatedAt) first.
type AlertFilter struct {
	TenantIDs   []string      // required, never empty: the caller decides visibility
	Statuses    []AlertStatus // empty: all
	MinSeverity Severity
	Limit       int
}

// AlertStore keeps alerts and runs ingest.
type AlertStore interface {
	FindAlert(ctx context.Context, tenantID, alertID string) (Alert, error)
	// FindAlertsByID returns the alerts with this exact id in any of tenantIDs.
	FindAlertsByID(ctx context.Context, alertID string, tenantIDs []string) ([]Alert, error)
	// FindAlerts returns up to Limit alerts and the total count matching, capped at countCap.
	FindAlerts(ctx context.Context, f AlertFilter) (alerts []Alert, total int, err error)
	// Ingest stores one tenant's batch in one transaction (see IngestBatch).
	Ingest(ctx context.Context, b IngestBatch) (IngestResult, error)
	// RecordAction applies an analyst's action in one transaction: local
	// alert fields, the write-back row, a thread entry for every delivery of
	// the alert and an edit entry for every card (not for digest members),
	// and the audit entry.
	RecordAction(ctx context.Context, a Action) error
}

// IngestBatch is one tenant's fetched alerts. In one transaction the store
// loads, for the batch's alerts, the stored versions, the pending
// write-backs and the channels that already have a delivery; loads the
// tenant's linked channels and the SOC channels with their rules; calls
// Plan for every alert; writes the planned alert, the new deliveries with a
// post entry each (state held when Hold), a thread entry for every delivery
// and an edit entry for every non-digest alert card when planned; and saves
// Watermark (when not zero) and Tenant (when set) on the tenant: one commit
// per tenant and pass.
type IngestBatch struct {
	TenantID  string
	Alerts    []Alert
	Watermark time.Time
	Tenant    *TenantUpdate // the fetch's outcome (last success, state)
	PassID    int64
	Hold      bool
	SOC       []ChannelRef
	Now       time.Time
	Plan      func(PlanInput) PlanOutput
}

// PlanInput is what ingest planning needs to know about one alert.
type PlanInput struct {
	Prev      *Alert // nil: new
	Next      Alert
	Pending   []WriteBack         // pending write-backs of this alert, oldest first
	Delivered map[ChannelRef]bool // channels that already have a delivery
	Channels  []ChannelRules      // linked customer channels, then SOC channels
}

// PlanOutput is the decision for one alert.
type PlanOutput struct {
	Store       Alert // what to save
	Change      Change
	ThreadText  string       // line for every existing delivery; "" none
	Edit        bool         // re-render existing cards
	NewChannels []ChannelRef // deliveries to create
}

// Change classifies an ingested alert.
type Change string

const (
	ChangeNew       Change = "new"
	ChangeChanged   Change = "changed"
	ChangeUnchanged Change = "unchanged"
)

// IngestResult counts what one batch did.
type IngestResult struct {
	New, Changed, Unchanged, Deliveries int
}

// AlertUpdate sets local alert fields; nil leaves a field.
type AlertUpdate struct {
	Status         *AlertStatus
	AssignedTo     *string
	Classification *Classification
	Determination  *string
	ChangedBy      *string
}

// Action is an analyst's change to an alert (see AlertStore.RecordAction).
type Action struct {
	TenantID   string
	AlertID    string
	Update     AlertUpdate
	WriteBack  *WriteBack // nil: nothing to send (write_back off)
	ThreadText string
	Audit      AuditEntry
	Now        time.Time
}

// RuleStore keeps notification rules.
type RuleStore interface {
	FindRules(ctx context.Context, ch ChannelRef) ([]Rule, error)
	CreateRule(ctx context.Context, r Rule) (Rule, error)
	// DeleteRule removes rule id only if it belongs to ch; else ENOTFOUND.
	DeleteRule(ctx context.Context, ch ChannelRef, id int64) error
}

// OutboxStore is the dispatcher's queue.
type OutboxStore interface {
	// CreateDelivery inserts a delivery (notice, prompt, digest) with a post entry.
	CreateDelivery(ctx context.Context, d Delivery) (Delivery, error)
	FindDelivery(ctx context.Context, id int64) (Delivery, error)
	// FindDeliveryByMessage finds the delivery whose root message is msgID in ch.
	FindDeliveryByMessage(ctx context.Context, ch ChannelRef, msgID string) (Delivery, error)
	// DeliveriesOfAlert lists the alert's deliveries (for show and clicks).
	DeliveriesOfAlert(ctx context.Context, tenantID, alertID string) ([]Delivery, error)
	// EditDelivery replaces a prompt/notice payload and queues an edit
	// (and a thread line when text is not empty).
	EditDelivery(ctx context.Context, id int64, payload []byte, threadText string) error

	// NextOutbox returns, for up to limit deliveries, the first unfinished
	// entry when it is pending and due at now (ordered by entry id). A
	// thread/edit entry whose root is not posted yet is not returned.
	NextOutbox(ctx context.Context, now time.Time, limit int) ([]OutboxItem, error)
	// InFlight returns entries left in flight (after a crash).
	InFlight(ctx context.Context) ([]OutboxItem, error)
	MarkInFlight(ctx context.Context, entryID int64) error
	// MarkSent records success. For a post it stores messageID on the
	// delivery (and on a digest's members); for an edit it also marks the
	// delivery's pending edits up to lastEditID as sent.
	MarkSent(ctx context.Context, entryID int64, messageID string, lastEditID int64) error
	// MarkRetry puts the entry back to pending, due at next. counted says
	// whether this failure counts as an attempt (a rate limit does not);
	// MarkInFlight never counts.
	MarkRetry(ctx context.Context, entryID int64, next time.Time, reason string, counted bool) error
	// MarkFailed fails the entry for good; a failed post fails its delivery
	// and cancels the delivery's later entries.
	MarkFailed(ctx context.Context, entryID int64, reason string) error

	// HeldPosts returns the posts held by a pass (all passes when 0),
	// grouped by channel; only those in the given channels when channels
	// are given.
	HeldPosts(ctx context.Context, passID int64, channels ...ChannelRef) (map[ChannelRef][]HeldPost, error)
	// CreateDigest turns held posts into one digest: a digest delivery with a
	// post entry, the members' post entries cancelled, members pointed at the
	// digest (DigestID) with a thread entry each carrying lines[deliveryID].
	CreateDigest(ctx context.Context, d Delivery, lines map[int64]string) (Delivery, error)
	// ReleaseHeld makes held entries of passID (all passes when 0) pending;
	// only those of the given channels' deliveries when channels are given.
	ReleaseHeld(ctx context.Context, passID int64, channels ...ChannelRef) error

	// RecordChannelFailure notes a permanent failure; first is true only
	// the first time since the channel last worked.
	RecordChannelFailure(ctx context.Context, ch ChannelRef, reason string, now time.Time) (first bool, err error)
	ClearChannelFailure(ctx context.Context, ch ChannelRef) error
	ChannelFailures(ctx context.Context) ([]ChannelFailure, error)
	// OutboxCounts counts the unfinished entries (held, pending, in
	// flight, failed) by platform and state, for status and metrics.
	OutboxCounts(ctx context.Context) ([]OutboxCount, error)
}

// WriteBackStore is the write-back queue.
type WriteBackStore interface {
	// NextWriteBacks returns pending write-backs due at now, oldest first,
	// at most limit of each tenant.
	NextWriteBacks(ctx context.Context, now time.Time, limit int) ([]WriteBack, error)
	MarkWriteBackSent(ctx context.Context, id int64) error
	// MarkWriteBackRetry puts it back, due at next; counted as for MarkRetry.
	MarkWriteBackRetry(ctx context.Context, id int64, next time.Time, reason string, counted bool) error
	// FailWriteBack fails it for good and adds threadText to every delivery of its alert.
	FailWriteBack(ctx context.Context, id int64, reason, threadText string) error
	PendingWriteBacks(ctx context.Context, tenantID string) ([]WriteBack, error)
}

// AuditStore keeps the audit trail.
type AuditStore interface {
	CreateAudit(ctx context.Context, e AuditEntry) error
	FindAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error)
}

// AccessStore keeps access requests and pending links.
type AccessStore interface {
	// CreateAccessRequest inserts an open request; an open request of the
	// same kind for the same tenant becomes superseded.
	CreateAccessRequest(ctx context.Context, r AccessRequest) (AccessRequest, error)
	FindAccessRequest(ctx context.Context, id int64) (AccessRequest, error)
	// OpenAccessRequests lists the tenant's open requests of a kind.
	OpenAccessRequests(ctx context.Context, tenantID string, kind AccessKind) ([]AccessRequest, error)
	FindAccessRequestByState(ctx context.Context, stateHash string) (AccessRequest, error)
	// CloseAccessRequest moves an open request to outcome; ECONFLICT when it
	// is no longer open (so two callbacks cannot both win).
	CloseAccessRequest(ctx context.Context, id int64, outcome AccessOutcome, reason string, now time.Time) error
	SetAccessPrompt(ctx context.Context, id, promptDeliveryID int64) error
	// SetAccessState replaces an open request's state hash (a prompt
	// re-rendered after a restart gets a fresh state: the old one was
	// never stored).
	SetAccessState(ctx context.Context, id int64, stateHash string) error
}
