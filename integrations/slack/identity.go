package slack

import (
	"context"
	"log/slog"
	"sync"
	"time"

	slackapi "github.com/slack-go/slack"
)

// DefaultIdentityTTL is how long a user's e-mail is cached.
const DefaultIdentityTTL = time.Hour

// identityTimeout bounds one users.info call, which runs inside the
// 3-second answer budget of a slash command.
const identityTimeout = time.Second

// Identities looks up a Slack user's e-mail (users.info, profile.email;
// needs users:read.email) for Command.Email, cached per user. soc.identities
// take precedence; the executor applies them.
type Identities struct {
	api    *slackapi.Client
	tokens []string
	ttl    time.Duration
	now    func() time.Time
	log    *slog.Logger

	mu    sync.Mutex
	cache map[string]identity
}

type identity struct {
	email   string
	expires time.Time
}

// NewIdentities returns a resolver using cfg.BotToken; ttl <= 0 means
// DefaultIdentityTTL.
func NewIdentities(cfg Config, ttl time.Duration) (*Identities, error) {
	if cfg.BotToken == "" {
		return nil, errNoBotToken
	}
	if ttl <= 0 {
		ttl = DefaultIdentityTTL
	}
	return &Identities{api: cfg.api(), tokens: secrets(cfg), ttl: ttl, now: time.Now, log: cfg.logger(), cache: map[string]identity{}}, nil
}

// Email returns the user's e-mail, or "" when Slack does not tell (error,
// no scope, bot user). Errors are not cached, so the next command retries.
func (ids *Identities) Email(ctx context.Context, userID string) string {
	if ids == nil || userID == "" {
		return ""
	}
	now := ids.now()
	ids.mu.Lock()
	if c, ok := ids.cache[userID]; ok && now.Before(c.expires) {
		ids.mu.Unlock()
		return c.email
	}
	ids.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, identityTimeout)
	defer cancel()
	u, err := ids.api.GetUserInfoContext(ctx, userID)
	if err != nil {
		ids.log.Warn("slack: users.info failed", "user", userID, "err", slackErrorText(scrub(err, ids.tokens)))
		return ""
	}
	email := u.Profile.Email

	ids.mu.Lock()
	defer ids.mu.Unlock()
	// Drop expired entries now and then so the cache tracks active users only.
	if len(ids.cache) > 1000 {
		for k, c := range ids.cache {
			if !now.Before(c.expires) {
				delete(ids.cache, k)
			}
		}
	}
	ids.cache[userID] = identity{email: email, expires: now.Add(ids.ttl)}
	return email
}

// slackErrorText is a short, token-free description for logs.
func slackErrorText(err error) string {
	if code := slackErrorCode(err); code != "" {
		return code
	}
	return err.Error()
}
