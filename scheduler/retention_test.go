package scheduler

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

type fakePurger struct {
	calls                     int
	alertsBefore, auditBefore time.Time
	result                    bot.PurgeResult
	err                       error
}

func (f *fakePurger) Purge(_ context.Context, alertsBefore, auditBefore time.Time) (bot.PurgeResult, error) {
	f.calls++
	f.alertsBefore, f.auditBefore = alertsBefore, auditBefore
	return f.result, f.err
}

type fakeObserver struct{ got []bot.PurgeResult }

func (f *fakeObserver) Purged(r bot.PurgeResult) { f.got = append(f.got, r) }

func TestPurge(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	store := &fakePurger{result: bot.PurgeResult{Alerts: 10, Deliveries: 20, Outbox: 30, Audit: 4}}
	obs := &fakeObserver{}
	log, logs := newLogger()
	r, err := Purge(t.Context(), store, now, 180*24*time.Hour, 400*24*time.Hour, obs, log)
	if err != nil {
		t.Fatal(err)
	}
	if r != store.result || len(obs.got) != 1 || obs.got[0] != store.result {
		t.Fatalf("result %+v, observed %+v", r, obs.got)
	}
	if want := now.AddDate(0, 0, -180); !store.alertsBefore.Equal(want) {
		t.Errorf("alertsBefore = %v, want %v", store.alertsBefore, want)
	}
	if want := now.AddDate(0, 0, -400); !store.auditBefore.Equal(want) {
		t.Errorf("auditBefore = %v, want %v", store.auditBefore, want)
	}
	if !strings.Contains(logs.String(), `msg="retention: purged" alerts=10 deliveries=20 outbox=30 audit=4`) {
		t.Errorf("log:\n%s", logs)
	}
}

func TestPurgeRefusesZeroAge(t *testing.T) {
	store := &fakePurger{}
	for _, ages := range [][2]time.Duration{{0, time.Hour}, {time.Hour, 0}, {-time.Hour, time.Hour}} {
		if _, err := Purge(t.Context(), store, time.Now(), ages[0], ages[1], nil, nil); err == nil {
			t.Errorf("ages %v accepted", ages)
		}
	}
	if store.calls != 0 {
		t.Fatal("store purged with a non-positive age: all history would go")
	}
}

func TestPurgeError(t *testing.T) {
	store := &fakePurger{err: errors.New("database is locked")}
	obs := &fakeObserver{}
	_, err := Purge(t.Context(), store, time.Now(), time.Hour, time.Hour, obs, nil)
	if err == nil || !strings.Contains(err.Error(), "retention: purge: database is locked") || !errors.Is(err, store.err) {
		t.Fatalf("err = %v", err)
	}
	if len(obs.got) != 0 {
		t.Fatal("a failed purge was reported as done")
	}
}

func TestRetentionJob(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	store := &fakePurger{}
	obs := &fakeObserver{}
	log, _ := newLogger()
	job := Retention(store, time.Hour, 2*time.Hour, obs, log, func() time.Time { return now })
	if err := job(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !store.alertsBefore.Equal(now.Add(-time.Hour)) || !store.auditBefore.Equal(now.Add(-2*time.Hour)) || len(obs.got) != 1 {
		t.Fatalf("job: %+v %+v", store, obs.got)
	}
}
