package defender

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
	"github.com/msspbot/msspbot/integrations/defender/defendertest"
)

func newTokens(t *testing.T, idp *defendertest.IdP, mutate ...func(*TokensConfig)) *Tokens {
	t.Helper()
	cfg := TokensConfig{
		ClientID:      idp.ClientID,
		ClientSecret:  idp.Secret(),
		AuthorityHost: idp.URL,
		HTTPClient:    idp.Client(),
	}
	for _, m := range mutate {
		m(&cfg)
	}
	tk, err := NewTokens(cfg)
	if err != nil {
		t.Fatalf("NewTokens: %v", err)
	}
	return tk
}

const mdeScope = "https://api.securitycenter.microsoft.com/.default"

func TestTokenCachedPerTenant(t *testing.T) {
	idp := defendertest.NewIdP(t)
	idp.Consent(tenantA)
	idp.Consent(tenantB)
	tk := newTokens(t, idp)
	ctx := ctxT(t)

	a1, err := tk.Token(ctx, tenantA, mdeScope)
	if err != nil {
		t.Fatalf("Token A: %v", err)
	}
	a2, err := tk.Token(ctx, strings.ToUpper(tenantA), mdeScope)
	if err != nil {
		t.Fatalf("Token A again: %v", err)
	}
	b1, err := tk.Token(ctx, tenantB, mdeScope)
	if err != nil {
		t.Fatalf("Token B: %v", err)
	}
	if a1 != a2 {
		t.Errorf("second call for A got a new token: cache not used")
	}
	if a1 == b1 {
		t.Errorf("tenants A and B share a token")
	}
	if got, _ := idp.TenantOfToken(a1); got != tenantA {
		t.Errorf("token A issued for %q", got)
	}
	if got, _ := idp.TenantOfToken(b1); got != tenantB {
		t.Errorf("token B issued for %q", got)
	}
	if n := idp.TokenRequests(tenantA); n != 1 {
		t.Errorf("token requests for A = %d, want 1", n)
	}
	if n := idp.TokenRequests(tenantB); n != 1 {
		t.Errorf("token requests for B = %d, want 1", n)
	}
}

func TestConcurrentFirstCallsShareOneRequest(t *testing.T) {
	idp := defendertest.NewIdP(t)
	tenants := []string{tenantA, tenantB, "11111111-2222-4333-8444-555555555555"}
	for _, tn := range tenants {
		idp.Consent(tn)
	}
	tk := newTokens(t, idp)
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, 40*len(tenants))
	for _, tn := range tenants {
		for range 40 {
			wg.Go(func() {
				if _, err := tk.Token(ctx, tn, mdeScope); err != nil {
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Token: %v", err)
	}
	for _, tn := range tenants {
		if n := idp.TokenRequests(tn); n != 1 {
			t.Errorf("tenant %s: %d token requests for 40 concurrent first calls, want 1", tn, n)
		}
	}
}

func TestTokenRefusedWithoutConsent(t *testing.T) {
	idp := defendertest.NewIdP(t)
	tk := newTokens(t, idp)
	_, err := tk.Token(ctxT(t), tenantA, mdeScope)
	if !errors.Is(err, bot.ErrAuth) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
	var te *TokenError
	if !errors.As(err, &te) {
		t.Fatalf("err %T is not a *TokenError", err)
	}
	if te.Status != 400 || te.Code != "unauthorized_client" || len(te.AADSTS) != 1 || te.AADSTS[0] != 700016 {
		t.Errorf("TokenError = %+v, want 400 unauthorized_client [700016]", te)
	}
	if !strings.Contains(err.Error(), tenantA) || strings.Contains(err.Error(), "Trace ID") {
		t.Errorf("error text %q: want the tenant, no trace ids", err)
	}
	// Consent makes the next call succeed: refusals are not cached.
	idp.Consent(tenantA)
	if _, err := tk.Token(ctxT(t), tenantA, mdeScope); err != nil {
		t.Fatalf("after consent: %v", err)
	}
}

func TestTokenBadTenantID(t *testing.T) {
	idp := defendertest.NewIdP(t)
	tk := newTokens(t, idp)
	for _, bad := range []string{"", "organizations", "contoso.onmicrosoft.com", "../" + tenantA} {
		if _, err := tk.Token(ctxT(t), bad, mdeScope); err == nil {
			t.Errorf("Token(%q) succeeded", bad)
		}
	}
	if n := idp.TokenRequests("organizations"); n != 0 {
		t.Errorf("a token request was sent for a non-GUID tenant")
	}
}

func TestFreshTokenBypassesCache(t *testing.T) {
	idp := defendertest.NewIdP(t)
	idp.Consent(tenantA)
	tk := newTokens(t, idp)
	ctx := ctxT(t)
	old, err := tk.Token(ctx, tenantA, mdeScope)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := tk.FreshToken(ctx, tenantA, mdeScope)
	if err != nil {
		t.Fatalf("FreshToken: %v", err)
	}
	if fresh == old || idp.TokenRequests(tenantA) != 2 {
		t.Fatalf("FreshToken did not ask the IdP (requests %d)", idp.TokenRequests(tenantA))
	}
	if c := idp.LastClaims(tenantA); !strings.Contains(c, `"nbf"`) {
		t.Errorf("fresh request claims = %q, want an nbf requirement", c)
	}
	// The fresh token replaces the cached one.
	again, err := tk.Token(ctx, tenantA, mdeScope)
	if err != nil {
		t.Fatal(err)
	}
	if again != fresh || idp.TokenRequests(tenantA) != 2 {
		t.Errorf("after FreshToken the cache serves the old token or asks again")
	}
}

func TestFreshTokenWhenClaimsRefused(t *testing.T) {
	idp := defendertest.NewIdP(t)
	idp.Consent(tenantA)
	idp.RejectClaims(true)
	tk := newTokens(t, idp)
	if err := tk.CheckAccess(ctxT(t), tenantA, true); err != nil {
		t.Fatalf("fresh CheckAccess with claims refused: %v", err)
	}
	if n := idp.TokenRequests(tenantA); n != 2 {
		t.Errorf("token requests = %d, want 2 (refused fresh, then without claims)", n)
	}
	if err := tk.CheckAccess(ctxT(t), tenantA, true); err != nil || idp.TokenRequests(tenantA) != 4 {
		t.Errorf("second fresh check: %v, %d requests (want 4: nothing cached)", err, idp.TokenRequests(tenantA))
	}
	idp.Revoke(tenantA)
	if err := tk.CheckAccess(ctxT(t), tenantA, true); !errors.Is(err, bot.ErrAuth) {
		t.Errorf("after revoke: %v, want ErrAuth", err)
	}
}

func TestCheckAccess(t *testing.T) {
	idp := defendertest.NewIdP(t)
	tk := newTokens(t, idp)
	var _ bot.AccessChecker = tk
	ctx := ctxT(t)
	if err := tk.CheckAccess(ctx, tenantA, false); !errors.Is(err, bot.ErrAuth) {
		t.Fatalf("before consent: %v, want ErrAuth", err)
	}
	idp.Consent(tenantA)
	if err := tk.CheckAccess(ctx, tenantA, false); err != nil {
		t.Fatalf("after consent: %v", err)
	}
	n := idp.TokenRequests(tenantA)
	if err := tk.CheckAccess(ctx, tenantA, false); err != nil || idp.TokenRequests(tenantA) != n {
		t.Errorf("cached CheckAccess asked the IdP again (err %v)", err)
	}
	if err := tk.CheckAccess(ctx, tenantA, true); err != nil || idp.TokenRequests(tenantA) != n+1 {
		t.Errorf("fresh CheckAccess did not ask the IdP (err %v)", err)
	}
	idp.Revoke(tenantA)
	if err := tk.CheckAccess(ctx, tenantA, true); !errors.Is(err, bot.ErrAuth) {
		t.Errorf("fresh CheckAccess after revoke: %v, want ErrAuth", err)
	}
}

func TestWrongSecretIsAuthError(t *testing.T) {
	idp := defendertest.NewIdP(t)
	idp.Consent(tenantA)
	tk := newTokens(t, idp, func(c *TokensConfig) { c.ClientSecret = "not-the-secret" })
	_, err := tk.Token(ctxT(t), tenantA, mdeScope)
	var te *TokenError
	if !errors.Is(err, bot.ErrAuth) || !errors.As(err, &te) || te.Code != "invalid_client" || te.Status != 401 {
		t.Fatalf("err = %v, want 401 invalid_client wrapping ErrAuth", err)
	}
}

func TestTokenEndpointOutage(t *testing.T) {
	idp := defendertest.NewIdP(t)
	idp.Consent(tenantA)
	idp.FailNext(1, 503)
	tk := newTokens(t, idp)
	_, err := tk.Token(ctxT(t), tenantA, mdeScope)
	if err == nil || errors.Is(err, bot.ErrAuth) {
		t.Fatalf("503 from the token endpoint: err = %v, want a non-auth error", err)
	}
	if _, err := tk.Token(ctxT(t), tenantA, mdeScope); err != nil {
		t.Fatalf("after the outage: %v", err)
	}
}

// selfSigned returns a PEM bundle (certificate + PKCS#8 RSA key) and the
// certificate.
func selfSigned(t *testing.T, keyType string) ([]byte, *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "msspbot test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	var keyBlock *pem.Block
	if keyType == "PKCS1" {
		keyBlock = &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}
	} else {
		p8, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		keyBlock = &pem.Block{Type: "PRIVATE KEY", Bytes: p8}
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	out = append(out, pem.EncodeToMemory(keyBlock)...)
	return out, cert
}

func TestCertificateCredential(t *testing.T) {
	for _, kt := range []string{"PKCS8", "PKCS1"} {
		t.Run(kt, func(t *testing.T) {
			idp := defendertest.NewIdP(t)
			idp.Consent(tenantA)
			bundle, cert := selfSigned(t, kt)
			idp.AddCertificate(cert)
			tk := newTokens(t, idp, func(c *TokensConfig) { c.ClientSecret = ""; c.CertificatePEM = bundle })
			tok, err := tk.Token(ctxT(t), tenantA, mdeScope)
			if err != nil {
				t.Fatalf("Token with certificate: %v", err)
			}
			if got, ok := idp.TenantOfToken(tok); !ok || got != tenantA {
				t.Errorf("token tenant %q %v", got, ok)
			}
		})
	}
	t.Run("unregistered", func(t *testing.T) {
		idp := defendertest.NewIdP(t)
		idp.Consent(tenantA)
		bundle, _ := selfSigned(t, "PKCS8")
		tk := newTokens(t, idp, func(c *TokensConfig) { c.ClientSecret = ""; c.CertificatePEM = bundle })
		_, err := tk.Token(ctxT(t), tenantA, mdeScope)
		if !errors.Is(err, bot.ErrAuth) {
			t.Fatalf("unregistered certificate: %v, want ErrAuth", err)
		}
	})
}

func TestNewTokensRejectsBadCredentials(t *testing.T) {
	bundle, _ := selfSigned(t, "PKCS8")
	certOnly := bundle[:strings.Index(string(bundle), "-----BEGIN PRIVATE KEY")]
	cases := map[string]TokensConfig{
		"no client id":   {ClientSecret: "x"},
		"no credential":  {ClientID: "app"},
		"both":           {ClientID: "app", ClientSecret: "x", CertificatePEM: bundle},
		"garbage pem":    {ClientID: "app", CertificatePEM: []byte("not pem")},
		"no key":         {ClientID: "app", CertificatePEM: certOnly},
		"bad cloud":      {ClientID: "app", ClientSecret: "x", Cloud: "mars"},
		"http authority": {ClientID: "app", ClientSecret: "x", AuthorityHost: "http://login.example"},
	}
	for name, cfg := range cases {
		if _, err := NewTokens(cfg); err == nil {
			t.Errorf("%s: NewTokens succeeded", name)
		} else if bytes := string(bundle); strings.Contains(err.Error(), bytes[100:140]) {
			t.Errorf("%s: error quotes key material", name)
		}
	}
}

func TestTokenCallerCancelDoesNotFailOthers(t *testing.T) {
	idp := defendertest.NewIdP(t)
	idp.Consent(tenantA)
	tk := newTokens(t, idp)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tk.Token(ctx, tenantA, mdeScope); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v", err)
	}
	if _, err := tk.Token(ctxT(t), tenantA, mdeScope); err != nil {
		t.Fatalf("next caller: %v", err)
	}
}
