package bot

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// scope is what a channel lets a command see: every active tenant (SOC
// channel), the one linked tenant (customer channel), or nothing.
type scope struct {
	soc    bool
	tenant *Tenant // customer channel's tenant
}

func (sc scope) linked() bool { return sc.soc || sc.tenant != nil }

// who may run what (DESIGN §4.4): one table for typed commands and clicks.
type permission int

const (
	permAnyone  permission = iota // anyone in a linked or SOC channel
	permActor                     // SOC users; customers when customers_can_ack
	permSOC                       // SOC users only
	permChannel                   // anyone in the channel (Decline)
	permHelp                      // anyone anywhere
)

var permissions = map[string]permission{
	"help": permHelp, "alerts": permAnyone, "show": permAnyone, "rules": permAnyone,
	"status": permAnyone, "audit": permAnyone,
	"ack": permActor, "resolve": permActor, "comment": permActor, "reopen": permActor,
	"onboard": permSOC, "offboard": permSOC, "link": permSOC, "unlink": permSOC,
	"tenants": permSOC, "rules add": permSOC, "rules remove": permSOC,
	"confirm": permSOC, "decline": permChannel,
}

// Execute runs one typed command or click and returns the reply for the
// asker. Public effects (card updates, thread lines, prompts) go through
// the outbox.
func (s *Service) Execute(ctx context.Context, cmd Command) Message {
	start := time.Now()
	name, msg := s.execute(ctx, cmd)
	s.obs.CommandDone(cmd.Platform, name, time.Since(start))
	msg.Ephemeral = true
	if msg.Kind == "" {
		msg.Kind = MessageText
	}
	s.kick()
	return msg
}

func (s *Service) execute(ctx context.Context, cmd Command) (string, Message) {
	sc, err := s.scopeOf(ctx, cmd.Channel)
	if err != nil {
		return "error", s.errorReply(ctx, err)
	}
	if cmd.Origin == OriginClick {
		return s.click(ctx, cmd, sc)
	}
	req, err := ParseRequest(cmd.Text)
	if err != nil {
		return "invalid", s.errorReply(ctx, err)
	}
	if err := s.authorize(cmd, sc, req.Name); err != nil {
		s.auditRefusal(ctx, cmd, sc, req.Name, req.AlertRef, err)
		return req.Name, s.errorReply(ctx, err)
	}
	msg, err := s.run(ctx, cmd, sc, req)
	if err != nil {
		return req.Name, s.errorReply(ctx, err)
	}
	return req.Name, msg
}

func (s *Service) run(ctx context.Context, cmd Command, sc scope, req Request) (Message, error) {
	switch req.Name {
	case "help":
		return plainText(HelpText()), nil
	case "alerts":
		return s.cmdAlerts(ctx, sc, req)
	case "show":
		return s.cmdShow(ctx, sc, req)
	case "ack", "resolve", "comment", "reopen":
		return s.cmdAction(ctx, cmd, sc, req)
	case "rules":
		return s.cmdRules(ctx, cmd, sc)
	case "rules add":
		return s.cmdRulesAdd(ctx, cmd, sc, req)
	case "rules remove":
		return s.cmdRulesRemove(ctx, cmd, sc, req)
	case "link":
		return s.cmdLink(ctx, cmd, sc, req)
	case "unlink":
		return s.cmdUnlink(ctx, cmd, sc)
	case "tenants":
		return s.cmdTenants(ctx)
	case "status":
		return s.cmdStatus(ctx, cmd, sc)
	case "audit":
		return s.cmdAudit(ctx, cmd, sc, req)
	case "onboard":
		return s.cmdOnboard(ctx, cmd, sc, req)
	case "offboard":
		return s.cmdOffboard(ctx, cmd, sc)
	}
	return Message{}, Errorf(EINVALID, "Unknown command %q. Type /mssp help for the list.", req.Name)
}

func (s *Service) scopeOf(ctx context.Context, ch ChannelRef) (scope, error) {
	if s.isSOCChannel(ch) {
		return scope{soc: true}, nil
	}
	id, err := s.store.TenantOfChannel(ctx, ch)
	if ErrorCode(err) == ENOTFOUND {
		return scope{}, nil
	}
	if err != nil {
		return scope{}, fmt.Errorf("scope of %s: %w", ch, err)
	}
	t, err := s.store.FindTenant(ctx, id)
	if err != nil {
		return scope{}, fmt.Errorf("scope of %s: %w", ch, err)
	}
	return scope{tenant: &t}, nil
}

func (s *Service) isSOCChannel(ch ChannelRef) bool { return slices.Contains(s.cfg.SOCChannels, ch) }

func (s *Service) isSOCUser(cmd Command) bool { return slices.Contains(s.cfg.SOCUsers, cmd.UserRef()) }

var errNotLinked = Errorf(EFORBIDDEN, "This channel is not linked to a customer tenant. A SOC user can link it with /mssp link TENANT_ID or /mssp onboard TENANT_ID NAME.")

// authorize applies the permission table; the channel scope is checked
// again by each command (a customer channel only ever sees its tenant).
func (s *Service) authorize(cmd Command, sc scope, name string) error {
	p, ok := permissions[name]
	if !ok {
		return Errorf(EFORBIDDEN, "Not allowed.")
	}
	soc := s.isSOCUser(cmd)
	switch p {
	case permHelp:
		return nil
	case permSOC:
		if !soc {
			return Errorf(EFORBIDDEN, "Only the MSSP's SOC analysts can use %s.", name)
		}
		return nil
	case permChannel:
		return nil
	case permActor:
		if !sc.linked() {
			return errNotLinked
		}
		if soc || (sc.tenant != nil && s.cfg.CustomersCanAck) {
			return nil
		}
		return Errorf(EFORBIDDEN, "Only the MSSP's SOC analysts can %s alerts here.", name)
	default:
		if !sc.linked() {
			return errNotLinked
		}
		return nil
	}
}

// identity is the analyst's identity for assignedTo and the audit.
func (s *Service) identity(cmd Command) string {
	if id := s.cfg.Identities[cmd.UserRef()]; id != "" {
		return id
	}
	if cmd.Email != "" {
		return cmd.Email
	}
	return "msspbot:" + cmd.Platform + ":" + cmd.User
}

// displayName is how a chat user is named in public thread lines.
func displayName(cmd Command) string {
	if cmd.UserName != "" {
		return cmd.UserName
	}
	return cmd.Platform + " user " + cmd.User
}

func (s *Service) errorReply(ctx context.Context, err error) Message {
	if ErrorCode(err) == EINTERNAL {
		s.logErr(ctx, "command failed", "err", err)
	}
	return Message{Kind: MessageText, Text: ErrorMessage(err)}
}

func textMessage(format string, args ...any) Message {
	if len(args) == 0 {
		return Message{Kind: MessageText, Text: format}
	}
	return Message{Kind: MessageText, Text: fmt.Sprintf(format, args...)}
}

func (s *Service) audit(ctx context.Context, e AuditEntry) {
	if e.Time.IsZero() {
		e.Time = s.cfg.Now()
	}
	if err := s.store.CreateAudit(ctx, e); err != nil {
		s.logErr(ctx, "audit write failed", "action", e.Action, "err", err)
	}
}

func (s *Service) auditEntry(cmd Command, sc scope, action, target, outcome string) AuditEntry {
	e := AuditEntry{
		Time: s.cfg.Now(), Actor: cmd.UserRef(), Identity: s.identity(cmd),
		Channel: cmd.Channel, Action: action, Target: target, Outcome: outcome,
	}
	if sc.tenant != nil {
		e.TenantID = sc.tenant.ID
	}
	return e
}

// auditRefusal records refused attempts at state changes; reads are not audited.
func (s *Service) auditRefusal(ctx context.Context, cmd Command, sc scope, name, target string, err error) {
	if p := permissions[name]; p == permAnyone || p == permHelp || name == "tenants" {
		return
	}
	s.audit(ctx, s.auditEntry(cmd, sc, name, target, "refused: "+firstLine(ErrorMessage(err))))
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// visibleTenants are the tenants a scope may read.
func (s *Service) visibleTenants(ctx context.Context, sc scope) ([]Tenant, error) {
	if sc.tenant != nil {
		return []Tenant{*sc.tenant}, nil
	}
	if !sc.soc {
		return nil, errNotLinked
	}
	ts, err := s.store.FindTenants(ctx, TenantActive, TenantFailing)
	if err != nil {
		return nil, fmt.Errorf("visible tenants: %w", err)
	}
	return ts, nil
}

// findAlert resolves an ALERT reference within the scope. A customer
// channel sees only its tenant: another tenant's id is "not found", the
// same answer as a missing id.
func (s *Service) findAlert(ctx context.Context, sc scope, ref string) (Alert, Tenant, error) {
	notFound := Errorf(ENOTFOUND, "Alert `%s` not found.", ref)
	tenantPart, alertID, qualified := strings.Cut(ref, "/")
	if !qualified {
		alertID, tenantPart = ref, ""
	} else if !ValidTenantID(tenantPart) {
		alertID, tenantPart, qualified = ref, "", false
	}
	if alertID == "" {
		return Alert{}, Tenant{}, notFound
	}
	if sc.tenant != nil {
		if qualified && NormalizeTenantID(tenantPart) != sc.tenant.ID {
			return Alert{}, Tenant{}, notFound
		}
		a, err := s.store.FindAlert(ctx, sc.tenant.ID, alertID)
		if ErrorCode(err) == ENOTFOUND {
			return Alert{}, Tenant{}, notFound
		}
		return a, *sc.tenant, err
	}
	tenants, err := s.visibleTenants(ctx, sc)
	if err != nil {
		return Alert{}, Tenant{}, err
	}
	byID := make(map[string]Tenant, len(tenants))
	ids := make([]string, 0, len(tenants))
	for _, t := range tenants {
		byID[t.ID] = t
		ids = append(ids, t.ID)
	}
	if qualified {
		tid := NormalizeTenantID(tenantPart)
		t, ok := byID[tid]
		if !ok {
			return Alert{}, Tenant{}, notFound
		}
		a, err := s.store.FindAlert(ctx, tid, alertID)
		if ErrorCode(err) == ENOTFOUND {
			return Alert{}, Tenant{}, notFound
		}
		return a, t, err
	}
	found, err := s.store.FindAlertsByID(ctx, alertID, ids)
	if err != nil {
		return Alert{}, Tenant{}, fmt.Errorf("find alert: %w", err)
	}
	switch len(found) {
	case 0:
		return Alert{}, Tenant{}, notFound
	case 1:
		return found[0], byID[found[0].TenantID], nil
	}
	var opts []string
	for _, a := range found {
		opts = append(opts, "`"+a.TenantID+"/"+a.ID+"` ("+byID[a.TenantID].Name+")")
	}
	return Alert{}, Tenant{}, Errorf(EINVALID, "Alert id `%s` exists in several tenants; use TENANT_ID/ALERT_ID: %s", alertID, strings.Join(opts, ", "))
}

func plainText(s string) Message { return Message{Kind: MessageText, Text: s} }

// logErr logs at ERROR, or at DEBUG when ctx was cancelled: failures that a
// shutdown causes are expected and not worth waking anyone.
func (s *Service) logErr(ctx context.Context, msg string, args ...any) {
	if ctx.Err() != nil {
		s.log.DebugContext(ctx, msg, args...)
		return
	}
	s.log.ErrorContext(ctx, msg, args...)
}
