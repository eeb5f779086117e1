package console

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

// fakeExec records commands and answers with reply(cmd).
type fakeExec struct {
	mu    sync.Mutex
	cmds  []bot.Command
	reply func(bot.Command) bot.Message
}

func (f *fakeExec) Execute(_ context.Context, cmd bot.Command) bot.Message {
	f.mu.Lock()
	f.cmds = append(f.cmds, cmd)
	f.mu.Unlock()
	if f.reply != nil {
		return f.reply(cmd)
	}
	return bot.Message{Kind: bot.MessageText, Text: "ok: " + cmd.Text, Ephemeral: true}
}

func (f *fakeExec) commands() []bot.Command {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]bot.Command(nil), f.cmds...)
}

func newTestChat(t *testing.T) (*Chat, *Notifier, *fakeExec, *syncBuffer) {
	t.Helper()
	out := &syncBuffer{}
	n := NewNotifier(out, Options{})
	ex := &fakeExec{}
	c := NewChat(n, ex, ChatConfig{
		User: "analyst", UserName: "Analyst", Email: "analyst@mssp.example",
		Channel: "contoso", Channels: []string{"soc", "contoso", "fabrikam"}, SOCChannel: "soc",
	})
	return c, n, ex, out
}

func run(t *testing.T, c *Chat, input string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Run(ctx, strings.NewReader(input)); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestChatTypedCommands(t *testing.T) {
	c, _, ex, out := newTestChat(t)
	run(t, c, "/mssp ack da1_2 looking\nalerts severity>=high\n\n/channel #Fabrikam\n/mssp   status\n/mssp\n")
	cmds := ex.commands()
	want := []struct {
		ch   bot.ChannelRef
		text string
	}{
		{"console:contoso", "ack da1_2 looking"},
		{"console:contoso", "alerts severity>=high"},
		{"console:fabrikam", "status"},
		{"console:fabrikam", ""},
	}
	if len(cmds) != len(want) {
		t.Fatalf("got %d commands: %+v", len(cmds), cmds)
	}
	for i, w := range want {
		c := cmds[i]
		if c.Channel != w.ch || c.Text != w.text || c.Origin != bot.OriginTyped {
			t.Errorf("command %d = %+v; want channel %s text %q typed", i, c, w.ch, w.text)
		}
		if c.Platform != "console" || c.User != "analyst" || c.UserName != "Analyst" || c.Email != "analyst@mssp.example" {
			t.Errorf("command %d identity = %+v", i, c)
		}
		if c.UserRef() != "console:analyst" || c.Action != "" || c.MessageID != "" {
			t.Errorf("command %d = %+v", i, c)
		}
	}
	assertContains(t, out.String(),
		"[#contoso] > /mssp ack da1_2 looking\n(only you) ok: ack da1_2 looking\n",
		"Now in #fabrikam.\n",
		"[#fabrikam] > /mssp   status\n",
	)
	if c.Channel() != "console:fabrikam" {
		t.Errorf("channel = %s", c.Channel())
	}
}

func TestChatChannelCommand(t *testing.T) {
	c, _, ex, out := newTestChat(t)
	run(t, c, "/channel\n/channel soc extra\n/channel a:b\n/channel newco\n/channel SOC\n")
	assertContains(t, out.String(),
		"You are in #contoso.",
		"Usage: /channel NAME",
		"Now in #newco (a channel the bot knows nothing about yet).",
		"Now in #soc.",
	)
	if c.Channel() != "console:soc" {
		t.Errorf("channel = %s", c.Channel())
	}
	if n := len(ex.commands()); n != 0 {
		t.Errorf("/channel ran %d bot commands", n)
	}
}

func TestChatClickResolvesMessage(t *testing.T) {
	ctx := context.Background()
	c, n, ex, out := newTestChat(t)
	ex.reply = func(cmd bot.Command) bot.Message {
		if cmd.Action == bot.ActionResolve {
			return bot.Message{Kind: bot.MessageText, Text: "Resolve as:", Ephemeral: true, Buttons: []bot.Button{
				{Label: "True positive", ActionID: bot.ActionResolveAs, Value: cmd.Value + ":truepositive"},
			}}
		}
		return bot.Message{Kind: bot.MessageText, Text: "done", Ephemeral: true}
	}
	other := testCard()
	other.Card.Alert.ID = "da9_9"
	other.Buttons = bot.CardButtons("da9_9")
	for _, p := range []struct {
		ch bot.ChannelRef
		m  bot.Message
	}{{contoso, testCard()}, {soc, testCard()}, {contoso, other}} {
		if _, err := n.Post(ctx, p.ch, "", p.m); err != nil {
			t.Fatal(err)
		}
	}
	run(t, c, strings.Join([]string{
		"/click alert_ack " + testAlertID,     // c1 in #contoso
		"/click alert_ack da9_9",              // c3
		"/channel soc",                        //
		"/click alert_ack " + testAlertID,     // c2 in #soc
		"/click alert_ack da9_9",              // not in #soc
		"/click alert_resolve " + testAlertID, // c2, answered with a chooser
		"/click alert_resolve_as " + testAlertID + ":truepositive",
		"/click",
		"",
	}, "\n"))
	cmds := ex.commands()
	want := []struct{ ch, action, value, msg string }{
		{"console:contoso", "alert_ack", testAlertID, "c1"},
		{"console:contoso", "alert_ack", "da9_9", "c3"},
		{"console:soc", "alert_ack", testAlertID, "c2"},
		{"console:soc", "alert_resolve", testAlertID, "c2"},
		// the chooser was ephemeral: the click keeps the card it answered
		{"console:soc", "alert_resolve_as", testAlertID + ":truepositive", "c2"},
	}
	if len(cmds) != len(want) {
		t.Fatalf("got %d commands: %+v", len(cmds), cmds)
	}
	for i, w := range want {
		c := cmds[i]
		if string(c.Channel) != w.ch || c.Action != w.action || c.Value != w.value || c.MessageID != w.msg || c.Origin != bot.OriginClick || c.Text != "" {
			t.Errorf("click %d = %+v; want %+v", i, c, w)
		}
		if c.Platform != "console" || c.User != "analyst" {
			t.Errorf("click %d identity = %+v", i, c)
		}
	}
	assertContains(t, out.String(),
		"No message in #soc has a button alert_ack da9_9.",
		"(only you) Resolve as:\n  [True positive] /click alert_resolve_as "+testAlertID+":truepositive\n",
		"Usage: /click ACTION_ID VALUE",
	)
}

func TestChatLocalCommands(t *testing.T) {
	c, _, ex, out := newTestChat(t)
	run(t, c, "/help\n/frobnicate now\n/quit\n/mssp status\n")
	if n := len(ex.commands()); n != 0 {
		t.Errorf("ran %d bot commands; /quit should stop before /mssp status", n)
	}
	assertContains(t, out.String(),
		"/channel NAME        switch channel: #soc, #contoso, #fabrikam",
		"#soc is the SOC channel",
		"/click ACTION VALUE",
		"/quit",
		"You are console:analyst (analyst@mssp.example); you are in #contoso.",
		"Unknown console command /frobnicate. Type /help.",
	)
}

func TestChatEndsOnContextCancel(t *testing.T) {
	c, _, _, _ := newTestChat(t)
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, pr) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrClosedPipe }

func TestChatReadError(t *testing.T) {
	c, _, _, _ := newTestChat(t)
	if err := c.Run(context.Background(), errReader{}); err == nil || !strings.Contains(err.Error(), "read input") {
		t.Errorf("Run = %v; want a read error", err)
	}
}

func TestChatEOFInteractive(t *testing.T) {
	out := &syncBuffer{}
	n := NewNotifier(out, Options{Interactive: true})
	c := NewChat(n, &fakeExec{}, ChatConfig{User: "analyst", Channel: "soc"})
	if err := c.Run(context.Background(), strings.NewReader("")); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "[#soc] > \n" {
		t.Errorf("got %q", got)
	}
}
