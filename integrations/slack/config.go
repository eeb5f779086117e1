package slack

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/msspbot/msspbot/bot"
)

// Platform is the platform name in bot.Command and bot.ChannelRef.
const Platform = "slack"

// DefaultCommand is the slash command used when Config.Command is empty.
const DefaultCommand = "/mssp"

// Config is the slack section of the configuration.
type Config struct {
	BotToken      string   // xoxb-…: Web API (posts, users.info, conversations.*)
	SigningSecret string   // http mode: verifies requests from Slack
	AppToken      string   // socket mode: xapp-… with connections:write
	APIURL        string   // "" = https://slack.com/api/
	Command       string   // "" = /mssp
	SOCChannels   []string // soc.channels as configured ("slack:C…" or "C…"); other platforms are ignored
	// HTTPClient is used for the Web API and, unless WithResponseClient is
	// given, for response_url posts (nil: a client with a 30 s timeout).
	HTTPClient *http.Client
	Logger     *slog.Logger // nil: slog.Default()
}

// Executor runs one command or click and returns the reply for the asker.
// bot.Service implements it.
type Executor interface {
	Execute(ctx context.Context, cmd bot.Command) bot.Message
}

func (c Config) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

func (c Config) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return &http.Client{Timeout: 30 * time.Second}
}

func (c Config) command() string {
	cmd := strings.ToLower(strings.TrimSpace(c.Command))
	if cmd == "" {
		return DefaultCommand
	}
	if !strings.HasPrefix(cmd, "/") {
		cmd = "/" + cmd
	}
	return cmd
}

// apiURL returns the Web API base with the trailing slash slack-go expects.
func (c Config) apiURL() string {
	u := strings.TrimSpace(c.APIURL)
	if u == "" {
		return slackapi.APIURL
	}
	if !strings.HasSuffix(u, "/") {
		u += "/"
	}
	return u
}

// api returns a Web API client for the bot token (and the app token when
// set, which Socket Mode needs for apps.connections.open).
func (c Config) api() *slackapi.Client {
	opts := []slackapi.Option{
		slackapi.OptionAPIURL(c.apiURL()),
		slackapi.OptionHTTPClient(c.httpClient()),
	}
	if c.AppToken != "" {
		opts = append(opts, slackapi.OptionAppLevelToken(c.AppToken))
	}
	return slackapi.New(c.BotToken, opts...)
}

// socChannelIDs returns the Slack channel ids among the configured SOC
// channels.
func (c Config) socChannelIDs() []string {
	var ids []string
	for _, ch := range c.SOCChannels {
		ch = strings.TrimSpace(ch)
		if ch == "" {
			continue
		}
		if p, id, ok := strings.Cut(ch, ":"); ok {
			if p != Platform || id == "" {
				continue
			}
			ch = id
		}
		ids = append(ids, ch)
	}
	return ids
}

var errNoBotToken = errors.New("slack: bot_token is required")

// Option adjusts the HTTP handlers or the Socket Mode runner.
type Option func(*receiver)

// WithIdentities fills Command.Email from users.info (cached).
func WithIdentities(ids *Identities) Option {
	return func(r *receiver) { r.ids = ids }
}

// WithGuard refuses commands and clicks in a SOC channel that g has found
// shared with another organisation, or not verified yet: their answers
// can show every tenant's alerts.
func WithGuard(g *Guard) Option {
	return func(r *receiver) { r.guard = g }
}

// WithReplyBudget sets how long a slash command may run before it is
// acknowledged and answered later through response_url (default 2.5 s;
// Slack wants an answer within 3 s).
func WithReplyBudget(d time.Duration) Option {
	return func(r *receiver) {
		if d > 0 {
			r.budget = d
		}
	}
}

// WithExecTimeout bounds one command's execution (default 30 s).
func WithExecTimeout(d time.Duration) Option {
	return func(r *receiver) {
		if d > 0 {
			r.execTimeout = d
		}
	}
}

// WithResponseClient sets the client for response_url posts (default:
// Config.HTTPClient).
func WithResponseClient(c *http.Client) Option {
	return func(r *receiver) {
		if c != nil {
			r.client = c
		}
	}
}
