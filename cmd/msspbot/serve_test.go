package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msspbot/msspbot/config"
	"github.com/msspbot/msspbot/integrations/defender/defendertest"
)

const (
	e2eSecret  = "e2e-signing-secret-0123456789"
	e2eToken   = "xoxb-e2e-bot-token"
	e2eTenantA = "6f1c3e2a-0b7d-4c1e-9a55-1d2b3c4d5e6f" // onboarded from chat
	e2eTenantB = "0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d" // declared in config
)

// slackMsg is one message the fake Slack Web API received.
type slackMsg struct {
	Channel, TS, ThreadTS, Text string
	Blocks                      string
	Edits                       []string // blocks of each chat.update
}

// fakeSlack records chat.postMessage / chat.update and answers the reads
// msspbot makes, in the Web API's wire format.
type fakeSlack struct {
	srv    *httptest.Server
	mu     sync.Mutex
	n      int
	msgs   []*slackMsg
	shared map[string]bool // channels conversations.info reports as externally shared
}

func newFakeSlack(t *testing.T) *fakeSlack {
	f := &fakeSlack{}
	f.srv = httptest.NewServer(http.HandlerFunc(f.api))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSlack) api(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("Authorization") != "Bearer "+e2eToken && r.PostForm.Get("token") != e2eToken {
		fmt.Fprint(w, `{"ok":false,"error":"invalid_auth"}`)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	method := strings.TrimPrefix(r.URL.Path, "/api/")
	switch method {
	case "chat.postMessage":
		f.n++
		m := &slackMsg{Channel: r.PostForm.Get("channel"), TS: fmt.Sprintf("1700000000.%06d", f.n),
			ThreadTS: r.PostForm.Get("thread_ts"), Text: r.PostForm.Get("text"), Blocks: r.PostForm.Get("blocks")}
		f.msgs = append(f.msgs, m)
		json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": m.Channel, "ts": m.TS})
	case "chat.update":
		for _, m := range f.msgs {
			if m.Channel == r.PostForm.Get("channel") && m.TS == r.PostForm.Get("ts") {
				m.Edits = append(m.Edits, r.PostForm.Get("blocks"))
				json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": m.Channel, "ts": m.TS})
				return
			}
		}
		fmt.Fprint(w, `{"ok":false,"error":"message_not_found"}`)
	case "conversations.history":
		fmt.Fprint(w, `{"ok":true,"messages":[],"has_more":false}`)
	case "conversations.info":
		ch := r.PostForm.Get("channel")
		fmt.Fprintf(w, `{"ok":true,"channel":{"id":%q,"is_ext_shared":%t}}`, ch, f.shared[ch])
	case "users.info":
		fmt.Fprintf(w, `{"ok":true,"user":{"id":%q,"profile":{"email":"someone@example.com"}}}`, r.PostForm.Get("user"))
	default:
		fmt.Fprint(w, `{"ok":true}`)
	}
}

// waitMsg waits for a message in channel whose text or blocks match.
func (f *fakeSlack) waitMsg(t *testing.T, channel string, match func(*slackMsg) bool) slackMsg {
	t.Helper()
	var found slackMsg
	eventually(t, "slack message in "+channel, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, m := range f.msgs {
			if m.Channel == channel && match(m) {
				found = *m
				found.Edits = append([]string(nil), m.Edits...)
				return true
			}
		}
		return false
	})
	return found
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// signed posts a form to the bot as Slack would, signed with secret.
func signed(t *testing.T, base, path, secret string, form url.Values) (int, string) {
	t.Helper()
	body := form.Encode()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "v0:%s:%s", ts, body)
	req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func command(channel, user, text string) url.Values {
	return url.Values{"command": {"/mssp"}, "text": {text}, "channel_id": {channel}, "user_id": {user},
		"user_name": {strings.ToLower(user)}, "team_id": {"T1"}, "response_url": {"http://127.0.0.1:1/unused"}, "trigger_id": {"1.2.3"}}
}

func click(channel, user, action, value, messageTS string) url.Values {
	p, _ := json.Marshal(map[string]any{
		"type": "block_actions", "user": map[string]any{"id": user, "name": "u"}, "team": map[string]any{"id": "T1"},
		"channel":      map[string]any{"id": channel},
		"container":    map[string]any{"type": "message", "message_ts": messageTS, "channel_id": channel},
		"message":      map[string]any{"ts": messageTS},
		"response_url": "http://127.0.0.1:1/unused",
		"actions":      []map[string]any{{"action_id": action, "value": value, "type": "button", "block_id": "b"}},
	})
	return url.Values{"payload": {string(p)}}
}

type e2e struct {
	t     *testing.T
	base  string
	slack *fakeSlack
	idp   *defendertest.IdP
	mde   *defendertest.MDE   // defender.api: mde
	graph *defendertest.Graph // defender.api: graph
	db    string
	stop  func() error
}

func startServe(t *testing.T) *e2e { return startServeAPI(t, "mde") }

// startServeAPI runs the real serve wiring on :0 with Slack in HTTP mode,
// against fake Slack, Entra and the fake Defender API named by api. Tenant
// B (Fabrikam, slack:CFAB) is declared in the config and consented.
func startServeAPI(t *testing.T, api string) *e2e { return startServeWith(t, api, nil) }

// startServeWith is startServeAPI with the fake Slack set up by prepare
// before serve starts.
func startServeWith(t *testing.T, api string, prepare func(*fakeSlack)) *e2e {
	t.Helper()
	idp := defendertest.NewIdP(t)
	slack := newFakeSlack(t)
	if prepare != nil {
		prepare(slack)
	}
	dir := t.TempDir()
	e := &e2e{t: t, slack: slack, idp: idp, db: filepath.Join(dir, "msspbot.db")}
	var (
		apiURL string
		client *http.Client
	)
	if api == "graph" {
		e.graph = defendertest.NewGraph(t, idp)
		apiURL, client = e.graph.URL, e.graph.Client()
	} else {
		e.mde = defendertest.NewMDE(t, idp)
		apiURL, client = e.mde.URL, e.mde.Client()
	}
	yaml := fmt.Sprintf(`
database: %s
http:
  listen: "127.0.0.1:0"
  public_url: "http://127.0.0.1:8080"
azure:
  client_id: %q
  client_secret_file: %s
  authority_host: %q
defender:
  api: %s
  base_url: %q
  schedule: "@every 1s"
  lookback: 24h
slack:
  enabled: true
  mode: http
  bot_token: %q
  signing_secret: %q
  api_url: %q
soc:
  channels: ["slack:CSOC"]
  users: ["slack:UANALYST"]
  identities: {"slack:UANALYST": "analyst1@mssp.example"}
tenants:
  - id: %q
    name: Fabrikam
    channels: ["slack:CFAB"]
`, e.db, idp.ClientID, filepath.Join(dir, "secret"), idp.URL, api, apiURL, e2eToken, e2eSecret, slack.srv.URL+"/api/", e2eTenantB)
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte(idp.Secret()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, func(string) string { return "" }, os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	idp.Consent(e2eTenantB)
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan string, 1)
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	go func() {
		done <- serve(ctx, cfg, log, serveOptions{HTTPClient: client, Started: func(u string) { started <- u }, ShutdownTimeout: 5 * time.Second})
	}()
	select {
	case e.base = <-started:
	case err := <-done:
		t.Fatalf("serve stopped at start: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not start")
	}
	var once sync.Once
	var stopErr error
	e.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(20 * time.Second):
				stopErr = fmt.Errorf("serve did not stop")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { e.stop() })
	return e
}

func (e *e2e) get(path string) (int, string) {
	resp, err := http.Get(e.base + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var stateRE = regexp.MustCompile(`adminconsent\?[^"]*?state=([A-Za-z0-9_-]+)`)

// TestServeEndToEnd drives the real serve wiring on :0 against fake Slack
// (HTTP mode), Entra and MDE: onboard → consent → alert → card → change →
// thread line and edit → signed ack → PATCH → thread line; and the refusals.
func TestServeEndToEnd(t *testing.T) {
	e := startServe(t)

	if code, _ := e.get("/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	eventually(t, "readyz 200", func() bool { code, _ := e.get("/readyz"); return code == 200 })

	// Forged and unsigned requests are refused and change nothing.
	if code, _ := signed(t, e.base, "/slack/commands", "wrong-secret", command("CCONTOSO", "UANALYST", "onboard "+e2eTenantA+" Contoso")); code != 401 {
		t.Fatalf("forged signature answered %d", code)
	}

	// 1. Onboard from the customer's channel: an approval prompt appears.
	code, body := signed(t, e.base, "/slack/commands", e2eSecret, command("CCONTOSO", "UANALYST", "onboard "+e2eTenantA+" Contoso"))
	if code != 200 || !strings.Contains(body, "Approval prompt") {
		t.Fatalf("onboard: %d %s", code, body)
	}
	prompt := e.slack.waitMsg(t, "CCONTOSO", func(m *slackMsg) bool { return strings.Contains(m.Blocks, "adminconsent") })
	sm := stateRE.FindStringSubmatch(prompt.Blocks)
	if sm == nil {
		t.Fatalf("no consent URL with state in the prompt: %s", prompt.Blocks)
	}
	state, _ := url.QueryUnescape(sm[1])

	// 2. An alert exists in Defender; it must not flow before consent.
	e.mde.Put(e2eTenantA, defendertest.SampleAlert("da-e2e-1"))
	if code, _ := e.get("/consent/callback?admin_consent=True&tenant=" + e2eTenantA + "&state=forged"); code != 400 {
		t.Fatalf("forged state answered %d", code)
	}
	// 3. The admin consents; Entra redirects back.
	e.idp.Consent(e2eTenantA)
	code, page := e.get("/consent/callback?admin_consent=True&tenant=" + e2eTenantA + "&state=" + url.QueryEscape(state))
	if code != 200 || !strings.Contains(page, "Access granted") || strings.Contains(page, state) {
		t.Fatalf("callback %d: %s", code, page)
	}
	if code, _ := e.get("/consent/callback?admin_consent=True&tenant=" + e2eTenantA + "&state=" + url.QueryEscape(state)); code != 400 {
		t.Fatalf("replayed state answered %d", code)
	}

	// 4. The card is posted in the customer channel and (High) the SOC channel.
	card := e.slack.waitMsg(t, "CCONTOSO", func(m *slackMsg) bool { return m.ThreadTS == "" && strings.Contains(m.Text, "da-e2e-1") })
	e.slack.waitMsg(t, "CSOC", func(m *slackMsg) bool { return m.ThreadTS == "" && strings.Contains(m.Text, "da-e2e-1") })
	e.slack.waitMsg(t, "CCONTOSO", func(m *slackMsg) bool {
		return m.TS == prompt.TS && len(m.Edits) > 0 && strings.Contains(m.Edits[len(m.Edits)-1], "granted")
	})

	// 5. A change in Defender: thread line + card edit.
	e.mde.Update(e2eTenantA, "da-e2e-1", func(a map[string]any) { a["severity"] = "Medium"; a["assignedTo"] = "soc@contoso.example" })
	e.slack.waitMsg(t, "CCONTOSO", func(m *slackMsg) bool {
		return m.ThreadTS == card.TS && strings.Contains(m.Text, "severity High → Medium")
	})
	e.slack.waitMsg(t, "CCONTOSO", func(m *slackMsg) bool { return m.TS == card.TS && len(m.Edits) > 0 })

	// 6. Customer B's channel naming A's alert: not found, nothing written.
	_, body = signed(t, e.base, "/slack/commands", e2eSecret, command("CFAB", "UANALYST", "ack da-e2e-1"))
	if !strings.Contains(body, "not found") {
		t.Fatalf("cross-tenant ack answered %s", body)
	}
	// A forged click: the Acknowledge button "pressed" on the prompt message.
	signed(t, e.base, "/slack/interactions", e2eSecret, click("CCONTOSO", "UANALYST", "alert_ack", "da-e2e-1", prompt.TS))
	time.Sleep(300 * time.Millisecond)
	if n := len(e.mde.Patches()); n != 0 {
		t.Fatalf("%d PATCHes after refused commands", n)
	}

	// 7. A signed ack: PATCH seen with the analyst's identity; thread line.
	_, body = signed(t, e.base, "/slack/commands", e2eSecret, command("CCONTOSO", "UANALYST", "ack da-e2e-1 on it"))
	if !strings.Contains(body, "Acknowledged") {
		t.Fatalf("ack answered %s", body)
	}
	eventually(t, "PATCH", func() bool { return len(e.mde.Patches()) == 1 })
	p := e.mde.Patches()[0]
	if p.Tenant != e2eTenantA || !strings.Contains(string(p.Body), `"status":"InProgress"`) || !strings.Contains(string(p.Body), "analyst1@mssp.example") {
		t.Fatalf("PATCH %+v %s", p, p.Body)
	}
	e.slack.waitMsg(t, "CCONTOSO", func(m *slackMsg) bool { return m.ThreadTS == card.TS && strings.Contains(m.Text, "Acknowledged") })

	// 8. Resolve from the SOC channel (Graph determination name accepted,
	// MDE name sent): PATCH with the exact MDE values.
	_, body = signed(t, e.base, "/slack/commands", e2eSecret, command("CSOC", "UANALYST", "resolve da-e2e-1 truepositive determination=multiStagedAttack contained"))
	if !strings.Contains(body, "Resolved") {
		t.Fatalf("resolve answered %s", body)
	}
	eventually(t, "resolve PATCH", func() bool { return len(e.mde.Patches()) == 2 })
	p = e.mde.Patches()[1]
	for _, want := range []string{`"status":"Resolved"`, `"classification":"TruePositive"`, `"determination":"MultiStagedAttack"`, `"comment":"contained"`} {
		if !strings.Contains(string(p.Body), want) {
			t.Fatalf("resolve PATCH %s lacks %s", p.Body, want)
		}
	}
	e.slack.waitMsg(t, "CCONTOSO", func(m *slackMsg) bool { return m.ThreadTS == card.TS && strings.Contains(m.Text, "Resolved by") })

	// Metrics carry no tenant ids or names.
	_, metrics := e.get("/metrics")
	for _, bad := range []string{e2eTenantA, e2eTenantB, "Contoso", "Fabrikam"} {
		if strings.Contains(metrics, bad) {
			t.Fatalf("/metrics leaks %q", bad)
		}
	}
	if !strings.Contains(metrics, "msspbot_fetch_passes_total") {
		t.Fatal("metrics missing passes")
	}
	if err := e.stop(); err != nil {
		t.Fatalf("serve returned %v", err)
	}
}

// A SOC channel that has become externally shared (Slack Connect) gets no
// posts, makes /readyz fail, and answers no command: a guest from another
// organisation could otherwise list every tenant's alerts.
func TestServeSharedSOCChannelRefusesCommands(t *testing.T) {
	e := startServeWith(t, "mde", func(f *fakeSlack) { f.shared = map[string]bool{"CSOC": true} })
	eventually(t, "readyz names the SOC channel check", func() bool {
		code, body := e.get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "slack-soc-channels")
	})
	// Until the first check has run the answer is "not yet verified"; each
	// try differs by trailing spaces so the replay cache lets it through.
	var code int
	var body string
	for i := 0; ; i++ {
		code, body = signed(t, e.base, "/slack/commands", e2eSecret, command("CSOC", "UANALYST", "tenants"+strings.Repeat(" ", i)))
		if code != 200 || strings.Contains(body, "Fabrikam") {
			t.Fatalf("command in the shared SOC channel: %d %s", code, body)
		}
		if strings.Contains(body, "shared with another organisation") {
			break
		}
		if i == 100 || !strings.Contains(body, "not yet verified") {
			t.Fatalf("command in the shared SOC channel: %d %s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The customer channel still works.
	code, body = signed(t, e.base, "/slack/commands", e2eSecret, command("CFAB", "UANALYST", "status"))
	if code != 200 || strings.Contains(body, "shared with another organisation") {
		t.Fatalf("customer channel: %d %s", code, body)
	}
}
