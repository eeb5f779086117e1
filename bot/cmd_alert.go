package bot

import (
	"context"
	"fmt"
	"strings"
	"time"
)

const (
	defaultLimit = 20
	// CountCap caps counts in lists ("1,000+ more").
	CountCap = 1000
)

func (s *Service) cmdAlerts(ctx context.Context, sc scope, req Request) (Message, error) {
	if req.TenantID != "" && !sc.soc {
		return Message{}, Errorf(EINVALID, "tenant= is only valid in SOC channels.\nUsage: /mssp %s", Usage("alerts"))
	}
	tenants, err := s.visibleTenants(ctx, sc)
	if err != nil {
		return Message{}, err
	}
	names := make(map[string]string, len(tenants))
	var ids []string
	for _, t := range tenants {
		names[t.ID] = t.Name
		if req.TenantID == "" || req.TenantID == t.ID {
			ids = append(ids, t.ID)
		}
	}
	if len(ids) == 0 {
		if req.TenantID != "" {
			return Message{}, Errorf(ENOTFOUND, "Tenant %s is not an active tenant.", req.TenantID)
		}
		return Message{Kind: MessageList, List: &List{Header: "Alerts", Empty: "No active tenants."}}, nil
	}
	limit := req.Limit
	if limit == 0 {
		limit = defaultLimit
	}
	status := req.StatusFilter
	if status == "" {
		status = "open"
	}
	f := AlertFilter{TenantIDs: ids, MinSeverity: req.MinSeverity, Limit: limit}
	switch status {
	case "open":
		f.Statuses = []AlertStatus{StatusNew, StatusInProgress}
	case "new":
		f.Statuses = []AlertStatus{StatusNew}
	case "inprogress":
		f.Statuses = []AlertStatus{StatusInProgress}
	case "resolved":
		f.Statuses = []AlertStatus{StatusResolved}
	}
	alerts, total, err := s.store.FindAlerts(ctx, f)
	if err != nil {
		return Message{}, fmt.Errorf("alerts: %w", err)
	}
	header := fmt.Sprintf("%s alerts", strings.ToUpper(status[:1])+status[1:])
	if req.MinSeverity != SeverityUnspecified {
		header += ", severity ≥ " + req.MinSeverity.String()
	}
	if sc.tenant != nil {
		header += " · " + sc.tenant.Name
	}
	l := &List{Header: header, Empty: "No matching alerts."}
	for _, a := range alerts {
		l.Rows = append(l.Rows, alertRow(a, names[a.TenantID], sc.soc))
	}
	l.More = moreText(total, len(alerts))
	return Message{Kind: MessageList, Title: header, List: l}, nil
}

func alertRow(a Alert, tenantName string, withTenant bool) string {
	row := fmt.Sprintf("%s %s · `%s` · %s · %s", SeverityEmoji(a.Severity), a.Severity, a.ID, a.Title, a.Status)
	if a.AssignedTo != "" {
		row += " (" + a.AssignedTo + ")"
	}
	if withTenant {
		row += " · " + tenantName
	}
	if !a.CreatedAt.IsZero() {
		row += " · " + a.CreatedAt.UTC().Format("2006-01-02 15:04Z")
	}
	return row
}

// moreText says how many rows were left out; total is capped at CountCap.
func moreText(total, shown int) string {
	if total <= shown {
		return ""
	}
	if total >= CountCap {
		return fmt.Sprintf("%s+ more", formatCount(CountCap-shown))
	}
	return fmt.Sprintf("%s more", formatCount(total-shown))
}

func formatCount(n int) string {
	s := fmt.Sprint(n)
	if n < 1000 {
		return s
	}
	return s[:len(s)-3] + "," + s[len(s)-3:]
}

func (s *Service) cmdShow(ctx context.Context, sc scope, req Request) (Message, error) {
	a, t, err := s.findAlert(ctx, sc, req.AlertRef)
	if err != nil {
		return Message{}, err
	}
	rows := []string{
		fmt.Sprintf("%s %s · %s", SeverityEmoji(a.Severity), a.Severity, a.Title),
		"Alert: `" + a.ID + "`",
		"Tenant: " + t.Name + " (" + t.ID + ")",
		"Status: " + string(a.Status) + assigned(a.AssignedTo),
	}
	add := func(label, v string) {
		if v != "" {
			rows = append(rows, label+": "+v)
		}
	}
	add("Classification", string(a.Classification))
	add("Determination", a.Determination)
	add("Category", a.Category)
	add("Detection source", a.DetectionSource)
	add("Service source", ServiceSourceName(a.ServiceSource))
	add("Device", a.DeviceName)
	add("Device group", a.DeviceGroup)
	add("User", a.UserName)
	if !a.CreatedAt.IsZero() {
		add("Created", a.CreatedAt.UTC().Format(time.RFC3339))
	}
	if !a.LastUpdatedAt.IsZero() {
		add("Last updated", a.LastUpdatedAt.UTC().Format(time.RFC3339))
	}
	if len(a.MitreTechniques) > 0 {
		add("MITRE", strings.Join(a.MitreTechniques, ", "))
	}
	if a.IncidentID != "" {
		inc := a.IncidentID
		if a.IncidentURL != "" {
			inc += " " + a.IncidentURL
		}
		add("Incident", inc)
	}
	add("Description", truncate(a.Description, 500))
	for i, e := range a.Evidence {
		if i == 10 {
			rows = append(rows, fmt.Sprintf("… %d more evidence", len(a.Evidence)-10))
			break
		}
		ev := "Evidence: " + e.Type + " " + e.Name
		if e.Verdict != "" {
			ev += " (" + e.Verdict + ")"
		}
		rows = append(rows, ev)
	}
	add("Portal", a.PortalURL)
	return Message{Kind: MessageList, List: &List{Header: "Alert " + a.ID, Rows: rows}}, nil
}

func assigned(who string) string {
	if who == "" {
		return ""
	}
	return ", assigned to " + who
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// cmdAction handles ack, resolve, comment and reopen: the local change,
// the write-back, the thread line on every delivery, the card edits and
// the audit entry are recorded together.
func (s *Service) cmdAction(ctx context.Context, cmd Command, sc scope, req Request) (Message, error) {
	a, t, err := s.findAlert(ctx, sc, req.AlertRef)
	if err != nil {
		s.auditRefusal(ctx, cmd, sc, req.Name, req.AlertRef, err)
		return Message{}, err
	}
	who := displayName(cmd)
	ident := s.identity(cmd)
	act := Action{TenantID: a.TenantID, AlertID: a.ID, Now: s.cfg.Now(), Update: AlertUpdate{ChangedBy: &who}}
	wb := &WriteBack{TenantID: a.TenantID, AlertID: a.ID, Kind: WriteBackKind(req.Name), Actor: ident, Comment: req.Comment, CreatedAt: act.Now}
	var reply string
	switch req.Name {
	case "ack":
		if a.Status == StatusResolved {
			return Message{}, Errorf(ECONFLICT, "Alert `%s` is resolved; reopen it first.", a.ID)
		}
		st := StatusInProgress
		act.Update.Status, act.Update.AssignedTo = &st, &ident
		wb.Status, wb.AssignedTo = StatusInProgress, ident
		if wb.Comment == "" {
			wb.Comment = "Acknowledged in msspbot by " + ident
		}
		act.ThreadText = "👀 Acknowledged by " + who + withComment(req.Comment)
		reply = fmt.Sprintf("Acknowledged `%s`; it is assigned to %s.", a.ID, ident)
	case "resolve":
		st := StatusResolved
		det := req.Determination
		if det == "" {
			det = "Other"
		}
		class := req.Classification
		act.Update.Status, act.Update.Classification, act.Update.Determination = &st, &class, &det
		wb.Status, wb.Classification, wb.Determination = StatusResolved, class, det
		desc := string(class)
		if desc == "" {
			desc = "unclassified"
		}
		act.ThreadText = fmt.Sprintf("✅ Resolved by %s as %s (%s)%s", who, desc, det, withComment(req.Comment))
		reply = fmt.Sprintf("Resolved `%s` as %s (%s).", a.ID, desc, det)
	case "comment":
		act.ThreadText = "💬 " + who + ": " + req.Comment
		reply = fmt.Sprintf("Comment added to `%s`.", a.ID)
	case "reopen":
		if a.Status != StatusResolved {
			return Message{}, Errorf(ECONFLICT, "Alert `%s` is not resolved (it is %s).", a.ID, a.Status)
		}
		st := StatusNew
		act.Update.Status = &st
		wb.Status = StatusNew
		act.ThreadText = "↩️ Reopened by " + who + withComment(req.Comment)
		reply = fmt.Sprintf("Reopened `%s`.", a.ID)
	}
	if s.cfg.WriteBack {
		act.WriteBack = wb
	} else {
		reply += " (Write-back to Defender is off: the change is local to msspbot.)"
	}
	act.Audit = s.auditEntry(cmd, sc, req.Name, a.ID, "ok")
	act.Audit.TenantID = t.ID
	act.Audit.Detail = req.Comment
	if err := s.store.RecordAction(ctx, act); err != nil {
		return Message{}, fmt.Errorf("%s %s: %w", req.Name, a.ID, err)
	}
	return plainText(reply), nil
}

func withComment(c string) string {
	if c == "" {
		return ""
	}
	return ": " + c
}

// click turns a button press into the same commands, checked against the
// message it was clicked on.
func (s *Service) click(ctx context.Context, cmd Command, sc scope) (string, Message) {
	switch cmd.Action {
	case ActionAck, ActionResolve:
		name := map[string]string{ActionAck: "ack", ActionResolve: "resolve"}[cmd.Action]
		if err := s.authorize(cmd, sc, name); err != nil {
			s.auditRefusal(ctx, cmd, sc, name, cmd.Value, err)
			return name, s.errorReply(ctx, err)
		}
		d, err := s.checkClickedCard(ctx, cmd, sc)
		if err != nil {
			s.auditRefusal(ctx, cmd, sc, name, cmd.Value, err)
			return name, s.errorReply(ctx, err)
		}
		if cmd.Action == ActionResolve {
			return name, resolveChooser(cmd.Value)
		}
		// Qualify with the card's tenant so an id shared by two tenants
		// stays unambiguous in a SOC channel.
		msg, err := s.cmdAction(ctx, cmd, sc, Request{Name: "ack", AlertRef: d.TenantID + "/" + d.AlertID})
		if err != nil {
			return name, s.errorReply(ctx, err)
		}
		return name, msg
	case ActionResolveAs:
		// The chooser is ephemeral; adapters pass the id of the card it was
		// opened from, which is checked like any card click.
		// Split at the last colon: the class never contains one.
		i := strings.LastIndex(cmd.Value, ":")
		ok := i > 0
		id, class := cmd.Value, ""
		if ok {
			id, class = cmd.Value[:i], cmd.Value[i+1:]
		}
		c, valid := ParseClassification(class)
		if !ok || !valid || c == "" {
			return "resolve", textMessage("That button is not valid any more.")
		}
		if err := s.authorize(cmd, sc, "resolve"); err != nil {
			s.auditRefusal(ctx, cmd, sc, "resolve", id, err)
			return "resolve", s.errorReply(ctx, err)
		}
		card := cmd
		card.Value = id
		d, err := s.checkClickedCard(ctx, card, sc)
		if err != nil {
			s.auditRefusal(ctx, cmd, sc, "resolve", id, err)
			return "resolve", s.errorReply(ctx, err)
		}
		msg, err := s.cmdAction(ctx, cmd, sc, Request{Name: "resolve", AlertRef: d.TenantID + "/" + d.AlertID, Classification: c})
		if err != nil {
			return "resolve", s.errorReply(ctx, err)
		}
		return "resolve", msg
	case ActionLinkConfrm:
		return "confirm", s.clickLinkConfirm(ctx, cmd, sc)
	case ActionConfirm:
		return "confirm", s.clickAccessConfirm(ctx, cmd, sc)
	case ActionDecline:
		return "decline", s.clickDecline(ctx, cmd, sc)
	case ActionGrant:
		return "grant", s.clickGrant(ctx, cmd, sc)
	}
	return "click", textMessage("Unknown button.")
}

// checkClickedCard refuses a click unless the clicked message is a card of
// that very alert in this channel.
func (s *Service) checkClickedCard(ctx context.Context, cmd Command, sc scope) (Delivery, error) {
	refused := Errorf(EFORBIDDEN, "That button does not belong to this alert's card.")
	if cmd.MessageID == "" || cmd.Value == "" {
		return Delivery{}, refused
	}
	d, err := s.store.FindDeliveryByMessage(ctx, cmd.Channel, cmd.MessageID)
	if ErrorCode(err) == ENOTFOUND {
		return Delivery{}, refused
	}
	if err != nil {
		return Delivery{}, fmt.Errorf("check click: %w", err)
	}
	if d.Kind != DeliveryAlert || d.AlertID != cmd.Value || d.DigestID != 0 {
		return Delivery{}, refused
	}
	if sc.tenant != nil && d.TenantID != sc.tenant.ID {
		return Delivery{}, refused
	}
	return d, nil
}

func resolveChooser(alertID string) Message {
	return Message{
		Kind: MessageText,
		Text: "Resolve `" + alertID + "` as:",
		Buttons: []Button{
			{Label: "True positive", ActionID: ActionResolveAs, Value: alertID + ":truepositive", Style: ButtonDanger},
			{Label: "False positive", ActionID: ActionResolveAs, Value: alertID + ":falsepositive"},
			{Label: "Informational", ActionID: ActionResolveAs, Value: alertID + ":informational"},
		},
	}
}

// AutocompleteAlerts suggests up to 25 open alert ids starting with prefix
// that the channel may see (its tenant's; every active tenant's in a SOC
// channel). Chat adapters call it while a user types an ALERT option.
func (s *Service) AutocompleteAlerts(ctx context.Context, ch ChannelRef, user, prefix string) []string {
	sc, err := s.scopeOf(ctx, ch)
	if err != nil || !sc.linked() {
		return nil
	}
	tenants, err := s.visibleTenants(ctx, sc)
	if err != nil || len(tenants) == 0 {
		return nil
	}
	ids := make([]string, len(tenants))
	for i, t := range tenants {
		ids[i] = t.ID
	}
	alerts, _, err := s.store.FindAlerts(ctx, AlertFilter{TenantIDs: ids, Statuses: []AlertStatus{StatusNew, StatusInProgress}, Limit: 200})
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range alerts {
		if strings.HasPrefix(strings.ToLower(a.ID), strings.ToLower(prefix)) {
			out = append(out, a.ID)
			if len(out) == 25 {
				break
			}
		}
	}
	return out
}
