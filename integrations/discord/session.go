package discord

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bwmarrin/discordgo"
)

// Platform is the platform name in bot.Command and bot.ChannelRef.
const Platform = "discord"

// NewSession returns a bot session for REST calls and the gateway.
//
// apiURL overrides Discord's REST base (https://discord.com/api/v9/):
// discordgo computes its endpoint URLs once at start, so the override is
// applied by the HTTP transport instead, which also keeps parallel tests
// apart. client nil means a client with a 20 s timeout. Rate-limited
// requests are not retried by discordgo: callers get the 429 and decide.
func NewSession(token, apiURL string, client *http.Client) (*discordgo.Session, error) {
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, errors.New("discord: empty bot token")
	}
	token = strings.TrimPrefix(token, "Bot ")
	s, err := discordgo.New("Bot " + token)
	if err != nil {
		return nil, fmt.Errorf("discord: new session: %w", err)
	}
	if client == nil {
		client = &http.Client{Timeout: 20 * time.Second}
	}
	if apiURL = strings.TrimSpace(apiURL); apiURL != "" {
		base, err := url.Parse(apiURL)
		if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
			return nil, fmt.Errorf("discord: api_url %q is not an http(s) URL", apiURL)
		}
		if !strings.HasSuffix(base.Path, "/") {
			base.Path += "/"
		}
		c := *client
		c.Transport = &rewriteTransport{base: base, next: client.Transport}
		client = &c
	}
	s.Client = client
	// The dispatcher honours retry-after per channel; discordgo's own
	// unbounded sleep-and-retry would block it.
	s.ShouldRetryOnRateLimit = false
	// Interactions arrive without any intent; nothing else is needed.
	s.Identify.Intents = discordgo.IntentsNone
	return s, nil
}

// rewriteTransport sends requests for Discord's REST API to another base.
type rewriteTransport struct {
	base *url.URL
	next http.RoundTripper
}

func (t *rewriteTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	next := t.next
	if next == nil {
		next = http.DefaultTransport
	}
	full := r.URL.String()
	if !strings.HasPrefix(full, discordgo.EndpointAPI) {
		return next.RoundTrip(r)
	}
	u, err := t.base.Parse(strings.TrimPrefix(full, discordgo.EndpointAPI))
	if err != nil {
		return nil, fmt.Errorf("discord: rewrite %s: %w", r.URL.Path, err)
	}
	r2 := r.Clone(r.Context())
	r2.URL = u
	r2.Host = u.Host
	return next.RoundTrip(r2)
}
