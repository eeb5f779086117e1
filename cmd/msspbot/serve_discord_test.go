package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msspbot/msspbot/config"
	"github.com/msspbot/msspbot/integrations/defender/defendertest"
)

// fakeDiscordREST records what msspbot sends to Discord's REST API.
type fakeDiscordREST struct {
	srv      *httptest.Server
	mu       sync.Mutex
	n        int
	posts    map[string][]map[string]any // channel -> message bodies
	commands int                         // bulk overwrites received
}

func newFakeDiscordREST(t *testing.T) *fakeDiscordREST {
	f := &fakeDiscordREST{posts: map[string][]map[string]any{}}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /api/v9/applications/{app}/guilds/{guild}/commands", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.commands++
		f.mu.Unlock()
		io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, "[]")
	})
	mux.HandleFunc("POST /api/v9/channels/{ch}/messages", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		f.mu.Lock()
		f.n++
		id := strconv.Itoa(1000 + f.n)
		f.posts[r.PathValue("ch")] = append(f.posts[r.PathValue("ch")], body)
		f.mu.Unlock()
		fmt.Fprintf(w, `{"id":%q,"channel_id":%q}`, id, r.PathValue("ch"))
	})
	mux.HandleFunc("GET /api/v9/channels/{ch}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"id":%q,"type":0}`, r.PathValue("ch"))
	})
	mux.HandleFunc("GET /api/v9/channels/{ch}/messages", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "[]") })
	mux.HandleFunc("PATCH /api/v9/channels/{ch}/messages/{id}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"id":%q,"channel_id":%q}`, r.PathValue("id"), r.PathValue("ch"))
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeDiscordREST) postedTo(ch string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, _ := json.Marshal(f.posts[ch])
	return string(b)
}

func signedInteraction(t *testing.T, url string, key ed25519.PrivateKey, body string) (int, string) {
	t.Helper()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Signature-Timestamp", ts)
	req.Header.Set("X-Signature-Ed25519", hex.EncodeToString(ed25519.Sign(key, []byte(ts+body))))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServeDiscordHTTPMode wires serve with Discord in HTTP-interactions
// mode: /mssp is registered, cards are posted through REST, and signed
// interactions reach the executor; a forged signature is refused.
func TestServeDiscordHTTPMode(t *testing.T) {
	idp := defendertest.NewIdP(t)
	mde := defendertest.NewMDE(t, idp)
	dc := newFakeDiscordREST(t)
	pub, priv, err := ed25519.GenerateKey(nil)
	must(t, err)
	idp.Consent(e2eTenantB)
	mde.Put(e2eTenantB, defendertest.SampleAlert("da-discord-1"))
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	must(t, os.WriteFile(path, []byte(fmt.Sprintf(`
database: %s
http: {listen: "127.0.0.1:0"}
azure: {client_id: %q, client_secret: %q, authority_host: %q}
defender: {base_url: %q, schedule: "@every 1s"}
discord: {enabled: true, mode: http, token: "discord-bot-token", application_id: "777", public_key: %q, guild_ids: ["1180000000000000001"], api_url: %q}
soc: {channels: ["discord:900"], users: ["discord:42"]}
tenants:
  - {id: %q, name: Fabrikam, channels: ["discord:500"]}
`, filepath.Join(dir, "db"), idp.ClientID, idp.Secret(), idp.URL, mde.URL, hex.EncodeToString(pub), dc.srv.URL+"/api/v9/", e2eTenantB)), 0o600))
	cfg, err := config.Load(path, func(string) string { return "" }, os.ReadFile)
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	started, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- serve(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), serveOptions{
			HTTPClient: mde.Client(), Started: func(u string) { started <- u }, ShutdownTimeout: 5 * time.Second})
	}()
	var base string
	select {
	case base = <-started:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve returned %v", err)
		}
	}()

	eventually(t, "card posted to the Discord channel", func() bool { return strings.Contains(dc.postedTo("500"), "da-discord-1") })
	if dc.commands != 1 {
		t.Fatalf("/mssp registered %d times", dc.commands)
	}
	code, body := signedInteraction(t, base+"/discord/interactions", priv, `{"type":1,"id":"1","application_id":"777","token":"t","version":1}`)
	if code != 200 || !strings.Contains(body, `"type":1`) {
		t.Fatalf("PING: %d %s", code, body)
	}
	cmd := `{"type":2,"id":"2","application_id":"777","token":"tok","version":1,"channel_id":"500","channel":{"id":"500","type":0},"guild_id":"1180000000000000001",
"member":{"user":{"id":"42","username":"analyst"}},"data":{"id":"c","name":"mssp","type":1,"options":[{"name":"alerts","type":1}]}}`
	code, body = signedInteraction(t, base+"/discord/interactions", priv, cmd)
	if code != 200 || !strings.Contains(body, "da-discord-1") || !strings.Contains(body, `"flags":64`) {
		t.Fatalf("alerts: %d %s", code, body)
	}
	_, wrong, _ := ed25519.GenerateKey(nil)
	if code, _ := signedInteraction(t, base+"/discord/interactions", wrong, cmd); code != 401 {
		t.Fatalf("forged signature answered %d", code)
	}
}
