package slack

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
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/msspbot/msspbot/bot"
)

const testSecret = "8f742231b10e8888abcd99yyyzzz85a5"

// fakeExec records commands and answers with reply (default: echo).
type fakeExec struct {
	mu    sync.Mutex
	cmds  []bot.Command
	delay time.Duration
	reply func(bot.Command) bot.Message
}

func (e *fakeExec) Execute(ctx context.Context, cmd bot.Command) bot.Message {
	if e.delay > 0 {
		time.Sleep(e.delay)
	}
	e.mu.Lock()
	e.cmds = append(e.cmds, cmd)
	e.mu.Unlock()
	if e.reply != nil {
		return e.reply(cmd)
	}
	return bot.Message{Kind: bot.MessageText, Text: "echo: " + cmd.Text + cmd.Action, Ephemeral: true}
}

func (e *fakeExec) commands() []bot.Command {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]bot.Command(nil), e.cmds...)
}

// responseRecorder is an http.RoundTripper standing in for response_url.
type responseRecorder struct {
	mu    sync.Mutex
	posts []recordedPost
}

type recordedPost struct {
	URL  string
	Body map[string]any
}

func (r *responseRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	b, _ := io.ReadAll(req.Body)
	var body map[string]any
	_ = json.Unmarshal(b, &body)
	r.mu.Lock()
	r.posts = append(r.posts, recordedPost{URL: req.URL.String(), Body: body})
	r.mu.Unlock()
	return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader("ok")), Header: http.Header{}, Request: req}, nil
}

func (r *responseRecorder) all() []recordedPost {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recordedPost(nil), r.posts...)
}

func newTestHandlers(t *testing.T, exec Executor, opts ...Option) (*HTTPHandlers, *responseRecorder) {
	t.Helper()
	rec := &responseRecorder{}
	h, err := NewHTTPHandlers(Config{SigningSecret: testSecret, HTTPClient: &http.Client{Transport: rec},
		Logger: slog.New(slog.DiscardHandler)}, exec, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return h, rec
}

func sign(secret, ts, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "v0:%s:%s", ts, body)
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

func signedRequest(path, body string, ts time.Time) *http.Request {
	s := strconv.FormatInt(ts.Unix(), 10)
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", s)
	req.Header.Set("X-Slack-Signature", sign(testSecret, s, body))
	return req
}

func serve(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func commandBody(text string) string {
	return url.Values{
		"team_id":      {"T1"},
		"channel_id":   {"C0CONTOSO"},
		"channel_name": {"contoso-soc"},
		"user_id":      {"U012ANALYST"},
		"user_name":    {"ana"},
		"command":      {"/mssp"},
		"text":         {text},
		"response_url": {"https://hooks.slack.com/commands/T1/1/secret-token"},
		"trigger_id":   {"1.2.3"},
	}.Encode()
}

// Slack's documented example (docs.slack.dev, "Verifying requests from
// Slack") must verify; synctest moves the clock to its timestamp.
func TestDocumentedSignatureExample(t *testing.T) {
	const (
		ts   = "1531420618"
		body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
		sig  = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
	)
	request := func() *http.Request {
		req := httptest.NewRequest(http.MethodPost, "/slack/commands", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Slack-Request-Timestamp", ts)
		req.Header.Set("X-Slack-Signature", sig)
		return req
	}
	synctest.Test(t, func(t *testing.T) {
		time.Sleep(time.Until(time.Unix(1531420618, 0).Add(30 * time.Second)))
		exec := &fakeExec{}
		h, err := NewHTTPHandlers(Config{SigningSecret: testSecret, Command: "/webhook-collect"}, exec)
		if err != nil {
			t.Fatal(err)
		}
		w := serve(h.Commands(), request())
		if w.Code != http.StatusOK {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		cmds := exec.commands()
		if len(cmds) != 1 || cmds[0].Channel != "slack:G8PSS9T3V" || cmds[0].User != "U2CERLKJA" || cmds[0].Origin != bot.OriginTyped {
			t.Fatalf("commands = %+v", cmds)
		}

		// the same request again is a replay: 200, not executed again
		if w := serve(h.Commands(), request()); w.Code != http.StatusOK || w.Body.Len() != 0 {
			t.Errorf("replay: %d %q", w.Code, w.Body)
		}
		if n := len(exec.commands()); n != 1 {
			t.Errorf("replay executed: %d commands", n)
		}

		// six minutes later the timestamp is stale
		time.Sleep(6 * time.Minute)
		h2, _ := NewHTTPHandlers(Config{SigningSecret: testSecret, Command: "/webhook-collect"}, exec)
		if w := serve(h2.Commands(), request()); w.Code != http.StatusUnauthorized {
			t.Errorf("stale: status %d", w.Code)
		}
		h.Wait()
	})
}

func TestSignatureRefused(t *testing.T) {
	body := commandBody("alerts")
	now := time.Now()
	ts := strconv.FormatInt(now.Unix(), 10)
	for _, tc := range []struct {
		name  string
		build func() *http.Request
	}{
		{"forged body", func() *http.Request {
			req := signedRequest("/slack/commands", body, now)
			req.Body = io.NopCloser(strings.NewReader(strings.Replace(body, "alerts", "offboard", 1)))
			return req
		}},
		{"wrong secret", func() *http.Request {
			req := signedRequest("/slack/commands", body, now)
			req.Header.Set("X-Slack-Signature", sign("another-secret", ts, body))
			return req
		}},
		{"stale timestamp", func() *http.Request { return signedRequest("/slack/commands", body, now.Add(-6*time.Minute)) }},
		{"future timestamp", func() *http.Request { return signedRequest("/slack/commands", body, now.Add(6*time.Minute)) }},
		{"missing signature", func() *http.Request {
			req := signedRequest("/slack/commands", body, now)
			req.Header.Del("X-Slack-Signature")
			return req
		}},
		{"missing timestamp", func() *http.Request {
			req := signedRequest("/slack/commands", body, now)
			req.Header.Del("X-Slack-Request-Timestamp")
			return req
		}},
		{"timestamp not a number", func() *http.Request {
			req := signedRequest("/slack/commands", body, now)
			req.Header.Set("X-Slack-Request-Timestamp", "yesterday")
			return req
		}},
		{"signature not hex", func() *http.Request {
			req := signedRequest("/slack/commands", body, now)
			req.Header.Set("X-Slack-Signature", "v0=zzzz")
			return req
		}},
		{"signature without version", func() *http.Request {
			req := signedRequest("/slack/commands", body, now)
			req.Header.Set("X-Slack-Signature", strings.TrimPrefix(req.Header.Get("X-Slack-Signature"), "v0="))
			return req
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exec := &fakeExec{}
			h, rec := newTestHandlers(t, exec)
			for name, handler := range map[string]http.Handler{"commands": h.Commands(), "interactions": h.Interactions(), "events": h.Events()} {
				if w := serve(handler, tc.build()); w.Code != http.StatusUnauthorized {
					t.Errorf("%s: status %d, want 401", name, w.Code)
				}
			}
			h.Wait()
			if len(exec.commands()) != 0 || len(rec.all()) != 0 {
				t.Error("a refused request changed something")
			}
		})
	}
}

func TestEmptySecretRefused(t *testing.T) {
	if _, err := NewHTTPHandlers(Config{}, &fakeExec{}); err == nil {
		t.Fatal("empty signing secret accepted")
	}
	if _, err := NewHTTPHandlers(Config{SigningSecret: testSecret}, nil); err == nil {
		t.Fatal("nil executor accepted")
	}
}

func TestRetriesAndReplaysNotExecutedTwice(t *testing.T) {
	exec := &fakeExec{}
	h, _ := newTestHandlers(t, exec)
	body := commandBody("ack da1")
	now := time.Now()

	if w := serve(h.Commands(), signedRequest("/slack/commands", body, now)); w.Code != http.StatusOK {
		t.Fatalf("first: %d", w.Code)
	}
	if w := serve(h.Commands(), signedRequest("/slack/commands", body, now)); w.Code != http.StatusOK {
		t.Fatalf("replay: %d", w.Code)
	}
	retry := signedRequest("/slack/commands", body, now.Add(time.Second))
	retry.Header.Set("X-Slack-Retry-Num", "1")
	retry.Header.Set("X-Slack-Retry-Reason", "http_timeout")
	if w := serve(h.Commands(), retry); w.Code != http.StatusOK {
		t.Fatalf("retry: %d", w.Code)
	}
	h.Wait()
	if n := len(exec.commands()); n != 1 {
		t.Fatalf("executed %d times, want 1", n)
	}
}

func TestCommandAnsweredInBody(t *testing.T) {
	f := newFakeSlack(t)
	f.setEmail("U012ANALYST", "analyst1@mssp.example")
	ids, err := NewIdentities(f.config(), 0)
	if err != nil {
		t.Fatal(err)
	}
	exec := &fakeExec{}
	h, rec := newTestHandlers(t, exec, WithIdentities(ids))

	w := serve(h.Commands(), signedRequest("/slack/commands", commandBody("rules add title~&lt;b&gt; &amp; x"), time.Now()))
	if w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	var resp map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatalf("body %q: %v", w.Body, err)
	}
	if resp["response_type"] != "ephemeral" || !strings.Contains(resp["text"].(string), "echo: rules add title~&lt;b&gt; &amp; x") {
		t.Errorf("response = %v", resp)
	}
	if _, ok := resp["blocks"]; !ok {
		t.Error("no blocks in the answer")
	}
	// a second command from the same user: e-mail from the cache
	serve(h.Commands(), signedRequest("/slack/commands", commandBody("help"), time.Now().Add(time.Second)))
	h.Wait()

	cmds := exec.commands()
	if len(cmds) != 2 {
		t.Fatalf("commands = %+v", cmds)
	}
	want := bot.Command{Platform: "slack", Channel: "slack:C0CONTOSO", User: "U012ANALYST", UserName: "ana",
		Email: "analyst1@mssp.example", Origin: bot.OriginTyped, Text: "rules add title~<b> & x"}
	if cmds[0] != want {
		t.Errorf("command = %+v\nwant      %+v", cmds[0], want)
	}
	if n := f.callCount("users.info"); n != 1 {
		t.Errorf("users.info calls = %d, want 1", n)
	}
	if len(rec.all()) != 0 {
		t.Error("answered in the body and through response_url")
	}
}

func TestSlowCommandAnsweredThroughResponseURL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		exec := &fakeExec{delay: 5 * time.Second}
		h, rec := newTestHandlers(t, exec)
		start := time.Now()
		w := serve(h.Commands(), signedRequest("/slack/commands", commandBody("alerts"), time.Now()))
		if w.Code != http.StatusOK || w.Body.Len() != 0 {
			t.Fatalf("ack: %d %q", w.Code, w.Body)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("acknowledged after %v", d)
		}
		if len(rec.all()) != 0 {
			t.Fatal("answered before the executor finished")
		}
		h.Wait()
		posts := rec.all()
		if len(posts) != 1 {
			t.Fatalf("response_url posts = %d", len(posts))
		}
		p := posts[0]
		if p.URL != "https://hooks.slack.com/commands/T1/1/secret-token" || p.Body["response_type"] != "ephemeral" ||
			p.Body["text"] != "echo: alerts" {
			t.Errorf("post = %+v", p)
		}
	})
}

func TestUnknownCommandNotExecuted(t *testing.T) {
	exec := &fakeExec{}
	h, _ := newTestHandlers(t, exec)
	body := strings.Replace(commandBody("x"), "%2Fmssp", "%2Fother", 1)
	w := serve(h.Commands(), signedRequest("/slack/commands", body, time.Now()))
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "Unknown command /other") {
		t.Errorf("%d %s", w.Code, w.Body)
	}
	h.Wait()
	if len(exec.commands()) != 0 {
		t.Error("executed")
	}
}

func interactionBody(t *testing.T, payload map[string]any) string {
	t.Helper()
	b, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	return url.Values{"payload": {string(b)}}.Encode()
}

func blockActions(container map[string]any, actions ...map[string]any) map[string]any {
	return map[string]any{
		"type":         "block_actions",
		"user":         map[string]any{"id": "U0CUSTOMER", "username": "cust", "name": "cust", "team_id": "T2"},
		"api_app_id":   "A1",
		"token":        "legacy",
		"container":    container,
		"trigger_id":   "1.2.3",
		"team":         map[string]any{"id": "T1", "domain": "mssp"},
		"channel":      map[string]any{"id": "C0CONTOSO", "name": "contoso"},
		"message":      map[string]any{"type": "message", "ts": container["message_ts"], "text": "card"},
		"response_url": "https://hooks.slack.com/actions/T1/2/secret-token",
		"actions":      actions,
	}
}

func button(actionID, value, blockID string) map[string]any {
	return map[string]any{"action_id": actionID, "block_id": blockID, "value": value, "type": "button",
		"text": map[string]any{"type": "plain_text", "text": "x"}, "action_ts": "1700000001.000001"}
}

func TestClick(t *testing.T) {
	exec := &fakeExec{reply: func(cmd bot.Command) bot.Message {
		return goldenCases()["chooser"]
	}}
	h, rec := newTestHandlers(t, exec)
	payload := blockActions(map[string]any{"type": "message", "message_ts": "1700000000.000001", "channel_id": "C0CONTOSO", "is_ephemeral": false},
		button(bot.ActionResolve, alertID, "abc"))
	w := serve(h.Interactions(), signedRequest("/slack/interactions", interactionBody(t, payload), time.Now()))
	if w.Code != http.StatusOK || w.Body.Len() != 0 {
		t.Fatalf("ack: %d %q", w.Code, w.Body)
	}
	h.Wait()
	cmds := exec.commands()
	want := bot.Command{Platform: "slack", Channel: "slack:C0CONTOSO", User: "U0CUSTOMER", UserName: "cust",
		Origin: bot.OriginClick, Action: bot.ActionResolve, Value: alertID, MessageID: "1700000000.000001"}
	if len(cmds) != 1 || cmds[0] != want {
		t.Fatalf("commands = %+v\nwant %+v", cmds, want)
	}
	posts := rec.all()
	if len(posts) != 1 {
		t.Fatalf("posts = %d", len(posts))
	}
	p := posts[0]
	if p.URL != "https://hooks.slack.com/actions/T1/2/secret-token" || p.Body["response_type"] != "ephemeral" || p.Body["replace_original"] != false {
		t.Errorf("post = %+v", p)
	}
	// the chooser's buttons remember the card they answer
	b, _ := json.Marshal(p.Body["blocks"])
	if !strings.Contains(string(b), `"block_id":"msspbot_origin:1700000000.000001"`) || !strings.Contains(string(b), `"alert_resolve_as"`) {
		t.Errorf("chooser blocks = %s", b)
	}

	// a click on the chooser (an ephemeral message) is checked against the card
	payload = blockActions(map[string]any{"type": "message", "message_ts": "1700000099.000000", "channel_id": "C0CONTOSO", "is_ephemeral": true},
		button(bot.ActionResolveAs, alertID+":falsepositive", "msspbot_origin:1700000000.000001"))
	serve(h.Interactions(), signedRequest("/slack/interactions", interactionBody(t, payload), time.Now()))
	h.Wait()
	cmds = exec.commands()
	if got := cmds[len(cmds)-1]; got.Action != bot.ActionResolveAs || got.Value != alertID+":falsepositive" || got.MessageID != "1700000000.000001" {
		t.Errorf("chooser click = %+v", got)
	}

	// on a public message the block id is not trusted for the message id
	payload = blockActions(map[string]any{"type": "message", "message_ts": "1700000055.000000", "channel_id": "C0CONTOSO"},
		button(bot.ActionAck, alertID, "msspbot_origin:1700000000.000001"))
	serve(h.Interactions(), signedRequest("/slack/interactions", interactionBody(t, payload), time.Now().Add(time.Second)))
	h.Wait()
	cmds = exec.commands()
	if got := cmds[len(cmds)-1]; got.MessageID != "1700000055.000000" {
		t.Errorf("public click message id = %q", got.MessageID)
	}
}

func TestGrantClickOnlyAcknowledged(t *testing.T) {
	exec := &fakeExec{}
	h, rec := newTestHandlers(t, exec)
	payload := blockActions(map[string]any{"type": "message", "message_ts": "1700000000.000001", "channel_id": "C0CONTOSO"},
		map[string]any{"action_id": bot.ActionGrant, "block_id": "b", "type": "button", "text": map[string]any{"type": "plain_text", "text": "Grant access"}})
	if w := serve(h.Interactions(), signedRequest("/slack/interactions", interactionBody(t, payload), time.Now())); w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	h.Wait()
	if len(exec.commands()) != 0 || len(rec.all()) != 0 {
		t.Error("a Grant click did more than acknowledge")
	}
}

func TestBadRequests(t *testing.T) {
	exec := &fakeExec{}
	h, _ := newTestHandlers(t, exec)
	now := time.Now()
	for _, tc := range []struct {
		name    string
		handler http.Handler
		req     *http.Request
		want    int
	}{
		{"interaction without payload", h.Interactions(), signedRequest("/slack/interactions", "a=b", now), http.StatusBadRequest},
		{"interaction bad json", h.Interactions(), signedRequest("/slack/interactions", url.Values{"payload": {"{"}}.Encode(), now), http.StatusBadRequest},
		{"command without channel", h.Commands(), signedRequest("/slack/commands", "command=%2Fmssp&user_id=U1", now), http.StatusBadRequest},
		{"events bad json", h.Events(), signedRequest("/slack/events", "{", now), http.StatusBadRequest},
		{"too large", h.Commands(), signedRequest("/slack/commands", strings.Repeat("a", maxBodyBytes+1), now), http.StatusRequestEntityTooLarge},
		{"GET", h.Commands(), httptest.NewRequest(http.MethodGet, "/slack/commands", nil), http.StatusMethodNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if w := serve(tc.handler, tc.req); w.Code != tc.want {
				t.Errorf("status %d, want %d", w.Code, tc.want)
			}
		})
	}
	h.Wait()
	if len(exec.commands()) != 0 {
		t.Error("executed a bad request")
	}
}

func TestEvents(t *testing.T) {
	h, _ := newTestHandlers(t, &fakeExec{})
	body := `{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`
	w := serve(h.Events(), signedRequest("/slack/events", body, time.Now()))
	var resp map[string]string
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &resp) != nil || resp["challenge"] != "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" {
		t.Errorf("url_verification: %d %s", w.Code, w.Body)
	}
	ev := `{"type":"event_callback","team_id":"T1","api_app_id":"A1","event":{"type":"channel_shared","connected_team_id":"T9","channel":"C0SOC","event_ts":"1.2"},"event_id":"Ev1","event_time":1}`
	if w := serve(h.Events(), signedRequest("/slack/events", ev, time.Now())); w.Code != http.StatusOK {
		t.Errorf("event: %d", w.Code)
	}
}

// The verifier accepts the signature's hex in any case, so an upper-cased
// copy of a request must count as the same request.
func TestReplayWithCaseFlippedSignature(t *testing.T) {
	exec := &fakeExec{}
	h, _ := newTestHandlers(t, exec)
	body := commandBody("ack da1")
	now := time.Now()
	first := signedRequest("/slack/commands", body, now)
	flipped := signedRequest("/slack/commands", body, now)
	flipped.Header.Set("X-Slack-Signature", "v0="+strings.ToUpper(strings.TrimPrefix(first.Header.Get("X-Slack-Signature"), "v0=")))
	for _, req := range []*http.Request{first, flipped} {
		if w := serve(h.Commands(), req); w.Code != http.StatusOK {
			t.Fatalf("status %d", w.Code)
		}
	}
	h.Wait()
	if n := len(exec.commands()); n != 1 {
		t.Fatalf("executed %d times, want 1", n)
	}
}

// Late answers go only to Slack: a response_url elsewhere (a request
// forged with a leaked signing secret, say) gets nothing.
func TestResponseURLMustBeSlack(t *testing.T) {
	cases := []struct {
		url  string
		sent bool
	}{
		{"https://hooks.slack.com/commands/T1/1/x", true},
		{"https://hooks.slack-gov.com/commands/T1/1/x", true},
		{"http://hooks.slack.com/commands/T1/1/x", false},
		{"https://hooks.slack.com.evil.example/commands/T1/1/x", false},
		{"https://evilslack.com/x", false},
		{"https://hooks.slack.com:8443/x", false},
		{"https://user@hooks.slack.com/x", false},
		{"https://127.0.0.1/x", false},
		{"::not a url", false},
	}
	for _, c := range cases {
		t.Run(c.url, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				exec := &fakeExec{delay: 5 * time.Second}
				h, rec := newTestHandlers(t, exec)
				body := strings.Replace(commandBody("alerts"), url.QueryEscape("https://hooks.slack.com/commands/T1/1/secret-token"), url.QueryEscape(c.url), 1)
				if w := serve(h.Commands(), signedRequest("/slack/commands", body, time.Now())); w.Code != http.StatusOK {
					t.Fatalf("ack: %d", w.Code)
				}
				h.Wait()
				if got := len(rec.all()) == 1; got != c.sent {
					t.Errorf("posted = %v, want %v", got, c.sent)
				}
			})
		})
	}
}
