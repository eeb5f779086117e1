package handlers_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/msspbot/msspbot/bot"
	"github.com/msspbot/msspbot/handlers"
)

type consentFunc func(ctx context.Context, q url.Values) bot.ConsentResult

func (f consentFunc) ConsentCallback(ctx context.Context, q url.Values) bot.ConsentResult {
	return f(ctx, q)
}

func TestConsentPageEscapesAndHidesState(t *testing.T) {
	var got url.Values
	h := handlers.Consent(consentFunc(func(ctx context.Context, q url.Values) bot.ConsentResult {
		got = q
		return bot.ConsentResult{Status: 200, Title: "Access was not granted", Text: "Entra reported: " + q.Get("error_description")}
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/consent/callback?state=s3cr3t&error=access_denied&error_description=%3Cscript%3Ealert(1)%3C/script%3E", nil))
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != 200 || got.Get("state") != "s3cr3t" {
		t.Fatalf("status %d, query %v", rec.Code, got)
	}
	if strings.Contains(string(body), "<script>") || !strings.Contains(string(body), "&lt;script&gt;") {
		t.Fatalf("not escaped: %s", body)
	}
	if strings.Contains(string(body), "s3cr3t") {
		t.Fatal("page shows the state")
	}
	if rec.Header().Get("Cache-Control") != "no-store" || rec.Header().Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("headers %v", rec.Header())
	}
}

func TestConsentPageStatus(t *testing.T) {
	h := handlers.Consent(consentFunc(func(ctx context.Context, q url.Values) bot.ConsentResult {
		return bot.ConsentResult{Status: http.StatusBadRequest, Title: "This link is not valid"}
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/consent/callback", nil))
	if rec.Code != 400 {
		t.Fatalf("status %d", rec.Code)
	}
}
