package scheduler

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLogger() (*slog.Logger, *logBuf) {
	b := &logBuf{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// tracker counts passes and the most that ever ran at once.
type tracker struct {
	mu                    sync.Mutex
	started, done         int
	active, maxConcurrent int
}

func (tr *tracker) enter() {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.started++
	tr.active++
	tr.maxConcurrent = max(tr.maxConcurrent, tr.active)
}

func (tr *tracker) leave() {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.active--
	tr.done++
}

func (tr *tracker) counts() (started, done, maxConcurrent int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.started, tr.done, tr.maxConcurrent
}

func mustNew(t *testing.T, spec string, pass func(context.Context) error) (*Scheduler, *logBuf) {
	t.Helper()
	log, buf := newLogger()
	s, err := New(spec, pass, log)
	if err != nil {
		t.Fatal(err)
	}
	return s, buf
}

func stop(t *testing.T, s *Scheduler) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

func TestPassAtStartAndOnSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var tr tracker
		s, _ := mustNew(t, "@every 1s", func(context.Context) error { tr.enter(); tr.leave(); return nil })
		if s.Running() {
			t.Fatal("running before Start")
		}
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if n, _, _ := tr.counts(); n != 1 {
			t.Fatalf("%d passes at start, want 1", n)
		}
		if !s.Running() || s.Ready(t.Context()) != nil {
			t.Fatal("not running after Start")
		}
		if end, err := s.LastPass(); end.IsZero() || err != nil {
			t.Fatalf("LastPass = %v, %v", end, err)
		}
		time.Sleep(3500 * time.Millisecond) // ticks at 1s, 2s, 3s
		synctest.Wait()
		if n, _, _ := tr.counts(); n != 4 {
			t.Fatalf("%d passes after 3.5s of @every 1s, want 4", n)
		}
		stop(t, s)
		if s.Running() || s.Ready(t.Context()) == nil {
			t.Fatal("running after Stop")
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if n, _, _ := tr.counts(); n != 4 {
			t.Fatalf("passes after Stop: %d", n)
		}
	})
}

func TestTriggersDuringAPassQueueOneFollowUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var tr tracker
		gate := make(chan struct{})
		s, _ := mustNew(t, "@every 1h", func(context.Context) error {
			tr.enter()
			defer tr.leave()
			<-gate
			return nil
		})
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the start-up pass is blocked on gate
		for range 5 {
			s.Trigger()
		}
		synctest.Wait()
		if n, _, _ := tr.counts(); n != 1 {
			t.Fatalf("%d passes started while one runs, want 1", n)
		}
		gate <- struct{}{} // pass 1 ends; the queued follow-up starts
		synctest.Wait()
		if n, done, _ := tr.counts(); n != 2 || done != 1 {
			t.Fatalf("started %d done %d, want a follow-up", n, done)
		}
		gate <- struct{}{} // the follow-up ends; nothing more is queued
		synctest.Wait()
		if n, done, maxC := tr.counts(); n != 2 || done != 2 || maxC != 1 {
			t.Fatalf("started %d done %d max %d; want exactly one follow-up, never overlapping", n, done, maxC)
		}
		s.Trigger() // idle: runs at once
		synctest.Wait()
		if n, _, _ := tr.counts(); n != 3 {
			t.Fatalf("trigger when idle: %d passes", n)
		}
		gate <- struct{}{}
		stop(t, s)
	})
}

func TestCronTicksDuringASlowPass(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var tr tracker
		s, logs := mustNew(t, "@every 1s", func(ctx context.Context) error {
			tr.enter()
			defer tr.leave()
			time.Sleep(5 * time.Second)
			return nil
		})
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(12 * time.Second) // passes start at 0, 5 and 10
		synctest.Wait()
		if n, _, maxC := tr.counts(); n != 3 || maxC != 1 {
			t.Fatalf("started %d max concurrent %d; want 3 back-to-back passes", n, maxC)
		}
		stop(t, s) // waits for the pass started at 10s
		if _, done, _ := tr.counts(); done != 3 {
			t.Fatalf("Stop returned with a pass running (done %d)", done)
		}
		if strings.Contains(logs.String(), "level=ERROR") {
			t.Fatalf("errors logged:\n%s", logs)
		}
	})
}

func TestPanicRecovered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var tr tracker
		s, logs := mustNew(t, "@every 1h", func(context.Context) error {
			tr.enter()
			defer tr.leave()
			if n, _, _ := tr.counts(); n == 1 {
				panic("first pass explodes")
			}
			return nil
		})
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if _, err := s.LastPass(); err == nil || !strings.Contains(err.Error(), "first pass explodes") {
			t.Fatalf("LastPass error = %v", err)
		}
		if !s.Running() {
			t.Fatal("a panic stopped the scheduler")
		}
		s.Trigger()
		synctest.Wait()
		if n, done, _ := tr.counts(); n != 2 || done != 2 {
			t.Fatalf("after a panic: started %d done %d", n, done)
		}
		if _, err := s.LastPass(); err != nil {
			t.Fatalf("LastPass after recovery = %v", err)
		}
		out := logs.String()
		if !strings.Contains(out, "scheduler: pass panicked") || !strings.Contains(out, "stack=") {
			t.Fatalf("panic not logged with its stack:\n%s", out)
		}
		stop(t, s)
	})
}

func TestPassErrorLogged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, logs := mustNew(t, "@every 1h", func(context.Context) error { return errors.New("store: disk full") })
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if !strings.Contains(logs.String(), `msg="scheduler: pass failed" error="store: disk full"`) {
			t.Fatalf("log:\n%s", logs)
		}
		stop(t, s)
	})
}

func TestStopWaitsForThePass(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var passCtxErr error
		s, _ := mustNew(t, "@every 1h", func(ctx context.Context) error {
			time.Sleep(10 * time.Second)
			passCtxErr = ctx.Err()
			return nil
		})
		start := time.Now()
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		stop(t, s)
		if d := time.Since(start); d != 10*time.Second {
			t.Fatalf("Stop returned after %v, want when the pass ended (10s)", d)
		}
		if passCtxErr != nil {
			t.Fatalf("the pass's context was cancelled before its end: %v", passCtxErr)
		}
	})
}

func TestStopDeadlineCancelsThePass(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cancelled := make(chan struct{})
		s, _ := mustNew(t, "@every 1h", func(ctx context.Context) error {
			<-ctx.Done()
			close(cancelled)
			return ctx.Err()
		})
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		err := s.Stop(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Stop = %v, want deadline exceeded", err)
		}
		<-cancelled // the pass is told to give up
		if err := s.Stop(t.Context()); err != nil {
			t.Fatalf("second Stop = %v", err)
		}
	})
}

func TestStartContextCancelStopsScheduling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var tr tracker
		s, _ := mustNew(t, "@every 1s", func(context.Context) error { tr.enter(); tr.leave(); return nil })
		ctx, cancel := context.WithCancel(t.Context())
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		cancel()
		synctest.Wait()
		if s.Running() {
			t.Fatal("running after Start's context ended")
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if n, _, _ := tr.counts(); n != 1 {
			t.Fatalf("%d passes after cancel, want 1", n)
		}
		stop(t, s)
	})
}

func TestStartTwiceAndStopUnstarted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := mustNew(t, "@every 1h", func(context.Context) error { return nil })
		if err := s.Stop(t.Context()); err != nil {
			t.Fatalf("Stop before Start = %v", err)
		}
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := s.Start(t.Context()); err == nil {
			t.Fatal("second Start accepted")
		}
		stop(t, s)
	})
}

func TestInvalidSpec(t *testing.T) {
	for _, spec := range []string{"", "every minute", "@every soon", "TZ=UTC", "61 * * * *"} {
		if _, err := New(spec, func(context.Context) error { return nil }, nil); err == nil {
			t.Errorf("New(%q) accepted", spec)
		}
	}
	s, _ := mustNew(t, "*/5 * * * *", func(context.Context) error { return nil })
	if err := s.Every("bad", "job", func(context.Context) error { return nil }); err == nil {
		t.Error("Every with a bad spec accepted")
	}
}

func TestEveryJob(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var tr tracker
		s, logs := mustNew(t, "@every 1h", func(context.Context) error { return nil })
		// A 2.5 s job every second panicking on its first run: later runs
		// still happen, never two at once, ticks during a run skipped.
		err := s.Every("@every 1s", "slow", func(ctx context.Context) error {
			tr.enter()
			defer tr.leave()
			if ctx == nil {
				return errors.New("nil context")
			}
			if n, _, _ := tr.counts(); n == 1 {
				panic("job explodes")
			}
			time.Sleep(2500 * time.Millisecond)
			return errors.New("job error")
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(6500 * time.Millisecond)
		synctest.Wait()
		// runs: 1s (panics), 2s-4.5s, 5s-7.5s
		n, _, maxC := tr.counts()
		if n != 3 || maxC != 1 {
			t.Fatalf("job started %d times, max concurrent %d; want 3, 1", n, maxC)
		}
		stop(t, s)
		out := logs.String()
		for _, want := range []string{`msg="cron: panic" error="job explodes"`, `msg="scheduler: job failed" job=slow error="job error"`, `msg="cron: skip"`} {
			if !strings.Contains(out, want) {
				t.Errorf("log lacks %q", want)
			}
		}
	})
}

func TestAddDaily(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs []time.Time
		var mu sync.Mutex
		s, _ := mustNew(t, "@every 1h", func(context.Context) error { return nil })
		if err := s.AddDaily("retention", func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			runs = append(runs, time.Now())
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(49 * time.Hour)
		synctest.Wait()
		stop(t, s)
		mu.Lock()
		defer mu.Unlock()
		if len(runs) != 2 {
			t.Fatalf("daily job ran %d times in 49h", len(runs))
		}
		for _, r := range runs {
			if r.Hour() != 0 || r.Minute() != 0 {
				t.Errorf("daily run at %v, want midnight", r)
			}
		}
	})
}
