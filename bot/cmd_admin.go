package bot

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

func (s *Service) cmdRules(ctx context.Context, cmd Command, sc scope) (Message, error) {
	rules, err := s.store.FindRules(ctx, cmd.Channel)
	if err != nil {
		return Message{}, fmt.Errorf("rules: %w", err)
	}
	l := &List{Header: "Notification rules of this channel"}
	for _, r := range rules {
		l.Rows = append(l.Rows, fmt.Sprintf("#%d · %s", r.ID, r.String()))
	}
	if len(rules) == 0 {
		def := DefaultCustomerRule
		if sc.soc {
			def = DefaultSOCRule
		}
		l.Empty = "No rules: the default applies (" + def.String() + "). Add one with /mssp rules add …"
	}
	return Message{Kind: MessageList, List: l}, nil
}

func (s *Service) cmdRulesAdd(ctx context.Context, cmd Command, sc scope, req Request) (Message, error) {
	if !sc.linked() {
		return Message{}, errNotLinked
	}
	r := req.Rule
	if r.TenantID != "" {
		if !sc.soc {
			return Message{}, Errorf(EINVALID, "tenant= is only valid in SOC channels.\nUsage: /mssp %s", Usage("rules add"))
		}
		if _, err := s.store.FindTenant(ctx, r.TenantID); err != nil {
			if ErrorCode(err) == ENOTFOUND {
				return Message{}, Errorf(ENOTFOUND, "Tenant %s is not known.", r.TenantID)
			}
			return Message{}, err
		}
	}
	r.Channel = cmd.Channel
	r.CreatedBy = cmd.UserRef()
	r.CreatedAt = s.cfg.Now()
	r, err := s.store.CreateRule(ctx, r)
	if err != nil {
		return Message{}, fmt.Errorf("rules add: %w", err)
	}
	e := s.auditEntry(cmd, sc, "rules add", "#"+strconv.FormatInt(r.ID, 10), "ok")
	e.Detail = r.String()
	s.audit(ctx, e)
	return textMessage("Rule #%d added: %s", r.ID, r.String()), nil
}

func (s *Service) cmdRulesRemove(ctx context.Context, cmd Command, sc scope, req Request) (Message, error) {
	if !sc.linked() {
		return Message{}, errNotLinked
	}
	target := "#" + strconv.FormatInt(req.RuleID, 10)
	if err := s.store.DeleteRule(ctx, cmd.Channel, req.RuleID); err != nil {
		if ErrorCode(err) == ENOTFOUND {
			return Message{}, Errorf(ENOTFOUND, "Rule %s is not a rule of this channel.", target)
		}
		return Message{}, fmt.Errorf("rules remove: %w", err)
	}
	s.audit(ctx, s.auditEntry(cmd, sc, "rules remove", target, "ok"))
	return textMessage("Rule %s removed.", target), nil
}

// linkTTL bounds how long a `link` waits for its Confirm.
const linkTTL = 15 * time.Minute

func (s *Service) cmdLink(ctx context.Context, cmd Command, sc scope, req Request) (Message, error) {
	if sc.soc {
		return Message{}, Errorf(EINVALID, "This is a SOC channel; link a customer's channel instead.")
	}
	t, err := s.store.FindTenant(ctx, req.TenantID)
	if ErrorCode(err) == ENOTFOUND || (err == nil && t.State == TenantRevoked) {
		return Message{}, Errorf(ENOTFOUND, "Tenant %s is not known; onboard it with /mssp onboard.", req.TenantID)
	}
	if err != nil {
		return Message{}, fmt.Errorf("link: %w", err)
	}
	if sc.tenant != nil {
		if sc.tenant.ID == t.ID {
			return textMessage("This channel is already linked to %s.", t.Name), nil
		}
		return Message{}, Errorf(ECONFLICT, "This channel is already linked to another tenant (%s); unlink it first.", sc.tenant.Name)
	}
	if t.FromConfig {
		return Message{}, Errorf(EFORBIDDEN, "Tenant %s (%s) is managed in config.", t.Name, t.ID)
	}
	now := s.cfg.Now()
	r, err := s.store.CreateAccessRequest(ctx, AccessRequest{
		Kind: AccessLink, TenantID: t.ID, TenantName: t.Name, Channel: cmd.Channel,
		RequestedBy: cmd.UserRef(), ExpiresAt: now.Add(linkTTL), Outcome: AccessOpen, CreatedAt: now,
	})
	if err != nil {
		return Message{}, fmt.Errorf("link: %w", err)
	}
	return Message{
		Kind:    MessagePrompt,
		Title:   "Link this channel?",
		Text:    fmt.Sprintf("Link this channel to %s (`%s`)? Everyone in this channel will see its alerts.", t.Name, t.ID),
		Buttons: []Button{{Label: "Confirm", ActionID: ActionLinkConfrm, Value: strconv.FormatInt(r.ID, 10), Style: ButtonPrimary}},
	}, nil
}

func (s *Service) clickLinkConfirm(ctx context.Context, cmd Command, sc scope) Message {
	if err := s.authorize(cmd, sc, "confirm"); err != nil {
		s.auditRefusal(ctx, cmd, sc, "link confirm", cmd.Value, err)
		return s.errorReply(ctx, err)
	}
	invalid := textMessage("This link request is not valid any more; run /mssp link again.")
	id, err := strconv.ParseInt(cmd.Value, 10, 64)
	if err != nil {
		return invalid
	}
	r, err := s.store.FindAccessRequest(ctx, id)
	if err != nil || r.Kind != AccessLink || r.Channel != cmd.Channel || r.Outcome != AccessOpen {
		return invalid
	}
	now := s.cfg.Now()
	if now.After(r.ExpiresAt) {
		_ = s.store.CloseAccessRequest(ctx, r.ID, AccessExpired, "", now)
		e := s.auditEntry(cmd, sc, "link", r.TenantID, "refused: expired")
		e.TenantID = r.TenantID
		s.audit(ctx, e)
		return invalid
	}
	t, err := s.store.FindTenant(ctx, r.TenantID)
	if err != nil || t.State == TenantRevoked {
		return invalid
	}
	if err := s.store.CloseAccessRequest(ctx, r.ID, AccessGranted, "", now); err != nil {
		return invalid
	}
	if err := s.store.Link(ctx, cmd.Channel, t.ID); err != nil {
		return s.errorReply(ctx, err)
	}
	e := s.auditEntry(cmd, sc, "link", t.ID, "ok")
	e.TenantID = t.ID
	s.audit(ctx, e)
	return textMessage("This channel is now linked to %s.", t.Name)
}

func (s *Service) cmdUnlink(ctx context.Context, cmd Command, sc scope) (Message, error) {
	if sc.tenant == nil {
		return Message{}, Errorf(EINVALID, "This channel is not linked to a tenant.")
	}
	if sc.tenant.FromConfig {
		return Message{}, Errorf(EFORBIDDEN, "Tenant %s is managed in config.", sc.tenant.Name)
	}
	// Requests made for this channel die with the link: an old consent
	// link must not bring it back.
	for _, k := range []AccessKind{AccessConsent, AccessConfirm, AccessLink} {
		open, err := s.store.OpenAccessRequests(ctx, sc.tenant.ID, k)
		if err != nil {
			return Message{}, fmt.Errorf("unlink: %w", err)
		}
		for _, r := range open {
			if r.Channel == cmd.Channel {
				s.closeRequest(ctx, r, AccessSuperseded, "channel unlinked", "↪️ Cancelled: the channel was unlinked.")
			}
		}
	}
	if err := s.store.Unlink(ctx, cmd.Channel); err != nil {
		return Message{}, fmt.Errorf("unlink: %w", err)
	}
	s.audit(ctx, s.auditEntry(cmd, sc, "unlink", sc.tenant.ID, "ok"))
	return textMessage("This channel is no longer linked to %s.", sc.tenant.Name), nil
}

func (s *Service) cmdTenants(ctx context.Context) (Message, error) {
	ts, err := s.store.FindTenants(ctx)
	if err != nil {
		return Message{}, fmt.Errorf("tenants: %w", err)
	}
	l := &List{Header: "Tenants", Empty: "No tenants yet. Onboard one with /mssp onboard TENANT_ID NAME."}
	for _, t := range ts {
		chs, err := s.store.ChannelsOfTenant(ctx, t.ID)
		if err != nil {
			return Message{}, fmt.Errorf("tenants: %w", err)
		}
		row := fmt.Sprintf("%s · `%s` · %s", t.Name, t.ID, t.State)
		if t.FromConfig {
			row += " (config)"
		}
		if len(chs) > 0 {
			names := make([]string, len(chs))
			for i, c := range chs {
				names[i] = string(c)
			}
			row += " · " + strings.Join(names, ", ")
		}
		if !t.LastSuccess.IsZero() {
			row += " · last fetch " + ago(s.cfg.Now(), t.LastSuccess)
		}
		if t.State == TenantFailing && t.LastError != "" {
			row += " · " + t.LastError
		}
		l.Rows = append(l.Rows, row)
	}
	return Message{Kind: MessageList, List: l}, nil
}

func ago(now, t time.Time) string {
	d := now.Sub(t).Round(time.Second)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return t.UTC().Format("2006-01-02 15:04Z")
}

func (s *Service) cmdStatus(ctx context.Context, cmd Command, sc scope) (Message, error) {
	now := s.cfg.Now()
	if sc.tenant != nil && !s.isSOCUser(cmd) {
		return plainText(coarseStatus(*sc.tenant, now)), nil
	}
	var tenants []Tenant
	if sc.tenant != nil {
		tenants = []Tenant{*sc.tenant}
	} else {
		var err error
		if tenants, err = s.store.FindTenants(ctx); err != nil {
			return Message{}, fmt.Errorf("status: %w", err)
		}
	}
	l := &List{Header: "Status"}
	counts := map[TenantState]int{}
	for _, t := range tenants {
		counts[t.State]++
		if t.State == TenantFailing || sc.tenant != nil {
			row := fmt.Sprintf("%s · `%s` · %s", t.Name, t.ID, t.State)
			if !t.LastSuccess.IsZero() {
				row += " · last fetch " + ago(now, t.LastSuccess)
			}
			if t.LastError != "" {
				row += " · " + t.LastError
			}
			l.Rows = append(l.Rows, row)
		}
	}
	if sc.tenant == nil {
		l.Rows = append([]string{fmt.Sprintf("Tenants: %d active, %d failing, %d pending, %d revoked",
			counts[TenantActive], counts[TenantFailing], counts[TenantPending], counts[TenantRevoked])}, l.Rows...)
	}
	outbox, err := s.store.OutboxCounts(ctx)
	if err != nil {
		return Message{}, fmt.Errorf("status: %w", err)
	}
	oc := map[OutboxState]int{}
	for _, c := range outbox {
		oc[c.State] += c.N
	}
	l.Rows = append(l.Rows, fmt.Sprintf("Outbox: %d pending, %d in flight, %d failed",
		oc[OutboxPending]+oc[OutboxHeld], oc[OutboxInFlight], oc[OutboxFailed]))
	fails, err := s.store.ChannelFailures(ctx)
	if err != nil {
		return Message{}, fmt.Errorf("status: %w", err)
	}
	for _, f := range fails {
		l.Rows = append(l.Rows, fmt.Sprintf("⚠️ Messages to %s fail: %s (since %s)", f.Channel, f.Reason, f.Since.UTC().Format("2006-01-02 15:04Z")))
	}
	return Message{Kind: MessageList, List: l}, nil
}

// coarseStatus is what customers see: no internals, no other tenants.
func coarseStatus(t Tenant, now time.Time) string {
	switch {
	case t.State == TenantPending:
		return "⏳ Waiting for access to be granted."
	case t.State == TenantFailing:
		return "❌ Access lost: msspbot cannot read your alerts. Your MSSP has been told."
	case t.LastSuccess.IsZero():
		return "⏳ The first fetch has not completed yet."
	case now.Sub(t.LastSuccess) > 15*time.Minute:
		return "⚠️ Fetching is delayed (last success " + ago(now, t.LastSuccess) + ")."
	}
	return "✅ Fetching OK (last success " + ago(now, t.LastSuccess) + ")."
}

func (s *Service) cmdAudit(ctx context.Context, cmd Command, sc scope, req Request) (Message, error) {
	limit := req.Limit
	if limit == 0 {
		limit = defaultLimit
	}
	f := AuditFilter{Limit: limit + 1}
	if sc.tenant != nil {
		f.TenantIDs = []string{sc.tenant.ID}
	} else if !sc.soc {
		return Message{}, errNotLinked
	}
	entries, err := s.store.FindAudit(ctx, f)
	if err != nil {
		return Message{}, fmt.Errorf("audit: %w", err)
	}
	more := ""
	if len(entries) > limit {
		entries, more = entries[:limit], "older entries not shown"
	}
	detailed := s.isSOCUser(cmd)
	l := &List{Header: "Audit", Empty: "No audit entries.", More: more}
	for _, e := range entries {
		who := e.Actor
		if detailed && e.Identity != "" && e.Identity != e.Actor {
			who += " (" + e.Identity + ")"
		}
		row := fmt.Sprintf("%s · %s · %s", e.Time.UTC().Format("2006-01-02 15:04:05Z"), who, e.Action)
		if e.Target != "" {
			row += " " + e.Target
		}
		if sc.soc && e.TenantID != "" {
			row += " · tenant " + e.TenantID
		}
		row += " · " + e.Outcome
		if detailed && e.Detail != "" {
			row += " · " + truncate(e.Detail, 120)
		}
		l.Rows = append(l.Rows, row)
	}
	return Message{Kind: MessageList, List: l}, nil
}
