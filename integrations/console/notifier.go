package console

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/msspbot/msspbot/bot"
)

// Platform is the console's platform name in bot.ChannelRef and bot.Command.
const Platform = "console"

// Options configure a Notifier.
type Options struct {
	// Color enables ANSI colour (see ColorAllowed).
	Color bool
	// Interactive says a person types at a terminal: asynchronous output
	// then clears and redraws the input prompt. Otherwise typed lines are
	// echoed after the prompt so that a transcript reads well.
	Interactive bool
	// Location is the viewer's time zone; nil: time.Local.
	Location *time.Location
	// IDPrefix starts every message id; default "c" (ids c1, c2, …). A
	// demo reusing a database across runs should pick a prefix per run so
	// that ids of a previous run's cards are never handed out again.
	IDPrefix string
}

// Notifier implements bot.Notifier on a terminal. It is the only writer
// of its io.Writer: the Chat prints through it too, under one lock.
type Notifier struct {
	mu          sync.Mutex
	w           io.Writer
	r           Renderer
	interactive bool
	prefix      string
	seq         int
	keys        map[keyRef]string
	msgs        map[string]*sentMsg
	byChannel   map[bot.ChannelRef][]string // message ids, oldest first
	prompt      string
	promptShown bool
}

type keyRef struct {
	ch  bot.ChannelRef
	key string
}

type sentMsg struct {
	ch      bot.ChannelRef
	buttons []bot.Button
}

var _ bot.Notifier = (*Notifier)(nil)

// NewNotifier returns a Notifier printing to w.
func NewNotifier(w io.Writer, opt Options) *Notifier {
	p := opt.IDPrefix
	if p == "" {
		p = "c"
	}
	return &Notifier{
		w:           w,
		r:           Renderer{Color: opt.Color, Location: opt.Location},
		interactive: opt.Interactive,
		prefix:      p,
		keys:        map[keyRef]string{},
		msgs:        map[string]*sentMsg{},
		byChannel:   map[bot.ChannelRef][]string{},
	}
}

// Renderer returns the renderer the notifier uses.
func (n *Notifier) Renderer() Renderer { return n.r }

func checkChannel(ctx context.Context, ch bot.ChannelRef) error {
	if err := ctx.Err(); err != nil {
		return &bot.SendError{Reason: "cancelled", Err: err}
	}
	if !ch.Valid() || ch.Platform() != Platform {
		return bot.PermanentError("channel_not_found", fmt.Errorf("console: not a console channel: %q", ch))
	}
	return nil
}

// channelTag is how a channel is shown: "#contoso".
func channelTag(ch bot.ChannelRef) string { return "#" + ch.ID() }

// record remembers a message's channel and buttons; n.mu is held.
func (n *Notifier) record(id string, ch bot.ChannelRef, buttons []bot.Button) {
	if _, ok := n.msgs[id]; !ok {
		n.byChannel[ch] = append(n.byChannel[ch], id)
	}
	n.msgs[id] = &sentMsg{ch: ch, buttons: append([]bot.Button(nil), buttons...)}
}

func (n *Notifier) nextID() string {
	n.seq++
	return n.prefix + strconv.Itoa(n.seq)
}

// Post implements bot.Notifier.
func (n *Notifier) Post(ctx context.Context, ch bot.ChannelRef, key string, m bot.Message) (string, error) {
	if err := checkChannel(ctx, ch); err != nil {
		return "", err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	id := n.nextID()
	head := n.r.style(ansiBold+ansiCyan, channelTag(ch)) + " " + n.r.style(ansiDim, "[msg "+id+"]")
	if err := n.emit(head+"\n"+n.r.Render(m), true); err != nil {
		n.seq-- // nothing was shown: hand the id out again
		return "", err
	}
	if key != "" {
		n.keys[keyRef{ch, key}] = id
	}
	n.record(id, ch, m.Buttons)
	return id, nil
}

// Thread implements bot.Notifier: the line is printed indented under the
// root's id.
func (n *Notifier) Thread(ctx context.Context, ch bot.ChannelRef, rootID string, m bot.Message) (string, error) {
	if err := checkChannel(ctx, ch); err != nil {
		return "", err
	}
	if rootID == "" {
		return "", bot.PermanentError("thread_not_found", fmt.Errorf("console: thread line without a root in %s", ch))
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	id := n.nextID()
	head := "  ↳ " + n.r.style(ansiCyan, channelTag(ch)) + " " + n.r.style(ansiDim, "[msg "+rootID+"]") + " "
	body := indent(n.r.Render(m), "    ")
	if err := n.emit(head+body, true); err != nil {
		n.seq--
		return "", err
	}
	n.record(id, ch, m.Buttons)
	return id, nil
}

// Edit implements bot.Notifier: the card is printed again, marked as an
// update of messageID. An id this process did not hand out (a card of an
// earlier run on the same database) is printed and remembered all the same.
func (n *Notifier) Edit(ctx context.Context, ch bot.ChannelRef, messageID string, m bot.Message) error {
	if err := checkChannel(ctx, ch); err != nil {
		return err
	}
	if messageID == "" {
		return bot.PermanentError("message_not_found", fmt.Errorf("console: edit without a message id in %s", ch))
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if old, ok := n.msgs[messageID]; ok && old.ch != ch {
		return bot.PermanentError("message_not_found", fmt.Errorf("console: message %s is not in %s", messageID, ch))
	}
	head := n.r.style(ansiBold+ansiCyan, channelTag(ch)) + " ✎ card " + n.r.style(ansiDim, "[msg "+messageID+"]") + " updated:"
	if err := n.emit(head+"\n"+n.r.Render(m), true); err != nil {
		return err
	}
	n.record(messageID, ch, m.Buttons)
	return nil
}

// Find implements bot.Notifier. Messages are remembered only within the
// process, so after a restart every post is "not found" and sent again.
func (n *Notifier) Find(ctx context.Context, ch bot.ChannelRef, key string) (string, bool, error) {
	if err := checkChannel(ctx, ch); err != nil {
		return "", false, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	id, ok := n.keys[keyRef{ch, key}]
	return id, ok, nil
}

// MessageWithButton returns the id of the most recent message in ch that
// carries a button with this action and value.
func (n *Notifier) MessageWithButton(ch bot.ChannelRef, action, value string) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ids := n.byChannel[ch]
	for i := len(ids) - 1; i >= 0; i-- {
		for _, b := range n.msgs[ids[i]].buttons {
			if b.ActionID == action && b.Value == value {
				return ids[i], true
			}
		}
	}
	return "", false
}

// Print writes text for the person at the console (replies, help).
func (n *Notifier) Print(s string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.emit(s, false)
}

// showPrompt shows the input prompt on a terminal and keeps it for
// redrawing. Off a terminal it is written with the line once read (see
// lineRead), so that a transcript shows each command where it took effect.
func (n *Notifier) showPrompt(p string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.prompt = p
	if n.interactive {
		_, _ = io.WriteString(n.w, p)
		n.promptShown = true
	}
}

// lineRead notes that the person finished typing a line; off a terminal
// it echoes prompt and line, since nothing else shows them.
func (n *Notifier) lineRead(line string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.interactive {
		_, _ = io.WriteString(n.w, n.prompt+line+"\n")
	}
	n.promptShown = false
}

// inputEnded ends the prompt's line when input ends at the prompt (Ctrl-D).
func (n *Notifier) inputEnded() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.promptShown {
		_, _ = io.WriteString(n.w, "\n")
		n.promptShown = false
	}
}

// emit writes s; n.mu is held. Asynchronous output (a card arriving while
// the person types) clears the prompt line and draws the prompt again
// below it.
func (n *Notifier) emit(s string, async bool) error {
	redraw := n.promptShown && async
	if redraw {
		s = "\r\x1b[K" + s + n.prompt
	}
	if _, err := io.WriteString(n.w, s); err != nil {
		return &bot.SendError{Reason: "console write failed", Err: fmt.Errorf("console: write: %w", err)}
	}
	if !redraw {
		n.promptShown = false
	}
	return nil
}

// indent indents every line after the first by pad.
func indent(s, pad string) string {
	s = strings.TrimRight(s, "\n")
	return strings.ReplaceAll(s, "\n", "\n"+pad) + "\n"
}
