package defender

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/cache"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"
	"golang.org/x/sync/singleflight"

	"github.com/msspbot/msspbot/bot"
)

// TokensConfig configures Tokens. Exactly one of ClientSecret and
// CertificatePEM is required.
type TokensConfig struct {
	ClientID       string
	ClientSecret   string
	CertificatePEM []byte // certificate(s) and an unencrypted RSA private key
	Cloud          string // azure.cloud; "" = public
	AuthorityHost  string // azure.authority_host; "" = the cloud's sign-in host
	API            string // defender.api: whose audience CheckAccess and ConsentURL use
	BaseURL        string // defender.base_url (does not change the audience)
	HTTPClient     *http.Client
	Logger         *slog.Logger
	// Timeout bounds one token acquisition (shared by concurrent callers);
	// default 30s.
	Timeout time.Duration
}

// Tokens issues app-only access tokens for any customer tenant from one
// MSAL confidential client for {sign-in host}/organizations. MSAL caches
// tokens per tenant; concurrent first calls for a tenant share one request.
type Tokens struct {
	clientID string
	ep       Endpoints
	client   confidential.Client
	uncached confidential.Client // fallback for fresh tokens, see acquire
	group    singleflight.Group
	timeout  time.Duration
	log      *slog.Logger
	red      redactor
}

// NewTokens builds the MSAL client. It makes no network call.
func NewTokens(cfg TokensConfig) (*Tokens, error) {
	ep, err := ResolveEndpoints(cfg.Cloud, cfg.API, cfg.AuthorityHost, cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(cfg.ClientID) == "" {
		return nil, errors.New("defender: azure.client_id is required")
	}
	var cred confidential.Credential
	switch {
	case cfg.ClientSecret != "" && len(cfg.CertificatePEM) > 0:
		return nil, errors.New("defender: set azure.client_secret or azure.certificate_file, not both")
	case cfg.ClientSecret != "":
		cred, err = confidential.NewCredFromSecret(cfg.ClientSecret)
		if err != nil {
			return nil, errors.New("defender: azure.client_secret is not usable")
		}
	case len(cfg.CertificatePEM) > 0:
		certs, key, err := confidential.CertFromPEM(cfg.CertificatePEM, "")
		if err != nil {
			// MSAL's messages name the failing block, never its bytes.
			return nil, fmt.Errorf("defender: azure.certificate_file: %w", err)
		}
		cred, err = confidential.NewCredFromCert(certs, key)
		if err != nil {
			return nil, fmt.Errorf("defender: azure.certificate_file: %w", err)
		}
	default:
		return nil, errors.New("defender: azure.client_secret or azure.certificate_file is required")
	}
	opts := []confidential.Option{}
	if cfg.HTTPClient != nil {
		opts = append(opts, confidential.WithHTTPClient(cfg.HTTPClient))
	}
	if cfg.AuthorityHost != "" {
		// A private or test authority is unknown to Microsoft's instance
		// discovery, and a forced region would send requests elsewhere.
		opts = append(opts, confidential.WithInstanceDiscovery(false),
			confidential.WithAzureRegion("DisableMsalForceRegion"))
	}
	client, err := confidential.New(ep.SignIn+"/organizations", cfg.ClientID, cred, opts...)
	if err != nil {
		return nil, fmt.Errorf("defender: msal client: %w", err)
	}
	uncached, err := confidential.New(ep.SignIn+"/organizations", cfg.ClientID, cred,
		append(opts, confidential.WithCache(forgetful{}))...)
	if err != nil {
		return nil, fmt.Errorf("defender: msal client: %w", err)
	}
	t := &Tokens{
		clientID: cfg.ClientID,
		ep:       ep,
		client:   client,
		uncached: uncached,
		timeout:  cfg.Timeout,
		log:      cfg.Logger,
		red:      redactor{secrets: []string{cfg.ClientSecret}},
	}
	if t.timeout <= 0 {
		t.timeout = 30 * time.Second
	}
	if t.log == nil {
		t.log = slog.Default()
	}
	return t, nil
}

// Endpoints returns the resolved hosts.
func (t *Tokens) Endpoints() Endpoints { return t.ep }

// Token returns an access token for tenantID and scope, from MSAL's cache
// when a valid one is there.
func (t *Tokens) Token(ctx context.Context, tenantID, scope string) (string, error) {
	tok, _, err := t.token(ctx, tenantID, scope, false)
	return tok, err
}

// FreshToken asks Entra for a new token, bypassing the cache, and caches
// the result. Used right after a grant, while Entra may still hand out
// tokens without the app's roles.
func (t *Tokens) FreshToken(ctx context.Context, tenantID, scope string) (string, error) {
	tok, _, err := t.token(ctx, tenantID, scope, true)
	return tok, err
}

// CheckAccess implements bot.AccessChecker: it acquires a token for the
// configured API in tenantID. Refusals wrap bot.ErrAuth.
func (t *Tokens) CheckAccess(ctx context.Context, tenantID string, fresh bool) error {
	_, _, err := t.token(ctx, tenantID, t.ep.Scope(), fresh)
	return err
}

// ConsentURL is the v2 admin-consent URL for tenantID (DESIGN §3).
func (t *Tokens) ConsentURL(tenantID, state, redirectURI string) string {
	q := url.Values{}
	q.Set("client_id", t.clientID)
	q.Set("scope", t.ep.Scope())
	q.Set("redirect_uri", redirectURI)
	q.Set("state", state)
	return t.ep.SignIn + "/" + url.PathEscape(bot.NormalizeTenantID(tenantID)) + "/v2.0/adminconsent?" + q.Encode()
}

type tokenResult struct {
	token  string
	cached bool
}

// token returns a token and whether it came from MSAL's cache.
func (t *Tokens) token(ctx context.Context, tenantID, scope string, fresh bool) (string, bool, error) {
	tenant := bot.NormalizeTenantID(tenantID)
	if !bot.ValidTenantID(tenant) {
		return "", false, fmt.Errorf("defender: token: tenant id %q is not a GUID", tenantID)
	}
	key := tenant + " " + scope
	if fresh {
		key = "fresh " + key
	}
	// The shared call outlives any one caller's cancellation (others may be
	// waiting on it) but not the acquisition timeout.
	ch := t.group.DoChan(key, func() (any, error) {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.timeout)
		defer cancel()
		return t.acquire(actx, tenant, scope, fresh)
	})
	select {
	case <-ctx.Done():
		return "", false, fmt.Errorf("defender: token for tenant %s: %w", tenant, ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return "", false, r.Err
		}
		res := r.Val.(tokenResult)
		return res.token, res.cached, nil
	}
}

func (t *Tokens) acquire(ctx context.Context, tenant, scope string, fresh bool) (tokenResult, error) {
	opts := []confidential.AcquireByCredentialOption{confidential.WithTenantID(tenant)}
	if fresh {
		// MSAL Go has no force-refresh for client credentials; claims skip
		// its cache and the new token replaces the cached one. An nbf
		// requirement of "now" is the CAE-style way to ask for a token
		// issued from now on.
		opts = append(opts, confidential.WithClaims(fmt.Sprintf(
			`{"access_token":{"nbf":{"essential":true,"value":"%d"}}}`, time.Now().Unix())))
	}
	res, err := t.client.AcquireTokenByCredential(ctx, []string{scope}, opts...)
	if err != nil {
		err = t.tokenError(tenant, err)
		var te *TokenError
		if fresh && errors.As(err, &te) && te.Code == "invalid_request" {
			// Should an authority refuse the claims, a client that keeps
			// no cache still gets a token issued now (not kept for later).
			t.log.Warn("defender: fresh token request refused, retrying without claims", "tenant", tenant, "err", err)
			res, err = t.uncached.AcquireTokenByCredential(ctx, []string{scope}, confidential.WithTenantID(tenant))
			if err != nil {
				return tokenResult{}, t.tokenError(tenant, err)
			}
			return tokenResult{token: res.AccessToken}, nil
		}
		t.log.Debug("defender: token request failed", "tenant", tenant, "fresh", fresh, "err", err)
		return tokenResult{}, err
	}
	return tokenResult{token: res.AccessToken, cached: res.Metadata.TokenSource == confidential.TokenSourceCache}, nil
}

// forgetful is an MSAL cache accessor that empties the client's cache
// before every use and keeps nothing.
type forgetful struct{}

func (forgetful) Replace(_ context.Context, c cache.Unmarshaler, _ cache.ReplaceHints) error {
	return c.Unmarshal([]byte("{}"))
}

func (forgetful) Export(context.Context, cache.Marshaler, cache.ExportHints) error { return nil }

// TokenError is a refusal or failure of the token endpoint, reduced to
// fields that carry no secret.
type TokenError struct {
	Tenant      string
	Status      int    // HTTP status of the token endpoint, 0 if none
	Code        string // OAuth error, e.g. "unauthorized_client"
	AADSTS      []int  // Entra error codes, e.g. 700016
	Description string // first sentence of error_description, redacted
	err         error  // the cause: bot.ErrAuth for refusals, else redacted
}

func (e *TokenError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "defender: token for tenant %s", e.Tenant)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": http %d", e.Status)
	}
	if e.Code != "" {
		fmt.Fprintf(&b, " %s", e.Code)
	}
	if e.Description != "" {
		fmt.Fprintf(&b, ": %s", e.Description)
	}
	if e.err != nil && e.Status == 0 {
		fmt.Fprintf(&b, ": %v", e.err)
	}
	return b.String()
}

func (e *TokenError) Unwrap() error { return e.err }

// tokenError turns an MSAL error into a TokenError. 400/401/403 from the
// token endpoint mean the tenant refuses the app (not consented, consent
// revoked, bad credential): they wrap bot.ErrAuth. MSAL's own messages can
// quote the endpoint's body; only parsed, redacted fields are kept.
func (t *Tokens) tokenError(tenant string, err error) error {
	te := &TokenError{Tenant: tenant}
	var call msalerrors.CallErr
	if errors.As(err, &call) && call.Resp != nil {
		te.Status = call.Resp.StatusCode
		var body struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
			Codes       []int  `json:"error_codes"`
		}
		if call.Resp.Body != nil {
			raw, _ := io.ReadAll(io.LimitReader(call.Resp.Body, 64<<10))
			_ = json.Unmarshal(raw, &body)
		}
		te.Code = t.red.clean(body.Error, 64)
		te.AADSTS = body.Codes
		te.Description = t.red.clean(firstSentence(body.Description), 200)
		switch te.Status {
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden:
			te.err = bot.ErrAuth
		default:
			te.err = errTokenEndpoint
		}
		return te
	}
	te.err = t.red.wrap(err)
	return te
}

var errTokenEndpoint = errors.New("token endpoint failed")

// firstSentence keeps "AADSTS700016: Application … not found in the
// directory 'x'." and drops trace and correlation ids.
func firstSentence(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	if i := strings.Index(s, ". "); i >= 0 {
		s = s[:i+1]
	}
	return strings.TrimSpace(s)
}

// redactor removes configured secrets from text that may reach logs.
type redactor struct{ secrets []string }

func (r redactor) replace(s string, extra ...string) string {
	for _, list := range [][]string{r.secrets, extra} {
		for _, sec := range list {
			if len(sec) >= 4 && strings.Contains(s, sec) {
				s = strings.ReplaceAll(s, sec, "[redacted]")
			}
		}
	}
	if strings.Contains(s, "eyJ") {
		s = jwtRE.ReplaceAllString(s, "[redacted]")
	}
	return s
}

// jwtRE matches JWT-shaped text (Entra access tokens and client
// assertions) whatever token it is.
var jwtRE = regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*`)

// clean redacts and truncates a server-provided string.
func (r redactor) clean(s string, max int, extra ...string) string {
	s = r.replace(strings.TrimSpace(s), extra...)
	s = strings.Map(func(c rune) rune {
		if unicode.IsControl(c) {
			return ' '
		}
		return c
	}, s)
	if utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max]) + "…"
	}
	return s
}

// wrap returns err with any secret removed from its text, still
// unwrapping to err (so errors.Is sees context.DeadlineExceeded).
func (r redactor) wrap(err error, extra ...string) error {
	if err == nil {
		return nil
	}
	return &redactedError{msg: r.replace(err.Error(), extra...), err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
