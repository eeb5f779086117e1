package defendertest

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
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
// Prefer: include-unknown-enum-members, as Graph does.
type Graph struct {
	URL string

	srv *httptest.Server
	idp *IdP

	mu        sync.Mutex
	tenants   map[string]*alertStore
	patches   []Patch
	comments  []Comment
	calls     []GraphCall
	faults    []Fault
	cursors   map[string]graphCursor
	onRequest func(GraphCall)
	now       func() time.Time
	last      time.Time
	audience  string
	latency   time.Duration
	maxPage   int
	linkBase  string
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

// The audience Graph tokens must be issued for (public cloud).
const graphAudience = "https://graph.microsoft.com"

const graphAlertsPath = "/v1.0/security/alerts_v2"

// NewGraph starts a fake Graph API that trusts tokens issued by idp.
func NewGraph(t testing.TB, idp *IdP) *Graph {
	t.Helper()
	g := &Graph{
		idp:      idp,
		tenants:  map[string]*alertStore{},
		cursors:  map[string]graphCursor{},
		now:      time.Now,
		audience: graphAudience,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+graphAlertsPath, g.list)
	mux.HandleFunc("GET "+graphAlertsPath+"/{id}", g.get)
	mux.HandleFunc("PATCH "+graphAlertsPath+"/{id}", g.patch)
	mux.HandleFunc("POST "+graphAlertsPath+"/{id}/comments", g.comment)
	g.srv = newTLSServer(mux)
	g.URL = g.srv.URL
	t.Cleanup(g.srv.Close)
	return g
}

// Certificate is the server's TLS certificate.
func (g *Graph) Certificate() *x509.Certificate { return g.srv.Certificate() }

// Client returns an HTTP client that trusts both the IdP and this server.
func (g *Graph) Client() *http.Client { return HTTPClient(g.idp.Certificate(), g.Certificate()) }

// SetAudience changes the token audience the fake accepts (sovereign
// clouds: https://graph.microsoft.us, https://dod-graph.microsoft.us).
func (g *Graph) SetAudience(aud string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.audience = aud
}

// SetNow replaces the clock used to stamp lastUpdateDateTime.
func (g *Graph) SetNow(now func() time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.now = now
}

// SetLatency delays every answer by d.
func (g *Graph) SetLatency(d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.latency = d
}

// SetMaxPageSize caps pages below the client's $top, as Graph may do:
// a page shorter than $top can still carry an @odata.nextLink. 0: no cap.
func (g *Graph) SetMaxPageSize(n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.maxPage = n
}

// SetNextLinkBase makes @odata.nextLink start with base instead of the
// fake's URL (e.g. another host, to check the client does not follow it).
func (g *Graph) SetNextLinkBase(base string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.linkBase = strings.TrimRight(base, "/")
}

// OnRequest registers fn, called for every request after the answer is
// decided and before it is written.
func (g *Graph) OnRequest(fn func(GraphCall)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.onRequest = fn
}

// Put adds or replaces an alert of tenant and stamps its
// lastUpdateDateTime with the current time (strictly after every earlier
// stamp). alert is a map, JSON or any value that marshals to a JSON
// object; an alert without "id" gets one. Put returns the id.
func (g *Graph) Put(tenant string, alert any) string { return g.put(tenant, alert, time.Time{}) }

// PutAt is Put with an explicit lastUpdateDateTime.
func (g *Graph) PutAt(tenant string, alert any, lastUpdate time.Time) string {
	if lastUpdate.IsZero() {
		panic("defendertest: PutAt with a zero time")
	}
	return g.put(tenant, alert, lastUpdate)
}

func (g *Graph) put(tenant string, alert any, at time.Time) string {
	a := toMap(alert)
	tenant = strings.ToLower(tenant)
	id, _ := a["id"].(string)
	if id == "" {
		id = "da" + randHex(9) + "_" + strconv.FormatInt(time.Now().UnixNano()%1e9, 10)
		a["id"] = id
	}
	if _, ok := a["@odata.type"]; !ok {
		a["@odata.type"] = "#microsoft.graph.security.alert"
	}
	a["tenantId"] = tenant
	for _, k := range []string{"alertWebUrl", "incidentWebUrl"} {
		a[k] = withTenant(a[k], tenant)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if at.IsZero() {
		at = g.stamp()
	}
	s := g.store(tenant)
	if _, ok := s.alerts[id]; !ok {
		s.order = append(s.order, id)
	}
	a["lastUpdateDateTime"] = formatTime(at)
	s.alerts[id] = a
	s.updated[id] = at.UTC().Truncate(100 * time.Nanosecond)
	return id
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

// Update changes an alert in place and stamps its lastUpdateDateTime; it
// reports whether the alert exists.
func (g *Graph) Update(tenant, id string, change func(alert map[string]any)) bool {
	tenant = strings.ToLower(tenant)
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.store(tenant)
	a, ok := s.alerts[id]
	if !ok {
		return false
	}
	change(a)
	at := g.stamp()
	a["lastUpdateDateTime"] = formatTime(at)
	s.updated[id] = at
	return true
}

// Alert returns a copy of a stored alert.
func (g *Graph) Alert(tenant, id string) (map[string]any, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	a, ok := g.store(strings.ToLower(tenant)).alerts[id]
	if !ok {
		return nil, false
	}
	return toMap(a), true
}

// Patches returns the PATCH requests received so far.
func (g *Graph) Patches() []Patch {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Patch(nil), g.patches...)
}

// Comments returns the comment POSTs received so far.
func (g *Graph) Comments() []Comment {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Comment(nil), g.comments...)
}

// Calls returns the requests answered so far.
func (g *Graph) Calls() []GraphCall {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]GraphCall(nil), g.calls...)
}

// Inject queues fault for the next n matching requests.
func (g *Graph) Inject(f Fault, n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for range n {
		g.faults = append(g.faults, f)
	}
}

// ClearFaults drops the faults not used yet.
func (g *Graph) ClearFaults() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.faults = nil
}

// FailNext answers the next n requests with status (401, 403, 500, …).
func (g *Graph) FailNext(n, status int) { g.Inject(Fault{Status: status}, n) }

// ThrottleNext answers the next n requests 429 with Retry-After seconds.
func (g *Graph) ThrottleNext(n, retryAfterSeconds int) {
	g.Inject(Fault{Status: http.StatusTooManyRequests, RetryAfter: strconv.Itoa(retryAfterSeconds)}, n)
}

// SlowNext delays the next n answers by d.
func (g *Graph) SlowNext(n int, d time.Duration) { g.Inject(Fault{Delay: d}, n) }

// BadJSONNext answers the next n requests 200 with a malformed body.
func (g *Graph) BadJSONNext(n int) { g.Inject(Fault{BadJSON: true}, n) }

// stamp returns a time after every earlier stamp. Callers hold mu.
func (g *Graph) stamp() time.Time {
	t := g.now().UTC().Truncate(100 * time.Nanosecond)
	if !t.After(g.last) {
		t = g.last.Add(100 * time.Nanosecond)
	}
	g.last = t
	return t
}

func (g *Graph) store(tenant string) *alertStore {
	s, ok := g.tenants[tenant]
	if !ok {
		s = &alertStore{alerts: map[string]map[string]any{}, updated: map[string]time.Time{}}
		g.tenants[tenant] = s
	}
	return s
}

// serve runs the common steps: auth, faults, the handler, the hook, latency.
func (g *Graph) serve(w http.ResponseWriter, r *http.Request, handle func(tenant string) answer) {
	call := GraphCall{
		Call:      Call{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query()},
		Prefer:    r.Header.Get("Prefer"),
		SkipToken: r.URL.Query().Get("$skiptoken"),
	}
	var ans answer
	var delay time.Duration
	tenant, ok := g.authorize(r)
	if !ok {
		ans = answer{status: http.StatusUnauthorized, body: GraphFixture("error-401.json")}
	} else {
		call.Tenant = tenant
		f, hit := g.takeFault(tenant, r.Method)
		delay = f.Delay
		switch {
		case hit && f.BadJSON:
			ans = answer{status: http.StatusOK, body: []byte(`{"value": [{"id": "x", "title": `)}
		case hit && f.Status != 0:
			ans = answer{status: f.Status, body: []byte(f.Body), retryAfter: f.RetryAfter}
			if f.Body == "" {
				ans.body = graphErrorBody(f.Status)
			}
		default:
			ans = handle(tenant)
		}
	}
	call.Status = ans.status
	g.mu.Lock()
	g.calls = append(g.calls, call)
	hook, latency := g.onRequest, g.latency
	g.mu.Unlock()
	if hook != nil {
		hook(call)
	}
	if d := delay + latency; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if ans.retryAfter != "" {
		w.Header().Set("Retry-After", ans.retryAfter)
	}
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8")
	w.WriteHeader(ans.status)
	_, _ = w.Write(ans.body)
}

func (g *Graph) authorize(r *http.Request) (string, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return "", false
	}
	tenant, ok := g.idp.TenantOfToken(tok)
	if !ok {
		return "", false
	}
	scope, _ := g.idp.ScopeOfToken(tok)
	g.mu.Lock()
	aud := g.audience
	g.mu.Unlock()
	if scope != aud+"/.default" {
		return "", false
	}
	return tenant, true
}

func (g *Graph) takeFault(tenant, method string) (Fault, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, f := range g.faults {
		if (f.Tenant == "" || strings.EqualFold(f.Tenant, tenant)) && (f.Method == "" || f.Method == method) {
			g.faults = append(g.faults[:i:i], g.faults[i+1:]...)
			return f, true
		}
	}
	return Fault{}, false
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

func graphErrorBody(status int) []byte {
	switch status {
	case http.StatusUnauthorized:
		return GraphFixture("error-401.json")
	case http.StatusTooManyRequests:
		return GraphFixture("error-429.json")
	case http.StatusForbidden:
		return graphError("Forbidden", "Missing application roles. API required roles: SecurityAlert.Read.All, SecurityAlert.ReadWrite.All.")
	case http.StatusNotFound:
		return graphError("NotFound", "The requested alert was not found.")
	case http.StatusServiceUnavailable:
		return graphError("ServiceUnavailable", "The service is temporarily unavailable.")
	}
	if status >= 500 {
		return graphError("InternalServerError", "An internal server error occurred.")
	}
	return graphError("BadRequest", "Bad request")
}

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
				return answer{status: http.StatusBadRequest, body: graphError("BadRequest", "Invalid skip token.")}
			}
			cur = c
		} else {
			cur = graphCursor{tenant: tenant, top: graphMaxTop, filter: q.Get("$filter")}
			if f := cur.filter; f != "" {
				sub := graphFilterRE.FindStringSubmatch(f)
				if sub == nil {
					return answer{status: http.StatusBadRequest, body: graphError("BadRequest", "Invalid filter clause: "+f)}
				}
				var err error
				if cur.lo, err = parseODataTime(sub[1]); err != nil {
					return answer{status: http.StatusBadRequest, body: graphError("BadRequest", err.Error())}
				}
				if sub[2] != "" {
					if cur.hi, err = parseODataTime(sub[2]); err != nil {
						return answer{status: http.StatusBadRequest, body: graphError("BadRequest", err.Error())}
					}
				}
			}
			if v := q.Get("$top"); v != "" {
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 || n > graphMaxTop {
					return answer{status: http.StatusBadRequest, body: graphError("BadRequest", fmt.Sprintf("Invalid page size: $top must be between 1 and %d.", graphMaxTop))}
				}
				cur.top = n
			}
		}
		g.mu.Lock()
		size := cur.top
		if g.maxPage > 0 && g.maxPage < size {
			size = g.maxPage
		}
		s := g.store(tenant)
		value := []map[string]any{}
		matched := 0
		for _, id := range s.order {
			t := s.updated[id]
			if t.Before(cur.lo) || (!cur.hi.IsZero() && !t.Before(cur.hi)) {
				continue
			}
			matched++
			if matched <= cur.offset || len(value) >= size {
				continue
			}
			value = append(value, g.view(s.alerts[id], prefer))
		}
		env := map[string]any{
			"@odata.context": g.URL + "/v1.0/$metadata#security/alerts_v2",
			"value":          value,
		}
		if cur.offset+len(value) < matched {
			next := cur
			next.offset += len(value)
			tok := randHex(12)
			g.cursors[tok] = next
			base := g.linkBase
			if base == "" {
				base = g.URL
			}
			link := base + graphAlertsPath + "?"
			if next.filter != "" {
				link += "$filter=" + url.QueryEscape(next.filter) + "&"
			}
			env["@odata.nextLink"] = link + "$top=" + strconv.Itoa(next.top) + "&$skiptoken=" + tok
		}
		g.mu.Unlock()
		body, _ := json.Marshal(env)
		return answer{status: http.StatusOK, body: body}
	})
}

func (g *Graph) get(w http.ResponseWriter, r *http.Request) {
	prefer := wantsUnknownMembers(r)
	g.serve(w, r, func(tenant string) answer {
		g.mu.Lock()
		a, ok := g.store(tenant).alerts[r.PathValue("id")]
		if ok {
			a = g.view(a, prefer)
		}
		g.mu.Unlock()
		if !ok {
			return answer{status: http.StatusNotFound, body: graphErrorBody(http.StatusNotFound)}
		}
		a["@odata.context"] = g.URL + "/v1.0/$metadata#security/alerts_v2/$entity"
		body, _ := json.Marshal(a)
		return answer{status: http.StatusOK, body: body}
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

// view copies a stored alert as a client gets it. Callers hold mu.
func (g *Graph) view(a map[string]any, prefer bool) map[string]any {
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

// Values Graph accepts in a PATCH (v1.0 alert; case-sensitive).
var graphPatchValues = map[string]map[string]bool{
	"status":         set("unknown", "new", "inProgress", "resolved"),
	"classification": set("unknown", "falsePositive", "truePositive", "informationalExpectedActivity"),
	"determination": set("unknown", "apt", "malware", "securityPersonnel", "securityTesting", "unwantedSoftware",
		"other", "multiStagedAttack", "compromisedAccount", "phishing", "maliciousUserActivity", "notMalicious",
		"notEnoughDataToValidate", "confirmedActivity", "lineOfBusinessApplication"),
	"assignedTo": nil,
}

func (g *Graph) patch(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	id := r.PathValue("id")
	g.serve(w, r, func(tenant string) answer {
		rec := Patch{Tenant: tenant, AlertID: id, Method: r.Method, Body: raw}
		ans := g.applyPatch(tenant, id, raw, &rec)
		rec.Status = ans.status
		g.mu.Lock()
		g.patches = append(g.patches, rec)
		g.mu.Unlock()
		return ans
	})
}

func (g *Graph) applyPatch(tenant, id string, raw []byte, rec *Patch) answer {
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return answer{status: http.StatusBadRequest, body: graphError("BadRequest", "Invalid request body.")}
	}
	rec.Fields = fields
	for k, v := range fields {
		allowed, known := graphPatchValues[k]
		s, isString := v.(string)
		switch {
		case !known:
			// Comments are a collection of their own; "comment" is not an
			// alert property.
			return answer{status: http.StatusBadRequest, body: graphError("BadRequest", fmt.Sprintf("Property '%s' does not exist on type 'microsoft.graph.security.alert'.", k))}
		case !isString:
			return answer{status: http.StatusBadRequest, body: graphError("BadRequest", fmt.Sprintf("Property '%s' must be a string.", k))}
		case allowed != nil && !allowed[s]:
			return answer{status: http.StatusBadRequest, body: graphError("BadRequest", fmt.Sprintf("Requested value '%s' was not found for property '%s'.", s, k))}
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.store(tenant)
	a, ok := s.alerts[id]
	if !ok {
		return answer{status: http.StatusNotFound, body: graphErrorBody(http.StatusNotFound)}
	}
	now := g.stamp()
	for _, k := range []string{"status", "assignedTo", "classification", "determination"} {
		if v, ok := fields[k]; ok {
			a[k] = v
		}
	}
	switch fields["status"] {
	case "resolved":
		a["resolvedDateTime"] = formatTime(now)
	case "new", "inProgress":
		a["resolvedDateTime"] = nil
	}
	a["lastUpdateDateTime"] = formatTime(now)
	s.updated[id] = now
	body, _ := json.Marshal(a)
	return answer{status: http.StatusOK, body: body}
}

func (g *Graph) comment(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	id := r.PathValue("id")
	g.serve(w, r, func(tenant string) answer {
		rec := Comment{Tenant: tenant, AlertID: id, Body: raw}
		ans := g.addComment(tenant, id, raw, &rec)
		rec.Status = ans.status
		g.mu.Lock()
		g.comments = append(g.comments, rec)
		g.mu.Unlock()
		return ans
	})
}

func (g *Graph) addComment(tenant, id string, raw []byte, rec *Comment) answer {
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return answer{status: http.StatusBadRequest, body: graphError("BadRequest", "Invalid request body.")}
	}
	rec.Fields = fields
	typ, _ := fields["@odata.type"].(string)
	text, _ := fields["comment"].(string)
	for k := range fields {
		if k != "@odata.type" && k != "comment" {
			return answer{status: http.StatusBadRequest, body: graphError("BadRequest", fmt.Sprintf("Property '%s' does not exist on type 'microsoft.graph.security.alertComment'.", k))}
		}
	}
	if strings.TrimPrefix(typ, "#") != "microsoft.graph.security.alertComment" || strings.TrimSpace(text) == "" {
		return answer{status: http.StatusBadRequest, body: graphError("BadRequest", "A comment needs @odata.type microsoft.graph.security.alertComment and a non-empty comment.")}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.store(tenant)
	a, ok := s.alerts[id]
	if !ok {
		return answer{status: http.StatusNotFound, body: graphErrorBody(http.StatusNotFound)}
	}
	now := g.stamp()
	comments, _ := a["comments"].([]any)
	comments = append(comments, map[string]any{
		"comment": text, "createdByDisplayName": "msspbot", "createdDateTime": formatTime(now),
	})
	a["comments"] = comments
	a["lastUpdateDateTime"] = formatTime(now)
	s.updated[id] = now
	body, _ := json.Marshal(map[string]any{
		"@odata.context": g.URL + "/v1.0/$metadata#Collection(microsoft.graph.security.alertComment)",
		"value":          comments,
	})
	return answer{status: http.StatusOK, body: body}
}
