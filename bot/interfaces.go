package bot

import (
	"context"
	"time"
)

// AlertSource fetches a tenant's alerts from Defender.
type AlertSource interface {
	// Alerts returns every alert of the tenant last updated at or after
	// since. 401/403 errors wrap ErrAuth; the source retries 429/5xx itself.
	Alerts(ctx context.Context, tenantID string, since time.Time) ([]Alert, error)
}

// WriteBackTarget sends analysts' changes to Defender.
type WriteBackTarget interface {
	// Apply sends one write-back. Errors wrapping ErrAuth, or a *SendError
	// marked Permanent, are not retried.
	Apply(ctx context.Context, wb WriteBack) error
}

// AccessChecker tells whether the MSSP's app can get a token for a tenant:
// the proof of consent, and the pre-consent check of onboarding.
type AccessChecker interface {
	// CheckAccess acquires a token for tenantID; fresh bypasses any cache.
	CheckAccess(ctx context.Context, tenantID string, fresh bool) error
}

// Notifier sends messages to one chat platform. Errors are *SendError (or
// wrap one) so the dispatcher can tell retry from permanent failure.
type Notifier interface {
	// Post sends a root message carrying the delivery key and returns its id.
	Post(ctx context.Context, ch ChannelRef, key string, m Message) (messageID string, err error)
	// Thread adds a line to the thread of rootID.
	Thread(ctx context.Context, ch ChannelRef, rootID string, m Message) (messageID string, err error)
	// Edit replaces the content of message id.
	Edit(ctx context.Context, ch ChannelRef, messageID string, m Message) error
	// Find looks for a root message posted with key (after a crash).
	Find(ctx context.Context, ch ChannelRef, key string) (messageID string, found bool, err error)
}
