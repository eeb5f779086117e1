// Package scheduler runs the fetch pass: once at start-up, then on a cron
// schedule and whenever triggered (a grant's first fetch), never two at
// once, with a trigger that arrives during a pass queued as one follow-up.
// It also runs periodic jobs such as the daily retention purge.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"
)

// Scheduler runs one pass function under the rules of DESIGN §3 (Fetch).
type Scheduler struct {
	spec string
	pass func(context.Context) error
	log  *slog.Logger
	cron *cron.Cron

	// kick holds at most one queued pass: a Trigger during a pass fills it,
	// further ones find it full and coalesce.
	kick chan struct{}

	mu       sync.Mutex
	started  bool
	stopped  bool
	stop     chan struct{}
	loopDone chan struct{}
	base     context.Context // parent of passes and jobs
	cancel   context.CancelFunc
	lastEnd  time.Time
	lastErr  error

	running atomic.Bool
}

// New returns a scheduler that runs pass on spec, a robfig/cron standard
// spec or descriptor ("@every 1m", "*/5 * * * *"). logger nil:
// slog.Default().
func New(spec string, pass func(ctx context.Context) error, logger *slog.Logger) (*Scheduler, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if _, err := parse(spec); err != nil {
		return nil, fmt.Errorf("scheduler: invalid cron spec %q: %w", spec, err)
	}
	cl := cronLogger{logger}
	return &Scheduler{
		spec: spec,
		pass: pass,
		log:  logger,
		// The default chain does not recover panics (DESIGN §8); skipping
		// a still-running job keeps periodic jobs from piling up. Recover
		// must be inside SkipIfStillRunning: outside, a panic skips the
		// release of Skip's token and the job never runs again.
		cron: cron.New(
			cron.WithChain(cron.SkipIfStillRunning(cl), cron.Recover(cl)),
			cron.WithLogger(cl),
		),
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		loopDone: make(chan struct{}),
	}, nil
}

// parse checks spec as cron will, turning the parser's panics on some
// malformed specs ("TZ=UTC" alone) into errors.
func parse(spec string) (s cron.Schedule, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = errors.New("malformed spec")
		}
	}()
	return cron.ParseStandard(spec)
}

// Start runs one pass now and then on schedule, in the background.
// Cancelling ctx stops scheduling new passes. A running pass's context is
// not cancelled by ctx but by Stop when Stop's own deadline passes, so
// shutdown can let a pass finish; ctx's values are kept.
func (s *Scheduler) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("scheduler: already started")
	}
	if _, err := s.cron.AddFunc(s.spec, s.Trigger); err != nil {
		return fmt.Errorf("scheduler: schedule %q: %w", s.spec, err)
	}
	s.started = true
	s.base, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.running.Store(true)
	s.Trigger() // the start-up pass
	go s.loop(ctx)
	s.cron.Start()
	return nil
}

// Trigger asks for a pass as soon as possible. It never blocks: during a
// pass it queues one follow-up; more triggers before that one starts are
// merged into it.
func (s *Scheduler) Trigger() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Running reports whether passes are being scheduled (between Start and
// Stop or the cancellation of Start's context).
func (s *Scheduler) Running() bool { return s.running.Load() }

// Ready is a readiness check: an error unless Running.
func (s *Scheduler) Ready(context.Context) error {
	if !s.Running() {
		return errors.New("scheduler: not running")
	}
	return nil
}

// LastPass returns when the last pass ended and its error; zero before the
// first pass ends.
func (s *Scheduler) LastPass() (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastEnd, s.lastErr
}

// Stop stops scheduling, waits for a running pass and running jobs until
// ctx is done, then cancels their context. It returns ctx's error when the
// wait was cut short.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.mu.Lock()
	if !s.started || s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	close(s.stop)
	s.mu.Unlock()

	s.running.Store(false)
	jobs := s.cron.Stop()
	wait := func(done <-chan struct{}) bool {
		select {
		case <-done:
			return true
		case <-ctx.Done():
			return false
		}
	}
	var err error
	if !wait(s.loopDone) || !wait(jobs.Done()) {
		err = fmt.Errorf("scheduler: stop: %w", ctx.Err())
	}
	s.cancel()
	return err
}

func (s *Scheduler) loop(ctx context.Context) {
	defer close(s.loopDone)
	defer s.running.Store(false)
	defer s.cron.Stop() // also when only Start's ctx ended
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.stop:
			return
		case <-s.kick:
		}
		// select picks at random among ready cases: a stop that arrived
		// with a kick wins.
		select {
		case <-ctx.Done():
			return
		case <-s.stop:
			return
		default:
		}
		s.runPass()
	}
}

func (s *Scheduler) runPass() {
	start := time.Now()
	err := s.safePass()
	d := time.Since(start)
	s.mu.Lock()
	s.lastEnd, s.lastErr = time.Now(), err
	s.mu.Unlock()
	if err != nil {
		s.log.Error("scheduler: pass failed", "error", err, "duration", d)
		return
	}
	s.log.Debug("scheduler: pass done", "duration", d)
}

// safePass runs the pass, turning a panic into an error: the pass runs on
// the scheduler's goroutine, outside cron's Recover.
func (s *Scheduler) safePass() (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("scheduler: pass panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = fmt.Errorf("pass panicked: %v", p)
		}
	}()
	return s.pass(s.base)
}

// Every runs fn on spec, never two runs of it at once (a run due while the
// previous one lasts is skipped), panics recovered. Jobs run between Start
// and Stop with the passes' context.
func (s *Scheduler) Every(spec, name string, fn func(ctx context.Context) error) error {
	if _, err := parse(spec); err != nil {
		return fmt.Errorf("scheduler: job %s: invalid cron spec %q: %w", name, spec, err)
	}
	_, err := s.cron.AddFunc(spec, func() {
		s.mu.Lock()
		ctx := s.base
		s.mu.Unlock()
		start := time.Now()
		if err := fn(ctx); err != nil {
			s.log.Error("scheduler: job failed", "job", name, "error", err, "duration", time.Since(start))
			return
		}
		s.log.Debug("scheduler: job done", "job", name, "duration", time.Since(start))
	})
	if err != nil {
		return fmt.Errorf("scheduler: job %s: %w", name, err)
	}
	return nil
}

// AddDaily runs fn every day at midnight (local time; UTC in the container).
func (s *Scheduler) AddDaily(name string, fn func(ctx context.Context) error) error {
	return s.Every("@daily", name, fn)
}

// cronLogger adapts slog to cron.Logger. cron's Info is chatty (every
// wake-up), so it goes to Debug.
type cronLogger struct{ l *slog.Logger }

func (c cronLogger) Info(msg string, kv ...any) {
	c.l.Debug("cron: "+msg, kv...)
}

func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Error("cron: "+msg, append([]any{"error", err}, kv...)...)
}
