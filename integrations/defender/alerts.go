package defender

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/msspbot/msspbot/bot"
)

const alertsPath = "/api/alerts"

// Alerts implements bot.AlertSource for MDE: every alert of the tenant
// with lastUpdateTime >= since. MDE has no paging links and $skip can
// skip alerts that are updated while we page, so a full page (len ==
// $top) splits the time window in two at the page's median timestamp,
// earlier half first, until pages fit. An alert updated mid-pass moves to
// the open-ended last window, which is read after the one it left.
func (c *Client) Alerts(ctx context.Context, tenantID string, since time.Time) ([]bot.Alert, error) {
	tenant, err := checkTenant(tenantID)
	if err != nil {
		return nil, err
	}
	if c.api == APIGraph {
		return c.graphAlerts(ctx, tenant, since)
	}
	col := &collector{byID: map[string]int{}}
	// Whole seconds, as documented; rounding down only reads more.
	lo := since.UTC().Truncate(time.Second)
	if err := c.listWindow(ctx, tenant, lo, time.Time{}, col); err != nil {
		return nil, err
	}
	return col.sorted(), nil
}

func checkTenant(id string) (string, error) {
	t := bot.NormalizeTenantID(id)
	if !bot.ValidTenantID(t) {
		return "", fmt.Errorf("defender: tenant id %q is not a GUID", id)
	}
	return t, nil
}

// maxPages bounds the calls of one Alerts call, against a server that
// ignores the filter.
const maxPages = 5000

// listWindow reads [lo, hi); a zero hi means open-ended.
func (c *Client) listWindow(ctx context.Context, tenant string, lo, hi time.Time, col *collector) error {
	page, err := c.listPage(ctx, tenant, lo, hi, 0, col)
	if err != nil {
		return err
	}
	if len(page) < c.top {
		return nil
	}
	mid, ok := splitAt(lo, hi, page)
	if !ok {
		// Every alert of the page sits at lo: only $skip can page them.
		end := lo.Add(tick)
		if err := c.skipPages(ctx, tenant, lo, end, col); err != nil {
			return err
		}
		if hi.IsZero() || end.Before(hi) {
			return c.listWindow(ctx, tenant, end, hi, col)
		}
		return nil
	}
	c.log.Debug("defender: full page, splitting window", "tenant", tenant,
		"from", odataTime(lo), "at", odataTime(mid), "open", hi.IsZero())
	if err := c.listWindow(ctx, tenant, lo, mid, col); err != nil {
		return err
	}
	return c.listWindow(ctx, tenant, mid, hi, col)
}

// splitAt picks where to split a window whose page came back full: the
// median of the page's timestamps after lo, on a whole second when that
// stays after lo. Splitting where the alerts are, not at the middle of the
// time range, keeps the number of calls proportional to the alerts, and
// does not trust our clock against the server's.
func splitAt(lo, hi time.Time, page []bot.Alert) (time.Time, bool) {
	var ts []time.Time
	for _, a := range page {
		t := a.LastUpdatedAt.Truncate(tick)
		if t.After(lo) && (hi.IsZero() || t.Before(hi)) {
			ts = append(ts, t)
		}
	}
	if len(ts) == 0 {
		return time.Time{}, false
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	mid := ts[len(ts)/2]
	if s := mid.Truncate(time.Second); s.After(lo) {
		mid = s
	}
	return mid, true
}

// skipPages reads [lo, hi) page by page with $skip.
func (c *Client) skipPages(ctx context.Context, tenant string, lo, hi time.Time, col *collector) error {
	var prev []bot.Alert
	for skip := 0; ; skip += c.top {
		page, err := c.listPage(ctx, tenant, lo, hi, skip, col)
		if err != nil {
			return err
		}
		if skip > 0 && sameIDs(prev, page) {
			return nil // the server ignores $skip
		}
		if len(page) < c.top {
			return nil
		}
		prev = page
	}
}

func sameIDs(a, b []bot.Alert) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID {
			return false
		}
	}
	return true
}

// listPage reads one page and adds its alerts to col.
func (c *Client) listPage(ctx context.Context, tenant string, lo, hi time.Time, skip int, col *collector) ([]bot.Alert, error) {
	if col.pages++; col.pages > maxPages {
		return nil, fmt.Errorf("defender: GET %s for tenant %s: more than %d pages", alertsPath, tenant, maxPages)
	}
	filter := "lastUpdateTime ge " + odataTime(lo)
	if !hi.IsZero() {
		filter += " and lastUpdateTime lt " + odataTime(hi)
	}
	q := "$filter=" + queryEscape(filter) + "&$top=" + strconv.Itoa(c.top)
	if skip > 0 {
		q += "&$skip=" + strconv.Itoa(skip)
	}
	body, err := c.do(ctx, request{tenant: tenant, method: http.MethodGet, path: alertsPath, query: q})
	if err != nil {
		return nil, err
	}
	var env struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("defender: decode GET %s for tenant %s: %w", alertsPath, tenant, err)
	}
	var items []json.RawMessage
	if len(env.Value) == 0 || bytes.Equal(env.Value, []byte("null")) {
		return nil, fmt.Errorf("defender: decode GET %s for tenant %s: no value array", alertsPath, tenant)
	}
	if err := json.Unmarshal(env.Value, &items); err != nil {
		return nil, fmt.Errorf("defender: decode GET %s for tenant %s: %w", alertsPath, tenant, err)
	}
	out := make([]bot.Alert, 0, len(items))
	for i, raw := range items {
		a, err := c.mapAlert(tenant, raw)
		if err != nil {
			return nil, fmt.Errorf("defender: decode GET %s for tenant %s: alert %d: %w", alertsPath, tenant, i, err)
		}
		out = append(out, a)
	}
	col.add(out)
	return out, nil
}

// queryEscape escapes an OData value with %20 for spaces, which every
// server reads, rather than '+'.
func queryEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// GetAlert returns one alert with its evidence. A missing alert is an
// error with code bot.ENOTFOUND.
func (c *Client) GetAlert(ctx context.Context, tenantID, alertID string) (bot.Alert, error) {
	tenant, err := checkTenant(tenantID)
	if err != nil {
		return bot.Alert{}, err
	}
	if alertID == "" {
		return bot.Alert{}, bot.Errorf(bot.EINVALID, "empty alert id")
	}
	if c.api == APIGraph {
		return c.graphGetAlert(ctx, tenant, alertID)
	}
	path := alertsPath + "/" + url.PathEscape(alertID)
	return c.getOne(ctx, request{tenant: tenant, method: http.MethodGet, path: path, query: "$expand=evidence"}, alertsPath, c.mapAlert)
}

// getOne sends req for one alert of the collection at base and decodes
// the answer; a 404 is an error with code bot.ENOTFOUND.
func (c *Client) getOne(ctx context.Context, req request, base string, decode func(tenant string, raw json.RawMessage) (bot.Alert, error)) (bot.Alert, error) {
	body, err := c.do(ctx, req)
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return bot.Alert{}, fmt.Errorf("%w: %w", err, bot.Errorf(bot.ENOTFOUND, "alert not found"))
		}
		return bot.Alert{}, err
	}
	a, err := decode(req.tenant, json.RawMessage(body))
	if err != nil {
		return bot.Alert{}, fmt.Errorf("defender: decode GET %s for tenant %s: %w", base+"/{id}", req.tenant, err)
	}
	return a, nil
}

// collector keeps one copy of each alert, the most recently updated.
type collector struct {
	list  []bot.Alert
	byID  map[string]int
	pages int
}

// add keeps new alerts and newer copies of known ones.
func (c *collector) add(page []bot.Alert) {
	for _, a := range page {
		if i, ok := c.byID[a.ID]; ok {
			if !a.LastUpdatedAt.Before(c.list[i].LastUpdatedAt) {
				c.list[i] = a
			}
			continue
		}
		c.byID[a.ID] = len(c.list)
		c.list = append(c.list, a)
	}
}

func (c *collector) sorted() []bot.Alert {
	sort.SliceStable(c.list, func(i, j int) bool {
		a, b := c.list[i], c.list[j]
		if !a.LastUpdatedAt.Equal(b.LastUpdatedAt) {
			return a.LastUpdatedAt.Before(b.LastUpdatedAt)
		}
		return a.ID < b.ID
	})
	return c.list
}

// mdeAlert is the part of an MDE alert the bot reads; Raw keeps the rest.
type mdeAlert struct {
	alertFields
	DetectionSource   string   `json:"detectionSource"`
	AlertCreationTime jsonTime `json:"alertCreationTime"`
	LastUpdateTime    jsonTime `json:"lastUpdateTime"`
	ResolvedTime      jsonTime `json:"resolvedTime"`
	MachineID         string   `json:"machineId"`
	ComputerDNSName   string   `json:"computerDnsName"`
	RBACGroupName     string   `json:"rbacGroupName"`
	RelatedUser       *struct {
		UserName   string `json:"userName"`
		DomainName string `json:"domainName"`
	} `json:"relatedUser"`
	Evidence []mdeEvidence `json:"evidence"`
}

// alertFields are the properties MDE and Graph alerts share under the
// same names, and map alike.
type alertFields struct {
	ID              string          `json:"id"`
	IncidentID      json.RawMessage `json:"incidentId"`
	AssignedTo      string          `json:"assignedTo"`
	Severity        string          `json:"severity"`
	Status          string          `json:"status"`
	Classification  string          `json:"classification"`
	Determination   string          `json:"determination"`
	Category        string          `json:"category"`
	Title           string          `json:"title"`
	Description     string          `json:"description"`
	MitreTechniques stringList      `json:"mitreTechniques"`
}

// alert maps the shared properties of an alert of tenant; raw becomes its
// Raw. An alert without an id is refused.
func (f *alertFields) alert(tenant string, raw json.RawMessage) (bot.Alert, error) {
	if f.ID == "" {
		return bot.Alert{}, errors.New("alert without id")
	}
	sev, _ := bot.ParseSeverity(f.Severity)
	class, _ := bot.ParseClassification(f.Classification)
	return bot.Alert{
		TenantID:        tenant,
		ID:              f.ID,
		Title:           f.Title,
		Description:     f.Description,
		Severity:        sev,
		Status:          bot.ParseStatus(f.Status),
		Classification:  class,
		Determination:   mapDetermination(f.Determination),
		AssignedTo:      f.AssignedTo,
		Category:        f.Category,
		IncidentID:      numberOrString(f.IncidentID),
		MitreTechniques: []string(f.MitreTechniques),
		Raw:             raw,
	}, nil
}

// decodeAlert decodes raw as an API's alert type T, which embeds
// alertFields, and maps the shared properties.
func decodeAlert[T any, P interface {
	*T
	alert(tenant string, raw json.RawMessage) (bot.Alert, error)
}](tenant string, raw json.RawMessage) (*T, bot.Alert, error) {
	v := P(new(T))
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, bot.Alert{}, err
	}
	a, err := v.alert(tenant, raw)
	return v, a, err
}

// portalLink is the portal page ("alerts" or "incidents") of id in
// tenant.
func (c *Client) portalLink(kind, id, tenant string) string {
	return c.ep.Portal + "/" + kind + "/" + url.PathEscape(id) + "?tid=" + url.QueryEscape(tenant)
}

type mdeEvidence struct {
	EntityType        string `json:"entityType"`
	FileName          string `json:"fileName"`
	IPAddress         string `json:"ipAddress"`
	URL               string `json:"url"`
	AccountName       string `json:"accountName"`
	DomainName        string `json:"domainName"`
	UserPrincipalName string `json:"userPrincipalName"`
	RegistryKey       string `json:"registryKey"`
	RegistryValue     string `json:"registryValue"`
	DetectionStatus   string `json:"detectionStatus"`
	DeviceDNSName     string `json:"deviceDnsName"`
	ComputerDNSName   string `json:"computerDnsName"`
	RBACGroupName     string `json:"rbacGroupName"`
}

// stringList reads an array of strings, tolerating null and a bare string.
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	*l = nil
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		if s != "" {
			*l = stringList{s}
		}
		return nil
	}
	var xs []string
	if err := json.Unmarshal(b, &xs); err != nil {
		return fmt.Errorf("mitreTechniques: %w", err)
	}
	*l = xs
	return nil
}

// mapAlert turns one MDE alert into a bot.Alert; raw becomes its Raw.
func (c *Client) mapAlert(tenant string, raw json.RawMessage) (bot.Alert, error) {
	m, a, err := decodeAlert[mdeAlert](tenant, raw)
	if err != nil {
		return bot.Alert{}, err
	}
	a.DetectionSource = m.DetectionSource
	a.DeviceName, a.DeviceID, a.DeviceGroup = m.ComputerDNSName, m.MachineID, m.RBACGroupName
	a.PortalURL = c.portalLink("alerts", m.ID, tenant)
	a.CreatedAt, a.LastUpdatedAt, a.ResolvedAt = m.AlertCreationTime.Time, m.LastUpdateTime.Time, m.ResolvedTime.Time
	if a.IncidentID != "" {
		a.IncidentURL = c.portalLink("incidents", a.IncidentID, tenant)
	}
	if u := m.RelatedUser; u != nil && u.UserName != "" {
		a.UserName = u.UserName
		if u.DomainName != "" {
			a.UserName = u.DomainName + `\` + u.UserName
		}
	}
	for _, e := range m.Evidence {
		a.Evidence = append(a.Evidence, mapEvidence(e))
	}
	return a, nil
}

// mapDetermination returns the canonical name; MDE's "NotAvailable" means
// unset, and an unknown name is kept as sent rather than lost.
func mapDetermination(s string) string {
	if s == "" || strings.EqualFold(s, "NotAvailable") {
		return ""
	}
	if d, ok := bot.ParseDetermination(s); ok {
		return d
	}
	return s
}

func numberOrString(raw json.RawMessage) string {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

func mapEvidence(e mdeEvidence) bot.Evidence {
	ev := bot.Evidence{Verdict: e.DetectionStatus}
	switch strings.ToLower(e.EntityType) {
	case "user":
		ev.Type = "user"
		switch {
		case e.UserPrincipalName != "":
			ev.Name = e.UserPrincipalName
		case e.DomainName != "" && e.AccountName != "":
			ev.Name = e.DomainName + `\` + e.AccountName
		default:
			ev.Name = e.AccountName
		}
	case "process":
		ev.Type, ev.Name = "process", e.FileName
	case "file":
		ev.Type, ev.Name = "file", e.FileName
	case "ip":
		ev.Type, ev.Name = "ip", e.IPAddress
	case "url":
		ev.Type, ev.Name = "url", e.URL
	case "registry":
		ev.Type, ev.Name = "registry", strings.Trim(e.RegistryKey+`\`+e.RegistryValue, `\`)
	case "machine", "device":
		ev.Type, ev.Group = "device", e.RBACGroupName
		ev.Name = firstNonEmpty(e.DeviceDNSName, e.ComputerDNSName)
	default:
		ev.Type = strings.ToLower(e.EntityType)
		ev.Name = firstNonEmpty(e.FileName, e.IPAddress, e.URL, e.UserPrincipalName, e.AccountName, e.RegistryKey)
	}
	return ev
}

func firstNonEmpty(xs ...string) string {
	for _, x := range xs {
		if x != "" {
			return x
		}
	}
	return ""
}
