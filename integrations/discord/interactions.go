package discord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/msspbot/msspbot/bot"
)

// Executor runs one command or click and returns the reply for the asker.
// bot.Service implements it.
type Executor interface {
	Execute(ctx context.Context, cmd bot.Command) bot.Message
}

// AlertLister suggests alert ids for the `alert` option as the user types:
// the channel's tenant's alerts in a customer channel, all tenants' in a
// SOC channel.
type AlertLister interface {
	AutocompleteAlerts(ctx context.Context, ch bot.ChannelRef, user string, prefix string) []string
}

const (
	defaultDeadline = 2 * time.Second // Discord wants an answer within 3 s
	defaultTimeout  = time.Minute
	// maxChoices is Discord's limit of autocomplete choices; choice names
	// and values are limited to 100 characters.
	maxChoices     = 25
	maxChoiceValue = 100
	// maxParents bounds the thread -> parent cache.
	maxParents = 10000
	// ephemeral marks a reply only the asker sees.
	ephemeral = discordgo.MessageFlagsEphemeral
)

// Interactions turns Discord interactions into bot.Commands and answers
// them; the gateway Runner and the HTTP InteractionsHandler share it.
type Interactions struct {
	// Session is used for REST calls: a thread's parent channel and the
	// answer to a deferred interaction.
	Session  *discordgo.Session
	Executor Executor
	Alerts   AlertLister   // nil: no suggestions
	Logger   *slog.Logger  // nil: slog.Default()
	Deadline time.Duration // wait for the executor before deferring; 0: 2 s
	Timeout  time.Duration // one command's time limit; 0: 1 min

	mu      sync.Mutex
	parents map[string]string // channel id -> parent id ("" when not a thread)
}

func (h *Interactions) log() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.Default()
}

func (h *Interactions) deadline() time.Duration {
	if h.Deadline > 0 {
		return h.Deadline
	}
	return defaultDeadline
}

func (h *Interactions) timeout() time.Duration {
	if h.Timeout > 0 {
		return h.Timeout
	}
	return defaultTimeout
}

// HandleInteraction answers one interaction. resp is sent at once (in the
// HTTP response, or with InteractionRespond on the gateway). When the
// executor has not answered within the deadline, resp is a deferred
// ephemeral response and followUp is non-nil: the caller runs it after
// sending resp, and it edits the deferred response with the answer.
func (h *Interactions) HandleInteraction(ctx context.Context, i *discordgo.Interaction) (resp *discordgo.InteractionResponse, followUp func(context.Context)) {
	switch i.Type {
	case discordgo.InteractionPing:
		return &discordgo.InteractionResponse{Type: discordgo.InteractionResponsePong}, nil
	case discordgo.InteractionApplicationCommandAutocomplete:
		return h.autocomplete(ctx, i), nil
	case discordgo.InteractionApplicationCommand, discordgo.InteractionMessageComponent:
		return h.execute(ctx, i)
	}
	return messageResponse(bot.Message{Kind: bot.MessageText, Text: "This interaction is not supported."}), nil
}

func (h *Interactions) execute(ctx context.Context, i *discordgo.Interaction) (*discordgo.InteractionResponse, func(context.Context)) {
	done := make(chan bot.Message, 1)
	// The command outlives a deferred response, so it must not end with
	// the request that carried it.
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.timeout())
	go func() {
		defer cancel()
		defer func() {
			if p := recover(); p != nil {
				h.log().Error("discord: command panicked", "panic", fmt.Sprint(p))
				done <- internalError()
			}
		}()
		done <- h.run(ectx, i)
	}()
	t := time.NewTimer(h.deadline())
	defer t.Stop()
	select {
	case m := <-done:
		return messageResponse(m), nil
	case <-t.C:
	case <-ctx.Done():
	}
	deferred := &discordgo.InteractionResponse{
		Type: discordgo.InteractionResponseDeferredChannelMessageWithSource,
		Data: &discordgo.InteractionResponseData{Flags: ephemeral},
	}
	return deferred, func(fctx context.Context) {
		select {
		case m := <-done:
			h.editOriginal(fctx, i, m)
		case <-fctx.Done():
		}
	}
}

// run builds the command of an interaction and executes it.
func (h *Interactions) run(ctx context.Context, i *discordgo.Interaction) bot.Message {
	user, name := interactionUser(i)
	if user == "" {
		return textReply("Could not tell who you are.")
	}
	ch, err := h.channelRef(ctx, i.ChannelID)
	if err != nil {
		h.log().Warn("discord: look up channel", "channel", i.ChannelID, "err", err)
		return textReply("Could not look up this channel; please try again.")
	}
	cmd := bot.Command{Platform: Platform, Channel: ch, User: user, UserName: name}
	switch i.Type {
	case discordgo.InteractionApplicationCommand:
		text, err := commandText(i.ApplicationCommandData())
		if err != nil {
			if errors.Is(err, errQuotes) {
				return textReply("The title may not contain both straight and curly double quotes.")
			}
			return textReply("Unknown command; try /mssp help.")
		}
		cmd.Origin, cmd.Text = bot.OriginTyped, text
	case discordgo.InteractionMessageComponent:
		cmd.Origin = bot.OriginClick
		cmd.Action, cmd.Value = splitCustomID(i.MessageComponentData().CustomID)
		cmd.MessageID = clickedMessage(i.Message)
	}
	return h.Executor.Execute(ctx, cmd)
}

func (h *Interactions) autocomplete(ctx context.Context, i *discordgo.Interaction) *discordgo.InteractionResponse {
	resp := &discordgo.InteractionResponse{
		Type: discordgo.InteractionApplicationCommandAutocompleteResult,
		Data: &discordgo.InteractionResponseData{Choices: []*discordgo.ApplicationCommandOptionChoice{}},
	}
	focused := focusedOption(i.ApplicationCommandData().Options)
	if focused == nil || focused.Name != optAlert || h.Alerts == nil {
		return resp
	}
	prefix, _ := focused.Value.(string)
	user, _ := interactionUser(i)
	actx, cancel := context.WithTimeout(ctx, h.deadline())
	defer cancel()
	ch, err := h.channelRef(actx, i.ChannelID)
	if err != nil || user == "" {
		return resp
	}
	for _, id := range h.Alerts.AutocompleteAlerts(actx, ch, user, strings.TrimSpace(prefix)) {
		if id == "" || len(id) > maxChoiceValue {
			continue // a cut id would name another alert
		}
		resp.Data.Choices = append(resp.Data.Choices, &discordgo.ApplicationCommandOptionChoice{Name: id, Value: id})
		if len(resp.Data.Choices) == maxChoices {
			break
		}
	}
	return resp
}

func focusedOption(opts []*discordgo.ApplicationCommandInteractionDataOption) *discordgo.ApplicationCommandInteractionDataOption {
	for _, o := range opts {
		if o.Focused {
			return o
		}
		if f := focusedOption(o.Options); f != nil {
			return f
		}
	}
	return nil
}

// editOriginal replaces a deferred response with the answer. The edit can
// reach Discord before the deferred response is registered, so "unknown
// webhook" is retried briefly; a 429 waits as told.
func (h *Interactions) editOriginal(ctx context.Context, i *discordgo.Interaction, m bot.Message) {
	r := render(m, "")
	content := r.Content
	embeds := r.Embeds
	if embeds == nil {
		embeds = []*discordgo.MessageEmbed{}
	}
	components := r.Components
	if components == nil {
		components = []discordgo.MessageComponent{}
	}
	edit := &discordgo.WebhookEdit{Content: &content, Embeds: &embeds, Components: &components, AllowedMentions: noMentions()}
	wait := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		_, err := h.Session.InteractionResponseEdit(i, edit, discordgo.WithContext(ctx), discordgo.WithRetryOnRatelimit(false))
		if err == nil {
			return
		}
		var rl *discordgo.RateLimitError
		st, code, _ := restCode(err)
		retry := st == 404 && (code == discordgo.ErrCodeUnknownWebhook || code == discordgo.ErrCodeUnknownInteraction || code == 0)
		if errors.As(err, &rl) && rl.TooManyRequests != nil {
			retry, wait = true, min(max(rl.RetryAfter, wait), 5*time.Second)
		}
		if !retry || attempt == 4 {
			h.log().Error("discord: answer deferred interaction", "err", scrubToken(err, i.Token))
			return
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
		wait *= 2
	}
}

// respond sends resp for i through the REST API (gateway mode). An empty
// autocomplete result is sent as "choices": [], which discordgo would omit.
// scrubToken removes an interaction token from an error: a network error
// carries the request URL, and the token in it lets anyone answer as the
// app in that channel for 15 minutes.
func scrubToken(err error, token string) error {
	if err == nil || token == "" || !strings.Contains(err.Error(), token) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), token, "[redacted]"))
}

func respond(ctx context.Context, s *discordgo.Session, i *discordgo.Interaction, resp *discordgo.InteractionResponse) error {
	body, err := responseJSON(resp)
	if err != nil {
		return err
	}
	endpoint := discordgo.EndpointInteractionResponse(i.ID, i.Token)
	_, err = s.RequestWithBucketID("POST", endpoint, json.RawMessage(body), endpoint,
		discordgo.WithContext(ctx), discordgo.WithRetryOnRatelimit(false))
	if err != nil {
		return fmt.Errorf("discord: respond to interaction: %w", err)
	}
	return nil
}

// responseJSON is the wire form of resp.
func responseJSON(resp *discordgo.InteractionResponse) ([]byte, error) {
	if resp.Type == discordgo.InteractionApplicationCommandAutocompleteResult {
		type choice struct {
			Name  string `json:"name"`
			Value any    `json:"value"`
		}
		out := struct {
			Type discordgo.InteractionResponseType `json:"type"`
			Data struct {
				Choices []choice `json:"choices"`
			} `json:"data"`
		}{Type: resp.Type}
		out.Data.Choices = []choice{}
		if resp.Data != nil {
			for _, c := range resp.Data.Choices {
				out.Data.Choices = append(out.Data.Choices, choice{Name: c.Name, Value: c.Value})
			}
		}
		return json.Marshal(out)
	}
	b, err := json.Marshal(resp)
	if err != nil {
		return nil, fmt.Errorf("discord: encode interaction response: %w", err)
	}
	return b, nil
}

// messageResponse answers with m, visible to the asker only.
func messageResponse(m bot.Message) *discordgo.InteractionResponse {
	r := render(m, "")
	return &discordgo.InteractionResponse{
		Type: discordgo.InteractionResponseChannelMessageWithSource,
		Data: &discordgo.InteractionResponseData{
			Content:         r.Content,
			Embeds:          r.Embeds,
			Components:      r.Components,
			AllowedMentions: noMentions(),
			Flags:           ephemeral,
		},
	}
}

func textReply(s string) bot.Message {
	return bot.Message{Kind: bot.MessageText, Text: s, Ephemeral: true}
}

func internalError() bot.Message { return textReply(bot.ErrorMessage(errors.New("panic"))) }

// clickedMessage is the message a click counts for. A click on an
// ephemeral reply to an earlier click (the resolve chooser under a card)
// counts for the message of that earlier click, which Discord names in
// interaction_metadata.interacted_message_id, so that the click can be
// checked against the card's delivery.
func clickedMessage(m *discordgo.Message) string {
	if m == nil {
		return ""
	}
	if m.Flags&discordgo.MessageFlagsEphemeral != 0 && m.InteractionMetadata != nil && m.InteractionMetadata.InteractedMessageID != "" {
		return m.InteractionMetadata.InteractedMessageID
	}
	return m.ID
}

// interactionUser returns the user id and a display name: Member in a
// guild, User in a DM.
func interactionUser(i *discordgo.Interaction) (id, name string) {
	var u *discordgo.User
	nick := ""
	if i.Member != nil && i.Member.User != nil {
		u, nick = i.Member.User, i.Member.Nick
	} else if i.User != nil {
		u = i.User
	}
	if u == nil {
		return "", ""
	}
	switch {
	case nick != "":
		name = nick
	case u.GlobalName != "":
		name = u.GlobalName
	default:
		name = u.Username
	}
	return u.ID, name
}

// channelRef is the channel a command counts for: a thread's parent, else
// the channel itself. Parents are cached; threads never move.
func (h *Interactions) channelRef(ctx context.Context, id string) (bot.ChannelRef, error) {
	if id == "" {
		return "", errors.New("interaction without a channel")
	}
	h.mu.Lock()
	parent, ok := h.parents[id]
	h.mu.Unlock()
	if !ok {
		c, err := h.Session.Channel(id, discordgo.WithContext(ctx), discordgo.WithRetryOnRatelimit(false))
		if err != nil {
			return "", fmt.Errorf("discord: get channel %s: %w", id, err)
		}
		if c.IsThread() {
			parent = c.ParentID
		}
		h.rememberChannel(id, parent)
	}
	if parent != "" {
		return bot.NewChannelRef(Platform, parent), nil
	}
	return bot.NewChannelRef(Platform, id), nil
}

func (h *Interactions) rememberChannel(id, parent string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.parents == nil || len(h.parents) >= maxParents {
		h.parents = map[string]string{}
	}
	h.parents[id] = parent
}

// seedChannel records what a signed interaction says about its channel
// (newer payloads carry a partial channel object), sparing a REST call.
func (h *Interactions) seedChannel(raw []byte) {
	var p struct {
		Channel *struct {
			ID       string                 `json:"id"`
			Type     *discordgo.ChannelType `json:"type"`
			ParentID string                 `json:"parent_id"`
		} `json:"channel"`
	}
	if json.Unmarshal(raw, &p) != nil || p.Channel == nil || p.Channel.ID == "" || p.Channel.Type == nil {
		return
	}
	c := discordgo.Channel{Type: *p.Channel.Type}
	switch {
	case c.IsThread() && p.Channel.ParentID != "":
		h.rememberChannel(p.Channel.ID, p.Channel.ParentID)
	case !c.IsThread():
		h.rememberChannel(p.Channel.ID, "")
	}
}
