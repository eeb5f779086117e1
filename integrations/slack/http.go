package slack

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	slackapi "github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
)

const (
	// signatureWindow is how old a signed request may be (Slack's and
	// slack-go's five minutes); the replay cache remembers pairs this long.
	signatureWindow = 5 * time.Minute
	// maxBodyBytes bounds a request body; an interaction payload carries the
	// clicked message's blocks, well under this.
	maxBodyBytes = 1 << 20
)

// HTTPHandlers serve Slack's signed HTTP requests (slack.mode: http):
// POST /slack/commands, /slack/interactions and /slack/events.
type HTTPHandlers struct {
	r      *receiver
	secret string
	replay *replayCache
}

// NewHTTPHandlers returns the handlers for cfg; an empty signing secret is
// an error, never "accept everything".
func NewHTTPHandlers(cfg Config, exec Executor, opts ...Option) (*HTTPHandlers, error) {
	if cfg.SigningSecret == "" {
		return nil, errors.New("slack: signing_secret is required in http mode")
	}
	if exec == nil {
		return nil, errors.New("slack: executor is required")
	}
	return &HTTPHandlers{
		r:      newReceiver(cfg, exec, opts),
		secret: cfg.SigningSecret,
		replay: &replayCache{seen: map[string]time.Time{}},
	}, nil
}

// Wait blocks until every command and late answer started by the handlers
// has finished; call it on shutdown after the HTTP server has stopped.
func (h *HTTPHandlers) Wait() { h.r.wait() }

// Commands handles slash commands. The answer comes in the response body
// when the executor finishes within the budget; otherwise the request is
// acknowledged at once and answered through response_url.
func (h *HTTPHandlers) Commands() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, ok := h.verify(w, req)
		if !ok {
			return
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		sc, err := slackapi.SlashCommandParse(req)
		if err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		if req.PostForm.Get("ssl_check") == "1" {
			w.WriteHeader(http.StatusOK)
			return
		}
		if sc.ChannelID == "" || sc.UserID == "" {
			http.Error(w, "missing channel or user", http.StatusBadRequest)
			return
		}
		msg := h.r.slash(req.Context(), sc)
		if msg == nil {
			w.WriteHeader(http.StatusOK)
			return
		}
		writeJSON(w, msg)
	})
}

// Interactions handles block_actions (button clicks): acknowledged at
// once, executed in the background, answered through response_url.
func (h *HTTPHandlers) Interactions() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, ok := h.verify(w, req)
		if !ok {
			return
		}
		form, err := url.ParseQuery(string(body))
		if err != nil || form.Get("payload") == "" {
			http.Error(w, "missing payload", http.StatusBadRequest)
			return
		}
		var ic slackapi.InteractionCallback
		if err := json.Unmarshal([]byte(form.Get("payload")), &ic); err != nil {
			http.Error(w, "bad payload", http.StatusBadRequest)
			return
		}
		h.r.interaction(req.Context(), ic)
		w.WriteHeader(http.StatusOK)
	})
}

// Events handles the Events API: url_verification is answered with its
// challenge; other events are acknowledged (the bot acts on none yet).
func (h *HTTPHandlers) Events() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, ok := h.verify(w, req)
		if !ok {
			return
		}
		if !json.Valid(body) {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		ev, err := slackevents.ParseEvent(body, slackevents.OptionNoVerifyToken())
		if err == nil && ev.Type == slackevents.URLVerification {
			if v, ok := ev.Data.(*slackevents.EventsAPIURLVerificationEvent); ok {
				writeJSON(w, map[string]string{"challenge": v.Challenge})
				return
			}
		}
		w.WriteHeader(http.StatusOK)
	})
}

// verify reads the body and checks the signature, the timestamp window and
// replays. It answers the request itself and returns false when the caller
// must not act: 401 for a bad signature, 200 for a replay or a Slack retry
// (the first delivery was already acted on).
func (h *HTTPHandlers) verify(w http.ResponseWriter, req *http.Request) ([]byte, bool) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
			return nil, false
		}
		http.Error(w, "bad request", http.StatusBadRequest)
		return nil, false
	}
	sv, err := slackapi.NewSecretsVerifier(req.Header, h.secret)
	if err == nil {
		_, _ = sv.Write(body)
		err = sv.Ensure()
	}
	if err != nil {
		h.r.log.Warn("slack: request refused", "path", req.URL.Path, "reason", verifyReason(err))
		http.Error(w, "invalid signature", http.StatusUnauthorized)
		return nil, false
	}
	ts, sig := req.Header.Get("X-Slack-Request-Timestamp"), req.Header.Get("X-Slack-Signature")
	if h.replay.seenBefore(ts, sig) {
		h.r.log.Info("slack: replayed request acknowledged, not acted on", "path", req.URL.Path)
		w.WriteHeader(http.StatusOK)
		return nil, false
	}
	if n := req.Header.Get("X-Slack-Retry-Num"); n != "" {
		h.r.log.Info("slack: retry acknowledged, not acted on", "path", req.URL.Path,
			"retry", n, "reason", req.Header.Get("X-Slack-Retry-Reason"))
		w.WriteHeader(http.StatusOK)
		return nil, false
	}
	return body, true
}

func verifyReason(err error) string {
	switch {
	case errors.Is(err, slackapi.ErrMissingHeaders):
		return "missing headers"
	case errors.Is(err, slackapi.ErrExpiredTimestamp):
		return "stale timestamp"
	case errors.Is(err, slackapi.ErrInvalidSignature):
		return "wrong signature"
	}
	return "malformed signature headers"
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// replayCache remembers verified (timestamp, signature) pairs for as long
// as the timestamp would pass the verifier.
type replayCache struct {
	mu        sync.Mutex
	seen      map[string]time.Time // key -> forget after
	lastPrune time.Time
}

// seenBefore records the pair and reports whether it was already there.
func (c *replayCache) seenBefore(ts, sig string) bool {
	now := time.Now() // the verifier reads the real clock too
	// Hex is case-insensitive to the verifier, so the key must be too:
	// otherwise an upper-cased copy of a signature would replay.
	key := ts + "\x00" + strings.ToLower(sig)
	c.mu.Lock()
	defer c.mu.Unlock()
	if exp, ok := c.seen[key]; ok && now.Before(exp) {
		return true
	}
	if now.Sub(c.lastPrune) > signatureWindow {
		for k, exp := range c.seen {
			if !now.Before(exp) {
				delete(c.seen, k)
			}
		}
		c.lastPrune = now
	}
	// The verifier accepts a timestamp up to the window on either side of
	// now; after ts+window (or now+window, whichever is later) it is stale.
	forget := now.Add(signatureWindow + time.Minute)
	if t, err := parseUnix(ts); err == nil && t.Add(signatureWindow+time.Minute).After(forget) {
		forget = t.Add(signatureWindow + time.Minute)
	}
	c.seen[key] = forget
	return false
}

func parseUnix(s string) (time.Time, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(n, 0), nil
}
