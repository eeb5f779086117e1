// Package metrics implements bot.Observer with Prometheus collectors on a
// private registry and serves them for GET /metrics.
//
// No label carries a tenant id or name: /metrics would publish the MSSP's
// customer list. Every label value comes from a fixed set; anything else is
// counted as "other".
package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/msspbot/msspbot/bot"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "msspbot"

// Label values. Observer arguments outside these sets become "other", so a
// caller passing user input cannot create series (or leak a tenant).
var (
	platformList = []string{"slack", "discord", "console", other}
	platforms    = set(platformList[:3]...)
	fetchKinds   = set("auth", "throttled", "transient", "timeout", "ingest")
	results      = set("sent", "retry", "failed")
	commandNames = set(
		// typed (bot.Request.Name)
		"help", "alerts", "show", "ack", "resolve", "comment", "reopen",
		"rules", "rules add", "rules remove", "onboard", "offboard", "link",
		"unlink", "tenants", "status", "audit",
		// clicked: the executor's names, and the action ids (DESIGN §4.5)
		"confirm", "decline", "grant", "click",
		"alert_ack", "alert_resolve", "alert_resolve_as", "access_decline",
		"access_confirm", "link_confirm",
		// refused before a name was known
		"invalid", "error", "unknown",
	)
	// outboxStates are the states worth watching; sent and cancelled only
	// grow until the purge.
	outboxStates = []bot.OutboxState{bot.OutboxHeld, bot.OutboxPending, bot.OutboxInFlight, bot.OutboxFailed}
)

const other = "other"

func set(vs ...string) map[string]bool {
	m := make(map[string]bool, len(vs))
	for _, v := range vs {
		m[v] = true
	}
	return m
}

func label(allowed map[string]bool, v string) string {
	if allowed[v] {
		return v
	}
	return other
}

// Metrics holds msspbot's collectors. It implements bot.Observer.
type Metrics struct {
	reg     *prometheus.Registry
	handler http.Handler
	log     *slog.Logger

	passes        prometheus.Counter
	passDuration  prometheus.Histogram
	passTenants   prometheus.Gauge
	passFailed    prometheus.Gauge
	lastPass      prometheus.Gauge
	alerts        prometheus.Counter
	fetchFailures *prometheus.CounterVec
	outbox        *prometheus.CounterVec
	writeBacks    *prometheus.CounterVec
	commands      *prometheus.HistogramVec
	purged        *prometheus.CounterVec
}

var _ bot.Observer = (*Metrics)(nil)

// New registers msspbot's collectors, with the Go and process collectors,
// on a new registry. logger (nil: slog.Default()) gets scrape errors.
func New(logger *slog.Logger) *Metrics {
	if logger == nil {
		logger = slog.Default()
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		log: logger,
		passes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "fetch_passes_total",
			Help: "Fetch passes completed.",
		}),
		passDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "fetch_pass_duration_seconds",
			Help:    "Wall time of one fetch pass over all tenants.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}),
		passTenants: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "fetch_pass_tenants",
			Help: "Tenants fetched by the last pass.",
		}),
		passFailed: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "fetch_pass_failed_tenants",
			Help: "Tenants whose fetch failed in the last pass.",
		}),
		lastPass: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "fetch_last_pass_timestamp_seconds",
			Help: "Unix time the last fetch pass ended.",
		}),
		alerts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "alerts_ingested_total",
			Help: "Alerts fetched and stored (new, changed or unchanged).",
		}),
		fetchFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "fetch_failures_total",
			Help: "Failed tenant fetches by kind (auth, throttled, transient, timeout, ingest).",
		}, []string{"kind"}),
		outbox: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "outbox_results_total",
			Help: "Chat message operations by platform and result (sent, retry, failed).",
		}, []string{"platform", "result"}),
		writeBacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "writeback_results_total",
			Help: "Write-backs to Defender by result (sent, retry, failed).",
		}, []string{"result"}),
		commands: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "command_duration_seconds",
			Help:    "Time to answer a typed command or a click, by platform and command.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
		}, []string{"platform", "command"}),
		purged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "purged_rows_total",
			Help: "Rows removed by the retention purge, by kind (alerts, deliveries, outbox, audit).",
		}, []string{"kind"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.passes, m.passDuration, m.passTenants, m.passFailed, m.lastPass, m.alerts,
		m.fetchFailures, m.outbox, m.writeBacks, m.commands, m.purged,
	)
	// Series that exist from the start make rate() and alerting rules work
	// before the first event.
	for k := range fetchKinds {
		m.fetchFailures.WithLabelValues(k)
	}
	for r := range results {
		m.writeBacks.WithLabelValues(r)
		for p := range platforms {
			m.outbox.WithLabelValues(p, r)
		}
	}
	for _, k := range []string{"alerts", "deliveries", "outbox", "audit"} {
		m.purged.WithLabelValues(k)
	}
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      printlnLogger{logger},
		ErrorHandling: promhttp.ContinueOnError, // one failing collector must not hide the rest
		Registry:      m.reg,
		Timeout:       10 * time.Second,
	})
	return m
}

// Registry returns the private registry, for adapters' own collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler { return m.handler }

// PassDone implements bot.Observer.
func (m *Metrics) PassDone(d time.Duration, tenants, failed int) {
	m.passes.Inc()
	m.passDuration.Observe(d.Seconds())
	m.passTenants.Set(float64(tenants))
	m.passFailed.Set(float64(failed))
	m.lastPass.SetToCurrentTime()
}

// AlertsIngested implements bot.Observer.
func (m *Metrics) AlertsIngested(n int) {
	if n > 0 {
		m.alerts.Add(float64(n))
	}
}

// FetchFailed implements bot.Observer.
func (m *Metrics) FetchFailed(kind string) {
	m.fetchFailures.WithLabelValues(label(fetchKinds, kind)).Inc()
}

// OutboxResult implements bot.Observer.
func (m *Metrics) OutboxResult(platform, result string) {
	m.outbox.WithLabelValues(label(platforms, platform), label(results, result)).Inc()
}

// WriteBackResult implements bot.Observer.
func (m *Metrics) WriteBackResult(result string) {
	m.writeBacks.WithLabelValues(label(results, result)).Inc()
}

// CommandDone implements bot.Observer.
func (m *Metrics) CommandDone(platform, name string, d time.Duration) {
	m.commands.WithLabelValues(label(platforms, platform), label(commandNames, name)).Observe(d.Seconds())
}

// Purged implements bot.Observer.
func (m *Metrics) Purged(r bot.PurgeResult) {
	m.purged.WithLabelValues("alerts").Add(float64(r.Alerts))
	m.purged.WithLabelValues("deliveries").Add(float64(r.Deliveries))
	m.purged.WithLabelValues("outbox").Add(float64(r.Outbox))
	m.purged.WithLabelValues("audit").Add(float64(r.Audit))
}

// OutboxCounter reports unfinished outbox entries by platform and state
// (bot.OutboxStore has it).
type OutboxCounter interface {
	OutboxCounts(ctx context.Context) ([]bot.OutboxCount, error)
}

// WatchOutbox exports msspbot_outbox_entries{platform,state}, read from src
// at each scrape.
func (m *Metrics) WatchOutbox(src OutboxCounter) error {
	c := &outboxCollector{
		src: src,
		desc: prometheus.NewDesc(namespace+"_outbox_entries",
			"Unfinished outbox entries by platform and state (held, pending, inflight, failed), read at scrape time.",
			[]string{"platform", "state"}, nil),
	}
	if err := m.reg.Register(c); err != nil {
		return fmt.Errorf("metrics: watch outbox: %w", err)
	}
	return nil
}

type outboxCollector struct {
	src  OutboxCounter
	desc *prometheus.Desc
}

func (c *outboxCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *outboxCollector) Collect(ch chan<- prometheus.Metric) {
	// Collect has no context; bound the query so a locked database cannot
	// hold scrapes forever.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := c.src.OutboxCounts(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, fmt.Errorf("outbox counts: %w", err))
		return
	}
	// Every known platform and state is exported, zeros included, so that
	// alerts on these series see 0 rather than nothing.
	byKey := map[[2]string]int{}
	for _, n := range counts {
		k := [2]string{label(platforms, n.Platform), string(n.State)}
		byKey[k] += n.N
	}
	for _, p := range platformList {
		for _, st := range outboxStates {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(byKey[[2]string{p, string(st)}]), p, string(st))
		}
	}
}

// printlnLogger adapts slog to promhttp's logger.
type printlnLogger struct{ l *slog.Logger }

func (p printlnLogger) Println(v ...any) {
	p.l.Error("metrics: scrape", "error", fmt.Sprint(v...))
}
