package defender

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/msspbot/msspbot/bot"
)

// graphPatch is the body of PATCH /v1.0/security/alerts_v2/{id}; unset
// fields are left alone. Values are Graph's camelCase enum members.
type graphPatch struct {
	Status         string `json:"status,omitempty"`
	AssignedTo     string `json:"assignedTo,omitempty"`
	Classification string `json:"classification,omitempty"`
	Determination  string `json:"determination,omitempty"`
}

// graphComment is the body of POST /v1.0/security/alerts_v2/{id}/comments.
type graphComment struct {
	Type    string `json:"@odata.type"`
	Comment string `json:"comment"`
}

const graphCommentType = "microsoft.graph.security.alertComment"

var (
	graphStatuses = map[string]string{
		string(bot.StatusNew):        "new",
		string(bot.StatusInProgress): "inProgress",
		string(bot.StatusResolved):   "resolved",
	}
	graphClassifications = map[string]string{
		string(bot.ClassTruePositive):  "truePositive",
		string(bot.ClassFalsePositive): "falsePositive",
		string(bot.ClassInformational): "informationalExpectedActivity",
	}
)

// graphWriteFor maps a write-back to a Graph PATCH body and a comment. It
// starts from the MDE mapping (patchFor), so both APIs set the same fields
// for each kind, and translates every value to its Graph name: an MDE
// name is never sent to Graph.
func graphWriteFor(wb bot.WriteBack) (graphPatch, string, error) {
	m, err := patchFor(wb)
	if err != nil {
		return graphPatch{}, "", err
	}
	var p graphPatch
	p.AssignedTo = m.AssignedTo
	if m.Status != "" {
		p.Status = graphStatuses[m.Status]
	}
	if m.Classification != "" {
		p.Classification = graphClassifications[m.Classification]
	}
	if m.Determination != "" {
		p.Determination = bot.DeterminationGraphName(m.Determination)
	}
	if (m.Status != "" && p.Status == "") || (m.Classification != "" && p.Classification == "") ||
		(m.Determination != "" && p.Determination == "") {
		return graphPatch{}, "", fmt.Errorf("no Graph value for status %q, classification %q or determination %q",
			m.Status, m.Classification, m.Determination)
	}
	return p, m.Comment, nil
}

// graphApply sends a write-back to Graph: a PATCH for status, assignee,
// classification and determination, then a comment POST (Graph alerts
// take comments only through the comments collection). The PATCH goes
// first because it is idempotent: when the comment fails and the worker
// retries, the PATCH is simply repeated; the comment, the one call that
// is not idempotent, comes last so that it is sent once.
func (c *Client) graphApply(ctx context.Context, tenant string, wb bot.WriteBack) error {
	p, comment, err := graphWriteFor(wb)
	if err != nil {
		return bot.PermanentError("invalid write-back", fmt.Errorf("defender: write-back %d: %w", wb.ID, err))
	}
	path := graphAlertsPath + "/" + url.PathEscape(wb.AlertID)
	patched := false
	if p != (graphPatch{}) {
		body, err := json.Marshal(p)
		if err != nil {
			return fmt.Errorf("defender: write-back %d: %w", wb.ID, err)
		}
		if _, err := c.do(ctx, request{tenant: tenant, method: http.MethodPatch, path: path, body: body}); err != nil {
			return writeBackError(err)
		}
		patched = true
	}
	if comment == "" {
		return nil
	}
	body, err := json.Marshal(graphComment{Type: graphCommentType, Comment: comment})
	if err != nil {
		return fmt.Errorf("defender: write-back %d: %w", wb.ID, err)
	}
	_, err = c.do(ctx, request{tenant: tenant, method: http.MethodPost, path: path + "/comments", body: body})
	err = writeBackError(err)
	var se *bot.SendError
	if patched && errors.As(err, &se) && se.Permanent {
		se.Reason = "comment " + se.Reason + " (the alert itself was updated)"
	}
	return err
}
