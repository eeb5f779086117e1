package handlers

import (
	"context"
	"html/template"
	"net/http"
	"net/url"

	"github.com/msspbot/msspbot/bot"
)

// ConsentService verifies Entra's admin-consent redirect (bot.Service).
type ConsentService interface {
	ConsentCallback(ctx context.Context, q url.Values) bot.ConsentResult
}

// html/template escapes every value: error_description comes from the
// browser's query string and may be hostile.
var consentPage = template.Must(template.New("consent").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>msspbot · {{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}.ok{color:#1a7f37}.bad{color:#cf222e}</style></head>
<body><h1 class="{{if lt .Status 300}}ok{{else}}bad{{end}}">{{.Title}}</h1><p>{{.Text}}</p></body></html>
`))

// Consent returns the handler for GET /consent/callback.
func Consent(svc ConsentService) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res := svc.ConsentCallback(r.Context(), r.URL.Query())
		if res.Status == 0 {
			res.Status = http.StatusInternalServerError
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		// The URL carries the single-use state: keep it out of caches and
		// of any page the admin goes to next.
		h.Set("Cache-Control", "no-store")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		w.WriteHeader(res.Status)
		_ = consentPage.Execute(w, res)
	})
}
