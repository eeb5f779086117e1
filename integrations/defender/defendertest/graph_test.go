package defendertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const otherTenant = "0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d"

func graphToken(t *testing.T, p *IdP, tn, scope string) string {
	t.Helper()
	form := creds(p)
	form.Set("scope", scope+" openid offline_access profile")
	_, body := tokenAt(t, p, tn, form)
	tok, _ := body["access_token"].(string)
	if tok == "" {
		t.Fatalf("no token for %s: %v", tn, body)
	}
	return tok
}

// newGraphFake starts an IdP and a Graph fake, consents tenant and
// returns a token of tenant for Graph.
func newGraphFake(t *testing.T) (*IdP, *Graph, string) {
	t.Helper()
	p := NewIdP(t)
	g := NewGraph(t, p)
	p.Consent(tenant)
	return p, g, graphToken(t, p, tenant, "https://graph.microsoft.com/.default")
}

// graphDo sends one request to the fake; target is a path+query or a full URL.
func graphDo(t *testing.T, g *Graph, method, target, tok, body string, prefer bool) (int, map[string]any, http.Header) {
	t.Helper()
	if strings.HasPrefix(target, "/") {
		target = g.URL + target
	}
	var header http.Header
	if prefer {
		header = http.Header{"Prefer": {"include-unknown-enum-members"}}
	}
	status, raw, h := send(t, g.Client(), method, target, tok, body, header)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: body is not JSON: %s", method, target, raw)
	}
	return status, out, h
}

// graphStatus returns the status check of expectStatus for requests to
// target with the input as body, or with target "" for GETs of the input.
// GETs ask for unknown enum members.
func graphStatus(t *testing.T, g *Graph, method, target, tok string) func(in string) (int, string) {
	return func(in string) (int, string) {
		to, body := target, in
		if target == "" {
			to, body = in, ""
		}
		status, resp, _ := graphDo(t, g, method, to, tok, body, method == http.MethodGet)
		return status, fmt.Sprint(resp)
	}
}

func ids(page map[string]any) []string {
	var out []string
	vs, _ := page["value"].([]any)
	for _, v := range vs {
		out = append(out, v.(map[string]any)["id"].(string))
	}
	return out
}

func errCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func TestGraphTokensAndTenants(t *testing.T) {
	p := NewIdP(t)
	g := NewGraph(t, p)
	p.Consent(tenant)
	p.Consent(otherTenant)
	g.Put(tenant, GraphSampleAlert("a-only"))
	g.Put(otherTenant, GraphSampleAlert("b-only"))
	tokA := graphToken(t, p, tenant, "https://graph.microsoft.com/.default")

	status, page, _ := graphDo(t, g, "GET", "/v1.0/security/alerts_v2", tokA, "", true)
	if status != 200 || strings.Join(ids(page), ",") != "a-only" {
		t.Fatalf("A's token listed %d %v", status, ids(page))
	}
	if status, body, _ := graphDo(t, g, "GET", "/v1.0/security/alerts_v2/b-only", tokA, "", true); status != 404 || errCode(body) != "NotFound" {
		t.Errorf("A's token read B's alert: %d %v", status, body)
	}
	if status, _, _ := graphDo(t, g, "PATCH", "/v1.0/security/alerts_v2/b-only", tokA, `{"status":"resolved"}`, false); status != 404 {
		t.Errorf("A's token patched B's alert: %d", status)
	}
	if a, _ := g.Alert(otherTenant, "b-only"); a["status"] != "new" {
		t.Errorf("B's alert changed: %v", a["status"])
	}
	// A token for MDE's audience, none, or a made-up one: 401.
	mdeTok := graphToken(t, p, tenant, "https://api.securitycenter.microsoft.com/.default")
	for name, tok := range map[string]string{"mde audience": mdeTok, "none": "", "bogus": "fake-at-nope"} {
		status, body, _ := graphDo(t, g, "GET", "/v1.0/security/alerts_v2", tok, "", true)
		if status != 401 || errCode(body) != "InvalidAuthenticationToken" {
			t.Errorf("%s: %d %v", name, status, body)
		}
	}
	// A sovereign audience.
	g.SetAudience("https://graph.microsoft.us")
	if status, _, _ := graphDo(t, g, "GET", "/v1.0/security/alerts_v2", tokA, "", true); status != 401 {
		t.Errorf("public token on a gcchigh fake: %d", status)
	}
	usTok := graphToken(t, p, tenant, "https://graph.microsoft.us/.default")
	if status, _, _ := graphDo(t, g, "GET", "/v1.0/security/alerts_v2", usTok, "", true); status != 200 {
		t.Errorf("gcchigh token: %d", status)
	}
	if a, _ := g.Alert(tenant, "a-only"); a["tenantId"] != tenant || !strings.HasSuffix(a["alertWebUrl"].(string), "a-only?tid="+tenant) {
		t.Errorf("Put did not stamp the tenant: %v %v", a["tenantId"], a["alertWebUrl"])
	}
}

func TestGraphPagingAndFilter(t *testing.T) {
	p, g, tok := newGraphFake(t)
	p.Consent(otherTenant)
	at := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	g.PutAt(tenant, GraphSampleAlert("old"), at.Add(-time.Hour))
	for i, id := range []string{"p1", "p2", "p3", "p4", "p5"} {
		g.PutAt(tenant, GraphSampleAlert(id), at.Add(time.Duration(i)*time.Minute))
	}
	var got []string
	target := "/v1.0/security/alerts_v2?$filter=" + url.QueryEscape("lastUpdateDateTime ge 2026-11-20T08:00:00Z") + "&$top=2"
	var tokens []string
	for pages := 0; target != ""; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		status, page, _ := graphDo(t, g, "GET", target, tok, "", true)
		if status != 200 {
			t.Fatalf("%s: %d %v", target, status, page)
		}
		got = append(got, ids(page)...)
		target, _ = page["@odata.nextLink"].(string)
		if target != "" {
			u, _ := url.Parse(target)
			if !strings.HasPrefix(target, g.URL+"/v1.0/security/alerts_v2?") || u.Query().Get("$skiptoken") == "" {
				t.Fatalf("nextLink %s", target)
			}
			tokens = append(tokens, target)
		}
	}
	if strings.Join(got, ",") != "p1,p2,p3,p4,p5" || len(tokens) != 2 {
		t.Fatalf("pages gave %v with %d links", got, len(tokens))
	}
	// A nextLink is retryable (the client repeats it after a 429 or 5xx)...
	if status, page, _ := graphDo(t, g, "GET", tokens[0], tok, "", true); status != 200 || strings.Join(ids(page), ",") != "p3,p4" {
		t.Errorf("repeated nextLink: %d %v", status, ids(page))
	}
	// ...but useless to another tenant.
	tokB := graphToken(t, p, otherTenant, "https://graph.microsoft.com/.default")
	if status, _, _ := graphDo(t, g, "GET", tokens[0], tokB, "", true); status != 400 {
		t.Errorf("B followed A's nextLink: %d", status)
	}
	// The server may cap pages below $top and still link the rest.
	g.SetMaxPageSize(1)
	status, page, _ := graphDo(t, g, "GET", "/v1.0/security/alerts_v2?$top=1000", tok, "", true)
	if status != 200 || len(ids(page)) != 1 || page["@odata.nextLink"] == nil {
		t.Errorf("capped page: %d %v %v", status, ids(page), page["@odata.nextLink"])
	}
	g.SetMaxPageSize(0)
	g.SetNextLinkBase("https://evil.example")
	_, page, _ = graphDo(t, g, "GET", "/v1.0/security/alerts_v2?$top=1", tok, "", true)
	if l, _ := page["@odata.nextLink"].(string); !strings.HasPrefix(l, "https://evil.example/v1.0/security/alerts_v2?") {
		t.Errorf("SetNextLinkBase: %s", l)
	}

	expectStatus(t, "GET", map[string]int{
		"/v1.0/security/alerts_v2?$filter=lastUpdateDateTime+ge+2026-11-20T08:00:00Z&$top=1000":                                      200,
		"/v1.0/security/alerts_v2?$filter=lastUpdateDateTime+ge+2026-11-20T08:00:00Z+and+lastUpdateDateTime+lt+2026-11-20T08:02:00Z": 200,
		"/v1.0/security/alerts_v2?$filter=lastUpdateTime+ge+2026-11-20T08:00:00Z":                                                    400, // MDE's property name
		"/v1.0/security/alerts_v2?$filter=severity+eq+'high'":                                                                        400,
		"/v1.0/security/alerts_v2?$top=1001":                                                                                         400,
		"/v1.0/security/alerts_v2?$top=0":                                                                                            400,
		"/v1.0/security/alerts_v2?$skiptoken=made-up":                                                                                400,
		"/v1.0/security/alerts_v2?$filter=lastUpdateDateTime+ge+'2026-11-20T08:00:00Z'":                                              400,
	}, graphStatus(t, g, "GET", "", tok))
	_, page, _ = graphDo(t, g, "GET", "/v1.0/security/alerts_v2?$filter=lastUpdateDateTime+ge+2026-11-20T08:00:00Z+and+lastUpdateDateTime+lt+2026-11-20T08:02:00Z", tok, "", true)
	if strings.Join(ids(page), ",") != "p1,p2" {
		t.Errorf("window [08:00, 08:02) = %v", ids(page))
	}
}

func TestGraphEvolvableEnums(t *testing.T) {
	_, g, tok := newGraphFake(t)
	g.Put(tenant, GraphUnknownEnumsAlert("s1"))
	_, page, _ := graphDo(t, g, "GET", "/v1.0/security/alerts_v2", tok, "", false)
	a := page["value"].([]any)[0].(map[string]any)
	if a["serviceSource"] != "unknownFutureValue" || a["detectionSource"] != "unknownFutureValue" {
		t.Errorf("without Prefer: %v %v", a["serviceSource"], a["detectionSource"])
	}
	_, a, _ = graphDo(t, g, "GET", "/v1.0/security/alerts_v2/s1", tok, "", true)
	if a["serviceSource"] != "microsoftSentinel" || a["detectionSource"] != "scheduledAlerts" {
		t.Errorf("with Prefer: %v %v", a["serviceSource"], a["detectionSource"])
	}
	calls := g.Calls()
	if calls[0].Prefer != "" || calls[1].Prefer != "include-unknown-enum-members" {
		t.Errorf("recorded Prefer: %q %q", calls[0].Prefer, calls[1].Prefer)
	}
}

func TestGraphPatchAndCommentValidation(t *testing.T) {
	_, g, tok := newGraphFake(t)
	g.Put(tenant, GraphSampleAlert("a1"))
	path := "/v1.0/security/alerts_v2/a1"
	expectStatus(t, "PATCH", map[string]int{
		`{"status":"InProgress"}`:             400, // MDE spelling
		`{"classification":"TruePositive"}`:   400,
		`{"determination":"Clean"}`:           400, // MDE name
		`{"determination":"compromisedUser"}`: 400,
		`{"comment":"hi"}`:                    400, // comments are a collection
		`{"severity":"low"}`:                  400,
		`{"status":5}`:                        400,
		`[]`:                                  400,
		`{"status":"resolved","classification":"falsePositive","determination":"notMalicious","assignedTo":"x@y"}`: 200,
	}, graphStatus(t, g, "PATCH", path, tok))
	a, _ := g.Alert(tenant, "a1")
	if a["status"] != "resolved" || a["determination"] != "notMalicious" || a["assignedTo"] != "x@y" || a["resolvedDateTime"] == nil {
		t.Errorf("after PATCH: %v", a)
	}
	if status, _, _ := graphDo(t, g, "PATCH", "/v1.0/security/alerts_v2/missing", tok, `{"status":"new"}`, false); status != 404 {
		t.Errorf("PATCH of a missing alert: %d", status)
	}
	if n := len(g.Patches()); n != 10 {
		t.Errorf("Patches = %d, want 10", n)
	}

	expectStatus(t, "POST", map[string]int{
		`{"comment":"no type"}`: 400,
		`{"@odata.type":"microsoft.graph.security.alert","comment":"wrong type"}`:         400,
		`{"@odata.type":"microsoft.graph.security.alertComment","comment":"  "}`:          400,
		`{"@odata.type":"microsoft.graph.security.alertComment","comment":"x","by":"me"}`: 400,
		`{"@odata.type":"microsoft.graph.security.alertComment","comment":"first"}`:       200,
		`{"@odata.type":"#microsoft.graph.security.alertComment","comment":"second"}`:     200,
	}, graphStatus(t, g, "POST", path+"/comments", tok))
	a, _ = g.Alert(tenant, "a1")
	if cs, _ := a["comments"].([]any); len(cs) != 2 {
		t.Errorf("comments: %v", a["comments"])
	}
	if n := len(g.Comments()); n != 6 {
		t.Errorf("Comments = %d, want 6", n)
	}
}

func TestGraphFaults(t *testing.T) {
	_, g, tok := newGraphFake(t)
	g.ThrottleNext(1, 3)
	status, body, h := graphDo(t, g, "GET", "/v1.0/security/alerts_v2", tok, "", true)
	if status != 429 || h.Get("Retry-After") != "3" || errCode(body) != "TooManyRequests" {
		t.Errorf("throttle: %d %v %v", status, h, body)
	}
	g.Inject(Fault{Status: 503, Method: http.MethodPost}, 1)
	if status, _, _ := graphDo(t, g, "GET", "/v1.0/security/alerts_v2", tok, "", true); status != 200 {
		t.Errorf("a POST fault hit a GET: %d", status)
	}
	g.FailNext(1, 403)
	if status, body, _ := graphDo(t, g, "GET", "/v1.0/security/alerts_v2", tok, "", true); status != 403 || errCode(body) != "Forbidden" {
		t.Errorf("403: %d %v", status, body)
	}
}
