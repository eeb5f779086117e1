package discord

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/msspbot/msspbot/bot"
)

// fakeExecutor records commands and answers with reply; when gate is set
// it waits for it first.
type fakeExecutor struct {
	mu    sync.Mutex
	cmds  []bot.Command
	reply bot.Message
	gate  chan struct{}
	panic bool
}

func (e *fakeExecutor) Execute(ctx context.Context, cmd bot.Command) bot.Message {
	e.mu.Lock()
	e.cmds = append(e.cmds, cmd)
	gate, p := e.gate, e.panic
	e.mu.Unlock()
	if p {
		panic("boom")
	}
	if gate != nil {
		<-gate
	}
	if e.reply.Kind == "" {
		return bot.Message{Kind: bot.MessageText, Text: "ok: " + cmd.Text + cmd.Action, Ephemeral: true}
	}
	return e.reply
}

func (e *fakeExecutor) commands() []bot.Command {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]bot.Command(nil), e.cmds...)
}

type fakeLister struct {
	ch     bot.ChannelRef
	user   string
	prefix string
	ids    []string
}

func (l *fakeLister) AutocompleteAlerts(ctx context.Context, ch bot.ChannelRef, user, prefix string) []string {
	l.ch, l.user, l.prefix = ch, user, prefix
	return l.ids
}

const member = `"guild_id":"900","member":{"nick":"Ali","user":{"id":"u1","username":"alice","global_name":"Alice A"}}`

// interaction decodes an interaction JSON as Discord sends it.
func interaction(t *testing.T, raw string) *discordgo.Interaction {
	t.Helper()
	var i discordgo.Interaction
	if err := json.Unmarshal([]byte(raw), &i); err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	return &i
}

func commandInteraction(channel, options string) string {
	return fmt.Sprintf(`{"id":"i1","application_id":"app1","type":2,"token":"tok","version":1,"channel_id":%q,%s,
		"data":{"id":"c1","name":"mssp","type":1,"options":%s}}`, channel, member, options)
}

func clickInteraction(channel, customID, messageID string) string {
	return fmt.Sprintf(`{"id":"i2","application_id":"app1","type":3,"token":"tok","version":1,"channel_id":%q,%s,
		"message":{"id":%q,"channel_id":%q,"content":"","embeds":[],"components":[]},
		"data":{"custom_id":%q,"component_type":2}}`, channel, member, messageID, channel, customID)
}

func newInteractions(t *testing.T) (*Interactions, *fakeDiscord, *fakeExecutor) {
	f := newFakeDiscord(t)
	f.addChannel("500", discordgo.ChannelTypeGuildText, "")
	f.addChannel("t1", discordgo.ChannelTypeGuildPublicThread, "500")
	exec := &fakeExecutor{}
	return &Interactions{Session: f.session(), Executor: exec}, f, exec
}

func TestCommandInteraction(t *testing.T) {
	h, _, exec := newInteractions(t)
	i := interaction(t, commandInteraction("500", `[{"type":1,"name":"alerts","options":[{"name":"status","type":3,"value":"resolved"},{"name":"limit","type":4,"value":5}]}]`))
	resp, followUp := h.HandleInteraction(context.Background(), i)
	if followUp != nil {
		t.Fatal("fast command deferred")
	}
	if resp.Type != discordgo.InteractionResponseChannelMessageWithSource || resp.Data.Flags != discordgo.MessageFlagsEphemeral {
		t.Errorf("response type %d flags %d, want 4 / ephemeral", resp.Type, resp.Data.Flags)
	}
	if resp.Data.Content != "ok: alerts resolved limit 5" {
		t.Errorf("content = %q", resp.Data.Content)
	}
	cmds := exec.commands()
	if len(cmds) != 1 {
		t.Fatalf("commands = %d", len(cmds))
	}
	want := bot.Command{Platform: "discord", Channel: "discord:500", User: "u1", UserName: "Ali", Origin: bot.OriginTyped, Text: "alerts resolved limit 5"}
	if cmds[0] != want {
		t.Errorf("command = %+v\nwant %+v", cmds[0], want)
	}
}

func TestClickInteraction(t *testing.T) {
	h, _, exec := newInteractions(t)
	for _, tc := range []struct{ customID, action, value string }{
		{"alert_ack:" + alertID, bot.ActionAck, alertID},
		{"alert_resolve_as:" + alertID + ":falsepositive", bot.ActionResolveAs, alertID + ":falsepositive"},
		{"access_decline:12", bot.ActionDecline, "12"},
		{"link_confirm:7", bot.ActionLinkConfrm, "7"},
	} {
		resp, _ := h.HandleInteraction(context.Background(), interaction(t, clickInteraction("500", tc.customID, "m77")))
		if resp.Type != discordgo.InteractionResponseChannelMessageWithSource || resp.Data.Flags != discordgo.MessageFlagsEphemeral {
			t.Errorf("%s: response type %d flags %d", tc.customID, resp.Type, resp.Data.Flags)
		}
		cmds := exec.commands()
		c := cmds[len(cmds)-1]
		if c.Origin != bot.OriginClick || c.Action != tc.action || c.Value != tc.value || c.MessageID != "m77" || c.Channel != "discord:500" || c.User != "u1" || c.Text != "" || c.Email != "" {
			t.Errorf("%s: command = %+v", tc.customID, c)
		}
	}
}

func TestClickOnEphemeralChooser(t *testing.T) {
	// The resolve chooser is an ephemeral reply to a click on card m77;
	// its buttons count for m77.
	h, _, exec := newInteractions(t)
	raw := strings.Replace(clickInteraction("500", "alert_resolve_as:"+alertID+":truepositive", "e1"),
		`"content":""`, `"content":"","flags":64,"interaction_metadata":{"id":"i0","type":3,"user":{"id":"u1"},"interacted_message_id":"m77"}`, 1)
	h.HandleInteraction(context.Background(), interaction(t, raw))
	if c := exec.commands(); len(c) != 1 || c[0].MessageID != "m77" || c[0].Value != alertID+":truepositive" {
		t.Errorf("commands = %+v", c)
	}
	// Without the ephemeral flag the message itself counts.
	raw = strings.Replace(raw, `"flags":64,`, "", 1)
	h.HandleInteraction(context.Background(), interaction(t, raw))
	if c := exec.commands(); c[1].MessageID != "e1" {
		t.Errorf("MessageID = %q, want e1", c[1].MessageID)
	}
}

func TestThreadInteractionUsesParent(t *testing.T) {
	h, f, exec := newInteractions(t)
	for range 2 {
		h.HandleInteraction(context.Background(), interaction(t, clickInteraction("t1", "alert_ack:"+alertID, "m1")))
	}
	for _, c := range exec.commands() {
		if c.Channel != "discord:500" {
			t.Errorf("channel = %s, want the thread's parent", c.Channel)
		}
	}
	if got := len(f.reqs("GET", "/api/v9/channels/t1")); got != 1 {
		t.Errorf("channel lookups = %d, want 1 (cached)", got)
	}
	// Not a thread: the channel itself, also cached.
	h.HandleInteraction(context.Background(), interaction(t, commandInteraction("500", `[{"type":1,"name":"status"}]`)))
	h.HandleInteraction(context.Background(), interaction(t, commandInteraction("500", `[{"type":1,"name":"status"}]`)))
	if got := len(f.reqs("GET", "/api/v9/channels/500")); got != 1 {
		t.Errorf("channel lookups = %d, want 1", got)
	}
}

func TestChannelLookupFailure(t *testing.T) {
	h, f, exec := newInteractions(t)
	f.failNext("GET /api/v9/channels/t9", 403, `{"message":"Missing Access","code":50001}`, nil, 0)
	resp, _ := h.HandleInteraction(context.Background(), interaction(t, commandInteraction("t9", `[{"type":1,"name":"status"}]`)))
	if !strings.Contains(resp.Data.Content, "Could not look up this channel") || resp.Data.Flags != discordgo.MessageFlagsEphemeral {
		t.Errorf("reply = %+v", resp.Data)
	}
	if len(exec.commands()) != 0 {
		t.Error("executor ran without knowing the channel")
	}
}

func TestDMUserAndMissingUser(t *testing.T) {
	h, f, exec := newInteractions(t)
	f.addChannel("dm1", discordgo.ChannelTypeDM, "")
	raw := `{"id":"i1","application_id":"app1","type":2,"token":"tok","channel_id":"dm1","user":{"id":"u2","username":"bob"},
		"data":{"id":"c1","name":"mssp","type":1,"options":[{"type":1,"name":"help"}]}}`
	h.HandleInteraction(context.Background(), interaction(t, raw))
	if c := exec.commands(); len(c) != 1 || c[0].User != "u2" || c[0].UserName != "bob" {
		t.Errorf("commands = %+v", c)
	}
	raw = `{"id":"i1","application_id":"app1","type":2,"token":"tok","channel_id":"500","data":{"id":"c1","name":"mssp","type":1,"options":[]}}`
	resp, _ := h.HandleInteraction(context.Background(), interaction(t, raw))
	if len(exec.commands()) != 1 || !strings.Contains(resp.Data.Content, "who you are") {
		t.Errorf("anonymous interaction: %q", resp.Data.Content)
	}
}

func TestAutocomplete(t *testing.T) {
	h, _, exec := newInteractions(t)
	var ids []string
	for k := range 30 {
		ids = append(ids, fmt.Sprintf("da63%02d", k))
	}
	ids = append([]string{strings.Repeat("x", 101)}, ids...) // too long for a choice
	lister := &fakeLister{ids: ids}
	h.Alerts = lister
	raw := fmt.Sprintf(`{"id":"i3","application_id":"app1","type":4,"token":"tok","channel_id":"t1",%s,
		"data":{"id":"c1","name":"mssp","type":1,"options":[{"type":1,"name":"ack","options":[
			{"name":"alert","type":3,"value":"da63","focused":true},{"name":"comment","type":3,"value":"x"}]}]}}`, member)
	resp, followUp := h.HandleInteraction(context.Background(), interaction(t, raw))
	if followUp != nil || resp.Type != discordgo.InteractionApplicationCommandAutocompleteResult {
		t.Fatalf("response type %d", resp.Type)
	}
	if lister.ch != "discord:500" || lister.user != "u1" || lister.prefix != "da63" {
		t.Errorf("lister asked with %s %s %q", lister.ch, lister.user, lister.prefix)
	}
	if n := len(resp.Data.Choices); n != 25 {
		t.Errorf("choices = %d, want 25", n)
	}
	if c := resp.Data.Choices[0]; c.Name != "da6300" || c.Value != "da6300" {
		t.Errorf("first choice = %+v", c)
	}
	if len(exec.commands()) != 0 {
		t.Error("autocomplete ran a command")
	}

	// Another option focused: no suggestions, sent as an empty list.
	raw = strings.Replace(raw, `"value":"da63","focused":true},{"name":"comment","type":3,"value":"x"}`, `"value":"da63"},{"name":"comment","type":3,"value":"x","focused":true}`, 1)
	resp, _ = h.HandleInteraction(context.Background(), interaction(t, raw))
	b, _ := responseJSON(resp)
	if string(b) != `{"type":8,"data":{"choices":[]}}` {
		t.Errorf("empty autocomplete = %s", b)
	}
}

func TestDeferredAnswer(t *testing.T) {
	h, f, exec := newInteractions(t)
	h.Deadline = 20 * time.Millisecond
	exec.gate = make(chan struct{})
	exec.reply = bot.Message{Kind: bot.MessageList, Title: "Tenants", List: &bot.List{Rows: []string{"Contoso"}}}
	// The edit may reach Discord before the deferred response: retried.
	f.failNext("PATCH /api/v9/webhooks/app1/tok/messages/@original", 404, `{"message":"Unknown Webhook","code":10015}`, nil, 1)
	resp, followUp := h.HandleInteraction(context.Background(), interaction(t, commandInteraction("500", `[{"type":1,"name":"tenants"}]`)))
	if resp.Type != discordgo.InteractionResponseDeferredChannelMessageWithSource || resp.Data.Flags != discordgo.MessageFlagsEphemeral {
		t.Fatalf("response type %d, want deferred ephemeral", resp.Type)
	}
	if followUp == nil {
		t.Fatal("no follow-up")
	}
	close(exec.gate)
	followUp(context.Background())
	edits := f.reqs("PATCH", "/api/v9/webhooks/app1/tok/messages/@original")
	if len(edits) != 2 {
		t.Fatalf("edits = %d, want 2 (one retry)", len(edits))
	}
	if !strings.Contains(string(edits[1].Body), `"title":"Tenants"`) {
		t.Errorf("edit body = %s", edits[1].Body)
	}
}

func TestPanickingExecutor(t *testing.T) {
	h, _, exec := newInteractions(t)
	exec.panic = true
	resp, _ := h.HandleInteraction(context.Background(), interaction(t, commandInteraction("500", `[{"type":1,"name":"status"}]`)))
	if !strings.Contains(resp.Data.Content, "Internal error") {
		t.Errorf("reply = %q", resp.Data.Content)
	}
}

func TestUnsupportedInteraction(t *testing.T) {
	h, _, exec := newInteractions(t)
	raw := `{"id":"i1","application_id":"app1","type":5,"token":"tok","channel_id":"500","data":{"custom_id":"m","components":[]}}`
	resp, _ := h.HandleInteraction(context.Background(), interaction(t, raw))
	if resp.Data == nil || resp.Data.Flags != discordgo.MessageFlagsEphemeral || len(exec.commands()) != 0 {
		t.Errorf("modal submit: %+v", resp)
	}
}
