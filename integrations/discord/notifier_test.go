package discord

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

func line(text string) bot.Message { return bot.Message{Kind: bot.MessageText, Text: text} }

func TestPostCarriesNonceAndKey(t *testing.T) {
	f := newFakeDiscord(t)
	n := NewNotifier(f.session(), nil)
	ctx := context.Background()
	id, err := n.Post(ctx, "discord:500", "msspbot-7", cardMessage(testAlert()))
	if err != nil {
		t.Fatal(err)
	}
	posts := f.reqs("POST", "/api/v9/channels/500/messages")
	if len(posts) != 1 {
		t.Fatalf("posts = %d", len(posts))
	}
	var body struct {
		Nonce        string `json:"nonce"`
		EnforceNonce bool   `json:"enforce_nonce"`
	}
	if err := json.Unmarshal(posts[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Nonce != "msspbot-7" || !body.EnforceNonce {
		t.Errorf("nonce = %q enforce = %v", body.Nonce, body.EnforceNonce)
	}
	if got := posts[0].Header.Get("Authorization"); got != "Bot test-token" {
		t.Errorf("authorization = %q", got)
	}
	// A retried post with the same nonce gets the same message back.
	id2, err := n.Post(ctx, "discord:500", "msspbot-7", cardMessage(testAlert()))
	if err != nil || id2 != id {
		t.Errorf("repost = %q, %v; want %q", id2, err, id)
	}
	if got := len(f.channelMessages("500")); got != 1 {
		t.Errorf("messages in channel = %d, want 1", got)
	}
}

func TestPostLongKeyHasNoNonce(t *testing.T) {
	f := newFakeDiscord(t)
	n := NewNotifier(f.session(), nil)
	key := bot.DeliveryKey(1234567890123456789) // 27 characters
	if _, err := n.Post(context.Background(), "discord:500", key, cardMessage(testAlert())); err != nil {
		t.Fatal(err)
	}
	body := string(f.reqs("POST", "/api/v9/channels/500/messages")[0].Body)
	if strings.Contains(body, `"nonce"`) || strings.Contains(body, "enforce_nonce") {
		t.Errorf("nonce sent for a %d-character key: %s", len(key), body)
	}
	if !strings.Contains(body, key) {
		t.Error("key missing from the footer")
	}
}

func TestThreadCreatedOnceThenLines(t *testing.T) {
	f := newFakeDiscord(t)
	n := NewNotifier(f.session(), nil)
	ctx := context.Background()
	root, err := n.Post(ctx, "discord:500", "msspbot-1", cardMessage(testAlert()))
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"Status New → InProgress by alice", "Comment by bob: *looking*"} {
		if _, err := n.Thread(ctx, "discord:500", root, line(text)); err != nil {
			t.Fatal(err)
		}
	}
	starts := f.reqs("POST", "/api/v9/channels/500/messages/"+root+"/threads")
	if len(starts) != 1 {
		t.Fatalf("thread starts = %d, want 1", len(starts))
	}
	var ts struct {
		Name                string `json:"name"`
		AutoArchiveDuration int    `json:"auto_archive_duration"`
	}
	json.Unmarshal(starts[0].Body, &ts)
	if ts.Name != "🔴 Suspicious access to LSASS service" || ts.AutoArchiveDuration != 1440 {
		t.Errorf("thread start = %+v", ts)
	}
	lines := f.channelMessages(root) // the thread has the root's id
	if len(lines) != 2 {
		t.Fatalf("lines in thread = %d, want 2", len(lines))
	}
	if lines[1]["content"] != `Comment by bob: \*looking\*` {
		t.Errorf("line = %v", lines[1]["content"])
	}
}

func TestThreadAlreadyExists(t *testing.T) {
	// After a restart the notifier does not know the thread: Discord's
	// 160004 means it exists, and the line goes there.
	f := newFakeDiscord(t)
	ctx := context.Background()
	root, err := NewNotifier(f.session(), nil).Post(ctx, "discord:500", "msspbot-1", cardMessage(testAlert()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewNotifier(f.session(), nil).Thread(ctx, "discord:500", root, line("first")); err != nil {
		t.Fatal(err)
	}
	n2 := NewNotifier(f.session(), nil)
	if _, err := n2.Thread(ctx, "discord:500", root, line("second")); err != nil {
		t.Fatalf("thread after restart: %v", err)
	}
	if got := len(f.channelMessages(root)); got != 2 {
		t.Errorf("lines = %d, want 2", got)
	}
	// The restarted notifier named nothing new; the first name came from
	// the root's embed title read back.
	starts := f.reqs("POST", "/api/v9/channels/500/messages/"+root+"/threads")
	if len(starts) != 2 {
		t.Fatalf("thread starts = %d", len(starts))
	}
	if !strings.Contains(string(starts[0].Body), "Suspicious access to LSASS service") {
		t.Errorf("thread name from the root's title: %s", starts[0].Body)
	}
}

func TestThreadMissingRoot(t *testing.T) {
	f := newFakeDiscord(t)
	n := NewNotifier(f.session(), nil)
	_, err := n.Thread(context.Background(), "discord:500", "999", line("x"))
	var se *bot.SendError
	if !errors.As(err, &se) || !se.Permanent || se.Reason != "message_not_found" {
		t.Fatalf("err = %v, want permanent message_not_found", err)
	}
	if _, err := n.Thread(context.Background(), "discord:500", "", line("x")); err == nil {
		t.Error("thread without a root accepted")
	}
}

func TestEdit(t *testing.T) {
	f := newFakeDiscord(t)
	n := NewNotifier(f.session(), nil)
	ctx := context.Background()
	id, err := n.Post(ctx, "discord:500", "msspbot-1", cardMessage(testAlert()))
	if err != nil {
		t.Fatal(err)
	}
	a := testAlert()
	a.Status = bot.StatusInProgress
	a.AssignedTo = "analyst1@mssp.example"
	m := cardMessage(a)
	m.Card.Key = "msspbot-1"
	if err := n.Edit(ctx, "discord:500", id, m); err != nil {
		t.Fatal(err)
	}
	edits := f.reqs("PATCH", "/api/v9/channels/500/messages/"+id)
	if len(edits) != 1 {
		t.Fatalf("edits = %d", len(edits))
	}
	body := string(edits[0].Body)
	for _, want := range []string{"InProgress · analyst1@mssp.example", `"components":[{`, "alert_ack:" + alertID, `"footer":{"text":"msspbot-1"}`} {
		if !strings.Contains(body, want) {
			t.Errorf("edit body lacks %q: %s", want, body)
		}
	}
	// An edit that drops the buttons sends an empty list, which removes them.
	m.Buttons = []bot.Button{}
	if err := n.Edit(ctx, "discord:500", id, m); err != nil {
		t.Fatal(err)
	}
	if body := string(f.reqs("PATCH", "/api/v9/channels/500/messages/"+id)[1].Body); !strings.Contains(body, `"components":[]`) {
		t.Errorf("buttons not removed: %s", body)
	}
	err = n.Edit(ctx, "discord:500", "404404", m)
	var se *bot.SendError
	if !errors.As(err, &se) || !se.Permanent {
		t.Errorf("edit of a missing message: %v, want permanent", err)
	}
}

func TestFindByFooterKey(t *testing.T) {
	f := newFakeDiscord(t)
	n := NewNotifier(f.session(), nil)
	ctx := context.Background()
	var want string
	for i, key := range []string{"msspbot-1", "msspbot-2", "msspbot-3"} {
		id, err := n.Post(ctx, "discord:500", key, cardMessage(testAlert()))
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			want = id
		}
		n.Thread(ctx, "discord:500", id, line("noise")) // lines go elsewhere
	}
	got, found, err := n.Find(ctx, "discord:500", "msspbot-2")
	if err != nil || !found || got != want {
		t.Errorf("Find = %q, %v, %v; want %q", got, found, err, want)
	}
	if q := f.reqs("GET", "/api/v9/channels/500/messages"); len(q) == 0 || q[len(q)-1].Query != "limit=50" {
		t.Errorf("history query = %+v", q)
	}
	if _, found, err := n.Find(ctx, "discord:500", "msspbot-22"); found || err != nil {
		t.Errorf("Find of a missing key = %v, %v", found, err)
	}
}

func TestSendErrors(t *testing.T) {
	cases := []struct {
		name       string
		status     int
		body       string
		header     map[string]string
		permanent  bool
		reason     string
		retryAfter time.Duration
	}{
		{"429 body", 429, `{"message":"You are being rate limited.","retry_after":2.5,"global":false}`, nil, false, "rate limited", 2500 * time.Millisecond},
		{"429 header", 429, `{"message":"You are being rate limited.","retry_after":0}`, map[string]string{"Retry-After": "7"}, false, "rate limited", 7 * time.Second},
		{"429 not json", 429, `<html>slow down</html>`, map[string]string{"Retry-After": "3"}, false, "rate limited", 3 * time.Second},
		{"unknown channel", 404, `{"message":"Unknown Channel","code":10003}`, nil, true, "channel_not_found", 0},
		{"missing access", 403, `{"message":"Missing Access","code":50001}`, nil, true, "missing_access", 0},
		{"missing permissions", 403, `{"message":"Missing Permissions","code":50013}`, nil, true, "missing_permissions", 0},
		{"unauthorized", 401, `{"message":"401: Unauthorized","code":0}`, nil, true, "token_revoked", 0},
		{"thread locked", 403, `{"message":"Thread is locked","code":160005}`, nil, true, "thread_locked", 0},
		{"too many threads", 400, `{"message":"Maximum number of active threads reached","code":160006}`, nil, false, "too_many_active_threads", 0},
		{"bad request", 400, `{"message":"Invalid Form Body","code":50035}`, nil, true, "bad_request", 0},
		{"server error", 500, `{"message":"oops"}`, nil, false, "discord_unavailable", 0},
		{"bad gateway", 502, `bad gateway`, nil, false, "discord_unavailable", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeDiscord(t)
			s := f.session()
			s.MaxRestRetries = 0
			n := NewNotifier(s, nil)
			f.failNext("POST /api/v9/channels/500/messages", tc.status, tc.body, tc.header, 0)
			_, err := n.Post(context.Background(), "discord:500", "msspbot-1", cardMessage(testAlert()))
			var se *bot.SendError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want *bot.SendError", err)
			}
			if se.Permanent != tc.permanent || se.Reason != tc.reason || se.RetryAfter != tc.retryAfter {
				t.Errorf("got permanent=%v reason=%q retryAfter=%v; want %v %q %v", se.Permanent, se.Reason, se.RetryAfter, tc.permanent, tc.reason, tc.retryAfter)
			}
			if strings.Contains(err.Error(), "test-token") {
				t.Errorf("error leaks the token: %v", err)
			}
		})
	}
}

func TestRateLimitDoesNotSleep(t *testing.T) {
	// discordgo would sleep and retry forever; the dispatcher must get the
	// 429 at once.
	f := newFakeDiscord(t)
	n := NewNotifier(f.session(), nil)
	f.failNext("POST /api/v9/channels/500/messages", 429, `{"message":"rate limited","retry_after":30}`, nil, 1)
	start := time.Now()
	_, err := n.Post(context.Background(), "discord:500", "msspbot-1", cardMessage(testAlert()))
	var se *bot.SendError
	if !errors.As(err, &se) || se.RetryAfter != 30*time.Second {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("post took %v", d)
	}
	if got := len(f.reqs("POST", "/api/v9/channels/500/messages")); got != 1 {
		t.Errorf("requests = %d, want 1", got)
	}
}

// An answer that empties the route's bucket (X-RateLimit-Remaining: 0)
// makes discordgo sleep before the next request, ignoring the context and
// WithRetryOnRatelimit(false). The notifier answers a retry-after at once
// instead, for that channel only.
func TestEmptyBucketAnswersRetryAfter(t *testing.T) {
	f := newFakeDiscord(t)
	n := NewNotifier(f.session(), nil)
	f.mux.HandleFunc("POST /api/v9/channels/600/messages", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-RateLimit-Bucket", "abc")
		w.Header().Set("X-RateLimit-Limit", "5")
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset-After", "4")
		f.postMessage(w, r)
	})
	if _, err := n.Post(context.Background(), "discord:600", "msspbot-1", cardMessage(testAlert())); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := n.Post(context.Background(), "discord:600", "msspbot-2", cardMessage(testAlert()))
	if d := time.Since(start); d > time.Second {
		t.Errorf("post to an empty bucket took %v", d.Round(time.Millisecond))
	}
	var se *bot.SendError
	if !errors.As(err, &se) || se.Permanent || se.RetryAfter <= 2*time.Second || se.RetryAfter > 4*time.Second {
		t.Fatalf("err = %v, want a retry-after of about 4s", err)
	}
	if got := len(f.reqs("POST", "/api/v9/channels/600/messages")); got != 1 {
		t.Errorf("requests = %d, want 1: the held post must not be sent", got)
	}
	// Another channel's bucket is unaffected.
	if _, err := n.Post(context.Background(), "discord:601", "msspbot-3", cardMessage(testAlert())); err != nil {
		t.Fatalf("other channel: %v", err)
	}
}

func TestThreadErrors(t *testing.T) {
	f := newFakeDiscord(t)
	n := NewNotifier(f.session(), nil)
	ctx := context.Background()
	root, err := n.Post(ctx, "discord:500", "msspbot-1", cardMessage(testAlert()))
	if err != nil {
		t.Fatal(err)
	}
	f.failNext("POST /api/v9/channels/500/messages/"+root+"/threads", 403, `{"message":"Missing Permissions","code":50013}`, nil, 1)
	_, err = n.Thread(ctx, "discord:500", root, line("x"))
	var se *bot.SendError
	if !errors.As(err, &se) || !se.Permanent || se.Reason != "missing_permissions" {
		t.Fatalf("err = %v", err)
	}
	// Next time it works, and a 429 on the line itself is a retry-after.
	f.failNext("POST /api/v9/channels/"+root+"/messages", 429, `{"retry_after":1.5}`, nil, 1)
	_, err = n.Thread(ctx, "discord:500", root, line("x"))
	if !errors.As(err, &se) || se.Permanent || se.RetryAfter != 1500*time.Millisecond {
		t.Fatalf("err = %v", err)
	}
	if _, err := n.Thread(ctx, "discord:500", root, line("x")); err != nil {
		t.Fatal(err)
	}
}

func TestThreadDeletedIsRecreated(t *testing.T) {
	f := newFakeDiscord(t)
	n := NewNotifier(f.session(), nil)
	ctx := context.Background()
	root, _ := n.Post(ctx, "discord:500", "msspbot-1", cardMessage(testAlert()))
	if _, err := n.Thread(ctx, "discord:500", root, line("one")); err != nil {
		t.Fatal(err)
	}
	// A moderator deletes the thread.
	f.mu.Lock()
	delete(f.threads, root)
	f.mu.Unlock()
	if _, err := n.Thread(ctx, "discord:500", root, line("two")); err != nil {
		t.Fatalf("line after the thread was deleted: %v", err)
	}
	if got := len(f.reqs("POST", "/api/v9/channels/500/messages/"+root+"/threads")); got != 2 {
		t.Errorf("thread starts = %d, want 2", got)
	}
}

func TestWrongPlatform(t *testing.T) {
	n := NewNotifier(newFakeDiscord(t).session(), nil)
	_, err := n.Post(context.Background(), "slack:C1", "k", line("x"))
	var se *bot.SendError
	if !errors.As(err, &se) || !se.Permanent {
		t.Errorf("err = %v", err)
	}
}

func TestNewSessionRefusesBadInput(t *testing.T) {
	if _, err := NewSession("", "", nil); err == nil {
		t.Error("empty token accepted")
	}
	if _, err := NewSession("t", "ftp://x", nil); err == nil {
		t.Error("ftp api_url accepted")
	}
	s, err := NewSession("Bot abc", "", nil)
	if err != nil || s.Token != "Bot abc" || s.ShouldRetryOnRateLimit {
		t.Errorf("session = %q retry=%v, %v", s.Token, s.ShouldRetryOnRateLimit, err)
	}
}
