package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

const testChannel = bot.ChannelRef("slack:C0CONTOSO")

func newTestNotifier(t *testing.T) (*Notifier, *fakeSlack) {
	t.Helper()
	f := newFakeSlack(t)
	n, err := NewNotifier(f.config())
	if err != nil {
		t.Fatal(err)
	}
	return n, f
}

func TestNotifierPostCarriesKeyAndBlocks(t *testing.T) {
	n, f := newTestNotifier(t)
	ctx := context.Background()
	id, err := n.Post(ctx, testChannel, "msspbot-42", cardMessage(testAlert()))
	if err != nil {
		t.Fatal(err)
	}
	msgs := f.messages("C0CONTOSO")
	if len(msgs) != 1 || msgs[0].TS != id {
		t.Fatalf("posted %+v, id %q", msgs, id)
	}
	var md struct {
		EventType    string         `json:"event_type"`
		EventPayload map[string]any `json:"event_payload"`
	}
	if err := json.Unmarshal(msgs[0].Metadata, &md); err != nil {
		t.Fatalf("metadata %s: %v", msgs[0].Metadata, err)
	}
	if md.EventType != MetadataEventType || md.EventPayload["key"] != "msspbot-42" {
		t.Errorf("metadata = %+v", md)
	}
	if !strings.Contains(msgs[0].Text, alertID) || !strings.Contains(string(msgs[0].Blocks), `"alert_ack"`) {
		t.Errorf("message text %q blocks %s", msgs[0].Text, msgs[0].Blocks)
	}
}

func TestNotifierThreadAndEditUseRootTS(t *testing.T) {
	n, f := newTestNotifier(t)
	ctx := context.Background()
	root, err := n.Post(ctx, testChannel, "msspbot-1", cardMessage(testAlert()))
	if err != nil {
		t.Fatal(err)
	}
	line, err := n.Thread(ctx, testChannel, root, bot.Message{Kind: bot.MessageText, Text: "Status New → InProgress by Ana"})
	if err != nil {
		t.Fatal(err)
	}
	a := testAlert()
	a.Status = bot.StatusInProgress
	a.AssignedTo = "analyst1@mssp.example"
	edited := cardMessage(a)
	edited.Card.Key = "msspbot-1"
	if err := n.Edit(ctx, testChannel, root, edited); err != nil {
		t.Fatal(err)
	}

	msgs := f.messages("C0CONTOSO")
	if len(msgs) != 2 {
		t.Fatalf("%d messages", len(msgs))
	}
	if msgs[1].TS != line || msgs[1].ThreadTS != root {
		t.Errorf("thread line %+v, want thread_ts %s", msgs[1], root)
	}
	if msgs[0].TS != root || msgs[0].Edits != 1 || !strings.Contains(string(msgs[0].Blocks), "analyst1@mssp.example") {
		t.Errorf("card after edit: %+v", msgs[0])
	}
	if f.callCount("chat.update") != 1 {
		t.Errorf("chat.update calls = %d", f.callCount("chat.update"))
	}
	// the edit kept the delivery key, so Find still works
	if got, ok, err := n.Find(ctx, testChannel, "msspbot-1"); err != nil || !ok || got != root {
		t.Errorf("Find after edit = %q %v %v", got, ok, err)
	}
}

func TestNotifierFind(t *testing.T) {
	n, _ := newTestNotifier(t)
	ctx := context.Background()
	var want string
	// 450 messages: the wanted card is old enough to need three pages
	for i := range 450 {
		id, err := n.Post(ctx, testChannel, fmt.Sprintf("msspbot-%d", i), bot.Message{Kind: bot.MessageText, Text: "x"})
		if err != nil {
			t.Fatal(err)
		}
		if i == 10 {
			want = id
		}
		// a thread reply with no key in between
		if i%100 == 0 {
			if _, err := n.Thread(ctx, testChannel, id, bot.Message{Kind: bot.MessageText, Text: "line"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, ok, err := n.Find(ctx, testChannel, "msspbot-10")
	if err != nil || !ok || got != want {
		t.Fatalf("Find = %q %v %v, want %q", got, ok, err, want)
	}
	if _, ok, err := n.Find(ctx, testChannel, "msspbot-9999"); err != nil || ok {
		t.Fatalf("Find of a missing key = %v %v", ok, err)
	}
	if _, ok, err := n.Find(ctx, "slack:CEMPTY", "msspbot-1"); err != nil || ok {
		t.Fatalf("Find in an empty channel = %v %v", ok, err)
	}
}

func TestNotifierErrors(t *testing.T) {
	ctx := context.Background()
	msg := bot.Message{Kind: bot.MessageText, Text: "hello"}
	for _, tc := range []struct {
		name       string
		fail       func(http.ResponseWriter)
		permanent  bool
		reason     string
		retryAfter time.Duration
	}{
		{"429", httpStatus(http.StatusTooManyRequests, map[string]string{"Retry-After": "7"}), false, "rate limited", 7 * time.Second},
		{"channel_not_found", slackError("channel_not_found"), true, "channel_not_found", 0},
		{"not_in_channel", slackError("not_in_channel"), true, "not_in_channel", 0},
		{"is_archived", slackError("is_archived"), true, "is_archived", 0},
		{"token_revoked", slackError("token_revoked"), true, "token_revoked", 0},
		{"missing_scope", slackError("missing_scope"), true, "missing_scope", 0},
		{"msg_too_long", slackError("msg_too_long"), true, "msg_too_long", 0},
		{"internal_error", slackError("internal_error"), false, "internal_error", 0},
		{"503", httpStatus(http.StatusServiceUnavailable, nil), false, "http 503", 0},
		{"404", httpStatus(http.StatusNotFound, nil), true, "http 404", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, f := newTestNotifier(t)
			for _, op := range []string{"post", "thread", "edit", "find"} {
				method := map[string]string{"post": "chat.postMessage", "thread": "chat.postMessage", "edit": "chat.update", "find": "conversations.history"}[op]
				f.failNext(method, tc.fail)
				var err error
				switch op {
				case "post":
					_, err = n.Post(ctx, testChannel, "k", msg)
				case "thread":
					_, err = n.Thread(ctx, testChannel, "1700000000.000001", msg)
				case "edit":
					err = n.Edit(ctx, testChannel, "1700000000.000001", msg)
				case "find":
					_, _, err = n.Find(ctx, testChannel, "k")
				}
				var se *bot.SendError
				if !errors.As(err, &se) {
					t.Fatalf("%s: error %v is not a *bot.SendError", op, err)
				}
				if se.Permanent != tc.permanent || se.Reason != tc.reason || se.RetryAfter != tc.retryAfter {
					t.Errorf("%s: got permanent=%v reason=%q retryAfter=%v", op, se.Permanent, se.Reason, se.RetryAfter)
				}
				if strings.Contains(err.Error(), testBotToken) {
					t.Errorf("%s: token in error %q", op, err)
				}
			}
		})
	}
}

func TestNotifierNetworkErrorIsRetryableAndTokenFree(t *testing.T) {
	f := newFakeSlack(t)
	cfg := f.config()
	f.srv.Close()
	n, err := NewNotifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = n.Post(context.Background(), testChannel, "k", bot.Message{Kind: bot.MessageText, Text: "x"})
	var se *bot.SendError
	if !errors.As(err, &se) || se.Permanent {
		t.Fatalf("err = %v, want retryable SendError", err)
	}
	if strings.Contains(err.Error(), testBotToken) {
		t.Errorf("token in error %q", err)
	}
}

func TestNotifierRefusesOtherPlatforms(t *testing.T) {
	n, f := newTestNotifier(t)
	_, err := n.Post(context.Background(), "discord:123", "k", bot.Message{Kind: bot.MessageText, Text: "x"})
	var se *bot.SendError
	if !errors.As(err, &se) || !se.Permanent {
		t.Fatalf("err = %v", err)
	}
	if f.callCount("chat.postMessage") != 0 {
		t.Error("posted to Slack anyway")
	}
}

func TestInvalidTokenIsPermanent(t *testing.T) {
	f := newFakeSlack(t)
	cfg := f.config()
	cfg.BotToken = "xoxb-wrong"
	n, err := NewNotifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = n.Post(context.Background(), testChannel, "k", bot.Message{Kind: bot.MessageText, Text: "x"})
	var se *bot.SendError
	if !errors.As(err, &se) || !se.Permanent || se.Reason != "invalid_auth" {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "xoxb-wrong") {
		t.Errorf("token in error %q", err)
	}
}

func TestScrubHidesSecretsKeepsChain(t *testing.T) {
	base := &bot.SendError{Reason: "x"}
	err := scrub(fmt.Errorf("dial https://x/?t=%s: %w", testBotToken, base), []string{testBotToken})
	if strings.Contains(err.Error(), testBotToken) {
		t.Errorf("secret in %q", err)
	}
	var se *bot.SendError
	if !errors.As(err, &se) {
		t.Error("chain lost")
	}
}

func TestNewNotifierNeedsToken(t *testing.T) {
	if _, err := NewNotifier(Config{}); err == nil {
		t.Error("NewNotifier without a token succeeded")
	}
}
