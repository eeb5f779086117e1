package defender

import (
	"net/url"
	"reflect"
	"testing"
)

func TestCloudTable(t *testing.T) {
	cases := []struct {
		cloud                      string
		signIn, mde, graph, portal string
	}{
		{"public", "https://login.microsoftonline.com", "https://api.securitycenter.microsoft.com", "https://graph.microsoft.com", "https://security.microsoft.com"},
		{"gcc", "https://login.microsoftonline.com", "https://api-gcc.securitycenter.microsoft.us", "https://graph.microsoft.com", "https://security.microsoft.com"},
		{"gcchigh", "https://login.microsoftonline.us", "https://api-gov.securitycenter.microsoft.us", "https://graph.microsoft.us", "https://security.microsoft.us"},
		{"dod", "https://login.microsoftonline.us", "https://api-gov.securitycenter.microsoft.us", "https://dod-graph.microsoft.us", "https://security.apps.mil"},
	}
	for _, c := range cases {
		t.Run(c.cloud, func(t *testing.T) {
			ep, err := ResolveEndpoints(c.cloud, "mde", "", "")
			if err != nil {
				t.Fatal(err)
			}
			want := Endpoints{Cloud: c.cloud, SignIn: c.signIn, API: c.mde, Audience: c.mde, Portal: c.portal}
			if ep != want {
				t.Errorf("mde endpoints = %+v, want %+v", ep, want)
			}
			if ep.Scope() != c.mde+"/.default" {
				t.Errorf("mde scope = %q", ep.Scope())
			}
			g, err := ResolveEndpoints(c.cloud, "graph", "", "")
			if err != nil {
				t.Fatal(err)
			}
			if g.API != c.graph || g.Scope() != c.graph+"/.default" || g.SignIn != c.signIn {
				t.Errorf("graph endpoints = %+v", g)
			}
			// Overrides: base_url changes where calls go, never the MDE audience.
			o, err := ResolveEndpoints(c.cloud, "mde", "https://login.example.test:8443/", "https://eu.api.security.microsoft.com/")
			if err != nil {
				t.Fatal(err)
			}
			if o.SignIn != "https://login.example.test:8443" || o.API != "https://eu.api.security.microsoft.com" || o.Scope() != c.mde+"/.default" {
				t.Errorf("overridden endpoints = %+v", o)
			}
		})
	}
	if ep, err := ResolveEndpoints("", "", "", ""); err != nil || ep.Cloud != "public" || ep.API != "https://api.securitycenter.microsoft.com" {
		t.Errorf("defaults = %+v, %v", ep, err)
	}
}

func TestResolveEndpointsRejects(t *testing.T) {
	bad := []struct{ cloud, api, authority, base string }{
		{"mars", "mde", "", ""},
		{"public", "splunk", "", ""},
		{"public", "mde", "http://login.example", ""},
		{"public", "mde", "login.example", ""},
		{"public", "mde", "https://login.example/?x=1", ""},
		{"public", "mde", "", "http://api.example.com"},
		{"public", "mde", "", "ftp://api.example.com"},
	}
	for _, b := range bad {
		if _, err := ResolveEndpoints(b.cloud, b.api, b.authority, b.base); err == nil {
			t.Errorf("ResolveEndpoints(%+v) succeeded", b)
		}
	}
	// Plain http is allowed for a loopback API (local fakes).
	if _, err := ResolveEndpoints("public", "mde", "", "http://127.0.0.1:9000"); err != nil {
		t.Errorf("loopback http base_url: %v", err)
	}
}

func TestPermissions(t *testing.T) {
	cases := []struct {
		api  string
		wb   bool
		want []string
	}{
		{"mde", false, []string{"WindowsDefenderATP: Alert.Read.All"}},
		{"mde", true, []string{"WindowsDefenderATP: Alert.ReadWrite.All"}},
		{"graph", false, []string{"Microsoft Graph: SecurityAlert.Read.All"}},
		{"graph", true, []string{"Microsoft Graph: SecurityAlert.ReadWrite.All"}},
	}
	for _, c := range cases {
		if got := Permissions(c.api, c.wb); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Permissions(%s, %v) = %v, want %v", c.api, c.wb, got, c.want)
		}
	}
}

func TestConsentURL(t *testing.T) {
	cases := []struct {
		cloud, api, authority string
		wantHost, wantScope   string
	}{
		{"public", "mde", "", "https://login.microsoftonline.com", "https://api.securitycenter.microsoft.com/.default"},
		{"gcchigh", "mde", "", "https://login.microsoftonline.us", "https://api-gov.securitycenter.microsoft.us/.default"},
		{"dod", "graph", "", "https://login.microsoftonline.us", "https://dod-graph.microsoft.us/.default"},
		{"public", "mde", "https://127.0.0.1:4443", "https://127.0.0.1:4443", "https://api.securitycenter.microsoft.com/.default"},
	}
	for _, c := range cases {
		tk, err := NewTokens(TokensConfig{ClientID: "app-id-1", ClientSecret: "s", Cloud: c.cloud, API: c.api, AuthorityHost: c.authority})
		if err != nil {
			t.Fatal(err)
		}
		got := tk.ConsentURL("6F1C3E2A-0B7D-4C1E-9A55-1D2B3C4D5E6F", "st&ate=1", "https://bot.example.com/consent/callback")
		u, err := url.Parse(got)
		if err != nil {
			t.Fatal(err)
		}
		if base := u.Scheme + "://" + u.Host; base != c.wantHost {
			t.Errorf("%s: host %q, want %q", c.cloud, base, c.wantHost)
		}
		if u.Path != "/"+tenantA+"/v2.0/adminconsent" {
			t.Errorf("%s: path %q", c.cloud, u.Path)
		}
		q := u.Query()
		want := url.Values{
			"client_id":    {"app-id-1"},
			"scope":        {c.wantScope},
			"redirect_uri": {"https://bot.example.com/consent/callback"},
			"state":        {"st&ate=1"},
		}
		if !reflect.DeepEqual(q, want) {
			t.Errorf("%s: query %v, want %v", c.cloud, q, want)
		}
	}
	tk, _ := NewTokens(TokensConfig{ClientID: "app", ClientSecret: "s"})
	want := "https://login.microsoftonline.com/" + tenantA + "/v2.0/adminconsent?client_id=app&redirect_uri=https%3A%2F%2Fb.example%2Fconsent%2Fcallback&scope=https%3A%2F%2Fapi.securitycenter.microsoft.com%2F.default&state=abc"
	if got := tk.ConsentURL(tenantA, "abc", "https://b.example/consent/callback"); got != want {
		t.Errorf("ConsentURL =\n%s\nwant\n%s", got, want)
	}
}
