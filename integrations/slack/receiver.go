package slack

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/msspbot/msspbot/bot"
)

const (
	defaultBudget      = 2500 * time.Millisecond
	defaultExecTimeout = 30 * time.Second
	respondTimeout     = 10 * time.Second
)

// receiver is what HTTP mode and Socket Mode share: turning slash commands
// and clicks into bot.Commands, running them within Slack's answer budget,
// and answering late through response_url.
type receiver struct {
	exec        Executor
	ids         *Identities
	guard       *Guard // nil: no SOC channel check on commands
	log         *slog.Logger
	command     string
	budget      time.Duration
	execTimeout time.Duration
	client      *http.Client // response_url posts
	tokens      []string
	apiHost     string // host[:port] of an overridden Web API URL, also trusted for response_url

	wg sync.WaitGroup // executions and late answers in flight
}

func newReceiver(cfg Config, exec Executor, opts []Option) *receiver {
	r := &receiver{
		exec:        exec,
		log:         cfg.logger(),
		command:     cfg.command(),
		budget:      defaultBudget,
		execTimeout: defaultExecTimeout,
		client:      cfg.httpClient(),
		tokens:      secrets(cfg),
	}
	if u, err := url.Parse(cfg.APIURL); err == nil && cfg.APIURL != "" {
		r.apiHost = strings.ToLower(u.Host)
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// wait blocks until every execution and late answer has finished.
func (r *receiver) wait() { r.wg.Wait() }

// slash runs a slash command. It returns the answer when the executor
// finished within the budget, or nil when the answer (if any) goes to
// response_url later.
func (r *receiver) slash(ctx context.Context, sc slackapi.SlashCommand) *slackapi.WebhookMessage {
	if !strings.EqualFold(strings.TrimSpace(sc.Command), r.command) {
		return reply(bot.Message{
			Kind: bot.MessageText,
			Text: fmt.Sprintf("Unknown command %s; this app answers %s.", sc.Command, r.command),
		}, "")
	}
	cmd := bot.Command{
		Platform: Platform,
		Channel:  bot.NewChannelRef(Platform, sc.ChannelID),
		User:     sc.UserID,
		UserName: sc.UserName,
		Origin:   bot.OriginTyped,
		Text:     bot.UnescapeSlack(sc.Text),
	}
	m, ok := r.run(ctx, cmd, sc.ResponseURL, "")
	if !ok || empty(m) {
		return nil
	}
	return reply(m, "")
}

// click is one button press with the ts its answer's buttons refer to.
type click struct {
	cmd    bot.Command
	origin string
}

// clicks turns a block_actions callback into commands. The Grant access
// link button opens the browser by itself; Slack still reports the click,
// which needs nothing but the acknowledgement.
func clicks(ic slackapi.InteractionCallback) []click {
	if ic.Type != slackapi.InteractionTypeBlockActions {
		return nil
	}
	channel := ic.Channel.ID
	if channel == "" {
		channel = ic.Container.ChannelID
	}
	msgTS := ic.Container.MessageTs
	if msgTS == "" {
		msgTS = ic.Message.Timestamp
	}
	var out []click
	for _, a := range ic.ActionCallback.BlockActions {
		if a == nil || a.ActionID == bot.ActionGrant || a.ActionID == "" {
			continue
		}
		id := msgTS
		// A button on an ephemeral answer (the resolve chooser) is checked
		// against the card it answered, whose ts the answer carries.
		if ic.Container.IsEphemeral {
			if origin, ok := strings.CutPrefix(a.BlockID, originPrefix); ok {
				origin, _, _ = strings.Cut(origin, "#")
				id = origin
			}
		}
		out = append(out, click{
			cmd: bot.Command{
				Platform:  Platform,
				Channel:   bot.NewChannelRef(Platform, channel),
				User:      ic.User.ID,
				UserName:  ic.User.Name,
				Origin:    bot.OriginClick,
				Action:    a.ActionID,
				Value:     a.Value,
				MessageID: id,
			},
			origin: id,
		})
	}
	return out
}

// interaction runs the clicks of a callback in the background; their
// answers go to response_url as ephemeral messages, leaving the card alone.
func (r *receiver) interaction(ctx context.Context, ic slackapi.InteractionCallback) {
	for _, c := range clicks(ic) {
		r.wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.execTimeout)
			defer cancel()
			m := r.execute(ctx, c.cmd)
			if !empty(m) {
				r.respond(ctx, ic.ResponseURL, m, c.origin)
			}
		})
	}
}

// run executes cmd and waits up to the budget. When the executor is late
// it returns false and the answer is posted to responseURL when ready.
func (r *receiver) run(ctx context.Context, cmd bot.Command, responseURL, origin string) (bot.Message, bool) {
	var (
		mu   sync.Mutex
		late bool
		done = make(chan bot.Message, 1)
	)
	r.wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.execTimeout)
		defer cancel()
		m := r.execute(ctx, cmd)
		mu.Lock()
		if !late {
			done <- m
			mu.Unlock()
			return
		}
		mu.Unlock()
		if !empty(m) {
			r.respond(ctx, responseURL, m, origin)
		}
	})

	t := time.NewTimer(r.budget)
	defer t.Stop()
	select {
	case m := <-done:
		return m, true
	case <-t.C:
	}
	mu.Lock()
	defer mu.Unlock()
	select {
	case m := <-done: // finished just now
		return m, true
	default:
		late = true
		return bot.Message{}, false
	}
}

// execute fills the e-mail and runs the executor; a panic becomes a
// generic answer rather than a dead process.
func (r *receiver) execute(ctx context.Context, cmd bot.Command) (m bot.Message) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("slack: executor panicked", "panic", p, "stack", string(debug.Stack()))
			m = bot.Message{Kind: bot.MessageText, Text: bot.ErrorMessage(fmt.Errorf("panic")), Ephemeral: true}
		}
	}()
	if r.guard != nil {
		if refusal := r.guard.commandRefusal(cmd.Channel); refusal != "" {
			return bot.Message{Kind: bot.MessageText, Text: refusal, Ephemeral: true}
		}
	}
	if r.ids != nil {
		cmd.Email = r.ids.Email(ctx, cmd.User)
	}
	return r.exec.Execute(ctx, cmd)
}

// respond posts an ephemeral answer to a response_url.
func (r *receiver) respond(ctx context.Context, responseURL string, m bot.Message, origin string) {
	r.post(ctx, responseURL, reply(m, origin))
}

func (r *receiver) post(ctx context.Context, responseURL string, msg *slackapi.WebhookMessage) {
	if responseURL == "" {
		r.log.Warn("slack: answer dropped: no response_url")
		return
	}
	if !r.slackURL(responseURL) {
		// Answers can carry tenant data: only Slack may receive them, even
		// if a request were forged with a leaked signing secret.
		r.log.Warn("slack: answer dropped: response_url is not a Slack https URL")
		return
	}
	ctx, cancel := context.WithTimeout(ctx, respondTimeout)
	defer cancel()
	if err := slackapi.PostWebhookCustomHTTPContext(ctx, responseURL, r.client, msg); err != nil {
		// response_url carries a one-time secret: never log it.
		r.log.Warn("slack: posting to response_url failed", "err", scrubURL(scrub(err, r.tokens), responseURL))
	}
}

// reply is an ephemeral answer, as a response body, Socket Mode ack
// payload or response_url post.
func reply(m bot.Message, origin string) *slackapi.WebhookMessage {
	blocks, text := render(m, origin)
	w := &slackapi.WebhookMessage{Text: text, ResponseType: slackapi.ResponseTypeEphemeral}
	if len(blocks) > 0 {
		w.Blocks = &slackapi.Blocks{BlockSet: blocks}
	}
	return w
}

// empty reports whether a reply has nothing to show.
func empty(m bot.Message) bool {
	return m.Text == "" && m.Title == "" && m.Card == nil && m.Digest == nil && m.List == nil &&
		len(m.Fields) == 0 && len(m.Buttons) == 0
}

// slackURL reports whether a response_url points at Slack: https on
// slack.com or slack-gov.com (GovSlack) or a subdomain, or the host of an
// overridden API URL (a test or proxy setting).
func (r *receiver) slackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.User != nil {
		return false
	}
	if r.apiHost != "" && strings.EqualFold(u.Host, r.apiHost) {
		return true
	}
	if u.Scheme != "https" || u.Port() != "" {
		return false
	}
	host := strings.ToLower(u.Hostname())
	for _, d := range []string{"slack.com", "slack-gov.com"} {
		if host == d || strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return false
}

func scrubURL(err error, u string) string {
	if u == "" {
		return err.Error()
	}
	return strings.ReplaceAll(err.Error(), u, "[response_url]")
}
