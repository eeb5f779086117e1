package defender

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/msspbot/msspbot/bot"
)

// Microsoft Graph security API (defender.api: graph): alerts_v2 of
// Defender XDR. The token audience is the cloud's Graph host even when
// defender.base_url points elsewhere (ResolveEndpoints).

const graphAlertsPath = "/v1.0/security/alerts_v2"

// graphPrefer asks Graph for enum members added after the
// unknownFutureValue sentinel (e.g. serviceSource microsoftSentinel);
// without it Graph sends "unknownFutureValue" in their place.
const graphPrefer = "include-unknown-enum-members"

func graphHeader() http.Header { return http.Header{"Prefer": {graphPrefer}} }

// errForeignLink refuses an @odata.nextLink outside the API host: the
// bearer token is only ever sent to the configured host.
var errForeignLink = errors.New("@odata.nextLink is not on the API host; not following it")

// graphAlerts lists the tenant's alerts with lastUpdateDateTime >= since,
// following @odata.nextLink as an opaque URL. Graph's server-side paging
// replaces MDE's window splitting; an alert updated mid-pass may come
// twice (the newest copy wins) or be missed, in which case its new
// lastUpdateDateTime is after the pass start and the next pass reads it.
func (c *Client) graphAlerts(ctx context.Context, tenant string, since time.Time) ([]bot.Alert, error) {
	col := &collector{byID: map[string]int{}}
	filter := "lastUpdateDateTime ge " + odataTime(since.UTC().Truncate(time.Second))
	r := request{
		tenant: tenant,
		method: http.MethodGet,
		path:   graphAlertsPath,
		query:  "$filter=" + queryEscape(filter) + "&$top=" + strconv.Itoa(c.top),
		header: graphHeader(),
	}
	followed := map[string]bool{}
	for {
		if col.pages++; col.pages > maxPages {
			return nil, fmt.Errorf("defender: GET %s for tenant %s: more than %d pages", graphAlertsPath, tenant, maxPages)
		}
		body, err := c.do(ctx, r)
		if err != nil {
			return nil, err
		}
		page, next, err := c.decodeGraphPage(tenant, body)
		if err != nil {
			return nil, err
		}
		col.add(page)
		if next == "" {
			return col.sorted(), nil
		}
		u, err := c.graphLink(next)
		if err != nil {
			return nil, fmt.Errorf("defender: GET %s for tenant %s: %w", graphAlertsPath, tenant, err)
		}
		if followed[u] {
			return nil, fmt.Errorf("defender: GET %s for tenant %s: @odata.nextLink repeats", graphAlertsPath, tenant)
		}
		followed[u] = true
		r.url = u
	}
}

// graphLink checks a nextLink and returns the URL to request: the link as
// given when it is absolute (it is opaque), resolved against the base when
// relative. Scheme and host (with port) must be the configured base's.
func (c *Client) graphLink(next string) (string, error) {
	base, err := url.Parse(c.ep.API)
	if err != nil {
		return "", fmt.Errorf("api base: %w", err)
	}
	u, err := url.Parse(next)
	if err != nil {
		return "", errors.New("@odata.nextLink is not a URL")
	}
	out := next
	if !u.IsAbs() {
		if u.Host != "" { // "//host/path": a scheme-relative link is foreign too
			return "", fmt.Errorf("%w (host %q)", errForeignLink, u.Host)
		}
		u = base.ResolveReference(u)
		out = u.String()
	}
	if u.User != nil || !strings.EqualFold(u.Scheme, base.Scheme) || hostPort(u) != hostPort(base) {
		return "", fmt.Errorf("%w (host %q)", errForeignLink, u.Host)
	}
	return out, nil
}

// hostPort is the lower-case host with the scheme's default port filled in.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch strings.ToLower(u.Scheme) {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// decodeGraphPage reads one alerts_v2 page.
func (c *Client) decodeGraphPage(tenant string, body []byte) ([]bot.Alert, string, error) {
	var env struct {
		Value    json.RawMessage `json:"value"`
		NextLink string          `json:"@odata.nextLink"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, "", fmt.Errorf("defender: decode GET %s for tenant %s: %w", graphAlertsPath, tenant, err)
	}
	if len(env.Value) == 0 || bytes.Equal(env.Value, []byte("null")) {
		return nil, "", fmt.Errorf("defender: decode GET %s for tenant %s: no value array", graphAlertsPath, tenant)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(env.Value, &items); err != nil {
		return nil, "", fmt.Errorf("defender: decode GET %s for tenant %s: %w", graphAlertsPath, tenant, err)
	}
	out := make([]bot.Alert, 0, len(items))
	for i, raw := range items {
		a, err := c.mapGraphAlert(tenant, raw)
		if err != nil {
			return nil, "", fmt.Errorf("defender: decode GET %s for tenant %s: alert %d: %w", graphAlertsPath, tenant, i, err)
		}
		out = append(out, a)
	}
	return out, env.NextLink, nil
}

// graphGetAlert reads one alert; alerts_v2 always carries its evidence.
func (c *Client) graphGetAlert(ctx context.Context, tenant, alertID string) (bot.Alert, error) {
	return c.getOne(ctx, request{
		tenant: tenant,
		method: http.MethodGet,
		path:   graphAlertsPath + "/" + url.PathEscape(alertID),
		header: graphHeader(),
	}, graphAlertsPath, c.mapGraphAlert)
}

// graphAlert is the part of a Graph alert the bot reads; Raw keeps the
// rest. Enums are camelCase strings; any value this code does not know
// (unknownFutureValue, or a member added later) maps to "unknown", never
// to an error.
type graphAlert struct {
	alertFields
	IncidentWebURL     string            `json:"incidentWebUrl"`
	AlertWebURL        string            `json:"alertWebUrl"`
	ServiceSource      string            `json:"serviceSource"`
	DetectionSource    string            `json:"detectionSource"`
	CreatedDateTime    jsonTime          `json:"createdDateTime"`
	LastUpdateDateTime jsonTime          `json:"lastUpdateDateTime"`
	ResolvedDateTime   jsonTime          `json:"resolvedDateTime"`
	Evidence           []json.RawMessage `json:"evidence"`
}

// mapGraphAlert turns one Graph alert into a bot.Alert; raw becomes its Raw.
func (c *Client) mapGraphAlert(tenant string, raw json.RawMessage) (bot.Alert, error) {
	g, a, err := decodeAlert[graphAlert](tenant, raw)
	if err != nil {
		return bot.Alert{}, err
	}
	a.DetectionSource, a.ServiceSource = enumValue(g.DetectionSource), enumValue(g.ServiceSource)
	a.CreatedAt, a.LastUpdatedAt, a.ResolvedAt = g.CreatedDateTime.Time, g.LastUpdateDateTime.Time, g.ResolvedDateTime.Time
	if a.PortalURL = webURL(g.AlertWebURL); a.PortalURL == "" {
		a.PortalURL = c.portalLink("alerts", g.ID, tenant)
	}
	if a.IncidentID != "" {
		if a.IncidentURL = webURL(g.IncidentWebURL); a.IncidentURL == "" {
			a.IncidentURL = c.portalLink("incidents", a.IncidentID, tenant)
		}
	}
	for _, r := range g.Evidence {
		var o jsonObject
		if json.Unmarshal(r, &o) != nil || o == nil {
			continue // not an object: nothing to show, and not worth failing the alert
		}
		ev := mapGraphEvidence(o)
		a.Evidence = append(a.Evidence, ev)
		switch ev.Type {
		case "device":
			if a.DeviceName == "" && ev.Name != "" {
				a.DeviceName = ev.Name
				a.DeviceID = firstNonEmpty(o.str("mdeDeviceId"), o.str("azureAdDeviceId"))
				a.DeviceGroup = ev.Group
			}
			if a.DeviceGroup == "" {
				a.DeviceGroup = ev.Group
			}
		case "user":
			if a.UserName == "" {
				a.UserName = accountName(o.obj("userAccount"), false)
			}
		}
	}
	return a, nil
}

// enumValue keeps a raw camelCase enum (e.g. microsoftDefenderForEndpoint),
// with the unknownFutureValue sentinel as "unknown".
func enumValue(s string) string {
	if strings.EqualFold(s, "unknownFutureValue") {
		return "unknown"
	}
	return s
}

// webURL keeps a portal link only when it is an https URL: it becomes a
// button in chat.
func webURL(s string) string {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || !strings.EqualFold(u.Scheme, "https") || u.Host == "" {
		return ""
	}
	return u.String()
}

// jsonObject is one evidence entity. Evidence types reuse property names
// with different JSON types (cloudApplicationEvidence.appId is a number,
// oauthApplicationEvidence.appId a string; nicEvidence.ipAddress an
// object), so fields are read one by one, tolerantly.
type jsonObject map[string]json.RawMessage

// str returns a string or number property, else "".
func (o jsonObject) str(key string) string {
	v, ok := o[key]
	if !ok {
		return ""
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return strings.TrimSpace(s)
	}
	var n json.Number
	if json.Unmarshal(v, &n) == nil {
		return n.String()
	}
	return ""
}

// obj returns a nested object property, else nil.
func (o jsonObject) obj(key string) jsonObject {
	var m jsonObject
	if v, ok := o[key]; ok && json.Unmarshal(v, &m) == nil {
		return m
	}
	return nil
}

// evidenceTypes names Graph evidence types (@odata.type without the
// "#microsoft.graph.security." prefix and "Evidence" suffix) in the
// words the MDE mapping uses; other types keep their camelCase name.
var evidenceTypes = map[string]string{
	"device":          "device",
	"user":            "user",
	"file":            "file",
	"process":         "process",
	"ip":              "ip",
	"url":             "url",
	"mailbox":         "mailbox",
	"analyzedMessage": "email",
	"registryKey":     "registry",
	"registryValue":   "registry",
}

// graphEvidenceType returns the short type of an @odata.type.
func graphEvidenceType(odataType string) string {
	t := strings.TrimPrefix(odataType, "#")
	t = strings.TrimPrefix(t, "microsoft.graph.security.")
	t = strings.TrimSuffix(t, "Evidence")
	if short, ok := evidenceTypes[t]; ok {
		return short
	}
	if t == "" {
		return "unknown"
	}
	return t
}

// mapGraphEvidence names one evidence entity by its type's identifying
// property; a type this code does not know still gets a name from the
// common ones.
func mapGraphEvidence(o jsonObject) bot.Evidence {
	ev := bot.Evidence{Type: graphEvidenceType(o.str("@odata.type")), Verdict: enumValue(o.str("verdict"))}
	switch ev.Type {
	case "device":
		ev.Name = firstNonEmpty(o.str("deviceDnsName"), o.str("hostName"), o.str("mdeDeviceId"), o.str("azureAdDeviceId"))
		ev.Group = o.str("rbacGroupName")
	case "user":
		ev.Name = accountName(o.obj("userAccount"), true)
	case "mailbox":
		ev.Name = firstNonEmpty(o.str("primaryAddress"), accountName(o.obj("userAccount"), true), o.str("displayName"))
	case "email":
		ev.Name = firstNonEmpty(o.str("subject"), o.str("networkMessageId"))
	case "file":
		f := o.obj("fileDetails")
		ev.Name = firstNonEmpty(f.str("fileName"), f.str("sha256"), f.str("sha1"))
	case "process":
		f := o.obj("imageFile")
		ev.Name = firstNonEmpty(f.str("fileName"), o.str("processCommandLine"), o.str("processId"))
	case "ip":
		ev.Name = o.str("ipAddress")
	case "url":
		ev.Name = o.str("url")
	case "registry":
		ev.Name = strings.Trim(o.str("registryHive")+`\`+o.str("registryKey"), `\`)
		if v := o.str("registryValueName"); v != "" {
			ev.Name += `\` + v
		}
	case "nic":
		ev.Name = firstNonEmpty(o.obj("ipAddress").str("ipAddress"), o.str("macAddress"))
	default:
		ev.Name = firstNonEmpty(o.str("displayName"), o.str("name"), o.str("resourceName"),
			o.str("deviceName"), o.str("domainName"), o.str("url"), o.str("ipAddress"),
			o.str("primaryAddress"), accountName(o.obj("userAccount"), true), o.str("appId"))
	}
	return ev
}

// accountName names a Graph userAccount: the UPN first for evidence rows
// (as the MDE mapping does), DOMAIN\account first for the alert's user
// (as MDE's relatedUser).
func accountName(u jsonObject, upnFirst bool) string {
	upn := u.str("userPrincipalName")
	acct := u.str("accountName")
	if d := u.str("domainName"); d != "" && acct != "" {
		acct = d + `\` + acct
	}
	if upnFirst {
		return firstNonEmpty(upn, acct, u.str("displayName"))
	}
	return firstNonEmpty(acct, upn, u.str("displayName"))
}
