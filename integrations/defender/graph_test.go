package defender

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
	"github.com/msspbot/msspbot/integrations/defender/defendertest"
)

const graphScope = "https://graph.microsoft.com/.default"

func TestGraphNewDefaults(t *testing.T) {
	c, err := New(Config{ClientID: "x", ClientSecret: "y", API: "Graph", PageSize: 5000})
	if err != nil {
		t.Fatal(err)
	}
	if c.api != APIGraph || c.top != 1000 || c.perMin != 150 || c.perHour != -1 || c.attempts != 5 {
		t.Errorf("graph defaults: api %q top %d perMin %d perHour %d attempts %d", c.api, c.top, c.perMin, c.perHour, c.attempts)
	}
	if c.Endpoints().API != "https://graph.microsoft.com" || c.Endpoints().Audience != "https://graph.microsoft.com" {
		t.Errorf("endpoints %+v", c.Endpoints())
	}
	if _, err := New(Config{ClientID: "x", ClientSecret: "y", API: "graphql"}); err == nil {
		t.Error("unknown api accepted")
	}
	// The audience follows the cloud; base_url moves only the host.
	for cloud, aud := range map[string]string{
		"public": "https://graph.microsoft.com", "gcc": "https://graph.microsoft.com",
		"gcchigh": "https://graph.microsoft.us", "dod": "https://dod-graph.microsoft.us",
	} {
		c, err := New(Config{ClientID: "x", ClientSecret: "y", API: APIGraph, Cloud: cloud, BaseURL: "https://graph-proxy.example/"})
		if err != nil {
			t.Fatal(err)
		}
		if ep := c.Endpoints(); ep.Audience != aud || ep.API != "https://graph-proxy.example" || ep.Scope() != aud+"/.default" {
			t.Errorf("%s: %+v", cloud, ep)
		}
		u, _ := url.Parse(c.ConsentURL(tenantA, "st", "https://bot.example/consent/callback"))
		if got := u.Query().Get("scope"); got != aud+"/.default" {
			t.Errorf("%s: consent scope %q", cloud, got)
		}
	}
}

func TestGraphAlertsPagingAcrossNextLink(t *testing.T) {
	e := newGraphEnv(t, func(c *Config) { c.PageSize = 2 })
	e.idp.Consent(tenantA)
	fx := defendertest.GraphFixtureAlerts()
	base := mustTime(t, "2026-11-20T10:00:00Z")
	var want []string
	for i, a := range append(fx, defendertest.GraphSampleAlert("x4"), defendertest.GraphSampleAlert("x5")) {
		want = append(want, e.g.PutAt(tenantA, a, base.Add(time.Duration(i)*time.Minute)))
	}
	e.g.PutAt(tenantA, defendertest.GraphSampleAlert("too-old"), base.Add(-time.Hour))
	expectAlertIDs(t, e, mustTime(t, "2026-11-20T09:59:59.9Z"), want)
	calls := e.g.Calls()
	if len(calls) != 3 {
		t.Fatalf("%d calls, want 3 pages of 2", len(calls))
	}
	first := calls[0].Query
	if first.Get("$filter") != "lastUpdateDateTime ge 2026-11-20T09:59:59Z" || first.Get("$top") != "2" || first.Get("$skiptoken") != "" {
		t.Errorf("first request query = %v", first)
	}
	for i, c := range calls {
		if c.Prefer != "include-unknown-enum-members" || c.Method != http.MethodGet || c.Path != "/v1.0/security/alerts_v2" {
			t.Errorf("call %d: %+v", i, c)
		}
		if i > 0 && c.SkipToken == "" {
			t.Errorf("call %d did not follow the nextLink: %v", i, c.Query)
		}
	}

	// Pages shorter than $top still carry a nextLink: it is followed.
	e2 := newGraphEnv(t)
	e2.idp.Consent(tenantA)
	e2.g.SetMaxPageSize(1)
	for _, a := range fx {
		e2.g.Put(tenantA, a)
	}
	got, err := e2.c.Alerts(ctxT(t), tenantA, time.Time{})
	if err != nil || len(got) != 3 || len(e2.g.Calls()) != 3 {
		t.Fatalf("capped pages: %v, %d alerts in %d calls", err, len(got), len(e2.g.Calls()))
	}
	if top := e2.g.Calls()[0].Query.Get("$top"); top != "1000" {
		t.Errorf("default $top = %s, want 1000", top)
	}

	// A 429 on a nextLink page repeats that same link.
	var n atomic.Int32
	e2.g.OnRequest(func(c defendertest.GraphCall) {
		if n.Add(1) == 2 {
			e2.g.ThrottleNext(1, 2)
		}
	})
	got, err = e2.c.Alerts(ctxT(t), tenantA, time.Time{})
	if err != nil || len(got) != 3 {
		t.Fatalf("429 mid-paging: %v, %d alerts", err, len(got))
	}
	calls = e2.g.Calls()[3:]
	if len(calls) != 4 || calls[2].Status != 429 || calls[3].SkipToken != calls[2].SkipToken || calls[3].SkipToken == "" {
		t.Errorf("retry of a nextLink: %+v", calls)
	}
}

func TestGraphNextLinkToForeignHostRefused(t *testing.T) {
	var hits atomic.Int32
	var gotAuth atomic.Value
	evil := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		gotAuth.Store(r.Header.Get("Authorization"))
		w.Write([]byte(`{"value":[]}`))
	}))
	defer evil.Close()
	for name, link := range map[string]string{
		"other host":        "https://evil.example",
		"same IP, new port": evil.URL, // 127.0.0.1 like the fake, another port
	} {
		t.Run(name, func(t *testing.T) {
			e := newGraphEnv(t, func(c *Config) { c.PageSize = 1 })
			e.idp.Consent(tenantA)
			e.g.Put(tenantA, defendertest.GraphSampleAlert("a1"))
			e.g.Put(tenantA, defendertest.GraphSampleAlert("a2"))
			e.g.SetNextLinkBase(link)
			got, err := e.c.Alerts(ctxT(t), tenantA, time.Time{})
			if !errors.Is(err, errForeignLink) || got != nil {
				t.Fatalf("foreign nextLink: %v, %d alerts", err, len(got))
			}
			if !strings.Contains(err.Error(), tenantA) || strings.Contains(err.Error(), "skiptoken") {
				t.Errorf("error %q", err)
			}
			if n := len(e.g.Calls()); n != 1 {
				t.Errorf("%d calls to the API", n)
			}
		})
	}
	if hits.Load() != 0 {
		t.Errorf("the foreign host got %d requests (Authorization %q)", hits.Load(), gotAuth.Load())
	}

	c := &Client{ep: Endpoints{API: "https://graph.example:8443/base"}}
	for link, want := range map[string]string{
		"https://graph.example:8443/v1.0/security/alerts_v2?$skiptoken=x": "https://graph.example:8443/v1.0/security/alerts_v2?$skiptoken=x",
		"https://GRAPH.example:8443/v1.0/x":                               "https://GRAPH.example:8443/v1.0/x",
		"/v1.0/security/alerts_v2?$skiptoken=y":                           "https://graph.example:8443/v1.0/security/alerts_v2?$skiptoken=y",
		"http://graph.example:8443/v1.0/x":                                "",
		"https://graph.example/v1.0/x":                                    "",
		"https://graph.example.evil:8443/v1.0/x":                          "",
		"https://user:pw@graph.example:8443/v1.0/x":                       "",
		"//evil.example/v1.0/x":                                           "",
		"javascript:alert(1)":                                             "",
	} {
		got, err := c.graphLink(link)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("graphLink(%q) = %q, %v; want %q", link, got, err, want)
		}
	}
	c.ep.API = "https://graph.microsoft.com"
	if got, err := c.graphLink("https://graph.microsoft.com:443/v1.0/x"); err != nil || got == "" {
		t.Errorf("default port: %q %v", got, err)
	}
}

func TestGraphMapsFixture(t *testing.T) {
	e := newGraphEnv(t)
	e.idp.Consent(tenantA)
	fx := defendertest.GraphFixtureAlerts()
	times := []time.Time{mustTime(t, "2026-11-20T10:20:01.3266667Z"), mustTime(t, "2026-11-20T11:45:10.1Z"), mustTime(t, "2026-11-20T12:30:00Z")}
	for i, a := range fx {
		e.g.PutAt(tenantA, a, times[i])
	}
	got, err := e.c.Alerts(ctxT(t), tenantA, mustTime(t, "2026-11-20T00:00:00Z"))
	if err != nil || len(got) != 3 {
		t.Fatalf("Alerts: %v, %d alerts", err, len(got))
	}
	id := "da638671300000000001_-555000111"
	want := bot.Alert{
		TenantID:        tenantA,
		ID:              id,
		Title:           "Suspicious execution of hidden file",
		Description:     "A hidden file has been launched. This activity could indicate a compromised host.",
		Severity:        bot.SeverityMedium,
		Status:          bot.StatusNew,
		Category:        "DefenseEvasion",
		DetectionSource: "antivirus",
		ServiceSource:   "microsoftDefenderForEndpoint",
		DeviceName:      "ops-srv-04",
		DeviceID:        "73e7e2de709dff64ef64b1d0c30e67fab63279db",
		DeviceGroup:     "Servers",
		UserName:        `FABRIKAM\svc-backup`,
		IncidentID:      "91002",
		IncidentURL:     "https://security.microsoft.com/incidents/91002?tid=" + tenantA,
		MitreTechniques: []string{"T1564.001"},
		Evidence: []bot.Evidence{
			{Type: "device", Name: "ops-srv-04", Verdict: "unknown", Group: "Servers"},
			{Type: "user", Name: "svc-backup@fabrikam.example", Verdict: "suspicious"},
		},
		PortalURL:     "https://security.microsoft.com/alerts/" + id + "?tid=" + tenantA,
		CreatedAt:     mustTime(t, "2026-11-20T10:19:27.7211305Z"),
		LastUpdatedAt: times[0],
	}
	a := got[0]
	raw := a.Raw
	a.Raw = nil
	if !reflect.DeepEqual(a, want) {
		t.Errorf("alert =\n%+v\nwant\n%+v", a, want)
	}
	var rawMap map[string]any
	if err := json.Unmarshal(raw, &rawMap); err != nil || rawMap["id"] != id || rawMap["detectorId"] != "6a5b4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2d" {
		t.Errorf("Raw is not the alert's JSON: %s", raw)
	}
	b, c := got[1], got[2]
	if b.Status != bot.StatusInProgress || b.Severity != bot.SeverityHigh || b.Classification != bot.ClassTruePositive ||
		b.Determination != "Phishing" || b.AssignedTo != "analyst2@mssp.example" || b.ServiceSource != "microsoftDefenderForOffice365" ||
		b.IncidentID != "91003" || b.Evidence != nil || b.DeviceName != "" || b.UserName != "" ||
		!b.CreatedAt.Equal(mustTime(t, "2026-11-20T11:02:00Z")) {
		t.Errorf("alert 2 = %+v", b)
	}
	if c.Status != bot.StatusResolved || c.Severity != bot.SeverityInformational || c.Classification != bot.ClassInformational ||
		c.Determination != "SecurityTesting" || c.DetectionSource != "customDetection" ||
		!reflect.DeepEqual(c.MitreTechniques, []string{"T1570", "T1021.002"}) ||
		!c.ResolvedAt.Equal(mustTime(t, "2026-11-20T12:30:00Z")) || !c.CreatedAt.Equal(mustTime(t, "2026-11-20T12:00:00.0000001Z")) {
		t.Errorf("alert 3 = %+v", c)
	}
	// since filters on lastUpdateDateTime.
	got, err = e.c.Alerts(ctxT(t), tenantA, mustTime(t, "2026-11-20T11:00:00Z"))
	if err != nil || !reflect.DeepEqual(idsOf(got), []string{b.ID, c.ID}) {
		t.Errorf("since 11:00: %v %v", idsOf(got), err)
	}
}

func TestGraphEvidenceTypes(t *testing.T) {
	e := newGraphEnv(t)
	e.idp.Consent(tenantA)
	a := sampleAlert(t, e, "ev-1")
	run := `HKEY_CURRENT_USER\SOFTWARE\Microsoft\Windows\CurrentVersion\Run`
	want := []bot.Evidence{
		{Type: "device", Name: "fin-ws-017.contoso.local", Verdict: "malicious", Group: "Finance"},
		{Type: "user", Name: "jdoe@contoso.example", Verdict: "suspicious"},
		{Type: "file", Name: "mimi.exe", Verdict: "malicious"},
		{Type: "process", Name: "mimi.exe", Verdict: "suspicious"},
		{Type: "ip", Name: "203.0.113.45", Verdict: "suspicious"},
		{Type: "url", Name: "https://login-contoso.example.net/owa", Verdict: "malicious"},
		{Type: "mailbox", Name: "jane.doe@contoso.example", Verdict: "unknown"},
		{Type: "email", Name: "Your mailbox is almost full", Verdict: "malicious"},
		{Type: "cloudApplication", Name: "Office 365", Verdict: "unknown"},
		{Type: "oauthApplication", Name: "Mail Helper Pro", Verdict: "suspicious"},
		{Type: "registry", Name: run, Verdict: "suspicious"},
		{Type: "registry", Name: run + `\Updater`, Verdict: "suspicious"},
		{Type: "securityGroup", Name: "Domain Admins", Verdict: "unknown"},
		{Type: "mailCluster", Name: "Similar emails: Your mailbox is almost full", Verdict: "malicious"},
		{Type: "nic", Name: "10.1.2.17", Verdict: "unknown"},
		{Type: "azureResource", Name: "fin-ws-017", Verdict: "unknown"},
		{Type: "device", Name: "dc01.contoso.local", Verdict: "unknown", Group: "Domain Controllers"},
		{Type: "quantumWidget", Name: "widget-7", Verdict: "suspicious"},
	}
	if len(a.Evidence) != len(want) {
		t.Fatalf("%d evidence rows, want %d: %+v", len(a.Evidence), len(want), a.Evidence)
	}
	for i := range want {
		if a.Evidence[i] != want[i] {
			t.Errorf("evidence %d = %+v, want %+v", i, a.Evidence[i], want[i])
		}
	}
	if a.DeviceName != "fin-ws-017.contoso.local" || a.DeviceID != "4a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a39" ||
		a.DeviceGroup != "Finance" || a.UserName != `CONTOSO\jdoe` || a.Severity != bot.SeverityHigh ||
		!reflect.DeepEqual(a.MitreTechniques, []string{"T1003.001", "T1566.002"}) ||
		a.PortalURL != "https://security.microsoft.com/alerts/ev-1?tid="+tenantA {
		t.Errorf("alert = %+v", a)
	}
	// The list carries the same evidence (alerts_v2 needs no $expand).
	got, err := e.c.Alerts(ctxT(t), tenantA, time.Time{})
	if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0].Evidence, a.Evidence) {
		t.Errorf("listed evidence differs: %v", err)
	}

	if _, err := e.c.GetAlert(ctxT(t), tenantA, "missing"); bot.ErrorCode(err) != bot.ENOTFOUND {
		t.Errorf("missing alert: %v (code %q)", err, bot.ErrorCode(err))
	}
}

func TestGraphUnknownEnums(t *testing.T) {
	e := newGraphEnv(t)
	e.idp.Consent(tenantA)
	at := mustTime(t, "2026-11-21T09:00:00Z")
	e.g.PutAt(tenantA, defendertest.GraphUnknownEnumsAlert("u1"), at)
	e.g.PutAt(tenantA, `{"id":"u2","status":"snoozed","severity":"critical","classification":"maybe","determination":"apt",
		"serviceSource":"unknownFutureValue","detectionSource":"quantumSensor","incidentId":77,"mitreTechniques":"T1059",
		"alertWebUrl":"javascript:alert(1)","createdDateTime":"not a time",
		"evidence":[{"@odata.type":"#microsoft.graph.security.deviceEvidence","verdict":"veryBad","deviceDnsName":"x"},
			"not an object",{"verdict":"malicious","displayName":"typeless"}]}`, at)
	got, err := e.c.Alerts(ctxT(t), tenantA, at)
	if err != nil || len(got) != 2 {
		t.Fatalf("Alerts: %v, %d alerts", err, len(got))
	}
	u1, u2 := got[0], got[1]
	if u1.Status != bot.StatusUnknown || u1.Severity != bot.SeverityUnspecified || u1.Classification != "" ||
		u1.Determination != "" || u1.ServiceSource != "microsoftSentinel" || u1.DetectionSource != "scheduledAlerts" ||
		u1.MitreTechniques != nil || u1.UserName != "jdoe@contoso.example" ||
		len(u1.Evidence) != 1 || u1.Evidence[0] != (bot.Evidence{Type: "user", Name: "jdoe@contoso.example", Verdict: "unknown"}) {
		t.Errorf("u1 = %+v", u1)
	}
	if u2.Status != bot.StatusUnknown || u2.Severity != bot.SeverityUnspecified || u2.Classification != "" ||
		u2.Determination != "apt" || u2.ServiceSource != "unknown" || u2.DetectionSource != "quantumSensor" ||
		u2.IncidentID != "77" || !reflect.DeepEqual(u2.MitreTechniques, []string{"T1059"}) || !u2.CreatedAt.IsZero() ||
		u2.PortalURL != "https://security.microsoft.com/alerts/u2?tid="+tenantA || u2.DeviceName != "x" ||
		!reflect.DeepEqual(u2.Evidence, []bot.Evidence{{Type: "device", Name: "x", Verdict: "veryBad"}, {Type: "unknown", Name: "typeless", Verdict: "malicious"}}) {
		t.Errorf("u2 = %+v", u2)
	}
}

func TestGraphSelfLink(t *testing.T) {
	e := newGraphEnv(t)
	e.idp.Consent(tenantA)
	// A server that links a page to itself does not loop.
	e.g.Inject(defendertest.Fault{Status: 200, Body: `{"value": [], "@odata.nextLink": "` + e.g.URL + `/v1.0/security/alerts_v2?$skiptoken=same"}`}, 2)
	if _, err := e.c.Alerts(ctxT(t), tenantA, time.Time{}); err == nil || !strings.Contains(err.Error(), "repeats") {
		t.Errorf("self-link: %v", err)
	}
}

func TestGraphTenantsAndAudience(t *testing.T) {
	e := newGraphEnv(t)
	expectTenantIsolation(t, e)
	// The fake refuses tokens for another audience: the client asks
	// for Graph's, even though base_url points at 127.0.0.1.
	e.g.SetAudience("https://api.securitycenter.microsoft.com")
	if _, err := e.c.Alerts(ctxT(t), tenantA, time.Time{}); !errors.Is(err, bot.ErrAuth) {
		t.Errorf("wrong audience: %v", err)
	}
	// A sovereign cloud's client asks for that cloud's audience.
	us := newGraphEnv(t, func(c *Config) { c.Cloud = "gcchigh" })
	us.g.SetAudience("https://graph.microsoft.us")
	us.idp.Consent(tenantA)
	us.g.Put(tenantA, defendertest.GraphSampleAlert("us-1"))
	if got, err := us.c.Alerts(ctxT(t), tenantA, time.Time{}); err != nil || len(got) != 1 {
		t.Errorf("gcchigh: %v", err)
	}
}

// TestGraphDeterminationRoundTrip resolves with every determination, by
// its MDE and its Graph name: Graph only ever receives Graph names (the
// fake refuses others), and the fetched alert maps back to the canonical
// name.
func TestGraphDeterminationRoundTrip(t *testing.T) {
	e := newGraphEnv(t)
	e.idp.Consent(tenantA)
	id := e.g.Put(tenantA, defendertest.GraphSampleAlert("rt-1"))
	mdeOnly := map[string]bool{}
	for _, d := range bot.DeterminationNames() {
		if g := bot.DeterminationGraphName(d); g != d && !strings.EqualFold(g, d) {
			mdeOnly[d] = true
		}
	}
	mdeOnly["Clean"], mdeOnly["NotMalicious"] = true, true
	for _, canonical := range bot.DeterminationNames() {
		for _, input := range []string{canonical, bot.DeterminationGraphName(canonical)} {
			wb := bot.WriteBack{TenantID: tenantA, AlertID: id, Kind: bot.WriteBackResolve, Classification: bot.ClassTruePositive, Determination: input}
			if err := e.c.Apply(ctxT(t), wb); err != nil {
				t.Fatalf("resolve as %s: %v", input, err)
			}
			ps := e.g.Patches()
			var body map[string]string
			if err := json.Unmarshal(ps[len(ps)-1].Body, &body); err != nil {
				t.Fatal(err)
			}
			if body["determination"] != bot.DeterminationGraphName(canonical) || mdeOnly[body["determination"]] {
				t.Errorf("resolve as %s sent %q", input, body["determination"])
			}
			a, err := e.c.GetAlert(ctxT(t), tenantA, id)
			if err != nil || a.Determination != canonical || a.Status != bot.StatusResolved || a.Classification != bot.ClassTruePositive {
				t.Errorf("resolve as %s read back %q %q %q (%v)", input, a.Determination, a.Status, a.Classification, err)
			}
		}
	}
	for _, p := range e.g.Patches() {
		for _, bad := range []string{`"Resolved"`, `"TruePositive"`, `"CompromisedUser"`, `"Clean"`, `"InsufficientData"`, `"ConfirmedUserActivity"`} {
			if strings.Contains(string(p.Body), bad) {
				t.Errorf("MDE value %s sent to Graph: %s", bad, p.Body)
			}
		}
	}
}

func TestGraphApplyErrors(t *testing.T) {
	e := newGraphEnv(t)
	e.idp.Consent(tenantA)
	id := e.g.Put(tenantA, defendertest.GraphSampleAlert("wb-1"))
	expectRefused(t, e, id)
	ack := bot.WriteBack{TenantID: tenantA, AlertID: id, Kind: bot.WriteBackAck, Actor: "a@b"}
	// The PATCH is rejected: nothing else is sent.
	before := len(e.g.Calls())
	e.g.Inject(defendertest.Fault{Status: http.StatusBadRequest, Method: http.MethodPatch}, 1)
	if _, ok := permanent(e.c.Apply(ctxT(t), ack)); !ok || len(e.g.Calls()) != before+1 {
		t.Errorf("PATCH 400: want permanent after one call, got %d calls", len(e.g.Calls())-before)
	}
	// The PATCH passes, the comment is rejected: permanent, and says so.
	e.g.Inject(defendertest.Fault{Status: http.StatusBadRequest, Method: http.MethodPost}, 1)
	if se, ok := permanent(e.c.Apply(ctxT(t), ack)); !ok || !strings.Contains(se.Reason, "comment") || !strings.Contains(se.Reason, "updated") {
		t.Errorf("comment 400: %v", se)
	}
	// The comment keeps failing with 5xx: retryable; the retry repeats
	// the (idempotent) PATCH and sends the comment once.
	e.g.Inject(defendertest.Fault{Status: http.StatusBadGateway, Method: http.MethodPost}, e.cfg.MaxAttempts)
	err := e.c.Apply(ctxT(t), ack)
	if _, ok := permanent(err); ok || !errors.Is(err, ErrUnavailable) {
		t.Errorf("comment 502s: %v, want retryable", err)
	}
	nc := len(e.g.Comments())
	if err := e.c.Apply(ctxT(t), ack); err != nil {
		t.Errorf("retry: %v", err)
	}
	if got := e.g.Comments(); len(got) != nc+1 || got[len(got)-1].Status != 200 {
		t.Errorf("comments after retry: %d more", len(got)-nc)
	}
	expectAuthThenThrottled(t, e, ack)
}
