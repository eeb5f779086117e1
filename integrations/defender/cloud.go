package defender

import (
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"
)

// Cloud is one Microsoft cloud's hosts (DESIGN §5). MDE is both the MDE API
// host and the audience of MDE tokens.
type Cloud struct {
	Name   string
	SignIn string // Entra ID sign-in host (MSAL authority host)
	MDE    string // Defender for Endpoint API host = token audience
	Graph  string // Microsoft Graph host = token audience
	Portal string // Defender portal, for alert links
}

// The one table of clouds; azure.cloud selects a row.
var clouds = map[string]Cloud{
	"public": {
		Name:   "public",
		SignIn: "https://login.microsoftonline.com",
		MDE:    "https://api.securitycenter.microsoft.com",
		Graph:  "https://graph.microsoft.com",
		Portal: "https://security.microsoft.com",
	},
	"gcc": {
		Name:   "gcc",
		SignIn: "https://login.microsoftonline.com",
		MDE:    "https://api-gcc.securitycenter.microsoft.us",
		Graph:  "https://graph.microsoft.com",
		Portal: "https://security.microsoft.com",
	},
	"gcchigh": {
		Name:   "gcchigh",
		SignIn: "https://login.microsoftonline.us",
		MDE:    "https://api-gov.securitycenter.microsoft.us",
		Graph:  "https://graph.microsoft.us",
		Portal: "https://security.microsoft.us",
	},
	"dod": {
		Name:   "dod",
		SignIn: "https://login.microsoftonline.us",
		MDE:    "https://api-gov.securitycenter.microsoft.us",
		Graph:  "https://dod-graph.microsoft.us",
		Portal: "https://security.apps.mil",
	},
}

// LookupCloud returns the row for an azure.cloud value; "" means public.
func LookupCloud(name string) (Cloud, bool) {
	if name == "" {
		name = "public"
	}
	c, ok := clouds[strings.ToLower(strings.TrimSpace(name))]
	return c, ok
}

// CloudNames lists the accepted azure.cloud values, for config errors.
func CloudNames() []string {
	names := make([]string, 0, len(clouds))
	for n := range clouds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// API names (defender.api).
const (
	APIMDE   = "mde"
	APIGraph = "graph"
)

// Endpoints are the hosts one configuration resolves to, overrides applied.
type Endpoints struct {
	Cloud    string
	SignIn   string // azure.authority_host or the cloud's sign-in host
	API      string // defender.base_url or the cloud's host for the chosen api
	Audience string // token audience; the scope is Audience + "/.default"
	Portal   string
}

// Scope is the app-only scope requested for the API.
func (e Endpoints) Scope() string { return e.Audience + "/.default" }

// ResolveEndpoints applies azure.authority_host and defender.base_url to
// the cloud's row. The MDE audience stays the cloud's securitycenter host
// even when base_url points elsewhere (DESIGN §5: tokens for the newer
// api.security.microsoft.com name get 403 on some APIs).
func ResolveEndpoints(cloud, api, authorityHost, baseURL string) (Endpoints, error) {
	c, ok := LookupCloud(cloud)
	if !ok {
		return Endpoints{}, fmt.Errorf("defender: unknown azure.cloud %q (want one of %s)", cloud, strings.Join(CloudNames(), ", "))
	}
	e := Endpoints{Cloud: c.Name, SignIn: c.SignIn, Portal: c.Portal}
	switch strings.ToLower(api) {
	case "", APIMDE:
		e.API, e.Audience = c.MDE, c.MDE
	case APIGraph:
		e.API, e.Audience = c.Graph, c.Graph
	default:
		return Endpoints{}, fmt.Errorf("defender: unknown defender.api %q (want mde or graph)", api)
	}
	if authorityHost != "" {
		h, err := baseOf(authorityHost, false)
		if err != nil {
			return Endpoints{}, fmt.Errorf("defender: azure.authority_host: %w", err)
		}
		e.SignIn = h
	}
	if baseURL != "" {
		b, err := baseOf(baseURL, true)
		if err != nil {
			return Endpoints{}, fmt.Errorf("defender: defender.base_url: %w", err)
		}
		e.API = b
	}
	return e, nil
}

// baseOf checks an override URL and returns it without a trailing slash.
// MSAL requires https for the authority; the API may use http on loopback
// (local fakes).
func baseOf(raw string, loopbackHTTP bool) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", fmt.Errorf("not a URL: %w", err)
	}
	if u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("%q is not a base URL (scheme://host[:port][/path])", raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !loopbackHTTP || !isLoopback(u.Hostname()) {
			return "", fmt.Errorf("%q must use https", raw)
		}
	default:
		return "", fmt.Errorf("%q must use https", raw)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Permissions lists the application permissions the app needs for api
// (DESIGN §5), as shown on the approval prompt.
func Permissions(api string, writeBack bool) []string {
	switch strings.ToLower(api) {
	case APIGraph:
		if writeBack {
			return []string{"Microsoft Graph: SecurityAlert.ReadWrite.All"}
		}
		return []string{"Microsoft Graph: SecurityAlert.Read.All"}
	default:
		if writeBack {
			return []string{"WindowsDefenderATP: Alert.ReadWrite.All"}
		}
		return []string{"WindowsDefenderATP: Alert.Read.All"}
	}
}
