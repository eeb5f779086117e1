package bot

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Config is the bot's behaviour, from the configuration file.
type Config struct {
	SOCChannels     []ChannelRef      // soc.channels; the first gets Confirm prompts
	SOCUsers        []string          // soc.users, "platform:user"
	Identities      map[string]string // soc.identities, "platform:user" -> e-mail
	CustomersCanAck bool              // soc.customers_can_ack
	StormThreshold  int               // notify.storm_threshold (default 20)
	Concurrency     int               // defender.concurrency (default 8)
	Lookback        time.Duration     // defender.lookback (default 24h)
	Overlap         time.Duration     // defender.overlap (default 5m)
	TenantTimeout   time.Duration     // one tenant's fetch in one pass (default 2m)
	WriteBack       bool              // defender.write_back

	// Onboarding (access grant). PublicURL empty disables onboard.
	PublicURL   string
	AppID       string        // azure.client_id, named in offboard instructions
	Permissions []string      // shown on the approval prompt
	ConsentTTL  time.Duration // azure.consent_ttl (default 24h)
	// ConsentURL builds the admin-consent URL for a tenant and state.
	ConsentURL func(tenantID, state string) string

	Now func() time.Time // default time.Now
}

// Deps are the adapters the bot drives.
type Deps struct {
	Store     Store
	Source    AlertSource         // nil: passes fetch nothing
	Target    WriteBackTarget     // nil: write-backs are recorded as sent
	Access    AccessChecker       // nil: onboarding cannot prove consent
	Notifiers map[string]Notifier // by platform: "slack", "discord", "console"
	Observer  Observer            // nil: no metrics
	// Trigger asks for a fetch pass now (after a grant); it must never
	// overlap a running pass nor be dropped (the scheduler's Trigger).
	Trigger func()
	// SimulateConsent, in the demo only, plays the customer admin's
	// consent when the Grant button is clicked in the console.
	SimulateConsent func(ctx context.Context, tenantID string) error
	Logger          *slog.Logger // nil: slog.Default()
}

// Observer receives the events that metrics count. Implementations must be
// safe for concurrent use and must not block.
type Observer interface {
	PassDone(d time.Duration, tenants, failed int)
	AlertsIngested(n int)
	FetchFailed(kind string)                     // "auth", "throttled", "transient", "timeout"
	OutboxResult(platform string, result string) // "sent", "retry", "failed"
	WriteBackResult(result string)               // "sent", "retry", "failed"
	CommandDone(platform, name string, d time.Duration)
	Purged(r PurgeResult)
}

type nopObserver struct{}

func (nopObserver) PassDone(time.Duration, int, int)          {}
func (nopObserver) AlertsIngested(int)                        {}
func (nopObserver) FetchFailed(string)                        {}
func (nopObserver) OutboxResult(string, string)               {}
func (nopObserver) WriteBackResult(string)                    {}
func (nopObserver) CommandDone(string, string, time.Duration) {}
func (nopObserver) Purged(PurgeResult)                        {}

// Service is the bot: command executor, fetch pass, dispatcher and
// write-back worker over one Store.
type Service struct {
	cfg   Config
	store Store
	deps  Deps
	log   *slog.Logger
	obs   Observer

	ds dispatchState
	// One dispatch round and one write-back round at a time: two at once
	// would read the same ready entries and send them twice.
	dispatchMu, writeBackMu sync.Mutex
	wake                    chan struct{} // new outbox entries
	wakeWB                  chan struct{} // new write-backs

	// consent states not yet rendered into a posted prompt, by request id;
	// the database keeps only their hashes.
	statesMu sync.Mutex
	states   map[int64]string
	late     map[int64]bool // closed requests whose late callback was reported
}

// New returns a Service with defaults applied.
func New(cfg Config, deps Deps) *Service {
	if cfg.StormThreshold <= 0 {
		cfg.StormThreshold = 20
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.Lookback <= 0 {
		cfg.Lookback = 24 * time.Hour
	}
	if cfg.Overlap < 0 {
		cfg.Overlap = 0
	}
	if cfg.TenantTimeout <= 0 {
		cfg.TenantTimeout = 2 * time.Minute
	}
	if cfg.ConsentTTL <= 0 {
		cfg.ConsentTTL = 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{
		cfg: cfg, store: deps.Store, deps: deps, log: deps.Logger, obs: deps.Observer,
		wake: make(chan struct{}, 1), wakeWB: make(chan struct{}, 1), states: map[int64]string{},
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.obs == nil {
		s.obs = nopObserver{}
	}
	return s
}
