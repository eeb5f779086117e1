package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/msspbot/msspbot/bot"
	"github.com/msspbot/msspbot/config"
	"github.com/msspbot/msspbot/handlers"
	"github.com/msspbot/msspbot/integrations/defender"
	"github.com/msspbot/msspbot/integrations/discord"
	"github.com/msspbot/msspbot/integrations/slack"
	"github.com/msspbot/msspbot/metrics"
	"github.com/msspbot/msspbot/scheduler"
	"github.com/msspbot/msspbot/storage/sqlite"
)

// serveOptions are the seams tests use; production leaves them zero.
type serveOptions struct {
	// HTTPClient for Entra and Defender; nil: the default transport, whose
	// TLS trusts the system store (which honours SSL_CERT_FILE).
	HTTPClient *http.Client
	// Started receives the server's base URL once it listens.
	Started func(url string)
	// ShutdownTimeout bounds the graceful stop (default 25 s: Docker's
	// default stop timeout is 10 s per `docker stop -t`, Kubernetes' 30 s).
	ShutdownTimeout time.Duration
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFlag := fs.String("config", "", "configuration file (default: $"+config.EnvConfig+")")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: logLevel(os.Getenv("MSSPBOT_LOG_LEVEL"))}))
	path, err := config.Path(*configFlag, os.Getenv)
	if err != nil {
		fmt.Fprintln(stderr, "msspbot serve:", err)
		return 2
	}
	cfg, err := config.LoadFile(path)
	if err != nil {
		fmt.Fprintln(stderr, "msspbot serve:", err)
		return 2
	}
	if err := serve(ctx, cfg, log, serveOptions{}); err != nil {
		log.Error("serve stopped", "err", err)
		return 1
	}
	return 0
}

func logLevel(s string) slog.Level {
	var l slog.Level
	if l.UnmarshalText([]byte(s)) != nil {
		return slog.LevelInfo
	}
	return l
}

// serve runs the daemon until ctx is cancelled (SIGINT/SIGTERM), then stops
// in reverse order: HTTP, scheduler (a running pass may finish), chat
// runners, dispatcher and write-backs (flushing what the last commands
// queued), database.
func serve(ctx context.Context, cfg *config.Config, log *slog.Logger, opt serveOptions) (err error) {
	if opt.ShutdownTimeout <= 0 {
		opt.ShutdownTimeout = 25 * time.Second
	}
	log.Info("starting msspbot", "version", version, "config", cfg.Redacted())
	db, err := sqlite.Open(ctx, cfg.Database)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer func() {
		if cerr := db.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close database: %w", cerr)
		}
	}()
	if err := db.ApplyConfigTenants(ctx, cfg.ConfigTenants()); err != nil {
		return fmt.Errorf("apply config tenants: %w", err)
	}

	m := metrics.New(log)
	if err := m.WatchOutbox(db); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	dc, err := defender.New(defender.Config{
		Cloud: cfg.Azure.Cloud, ClientID: cfg.Azure.ClientID, ClientSecret: cfg.Azure.ClientSecret,
		CertificatePEM: cfg.Azure.Certificate, AuthorityHost: cfg.Azure.AuthorityHost,
		API: cfg.Defender.API, BaseURL: cfg.Defender.BaseURL, WriteBack: cfg.Defender.WriteBack,
		HTTPClient: opt.HTTPClient, Logger: log.With("component", "defender"),
	})
	if err != nil {
		return fmt.Errorf("defender: %w", err)
	}
	bc := cfg.Bot()
	bc.Permissions = defender.Permissions(cfg.Defender.API, cfg.Defender.WriteBack)
	redirect := cfg.HTTP.PublicURL + "/consent/callback"
	bc.ConsentURL = func(tenantID, state string) string {
		return dc.Tokens().ConsentURL(tenantID, state, redirect)
	}

	var svc *bot.Service
	sched, err := scheduler.New(cfg.Defender.Schedule, func(ctx context.Context) error { return svc.Poll(ctx) }, log.With("component", "scheduler"))
	if err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	deps := bot.Deps{
		Store: db, Source: dc, Target: dc, Access: dc, Observer: m, Trigger: sched.Trigger,
		Notifiers: map[string]bot.Notifier{}, Logger: log.With("component", "bot"),
	}

	srv := handlers.NewServer()
	srv.Addr, srv.Logger, srv.Metrics = cfg.HTTP.Listen, log.With("component", "http"), m.Handler()
	srv.AddCheck("database", db.Ping)
	srv.AddCheck("scheduler", sched.Ready)

	// Chat platforms: notifiers first (the Service needs them), then the
	// inbound side, which needs the Service.
	var runners []func(ctx context.Context) error
	var afterHTTP []func() // waits for answers still being sent after the HTTP server stopped
	var slackCfg slack.Config
	var slackGuard *slack.Guard
	if cfg.Slack.Enabled {
		socs := make([]string, 0, len(cfg.SOC.Channels))
		for _, ch := range cfg.SOC.Channels {
			socs = append(socs, string(ch))
		}
		slackCfg = slack.Config{
			BotToken: cfg.Slack.BotToken, SigningSecret: cfg.Slack.SigningSecret, AppToken: cfg.Slack.AppToken,
			APIURL: cfg.Slack.APIURL, Command: cfg.Slack.Command, SOCChannels: socs,
			Logger: log.With("component", "slack"),
		}
		n, err := slack.NewNotifier(slackCfg)
		if err != nil {
			return fmt.Errorf("slack: %w", err)
		}
		slackGuard = slack.NewGuard(slackCfg, n)
		deps.Notifiers[slack.Platform] = slack.NewPaced(slackGuard)
		runners = append(runners, slackGuard.RunSafetyChecks)
		srv.AddCheck("slack-soc-channels", func(context.Context) error { return slackGuard.Ready() })
	}
	// The Discord inbound side is set up once the Service exists; the
	// closure keeps the SDK's session type inside the discord package.
	var setupDiscord func() error
	if cfg.Discord.Enabled {
		s, err := discord.NewSession(cfg.Discord.Token, cfg.Discord.APIURL, nil)
		if err != nil {
			return fmt.Errorf("discord: %w", err)
		}
		deps.Notifiers[discord.Platform] = discord.NewNotifier(s, log.With("component", "discord"))
		setupDiscord = func() error {
			inter := &discord.Interactions{Session: s, Executor: svc, Alerts: svc, Logger: log.With("component", "discord")}
			if err := discord.Register(ctx, s, cfg.Discord.ApplicationID, cfg.Discord.GuildIDs); err != nil {
				// Not fatal: Discord keeps the last registration.
				log.Error("discord: register /mssp", "err", err)
			}
			if cfg.Discord.Mode == "http" {
				key, err := discord.ParsePublicKey(cfg.Discord.PublicKey)
				if err != nil {
					return fmt.Errorf("discord: %w", err)
				}
				h, err := discord.InteractionsHandler(key, inter)
				if err != nil {
					return fmt.Errorf("discord: %w", err)
				}
				srv.Handle("POST /discord/interactions", h)
				return nil
			}
			r := &discord.Runner{Session: s, Interactions: inter, Logger: log.With("component", "discord")}
			runners = append(runners, r.Run)
			srv.AddCheck("discord", func(context.Context) error {
				if !r.Connected() {
					return errors.New("gateway not connected")
				}
				return nil
			})
			return nil
		}
	}

	svc = bot.New(bc, deps)
	srv.Handle("GET /consent/callback", handlers.Consent(svc))

	if cfg.Slack.Enabled {
		ids, err := slack.NewIdentities(slackCfg, 0)
		if err != nil {
			return fmt.Errorf("slack: %w", err)
		}
		switch cfg.Slack.Mode {
		case "http":
			h, err := slack.NewHTTPHandlers(slackCfg, svc, slack.WithIdentities(ids), slack.WithGuard(slackGuard))
			if err != nil {
				return fmt.Errorf("slack: %w", err)
			}
			srv.Handle("POST /slack/commands", h.Commands())
			srv.Handle("POST /slack/interactions", h.Interactions())
			srv.Handle("POST /slack/events", h.Events())
			afterHTTP = append(afterHTTP, h.Wait)
		default:
			rn, err := slack.NewRunner(slackCfg, svc, slack.WithIdentities(ids), slack.WithGuard(slackGuard))
			if err != nil {
				return fmt.Errorf("slack: %w", err)
			}
			runners = append(runners, rn.Run)
			srv.AddCheck("slack", func(context.Context) error { return rn.Ready() })
		}
	}
	if setupDiscord != nil {
		if err := setupDiscord(); err != nil {
			return err
		}
	}

	if err := svc.Recover(ctx); err != nil {
		return fmt.Errorf("recover outbox: %w", err)
	}
	if err := sched.AddDaily("retention", scheduler.Retention(db, cfg.Retention.Alerts.Duration(), cfg.Retention.Audit.Duration(), m, log, nil)); err != nil {
		return fmt.Errorf("retention: %w", err)
	}
	if err := srv.Open(); err != nil {
		return fmt.Errorf("http: %w", err)
	}
	log.Info("listening", "url", srv.URL())
	if opt.Started != nil {
		opt.Started(srv.URL())
	}

	// Workers outlive ctx a little: the dispatcher flushes what the last
	// commands queued before the process exits.
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	g, gctx := errgroup.WithContext(workCtx)
	g.Go(func() error { return svc.RunDispatcher(gctx, time.Second) })
	g.Go(func() error { return svc.RunWriteBacks(gctx, 2*time.Second) })
	chatCtx, stopChat := context.WithCancel(ctx)
	defer stopChat()
	for _, run := range runners {
		g.Go(func() error { return run(chatCtx) })
	}
	if err := sched.Start(ctx); err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case <-gctx.Done():
		log.Error("a component stopped; shutting down")
	}
	sd, cancel := context.WithTimeout(context.Background(), opt.ShutdownTimeout)
	defer cancel()
	if err := srv.Close(sd); err != nil {
		log.Warn("http close", "err", err)
	}
	for _, wait := range afterHTTP {
		wait()
	}
	if err := sched.Stop(sd); err != nil {
		log.Warn("scheduler stop", "err", err)
	}
	stopChat()
	// A short grace for the running dispatcher (woken by every command) to
	// send what the last commands queued; the rest goes at the next start.
	// Never a second Dispatch here: two rounds at once could send twice.
	select {
	case <-time.After(1500 * time.Millisecond):
	case <-sd.Done():
	}
	stopWork()
	werr := g.Wait()
	if werr != nil && !errors.Is(werr, context.Canceled) {
		return werr
	}
	log.Info("stopped")
	return nil
}
