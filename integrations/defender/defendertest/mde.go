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

// MDE is a fake Defender for Endpoint alert API (GET /api/alerts with the
// lastUpdateTime $filter forms, $top and $skip; GET and PATCH
// /api/alerts/{id}). Bearer tokens are checked against the IdP: a token
// only ever sees its own tenant's alerts.
type MDE struct {
	URL string

	srv *httptest.Server
	idp *IdP

	mu        sync.Mutex
	tenants   map[string]*alertStore
	patches   []Patch
	calls     []Call
	faults    []Fault
	onRequest func(Call)
	now       func() time.Time
	last      time.Time
	audience  string
	latency   time.Duration
}

type alertStore struct {
	order   []string
	alerts  map[string]map[string]any
	updated map[string]time.Time
}

// Call is one request the fake answered.
type Call struct {
	Method string
	Path   string
	Query  url.Values
	Tenant string // "" when the token was refused
	Status int
}

// Patch is one PATCH request as received.
type Patch struct {
	Tenant  string
	AlertID string
	Method  string
	Body    []byte         // the raw body
	Fields  map[string]any // the decoded body
	Status  int            // the answer's status
}

// Fault is an injected answer, used once per matching request.
type Fault struct {
	Tenant     string        // "" matches any tenant
	Method     string        // "" matches any method
	Status     int           // answer with this status (and an MDE error body)
	RetryAfter string        // Retry-After header, in seconds
	Delay      time.Duration // wait before answering (honours the client's cancel)
	BadJSON    bool          // answer 200 with a malformed body
	Body       string        // overrides the error body
}

// The audience MDE tokens must be issued for.
const mdeAudience = "https://api.securitycenter.microsoft.com"

// NewMDE starts a fake MDE API that trusts tokens issued by idp.
func NewMDE(t testing.TB, idp *IdP) *MDE {
	t.Helper()
	m := &MDE{
		idp:      idp,
		tenants:  map[string]*alertStore{},
		now:      time.Now,
		audience: mdeAudience,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/alerts", m.list)
	mux.HandleFunc("GET /api/alerts/{id}", m.get)
	mux.HandleFunc("PATCH /api/alerts/{id}", m.patch)
	m.srv = newTLSServer(mux)
	m.URL = m.srv.URL
	t.Cleanup(m.srv.Close)
	return m
}

// Certificate is the server's TLS certificate.
func (m *MDE) Certificate() *x509.Certificate { return m.srv.Certificate() }

// Client returns an HTTP client that trusts both the IdP and this server.
func (m *MDE) Client() *http.Client { return HTTPClient(m.idp.Certificate(), m.Certificate()) }

// SetAudience changes the token audience the fake accepts (sovereign clouds).
func (m *MDE) SetAudience(aud string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.audience = aud
}

// SetNow replaces the clock used to stamp lastUpdateTime.
func (m *MDE) SetNow(now func() time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.now = now
}

// SetLatency delays every answer by d (benchmarks of the fetch pass).
func (m *MDE) SetLatency(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.latency = d
}

// OnRequest registers fn, called for every request after the answer is
// decided and before it is written: a test can change alerts "mid-pass".
func (m *MDE) OnRequest(fn func(Call)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.onRequest = fn
}

// Put adds or replaces an alert of tenant and stamps its lastUpdateTime
// with the current time (strictly after every earlier stamp). alert is a
// map, JSON ([]byte, json.RawMessage, string) or any value that marshals
// to a JSON object; an alert without "id" gets one. Put returns the id.
func (m *MDE) Put(tenant string, alert any) string {
	return m.put(tenant, alert, time.Time{})
}

// PutAt is Put with an explicit lastUpdateTime.
func (m *MDE) PutAt(tenant string, alert any, lastUpdate time.Time) string {
	if lastUpdate.IsZero() {
		panic("defendertest: PutAt with a zero time")
	}
	return m.put(tenant, alert, lastUpdate)
}

func (m *MDE) put(tenant string, alert any, at time.Time) string {
	a := toMap(alert)
	tenant = strings.ToLower(tenant)
	id, _ := a["id"].(string)
	if id == "" {
		id = "da" + randHex(9) + "_" + strconv.FormatInt(time.Now().UnixNano()%1e9, 10)
		a["id"] = id
	}
	a["aadTenantId"] = tenant
	m.mu.Lock()
	defer m.mu.Unlock()
	if at.IsZero() {
		at = m.stamp()
	}
	s := m.store(tenant)
	if _, ok := s.alerts[id]; !ok {
		s.order = append(s.order, id)
	}
	a["lastUpdateTime"] = formatTime(at)
	s.alerts[id] = a
	s.updated[id] = at.UTC().Truncate(100 * time.Nanosecond)
	return id
}

// Update changes an alert in place and stamps its lastUpdateTime; it
// reports whether the alert exists.
func (m *MDE) Update(tenant, id string, change func(alert map[string]any)) bool {
	tenant = strings.ToLower(tenant)
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.store(tenant)
	a, ok := s.alerts[id]
	if !ok {
		return false
	}
	change(a)
	at := m.stamp()
	a["lastUpdateTime"] = formatTime(at)
	s.updated[id] = at
	return true
}

// Alert returns a copy of a stored alert.
func (m *MDE) Alert(tenant, id string) (map[string]any, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.store(strings.ToLower(tenant)).alerts[id]
	if !ok {
		return nil, false
	}
	return toMap(a), true
}

// Patches returns the PATCH requests received so far.
func (m *MDE) Patches() []Patch {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Patch(nil), m.patches...)
}

// Calls returns the requests answered so far.
func (m *MDE) Calls() []Call {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Call(nil), m.calls...)
}

// Inject queues fault for the next n matching requests.
func (m *MDE) Inject(f Fault, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for range n {
		m.faults = append(m.faults, f)
	}
}

// ClearFaults drops the faults not used yet.
func (m *MDE) ClearFaults() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.faults = nil
}

// FailNext answers the next n requests with status (401, 403, 500, …).
func (m *MDE) FailNext(n, status int) { m.Inject(Fault{Status: status}, n) }

// ThrottleNext answers the next n requests 429 with Retry-After seconds.
func (m *MDE) ThrottleNext(n, retryAfterSeconds int) {
	m.Inject(Fault{Status: http.StatusTooManyRequests, RetryAfter: strconv.Itoa(retryAfterSeconds)}, n)
}

// SlowNext delays the next n answers by d.
func (m *MDE) SlowNext(n int, d time.Duration) { m.Inject(Fault{Delay: d}, n) }

// BadJSONNext answers the next n requests 200 with a malformed body.
func (m *MDE) BadJSONNext(n int) { m.Inject(Fault{BadJSON: true}, n) }

// stamp returns a time after every earlier stamp. Callers hold mu.
func (m *MDE) stamp() time.Time {
	t := m.now().UTC().Truncate(100 * time.Nanosecond)
	if !t.After(m.last) {
		t = m.last.Add(100 * time.Nanosecond)
	}
	m.last = t
	return t
}

func (m *MDE) store(tenant string) *alertStore {
	s, ok := m.tenants[tenant]
	if !ok {
		s = &alertStore{alerts: map[string]map[string]any{}, updated: map[string]time.Time{}}
		m.tenants[tenant] = s
	}
	return s
}

// answer is what a handler decided to send.
type answer struct {
	status     int
	body       []byte
	retryAfter string
}

// serve runs the common steps: auth, faults, the handler, the hook, latency.
func (m *MDE) serve(w http.ResponseWriter, r *http.Request, handle func(tenant string) answer) {
	call := Call{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query()}
	var ans answer
	var delay time.Duration
	tenant, ok := m.authorize(r)
	if !ok {
		ans = answer{status: http.StatusUnauthorized, body: Fixture("error-401.json")}
	} else {
		call.Tenant = tenant
		f, hit := m.takeFault(tenant, r.Method)
		delay = f.Delay
		switch {
		case hit && f.BadJSON:
			ans = answer{status: http.StatusOK, body: []byte(`{"value": [{"id": "x", "title": `)}
		case hit && f.Status != 0:
			ans = answer{status: f.Status, body: []byte(f.Body), retryAfter: f.RetryAfter}
			if f.Body == "" {
				ans.body = errorBody(f.Status)
			}
		default:
			ans = handle(tenant)
		}
	}
	call.Status = ans.status
	m.mu.Lock()
	m.calls = append(m.calls, call)
	hook, latency := m.onRequest, m.latency
	m.mu.Unlock()
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
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal; charset=utf-8")
	w.WriteHeader(ans.status)
	_, _ = w.Write(ans.body)
}

func (m *MDE) authorize(r *http.Request) (string, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return "", false
	}
	tenant, ok := m.idp.TenantOfToken(tok)
	if !ok {
		return "", false
	}
	scope, _ := m.idp.ScopeOfToken(tok)
	m.mu.Lock()
	aud := m.audience
	m.mu.Unlock()
	if scope != aud+"/.default" {
		return "", false
	}
	return tenant, true
}

func (m *MDE) takeFault(tenant, method string) (Fault, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, f := range m.faults {
		if (f.Tenant == "" || strings.EqualFold(f.Tenant, tenant)) && (f.Method == "" || f.Method == method) {
			m.faults = append(m.faults[:i:i], m.faults[i+1:]...)
			return f, true
		}
	}
	return Fault{}, false
}

func errorBody(status int) []byte {
	switch status {
	case http.StatusUnauthorized:
		return Fixture("error-401.json")
	case http.StatusTooManyRequests:
		return Fixture("error-429.json")
	case http.StatusForbidden:
		return mdeError("Forbidden", "The application does not have any of the required application permissions (Alert.ReadWrite.All, Alert.Read.All) to access the resource.")
	case http.StatusNotFound:
		return mdeError("NotFound", "Alert not found")
	}
	if status >= 500 {
		return mdeError("InternalServerError", "An internal server error occurred.")
	}
	return mdeError("BadRequest", "Bad request")
}

func mdeError(code, msg string) []byte {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"code": code, "message": msg, "target": newGUID()}})
	return b
}

var filterRE = regexp.MustCompile(`^lastUpdateTime ge (\S+)(?: and lastUpdateTime lt (\S+))?$`)

func (m *MDE) list(w http.ResponseWriter, r *http.Request) {
	m.serve(w, r, func(tenant string) answer {
		q := r.URL.Query()
		var lo, hi time.Time
		if f := q.Get("$filter"); f != "" {
			sub := filterRE.FindStringSubmatch(f)
			if sub == nil {
				return answer{status: http.StatusBadRequest, body: mdeError("InvalidRequest", "Invalid filter: "+f)}
			}
			var err error
			if lo, err = parseODataTime(sub[1]); err != nil {
				return answer{status: http.StatusBadRequest, body: mdeError("InvalidRequest", err.Error())}
			}
			if sub[2] != "" {
				if hi, err = parseODataTime(sub[2]); err != nil {
					return answer{status: http.StatusBadRequest, body: mdeError("InvalidRequest", err.Error())}
				}
			}
		}
		top, skip := 10000, 0
		if v := q.Get("$top"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 10000 {
				return answer{status: http.StatusBadRequest, body: mdeError("InvalidRequest", "$top must be between 1 and 10000")}
			}
			top = n
		}
		if v := q.Get("$skip"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return answer{status: http.StatusBadRequest, body: mdeError("InvalidRequest", "bad $skip")}
			}
			skip = n
		}
		m.mu.Lock()
		s := m.store(tenant)
		value := []map[string]any{}
		matched := 0
		for _, id := range s.order {
			t := s.updated[id]
			if t.Before(lo) || (!hi.IsZero() && !t.Before(hi)) {
				continue
			}
			matched++
			if matched <= skip || len(value) >= top {
				continue
			}
			a := toMap(s.alerts[id])
			a["evidence"] = []any{} // only with $expand=evidence
			value = append(value, a)
		}
		m.mu.Unlock()
		body, _ := json.Marshal(map[string]any{
			"@odata.context": m.URL + "/api/$metadata#Alerts",
			"value":          value,
		})
		return answer{status: http.StatusOK, body: body}
	})
}

func (m *MDE) get(w http.ResponseWriter, r *http.Request) {
	m.serve(w, r, func(tenant string) answer {
		m.mu.Lock()
		a, ok := m.store(tenant).alerts[r.PathValue("id")]
		if ok {
			a = toMap(a)
		}
		m.mu.Unlock()
		if !ok {
			return answer{status: http.StatusNotFound, body: errorBody(http.StatusNotFound)}
		}
		if r.URL.Query().Get("$expand") != "evidence" {
			a["evidence"] = []any{}
		}
		body, _ := json.Marshal(a)
		return answer{status: http.StatusOK, body: body}
	})
}

var patchValues = map[string]map[string]bool{
	"status":         set("New", "InProgress", "Resolved"),
	"classification": set("TruePositive", "InformationalExpectedActivity", "FalsePositive"),
	"determination": set("MultiStagedAttack", "MaliciousUserActivity", "CompromisedUser", "Malware",
		"Phishing", "UnwantedSoftware", "SecurityTesting", "LineOfBusinessApplication",
		"ConfirmedUserActivity", "ConfirmedActivity", "Clean", "NotMalicious", "InsufficientData",
		"Other", "NotAvailable", "Apt", "SecurityPersonnel"),
	"assignedTo": nil,
	"comment":    nil,
}

func set(xs ...string) map[string]bool {
	m := map[string]bool{}
	for _, x := range xs {
		m[x] = true
	}
	return m
}

func (m *MDE) patch(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	id := r.PathValue("id")
	m.serve(w, r, func(tenant string) answer {
		rec := Patch{Tenant: tenant, AlertID: id, Method: r.Method, Body: raw}
		ans := m.applyPatch(tenant, id, raw, &rec)
		rec.Status = ans.status
		m.mu.Lock()
		m.patches = append(m.patches, rec)
		m.mu.Unlock()
		return ans
	})
}

func (m *MDE) applyPatch(tenant, id string, raw []byte, rec *Patch) answer {
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return answer{status: http.StatusBadRequest, body: mdeError("InvalidRequestBody", "Request body is not a JSON object")}
	}
	rec.Fields = fields
	for k, v := range fields {
		allowed, known := patchValues[k]
		s, isString := v.(string)
		switch {
		case !known:
			return answer{status: http.StatusBadRequest, body: mdeError("InvalidRequestBody", "Unknown property "+k)}
		case !isString:
			return answer{status: http.StatusBadRequest, body: mdeError("InvalidRequestBody", k+" must be a string")}
		case allowed != nil && !allowed[s]:
			return answer{status: http.StatusBadRequest, body: mdeError("InvalidRequestBody", fmt.Sprintf("Invalid %s value %q", k, s))}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.store(tenant)
	a, ok := s.alerts[id]
	if !ok {
		return answer{status: http.StatusNotFound, body: errorBody(http.StatusNotFound)}
	}
	now := m.stamp()
	for _, k := range []string{"status", "assignedTo", "classification", "determination"} {
		if v, ok := fields[k]; ok {
			a[k] = v
		}
	}
	switch fields["status"] {
	case "Resolved":
		a["resolvedTime"] = formatTime(now)
	case "New", "InProgress":
		a["resolvedTime"] = nil
	}
	if c, ok := fields["comment"].(string); ok {
		comments, _ := a["comments"].([]any)
		a["comments"] = append(comments, map[string]any{
			"comment": c, "createdBy": "msspbot", "createdTime": formatTime(now),
		})
	}
	a["lastUpdateTime"] = formatTime(now)
	s.updated[id] = now
	body, _ := json.Marshal(a)
	return answer{status: http.StatusOK, body: body}
}

// toMap deep-copies an alert given as a map, JSON or a marshalable value.
func toMap(v any) map[string]any {
	var b []byte
	switch x := v.(type) {
	case []byte:
		b = x
	case json.RawMessage:
		b = x
	case string:
		b = []byte(x)
	default:
		var err error
		if b, err = json.Marshal(x); err != nil {
			panic(fmt.Sprintf("defendertest: alert does not marshal: %v", err))
		}
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		panic(fmt.Sprintf("defendertest: alert is not a JSON object: %v", err))
	}
	return m
}

func formatTime(t time.Time) string {
	return t.UTC().Truncate(100 * time.Nanosecond).Format("2006-01-02T15:04:05.9999999Z")
}

// parseODataTime reads an unquoted DateTimeOffset literal; a quoted one is
// refused as MDE does.
func parseODataTime(s string) (time.Time, error) {
	if strings.ContainsAny(s, `'"`) {
		return time.Time{}, fmt.Errorf("datetime must not be quoted: %s", s)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad datetime %s", s)
	}
	return t.UTC(), nil
}
