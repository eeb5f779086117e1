package discord

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/bwmarrin/discordgo"
)

// fakeDiscord is a small Discord REST API: messages, threads, channels,
// command registration and interaction callbacks, with recorded requests
// and injectable failures. It speaks the wire format discordgo expects.
type fakeDiscord struct {
	t   testing.TB
	srv *httptest.Server
	mux *http.ServeMux // tests may add routes

	mu       sync.Mutex
	nextID   int64
	requests []recorded
	messages map[string][]map[string]any // channel id -> messages, oldest first
	threads  map[string]string           // thread id -> parent channel id
	channels map[string]map[string]any   // channel id -> channel object
	nonces   map[string]map[string]any   // channel/nonce -> message
	commands map[string]json.RawMessage  // "app/guild" -> last PUT body
	// fail answers the next requests matching "METHOD path-prefix" with
	// a canned response instead of handling them.
	fail []failure
}

type recorded struct {
	Method string
	Path   string
	Query  string
	Body   []byte
	Header http.Header
}

type failure struct {
	match  string // "POST /api/v9/channels/1/messages"
	status int
	header map[string]string
	body   string
	times  int // 0: forever
}

func newFakeDiscord(t testing.TB) *fakeDiscord {
	f := &fakeDiscord{
		t:        t,
		nextID:   1000,
		messages: map[string][]map[string]any{},
		threads:  map[string]string{},
		channels: map[string]map[string]any{},
		nonces:   map[string]map[string]any{},
		commands: map[string]json.RawMessage{},
	}
	mux := http.NewServeMux()
	f.mux = mux
	mux.HandleFunc("POST /api/v9/channels/{ch}/messages", f.postMessage)
	mux.HandleFunc("GET /api/v9/channels/{ch}/messages", f.listMessages)
	mux.HandleFunc("GET /api/v9/channels/{ch}/messages/{id}", f.getMessage)
	mux.HandleFunc("PATCH /api/v9/channels/{ch}/messages/{id}", f.editMessage)
	mux.HandleFunc("POST /api/v9/channels/{ch}/messages/{id}/threads", f.startThread)
	mux.HandleFunc("GET /api/v9/channels/{ch}", f.getChannel)
	mux.HandleFunc("PUT /api/v9/applications/{app}/guilds/{guild}/commands", f.putCommands)
	mux.HandleFunc("PUT /api/v9/applications/{app}/commands", f.putCommands)
	mux.HandleFunc("POST /api/v9/interactions/{id}/{token}/callback", f.ok204)
	mux.HandleFunc("PATCH /api/v9/webhooks/{app}/{token}/messages/{mid}", f.editOriginal)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		f.mu.Lock()
		f.requests = append(f.requests, recorded{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Body: body, Header: r.Header.Clone()})
		fl, failed := f.takeFailure(r.Method + " " + r.URL.Path)
		f.mu.Unlock()
		if failed {
			for k, v := range fl.header {
				w.Header().Set(k, v)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(fl.status)
			io.WriteString(w, fl.body)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// session returns a discordgo session that talks to the fake.
func (f *fakeDiscord) session() *discordgo.Session {
	f.t.Helper()
	s, err := NewSession("test-token", f.srv.URL+"/api/v9/", f.srv.Client())
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func (f *fakeDiscord) failNext(match string, status int, body string, header map[string]string, times int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = append(f.fail, failure{match: match, status: status, body: body, header: header, times: times})
}

func (f *fakeDiscord) takeFailure(req string) (failure, bool) {
	for i, fl := range f.fail {
		if req == fl.match {
			if fl.times > 0 {
				f.fail[i].times--
				if f.fail[i].times == 0 {
					f.fail = append(f.fail[:i], f.fail[i+1:]...)
				}
			}
			return fl, true
		}
	}
	return failure{}, false
}

func (f *fakeDiscord) addChannel(id string, typ discordgo.ChannelType, parent string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := map[string]any{"id": id, "type": typ, "guild_id": "900"}
	if parent != "" {
		c["parent_id"] = parent
		f.threads[id] = parent
	}
	f.channels[id] = c
}

func (f *fakeDiscord) reqs(method, prefix string) []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []recorded
	for _, r := range f.requests {
		if r.Method == method && strings.HasPrefix(r.Path, prefix) {
			out = append(out, r)
		}
	}
	return out
}

func (f *fakeDiscord) channelMessages(ch string) []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[string]any(nil), f.messages[ch]...)
}

func (f *fakeDiscord) id() string {
	f.nextID++
	return strconv.FormatInt(f.nextID, 10)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, map[string]any{"code": code, "message": msg})
}

// channelOK says whether messages may go to ch: a known channel, a thread
// started by the fake, or any id not declared (tests post freely).
func (f *fakeDiscord) channelKnown(ch string) bool {
	if _, ok := f.threads[ch]; ok {
		return true
	}
	// A message id without a thread is not a channel.
	for _, msgs := range f.messages {
		for _, m := range msgs {
			if m["id"] == ch {
				return false
			}
		}
	}
	return true
}

func (f *fakeDiscord) postMessage(w http.ResponseWriter, r *http.Request) {
	ch := r.PathValue("ch")
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		apiError(w, 400, 50109, "The request body contains invalid JSON.")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.channelKnown(ch) {
		apiError(w, 404, 10003, "Unknown Channel")
		return
	}
	nonce, _ := body["nonce"].(string)
	if enforce, _ := body["enforce_nonce"].(bool); enforce && nonce != "" {
		if m, ok := f.nonces[ch+"/"+nonce]; ok {
			writeJSON(w, 200, m) // Discord returns the first message
			return
		}
	}
	m := map[string]any{"id": f.id(), "channel_id": ch, "content": body["content"], "embeds": body["embeds"], "components": body["components"], "author": map[string]any{"id": "42", "bot": true}}
	if m["embeds"] == nil {
		m["embeds"] = []any{}
	}
	if m["components"] == nil {
		m["components"] = []any{}
	}
	f.messages[ch] = append(f.messages[ch], m)
	if nonce != "" {
		f.nonces[ch+"/"+nonce] = m
	}
	writeJSON(w, 200, m)
}

func (f *fakeDiscord) listMessages(w http.ResponseWriter, r *http.Request) {
	ch := r.PathValue("ch")
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 || limit > 100 {
		limit = 50
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	msgs := f.messages[ch]
	out := []map[string]any{}
	for i := len(msgs) - 1; i >= 0 && len(out) < limit; i-- { // newest first
		out = append(out, msgs[i])
	}
	writeJSON(w, 200, out)
}

func (f *fakeDiscord) find(ch, id string) (int, map[string]any) {
	for i, m := range f.messages[ch] {
		if m["id"] == id {
			return i, m
		}
	}
	return -1, nil
}

func (f *fakeDiscord) getMessage(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, m := f.find(r.PathValue("ch"), r.PathValue("id"))
	if m == nil {
		apiError(w, 404, 10008, "Unknown Message")
		return
	}
	writeJSON(w, 200, m)
}

func (f *fakeDiscord) editMessage(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		apiError(w, 400, 50109, "The request body contains invalid JSON.")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	i, m := f.find(r.PathValue("ch"), r.PathValue("id"))
	if m == nil {
		apiError(w, 404, 10008, "Unknown Message")
		return
	}
	for _, k := range []string{"content", "embeds", "components"} {
		if v, ok := body[k]; ok {
			m[k] = v
		}
	}
	f.messages[r.PathValue("ch")][i] = m
	writeJSON(w, 200, m)
}

func (f *fakeDiscord) startThread(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name string `json:"name"`
	}
	json.NewDecoder(r.Body).Decode(&body)
	ch, id := r.PathValue("ch"), r.PathValue("id")
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, m := f.find(ch, id); m == nil {
		apiError(w, 404, 10008, "Unknown Message")
		return
	}
	if body.Name == "" || len([]rune(body.Name)) > 100 {
		apiError(w, 400, 50035, "Invalid Form Body")
		return
	}
	if _, ok := f.threads[id]; ok {
		apiError(w, 400, 160004, "A thread has already been created for this message")
		return
	}
	f.threads[id] = ch
	c := map[string]any{"id": id, "type": discordgo.ChannelTypeGuildPublicThread, "parent_id": ch, "name": body.Name}
	f.channels[id] = c
	writeJSON(w, 201, c)
}

func (f *fakeDiscord) getChannel(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.channels[r.PathValue("ch")]
	if !ok {
		apiError(w, 404, 10003, "Unknown Channel")
		return
	}
	writeJSON(w, 200, c)
}

func (f *fakeDiscord) putCommands(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var cmds []map[string]any
	if err := json.Unmarshal(body, &cmds); err != nil {
		apiError(w, 400, 50109, "The request body contains invalid JSON.")
		return
	}
	f.mu.Lock()
	f.commands[r.PathValue("app")+"/"+r.PathValue("guild")] = body
	f.mu.Unlock()
	for _, c := range cmds {
		c["id"] = "1" + fmt.Sprint(len(c))
	}
	writeJSON(w, 200, cmds)
}

func (f *fakeDiscord) ok204(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusNoContent)
}

func (f *fakeDiscord) editOriginal(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 200, map[string]any{"id": "77", "channel_id": "1"})
}
