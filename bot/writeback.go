package bot

import "time"

// WriteBackKind is what an analyst did that Defender must learn.
type WriteBackKind string

const (
	WriteBackAck     WriteBackKind = "ack"     // InProgress + assignedTo + comment
	WriteBackResolve WriteBackKind = "resolve" // Resolved + classification + determination (+ comment)
	WriteBackComment WriteBackKind = "comment"
	WriteBackReopen  WriteBackKind = "reopen" // New
)

// WriteBackState of one queued update.
type WriteBackState string

const (
	WriteBackPending   WriteBackState = "pending"
	WriteBackSent      WriteBackState = "sent"
	WriteBackFailed    WriteBackState = "failed"
	WriteBackCancelled WriteBackState = "cancelled"
)

// WriteBack is one pending update to Defender.
type WriteBack struct {
	ID             int64
	TenantID       string
	AlertID        string
	Kind           WriteBackKind
	Status         AlertStatus // "" = leave
	AssignedTo     string      // "" = leave
	Classification Classification
	Determination  string // canonical
	Comment        string
	Actor          string // identity used for assignedTo and audit
	State          WriteBackState
	Attempts       int
	NextAttempt    time.Time
	Error          string
	CreatedAt      time.Time
}

// Sets reports which alert fields this write-back sets, so that ingest
// keeps the local values of those while it is pending.
func (w WriteBack) Sets() (status, assignee, classification bool) {
	return w.Status != "", w.AssignedTo != "", w.Classification != "" || w.Determination != ""
}
