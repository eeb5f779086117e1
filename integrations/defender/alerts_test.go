package defender

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
	"github.com/msspbot/msspbot/integrations/defender/defendertest"
)

var _ bot.AlertSource = (*Client)(nil)
var _ bot.WriteBackTarget = (*Client)(nil)
var _ bot.AccessChecker = (*Client)(nil)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestAlertsMapsFixture(t *testing.T) {
	e := newEnv(t)
	e.idp.Consent(tenantA)
	fx := defendertest.FixtureAlerts()
	e.mde.PutAt(tenantA, fx[0], mustTime(t, "2026-11-20T08:14:05.5Z"))
	e.mde.PutAt(tenantA, fx[1], mustTime(t, "2026-11-20T09:30:00.7654321Z"))

	got, err := e.c.Alerts(ctxT(t), tenantA, mustTime(t, "2026-11-20T00:00:00Z"))
	if err != nil {
		t.Fatalf("Alerts: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d alerts, want 2", len(got))
	}
	a, b := got[0], got[1]
	wantA := bot.Alert{
		TenantID:        tenantA,
		ID:              "da638671234567890123_-1234567890",
		Title:           "Suspicious access to LSASS service",
		Description:     "A process accessed the memory of the Local Security Authority Subsystem Service, which can be used to steal credentials.",
		Severity:        bot.SeverityHigh,
		Status:          bot.StatusNew,
		Category:        "CredentialAccess",
		DetectionSource: "WindowsDefenderAtp",
		DeviceName:      "fin-ws-017.contoso.local",
		DeviceID:        "4a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a39",
		DeviceGroup:     "Finance",
		UserName:        `CONTOSO\jdoe`,
		IncidentID:      "48213",
		IncidentURL:     "https://security.microsoft.com/incidents/48213?tid=" + tenantA,
		MitreTechniques: []string{"T1003.001"},
		PortalURL:       "https://security.microsoft.com/alerts/da638671234567890123_-1234567890?tid=" + tenantA,
		CreatedAt:       mustTime(t, "2026-11-20T08:14:03.1234567Z"),
		LastUpdatedAt:   mustTime(t, "2026-11-20T08:14:05.5Z"),
	}
	rawA := a.Raw
	a.Raw = nil
	if !reflect.DeepEqual(a, wantA) {
		t.Errorf("alert A =\n%+v\nwant\n%+v", a, wantA)
	}
	var rawMap map[string]any
	if err := json.Unmarshal(rawA, &rawMap); err != nil || rawMap["id"] != wantA.ID || rawMap["threatFamilyName"] != nil {
		t.Errorf("Raw is not the alert's JSON: %s", rawA)
	}
	if b.Severity != bot.SeverityLow || b.Status != bot.StatusInProgress || b.Classification != bot.ClassTruePositive ||
		b.Determination != "UnwantedSoftware" || b.AssignedTo != "analyst1@mssp.example" || b.UserName != "" ||
		len(b.MitreTechniques) != 0 || b.IncidentID != "48214" ||
		!b.CreatedAt.Equal(mustTime(t, "2026-11-20T09:01:10.0000001Z")) ||
		!b.LastUpdatedAt.Equal(mustTime(t, "2026-11-20T09:30:00.7654321Z")) || !b.ResolvedAt.IsZero() {
		t.Errorf("alert B = %+v", b)
	}
	// since filters on lastUpdateTime.
	got, err = e.c.Alerts(ctxT(t), tenantA, mustTime(t, "2026-11-20T09:00:00Z"))
	if err != nil || len(got) != 1 || got[0].ID != b.ID {
		t.Errorf("Alerts since 09:00 = %d alerts, %v; want only B", len(got), err)
	}
}

func TestAlertsQuirks(t *testing.T) {
	e := newEnv(t)
	e.idp.Consent(tenantA)
	at := mustTime(t, "2026-11-20T10:00:00Z")
	e.mde.PutAt(tenantA, `{"id":"q1","severity":"UnSpecified","status":"Unknown","classification":null,"determination":"NotMalicious",
		"incidentId":null,"mitreTechniques":null,"relatedUser":{"userName":"svc","domainName":null},"alertCreationTime":"2026-11-20T09:59:59",
		"resolvedTime":"2026-11-20T10:00:00.123456789123+01:00","machineId":null,"computerDnsName":null,"title":"Quirky"}`, at)
	e.mde.PutAt(tenantA, `{"id":"q2","severity":"Medium","status":"Resolved","determination":"SomethingNew","incidentId":"77",
		"mitreTechniques":"T1059","alertCreationTime":"not a time","resolvedTime":null}`, at)
	got, err := e.c.Alerts(ctxT(t), tenantA, at)
	if err != nil {
		t.Fatalf("Alerts: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d alerts", len(got))
	}
	q1, q2 := got[0], got[1]
	if q1.Severity != bot.SeverityUnspecified || q1.Status != bot.StatusUnknown || q1.Determination != "Clean" ||
		q1.IncidentID != "" || q1.IncidentURL != "" || q1.UserName != "svc" || q1.MitreTechniques != nil ||
		!q1.CreatedAt.Equal(mustTime(t, "2026-11-20T09:59:59Z")) ||
		!q1.ResolvedAt.Equal(mustTime(t, "2026-11-20T09:00:00.123456789Z")) {
		t.Errorf("q1 = %+v", q1)
	}
	if q2.Determination != "SomethingNew" || q2.IncidentID != "77" || !reflect.DeepEqual(q2.MitreTechniques, []string{"T1059"}) ||
		!q2.CreatedAt.IsZero() || q2.Status != bot.StatusResolved {
		t.Errorf("q2 = %+v", q2)
	}
}

func TestGetAlertWithEvidence(t *testing.T) {
	e := newEnv(t)
	e.idp.Consent(tenantA)
	a := sampleAlert(t, e, "ev-1")
	id := a.ID
	want := []bot.Evidence{
		{Type: "user", Name: "jdoe@contoso.example"},
		{Type: "process", Name: "procdump64.exe", Verdict: "Detected"},
	}
	if !reflect.DeepEqual(a.Evidence, want) {
		t.Errorf("evidence = %+v, want %+v", a.Evidence, want)
	}
	// The list call does not expand evidence.
	list, err := e.c.Alerts(ctxT(t), tenantA, time.Time{})
	if err != nil || len(list) != 1 || len(list[0].Evidence) != 0 {
		t.Errorf("list evidence: %v %+v", err, list)
	}
	_, err = e.c.GetAlert(ctxT(t), tenantA, "no-such-alert")
	if bot.ErrorCode(err) != bot.ENOTFOUND {
		t.Errorf("missing alert: %v (code %s), want not_found", err, bot.ErrorCode(err))
	}
	// Another tenant's alert id is "not found" too.
	e.idp.Consent(tenantB)
	if _, err := e.c.GetAlert(ctxT(t), tenantB, id); bot.ErrorCode(err) != bot.ENOTFOUND {
		t.Errorf("tenant B reading A's alert: %v", err)
	}
}

// putN stores n alerts one second apart from base.
func putN(e *env, tenant string, n int, base time.Time) []string {
	ids := make([]string, n)
	for i := range n {
		a := defendertest.SampleAlert(fmt.Sprintf("al-%03d", i))
		a["title"] = fmt.Sprintf("alert %d", i)
		ids[i] = e.mde.PutAt(tenant, a, base.Add(time.Duration(i)*time.Second+time.Duration(i)*1234567))
	}
	return ids
}

func idsOf(as []bot.Alert) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.ID
	}
	return out
}

func TestAlertsSplitsFullPages(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.PageSize = 3 })
	e.idp.Consent(tenantA)
	base := mustTime(t, "2026-11-20T08:00:00Z")
	ids := putN(e, tenantA, 10, base)

	expectAlertIDs(t, e, base.Add(-time.Hour), ids)
	split := false
	for _, c := range e.mde.Calls() {
		if c.Query.Get("$skip") != "" {
			t.Errorf("client used $skip on splittable windows: %v", c.Query)
		}
		if c.Query.Get("$top") != "3" {
			t.Errorf("$top = %q", c.Query.Get("$top"))
		}
		if strings.Contains(c.Query.Get("$filter"), " and lastUpdateTime lt ") {
			split = true
		}
		if c.Status != 200 {
			t.Errorf("call %v answered %d", c.Query, c.Status)
		}
	}
	if !split {
		t.Errorf("no window was split")
	}
	if n := len(e.mde.Calls()); n > 20 {
		t.Errorf("%d calls for 10 alerts at $top=3", n)
	}
}

func TestAlertsUpdatedMidPassNotLost(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.PageSize = 3 })
	e.idp.Consent(tenantA)
	base := mustTime(t, "2026-11-20T08:00:00Z")
	ids := putN(e, tenantA, 12, base)
	e.mde.SetNow(func() time.Time { return base.Add(time.Hour) })

	// During the second call (the first split), alert 7 is updated: its
	// lastUpdateTime jumps past every window read so far.
	var once sync.Once
	calls := 0
	e.mde.OnRequest(func(defendertest.Call) {
		calls++
		if calls == 2 {
			once.Do(func() {
				e.mde.Update(tenantA, ids[7], func(a map[string]any) { a["status"] = "InProgress"; a["title"] = "updated" })
			})
		}
	})
	got, err := e.c.Alerts(ctxT(t), tenantA, base.Add(-time.Minute))
	if err != nil {
		t.Fatalf("Alerts: %v", err)
	}
	if len(got) != 12 {
		t.Fatalf("got %d alerts, want 12: %v", len(got), idsOf(got))
	}
	last := got[len(got)-1]
	if last.ID != ids[7] || last.Title != "updated" || last.Status != bot.StatusInProgress {
		t.Errorf("alert updated mid-pass: got %+v as the newest", last)
	}
}

func TestAlertsSameTimestampBeyondPage(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.PageSize = 3 })
	e.idp.Consent(tenantA)
	at := mustTime(t, "2026-11-20T08:00:00.1234567Z")
	var want []string
	for i := range 7 {
		want = append(want, e.mde.PutAt(tenantA, defendertest.SampleAlert(fmt.Sprintf("same-%d", i)), at))
	}
	want = append(want, e.mde.PutAt(tenantA, defendertest.SampleAlert("later-1"), at.Add(time.Minute)))
	expectAlertIDs(t, e, at.Add(-time.Second), want)
	skipped := false
	for _, c := range e.mde.Calls() {
		if c.Query.Get("$skip") != "" {
			skipped = true
		}
	}
	if !skipped {
		t.Errorf("7 alerts with one timestamp at $top=3 were read without $skip")
	}
}

func TestAlertsEmptyAndFilterForm(t *testing.T) {
	e := newEnv(t)
	e.idp.Consent(tenantA)
	got, err := e.c.Alerts(ctxT(t), tenantA, mustTime(t, "2026-01-01T00:00:00Z"))
	if err != nil || len(got) != 0 {
		t.Fatalf("empty tenant: %v, %d alerts", err, len(got))
	}
	calls := e.mde.Calls()
	if len(calls) != 1 {
		t.Fatalf("%d calls", len(calls))
	}
	q := calls[0].Query
	if q.Get("$filter") != "lastUpdateTime ge 2026-01-01T00:00:00Z" || q.Get("$top") != "10000" {
		t.Errorf("query = %v", q)
	}
	if _, err := e.c.Alerts(ctxT(t), "not-a-guid", time.Time{}); err == nil {
		t.Errorf("bad tenant id accepted")
	}
}

func TestODataTimeAndParse(t *testing.T) {
	fmtCases := map[string]string{
		"2026-01-01T00:00:00Z":           "2026-01-01T00:00:00Z",
		"2026-01-01T00:00:00.5Z":         "2026-01-01T00:00:00.5Z",
		"2026-01-01T00:00:00.123456789Z": "2026-01-01T00:00:00.1234567Z",
		"2026-01-01T01:00:00+01:00":      "2026-01-01T00:00:00Z",
	}
	for in, want := range fmtCases {
		if got := odataTime(mustTime(t, in)); got != want {
			t.Errorf("odataTime(%s) = %s, want %s", in, got, want)
		}
	}
	parseCases := map[string]string{
		"2026-11-20T08:14:03.1234567Z":       "2026-11-20T08:14:03.1234567Z",
		"2026-11-20T08:14:05.5Z":             "2026-11-20T08:14:05.5Z",
		"2026-11-20T08:14:05Z":               "2026-11-20T08:14:05Z",
		"2026-11-20T08:14:05.1234567":        "2026-11-20T08:14:05.1234567Z",
		"2026-11-20T08:14:05.123456789012Z":  "2026-11-20T08:14:05.123456789Z",
		"2026-11-20T09:14:05.1234567+01:00":  "2026-11-20T08:14:05.1234567Z",
		"2026-11-20T08:14:05.12345678901234": "2026-11-20T08:14:05.123456789Z",
	}
	for in, want := range parseCases {
		got, err := parseTime(in)
		if err != nil || !got.Equal(mustTime(t, want)) || got.Location() != time.UTC {
			t.Errorf("parseTime(%s) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"yesterday", "2026-13-01T00:00:00Z", "2026-11-20"} {
		if _, err := parseTime(bad); err == nil {
			t.Errorf("parseTime(%q) succeeded", bad)
		}
	}
	var jt struct {
		A jsonTime `json:"a"`
		B jsonTime `json:"b"`
		C jsonTime `json:"c"`
	}
	if err := json.Unmarshal([]byte(`{"a":null,"b":"2026-11-20T08:14:05.5Z","c":42}`), &jt); err != nil {
		t.Fatal(err)
	}
	if !jt.A.IsZero() || !jt.B.Equal(mustTime(t, "2026-11-20T08:14:05.5Z")) || !jt.C.IsZero() {
		t.Errorf("jsonTime = %+v", jt)
	}
}

func TestSplitAt(t *testing.T) {
	lo := mustTime(t, "2026-11-20T08:00:00Z")
	page := func(offsets ...time.Duration) []bot.Alert {
		var out []bot.Alert
		for _, o := range offsets {
			out = append(out, bot.Alert{LastUpdatedAt: lo.Add(o)})
		}
		return out
	}
	cases := []struct {
		name string
		hi   time.Time
		page []bot.Alert
		want time.Duration
		ok   bool
	}{
		{"median on a whole second", time.Time{}, page(time.Second+300*time.Millisecond, 5*time.Second+700*time.Millisecond, 9*time.Second), 5 * time.Second, true},
		{"within the first second", time.Time{}, page(200*time.Millisecond, 300*time.Millisecond+5*tick, 400*time.Millisecond), 300*time.Millisecond + 5*tick, true},
		{"all at lo", time.Time{}, page(0, 0, 0), 0, false},
		{"one after lo", lo.Add(time.Hour), page(0, 0, 2*time.Minute), 2 * time.Minute, true},
		{"outside the window ignored", lo.Add(time.Second), page(0, 0, 2*time.Second), 0, false},
	}
	for _, c := range cases {
		mid, ok := splitAt(lo, c.hi, c.page)
		if ok != c.ok || (ok && !mid.Equal(lo.Add(c.want))) {
			t.Errorf("%s: splitAt = %v %v, want +%v %v", c.name, mid, ok, c.want, c.ok)
		}
	}
}
