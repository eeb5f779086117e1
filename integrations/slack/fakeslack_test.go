package slack

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
)

const (
	testBotToken = "xoxb-test-bot-token-1234567890"
	testAppToken = "xapp-1-test-app-token-0987654321"
)

// fakeMsg is a message as the fake Web API stores it.
type fakeMsg struct {
	TS       string          `json:"ts"`
	ThreadTS string          `json:"thread_ts,omitempty"`
	Text     string          `json:"text"`
	Blocks   json.RawMessage `json:"blocks,omitempty"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
	Edits    int             `json:"-"`
}

// fakeSlack is a Slack Web API that speaks the real wire format (form
// posts, {"ok":…} answers) and records what it is asked, plus a Socket Mode
// /ws endpoint driven by the test.
type fakeSlack struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	nextTS   int
	channels map[string][]*fakeMsg // oldest first
	calls    map[string]int
	fail     map[string][]func(w http.ResponseWriter) // per method, consumed in order
	emails   map[string]string
	shared   map[string]bool // channel id -> is_ext_shared
	unknown  map[string]bool // channels conversations.info does not know
	ws       func(n int, conn *websocket.Conn)
	wsConns  int
}

func newFakeSlack(t *testing.T) *fakeSlack {
	t.Helper()
	f := &fakeSlack{
		t:        t,
		nextTS:   1,
		channels: map[string][]*fakeMsg{},
		calls:    map[string]int{},
		fail:     map[string][]func(http.ResponseWriter){},
		emails:   map[string]string{},
		shared:   map[string]bool{},
		unknown:  map[string]bool{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/{method}", f.api)
	mux.HandleFunc("/ws", f.websocket)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSlack) config() Config {
	return Config{BotToken: testBotToken, AppToken: testAppToken, APIURL: f.srv.URL + "/api/",
		Logger: slog.New(slog.DiscardHandler)}
}

// failNext makes the next call of method answer with h.
func (f *fakeSlack) failNext(method string, h func(w http.ResponseWriter)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[method] = append(f.fail[method], h)
}

func slackError(code string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"ok":false,"error":%q}`, code)
	}
}

func httpStatus(code int, header map[string]string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(code)
		fmt.Fprint(w, "<html>error</html>")
	}
}

func (f *fakeSlack) callCount(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

func (f *fakeSlack) messages(channel string) []fakeMsg {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]fakeMsg, len(f.channels[channel]))
	for i, m := range f.channels[channel] {
		out[i] = *m
	}
	return out
}

func (f *fakeSlack) api(w http.ResponseWriter, r *http.Request) {
	method := r.PathValue("method")
	f.mu.Lock()
	f.calls[method]++
	var fail func(http.ResponseWriter)
	if q := f.fail[method]; len(q) > 0 {
		fail, f.fail[method] = q[0], q[1:]
	}
	f.mu.Unlock()
	if fail != nil {
		fail(w)
		return
	}

	token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	if token == "" {
		token = r.PostForm.Get("token")
	}
	want := testBotToken
	if method == "apps.connections.open" {
		want = testAppToken
	}
	if token != want {
		writeOK(w, map[string]any{"ok": false, "error": "invalid_auth"})
		return
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	switch method {
	case "chat.postMessage":
		ch := r.PostForm.Get("channel")
		m := &fakeMsg{
			TS:       fmt.Sprintf("1700000000.%06d", f.nextTS),
			ThreadTS: r.PostForm.Get("thread_ts"),
			Text:     r.PostForm.Get("text"),
			Blocks:   raw(r.PostForm.Get("blocks")),
			Metadata: raw(r.PostForm.Get("metadata")),
		}
		f.nextTS++
		f.channels[ch] = append(f.channels[ch], m)
		writeOK(w, map[string]any{"ok": true, "channel": ch, "ts": m.TS})
	case "chat.update":
		ch, ts := r.PostForm.Get("channel"), r.PostForm.Get("ts")
		for _, m := range f.channels[ch] {
			if m.TS == ts {
				m.Text, m.Blocks, m.Edits = r.PostForm.Get("text"), raw(r.PostForm.Get("blocks")), m.Edits+1
				if md := r.PostForm.Get("metadata"); md != "" {
					m.Metadata = raw(md)
				}
				writeOK(w, map[string]any{"ok": true, "channel": ch, "ts": ts, "text": m.Text})
				return
			}
		}
		writeOK(w, map[string]any{"ok": false, "error": "message_not_found"})
	case "conversations.history":
		ch := r.PostForm.Get("channel")
		limit, _ := strconv.Atoi(r.PostForm.Get("limit"))
		if limit <= 0 {
			limit = 100
		}
		start, _ := strconv.Atoi(r.PostForm.Get("cursor"))
		withMeta := r.PostForm.Get("include_all_metadata") == "1"
		var roots []*fakeMsg // newest first; thread replies are not in the channel history
		for j := len(f.channels[ch]) - 1; j >= 0; j-- {
			if m := f.channels[ch][j]; m.ThreadTS == "" {
				roots = append(roots, m)
			}
		}
		start = min(start, len(roots))
		end := min(start+limit, len(roots))
		msgs := []map[string]any{}
		for _, m := range roots[start:end] {
			out := map[string]any{"type": "message", "ts": m.TS, "text": m.Text}
			if withMeta && len(m.Metadata) > 0 {
				out["metadata"] = m.Metadata
			}
			msgs = append(msgs, out)
		}
		next := ""
		if end < len(roots) {
			next = strconv.Itoa(end)
		}
		writeOK(w, map[string]any{"ok": true, "messages": msgs, "has_more": next != "",
			"response_metadata": map[string]any{"next_cursor": next}})
	case "users.info":
		u := r.PostForm.Get("user")
		email, ok := f.emails[u]
		if !ok {
			writeOK(w, map[string]any{"ok": false, "error": "user_not_found"})
			return
		}
		writeOK(w, map[string]any{"ok": true, "user": map[string]any{"id": u, "profile": map[string]any{"email": email}}})
	case "conversations.info":
		ch := r.PostForm.Get("channel")
		if f.unknown[ch] {
			writeOK(w, map[string]any{"ok": false, "error": "channel_not_found"})
			return
		}
		writeOK(w, map[string]any{"ok": true, "channel": map[string]any{"id": ch, "is_channel": true, "is_ext_shared": f.shared[ch]}})
	case "apps.connections.open":
		writeOK(w, map[string]any{"ok": true, "url": "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/ws"})
	default:
		writeOK(w, map[string]any{"ok": false, "error": "unknown_method"})
	}
}

// Slack's client sends Origin: https://api.slack.com; the fake accepts it.
var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func (f *fakeSlack) websocket(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	f.mu.Lock()
	n := f.wsConns
	f.wsConns++
	h := f.ws
	f.mu.Unlock()
	if h != nil {
		h(n, conn)
	}
	_ = conn.Close()
}

func raw(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

func writeOK(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeSlack) setShared(ch string, v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.shared[ch] = v
}

func (f *fakeSlack) setEmail(user, email string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.emails[user] = email
}

func (f *fakeSlack) setUnknown(ch string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unknown[ch] = true
}
