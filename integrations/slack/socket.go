package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	slackapi "github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// Runner receives slash commands, clicks and events over Socket Mode
// (slack.mode: socket): no public URL is needed for chat.
type Runner struct {
	r         *receiver
	client    *socketmode.Client
	connected atomic.Bool
}

// NewRunner returns a Socket Mode runner for cfg.AppToken (xapp-…).
func NewRunner(cfg Config, exec Executor, opts ...Option) (*Runner, error) {
	if cfg.AppToken == "" {
		return nil, errors.New("slack: app_token is required in socket mode")
	}
	if !strings.HasPrefix(cfg.AppToken, "xapp-") {
		return nil, errors.New("slack: app_token must be an app-level token (xapp-…)")
	}
	if exec == nil {
		return nil, errors.New("slack: executor is required")
	}
	r := newReceiver(cfg, exec, opts)
	client := socketmode.New(cfg.api(),
		socketmode.OptionLog(slog.NewLogLogger(r.log.Handler(), slog.LevelDebug)))
	return &Runner{r: r, client: client}, nil
}

// Ready reports whether the Socket Mode connection is up; for /readyz.
func (rn *Runner) Ready() error {
	if !rn.connected.Load() {
		return errors.New("slack: socket mode not connected")
	}
	return nil
}

// Run connects and serves until ctx is done. socketmode reconnects by
// itself after a dropped connection or Slack's disconnect request; Run
// returns an error only when it gives up (invalid or revoked app token).
// On return every command in flight has been answered.
func (rn *Runner) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- rn.client.RunContext(ctx) }()

	var runErr error
loop:
	for {
		select {
		case err := <-errc:
			runErr = err
			break loop
		case evt := <-rn.client.Events:
			rn.handle(ctx, evt)
		}
	}
	cancel()
	rn.connected.Store(false)
	rn.r.wait()
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return fmt.Errorf("slack: socket mode: %w", scrub(runErr, rn.r.tokens))
	}
	return nil
}

func (rn *Runner) handle(ctx context.Context, evt socketmode.Event) {
	log := rn.r.log
	switch evt.Type {
	case socketmode.EventTypeConnecting:
		log.Debug("slack: socket mode connecting")
	case socketmode.EventTypeConnected:
		rn.connected.Store(true)
		log.Info("slack: socket mode connected")
	case socketmode.EventTypeHello:
		rn.connected.Store(true)
	case socketmode.EventTypeConnectionError, socketmode.EventTypeIncomingError:
		rn.connected.Store(false)
		log.Warn("slack: socket mode connection error", "event", string(evt.Type), "err", eventError(evt.Data, rn.r.tokens))
	case socketmode.EventTypeInvalidAuth:
		rn.connected.Store(false)
		log.Error("slack: socket mode: app token refused")
	case socketmode.EventTypeDisconnect:
		rn.connected.Store(false)
		log.Info("slack: socket mode disconnect requested; reconnecting")
	case socketmode.EventTypeSlashCommand:
		sc, ok := evt.Data.(slackapi.SlashCommand)
		if !ok || evt.Request == nil {
			return
		}
		req := *evt.Request
		// Run off the event loop, so a slow command does not hold the others.
		rn.r.wg.Go(func() { rn.slash(ctx, req, sc) })
	case socketmode.EventTypeInteractive:
		ic, ok := evt.Data.(slackapi.InteractionCallback)
		if evt.Request != nil {
			rn.ack(ctx, *evt.Request, nil)
		}
		if ok {
			rn.r.interaction(ctx, ic)
		}
	case socketmode.EventTypeEventsAPI:
		if evt.Request != nil {
			rn.ack(ctx, *evt.Request, nil)
		}
	case socketmode.EventTypeErrorBadMessage, socketmode.EventTypeErrorWriteFailed:
		log.Warn("slack: socket mode message error", "event", string(evt.Type))
	}
}

// slash answers in the ack when the executor is quick, else acknowledges
// and answers through response_url.
func (rn *Runner) slash(ctx context.Context, req socketmode.Request, sc slackapi.SlashCommand) {
	if sc.ChannelID == "" || sc.UserID == "" {
		rn.ack(ctx, req, nil)
		return
	}
	msg := rn.r.slash(ctx, sc)
	if msg == nil {
		rn.ack(ctx, req, nil)
		return
	}
	if err := rn.client.AckCtx(ctx, req.EnvelopeID, msg); err != nil {
		if ctx.Err() != nil {
			return // shutting down
		}
		// Too large for an ack (20 KB): acknowledge and answer separately.
		rn.ack(ctx, req, nil)
		rn.r.post(ctx, sc.ResponseURL, msg)
	}
}

func (rn *Runner) ack(ctx context.Context, req socketmode.Request, payload any) {
	if err := rn.client.AckCtx(ctx, req.EnvelopeID, payload); err != nil && ctx.Err() == nil {
		rn.r.log.Warn("slack: socket mode ack failed", "err", err)
	}
}

func eventError(data any, tokens []string) string {
	switch d := data.(type) {
	case *slackapi.ConnectionErrorEvent:
		if d.ErrorObj != nil {
			return scrub(d.ErrorObj, tokens).Error()
		}
	case *slackapi.IncomingEventError:
		if d.ErrorObj != nil {
			return scrub(d.ErrorObj, tokens).Error()
		}
	}
	return ""
}
