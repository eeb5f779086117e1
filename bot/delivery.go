package bot

import (
	"strconv"
	"time"
)

// DeliveryKind says what a delivery's root message is.
type DeliveryKind string

const (
	DeliveryAlert  DeliveryKind = "alert"  // an alert card (or a line in a digest's thread)
	DeliveryDigest DeliveryKind = "digest" // a storm digest card
	DeliveryNotice DeliveryKind = "notice" // a one-off public message (state changes, failures)
	DeliveryPrompt DeliveryKind = "prompt" // an access prompt that is edited later
)

// DeliveryState of the root message.
type DeliveryState string

const (
	DeliveryPending   DeliveryState = "pending"
	DeliveryPosted    DeliveryState = "posted"
	DeliveryFailed    DeliveryState = "failed"
	DeliveryCancelled DeliveryState = "cancelled"
)

// Delivery is one message in one channel that later operations refer to:
// alert X's card in channel C, a digest, a notice or a prompt.
type Delivery struct {
	ID        int64
	Kind      DeliveryKind
	Channel   ChannelRef
	TenantID  string
	AlertID   string        // DeliveryAlert
	DigestID  int64         // DeliveryAlert inside a digest: the digest's delivery id
	RefID     string        // DeliveryPrompt: the access request or pending link id
	Payload   []byte        // digest, notice, prompt: the JSON of the Message to post/edit
	MessageID string        // the platform's message id (thread root) once posted
	State     DeliveryState // of the root message
	Error     string
	CreatedAt time.Time
}

// Key is the delivery key carried with a post so that it can be found again
// after a crash (Slack metadata, Discord nonce: at most 25 characters).
func (d Delivery) Key() string { return DeliveryKey(d.ID) }

// DeliveryKey formats a delivery id as its key.
func DeliveryKey(id int64) string { return "msspbot-" + strconv.FormatInt(id, 10) }

// OutboxKind is the operation of one outbox entry.
type OutboxKind string

const (
	OutboxPost   OutboxKind = "post"   // post the root message
	OutboxThread OutboxKind = "thread" // add a line to the root's thread
	OutboxEdit   OutboxKind = "edit"   // re-render the root message
)

// OutboxState of one entry.
type OutboxState string

const (
	OutboxHeld      OutboxState = "held" // created by a running pass; released (or digested) when it ends
	OutboxPending   OutboxState = "pending"
	OutboxInFlight  OutboxState = "inflight"
	OutboxSent      OutboxState = "sent"
	OutboxFailed    OutboxState = "failed"
	OutboxCancelled OutboxState = "cancelled"
)

// OutboxEntry is one message operation for a delivery; the entries of one
// delivery are sent in ID order.
type OutboxEntry struct {
	ID          int64
	DeliveryID  int64
	Kind        OutboxKind
	Text        string // OutboxThread: the line
	State       OutboxState
	Attempts    int
	NextAttempt time.Time
	Error       string
	PassID      int64
	CreatedAt   time.Time
}

// OutboxItem is a ready entry with what the dispatcher needs to send it.
type OutboxItem struct {
	Entry    OutboxEntry
	Delivery Delivery
	// RootMessageID is where thread lines go: the delivery's own message, or
	// its digest's for a delivery inside a digest. Empty until posted.
	RootMessageID string
	// LastEditID is, for an edit, the highest pending edit of the delivery
	// when the item was read: one render covers all of them.
	LastEditID int64
}

// HeldPost is a post held by a pass, for storm detection.
type HeldPost struct {
	EntryID    int64
	DeliveryID int64
	TenantID   string
	AlertID    string
	Severity   Severity
	Title      string
}

// OutboxCount is how many entries of one platform are in one state.
type OutboxCount struct {
	Platform string
	State    OutboxState
	N        int
}

// ChannelFailure is a channel whose messages fail permanently.
type ChannelFailure struct {
	Channel ChannelRef
	Reason  string
	Since   time.Time
}
