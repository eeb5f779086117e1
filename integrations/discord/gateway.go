package discord

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/gorilla/websocket"
)

// Gateway close codes that retrying cannot fix.
const (
	closeAuthFailed        = 4004
	closeDisallowedIntents = 4014
)

// Runner receives interactions over the gateway (discord.mode: gateway):
// no public URL is needed for chat.
type Runner struct {
	Session      *discordgo.Session // from NewSession
	Interactions *Interactions
	Logger       *slog.Logger // nil: slog.Default()

	connected atomic.Bool
}

func (r *Runner) log() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

// Connected reports whether the gateway connection is up (for /readyz).
func (r *Runner) Connected() bool { return r.connected.Load() }

// Run connects and handles interactions until ctx ends. A failed first
// connection is retried with backoff; discordgo reconnects by itself after
// that. It returns nil when ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	if r.Session == nil || r.Interactions == nil {
		return errors.New("discord: runner needs a session and interactions")
	}
	s := r.Session
	defer s.AddHandler(func(_ *discordgo.Session, ic *discordgo.InteractionCreate) {
		r.handle(ctx, ic.Interaction)
	})()
	defer s.AddHandler(func(*discordgo.Session, *discordgo.Connect) { r.connected.Store(true) })()
	defer s.AddHandler(func(*discordgo.Session, *discordgo.Disconnect) { r.connected.Store(false) })()

	wait := time.Second
	for {
		err := s.Open()
		if err == nil {
			break
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) && (ce.Code == closeAuthFailed || ce.Code == closeDisallowedIntents) {
			// A wrong token does not get better by retrying.
			return fmt.Errorf("discord: gateway refused the bot (close code %d): %w", ce.Code, err)
		}
		r.log().Warn("discord: connect to gateway", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(wait*2, time.Minute)
	}
	r.log().Info("discord: gateway connected")
	<-ctx.Done()
	r.connected.Store(false)
	if err := s.Close(); err != nil {
		return fmt.Errorf("discord: close gateway: %w", err)
	}
	return nil
}

// handle answers one interaction from the gateway: respond (possibly
// deferred), then send the follow-up.
func (r *Runner) handle(ctx context.Context, i *discordgo.Interaction) {
	if i == nil {
		return
	}
	resp, followUp := r.Interactions.HandleInteraction(ctx, i)
	if err := respond(ctx, r.Session, i, resp); err != nil {
		r.log().Error("discord: answer interaction", "type", i.Type.String(), "err", scrubToken(err, i.Token))
		return
	}
	if followUp != nil {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tokenLifetime)
		defer cancel()
		followUp(fctx)
	}
}
