package slack

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

// syncBuffer is a log sink safe for the goroutines that write to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Secrets never reach the log: refused requests, failed posts, failed
// response_url posts, a refused app token.
func TestNoSecretsInLogs(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := newFakeSlack(t)
	cfg := f.config()
	cfg.Logger = log
	cfg.SigningSecret = testSecret

	// refused and accepted HTTP requests; the answer's response_url fails
	failing := &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
		return nil, context.DeadlineExceeded
	})}
	h, err := NewHTTPHandlers(cfg, &fakeExec{delay: 50 * time.Millisecond}, WithReplyBudget(time.Millisecond), WithResponseClient(failing))
	if err != nil {
		t.Fatal(err)
	}
	bad := signedRequest("/slack/commands", commandBody("x"), time.Now())
	bad.Header.Set("X-Slack-Signature", sign("wrong", "1", "x"))
	serve(h.Commands(), bad)
	serve(h.Commands(), signedRequest("/slack/commands", commandBody("alerts"), time.Now()))
	h.Wait()

	// a failed post and a failed users.info
	n, _ := NewNotifier(cfg)
	f.failNext("chat.postMessage", slackError("invalid_auth"))
	_, _ = n.Post(context.Background(), testChannel, "k", bot.Message{Kind: bot.MessageText, Text: "x"})
	ids, _ := NewIdentities(cfg, 0)
	ids.Email(context.Background(), "UNKNOWN")

	// a refused app token
	cfg.AppToken = "xapp-1-refused"
	rn, _ := NewRunner(cfg, &fakeExec{})
	_ = rn.Run(context.Background())

	out := logs.String()
	if !strings.Contains(out, "response_url failed") || !strings.Contains(out, "request refused") {
		t.Fatalf("expected log lines missing:\n%s", out)
	}
	for _, secret := range []string{testBotToken, "xapp-1-refused", testSecret, "secret-token"} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
