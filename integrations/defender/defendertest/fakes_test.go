package defendertest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

const tenant = "6f1c3e2a-0b7d-4c1e-9a55-1d2b3c4d5e6f"

// tokenFor asks the IdP for a token of tenant with a raw form post, as
// MSAL does.
func tokenFor(t *testing.T, p *IdP, form url.Values) (int, map[string]any) {
	t.Helper()
	return tokenAt(t, p, tenant, form)
}

// tokenAt is tokenFor for tenant tn.
func tokenAt(t *testing.T, p *IdP, tn string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := p.Client().PostForm(p.URL+"/"+tn+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// send makes one request with a bearer token (none when tok is "") and
// returns the answer.
func send(t *testing.T, c *http.Client, method, target, tok, body string, header http.Header) (int, []byte, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, target, rd)
	for k, vs := range header {
		req.Header[k] = vs
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

// expectStatus checks the status each input gets.
func expectStatus(t *testing.T, what string, cases map[string]int, status func(in string) (int, string)) {
	t.Helper()
	for in, want := range cases {
		if got, body := status(in); got != want {
			t.Errorf("%s %s: %d %s, want %d", what, in, got, body, want)
		}
	}
}

func creds(p *IdP) url.Values {
	return url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {p.ClientID},
		"client_secret": {p.Secret()},
		"scope":         {"https://api.securitycenter.microsoft.com/.default openid offline_access profile"},
	}
}

func TestIdPRefusesUntilConsent(t *testing.T) {
	p := NewIdP(t)
	status, body := tokenFor(t, p, creds(p))
	if status != 400 || body["error"] != "unauthorized_client" || !strings.HasPrefix(body["error_description"].(string), "AADSTS700016:") {
		t.Fatalf("before consent: %d %v", status, body)
	}
	p.Consent(tenant)
	status, body = tokenFor(t, p, creds(p))
	tok, _ := body["access_token"].(string)
	if status != 200 || tok == "" || body["token_type"] != "Bearer" {
		t.Fatalf("after consent: %d %v", status, body)
	}
	if got, ok := p.TenantOfToken(tok); !ok || got != tenant {
		t.Errorf("TenantOfToken = %q %v", got, ok)
	}
	if s, _ := p.ScopeOfToken(tok); s != "https://api.securitycenter.microsoft.com/.default" {
		t.Errorf("scope = %q", s)
	}
	bad := creds(p)
	bad.Set("client_secret", "nope")
	if status, body = tokenFor(t, p, bad); status != 401 || body["error"] != "invalid_client" {
		t.Errorf("bad secret: %d %v", status, body)
	}
	bad = creds(p)
	bad.Set("scope", "https://api.securitycenter.microsoft.com/Alert.Read.All")
	if status, body = tokenFor(t, p, bad); status != 400 || body["error"] != "invalid_scope" {
		t.Errorf("bad scope: %d %v", status, body)
	}
	if n := p.TokenRequests(tenant); n != 4 {
		t.Errorf("TokenRequests = %d, want 4", n)
	}
	p.Revoke(tenant)
	if _, ok := p.TenantOfToken(tok); ok {
		t.Errorf("token valid after Revoke")
	}
	if status, _ = tokenFor(t, p, creds(p)); status != 400 {
		t.Errorf("token issued after Revoke")
	}
}

func TestIdPDiscovery(t *testing.T) {
	p := NewIdP(t)
	for _, tn := range []string{tenant, "organizations"} {
		resp, err := p.Client().Get(p.URL + "/" + tn + "/v2.0/.well-known/openid-configuration")
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		for _, k := range []string{"authorization_endpoint", "token_endpoint", "issuer"} {
			if s, _ := doc[k].(string); !strings.HasPrefix(s, p.URL+"/") {
				t.Errorf("%s: %s = %v", tn, k, doc[k])
			}
		}
	}
	resp, err := p.Client().Get(p.URL + "/not-a-tenant/v2.0/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("unknown tenant: %d", resp.StatusCode)
	}
}

func mdeGet(t *testing.T, m *MDE, tok, pathQuery string) (int, []byte) {
	t.Helper()
	status, b, _ := send(t, m.Client(), http.MethodGet, m.URL+pathQuery, tok, "", nil)
	return status, b
}

func TestMDEFilterAndPatchValidation(t *testing.T) {
	p := NewIdP(t)
	m := NewMDE(t, p)
	p.Consent(tenant)
	_, body := tokenFor(t, p, creds(p))
	tok := body["access_token"].(string)
	at := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	m.PutAt(tenant, SampleAlert("a1"), at)
	m.PutAt(tenant, SampleAlert("a2"), at.Add(time.Hour))

	cases := map[string]int{
		"/api/alerts": 200,
		"/api/alerts?$filter=lastUpdateTime%20ge%202026-11-20T08:00:00Z":                                               200,
		"/api/alerts?$filter=lastUpdateTime+ge+2026-11-20T08:00:00Z+and+lastUpdateTime+lt+2026-11-20T09:00:00Z&$top=5": 200,
		"/api/alerts?$filter=lastUpdateTime%20ge%20'2026-11-20T08:00:00Z'":                                             400,
		"/api/alerts?$filter=severity%20eq%20'High'":                                                                   400,
		"/api/alerts?$top=10001": 400,
		"/api/alerts?$top=0":     400,
	}
	expectStatus(t, "GET", cases, func(pq string) (int, string) {
		status, b := mdeGet(t, m, tok, pq)
		return status, string(b)
	})
	_, b := mdeGet(t, m, tok, "/api/alerts?$filter=lastUpdateTime+ge+2026-11-20T08:00:00Z+and+lastUpdateTime+lt+2026-11-20T09:00:00Z")
	if !strings.Contains(string(b), `"a1"`) || strings.Contains(string(b), `"a2"`) {
		t.Errorf("window [08:00, 09:00) = %s", b)
	}
	if status, b := mdeGet(t, m, "bogus", "/api/alerts"); status != 401 || !strings.Contains(string(b), "Unauthorized") {
		t.Errorf("bogus token: %d %s", status, b)
	}

	expectStatus(t, "PATCH", map[string]int{
		`{"status":"inProgress"}`:           400, // case-sensitive
		`{"classification":"truePositive"}`: 400,
		`{"severity":"Low"}`:                400,
		`{"status":5}`:                      400,
		`not json`:                          400,
		`{"status":"InProgress","assignedTo":"x@y","comment":"c"}`: 200,
	}, func(body string) (int, string) {
		status, b, _ := send(t, m.Client(), http.MethodPatch, m.URL+"/api/alerts/a1", tok, body, nil)
		return status, string(b)
	})
	a, _ := m.Alert(tenant, "a1")
	if a["status"] != "InProgress" || a["assignedTo"] != "x@y" || len(a["comments"].([]any)) != 1 {
		t.Errorf("alert after patch: %v", a)
	}
	if n := len(m.Patches()); n != 6 {
		t.Errorf("Patches = %d, want 6", n)
	}
}

func TestFakesConcurrent(t *testing.T) {
	p := NewIdP(t)
	m := NewMDE(t, p)
	p.Consent(tenant)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			_, body := tokenFor(t, p, creds(p))
			tok, _ := body["access_token"].(string)
			m.Put(tenant, SampleAlert(""))
			if i%5 == 0 {
				m.ThrottleNext(1, 1)
			}
			mdeGet(t, m, tok, "/api/alerts")
		})
	}
	wg.Wait()
	if n := len(m.Calls()); n != 20 {
		t.Errorf("calls = %d", n)
	}
}
