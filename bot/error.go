package bot

import (
	"errors"
	"fmt"
	"time"
)

// Error codes. Each maps to user text (chat) and an HTTP status in one
// table per adapter; anything without a code is an internal error.
const (
	EINVALID     = "invalid"
	ENOTFOUND    = "not_found"
	EFORBIDDEN   = "forbidden"
	ECONFLICT    = "conflict"
	EUNAVAILABLE = "unavailable"
	EINTERNAL    = "internal"
)

// Error is a domain error whose Message is safe to show to the user.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("bot: %s: %s", e.Code, e.Message) }

// Errorf returns an *Error with a formatted user-facing message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, or
// EINTERNAL for any other non-nil error.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the text a user may see for err: the message of a
// coded error, else a generic one (details belong in the log, not in chat).
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error; the operators have been told."
}

// ErrAuth marks a 401/403 from a provider: access to the tenant is refused.
var ErrAuth = errors.New("access refused by the tenant")

// ErrThrottled marks a provider request given up because of rate limits
// (429s or the tenant's request budget); it is counted apart from other
// transient failures.
var ErrThrottled = errors.New("throttled")

// SendError is what a Notifier returns when a message could not be sent.
// Retryable errors are retried with backoff (after RetryAfter when set);
// permanent ones fail the entry with Reason.
type SendError struct {
	Permanent bool
	// MessageOnly marks a permanent failure of this one message (too long,
	// message gone); otherwise a permanent failure means the channel is
	// unusable (gone, bot removed, token revoked) and the SOC is told.
	MessageOnly bool
	RetryAfter  time.Duration
	Reason      string // short, user-safe: "channel_not_found", "rate limited"
	Err         error
}

func (e *SendError) Error() string {
	kind := "retryable"
	if e.Permanent {
		kind = "permanent"
	}
	if e.Err != nil {
		return fmt.Sprintf("send (%s): %s: %v", kind, e.Reason, e.Err)
	}
	return fmt.Sprintf("send (%s): %s", kind, e.Reason)
}

func (e *SendError) Unwrap() error { return e.Err }

// PermanentError returns a SendError that will not be retried.
func PermanentError(reason string, err error) error {
	return &SendError{Permanent: true, Reason: reason, Err: err}
}

// MessageError returns a permanent SendError that concerns only this
// message, not the channel.
func MessageError(reason string, err error) error {
	return &SendError{Permanent: true, MessageOnly: true, Reason: reason, Err: err}
}

// RetryAfterError returns a retryable SendError that holds the channel for d.
func RetryAfterError(d time.Duration, err error) error {
	return &SendError{RetryAfter: d, Reason: "rate limited", Err: err}
}
