// Package defendertest provides fakes of Entra ID (token issuance for a
// multi-tenant app) and of the Defender alert APIs (Defender for Endpoint
// and Microsoft Graph security), speaking their wire formats on httptest
// TLS servers, for tests that drive the real MSAL client and the defender
// package.
package defendertest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// IdP is a fake Entra ID for one multi-tenant confidential app. It issues
// opaque access tokens with the client-credentials grant, only for tenants
// that have consented, as Entra does. Use it through MSAL with
// confidential.WithHTTPClient(idp.Client()), authority idp.Authority() and
// instance discovery off.
type IdP struct {
	URL      string // https://127.0.0.1:port
	ClientID string // the app id the IdP knows

	srv *httptest.Server

	mu        sync.Mutex
	secret    string
	certs     []*x509.Certificate
	consented map[string]bool
	tokens    map[string]issued
	requests  map[string]int // token requests per tenant
	discovery map[string]int // openid-configuration requests per tenant
	claims    map[string]string
	faults    []int // statuses for the next token requests
	lifetime  time.Duration
	noClaims  bool
}

type issued struct {
	tenant  string
	scope   string
	expires time.Time
}

var guidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// NewIdP starts a fake identity provider; it stops when the test ends. The
// app's client id and secret are random: read ClientID and Secret(), or set
// them with SetSecret.
func NewIdP(t testing.TB) *IdP {
	t.Helper()
	p := &IdP{
		ClientID:  newGUID(),
		secret:    "idp-secret-" + randHex(16),
		consented: map[string]bool{},
		tokens:    map[string]issued{},
		requests:  map[string]int{},
		discovery: map[string]int{},
		claims:    map[string]string{},
		lifetime:  time.Hour,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", p.openIDConfiguration)
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", p.token)
	p.srv = startTLS(t, mux)
	p.URL = p.srv.URL
	return p
}

// Authority is the MSAL authority for the multi-tenant app.
func (p *IdP) Authority() string { return p.URL + "/organizations" }

// Client returns an HTTP client that trusts the IdP's certificate.
func (p *IdP) Client() *http.Client { return p.srv.Client() }

// Certificate is the server's TLS certificate.
func (p *IdP) Certificate() *x509.Certificate { return p.srv.Certificate() }

// Secret returns the client secret the IdP accepts.
func (p *IdP) Secret() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.secret
}

// SetSecret changes the accepted client secret.
func (p *IdP) SetSecret(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.secret = s
}

// AddCertificate registers a certificate credential of the app: client
// assertions signed by its key are accepted.
func (p *IdP) AddCertificate(cert *x509.Certificate) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.certs = append(p.certs, cert)
}

// Consent records an admin consent of the app in tenant.
func (p *IdP) Consent(tenant string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.consented[strings.ToLower(tenant)] = true
}

// Revoke removes the app from tenant and invalidates its issued tokens.
func (p *IdP) Revoke(tenant string) {
	tenant = strings.ToLower(tenant)
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.consented, tenant)
	for tok, is := range p.tokens {
		if is.tenant == tenant {
			delete(p.tokens, tok)
		}
	}
}

// SetTokenLifetime changes expires_in of tokens issued from now on.
func (p *IdP) SetTokenLifetime(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lifetime = d
}

// RejectClaims makes the IdP refuse token requests that carry a claims
// parameter with invalid_request, as an authority without claims
// challenge support might.
func (p *IdP) RejectClaims(reject bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.noClaims = reject
}

// FailNext makes the next n token requests answer status (e.g. 500, 503)
// with an Entra-style error body.
func (p *IdP) FailNext(n, status int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for range n {
		p.faults = append(p.faults, status)
	}
}

// TokenRequests counts token requests for tenant, answered or refused.
func (p *IdP) TokenRequests(tenant string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests[strings.ToLower(tenant)]
}

// DiscoveryRequests counts openid-configuration requests for tenant.
func (p *IdP) DiscoveryRequests(tenant string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.discovery[strings.ToLower(tenant)]
}

// LastClaims returns the claims parameter of tenant's last token request.
func (p *IdP) LastClaims(tenant string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.claims[strings.ToLower(tenant)]
}

// TenantOfToken returns the tenant an unexpired, unrevoked token was
// issued for.
func (p *IdP) TenantOfToken(tok string) (string, bool) {
	is, ok := p.lookup(tok)
	return is.tenant, ok
}

// ScopeOfToken returns the scope a valid token was issued for.
func (p *IdP) ScopeOfToken(tok string) (string, bool) {
	is, ok := p.lookup(tok)
	return is.scope, ok
}

// IssuedTokens returns every token issued so far (for leak checks).
func (p *IdP) IssuedTokens() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.tokens))
	for tok := range p.tokens {
		out = append(out, tok)
	}
	return out
}

func (p *IdP) lookup(tok string) (issued, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	is, ok := p.tokens[tok]
	if !ok || time.Now().After(is.expires) {
		return issued{}, false
	}
	return is, true
}

func (p *IdP) openIDConfiguration(w http.ResponseWriter, r *http.Request) {
	tenant := strings.ToLower(r.PathValue("tenant"))
	p.mu.Lock()
	p.discovery[tenant]++
	p.mu.Unlock()
	if !knownTenant(tenant) {
		p.oauthError(w, http.StatusBadRequest, "invalid_tenant", 90002,
			fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant))
		return
	}
	issuerTenant := tenant
	if tenant == "organizations" || tenant == "common" {
		issuerTenant = "{tenantid}"
	}
	base := p.URL + "/" + tenant
	writeJSON(w, http.StatusOK, map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                p.URL + "/" + issuerTenant + "/v2.0",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"tenant_region_scope":                   "EU",
		"cloud_instance_name":                   "microsoftonline.com",
		"msgraph_host":                          "graph.microsoft.com",
	})
}

func knownTenant(t string) bool {
	return guidRE.MatchString(t) || t == "organizations" || t == "common"
}

func (p *IdP) token(w http.ResponseWriter, r *http.Request) {
	tenant := strings.ToLower(r.PathValue("tenant"))
	if err := r.ParseForm(); err != nil {
		p.oauthError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
		return
	}
	f := r.PostForm
	p.mu.Lock()
	p.requests[tenant]++
	p.claims[tenant] = f.Get("claims")
	var fault int
	if len(p.faults) > 0 {
		fault, p.faults = p.faults[0], p.faults[1:]
	}
	secret, certs, consented, lifetime, noClaims := p.secret, p.certs, p.consented[tenant], p.lifetime, p.noClaims
	p.mu.Unlock()

	switch {
	case fault != 0:
		p.oauthError(w, fault, "temporarily_unavailable", 50000, "There was an error issuing a token or an authorization code.")
		return
	case !guidRE.MatchString(tenant):
		p.oauthError(w, http.StatusBadRequest, "invalid_request", 90002, fmt.Sprintf("Tenant '%s' not found.", tenant))
		return
	case f.Get("grant_type") != "client_credentials":
		p.oauthError(w, http.StatusBadRequest, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
		return
	case f.Get("client_id") != p.ClientID:
		p.oauthError(w, http.StatusBadRequest, "unauthorized_client", 700016,
			fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'.", f.Get("client_id"), tenant))
		return
	}
	if c := f.Get("claims"); c != "" && (noClaims || !json.Valid([]byte(c))) {
		p.oauthError(w, http.StatusBadRequest, "invalid_request", 90014, "The claims parameter is not valid JSON.")
		return
	}
	endpoint := p.URL + "/" + tenant + "/oauth2/v2.0/token"
	switch {
	case f.Has("client_secret"):
		if f.Get("client_secret") != secret {
			p.oauthError(w, http.StatusUnauthorized, "invalid_client", 7000215,
				"Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.")
			return
		}
	case f.Get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
		if err := verifyAssertion(f.Get("client_assertion"), p.ClientID, endpoint, certs); err != nil {
			p.oauthError(w, http.StatusUnauthorized, "invalid_client", 700027, "Client assertion failed signature validation: "+err.Error()+".")
			return
		}
	default:
		p.oauthError(w, http.StatusUnauthorized, "invalid_client", 7000218,
			"The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
		return
	}
	// MSAL adds the OIDC scopes to every request; Entra ignores them for
	// client credentials.
	var resource []string
	for _, sc := range strings.Fields(f.Get("scope")) {
		switch sc {
		case "openid", "profile", "offline_access", "email":
		default:
			resource = append(resource, sc)
		}
	}
	scope := strings.Join(resource, " ")
	if len(resource) != 1 || !strings.HasSuffix(scope, "/.default") {
		p.oauthError(w, http.StatusBadRequest, "invalid_scope", 1002012,
			fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", scope))
		return
	}
	if !consented {
		// Without consent the app has no service principal in the tenant.
		p.oauthError(w, http.StatusBadRequest, "unauthorized_client", 700016,
			fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.", p.ClientID, tenant))
		return
	}
	tok := "fake-at-" + randHex(24)
	p.mu.Lock()
	p.tokens[tok] = issued{tenant: tenant, scope: scope, expires: time.Now().Add(lifetime)}
	p.mu.Unlock()
	secs := int(lifetime / time.Second)
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type":     "Bearer",
		"expires_in":     secs,
		"ext_expires_in": secs,
		"access_token":   tok,
	})
}

// oauthError writes an Entra-style error body.
func (p *IdP) oauthError(w http.ResponseWriter, status int, code string, aadsts int, msg string) {
	now := time.Now().UTC()
	trace, corr := newGUID(), newGUID()
	writeJSON(w, status, map[string]any{
		"error": code,
		"error_description": fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s",
			aadsts, msg, trace, corr, now.Format("2006-01-02 15:04:05Z")),
		"error_codes":    []int{aadsts},
		"timestamp":      now.Format("2006-01-02 15:04:05Z"),
		"trace_id":       trace,
		"correlation_id": corr,
		"error_uri":      fmt.Sprintf("%s/error?code=%d", p.URL, aadsts),
	})
}

// verifyAssertion checks a client assertion as Entra does: a JWT signed
// (PS256 or RS256) by a registered certificate's key, named by its
// thumbprint, for this token endpoint, from this client, not expired.
func verifyAssertion(assertion, clientID, endpoint string, certs []*x509.Certificate) error {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return fmt.Errorf("not a JWT")
	}
	var hdr struct {
		Alg     string `json:"alg"`
		X5t     string `json:"x5t"`
		X5tS256 string `json:"x5t#S256"`
		Typ     string `json:"typ"`
	}
	var claims struct {
		Aud string  `json:"aud"`
		Iss string  `json:"iss"`
		Sub string  `json:"sub"`
		Exp float64 `json:"exp"`
		Nbf float64 `json:"nbf"`
	}
	if err := decodeSegment(parts[0], &hdr); err != nil {
		return fmt.Errorf("bad header")
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return fmt.Errorf("bad claims")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return fmt.Errorf("bad signature encoding")
	}
	var cert *x509.Certificate
	for _, c := range certs {
		s256 := sha256.Sum256(c.Raw)
		s1 := sha1.Sum(c.Raw)
		if (hdr.X5tS256 != "" && thumbEqual(hdr.X5tS256, s256[:])) || (hdr.X5t != "" && thumbEqual(hdr.X5t, s1[:])) {
			cert = c
			break
		}
	}
	if cert == nil {
		return fmt.Errorf("no registered certificate with this thumbprint")
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("certificate key is not RSA")
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	switch hdr.Alg {
	case "PS256":
		err = rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
	case "RS256":
		err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig)
	default:
		err = fmt.Errorf("unsupported alg %q", hdr.Alg)
	}
	if err != nil {
		return fmt.Errorf("signature invalid")
	}
	now := float64(time.Now().Unix())
	switch {
	case claims.Aud != endpoint:
		return fmt.Errorf("audience %q is not the token endpoint", claims.Aud)
	case claims.Iss != clientID || claims.Sub != clientID:
		return fmt.Errorf("issuer and subject must be the client id")
	case claims.Exp < now:
		return fmt.Errorf("assertion expired")
	case claims.Nbf > now+300:
		return fmt.Errorf("assertion not yet valid")
	}
	return nil
}

func thumbEqual(enc string, sum []byte) bool {
	for _, e := range []*base64.Encoding{base64.StdEncoding, base64.RawURLEncoding, base64.URLEncoding} {
		if b, err := e.DecodeString(enc); err == nil && string(b) == string(sum) {
			return true
		}
	}
	return false
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newGUID() string {
	h := randHex(16)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// startTLS starts an httptest TLS server, stopped when the test ends, that
// does not log the handshake errors of clients closing idle connections.
func startTLS(t testing.TB, h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// HTTPClient returns a client that trusts the TLS certificates of all the
// given servers' certificates (for example an IdP and an MDE fake).
func HTTPClient(certs ...*x509.Certificate) *http.Client {
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool},
		MaxIdleConnsPerHost: 64,
		ForceAttemptHTTP2:   true,
	}}
}
