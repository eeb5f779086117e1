package discord

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

type signer struct {
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
}

func newSigner(t *testing.T) signer {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signer{pub, priv}
}

// request builds a POST signed as Discord signs: Ed25519 over timestamp + body.
func (s signer) request(body string, ts time.Time) *http.Request {
	stamp := strconv.FormatInt(ts.Unix(), 10)
	sig := ed25519.Sign(s.priv, []byte(stamp+body))
	r := httptest.NewRequest(http.MethodPost, "/discord/interactions", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-Signature-Ed25519", hex.EncodeToString(sig))
	r.Header.Set("X-Signature-Timestamp", stamp)
	return r
}

func newHTTPHandler(t *testing.T, pub ed25519.PublicKey) (http.Handler, *fakeExecutor, *fakeDiscord) {
	h, f, exec := newInteractions(t)
	hd, err := InteractionsHandler(pub, h)
	if err != nil {
		t.Fatal(err)
	}
	return hd, exec, f
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestHTTPPing(t *testing.T) {
	s := newSigner(t)
	h, exec, _ := newHTTPHandler(t, s.pub)
	w := serve(h, s.request(`{"id":"1","application_id":"app1","type":1,"token":"tok","version":1}`, time.Now()))
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"type":1}` || w.Header().Get("Content-Type") != "application/json" {
		t.Errorf("PING -> %d %q %q", w.Code, w.Body.String(), w.Header().Get("Content-Type"))
	}
	if len(exec.commands()) != 0 {
		t.Error("PING ran a command")
	}
}

func TestHTTPCommand(t *testing.T) {
	s := newSigner(t)
	h, exec, _ := newHTTPHandler(t, s.pub)
	body := commandInteraction("500", `[{"type":1,"name":"show","options":[{"name":"alert","type":3,"value":"`+alertID+`"}]}]`)
	w := serve(h, s.request(body, time.Now()))
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var resp struct {
		Type int `json:"type"`
		Data struct {
			Content string `json:"content"`
			Flags   int    `json:"flags"`
		} `json:"data"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Type != 4 || resp.Data.Flags != 64 || resp.Data.Content != "ok: show "+escapeMarkdown(alertID) {
		t.Errorf("response = %+v", resp)
	}
	if c := exec.commands(); len(c) != 1 || c[0].Channel != "discord:500" {
		t.Errorf("commands = %+v", c)
	}
}

func TestHTTPThreadChannelFromPayload(t *testing.T) {
	// Newer payloads carry the channel: no REST lookup is needed.
	s := newSigner(t)
	h, exec, f := newHTTPHandler(t, s.pub)
	body := strings.Replace(clickInteraction("t7", "alert_ack:"+alertID, "m1"), `"type":3,`,
		`"type":3,"channel":{"id":"t7","type":11,"parent_id":"501"},`, 1)
	if w := serve(h, s.request(body, time.Now())); w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	if c := exec.commands(); len(c) != 1 || c[0].Channel != "discord:501" || c[0].MessageID != "m1" || c[0].Action != bot.ActionAck {
		t.Errorf("commands = %+v", c)
	}
	if n := len(f.reqs("GET", "/api/v9/channels/t7")); n != 0 {
		t.Errorf("REST lookups = %d", n)
	}
}

func TestHTTPRefusals(t *testing.T) {
	s := newSigner(t)
	other := newSigner(t)
	body := commandInteraction("500", `[{"type":1,"name":"status"}]`)
	now := time.Now()
	cases := []struct {
		name string
		req  func() *http.Request
	}{
		{"forged body", func() *http.Request {
			r := s.request(body, now)
			forged := strings.Replace(body, "status", "tenants", 1)
			r.Body = http.NoBody
			r2 := httptest.NewRequest(http.MethodPost, "/discord/interactions", strings.NewReader(forged))
			r2.Header = r.Header
			return r2
		}},
		{"wrong key", func() *http.Request { return other.request(body, now) }},
		{"stale timestamp", func() *http.Request { return s.request(body, now.Add(-6*time.Minute)) }},
		{"future timestamp", func() *http.Request { return s.request(body, now.Add(6*time.Minute)) }},
		{"no signature", func() *http.Request {
			r := s.request(body, now)
			r.Header.Del("X-Signature-Ed25519")
			return r
		}},
		{"no timestamp", func() *http.Request {
			r := s.request(body, now)
			r.Header.Del("X-Signature-Timestamp")
			return r
		}},
		{"timestamp changed", func() *http.Request {
			r := s.request(body, now)
			r.Header.Set("X-Signature-Timestamp", strconv.FormatInt(now.Unix()-1, 10))
			return r
		}},
		{"garbage signature", func() *http.Request {
			r := s.request(body, now)
			r.Header.Set("X-Signature-Ed25519", "zz")
			return r
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, exec, f := newHTTPHandler(t, s.pub)
			w := serve(h, tc.req())
			if w.Code != http.StatusUnauthorized {
				t.Errorf("status = %d, want 401", w.Code)
			}
			if len(exec.commands()) != 0 || len(f.reqs("GET", "/")) != 0 {
				t.Error("a refused request had effects")
			}
		})
	}
}

func TestHTTPReplay(t *testing.T) {
	s := newSigner(t)
	h, exec, _ := newHTTPHandler(t, s.pub)
	body := commandInteraction("500", `[{"type":1,"name":"status"}]`)
	r1 := s.request(body, time.Now())
	hdr := r1.Header.Clone()
	if w := serve(h, r1); w.Code != 200 {
		t.Fatalf("first: %d", w.Code)
	}
	r2 := httptest.NewRequest(http.MethodPost, "/discord/interactions", strings.NewReader(body))
	r2.Header = hdr
	// Upper-case hex decodes to the same signature: still a replay.
	r2.Header.Set("X-Signature-Ed25519", strings.ToUpper(hdr.Get("X-Signature-Ed25519")))
	if w := serve(h, r2); w.Code != http.StatusUnauthorized {
		t.Errorf("replay: %d, want 401", w.Code)
	}
	if n := len(exec.commands()); n != 1 {
		t.Errorf("executed %d times, want 1", n)
	}
}

func TestHTTPReplayCacheExpires(t *testing.T) {
	s := newSigner(t)
	h, _, _ := newHTTPHandler(t, s.pub)
	hd := h.(*interactionsHandler)
	clock := time.Now()
	hd.now = func() time.Time { return clock }
	for i := range 3 {
		body := `{"id":"` + strconv.Itoa(i) + `","application_id":"app1","type":1,"token":"tok"}`
		if w := serve(h, s.request(body, clock)); w.Code != 200 {
			t.Fatalf("ping %d: %d", i, w.Code)
		}
	}
	clock = clock.Add(signatureWindow + 2*time.Minute)
	if w := serve(h, s.request(`{"id":"9","type":1}`, clock)); w.Code != 200 {
		t.Fatalf("late ping: %d", w.Code)
	}
	hd.mu.Lock()
	n := len(hd.seen)
	hd.mu.Unlock()
	if n != 1 {
		t.Errorf("replay cache holds %d entries, want 1 after expiry", n)
	}
}

func TestHTTPBadRequests(t *testing.T) {
	s := newSigner(t)
	h, exec, _ := newHTTPHandler(t, s.pub)
	if w := serve(h, s.request(`{not json`, time.Now())); w.Code != http.StatusBadRequest {
		t.Errorf("bad JSON: %d", w.Code)
	}
	big := `{"type":1,"pad":"` + strings.Repeat("a", maxBody) + `"}`
	if w := serve(h, s.request(big, time.Now())); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("huge body: %d", w.Code)
	}
	if w := serve(h, httptest.NewRequest(http.MethodGet, "/discord/interactions", nil)); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", w.Code)
	}
	if len(exec.commands()) != 0 {
		t.Error("commands ran")
	}
}

func TestHTTPDeferred(t *testing.T) {
	s := newSigner(t)
	h, f, exec := newInteractions(t)
	h.Deadline = 20 * time.Millisecond
	exec.gate = make(chan struct{})
	hd, err := InteractionsHandler(s.pub, h)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(hd)
	defer srv.Close()
	r := s.request(commandInteraction("500", `[{"type":1,"name":"tenants"}]`), time.Now())
	req, _ := http.NewRequest(http.MethodPost, srv.URL, r.Body)
	req.Header = r.Header
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Type int `json:"type"`
		Data struct {
			Flags int `json:"flags"`
		} `json:"data"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if out.Type != 5 || out.Data.Flags != 64 {
		t.Fatalf("response = %+v, want deferred ephemeral", out)
	}
	close(exec.gate)
	deadline := time.Now().Add(5 * time.Second)
	for len(f.reqs("PATCH", "/api/v9/webhooks/app1/tok/messages/@original")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no follow-up edit")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestInteractionsHandlerNeedsKey(t *testing.T) {
	h := &Interactions{Executor: &fakeExecutor{}}
	for _, key := range []ed25519.PublicKey{nil, {}, make(ed25519.PublicKey, 31), make(ed25519.PublicKey, 32)} {
		if _, err := InteractionsHandler(key, h); err == nil {
			t.Errorf("key %x accepted", key)
		}
	}
	if _, err := InteractionsHandler(newSigner(t).pub, &Interactions{}); err == nil {
		t.Error("no executor accepted")
	}
	for _, s := range []string{"", "zz", "abcd", strings.Repeat("0", 62)} {
		if _, err := ParsePublicKey(s); err == nil {
			t.Errorf("ParsePublicKey(%q) accepted", s)
		}
	}
	pub := newSigner(t).pub
	got, err := ParsePublicKey(" " + hex.EncodeToString(pub) + "\n")
	if err != nil || !got.Equal(pub) {
		t.Errorf("ParsePublicKey = %x, %v", got, err)
	}
}
