package discord

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/msspbot/msspbot/bot"
)

// defaultRetryAfter is used when a 429 names no wait.
const defaultRetryAfter = time.Second

// exchange records the last HTTP status and Retry-After header of one
// call, which discordgo's errors do not always carry (a 429 whose body is
// not JSON surfaces as a JSON error).
type exchange struct {
	mu         sync.Mutex
	status     int
	retryAfter string
}

func (x *exchange) get() (int, string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.status, x.retryAfter
}

type recordingTransport struct {
	next http.RoundTripper
	x    *exchange
}

func (t recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	next := t.next
	if next == nil {
		next = http.DefaultTransport
	}
	resp, err := next.RoundTrip(r)
	if resp != nil {
		t.x.mu.Lock()
		t.x.status, t.x.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
		t.x.mu.Unlock()
	}
	return resp, err
}

// callOptions are the request options of one notifier call: the caller's
// context, no sleeping on 429, and a recorder of the HTTP exchange.
func callOptions(ctx context.Context, s *discordgo.Session) ([]discordgo.RequestOption, *exchange) {
	x := &exchange{}
	base := s.Client
	if base == nil {
		base = http.DefaultClient
	}
	c := *base
	c.Transport = recordingTransport{next: base.Transport, x: x}
	return []discordgo.RequestOption{
		discordgo.WithContext(ctx),
		discordgo.WithRetryOnRatelimit(false),
		discordgo.WithClient(&c),
	}, x
}

// bucketWait answers a retry-after when discordgo would wait before a
// request on bucketID (the route's bucket is empty, or a global limit is
// on). discordgo waits with time.Sleep, ignoring the context and
// WithRetryOnRatelimit(false), which would stall the dispatcher's round
// and shutdown; a retry-after holds only this channel.
func bucketWait(s *discordgo.Session, bucketID string) error {
	if s.Ratelimiter == nil {
		return nil
	}
	b := s.Ratelimiter.GetBucket(bucketID)
	b.Lock() // the bucket's fields are guarded by it; held by a request in flight
	wait := s.Ratelimiter.GetWaitTime(b, 1)
	b.Unlock()
	if wait <= 0 {
		return nil
	}
	return bot.RetryAfterError(wait, fmt.Errorf("discord: rate limit bucket empty for %s", wait.Round(time.Millisecond)))
}

// restCode returns the HTTP status and Discord JSON error code of err.
func restCode(err error) (status, code int, ok bool) {
	var re *discordgo.RESTError
	if !errors.As(err, &re) || re.Response == nil {
		return 0, 0, false
	}
	if re.Message != nil {
		code = re.Message.Code
	}
	return re.Response.StatusCode, code, true
}

// classify turns a failed Discord call into a *bot.SendError: 429 holds the
// channel for the time Discord names, 5xx and network errors are retried,
// a missing channel, missing access or a refused token are permanent.
func classify(op string, err error, x *exchange) error {
	if err == nil {
		return nil
	}
	err = fmt.Errorf("discord: %s: %w", op, err)
	status, header := 0, ""
	if x != nil {
		status, header = x.get()
	}
	var rl *discordgo.RateLimitError
	if errors.As(err, &rl) || status == http.StatusTooManyRequests {
		d := time.Duration(0)
		if rl != nil && rl.RateLimit != nil && rl.TooManyRequests != nil {
			d = rl.RetryAfter
		}
		if h := parseRetryAfter(header); h > d {
			d = h
		}
		if d <= 0 {
			d = defaultRetryAfter
		}
		return bot.RetryAfterError(d, err)
	}
	if st, code, ok := restCode(err); ok {
		status = st
		switch code {
		case discordgo.ErrCodeUnknownChannel:
			return bot.PermanentError("channel_not_found", err)
		case discordgo.ErrCodeMissingAccess:
			return bot.PermanentError("missing_access", err)
		case discordgo.ErrCodeMissingPermissions:
			return bot.PermanentError("missing_permissions", err)
		case discordgo.ErrCodeUnknownMessage:
			return bot.MessageError("message_not_found", err)
		case discordgo.ErrCodePerformedOperationOnArchivedThread, discordgo.ErrCodeThreadIsLocked:
			return bot.MessageError("thread_locked", err)
		case discordgo.ErrCodeMaximumNumberOfActiveThreadsReached:
			// Clears as threads archive after a day of silence.
			return &bot.SendError{Reason: "too_many_active_threads", Err: err}
		}
	}
	switch {
	case status == http.StatusUnauthorized:
		return bot.PermanentError("token_revoked", err)
	case status == http.StatusForbidden:
		return bot.PermanentError("forbidden", err)
	case status == http.StatusNotFound:
		return bot.PermanentError("not_found", err)
	case status >= 500:
		return &bot.SendError{Reason: "discord_unavailable", Err: err}
	case status >= 400:
		return bot.MessageError("bad_request", err)
	}
	return &bot.SendError{Reason: "network_error", Err: err}
}

// parseRetryAfter reads Retry-After as (fractional) seconds.
func parseRetryAfter(h string) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	f, err := strconv.ParseFloat(h, 64)
	if err != nil || f < 0 {
		return 0
	}
	return time.Duration(f * float64(time.Second))
}
