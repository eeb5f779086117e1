package console

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/msspbot/msspbot/bot"
)

// Executor runs one command and returns the reply for the asker;
// *bot.Service implements it.
type Executor interface {
	Execute(ctx context.Context, cmd bot.Command) bot.Message
}

// ChatConfig names the person at the console and where they start.
type ChatConfig struct {
	User     string // platform user id, e.g. "analyst" (console:analyst)
	UserName string
	Email    string
	// Channel is the starting channel id, e.g. "contoso".
	Channel string
	// Channels lists the channel ids worth knowing about, for /help.
	Channels []string
	// SOCChannel is the id of the SOC channel, named in /help.
	SOCChannel string
}

// Chat is the console's chat loop: typed lines become bot.Commands, and
// the replies are printed through the Notifier.
type Chat struct {
	n    *Notifier
	exec Executor
	cfg  ChatConfig

	mu      sync.Mutex
	channel bot.ChannelRef
	// ephemeral buttons (only the asker saw them) and the message the
	// reply answered, so that clicks on a chooser keep their card's id.
	ephemeral map[buttonRef]string
}

type buttonRef struct {
	ch            bot.ChannelRef
	action, value string
}

// NewChat returns a Chat printing through n and executing with exec.
func NewChat(n *Notifier, exec Executor, cfg ChatConfig) *Chat {
	if cfg.User == "" {
		cfg.User = "user"
	}
	start := strings.TrimPrefix(cfg.Channel, "#")
	if start == "" {
		start = "general"
	}
	return &Chat{
		n:         n,
		exec:      exec,
		cfg:       cfg,
		channel:   bot.NewChannelRef(Platform, start),
		ephemeral: map[buttonRef]string{},
	}
}

// Channel returns the current channel.
func (c *Chat) Channel() bot.ChannelRef {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.channel
}

func (c *Chat) prompt() string {
	return fmt.Sprintf("[%s] > ", channelTag(c.Channel()))
}

// Run reads lines from in until /quit, end of input or ctx is done. It
// returns nil in all three cases and an error only when reading fails.
func (c *Chat) Run(ctx context.Context, in io.Reader) error {
	lines := make(chan string)
	readErr := make(chan error, 1)
	// Reading blocks and cannot be interrupted, so it runs on its own; on
	// cancellation it is left to end with the process (or its input).
	go func() {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
		readErr <- sc.Err()
	}()
	for {
		c.n.showPrompt(c.prompt())
		select {
		case <-ctx.Done():
			return nil
		case err := <-readErr:
			if err != nil {
				return fmt.Errorf("console: read input: %w", err)
			}
			c.n.inputEnded()
			return nil
		case line := <-lines:
			c.n.lineRead(line)
			if quit := c.Handle(ctx, line); quit {
				return nil
			}
		}
	}
}

// Handle runs one typed line and reports whether it asked to quit.
func (c *Chat) Handle(ctx context.Context, line string) (quit bool) {
	line = strings.TrimSpace(line)
	if line == "" {
		return false
	}
	word, rest, _ := strings.Cut(line, " ")
	rest = strings.TrimSpace(rest)
	switch strings.ToLower(word) {
	case "/quit", "/exit":
		return true
	case "/help":
		c.printLocal(c.help())
	case "/channel":
		c.switchChannel(rest)
	case "/click":
		c.click(ctx, rest)
	case "/mssp":
		c.typed(ctx, rest)
	default:
		if strings.HasPrefix(word, "/") {
			c.printLocal(fmt.Sprintf("Unknown console command %s. Type /help.", word))
			return false
		}
		c.typed(ctx, line)
	}
	return false
}

func (c *Chat) printLocal(s string) {
	_ = c.n.Print(strings.TrimRight(s, "\n") + "\n")
}

func (c *Chat) help() string {
	var b strings.Builder
	b.WriteString("Console chat:\n")
	b.WriteString("  /channel NAME        switch channel")
	var names []string
	for _, ch := range c.cfg.Channels {
		names = append(names, "#"+ch)
	}
	if len(names) > 0 {
		b.WriteString(": " + strings.Join(names, ", "))
	}
	b.WriteString("\n")
	if c.cfg.SOCChannel != "" {
		fmt.Fprintf(&b, "                       #%s is the SOC channel (sees every tenant); the others are customer channels\n", c.cfg.SOCChannel)
	}
	b.WriteString("  /channel             show the current channel\n")
	b.WriteString("  /mssp COMMAND …      run a bot command in this channel (\"/mssp\" may be left out); /mssp help lists them\n")
	b.WriteString("  /click ACTION VALUE  press a button of the latest message here that has it, as printed under cards\n")
	b.WriteString("  /help                this help\n")
	b.WriteString("  /quit                leave (end of input too)\n")
	fmt.Fprintf(&b, "You are %s; you are in %s.\n", c.userLabel(), channelTag(c.Channel()))
	return b.String()
}

func (c *Chat) userLabel() string {
	s := Platform + ":" + c.cfg.User
	if c.cfg.Email != "" {
		s += " (" + c.cfg.Email + ")"
	}
	return s
}

func (c *Chat) switchChannel(arg string) {
	name := strings.ToLower(strings.TrimPrefix(arg, "#"))
	if name == "" {
		c.printLocal("You are in " + channelTag(c.Channel()) + ".")
		return
	}
	if strings.ContainsAny(name, " \t:") {
		c.printLocal("Usage: /channel NAME (one word, e.g. /channel soc)")
		return
	}
	ch := bot.NewChannelRef(Platform, name)
	c.mu.Lock()
	c.channel = ch
	c.mu.Unlock()
	if len(c.cfg.Channels) > 0 && !contains(c.cfg.Channels, name) {
		c.printLocal("Now in " + channelTag(ch) + " (a channel the bot knows nothing about yet).")
		return
	}
	c.printLocal("Now in " + channelTag(ch) + ".")
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func (c *Chat) command() bot.Command {
	return bot.Command{
		Platform: Platform,
		Channel:  c.Channel(),
		User:     c.cfg.User,
		UserName: c.cfg.UserName,
		Email:    c.cfg.Email,
	}
}

func (c *Chat) typed(ctx context.Context, text string) {
	cmd := c.command()
	cmd.Origin = bot.OriginTyped
	cmd.Text = text
	c.reply(ctx, cmd)
}

// click resolves "/click ACTION VALUE" to the message carrying that
// button: the bot checks a click against the delivery it was made on.
func (c *Chat) click(ctx context.Context, arg string) {
	action, value, _ := strings.Cut(arg, " ")
	value = strings.TrimSpace(value)
	if action == "" {
		c.printLocal("Usage: /click ACTION_ID VALUE, as printed under a message.")
		return
	}
	ch := c.Channel()
	msgID, ok := c.n.MessageWithButton(ch, action, value)
	if !ok {
		c.mu.Lock()
		msgID, ok = c.ephemeral[buttonRef{ch, action, value}]
		c.mu.Unlock()
	}
	if !ok {
		c.printLocal(fmt.Sprintf("No message in %s has a button %s %s. Buttons belong to a channel: check /channel.", channelTag(ch), action, value))
		return
	}
	cmd := c.command()
	cmd.Origin = bot.OriginClick
	cmd.Action, cmd.Value, cmd.MessageID = action, value, msgID
	c.reply(ctx, cmd)
}

func (c *Chat) reply(ctx context.Context, cmd bot.Command) {
	m := c.exec.Execute(ctx, cmd)
	if len(m.Buttons) > 0 {
		c.mu.Lock()
		for _, b := range m.Buttons {
			if b.ActionID != "" {
				c.ephemeral[buttonRef{cmd.Channel, b.ActionID, b.Value}] = cmd.MessageID
			}
		}
		c.mu.Unlock()
	}
	_ = c.n.Print(c.n.r.Render(m))
}
