// Package sim implements a simulated Microsoft Defender for Endpoint for
// the demo: tenants that raise realistic alerts over time, change some of
// them as Defender would, and accept analysts' write-backs. It serves
// bot.AlertSource, bot.WriteBackTarget and bot.AccessChecker, and is
// deterministic for a seed.
package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/msspbot/msspbot/bot"
)

// Tenant is a simulated customer tenant.
type Tenant struct {
	ID   string // GUID
	Name string
}

// Portal is the Defender portal the simulated alerts link to.
const Portal = "https://security.microsoft.com"

// Sim is a simulated Defender holding the alerts of several tenants. It is
// safe for concurrent use.
type Sim struct {
	mu      sync.Mutex
	rng     *rand.Rand
	now     func() time.Time
	tenants map[string]*tenant
	order   []*tenant
	nextInc int64
}

type tenant struct {
	Tenant
	domain  string // DNS label: "contoso"
	netbios string // "CONTOSO"
	alerts  []*mdeAlert
	byID    map[string]*mdeAlert
}

var (
	_ bot.AlertSource     = (*Sim)(nil)
	_ bot.WriteBackTarget = (*Sim)(nil)
	_ bot.AccessChecker   = (*Sim)(nil)
)

// New returns a simulated Defender for tenants with no alerts yet; now is
// its clock for write-backs (nil: time.Now). The same seed and the same
// calls give the same alerts.
func New(seed int64, tenants []Tenant, now func() time.Time) *Sim {
	if now == nil {
		now = time.Now
	}
	s := &Sim{
		rng:     rand.New(rand.NewPCG(uint64(seed), 0x6d737370626f74)),
		now:     now,
		tenants: map[string]*tenant{},
		nextInc: 48000,
	}
	for _, t := range tenants {
		s.addTenant(t)
	}
	return s
}

// AddTenant makes a tenant known, as if its admin had consented to the
// MSSP's app: its alerts can be read from now on.
func (s *Sim) AddTenant(t Tenant) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addTenant(t)
}

func (s *Sim) addTenant(t Tenant) {
	id := bot.NormalizeTenantID(t.ID)
	if _, ok := s.tenants[id]; ok {
		return
	}
	d := domainLabel(t.Name)
	nb := strings.ToUpper(d)
	if len(nb) > 15 { // NetBIOS names have at most 15 characters
		nb = nb[:15]
	}
	tt := &tenant{Tenant: Tenant{ID: id, Name: t.Name}, domain: d, netbios: nb, byID: map[string]*mdeAlert{}}
	s.tenants[id] = tt
	s.order = append(s.order, tt)
}

func domainLabel(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "tenant"
	}
	return b.String()
}

func (s *Sim) tenant(id string) (*tenant, error) {
	t, ok := s.tenants[bot.NormalizeTenantID(id)]
	if !ok {
		// Defender answers 401 for a tenant that never consented.
		return nil, fmt.Errorf("sim: tenant %s: %w", id, bot.ErrAuth)
	}
	return t, nil
}

// CheckAccess implements bot.AccessChecker: a known tenant has consented.
func (s *Sim) CheckAccess(ctx context.Context, tenantID string, fresh bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sim: check access: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.tenant(tenantID)
	return err
}

// Alerts implements bot.AlertSource: the tenant's alerts last updated at or
// after since, oldest first.
func (s *Sim) Alerts(ctx context.Context, tenantID string, since time.Time) ([]bot.Alert, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sim: list alerts: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.tenant(tenantID)
	if err != nil {
		return nil, err
	}
	var out []bot.Alert
	for _, a := range t.alerts {
		if !time.Time(a.LastUpdateTime).Before(since) {
			out = append(out, a.toBot())
		}
	}
	return out, nil
}

// Apply implements bot.WriteBackTarget: it updates the alert as a PATCH
// to Defender would, adds the comment, and moves lastUpdateTime forward.
func (s *Sim) Apply(ctx context.Context, wb bot.WriteBack) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sim: apply write-back: %w", err)
	}
	switch wb.Status {
	case "", bot.StatusNew, bot.StatusInProgress, bot.StatusResolved:
	default:
		return bot.PermanentError("invalid status", fmt.Errorf("sim: alert %s: invalid status %q", wb.AlertID, wb.Status))
	}
	if _, ok := bot.ParseClassification(string(wb.Classification)); !ok {
		return bot.PermanentError("invalid classification", fmt.Errorf("sim: alert %s: invalid classification %q", wb.AlertID, wb.Classification))
	}
	if _, ok := bot.ParseDetermination(wb.Determination); !ok {
		return bot.PermanentError("invalid determination", fmt.Errorf("sim: alert %s: invalid determination %q", wb.AlertID, wb.Determination))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.tenant(wb.TenantID)
	if err != nil {
		return err
	}
	a, ok := t.byID[wb.AlertID]
	if !ok {
		return bot.PermanentError("alert not found", fmt.Errorf("sim: tenant %s: alert %s not found", t.ID, wb.AlertID))
	}
	now := s.now()
	if wb.Status != "" {
		a.Status = string(wb.Status)
		if wb.Status == bot.StatusResolved {
			a.ResolvedTime = timePtr(now)
			a.InvestigationState = "Resolved"
		} else {
			a.ResolvedTime = nil
		}
	}
	if wb.AssignedTo != "" {
		a.AssignedTo = strPtr(wb.AssignedTo)
	}
	if wb.Classification != "" {
		a.Classification = strPtr(string(wb.Classification))
	}
	if wb.Determination != "" {
		a.Determination = strPtr(wb.Determination)
	}
	if wb.Comment != "" {
		by := wb.Actor
		if by == "" {
			by = "msspbot"
		}
		a.Comments = append(a.Comments, mdeComment{Comment: wb.Comment, CreatedBy: by, CreatedTime: mdeTime(now.UTC())})
	}
	a.touch(now)
	return nil
}

// Tick advances the simulation to now: every tenant raises 0–2 new alerts,
// and some older alert changes as Defender would change it (status
// New → InProgress → Resolved, or a Low alert raised to High). It returns
// how many alerts were raised and changed.
func (s *Sim) Tick(now time.Time) (raised, changed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.order {
		// The change is picked before the new alerts so that it always
		// touches an alert raised in an earlier tick.
		if s.rng.IntN(100) < 30 && s.change(t, now) {
			changed++
		}
		n := 0
		switch r := s.rng.IntN(100); {
		case r < 40:
		case r < 80:
			n = 1
		default:
			n = 2
		}
		for range n {
			s.raise(t, now)
			raised++
		}
	}
	return raised, changed
}

func (s *Sim) raise(t *tenant, now time.Time) {
	tpl := catalog[s.rng.IntN(len(catalog))]
	g := groups[s.rng.IntN(len(groups))]
	if len(tpl.groups) > 0 {
		name := tpl.groups[s.rng.IntN(len(tpl.groups))]
		for _, x := range groups {
			if x.name == name {
				g = x
			}
		}
	}
	created := now.Add(-time.Duration(5+s.rng.IntN(85)) * time.Second).UTC().Truncate(100 * time.Nanosecond)
	first := created.Add(-time.Duration(30+s.rng.IntN(270)) * time.Second)
	last := first.Add(time.Duration(s.rng.IntN(60_000)) * time.Millisecond)

	id := s.alertID(t, created)
	s.nextInc += int64(1 + s.rng.IntN(7))
	a := &mdeAlert{
		ID:                 id,
		IncidentID:         int64Ptr(s.nextInc),
		Severity:           tpl.severity,
		Status:             "New",
		InvestigationState: "PendingApproval",
		DetectionSource:    tpl.source,
		DetectorID:         s.guid(),
		Category:           tpl.category,
		ThreatFamilyName:   optStr(tpl.threatFamily),
		ThreatName:         optStr(tpl.threatName),
		Title:              tpl.title,
		Description:        tpl.description,
		AlertCreationTime:  mdeTime(created),
		FirstEventTime:     mdeTime(first),
		LastEventTime:      mdeTime(last),
		LastUpdateTime:     mdeTime(created),
		MachineID:          s.hex(40),
		ComputerDNSName:    fmt.Sprintf("%s-%03d.%s.local", g.prefix, 1+s.rng.IntN(250), t.domain),
		RBACGroupName:      g.name,
		AADTenantID:        t.ID,
		MitreTechniques:    append([]string{}, tpl.mitre...),
		Comments:           []mdeComment{},
		Evidence:           []json.RawMessage{},
	}
	if !tpl.noUser && !(g.name == "Servers" && s.rng.IntN(2) == 0) {
		a.RelatedUser = &mdeUser{UserName: users[s.rng.IntN(len(users))], DomainName: t.netbios}
	}
	a.touch(now)
	t.alerts = append(t.alerts, a)
	t.byID[id] = a
}

// alertID makes an MDE-style id: "da" + the creation time in .NET ticks +
// "_" + a signed 32-bit number, e.g. "da638671234567890123_-1234567890".
func (s *Sim) alertID(t *tenant, created time.Time) string {
	const unixEpochTicks = 621355968000000000
	ticks := created.UnixNano()/100 + unixEpochTicks
	for {
		id := fmt.Sprintf("da%d_%d", ticks, int32(s.rng.Uint32()))
		if _, dup := t.byID[id]; !dup {
			return id
		}
	}
}

func (s *Sim) hex(n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[s.rng.IntN(16)]
	}
	return string(b)
}

func (s *Sim) guid() string {
	h := s.hex(32)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// change makes one Defender-side change to an open alert of t; it reports
// whether there was one to change.
func (s *Sim) change(t *tenant, now time.Time) bool {
	var open []*mdeAlert
	for _, a := range t.alerts {
		if a.Status != "Resolved" {
			open = append(open, a)
		}
	}
	if len(open) == 0 {
		return false
	}
	a := open[s.rng.IntN(len(open))]
	switch {
	case (a.Severity == "Low" || a.Severity == "Informational") && s.rng.IntN(100) < 60:
		// More evidence arrived: Defender raises the severity.
		a.Severity = "High"
	case a.Status == "New":
		a.Status = "InProgress"
		a.InvestigationState = "Running"
		a.InvestigationID = int64Ptr(900000 + int64(s.rng.IntN(99999)))
		if a.AssignedTo == nil {
			a.AssignedTo = strPtr("it-admin@" + t.domain + ".example")
		}
	default:
		a.Status = "Resolved"
		a.ResolvedTime = timePtr(now)
		if s.rng.IntN(100) < 70 {
			a.Classification, a.Determination = strPtr(string(bot.ClassTruePositive)), strPtr("Malware")
			a.InvestigationState = "Remediated"
		} else {
			a.Classification, a.Determination = strPtr(string(bot.ClassFalsePositive)), strPtr("Clean")
			a.InvestigationState = "Benign"
		}
	}
	a.touch(now)
	return true
}

// PortalURL is the alert's page in the Defender portal (DESIGN §4.5).
func PortalURL(tenantID, alertID string) string {
	return Portal + "/alerts/" + url.PathEscape(alertID) + "?tid=" + url.QueryEscape(tenantID)
}

// mdeTime marshals as MDE does: UTC with seven fractional digits.
type mdeTime time.Time

func (t mdeTime) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Time(t).UTC().Format("2006-01-02T15:04:05.0000000Z") + `"`), nil
}

// mdeAlert is an alert in the shape of GET /api/alerts.
type mdeAlert struct {
	ID                 string            `json:"id"`
	IncidentID         *int64            `json:"incidentId"`
	InvestigationID    *int64            `json:"investigationId"`
	AssignedTo         *string           `json:"assignedTo"`
	Severity           string            `json:"severity"`
	Status             string            `json:"status"`
	Classification     *string           `json:"classification"`
	Determination      *string           `json:"determination"`
	InvestigationState string            `json:"investigationState"`
	DetectionSource    string            `json:"detectionSource"`
	DetectorID         string            `json:"detectorId"`
	Category           string            `json:"category"`
	ThreatFamilyName   *string           `json:"threatFamilyName"`
	ThreatName         *string           `json:"threatName"`
	Title              string            `json:"title"`
	Description        string            `json:"description"`
	AlertCreationTime  mdeTime           `json:"alertCreationTime"`
	FirstEventTime     mdeTime           `json:"firstEventTime"`
	LastEventTime      mdeTime           `json:"lastEventTime"`
	LastUpdateTime     mdeTime           `json:"lastUpdateTime"`
	ResolvedTime       *mdeTime          `json:"resolvedTime"`
	MachineID          string            `json:"machineId"`
	ComputerDNSName    string            `json:"computerDnsName"`
	RBACGroupName      string            `json:"rbacGroupName"`
	AADTenantID        string            `json:"aadTenantId"`
	MitreTechniques    []string          `json:"mitreTechniques"`
	RelatedUser        *mdeUser          `json:"relatedUser"`
	Comments           []mdeComment      `json:"comments"`
	Evidence           []json.RawMessage `json:"evidence"`
}

type mdeUser struct {
	UserName   string `json:"userName"`
	DomainName string `json:"domainName"`
}

type mdeComment struct {
	Comment     string  `json:"comment"`
	CreatedBy   string  `json:"createdBy"`
	CreatedTime mdeTime `json:"createdTime"`
}

// touch moves lastUpdateTime to now, or just past its current value when
// the clock has not moved, so that every change is seen as newer.
func (a *mdeAlert) touch(now time.Time) {
	now = now.UTC().Truncate(100 * time.Nanosecond)
	if prev := time.Time(a.LastUpdateTime); !now.After(prev) {
		now = prev.Add(time.Millisecond)
	}
	a.LastUpdateTime = mdeTime(now)
}

func (a *mdeAlert) toBot() bot.Alert {
	raw, err := json.Marshal(a)
	if err != nil {
		panic(fmt.Sprintf("sim: marshal alert: %v", err)) // plain structs cannot fail
	}
	sev, _ := bot.ParseSeverity(a.Severity)
	out := bot.Alert{
		TenantID:        a.AADTenantID,
		ID:              a.ID,
		Title:           a.Title,
		Description:     a.Description,
		Severity:        sev,
		Status:          bot.ParseStatus(a.Status),
		AssignedTo:      deref(a.AssignedTo),
		Category:        a.Category,
		DetectionSource: a.DetectionSource,
		DeviceName:      a.ComputerDNSName,
		DeviceID:        a.MachineID,
		DeviceGroup:     a.RBACGroupName,
		MitreTechniques: append([]string(nil), a.MitreTechniques...),
		PortalURL:       PortalURL(a.AADTenantID, a.ID),
		CreatedAt:       time.Time(a.AlertCreationTime),
		LastUpdatedAt:   time.Time(a.LastUpdateTime),
		Raw:             raw,
	}
	out.Classification, _ = bot.ParseClassification(deref(a.Classification))
	out.Determination, _ = bot.ParseDetermination(deref(a.Determination))
	if a.RelatedUser != nil {
		out.UserName = a.RelatedUser.DomainName + `\` + a.RelatedUser.UserName
	}
	if a.IncidentID != nil {
		out.IncidentID = strconv.FormatInt(*a.IncidentID, 10)
		out.IncidentURL = Portal + "/incidents/" + out.IncidentID + "?tid=" + url.QueryEscape(a.AADTenantID)
	}
	if a.ResolvedTime != nil {
		out.ResolvedAt = time.Time(*a.ResolvedTime)
	}
	return out
}

func strPtr(s string) *string { return &s }

func optStr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func int64Ptr(n int64) *int64 { return &n }

func timePtr(t time.Time) *mdeTime {
	m := mdeTime(t.UTC())
	return &m
}
