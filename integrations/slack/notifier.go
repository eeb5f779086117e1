package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	slackapi "github.com/slack-go/slack"

	"github.com/msspbot/msspbot/bot"
)

// MetadataEventType is the event_type of the message metadata that carries
// a card's delivery key, so that a card can be found after a crash.
const MetadataEventType = "msspbot_delivery"

// findPages bounds the history scanned by Find: crash recovery runs right
// after a restart, so the card, if posted, is among the newest messages.
const (
	findPages    = 5
	findPageSize = 200
)

// Notifier implements bot.Notifier with the Slack Web API.
type Notifier struct {
	api    *slackapi.Client
	tokens []string // scrubbed from every error
	log    *slog.Logger
}

// NewNotifier returns a Notifier for cfg.BotToken against cfg.APIURL.
func NewNotifier(cfg Config) (*Notifier, error) {
	if cfg.BotToken == "" {
		return nil, errNoBotToken
	}
	return &Notifier{api: cfg.api(), tokens: secrets(cfg), log: cfg.logger()}, nil
}

// Post implements bot.Notifier: chat.postMessage with the delivery key in
// the message metadata.
func (n *Notifier) Post(ctx context.Context, ch bot.ChannelRef, key string, m bot.Message) (string, error) {
	id, err := channelID(ch)
	if err != nil {
		return "", err
	}
	opts := messageOptions(m)
	if key != "" {
		opts = append(opts, slackapi.MsgOptionMetadata(deliveryMetadata(key)))
	}
	_, ts, err := n.api.PostMessageContext(ctx, id, opts...)
	if err != nil {
		return "", n.sendError("chat.postMessage", err)
	}
	return ts, nil
}

// Thread implements bot.Notifier: a reply in the thread of rootID.
func (n *Notifier) Thread(ctx context.Context, ch bot.ChannelRef, rootID string, m bot.Message) (string, error) {
	id, err := channelID(ch)
	if err != nil {
		return "", err
	}
	if rootID == "" {
		return "", bot.MessageError("no thread root", nil)
	}
	opts := append(messageOptions(m), slackapi.MsgOptionTS(rootID))
	_, ts, err := n.api.PostMessageContext(ctx, id, opts...)
	if err != nil {
		return "", n.sendError("chat.postMessage (thread)", err)
	}
	return ts, nil
}

// Edit implements bot.Notifier: chat.update of the message with ts
// messageID. A card keeps its delivery key in the metadata.
func (n *Notifier) Edit(ctx context.Context, ch bot.ChannelRef, messageID string, m bot.Message) error {
	id, err := channelID(ch)
	if err != nil {
		return err
	}
	opts := messageOptions(m)
	if m.Card != nil && m.Card.Key != "" {
		opts = append(opts, slackapi.MsgOptionMetadata(deliveryMetadata(m.Card.Key)))
	}
	if _, _, _, err := n.api.UpdateMessageContext(ctx, id, messageID, opts...); err != nil {
		return n.sendError("chat.update", err)
	}
	return nil
}

// Find implements bot.Notifier: it scans the channel's recent history
// (conversations.history with include_all_metadata) for a message whose
// metadata carries key.
func (n *Notifier) Find(ctx context.Context, ch bot.ChannelRef, key string) (string, bool, error) {
	id, err := channelID(ch)
	if err != nil {
		return "", false, err
	}
	params := &slackapi.GetConversationHistoryParameters{
		ChannelID:          id,
		Limit:              findPageSize,
		IncludeAllMetadata: true,
	}
	for range findPages {
		resp, err := n.api.GetConversationHistoryContext(ctx, params)
		if err != nil {
			return "", false, n.sendError("conversations.history", err)
		}
		for _, msg := range resp.Messages {
			if metadataKey(msg.Metadata) == key {
				return msg.Timestamp, true, nil
			}
		}
		if !resp.HasMore || resp.ResponseMetaData.NextCursor == "" {
			break
		}
		params.Cursor = resp.ResponseMetaData.NextCursor
	}
	return "", false, nil
}

// CheckSOCChannels asks conversations.info about each channel and returns
// those shared with another organisation (Slack Connect), or about to be.
func (n *Notifier) CheckSOCChannels(ctx context.Context, channels []string) (unsafe []string, err error) {
	var errs []error
	for _, id := range channels {
		c, err := n.api.GetConversationInfoContext(ctx, &slackapi.GetConversationInfoInput{ChannelID: id})
		if err != nil {
			errs = append(errs, fmt.Errorf("channel %s: %w", id, n.scrub(err)))
			continue
		}
		if c.IsExtShared || c.IsPendingExtShared {
			unsafe = append(unsafe, id)
		}
	}
	if len(errs) > 0 {
		return unsafe, fmt.Errorf("slack: conversations.info: %w", errors.Join(errs...))
	}
	return unsafe, nil
}

func messageOptions(m bot.Message) []slackapi.MsgOption {
	blocks, text := Render(m)
	return []slackapi.MsgOption{
		slackapi.MsgOptionText(text, false), // already escaped by Render
		slackapi.MsgOptionBlocks(blocks...),
	}
}

func deliveryMetadata(key string) slackapi.SlackMetadata {
	return slackapi.SlackMetadata{EventType: MetadataEventType, EventPayload: map[string]any{"key": key}}
}

func metadataKey(md slackapi.SlackMetadata) string {
	if md.EventType != MetadataEventType {
		return ""
	}
	k, _ := md.EventPayload["key"].(string)
	return k
}

func channelID(ch bot.ChannelRef) (string, error) {
	if ch.Platform() != Platform || ch.ID() == "" {
		return "", bot.PermanentError("not a slack channel", fmt.Errorf("slack: channel %q", ch))
	}
	return ch.ID(), nil
}

// permanentReasons are Slack errors that no retry can fix. The channel-level
// ones (channel gone, bot removed, token revoked, scope missing) hold for
// every message to the channel; the message-level ones only for this
// message, which would be refused again as it is.
var channelReasons = map[string]bool{
	// channel or workspace
	"channel_not_found":        true,
	"not_in_channel":           true,
	"is_archived":              true,
	"invalid_auth":             true,
	"not_authed":               true,
	"account_inactive":         true,
	"token_revoked":            true,
	"token_expired":            true,
	"no_permission":            true,
	"missing_scope":            true,
	"restricted_action":        true,
	"team_access_not_granted":  true,
	"ekm_access_denied":        true,
	"org_login_required":       true,
	"access_denied":            true,
	"team_not_found":           true,
	"enterprise_is_restricted": true,
}

// messageReasons fail one message only: the channel still works.
var messageReasons = map[string]bool{
	"msg_too_long":            true,
	"invalid_blocks":          true,
	"invalid_blocks_format":   true,
	"no_text":                 true,
	"invalid_metadata_format": true,
	"invalid_metadata_schema": true,
	"metadata_too_large":      true,
	"message_not_found":       true,
	"cant_update_message":     true,
	"edit_window_closed":      true,
	"thread_not_found":        true,
	"invalid_arguments":       true,
}

// sendError classifies a Web API failure for the dispatcher: 429 holds the
// channel for Retry-After, known permanent errors fail the entry, anything
// else (5xx, network, unknown codes) is retried.
func (n *Notifier) sendError(op string, err error) error {
	err = fmt.Errorf("slack: %s: %w", op, n.scrub(err))
	if rl, ok := errors.AsType[*slackapi.RateLimitedError](err); ok {
		return bot.RetryAfterError(rl.RetryAfter, err)
	}
	if se, ok := errors.AsType[slackapi.SlackErrorResponse](err); ok {
		if channelReasons[se.Err] {
			return bot.PermanentError(se.Err, err)
		}
		if messageReasons[se.Err] {
			return bot.MessageError(se.Err, err)
		}
		return &bot.SendError{Reason: se.Err, Err: err}
	}
	if sc, ok := errors.AsType[slackapi.StatusCodeError](err); ok {
		reason := fmt.Sprintf("http %d", sc.Code)
		if !sc.Retryable() && sc.Code != http.StatusRequestTimeout {
			return bot.MessageError(reason, err)
		}
		return &bot.SendError{Reason: reason, Err: err}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &bot.SendError{Reason: "timeout", Err: err}
	}
	return &bot.SendError{Reason: "unavailable", Err: err}
}

func (n *Notifier) scrub(err error) error { return scrub(err, n.tokens) }

func secrets(cfg Config) []string {
	var s []string
	for _, v := range []string{cfg.BotToken, cfg.AppToken, cfg.SigningSecret} {
		if v != "" {
			s = append(s, v)
		}
	}
	return s
}

// scrub hides secrets from an error's text while keeping its chain for
// errors.As: slack-go never puts a token in an error today, but a wrapped
// transport or a proxy might.
func scrub(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := msg
	for _, s := range secrets {
		clean = strings.ReplaceAll(clean, s, "[redacted]")
	}
	if clean == msg {
		return err
	}
	return &scrubbed{msg: clean, err: err}
}

type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }
