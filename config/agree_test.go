package config_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io/fs"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/msspbot/msspbot/config"
	"github.com/msspbot/msspbot/integrations/defender"
)

const agreeBase = `
azure:
  client_id: "11111111-2222-3333-4444-555555555555"
%AZURE%
defender:
%DEFENDER%
slack:
  enabled: true
  bot_token: "xoxb-SECRET-bot"
  app_token: "xapp-SECRET-app"
`

func agreeLoad(t *testing.T, azure, def string, files map[string][]byte) (*config.Config, error) {
	t.Helper()
	y := strings.NewReplacer("%AZURE%", azure, "%DEFENDER%", def).Replace(agreeBase)
	read := func(name string) ([]byte, error) {
		if name == "/etc/msspbot.yaml" {
			return []byte(y), nil
		}
		if b, ok := files[name]; ok {
			return b, nil
		}
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return config.Load("/etc/msspbot.yaml", func(string) string { return "" }, read)
}

// rsaBundle is a PEM certificate with its RSA private key (PKCS#1).
func rsaBundle(t *testing.T) []byte {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "msspbot"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})...)
}

// ecBundle is a PEM certificate with its ECDSA (not RSA) private key.
func ecBundle(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "msspbot"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})...)
}

// Every value the Defender client would refuse at start-up is refused by
// validation instead, named in the one error (issue 3): serve builds the
// client only after opening the database and applying config tenants.
// Values validation accepts must build a client.
func TestValidationAgreesWithDefenderClient(t *testing.T) {
	const secret = `  client_secret: "SECRET-azure"`
	cases := []struct {
		name, key, azure, def string
		files                 map[string][]byte
	}{
		{name: "base_url http on a public host", key: "defender.base_url",
			azure: secret, def: `  base_url: "http://defender-proxy.example.com"`},
		{name: "base_url with a query", key: "defender.base_url",
			azure: secret, def: `  base_url: "https://api.securitycenter.microsoft.com/?x=1"`},
		{name: "authority_host with a query", key: "azure.authority_host",
			azure: secret + "\n  authority_host: \"https://login.example.com/?x=1\"", def: `  api: mde`},
		{name: "certificate with an EC key", key: "azure.certificate_file",
			azure: `  certificate_file: /run/secrets/cert.pem`, def: `  api: mde`,
			files: map[string][]byte{"/run/secrets/cert.pem": ecBundle(t)}},
		{name: "authority_host over http on loopback", key: "azure.authority_host",
			azure: secret + "\n  authority_host: \"http://127.0.0.1:8443\"", def: `  api: mde`},
		// Accepted by both.
		{name: "base_url http on loopback (a local fake)", azure: secret, def: `  base_url: "http://127.0.0.1:9000/"`},
		{name: "base_url with a path", azure: secret, def: `  base_url: "https://proxy.example.com/mde"`},
		{name: "RSA certificate", azure: `  certificate_file: /run/secrets/cert.pem`, def: `  api: mde`,
			files: map[string][]byte{"/run/secrets/cert.pem": rsaBundle(t)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := agreeLoad(t, tc.azure, tc.def, tc.files)
			if tc.key == "" && err != nil {
				t.Fatalf("valid configuration refused: %v", err)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tc.key) {
					t.Fatalf("config error does not name %s: %v", tc.key, err)
				}
				return // refused at validation, as it should be
			}
			// Exactly what serve does with the loaded configuration.
			_, derr := defender.New(defender.Config{
				Cloud: cfg.Azure.Cloud, ClientID: cfg.Azure.ClientID, ClientSecret: cfg.Azure.ClientSecret,
				CertificatePEM: cfg.Azure.Certificate, AuthorityHost: cfg.Azure.AuthorityHost,
				API: cfg.Defender.API, BaseURL: cfg.Defender.BaseURL, WriteBack: cfg.Defender.WriteBack,
			})
			if derr != nil {
				t.Fatalf("config.Load accepted it, but the Defender client refuses it at start-up: %v", derr)
			}
			if tc.key != "" {
				t.Fatalf("config.Load accepted a bad %s that the Defender client also accepted: the test case is wrong", tc.key)
			}
		})
	}
}
