package defender

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/msspbot/msspbot/bot"
)

// mdePatch is the body of PATCH /api/alerts/{id}; unset fields are left
// alone by MDE, so only set ones are sent. Values are case-sensitive.
type mdePatch struct {
	Status         string `json:"status,omitempty"`
	AssignedTo     string `json:"assignedTo,omitempty"`
	Classification string `json:"classification,omitempty"`
	Determination  string `json:"determination,omitempty"`
	Comment        string `json:"comment,omitempty"`
}

// patchFor maps a write-back to the MDE body (DESIGN §3 Write-back).
func patchFor(wb bot.WriteBack) (mdePatch, error) {
	var p mdePatch
	switch wb.Kind {
	case bot.WriteBackAck:
		p.Status = string(bot.StatusInProgress)
		p.AssignedTo = firstNonEmpty(wb.AssignedTo, wb.Actor)
		p.Comment = wb.Comment
		if p.Comment == "" && wb.Actor != "" {
			p.Comment = "Acknowledged in msspbot by " + wb.Actor
		}
	case bot.WriteBackResolve:
		p.Status = string(bot.StatusResolved)
		p.Classification = string(wb.Classification)
		if wb.Determination != "" {
			d, ok := bot.ParseDetermination(wb.Determination)
			if !ok {
				return p, fmt.Errorf("unknown determination %q", wb.Determination)
			}
			p.Determination = d
		}
		p.Comment = wb.Comment
	case bot.WriteBackComment:
		if wb.Comment == "" {
			return p, errors.New("comment write-back without text")
		}
		p.Comment = wb.Comment
	case bot.WriteBackReopen:
		p.Status = string(bot.StatusNew)
		p.Comment = wb.Comment
	default:
		return p, fmt.Errorf("unknown write-back kind %q", wb.Kind)
	}
	switch bot.Classification(p.Classification) {
	case "", bot.ClassTruePositive, bot.ClassFalsePositive, bot.ClassInformational:
	default:
		return p, fmt.Errorf("unknown classification %q", p.Classification)
	}
	return p, nil
}

// Apply implements bot.WriteBackTarget: one PATCH (Graph: a PATCH and/or
// a comment POST, see graphApply) under the tenant's request budget. With
// write-back disabled it sends nothing. A refused call wraps bot.ErrAuth;
// a request Defender rejects (bad value, alert gone) is a permanent
// bot.SendError; throttling carries its retry-after.
func (c *Client) Apply(ctx context.Context, wb bot.WriteBack) error {
	if !c.writeBack {
		return nil
	}
	tenant, err := checkTenant(wb.TenantID)
	if err != nil {
		return bot.PermanentError("bad tenant id", err)
	}
	if wb.AlertID == "" {
		return bot.PermanentError("empty alert id", errors.New("defender: write-back without alert id"))
	}
	if c.api == APIGraph {
		return c.graphApply(ctx, tenant, wb)
	}
	p, err := patchFor(wb)
	if err != nil {
		return bot.PermanentError("invalid write-back", fmt.Errorf("defender: write-back %d: %w", wb.ID, err))
	}
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("defender: write-back %d: %w", wb.ID, err)
	}
	_, err = c.do(ctx, request{
		tenant: tenant,
		method: http.MethodPatch,
		path:   alertsPath + "/" + url.PathEscape(wb.AlertID),
		body:   body,
	})
	return writeBackError(err)
}

// writeBackError classifies a failed write-back call for the worker.
func writeBackError(err error) error {
	if err == nil {
		return nil
	}
	var ae *APIError
	switch {
	case errors.Is(err, bot.ErrAuth):
		return err
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
		return bot.PermanentError("alert not found in Defender", err)
	case errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 && ae.Status != http.StatusTooManyRequests:
		return bot.PermanentError("rejected by Defender", err)
	case errors.Is(err, ErrThrottled):
		return &bot.SendError{RetryAfter: time.Minute, Reason: "throttled by Defender", Err: err}
	}
	return err
}
