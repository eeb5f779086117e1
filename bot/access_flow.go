package bot

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// consentURLPlaceholder stands for the Grant link in stored prompts: the
// state is a secret the database must not hold, so the URL is filled in
// only when the prompt is rendered for posting.
const consentURLPlaceholder = "{consent_url}"

// newState returns a fresh consent state (32 random bytes) and its hash.
func newState() (state, hash string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥1.24)
	state = base64.RawURLEncoding.EncodeToString(b)
	return state, hashState(state)
}

func hashState(state string) string {
	sum := sha256.Sum256([]byte(state))
	return hex.EncodeToString(sum[:])
}

func (s *Service) cmdOnboard(ctx context.Context, cmd Command, sc scope, req Request) (Message, error) {
	refuse := func(err *Error) (Message, error) {
		s.auditRefusal(ctx, cmd, sc, "onboard", req.TenantID, err)
		return Message{}, err
	}
	if sc.soc {
		return refuse(Errorf(EINVALID, "Run onboard in the customer's own channel, not in a SOC channel."))
	}
	if s.cfg.PublicURL == "" || s.cfg.ConsentURL == nil {
		return refuse(Errorf(EUNAVAILABLE, "Onboarding is disabled: set http.public_url (the consent redirect needs it)."))
	}
	tid := req.TenantID
	existing, err := s.store.FindTenant(ctx, tid)
	exists := err == nil
	if err != nil && ErrorCode(err) != ENOTFOUND {
		return Message{}, fmt.Errorf("onboard: %w", err)
	}
	if exists && existing.FromConfig {
		return refuse(Errorf(EFORBIDDEN, "Tenant %s is managed in config.", existing.Name))
	}
	if sc.tenant != nil && sc.tenant.ID != tid {
		return refuse(Errorf(ECONFLICT, "This channel is already linked to another tenant (%s).", sc.tenant.Name))
	}
	if exists && existing.State != TenantRevoked {
		chs, err := s.store.ChannelsOfTenant(ctx, tid)
		if err != nil {
			return Message{}, fmt.Errorf("onboard: %w", err)
		}
		for _, ch := range chs {
			if ch != cmd.Channel {
				return refuse(Errorf(ECONFLICT, "Tenant %s is linked to another channel.", tid))
			}
		}
		if existing.State == TenantActive {
			return plainText(fmt.Sprintf("%s (`%s`) is already active.", existing.Name, tid)), nil
		}
	}
	now := s.cfg.Now()
	// Pre-consent check: if a token is issued already, the customer's
	// redirect would prove nothing, so a SOC analyst must confirm instead.
	// Only a refusal (401/403, AADSTS) means "not consented": an Entra
	// outage must not let the customer path stand in for the Confirm.
	if s.deps.Access != nil {
		switch err := s.deps.Access.CheckAccess(ctx, tid, true); {
		case err == nil:
			return s.requestConfirm(ctx, cmd, sc, req, now)
		case !errors.Is(err, ErrAuth):
			s.log.WarnContext(ctx, "onboard: access check failed", "tenant", tid, "err", err)
			return refuse(Errorf(EUNAVAILABLE, "Could not check with Microsoft Entra whether msspbot already has access to %s; nothing was changed. Try again in a minute.", tid))
		}
	}
	if err := s.store.CreateTenant(ctx, Tenant{ID: tid, Name: req.TenantName, State: TenantPending, CreatedAt: now}); err != nil {
		return Message{}, fmt.Errorf("onboard: %w", err)
	}
	if sc.tenant == nil {
		if err := s.store.Link(ctx, cmd.Channel, tid); err != nil {
			return Message{}, fmt.Errorf("onboard: %w", err)
		}
	}
	// The new request supersedes open ones (consent or Confirm); their
	// prompts say so, so that nobody acts on a stale Grant link.
	s.supersedeOpen(ctx, tid, "↪️ Replaced by a newer approval prompt; use that one.", AccessConsent, AccessConfirm)
	state, hash := newState()
	r, err := s.store.CreateAccessRequest(ctx, AccessRequest{
		Kind: AccessConsent, TenantID: tid, TenantName: req.TenantName, Channel: cmd.Channel,
		RequestedBy: cmd.UserRef(), StateHash: hash, ExpiresAt: now.Add(s.cfg.ConsentTTL),
		Outcome: AccessOpen, CreatedAt: now,
	})
	if err != nil {
		return Message{}, fmt.Errorf("onboard: %w", err)
	}
	s.statesMu.Lock()
	s.states[r.ID] = state
	s.statesMu.Unlock()
	d, err := s.noticeMessage(ctx, cmd.Channel, tid, s.consentPrompt(r, displayName(cmd)))
	if err != nil {
		return Message{}, err
	}
	d.RefID = strconv.FormatInt(r.ID, 10)
	if err := s.store.SetAccessPrompt(ctx, r.ID, d.ID); err != nil {
		return Message{}, fmt.Errorf("onboard: %w", err)
	}
	e := s.auditEntry(cmd, sc, "onboard", tid, "requested consent")
	e.TenantID, e.Detail = tid, req.TenantName
	s.audit(ctx, e)
	return plainText(fmt.Sprintf("Approval prompt for %s posted in this channel; it expires in %s.", req.TenantName, s.cfg.ConsentTTL)), nil
}

func (s *Service) consentPrompt(r AccessRequest, asker string) Message {
	perms := strings.Join(s.cfg.Permissions, ", ")
	if perms == "" {
		perms = "read Defender alerts"
	}
	id := strconv.FormatInt(r.ID, 10)
	return Message{
		Kind:  MessagePrompt,
		Title: "Grant your MSSP access to Microsoft Defender alerts",
		Text: fmt.Sprintf("%s asks to connect %s (tenant `%s`) to msspbot. An admin of your organisation can grant access in Microsoft Entra ID (admin consent). You can revoke it at any time by deleting the enterprise app.",
			asker, r.TenantName, r.TenantID),
		Fields: []Field{
			{Label: "Requested by", Value: asker},
			{Label: "Permissions (application)", Value: perms},
			{Label: "Expires", Value: r.ExpiresAt.UTC().Format("2006-01-02 15:04Z")},
		},
		Buttons: []Button{
			{Label: "Grant access", ActionID: ActionGrant, Value: id, URL: consentURLPlaceholder, Style: ButtonPrimary},
			{Label: "Decline", ActionID: ActionDecline, Value: id, Style: ButtonDanger},
		},
	}
}

func (s *Service) requestConfirm(ctx context.Context, cmd Command, sc scope, req Request, now time.Time) (Message, error) {
	if len(s.cfg.SOCChannels) == 0 {
		return Message{}, Errorf(EUNAVAILABLE, "The app is already consented in this tenant and no SOC channel is configured to confirm it.")
	}
	soc := s.cfg.SOCChannels[0]
	s.supersedeOpen(ctx, req.TenantID, "↪️ Replaced: the tenant needs a SOC confirmation instead.", AccessConsent, AccessConfirm)
	r, err := s.store.CreateAccessRequest(ctx, AccessRequest{
		Kind: AccessConfirm, TenantID: req.TenantID, TenantName: req.TenantName, Channel: cmd.Channel,
		RequestedBy: cmd.UserRef(), ExpiresAt: now.Add(s.cfg.ConsentTTL), Outcome: AccessOpen, CreatedAt: now,
	})
	if err != nil {
		return Message{}, fmt.Errorf("onboard: %w", err)
	}
	d, err := s.noticeMessage(ctx, soc, req.TenantID, Message{
		Kind:  MessagePrompt,
		Title: "Confirm onboarding of an already-consented tenant",
		Text: fmt.Sprintf("%s asks to onboard %s (tenant `%s`) into %s. msspbot's app is already consented in that tenant, so the customer's consent cannot prove the tenant belongs to this channel. Confirm only if it does.",
			displayName(cmd), req.TenantName, req.TenantID, cmd.Channel),
		Buttons: []Button{{Label: "Confirm", ActionID: ActionConfirm, Value: strconv.FormatInt(r.ID, 10), Style: ButtonPrimary}},
	})
	if err != nil {
		return Message{}, err
	}
	if err := s.store.SetAccessPrompt(ctx, r.ID, d.ID); err != nil {
		return Message{}, fmt.Errorf("onboard: %w", err)
	}
	e := s.auditEntry(cmd, sc, "onboard", req.TenantID, "confirmation requested (already consented)")
	e.TenantID = req.TenantID
	s.audit(ctx, e)
	return plainText(fmt.Sprintf("msspbot's app is already consented in %s; a SOC analyst must confirm in %s.", req.TenantName, soc)), nil
}

func (s *Service) clickAccessConfirm(ctx context.Context, cmd Command, sc scope) Message {
	if err := s.authorize(cmd, sc, "confirm"); err != nil {
		s.auditRefusal(ctx, cmd, sc, "confirm", cmd.Value, err)
		return s.errorReply(ctx, err)
	}
	r, ok := s.openRequest(ctx, cmd.Value, AccessConfirm)
	if !ok || !s.isSOCChannel(cmd.Channel) {
		return plainText("This request is not open any more.")
	}
	now := s.cfg.Now()
	if now.After(r.ExpiresAt) {
		s.closeRequest(ctx, r, AccessExpired, "", "⌛ Expired.")
		e := s.auditEntry(cmd, sc, "confirm", r.TenantID, "refused: expired")
		e.TenantID = r.TenantID
		s.audit(ctx, e)
		return plainText("This request has expired; run /mssp onboard again.")
	}
	// The link is made now: refuse if the channel or tenant moved meanwhile.
	if id, err := s.store.TenantOfChannel(ctx, r.Channel); err == nil && id != r.TenantID {
		return plainText("That channel is now linked to another tenant; nothing changed.")
	}
	if err := s.store.CloseAccessRequest(ctx, r.ID, AccessGranted, "confirmed by "+cmd.UserRef(), now); err != nil {
		return plainText("This request is not open any more.")
	}
	// No older consent link may later activate the tenant elsewhere.
	s.supersedeOpen(ctx, r.TenantID, "↪️ Replaced: a SOC analyst confirmed this tenant.", AccessConsent)
	if err := s.activate(ctx, r, now); err != nil {
		e := s.auditEntry(cmd, sc, "confirm", r.TenantID, "refused: "+firstLine(ErrorMessage(err)))
		e.TenantID = r.TenantID
		s.audit(ctx, e)
		return s.errorReply(ctx, err)
	}
	s.editPrompt(ctx, r, AccessGranted, "", "✅ Confirmed by "+displayName(cmd))
	e := s.auditEntry(cmd, sc, "confirm", r.TenantID, "granted")
	e.TenantID = r.TenantID
	s.audit(ctx, e)
	return plainText(fmt.Sprintf("Confirmed: %s is active and linked to %s.", r.TenantName, r.Channel))
}

func (s *Service) clickDecline(ctx context.Context, cmd Command, sc scope) Message {
	r, ok := s.openRequest(ctx, cmd.Value, AccessConsent)
	if !ok || r.Channel != cmd.Channel {
		return plainText("This request is not open any more.")
	}
	if s.cfg.Now().After(r.ExpiresAt) {
		s.closeRequest(ctx, r, AccessExpired, "", "⌛ Expired.")
		return plainText("This request had already expired; nothing was granted.")
	}
	reason := "declined in chat by " + cmd.UserRef()
	if err := s.store.CloseAccessRequest(ctx, r.ID, AccessDeclined, reason, s.cfg.Now()); err != nil {
		return plainText("This request is not open any more.")
	}
	s.forgetState(r.ID)
	s.editPrompt(ctx, r, AccessDeclined, reason, "🚫 Declined by "+displayName(cmd))
	e := s.auditEntry(cmd, sc, "decline", r.TenantID, "declined")
	e.TenantID = r.TenantID
	s.audit(ctx, e)
	for _, ch := range s.cfg.SOCChannels {
		s.notice(ctx, ch, "", fmt.Sprintf("🚫 Access request for %s (`%s`) was declined in %s.", r.TenantName, r.TenantID, r.Channel))
	}
	return plainText("Declined. Nothing was granted.")
}

// clickGrant acknowledges the Grant link button (Slack still sends a click
// for link buttons); in the demo it plays the customer admin's consent.
func (s *Service) clickGrant(ctx context.Context, cmd Command, sc scope) Message {
	if s.deps.SimulateConsent == nil {
		return plainText("")
	}
	r, ok := s.openRequest(ctx, cmd.Value, AccessConsent)
	if !ok || r.Channel != cmd.Channel {
		return plainText("This request is not open any more.")
	}
	s.statesMu.Lock()
	state := s.states[r.ID]
	s.statesMu.Unlock()
	if state == "" {
		return plainText("This prompt's link is not available any more; run /mssp onboard again.")
	}
	if err := s.deps.SimulateConsent(ctx, r.TenantID); err != nil {
		return s.errorReply(ctx, err)
	}
	res := s.ConsentCallback(ctx, url.Values{"admin_consent": {"True"}, "tenant": {r.TenantID}, "state": {state}})
	return plainText("(simulated admin consent) " + res.Title + ": " + res.Text)
}

func (s *Service) openRequest(ctx context.Context, value string, kind AccessKind) (AccessRequest, bool) {
	id, err := strconv.ParseInt(value, 10, 64)
	if err != nil {
		return AccessRequest{}, false
	}
	r, err := s.store.FindAccessRequest(ctx, id)
	if err != nil || r.Kind != kind || r.Outcome != AccessOpen {
		return AccessRequest{}, false
	}
	return r, true
}

func (s *Service) forgetState(id int64) {
	s.statesMu.Lock()
	delete(s.states, id)
	s.statesMu.Unlock()
}

// activate makes a tenant active and linked after a verified grant, tells
// the SOC and asks for a fetch at once.
func (s *Service) activate(ctx context.Context, r AccessRequest, now time.Time) error {
	if err := s.store.CreateTenant(ctx, Tenant{ID: r.TenantID, Name: r.TenantName, State: TenantPending, CreatedAt: now}); err != nil && ErrorCode(err) != ECONFLICT {
		return fmt.Errorf("activate %s: %w", r.TenantID, err)
	}
	if id, err := s.store.TenantOfChannel(ctx, r.Channel); err != nil {
		// The request's channel is not linked (any more): link it only if
		// the tenant has no other channel, so an old request cannot add one.
		chs, err := s.store.ChannelsOfTenant(ctx, r.TenantID)
		if err != nil {
			return fmt.Errorf("activate %s: %w", r.TenantID, err)
		}
		if len(chs) > 0 {
			return Errorf(ECONFLICT, "The tenant is linked to another channel.")
		}
		if err := s.store.Link(ctx, r.Channel, r.TenantID); err != nil {
			return fmt.Errorf("activate %s: %w", r.TenantID, err)
		}
	} else if id != r.TenantID {
		return Errorf(ECONFLICT, "The channel is linked to another tenant.")
	}
	st, zero, empty := TenantActive, 0, ""
	if _, err := s.store.UpdateTenant(ctx, r.TenantID, TenantUpdate{State: &st, ActivatedAt: &now, AuthFailures: &zero, LastError: &empty}); err != nil {
		return fmt.Errorf("activate %s: %w", r.TenantID, err)
	}
	for _, ch := range s.cfg.SOCChannels {
		s.notice(ctx, ch, "", fmt.Sprintf("✅ %s (`%s`) granted access; msspbot now watches it in %s.", r.TenantName, r.TenantID, r.Channel))
	}
	if s.deps.Trigger != nil {
		s.deps.Trigger()
	}
	return nil
}

// supersedeOpen closes the tenant's open requests of the given kinds as
// superseded and updates their prompts.
func (s *Service) supersedeOpen(ctx context.Context, tenantID, line string, kinds ...AccessKind) {
	for _, k := range kinds {
		open, err := s.store.OpenAccessRequests(ctx, tenantID, k)
		if err != nil {
			s.logErr(ctx, "open access requests", "tenant", tenantID, "err", err)
			continue
		}
		for _, r := range open {
			s.closeRequest(ctx, r, AccessSuperseded, "", line)
		}
	}
}

// closeRequest closes an open request and updates its prompt.
func (s *Service) closeRequest(ctx context.Context, r AccessRequest, outcome AccessOutcome, reason, line string) {
	if err := s.store.CloseAccessRequest(ctx, r.ID, outcome, reason, s.cfg.Now()); err != nil {
		return
	}
	s.forgetState(r.ID)
	s.editPrompt(ctx, r, outcome, reason, line)
}

// editPrompt re-renders a request's prompt without its buttons, with the
// outcome, and adds a thread line.
func (s *Service) editPrompt(ctx context.Context, r AccessRequest, outcome AccessOutcome, reason, line string) {
	if r.PromptID == 0 {
		return
	}
	d, err := s.store.FindDelivery(ctx, r.PromptID)
	if err != nil {
		return
	}
	var m Message
	if json.Unmarshal(d.Payload, &m) != nil {
		return
	}
	m.Buttons = nil
	status := map[AccessOutcome]string{
		AccessGranted: "✅ Access granted", AccessDeclined: "🚫 Declined", AccessExpired: "⌛ Expired",
		AccessFailedError: "❌ Consent failed", AccessFailedMismatch: "❌ Consent was for another tenant",
		AccessFailedProof: "❌ Consent could not be verified", AccessSuperseded: "↪️ Superseded by a newer request",
	}[outcome]
	text := status + " · " + s.cfg.Now().UTC().Format("2006-01-02 15:04Z")
	if reason != "" {
		text += " · " + truncate(reason, 300)
	}
	m.Fields = append(m.Fields, Field{Label: "Outcome", Value: text})
	payload, _ := json.Marshal(m)
	if err := s.store.EditDelivery(ctx, d.ID, payload, line); err != nil {
		s.logErr(ctx, "edit prompt", "err", err)
	}
	s.kick()
}

// ConsentResult is what the consent callback page shows (plain text; the
// HTTP layer escapes it).
type ConsentResult struct {
	Status int // HTTP status
	Title  string
	Text   string
}

// ConsentCallback handles Entra's admin-consent redirect in the order of
// DESIGN §3: state, error, tenant mismatch, proof, grant.
func (s *Service) ConsentCallback(ctx context.Context, q url.Values) ConsentResult {
	bad := ConsentResult{Status: 400, Title: "This link is not valid", Text: "The consent link is unknown, already used, expired or replaced by a newer one. Ask your MSSP for a new approval prompt."}
	state := q.Get("state")
	if state == "" || len(state) > 200 {
		return bad
	}
	r, err := s.store.FindAccessRequestByState(ctx, hashState(state))
	if err != nil {
		return bad
	}
	now := s.cfg.Now()
	sys := AuditEntry{Time: now, Actor: "entra", Channel: r.Channel, TenantID: r.TenantID, Action: "consent", Target: strconv.FormatInt(r.ID, 10)}
	if r.Kind != AccessConsent || r.Outcome != AccessOpen {
		// Audited and told in the thread once per request: an old link
		// replayed again and again must not flood the channel.
		if s.firstLateCallback(r.ID) {
			sys.Outcome = "refused: request " + string(r.Outcome)
			s.audit(ctx, sys)
			s.promptLine(ctx, r, "⚠️ A consent callback arrived for this request, which is no longer open ("+string(r.Outcome)+"); nothing changed.")
		} else {
			s.log.WarnContext(ctx, "consent callback for a closed request", "request", r.ID, "outcome", r.Outcome)
		}
		return bad
	}
	if now.After(r.ExpiresAt) {
		s.closeRequest(ctx, r, AccessExpired, "", "⌛ The approval link expired before it was used.")
		sys.Outcome = "refused: expired"
		s.audit(ctx, sys)
		return bad
	}
	if e := q.Get("error"); e != "" {
		desc := truncate(q.Get("error_description"), 300)
		outcome := AccessFailedError
		if e == "access_denied" {
			outcome = AccessDeclined
		}
		reason := truncate(e, 100)
		if desc != "" {
			reason += ": " + desc
		}
		s.closeRequest(ctx, r, outcome, reason, "🚫 The admin did not grant access: "+reason)
		sys.Outcome, sys.Detail = string(outcome), reason
		s.audit(ctx, sys)
		return ConsentResult{Status: 200, Title: "Access was not granted", Text: "Entra reported: " + reason + ". Nothing was granted; your MSSP has been told."}
	}
	if NormalizeTenantID(q.Get("tenant")) != r.TenantID {
		s.closeRequest(ctx, r, AccessFailedMismatch, "consent came from tenant "+truncate(q.Get("tenant"), 60), "❌ The consent was given in a different tenant than requested; nothing was granted.")
		sys.Outcome, sys.Detail = string(AccessFailedMismatch), "callback tenant "+truncate(q.Get("tenant"), 60)
		s.audit(ctx, sys)
		return ConsentResult{Status: 400, Title: "Wrong organisation", Text: "Access was granted in a different Microsoft Entra tenant than the one requested. Nothing was connected. Sign in with an admin account of the requested organisation and ask your MSSP for a new prompt."}
	}
	if s.deps.Access == nil {
		s.closeRequest(ctx, r, AccessFailedProof, "no token provider", "❌ Access could not be verified.")
		sys.Outcome, sys.Detail = string(AccessFailedProof), "no token provider"
		s.audit(ctx, sys)
		return ConsentResult{Status: 400, Title: "Access could not be verified", Text: "msspbot could not verify the grant."}
	}
	if err := s.deps.Access.CheckAccess(ctx, r.TenantID, true); err != nil {
		s.log.WarnContext(ctx, "consent proof failed", "tenant", r.TenantID, "err", err)
		s.closeRequest(ctx, r, AccessFailedProof, "no token could be obtained", "❌ Consent arrived but msspbot could not obtain access to the tenant; nothing was granted.")
		sys.Outcome = string(AccessFailedProof)
		s.audit(ctx, sys)
		return ConsentResult{Status: 400, Title: "Access could not be verified", Text: "msspbot could not obtain access to your tenant with this consent. It may take a few minutes to replicate; ask your MSSP for a new prompt if this persists."}
	}
	if err := s.store.CloseAccessRequest(ctx, r.ID, AccessGranted, "", now); err != nil {
		return bad // a concurrent callback won
	}
	s.forgetState(r.ID)
	if err := s.activate(ctx, r, now); err != nil {
		s.logErr(ctx, "activate after consent", "tenant", r.TenantID, "err", err)
		return ConsentResult{Status: 500, Title: "Something went wrong", Text: "Access was granted but msspbot could not finish; your MSSP has been told."}
	}
	s.editPrompt(ctx, r, AccessGranted, "", "✅ Access granted by the customer's admin; alerts will start arriving shortly.")
	sys.Outcome = string(AccessGranted)
	s.audit(ctx, sys)
	return ConsentResult{Status: 200, Title: "Access granted", Text: fmt.Sprintf("Thank you. %s is now connected to your MSSP's msspbot; you can close this page.", r.TenantName)}
}

// firstLateCallback reports whether this is the first callback for a
// closed request seen by this process (bounded memory).
func (s *Service) firstLateCallback(id int64) bool {
	s.statesMu.Lock()
	defer s.statesMu.Unlock()
	if s.late == nil || len(s.late) > 10000 {
		s.late = map[int64]bool{}
	}
	if s.late[id] {
		return false
	}
	s.late[id] = true
	return true
}

// promptLine adds a thread line under a request's prompt.
func (s *Service) promptLine(ctx context.Context, r AccessRequest, line string) {
	if r.PromptID == 0 {
		return
	}
	d, err := s.store.FindDelivery(ctx, r.PromptID)
	if err != nil {
		return
	}
	_ = s.store.EditDelivery(ctx, d.ID, d.Payload, line)
	s.kick()
}

// renderPrompt fills the Grant link of a consent prompt. After a restart
// the state is gone (only its hash was stored), so a new one is made.
func (s *Service) renderPrompt(ctx context.Context, d Delivery, m Message) (Message, error) {
	i := -1
	for j, b := range m.Buttons {
		if b.URL == consentURLPlaceholder {
			i = j
		}
	}
	if i < 0 {
		return m, nil
	}
	id, _ := strconv.ParseInt(m.Buttons[i].Value, 10, 64)
	r, err := s.store.FindAccessRequest(ctx, id)
	if err != nil || r.Outcome != AccessOpen {
		m.Buttons = append(m.Buttons[:i:i], m.Buttons[i+1:]...)
		return m, nil
	}
	s.statesMu.Lock()
	state := s.states[id]
	if state == "" {
		var hash string
		state, hash = newState()
		if err := s.store.SetAccessState(ctx, id, hash); err != nil {
			s.statesMu.Unlock()
			return Message{}, fmt.Errorf("render prompt: %w", err)
		}
		s.states[id] = state
	}
	s.statesMu.Unlock()
	m.Buttons = append([]Button(nil), m.Buttons...)
	m.Buttons[i].URL = s.cfg.ConsentURL(r.TenantID, state)
	return m, nil
}

func (s *Service) cmdOffboard(ctx context.Context, cmd Command, sc scope) (Message, error) {
	if sc.tenant == nil {
		err := Errorf(EINVALID, "Run offboard in the customer's linked channel.")
		s.auditRefusal(ctx, cmd, sc, "offboard", "", err)
		return Message{}, err
	}
	t := *sc.tenant
	if t.FromConfig {
		err := Errorf(EFORBIDDEN, "Tenant %s is managed in config.", t.Name)
		s.auditRefusal(ctx, cmd, sc, "offboard", t.ID, err)
		return Message{}, err
	}
	// Open prompts lose their buttons first (revoking would close the
	// requests without a word on the prompts).
	s.supersedeOpen(ctx, t.ID, "👋 Withdrawn: the tenant was offboarded.", AccessConsent, AccessConfirm)
	if err := s.store.RevokeTenant(ctx, t.ID); err != nil {
		return Message{}, fmt.Errorf("offboard: %w", err)
	}
	e := s.auditEntry(cmd, sc, "offboard", t.ID, "revoked")
	s.audit(ctx, e)
	app := s.cfg.AppID
	if app == "" {
		app = "(see your MSSP)"
	}
	s.notice(ctx, cmd.Channel, "", fmt.Sprintf("👋 msspbot no longer watches %s: fetching stopped and this channel was unlinked. This does not remove the app's access in Microsoft Entra: an admin can delete it under Entra ID → Enterprise applications (application id `%s`).", t.Name, app))
	for _, ch := range s.cfg.SOCChannels {
		s.notice(ctx, ch, "", fmt.Sprintf("👋 %s (`%s`) was offboarded by %s.", t.Name, t.ID, displayName(cmd)))
	}
	return plainText(fmt.Sprintf("%s is offboarded.", t.Name)), nil
}
