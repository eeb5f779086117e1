package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/msspbot/msspbot/bot"
	"github.com/msspbot/msspbot/integrations/console"
	"github.com/msspbot/msspbot/integrations/sim"
	"github.com/msspbot/msspbot/storage/sqlite"
)

const (
	maxDemoTenants  = 50
	demoSOCChannel  = "soc"
	demoUser        = "analyst"
	demoIdentity    = "analyst@mssp.example"
	shutdownTimeout = 10 * time.Second
)

// demoNames are the simulated customers, Microsoft's fictitious companies;
// beyond them the names repeat with a number.
var demoNames = []string{
	"Contoso", "Fabrikam", "Northwind", "Tailspin", "Woodgrove", "Adatum", "Litware", "Proseware",
	"Wingtip", "Relecloud", "Lamna", "Trey", "Coho", "Lucerne", "Humongous", "Alpine", "Tailwind",
	"VanArsdel", "Margie", "Southridge", "Bellows", "Munson", "Wideworld", "Nod", "Consolidated",
}

type demoOptions struct {
	DB       string // "" = a temporary database removed at exit
	Tenants  int
	Interval time.Duration
	Verbose  bool
}

// demoTenant is a simulated tenant with its customer channel id.
type demoTenant struct {
	ID, Name, Channel string
}

func runDemo(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, err := parseDemoFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	if err := demo(ctx, o, stdin, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "msspbot demo: %v\n", err)
		return 1
	}
	return 0
}

// parseDemoFlags parses and checks the demo's flags; every problem is
// already reported on stderr when it returns an error.
func parseDemoFlags(args []string, stderr io.Writer) (demoOptions, error) {
	var o demoOptions
	fs := flag.NewFlagSet("msspbot demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.DB, "db", "", "SQLite database `file` (default: a temporary one, removed at exit)")
	fs.IntVar(&o.Tenants, "tenants", 3, "number of simulated customer tenants, 1-50")
	fs.DurationVar(&o.Interval, "interval", 15*time.Second, "how often the simulated tenants raise alerts and the bot fetches them")
	fs.BoolVar(&o.Verbose, "verbose", false, "log at info level (default: warnings only)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var problem string
	switch {
	case fs.NArg() > 0:
		problem = fmt.Sprintf("unexpected argument %q", fs.Arg(0))
	case o.Tenants < 1 || o.Tenants > maxDemoTenants:
		problem = fmt.Sprintf("--tenants must be between 1 and %d, not %d", maxDemoTenants, o.Tenants)
	case o.Interval < 10*time.Millisecond:
		problem = fmt.Sprintf("--interval must be at least 10ms, not %s", o.Interval)
	}
	if problem != "" {
		fmt.Fprintf(stderr, "msspbot demo: %s\n", problem)
		fs.Usage()
		return o, errors.New(problem)
	}
	return o, nil
}

// demoTenants returns n simulated tenants with GUIDs derived from their
// names, so that a database kept with --db meets the same tenants again.
func demoTenants(n int) []demoTenant {
	out := make([]demoTenant, n)
	for i := range out {
		name := demoNames[i%len(demoNames)]
		if k := i / len(demoNames); k > 0 {
			name += " " + strconv.Itoa(k+1)
		}
		out[i] = demoTenant{
			ID:      demoTenantID(name),
			Name:    name,
			Channel: strings.ToLower(strings.ReplaceAll(name, " ", "")),
		}
	}
	return out
}

// demoTenantID derives an RFC 9562 version 8 (custom) UUID from name.
func demoTenantID(name string) string {
	sum := sha256.Sum256([]byte("msspbot demo tenant/" + name))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x80
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// demo runs the real pipeline against simulated tenants with a chat on
// the terminal, until the chat ends or ctx is done.
func demo(ctx context.Context, o demoOptions, stdin io.Reader, stdout, stderr io.Writer) (err error) {
	level := slog.LevelWarn // keep the console readable
	if o.Verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	path, temp := o.DB, o.DB == ""
	idPrefix := "c"
	if temp {
		dir, err := os.MkdirTemp("", "msspbot-demo-")
		if err != nil {
			return fmt.Errorf("create temporary directory: %w", err)
		}
		defer os.RemoveAll(dir)
		path = filepath.Join(dir, "demo.db")
	} else {
		// Cards of earlier runs keep their message ids in the database:
		// this run's ids must not repeat them.
		idPrefix = "c" + strconv.FormatInt(time.Now().Unix()%(36*36*36), 36) + "."
	}
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer func() {
		if cerr := db.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close database: %w", cerr)
		}
	}()

	tenants := demoTenants(o.Tenants)
	cfgTenants := make([]bot.ConfigTenant, len(tenants))
	simTenants := make([]sim.Tenant, len(tenants))
	channels := []string{demoSOCChannel}
	for i, t := range tenants {
		cfgTenants[i] = bot.ConfigTenant{ID: t.ID, Name: t.Name, Channels: []bot.ChannelRef{bot.NewChannelRef(console.Platform, t.Channel)}}
		simTenants[i] = sim.Tenant{ID: t.ID, Name: t.Name}
		channels = append(channels, t.Channel)
	}
	if err := db.ApplyConfigTenants(ctx, cfgTenants); err != nil {
		return fmt.Errorf("declare tenants: %w", err)
	}

	defender := sim.New(time.Now().UnixNano(), simTenants, time.Now)
	notifier := console.NewNotifier(stdout, console.Options{
		Color:       console.ColorAllowed(stdout),
		Interactive: console.IsTerminal(stdin) && console.IsTerminal(stdout),
		IDPrefix:    idPrefix,
	})
	user := console.Platform + ":" + demoUser
	trigger := make(chan struct{}, 1)
	svc := bot.New(bot.Config{
		SOCChannels:     []bot.ChannelRef{bot.NewChannelRef(console.Platform, demoSOCChannel)},
		SOCUsers:        []string{user},
		Identities:      map[string]string{user: demoIdentity},
		CustomersCanAck: true,
		StormThreshold:  20,
		WriteBack:       true,
		Permissions:     []string{"WindowsDefenderATP Alert.ReadWrite.All"},
		// Onboarding works in the demo: the Grant button (/click
		// access_grant ID) plays the customer admin's consent.
		PublicURL: "http://127.0.0.1/demo",
		AppID:     "00000000-0000-4000-8000-00000000d3e0",
		ConsentURL: func(tenantID, state string) string {
			return "https://login.microsoftonline.com/" + tenantID + "/v2.0/adminconsent?client_id=00000000-0000-4000-8000-00000000d3e0&state=…"
		},
	}, bot.Deps{
		Store:     db,
		Source:    defender,
		Target:    defender,
		Access:    defender,
		Notifiers: map[string]bot.Notifier{console.Platform: notifier},
		Logger:    log,
		Trigger: func() {
			select {
			case trigger <- struct{}{}:
			default: // one queued pass is enough
			}
		},
		SimulateConsent: func(ctx context.Context, tenantID string) error {
			name := "Customer"
			if t, err := db.FindTenant(ctx, tenantID); err == nil {
				name = t.Name
			}
			defender.AddTenant(sim.Tenant{ID: tenantID, Name: name})
			return nil
		},
	})
	if err := svc.Recover(ctx); err != nil {
		return fmt.Errorf("recover outbox: %w", err)
	}

	dbNote := "kept"
	if temp {
		dbNote = "temporary, removed at exit"
	}
	_ = notifier.Print(banner(tenants, o.Interval, path, dbNote))

	chat := console.NewChat(notifier, svc, console.ChatConfig{
		User:       demoUser,
		UserName:   demoUser,
		Email:      demoIdentity,
		Channel:    tenants[0].Channel,
		Channels:   channels,
		SOCChannel: demoSOCChannel,
	})

	// Shutdown runs in reverse order: the chat ends, the fetch loop
	// finishes its pass, then the dispatcher and write-back worker stop.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	stopPolling, pollingDone := make(chan struct{}), make(chan struct{})
	g.Go(func() error {
		defer close(pollingDone)
		return quiet(pollLoop(gctx, stopPolling, trigger, defender, svc, o.Interval, log))
	})
	g.Go(func() error { return quiet(svc.RunDispatcher(gctx, 200*time.Millisecond)) })
	g.Go(func() error { return quiet(svc.RunWriteBacks(gctx, 500*time.Millisecond)) })
	g.Go(func() error {
		defer cancel() // /quit or end of input ends the demo
		err := chat.Run(gctx, stdin)
		close(stopPolling)
		select {
		case <-pollingDone:
		case <-time.After(shutdownTimeout):
		}
		return err
	})

	done := make(chan error, 1)
	go func() { done <- g.Wait() }()
	select {
	case err := <-done:
		return err
	case <-gctx.Done():
	}
	select {
	case err := <-done:
		return err
	case <-time.After(shutdownTimeout):
		return fmt.Errorf("shutdown: still running after %s", shutdownTimeout)
	}
}

// quiet drops the cancellation error of a worker stopped on purpose.
func quiet(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// pollLoop advances the simulation and runs a fetch pass at once and then
// every interval, one at a time as the scheduler in serve does. stop ends
// it between passes; cancelling ctx also interrupts a pass.
func pollLoop(ctx context.Context, stop <-chan struct{}, trigger <-chan struct{}, defender *sim.Sim, svc *bot.Service, interval time.Duration, log *slog.Logger) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		defender.Tick(time.Now())
		if err := svc.Poll(ctx); err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "fetch pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-stop:
			return nil
		case <-t.C:
		case <-trigger: // a grant asks for a pass now
		}
	}
}

func banner(tenants []demoTenant, interval time.Duration, path, dbNote string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "msspbot demo: %d simulated customer tenant(s) raise Defender alerts, fetched every %s.\n", len(tenants), interval)
	var chs []string
	for i, t := range tenants {
		if i == 8 {
			chs = append(chs, fmt.Sprintf("… %d more", len(tenants)-i))
			break
		}
		chs = append(chs, fmt.Sprintf("#%s (%s)", t.Channel, t.Name))
	}
	fmt.Fprintf(&b, "  Customer channels: %s\n", strings.Join(chs, ", "))
	fmt.Fprintf(&b, "  SOC channel:       #%s (sees every tenant; High alerts are posted there)\n", demoSOCChannel)
	fmt.Fprintf(&b, "  You are %s:%s (%s), a SOC user, in #%s.\n", console.Platform, demoUser, demoIdentity, tenants[0].Channel)
	b.WriteString("Try:\n")
	b.WriteString("  /mssp alerts                list the open alerts of this channel\n")
	b.WriteString("  /mssp ack ALERT_ID          acknowledge: the card updates and Defender is told\n")
	b.WriteString("  /click alert_ack ALERT_ID   press a card's button, as printed under the card\n")
	fmt.Fprintf(&b, "  /channel %-18s switch channel\n", demoSOCChannel)
	b.WriteString("  /channel newco, then /mssp onboard 3f2a1b0c-1d2e-4f5a-8b9c-0d1e2f3a4b5c NewCo\n")
	b.WriteString("                              onboard a customer; /click access_grant ID plays its admin's consent\n")
	b.WriteString("  /mssp help                  every bot command;  /help  the console's;  /quit  to leave\n")
	fmt.Fprintf(&b, "Database: %s (%s)\n\n", path, dbNote)
	return b.String()
}
