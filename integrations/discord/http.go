package discord

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"
)

const (
	// signatureWindow is how far X-Signature-Timestamp may be from now.
	signatureWindow = 5 * time.Minute
	// maxBody bounds an interaction request; real ones are a few KB.
	maxBody = 1 << 20
	// tokenLifetime is how long Discord accepts answers to an interaction.
	tokenLifetime = 15 * time.Minute
)

// ParsePublicKey decodes the application's public key as the Developer
// Portal shows it (64 hex digits).
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("discord: public key is not hex: %w", err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("discord: public key has %d bytes, want %d", len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// InteractionsHandler returns the handler of POST /discord/interactions
// (discord.mode: http). Each request must carry a valid Ed25519 signature
// of the application's key over a timestamp within 5 minutes and the body;
// a signature seen before is refused. Refusals are 401 and run nothing.
func InteractionsHandler(publicKey ed25519.PublicKey, h *Interactions) (http.Handler, error) {
	if len(publicKey) != ed25519.PublicKeySize || bytes.Equal(publicKey, make([]byte, ed25519.PublicKeySize)) {
		return nil, errors.New("discord: interactions handler needs the application's public key")
	}
	if h == nil || h.Executor == nil || h.Session == nil {
		return nil, errors.New("discord: interactions handler needs an executor and a session")
	}
	return &interactionsHandler{key: publicKey, h: h, now: time.Now, seen: map[string]time.Time{}}, nil
}

type interactionsHandler struct {
	key ed25519.PublicKey
	h   *Interactions
	now func() time.Time

	mu        sync.Mutex
	seen      map[string]time.Time // signature -> when it stops being fresh
	lastPurge time.Time
}

func (hd *interactionsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	now := hd.now()
	ts, err := strconv.ParseInt(r.Header.Get("X-Signature-Timestamp"), 10, 64)
	if err != nil || absDuration(now.Sub(time.Unix(ts, 0))) > signatureWindow {
		hd.refuse(w, "missing or stale timestamp")
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if !discordgo.VerifyInteraction(r, hd.key) {
		hd.refuse(w, "bad signature")
		return
	}
	if !hd.firstUse(strings.ToLower(r.Header.Get("X-Signature-Ed25519")), time.Unix(ts, 0).Add(signatureWindow), now) {
		hd.refuse(w, "replayed signature")
		return
	}
	var i discordgo.Interaction
	if err := json.Unmarshal(body, &i); err != nil {
		http.Error(w, "bad interaction", http.StatusBadRequest)
		return
	}
	hd.h.seedChannel(body)
	resp, followUp := hd.h.HandleInteraction(r.Context(), &i)
	out, err := responseJSON(resp)
	if err != nil {
		hd.h.log().Error("discord: encode interaction response", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if _, err := w.Write(out); err != nil {
		hd.h.log().Warn("discord: write interaction response", "err", err)
	}
	if followUp != nil {
		// The deferred response must reach Discord before its edit.
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), tokenLifetime)
			defer cancel()
			followUp(ctx)
		}()
	}
}

func (hd *interactionsHandler) refuse(w http.ResponseWriter, why string) {
	hd.h.log().Debug("discord: refused interaction request", "reason", why)
	http.Error(w, "invalid request signature", http.StatusUnauthorized)
}

// firstUse records a verified signature and reports whether it is new.
// Entries expire with their timestamp's window, after which the timestamp
// check refuses the request anyway.
func (hd *interactionsHandler) firstUse(sig string, until, now time.Time) bool {
	hd.mu.Lock()
	defer hd.mu.Unlock()
	if now.Sub(hd.lastPurge) > time.Minute {
		for k, t := range hd.seen {
			if now.After(t) {
				delete(hd.seen, k)
			}
		}
		hd.lastPurge = now
	}
	if _, dup := hd.seen[sig]; dup {
		return false
	}
	hd.seen[sig] = until
	return true
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
