package bot

import (
	"fmt"
	"strings"
)

// PlanIngest decides what ingest does with one fetched alert: it keeps local
// values of fields a pending write-back sets, classifies the alert as new,
// changed or unchanged, writes the thread line for a change, and picks the
// channels without a delivery whose rules now select it (so a Low alert
// raised to High is posted then).
func PlanIngest(in PlanInput) PlanOutput {
	// A version that is not newer than the stored one (the overlap window
	// re-reads recent alerts; a list may lag a write-back) changes nothing:
	// diffing it would undo an analyst's local ack and report a change
	// Defender never made.
	if in.Prev != nil && !in.Next.LastUpdatedAt.IsZero() && !in.Next.LastUpdatedAt.After(in.Prev.LastUpdatedAt) {
		return PlanOutput{Store: *in.Prev, Change: ChangeUnchanged}
	}
	next := in.Next
	if in.Prev != nil {
		for _, wb := range in.Pending {
			status, assignee, class := wb.Sets()
			if status {
				next.Status = in.Prev.Status
			}
			if assignee {
				next.AssignedTo = in.Prev.AssignedTo
			}
			if class {
				next.Classification = in.Prev.Classification
				next.Determination = in.Prev.Determination
			}
		}
	}
	out := PlanOutput{Store: next, Change: ChangeUnchanged}
	switch {
	case in.Prev == nil:
		out.Change = ChangeNew
	default:
		if changes := diffAlert(*in.Prev, next); len(changes) > 0 {
			out.Change = ChangeChanged
			out.ThreadText = "Updated in Defender: " + strings.Join(changes, ", ")
			out.Edit = true
			out.Store.ChangedBy = "" // Defender made the last change
		} else {
			out.Store.ChangedBy = in.Prev.ChangedBy
		}
	}
	if out.Change == ChangeUnchanged {
		return out
	}
	for _, c := range in.Channels {
		if in.Delivered[c.Channel] {
			continue
		}
		if c.Wants(next) {
			out.NewChannels = append(out.NewChannels, c.Channel)
		}
	}
	return out
}

// diffAlert lists the tracked fields that differ (DESIGN §3 Notify).
func diffAlert(prev, next Alert) []string {
	var ch []string
	if prev.Status != next.Status {
		ch = append(ch, fmt.Sprintf("status %s → %s", prev.Status, next.Status))
	}
	if prev.Severity != next.Severity {
		ch = append(ch, fmt.Sprintf("severity %s → %s", prev.Severity, next.Severity))
	}
	if prev.AssignedTo != next.AssignedTo {
		ch = append(ch, fmt.Sprintf("assigned to %s", orNone(next.AssignedTo)))
	}
	if prev.Classification != next.Classification {
		ch = append(ch, fmt.Sprintf("classification %s", orNone(string(next.Classification))))
	}
	if prev.Determination != next.Determination {
		ch = append(ch, fmt.Sprintf("determination %s", orNone(next.Determination)))
	}
	return ch
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
