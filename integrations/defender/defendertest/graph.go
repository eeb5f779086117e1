package defendertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Graph is a fake of the Microsoft Graph security API for Defender XDR
// alerts (v1.0 /security/alerts_v2): list with the lastUpdateDateTime
// $filter, $top and @odata.nextLink paging by an opaque $skiptoken; GET
// and PATCH of one alert; POST of a comment. Bearer tokens are checked
// against the IdP: a token only ever sees its own tenant's alerts, and a
// token for another audience gets 401. Enum members Graph added after
// unknownFutureValue are sent only to clients that ask for them with
// Prefer: include-unknown-enum-members, as Graph does. Most methods are
// the core it shares with MDE; its Calls and OnRequest use GraphCall.
type Graph struct {
	URL string

	api[GraphCall]

	// Guarded by api.mu.
	comments []Comment
	cursors  map[string]graphCursor
	maxPage  int
	linkBase string
}

// GraphCall is one request the fake answered.
type GraphCall struct {
	Call
	Prefer    string // the Prefer header
	SkipToken string // the $skiptoken of a nextLink request
}

// Comment is one POST …/comments request as received.
type Comment struct {
	Tenant  string
	AlertID string
	Body    []byte         // the raw body
	Fields  map[string]any // the decoded body
	Status  int            // the answer's status
}

// graphCursor is the server-side state behind a $skiptoken.
type graphCursor struct {
	tenant string
	lo, hi time.Time
	top    int
	offset int
	filter string
}

// The audience Graph tokens must be issued for (public cloud; sovereign
// clouds: https://graph.microsoft.us, https://dod-graph.microsoft.us).
const graphAudience = "https://graph.microsoft.com"

const graphAlertsPath = "/v1.0/security/alerts_v2"

// NewGraph starts a fake Graph API that trusts tokens issued by idp.
func NewGraph(t testing.TB, idp *IdP) *Graph {
	t.Helper()
	g := &Graph{
		api: api[GraphCall]{
			audience:    graphAudience,
			timeField:   "lastUpdateDateTime",
			contentType: "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8",
			errorBody:   graphErrorBody,
			prepare:     graphPrepare,
			record: func(c Call, r *http.Request) GraphCall {
				return GraphCall{Call: c, Prefer: r.Header.Get("Prefer"), SkipToken: c.Query.Get("$skiptoken")}
			},
		},
		cursors: map[string]graphCursor{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+graphAlertsPath, g.list)
	mux.HandleFunc("GET "+graphAlertsPath+"/{id}", g.getHandler(func(r *http.Request, alert map[string]any) map[string]any {
		a := graphView(alert, wantsUnknownMembers(r))
		a["@odata.context"] = g.URL + "/v1.0/$metadata#security/alerts_v2/$entity"
		return a
	}))
	mux.HandleFunc("PATCH "+graphAlertsPath+"/{id}", g.patchHandler(graphPatch))
	mux.HandleFunc("POST "+graphAlertsPath+"/{id}/comments", g.comment)
	g.URL = g.start(t, idp, mux)
	return g
}

// SetMaxPageSize caps pages below the client's $top, as Graph may do:
// a page shorter than $top can still carry an @odata.nextLink. 0: no cap.
func (g *Graph) SetMaxPageSize(n int) { g.locked(func() { g.maxPage = n }) }

// SetNextLinkBase makes @odata.nextLink start with base instead of the
// fake's URL (e.g. another host, to check the client does not follow it).
func (g *Graph) SetNextLinkBase(base string) {
	g.locked(func() { g.linkBase = strings.TrimRight(base, "/") })
}

// Comments returns the comment POSTs received so far.
func (g *Graph) Comments() []Comment {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Comment(nil), g.comments...)
}

// graphPrepare stamps the tenant on a Put alert, its portal links
// included, and gives it Graph's @odata.type.
func graphPrepare(a map[string]any, tenant string) {
	if _, ok := a["@odata.type"]; !ok {
		a["@odata.type"] = "#microsoft.graph.security.alert"
	}
	a["tenantId"] = tenant
	for _, k := range []string{"alertWebUrl", "incidentWebUrl"} {
		a[k] = withTenant(a[k], tenant)
	}
}

// withTenant points a portal link's tid at tenant.
func withTenant(v any, tenant string) any {
	s, ok := v.(string)
	if !ok || s == "" {
		return v
	}
	u, err := url.Parse(s)
	if err != nil || !u.Query().Has("tid") {
		return v
	}
	q := u.Query()
	q.Set("tid", tenant)
	u.RawQuery = q.Encode()
	return u.String()
}

// graphError is Graph's error body.
func graphError(code, msg string) []byte {
	id := newGUID()
	b, _ := json.Marshal(map[string]any{"error": map[string]any{
		"code": code, "message": msg,
		"innerError": map[string]any{"date": time.Now().UTC().Format("2006-01-02T15:04:05"), "request-id": id, "client-request-id": id},
	}})
	return b
}

func graphBadRequest(msg string) answer {
	return answer{status: http.StatusBadRequest, body: graphError("BadRequest", msg)}
}

var graphErrors = errorMessages{
	http.StatusForbidden:           {"Forbidden", "Missing application roles. API required roles: SecurityAlert.Read.All, SecurityAlert.ReadWrite.All."},
	http.StatusNotFound:            {"NotFound", "The requested alert was not found."},
	http.StatusServiceUnavailable:  {"ServiceUnavailable", "The service is temporarily unavailable."},
	http.StatusInternalServerError: {"InternalServerError", "An internal server error occurred."},
	http.StatusBadRequest:          {"BadRequest", "Bad request"},
}

func graphErrorBody(status int) []byte { return graphErrors.body(status, GraphFixture, graphError) }

var graphFilterRE = regexp.MustCompile(`^lastUpdateDateTime ge (\S+)(?: and lastUpdateDateTime lt (\S+))?$`)

const graphMaxTop = 1000

func (g *Graph) list(w http.ResponseWriter, r *http.Request) {
	prefer := wantsUnknownMembers(r)
	g.serve(w, r, func(tenant string) answer {
		q := r.URL.Query()
		var cur graphCursor
		if tok := q.Get("$skiptoken"); tok != "" {
			g.mu.Lock()
			c, ok := g.cursors[tok]
			g.mu.Unlock()
			if !ok || c.tenant != tenant {
				return graphBadRequest("Invalid skip token.")
			}
			cur = c
		} else {
			cur = graphCursor{tenant: tenant, filter: q.Get("$filter")}
			var err error
			if cur.lo, cur.hi, err = parseWindow(graphFilterRE, cur.filter, "Invalid filter clause: "); err != nil {
				return graphBadRequest(err.Error())
			}
			var valid bool
			if cur.top, valid = parseTop(q.Get("$top"), graphMaxTop); !valid {
				return graphBadRequest(fmt.Sprintf("Invalid page size: $top must be between 1 and %d.", graphMaxTop))
			}
		}
		var size int
		var base string
		g.locked(func() {
			size, base = cur.top, g.linkBase
			if g.maxPage > 0 && g.maxPage < size {
				size = g.maxPage
			}
		})
		value, matched := g.window(tenant, cur.lo, cur.hi, cur.offset, size, func(a map[string]any) map[string]any {
			return graphView(a, prefer)
		})
		env := map[string]any{
			"@odata.context": g.URL + "/v1.0/$metadata#security/alerts_v2",
			"value":          value,
		}
		if cur.offset+len(value) < matched {
			next := cur
			next.offset += len(value)
			tok := randHex(12)
			g.locked(func() { g.cursors[tok] = next })
			if base == "" {
				base = g.URL
			}
			link := base + graphAlertsPath + "?"
			if next.filter != "" {
				link += "$filter=" + url.QueryEscape(next.filter) + "&"
			}
			env["@odata.nextLink"] = link + "$top=" + strconv.Itoa(next.top) + "&$skiptoken=" + tok
		}
		body, _ := json.Marshal(env)
		return okBody(body)
	})
}

func wantsUnknownMembers(r *http.Request) bool {
	for _, v := range r.Header.Values("Prefer") {
		for _, p := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), "include-unknown-enum-members") {
				return true
			}
		}
	}
	return false
}

// Enum members Graph added after unknownFutureValue ("evolvable enums"):
// a client that does not send Prefer: include-unknown-enum-members gets
// "unknownFutureValue" instead.
var evolvable = map[string]map[string]bool{
	"serviceSource": set("microsoftDefenderForCloud", "microsoftSentinel", "microsoftInsiderRiskManagement"),
	"detectionSource": set("microsoftDefenderForCloud", "microsoftDefenderForIoT", "microsoftDefenderForServers",
		"microsoftDefenderForStorage", "microsoftDefenderForDNS", "microsoftDefenderForDatabases",
		"microsoftDefenderForContainers", "microsoftDefenderForNetwork", "microsoftDefenderForAppService",
		"microsoftDefenderForKeyVault", "microsoftDefenderForResourceManager", "microsoftDefenderForApiManagement",
		"nrtAlerts", "scheduledAlerts", "microsoftDefenderThreatIntelligenceAnalytics", "builtInMl",
		"microsoftInsiderRiskManagement", "microsoftThreatIntelligence", "microsoftSentinel"),
}

// graphView copies a stored alert as a client gets it.
func graphView(a map[string]any, prefer bool) map[string]any {
	out := toMap(a)
	if !prefer {
		for k, members := range evolvable {
			if s, ok := out[k].(string); ok && members[s] {
				out[k] = "unknownFutureValue"
			}
		}
	}
	return out
}

// graphPatch: the values Graph accepts in a PATCH (v1.0 alert;
// case-sensitive), and resolvedDateTime.
var graphPatch = patchRules{
	values: map[string]map[string]bool{
		"status":         set("unknown", "new", "inProgress", "resolved"),
		"classification": set("unknown", "falsePositive", "truePositive", "informationalExpectedActivity"),
		"determination": set("unknown", "apt", "malware", "securityPersonnel", "securityTesting", "unwantedSoftware",
			"other", "multiStagedAttack", "compromisedAccount", "phishing", "maliciousUserActivity", "notMalicious",
			"notEnoughDataToValidate", "confirmedActivity", "lineOfBusinessApplication"),
		"assignedTo": nil,
	},
	refuse: func(e fieldError) answer {
		switch e.kind {
		case unknownField:
			// Comments are a collection of their own; "comment" is not an
			// alert property.
			return graphBadRequest(fmt.Sprintf("Property '%s' does not exist on type 'microsoft.graph.security.alert'.", e.field))
		case notString:
			return graphBadRequest(fmt.Sprintf("Property '%s' must be a string.", e.field))
		case badValue:
			return graphBadRequest(fmt.Sprintf("Requested value '%s' was not found for property '%s'.", e.value, e.field))
		}
		return graphBadRequest("Invalid request body.")
	},
	apply: func(a, fields map[string]any, now time.Time) {
		resolution(a, fields, "resolvedDateTime", now, "resolved", "new", "inProgress")
	},
}

func (g *Graph) comment(w http.ResponseWriter, r *http.Request) {
	g.serveBody(w, r, func(tenant, id string, raw []byte) answer {
		rec := Comment{Tenant: tenant, AlertID: id, Body: raw}
		ans := g.addComment(tenant, id, raw, &rec)
		rec.Status = ans.status
		g.locked(func() { g.comments = append(g.comments, rec) })
		return ans
	})
}

func (g *Graph) addComment(tenant, id string, raw []byte, rec *Comment) answer {
	fields, isObject := decodeObject(raw)
	if !isObject {
		return graphBadRequest("Invalid request body.")
	}
	rec.Fields = fields
	typ, _ := fields["@odata.type"].(string)
	text, _ := fields["comment"].(string)
	for k := range fields {
		if k != "@odata.type" && k != "comment" {
			return graphBadRequest(fmt.Sprintf("Property '%s' does not exist on type 'microsoft.graph.security.alertComment'.", k))
		}
	}
	if strings.TrimPrefix(typ, "#") != "microsoft.graph.security.alertComment" || strings.TrimSpace(text) == "" {
		return graphBadRequest("A comment needs @odata.type microsoft.graph.security.alertComment and a non-empty comment.")
	}
	var body []byte
	_, found := g.modify(tenant, id, func(a map[string]any, now time.Time) {
		comments, _ := a["comments"].([]any)
		comments = append(comments, map[string]any{
			"comment": text, "createdByDisplayName": "msspbot", "createdDateTime": formatTime(now),
		})
		a["comments"] = comments
		body, _ = json.Marshal(map[string]any{
			"@odata.context": g.URL + "/v1.0/$metadata#Collection(microsoft.graph.security.alertComment)",
			"value":          comments,
		})
	})
	if !found {
		return g.notFound()
	}
	return okBody(body)
}
