package defendertest

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

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
	Status     int           // answer with this status (and the API's error body)
	RetryAfter string        // Retry-After header, in seconds
	Delay      time.Duration // wait before answering (honours the client's cancel)
	BadJSON    bool          // answer 200 with a malformed body
	Body       string        // overrides the error body
}

// api is the core the fake MDE and Graph APIs share: bearer tokens
// checked against the IdP, fault injection, latency, the call log, the
// per-tenant alert store and the PATCH log. C is the call record the
// API's Calls and OnRequest use. The fields above mu are the wire-format
// specifics, set once by the API's constructor.
type api[C any] struct {
	srv *httptest.Server
	idp *IdP

	timeField   string                                    // the alert's last-update property
	contentType string                                    // of every answer
	errorBody   func(status int) []byte                   // the API's error body for a status
	prepare     func(alert map[string]any, tenant string) // stamps the tenant on a Put alert
	record      func(c Call, r *http.Request) C           // the call as Calls reports it

	mu        sync.Mutex
	tenants   map[string]*alertStore
	patches   []Patch
	calls     []C
	faults    []Fault
	onRequest func(C)
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

// start serves h on a TLS server that trusts tokens of idp and stops when
// the test ends; it returns the server's URL.
func (a *api[C]) start(t testing.TB, idp *IdP, h http.Handler) string {
	a.idp = idp
	a.tenants = map[string]*alertStore{}
	a.now = time.Now
	a.srv = startTLS(t, h)
	return a.srv.URL
}

// Certificate is the server's TLS certificate.
func (a *api[C]) Certificate() *x509.Certificate { return a.srv.Certificate() }

// Client returns an HTTP client that trusts both the IdP and this server.
func (a *api[C]) Client() *http.Client { return HTTPClient(a.idp.Certificate(), a.Certificate()) }

// SetAudience changes the token audience the fake accepts (sovereign
// clouds).
func (a *api[C]) SetAudience(aud string) { a.locked(func() { a.audience = aud }) }

// SetNow replaces the clock used to stamp the alerts' last-update time.
func (a *api[C]) SetNow(now func() time.Time) { a.locked(func() { a.now = now }) }

// SetLatency delays every answer by d (benchmarks of the fetch pass).
func (a *api[C]) SetLatency(d time.Duration) { a.locked(func() { a.latency = d }) }

// OnRequest registers fn, called for every request after the answer is
// decided and before it is written: a test can change alerts "mid-pass".
func (a *api[C]) OnRequest(fn func(C)) { a.locked(func() { a.onRequest = fn }) }

// locked runs f holding mu.
func (a *api[C]) locked(f func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f()
}

// Put adds or replaces an alert of tenant and stamps its last-update time
// (lastUpdateTime in MDE, lastUpdateDateTime in Graph) with the current
// time, strictly after every earlier stamp. alert is a map, JSON ([]byte,
// json.RawMessage, string) or any value that marshals to a JSON object;
// an alert without "id" gets one. Put returns the id.
func (a *api[C]) Put(tenant string, alert any) string { return a.put(tenant, alert, time.Time{}) }

// PutAt is Put with an explicit last-update time.
func (a *api[C]) PutAt(tenant string, alert any, lastUpdate time.Time) string {
	if lastUpdate.IsZero() {
		panic("defendertest: PutAt with a zero time")
	}
	return a.put(tenant, alert, lastUpdate)
}

func (a *api[C]) put(tenant string, alert any, at time.Time) string {
	m := toMap(alert)
	tenant = strings.ToLower(tenant)
	id, _ := m["id"].(string)
	if id == "" {
		id = "da" + randHex(9) + "_" + strconv.FormatInt(time.Now().UnixNano()%1e9, 10)
		m["id"] = id
	}
	a.prepare(m, tenant)
	a.mu.Lock()
	defer a.mu.Unlock()
	if at.IsZero() {
		at = a.stamp()
	}
	s := a.store(tenant)
	if _, ok := s.alerts[id]; !ok {
		s.order = append(s.order, id)
	}
	m[a.timeField] = formatTime(at)
	s.alerts[id] = m
	s.updated[id] = at.UTC().Truncate(100 * time.Nanosecond)
	return id
}

// Update changes an alert in place and stamps its last-update time; it
// reports whether the alert exists.
func (a *api[C]) Update(tenant, id string, change func(alert map[string]any)) bool {
	_, ok := a.modify(strings.ToLower(tenant), id, func(alert map[string]any, _ time.Time) { change(alert) })
	return ok
}

// modify runs change on a stored alert under mu with a fresh stamp, then
// sets the alert's last-update time to it. It returns the alert's JSON
// afterwards, and false when there is no such alert.
func (a *api[C]) modify(tenant, id string, change func(alert map[string]any, now time.Time)) ([]byte, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.store(tenant)
	alert, ok := s.alerts[id]
	if !ok {
		return nil, false
	}
	now := a.stamp()
	change(alert, now)
	alert[a.timeField] = formatTime(now)
	s.updated[id] = now
	body, _ := json.Marshal(alert)
	return body, true
}

// Alert returns a copy of a stored alert.
func (a *api[C]) Alert(tenant, id string) (map[string]any, bool) {
	return a.lookup(strings.ToLower(tenant), id, copyAlert)
}

// lookup returns view of a stored alert; view runs under mu and must copy.
func (a *api[C]) lookup(tenant, id string, view func(map[string]any) map[string]any) (map[string]any, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	alert, ok := a.store(tenant).alerts[id]
	if !ok {
		return nil, false
	}
	return view(alert), true
}

// window returns view of tenant's alerts updated in [lo, hi) (hi zero: no
// bound), in the order they were first put, skipping the first skip and
// keeping at most limit; matched counts every alert in the window.
func (a *api[C]) window(tenant string, lo, hi time.Time, skip, limit int, view func(map[string]any) map[string]any) (value []map[string]any, matched int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.store(tenant)
	value = []map[string]any{}
	for _, id := range s.order {
		t := s.updated[id]
		if t.Before(lo) || (!hi.IsZero() && !t.Before(hi)) {
			continue
		}
		matched++
		if matched <= skip || len(value) >= limit {
			continue
		}
		value = append(value, view(s.alerts[id]))
	}
	return value, matched
}

// Patches returns the PATCH requests received so far.
func (a *api[C]) Patches() []Patch {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Patch(nil), a.patches...)
}

// Calls returns the requests answered so far.
func (a *api[C]) Calls() []C {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]C(nil), a.calls...)
}

// Inject queues fault for the next n matching requests.
func (a *api[C]) Inject(f Fault, n int) {
	a.locked(func() {
		for range n {
			a.faults = append(a.faults, f)
		}
	})
}

// ClearFaults drops the faults not used yet.
func (a *api[C]) ClearFaults() { a.locked(func() { a.faults = nil }) }

// FailNext answers the next n requests with status (401, 403, 500, …).
func (a *api[C]) FailNext(n, status int) { a.Inject(Fault{Status: status}, n) }

// ThrottleNext answers the next n requests 429 with Retry-After seconds.
func (a *api[C]) ThrottleNext(n, retryAfterSeconds int) {
	a.Inject(Fault{Status: http.StatusTooManyRequests, RetryAfter: strconv.Itoa(retryAfterSeconds)}, n)
}

// SlowNext delays the next n answers by d.
func (a *api[C]) SlowNext(n int, d time.Duration) { a.Inject(Fault{Delay: d}, n) }

// BadJSONNext answers the next n requests 200 with a malformed body.
func (a *api[C]) BadJSONNext(n int) { a.Inject(Fault{BadJSON: true}, n) }

// stamp returns a time after every earlier stamp. Callers hold mu.
func (a *api[C]) stamp() time.Time {
	t := a.now().UTC().Truncate(100 * time.Nanosecond)
	if !t.After(a.last) {
		t = a.last.Add(100 * time.Nanosecond)
	}
	a.last = t
	return t
}

// store returns tenant's alerts, created on first use. Callers hold mu.
func (a *api[C]) store(tenant string) *alertStore {
	s, ok := a.tenants[tenant]
	if !ok {
		s = &alertStore{alerts: map[string]map[string]any{}, updated: map[string]time.Time{}}
		a.tenants[tenant] = s
	}
	return s
}

// answer is what a handler decided to send.
type answer struct {
	status     int
	body       []byte
	retryAfter string
}

func okBody(body []byte) answer { return answer{status: http.StatusOK, body: body} }

func (a *api[C]) notFound() answer {
	return answer{status: http.StatusNotFound, body: a.errorBody(http.StatusNotFound)}
}

// serve runs the common steps: auth, faults, the handler, the hook, latency.
func (a *api[C]) serve(w http.ResponseWriter, r *http.Request, handle func(tenant string) answer) {
	call := Call{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query()}
	var ans answer
	var delay time.Duration
	tenant, authorized := a.authorize(r)
	if !authorized {
		ans = answer{status: http.StatusUnauthorized, body: a.errorBody(http.StatusUnauthorized)}
	} else {
		call.Tenant = tenant
		f, hit := a.takeFault(tenant, r.Method)
		delay = f.Delay
		switch {
		case hit && f.BadJSON:
			ans = okBody([]byte(`{"value": [{"id": "x", "title": `))
		case hit && f.Status != 0:
			ans = answer{status: f.Status, body: []byte(f.Body), retryAfter: f.RetryAfter}
			if f.Body == "" {
				ans.body = a.errorBody(f.Status)
			}
		default:
			ans = handle(tenant)
		}
	}
	call.Status = ans.status
	rec := a.record(call, r)
	a.mu.Lock()
	a.calls = append(a.calls, rec)
	hook, latency := a.onRequest, a.latency
	a.mu.Unlock()
	if hook != nil {
		hook(rec)
	}
	if d := delay + latency; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			// Abort the connection: returning would send an empty 200,
			// which a client whose request raced the cancellation could
			// read as a successful answer (seen once in CI under -race).
			panic(http.ErrAbortHandler)
		}
	}
	if ans.retryAfter != "" {
		w.Header().Set("Retry-After", ans.retryAfter)
	}
	w.Header().Set("Content-Type", a.contentType)
	w.WriteHeader(ans.status)
	_, _ = w.Write(ans.body)
}

// serveBody is serve for a request on /…/{id} with a JSON body.
func (a *api[C]) serveBody(w http.ResponseWriter, r *http.Request, handle func(tenant, id string, raw []byte) answer) {
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	id := r.PathValue("id")
	a.serve(w, r, func(tenant string) answer { return handle(tenant, id, raw) })
}

func (a *api[C]) authorize(r *http.Request) (string, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return "", false
	}
	tenant, ok := a.idp.TenantOfToken(tok)
	if !ok {
		return "", false
	}
	scope, _ := a.idp.ScopeOfToken(tok)
	a.mu.Lock()
	aud := a.audience
	a.mu.Unlock()
	if scope != aud+"/.default" {
		return "", false
	}
	return tenant, true
}

func (a *api[C]) takeFault(tenant, method string) (Fault, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, f := range a.faults {
		if (f.Tenant == "" || strings.EqualFold(f.Tenant, tenant)) && (f.Method == "" || f.Method == method) {
			a.faults = append(a.faults[:i:i], a.faults[i+1:]...)
			return f, true
		}
	}
	return Fault{}, false
}

// getHandler serves GET /…/{id}: view (under mu; it must copy) of the
// tenant's alert, or 404.
func (a *api[C]) getHandler(view func(r *http.Request, alert map[string]any) map[string]any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a.serve(w, r, func(tenant string) answer {
			alert, found := a.lookup(tenant, r.PathValue("id"), func(m map[string]any) map[string]any { return view(r, m) })
			if !found {
				return a.notFound()
			}
			body, _ := json.Marshal(alert)
			return okBody(body)
		})
	}
}

// patchRules is how an API checks and applies a PATCH of an alert.
type patchRules struct {
	// values maps the properties a PATCH may set to their accepted values
	// (nil: any string).
	values map[string]map[string]bool
	// refuse words a bad body as the API does.
	refuse func(fieldError) answer
	// apply runs after the writable properties are copied (status,
	// assignedTo, classification, determination): the API's own effects.
	apply func(alert, fields map[string]any, now time.Time)
}

// patchHandler serves PATCH /…/{id} by rules and records every request
// in Patches.
func (a *api[C]) patchHandler(rules patchRules) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a.serveBody(w, r, func(tenant, id string, raw []byte) answer {
			rec := Patch{Tenant: tenant, AlertID: id, Method: r.Method, Body: raw}
			ans := a.applyPatch(tenant, id, raw, rules, &rec)
			rec.Status = ans.status
			a.locked(func() { a.patches = append(a.patches, rec) })
			return ans
		})
	}
}

func (a *api[C]) applyPatch(tenant, id string, raw []byte, rules patchRules, rec *Patch) answer {
	fields, bad := decodeFields(raw, rules.values)
	rec.Fields = fields
	if bad != nil {
		return rules.refuse(*bad)
	}
	body, found := a.modify(tenant, id, func(alert map[string]any, now time.Time) {
		for _, k := range []string{"status", "assignedTo", "classification", "determination"} {
			if v, ok := fields[k]; ok {
				alert[k] = v
			}
		}
		rules.apply(alert, fields, now)
	})
	if !found {
		return a.notFound()
	}
	return okBody(body)
}

// resolution moves an alert's resolution time, field, on a PATCH of its
// status: set to now when it becomes resolved, cleared when it becomes one
// of open.
func resolution(a, fields map[string]any, field string, now time.Time, resolved string, open ...string) {
	status, _ := fields["status"].(string)
	switch {
	case status == resolved:
		a[field] = formatTime(now)
	case slices.Contains(open, status):
		a[field] = nil
	}
}

// fieldError is what is wrong with a PATCH body; each API words it its
// own way.
type fieldError struct {
	kind  fieldProblem
	field string
	value string
}

type fieldProblem int

const (
	notObject fieldProblem = iota // the body is not a JSON object
	unknownField
	notString
	badValue
)

// decodeFields decodes a JSON object body and checks every property
// against values. fields is the decoded body whenever it is an object,
// even when a property is refused.
func decodeFields(raw []byte, values map[string]map[string]bool) (map[string]any, *fieldError) {
	fields, isObject := decodeObject(raw)
	if !isObject {
		return nil, &fieldError{kind: notObject}
	}
	for k, v := range fields {
		allowed, known := values[k]
		s, isString := v.(string)
		switch {
		case !known:
			return fields, &fieldError{kind: unknownField, field: k}
		case !isString:
			return fields, &fieldError{kind: notString, field: k}
		case allowed != nil && !allowed[s]:
			return fields, &fieldError{kind: badValue, field: k, value: s}
		}
	}
	return fields, nil
}

// decodeObject decodes a body that must be a JSON object.
func decodeObject(raw []byte) (map[string]any, bool) {
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return nil, false
	}
	return fields, true
}

// parseWindow reads a "$filter" of the form "<prop> ge <time>[ and <prop>
// lt <time>]" as re matches it; a filter re does not match is refused
// with invalid+filter.
func parseWindow(re *regexp.Regexp, filter, invalid string) (lo, hi time.Time, err error) {
	if filter == "" {
		return lo, hi, nil
	}
	sub := re.FindStringSubmatch(filter)
	if sub == nil {
		return lo, hi, errors.New(invalid + filter)
	}
	if lo, err = parseODataTime(sub[1]); err != nil {
		return lo, hi, err
	}
	if sub[2] != "" {
		hi, err = parseODataTime(sub[2])
	}
	return lo, hi, err
}

// parseTop reads a "$top" in [1, limit]; "" is limit.
func parseTop(v string, limit int) (int, bool) {
	if v == "" {
		return limit, true
	}
	n, err := strconv.Atoi(v)
	return n, err == nil && n >= 1 && n <= limit
}

// errorMessages are an API's error code and message by status; 400 and
// 500 are the defaults below and above 500.
type errorMessages map[int][2]string

// body picks the error body for status: the API's fixtures for 401 and
// 429, else the message for status in the API's shape.
func (m errorMessages) body(status int, fixture func(string) []byte, shape func(code, msg string) []byte) []byte {
	switch status {
	case http.StatusUnauthorized:
		return fixture("error-401.json")
	case http.StatusTooManyRequests:
		return fixture("error-429.json")
	}
	e, ok := m[status]
	switch {
	case ok:
	case status >= 500:
		e = m[http.StatusInternalServerError]
	default:
		e = m[http.StatusBadRequest]
	}
	return shape(e[0], e[1])
}

func set(xs ...string) map[string]bool {
	m := map[string]bool{}
	for _, x := range xs {
		m[x] = true
	}
	return m
}

func copyAlert(a map[string]any) map[string]any { return toMap(a) }

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
// refused as both APIs do.
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
