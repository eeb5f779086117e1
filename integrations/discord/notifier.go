package discord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/bwmarrin/discordgo"

	"github.com/msspbot/msspbot/bot"
)

const (
	// findWindow is how many recent messages Find scans for a key.
	findWindow = 50
	// threadArchiveMinutes archives a card's thread after a day of
	// silence: a guild may have only 1,000 active threads, and a line
	// posted later unarchives the thread again.
	threadArchiveMinutes = 1440
	maxThreadName        = 100
	// maxKnownThreads bounds the memory of which roots have a thread.
	maxKnownThreads = 10000
)

// Notifier implements bot.Notifier on Discord's REST API.
type Notifier struct {
	s   *discordgo.Session
	log *slog.Logger

	mu      sync.Mutex
	threads map[string]bool   // root message ids known to have a thread
	titles  map[string]string // root message id -> thread name, from Post
}

var _ bot.Notifier = (*Notifier)(nil)

// NewNotifier returns a Notifier sending through s (see NewSession).
func NewNotifier(s *discordgo.Session, log *slog.Logger) *Notifier {
	if log == nil {
		log = slog.Default()
	}
	return &Notifier{s: s, log: log, threads: map[string]bool{}, titles: map[string]string{}}
}

// postBody is discordgo.MessageSend plus the nonce fields it lacks:
// Discord refuses a second message with the same nonce for a few minutes,
// which makes a retried post after a crash safe.
type postBody struct {
	*discordgo.MessageSend
	Nonce        string `json:"nonce,omitempty"`
	EnforceNonce bool   `json:"enforce_nonce,omitempty"`
}

// Post implements bot.Notifier: the message goes out with key as nonce
// (enforced) and in the embed footer, where Find looks for it.
func (n *Notifier) Post(ctx context.Context, ch bot.ChannelRef, key string, m bot.Message) (string, error) {
	chID, err := channelID(ch)
	if err != nil {
		return "", err
	}
	r := render(m, key)
	n.warnDropped(r, ch)
	body := postBody{MessageSend: &discordgo.MessageSend{
		Content:         r.Content,
		Embeds:          r.Embeds,
		Components:      r.Components,
		AllowedMentions: noMentions(),
	}}
	if key != "" && len(key) <= maxNonce {
		body.Nonce, body.EnforceNonce = key, true
	}
	endpoint := discordgo.EndpointChannelMessages(chID)
	if err := bucketWait(n.s, endpoint); err != nil {
		return "", err
	}
	opts, x := callOptions(ctx, n.s)
	resp, err := n.s.RequestWithBucketID("POST", endpoint, body, endpoint, opts...)
	if err != nil {
		return "", classify("post message", err, x)
	}
	var msg discordgo.Message
	if err := json.Unmarshal(resp, &msg); err != nil || msg.ID == "" {
		return "", &bot.SendError{Reason: "bad_response", Err: fmt.Errorf("discord: post message: decode response: %w", errOr(err, "no message id"))}
	}
	if name := threadName(m); name != "" {
		n.mu.Lock()
		if len(n.titles) >= maxKnownThreads {
			clear(n.titles)
		}
		n.titles[msg.ID] = name
		n.mu.Unlock()
	}
	return msg.ID, nil
}

// Thread implements bot.Notifier. A thread started from a message has the
// message's id, so the line goes to channel rootID once that thread exists;
// it is created on first use.
func (n *Notifier) Thread(ctx context.Context, ch bot.ChannelRef, rootID string, m bot.Message) (string, error) {
	chID, err := channelID(ch)
	if err != nil {
		return "", err
	}
	if rootID == "" {
		return "", bot.MessageError("no_root_message", fmt.Errorf("discord: thread line in %s without a root message", ch))
	}
	if err := n.ensureThread(ctx, chID, rootID); err != nil {
		return "", err
	}
	id, err := n.sendLine(ctx, rootID, m)
	if err != nil {
		if _, code, ok := restCode(err); ok && code == discordgo.ErrCodeUnknownChannel {
			// The thread was deleted: start a new one from the root once.
			n.forgetThread(rootID)
			if err := n.ensureThread(ctx, chID, rootID); err != nil {
				return "", err
			}
			return n.sendLine(ctx, rootID, m)
		}
		return "", err
	}
	return id, nil
}

func (n *Notifier) sendLine(ctx context.Context, threadID string, m bot.Message) (string, error) {
	r := render(m, "")
	n.warnDropped(r, bot.NewChannelRef(Platform, threadID))
	if err := bucketWait(n.s, discordgo.EndpointChannelMessages(threadID)); err != nil {
		return "", err
	}
	opts, x := callOptions(ctx, n.s)
	msg, err := n.s.ChannelMessageSendComplex(threadID, &discordgo.MessageSend{
		Content:         r.Content,
		Embeds:          r.Embeds,
		Components:      r.Components,
		AllowedMentions: noMentions(),
	}, opts...)
	if err != nil {
		return "", classify("post thread line", err, x)
	}
	return msg.ID, nil
}

func (n *Notifier) ensureThread(ctx context.Context, chID, rootID string) error {
	n.mu.Lock()
	known := n.threads[rootID]
	name := n.titles[rootID]
	n.mu.Unlock()
	if known {
		return nil
	}
	if name == "" {
		name = n.rootTitle(ctx, chID, rootID)
	}
	if err := bucketWait(n.s, discordgo.EndpointChannelMessageThread(chID, rootID)); err != nil {
		return err
	}
	opts, x := callOptions(ctx, n.s)
	_, err := n.s.MessageThreadStartComplex(chID, rootID, &discordgo.ThreadStart{
		Name:                name,
		AutoArchiveDuration: threadArchiveMinutes,
	}, opts...)
	if err != nil {
		if _, code, ok := restCode(err); !ok || code != discordgo.ErrCodeThreadAlreadyCreatedForThisMessage {
			return classify("start thread", err, x)
		}
	}
	n.mu.Lock()
	if len(n.threads) >= maxKnownThreads {
		clear(n.threads)
	}
	n.threads[rootID] = true
	delete(n.titles, rootID)
	n.mu.Unlock()
	return nil
}

func (n *Notifier) forgetThread(rootID string) {
	n.mu.Lock()
	delete(n.threads, rootID)
	n.mu.Unlock()
}

// rootTitle names a new thread after the root's embed title; after a
// restart the title from Post is gone, so it is read back. Any failure
// falls back to a generic name: the name is cosmetic.
func (n *Notifier) rootTitle(ctx context.Context, chID, rootID string) string {
	if bucketWait(n.s, discordgo.EndpointChannelMessage(chID, "")) != nil {
		return "Updates"
	}
	opts, _ := callOptions(ctx, n.s)
	msg, err := n.s.ChannelMessage(chID, rootID, opts...)
	if err == nil {
		for _, e := range msg.Embeds {
			if e != nil && strings.TrimSpace(e.Title) != "" {
				return truncate(e.Title, maxThreadName)
			}
		}
	}
	return "Updates"
}

// threadName is what a thread started from m's message is called.
func threadName(m bot.Message) string {
	var name string
	switch {
	case m.Card != nil:
		name = bot.SeverityEmoji(m.Card.Alert.Severity) + " " + m.Card.Alert.Title
	case m.Digest != nil:
		name = fmt.Sprintf("⚠️ %d new alerts", m.Digest.Total)
	default:
		name = m.Title
	}
	return truncate(strings.TrimSpace(name), maxThreadName)
}

// Edit implements bot.Notifier: embeds and buttons are replaced.
func (n *Notifier) Edit(ctx context.Context, ch bot.ChannelRef, messageID string, m bot.Message) error {
	chID, err := channelID(ch)
	if err != nil {
		return err
	}
	r := render(m, "")
	n.warnDropped(r, ch)
	content := r.Content
	embeds := r.Embeds
	if embeds == nil {
		embeds = []*discordgo.MessageEmbed{}
	}
	components := r.Components
	if components == nil {
		components = []discordgo.MessageComponent{}
	}
	if err := bucketWait(n.s, discordgo.EndpointChannelMessage(chID, "")); err != nil {
		return err
	}
	opts, x := callOptions(ctx, n.s)
	_, err = n.s.ChannelMessageEditComplex(&discordgo.MessageEdit{
		ID:              messageID,
		Channel:         chID,
		Content:         &content,
		Embeds:          &embeds,
		Components:      &components,
		AllowedMentions: noMentions(),
	}, opts...)
	return classify("edit message", err, x)
}

// Find implements bot.Notifier: it scans the channel's recent messages for
// an embed whose footer is key (the nonce itself is not returned by the
// API once the message exists).
func (n *Notifier) Find(ctx context.Context, ch bot.ChannelRef, key string) (string, bool, error) {
	chID, err := channelID(ch)
	if err != nil {
		return "", false, err
	}
	if key == "" {
		return "", false, nil
	}
	if err := bucketWait(n.s, discordgo.EndpointChannelMessages(chID)); err != nil {
		return "", false, err
	}
	opts, x := callOptions(ctx, n.s)
	msgs, err := n.s.ChannelMessages(chID, findWindow, "", "", "", opts...)
	if err != nil {
		return "", false, classify("list messages", err, x)
	}
	for _, m := range msgs {
		if m == nil {
			continue
		}
		for _, e := range m.Embeds {
			if e != nil && e.Footer != nil && e.Footer.Text == key {
				return m.ID, true, nil
			}
		}
	}
	return "", false, nil
}

func (n *Notifier) warnDropped(r rendered, ch bot.ChannelRef) {
	if r.dropped > 0 {
		n.log.Warn("discord: buttons left out: custom id or URL too long", "channel", string(ch), "count", r.dropped)
	}
}

func channelID(ch bot.ChannelRef) (string, error) {
	if !ch.Valid() || ch.Platform() != Platform {
		return "", bot.PermanentError("bad_channel", fmt.Errorf("discord: channel %q is not a discord channel", ch))
	}
	return ch.ID(), nil
}

func errOr(err error, msg string) error {
	if err != nil {
		return err
	}
	return errors.New(msg)
}
