package defender

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"testing/synctest"
	"time"
)

func TestBudgetPerTenant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := New(Config{ClientID: "app", ClientSecret: "s"}) // MDE defaults: 100/min, 1,500/h
		if err != nil {
			t.Fatal(err)
		}
		// 100 calls never fit in less than a minute, while another tenant
		// is not held up by the busy one.
		expectMinuteBudget(t, c, 100)
		// Any window of 60s holds at most 100 calls.
		start := time.Now()
		calls := spendBudget(t, c, tenantB, func(int) bool { return time.Since(start) < 3*time.Minute })
		expectAtMostPerMinute(t, calls, 100)
	})
}

// expectMinuteBudget checks that perMin calls of tenantA take about a
// minute, and that tenantB is not held up meanwhile. Run it in a synctest
// bubble.
func expectMinuteBudget(t *testing.T, c *Client, perMin int) {
	t.Helper()
	start := time.Now()
	spendBudget(t, c, tenantA, func(n int) bool { return n < perMin })
	if d := time.Since(start); d < 59*time.Second || d > 61*time.Second {
		t.Errorf("%d calls took %v, want about a minute", perMin, d)
	}
	other := time.Now()
	if err := c.budget(tenantB).wait(context.Background()); err != nil || time.Since(other) != 0 {
		t.Errorf("tenant B waited %v (%v)", time.Since(other), err)
	}
}

// spendBudget waits for tenant's budget while more(calls so far) says
// so, and returns when each wait ended.
func spendBudget(t *testing.T, c *Client, tenant string, more func(n int) bool) []time.Time {
	t.Helper()
	var calls []time.Time
	for more(len(calls)) {
		if err := c.budget(tenant).wait(context.Background()); err != nil {
			t.Fatalf("wait %d: %v", len(calls), err)
		}
		calls = append(calls, time.Now())
	}
	return calls
}

// expectAtMostPerMinute fails when any 60 s window holds more than limit
// of calls.
func expectAtMostPerMinute(t *testing.T, calls []time.Time, limit int) {
	t.Helper()
	for i := range calls {
		n := 0
		for j := i; j < len(calls) && calls[j].Sub(calls[i]) < time.Minute; j++ {
			n++
		}
		if n > limit {
			t.Fatalf("%d calls within a minute from call %d", n, i)
		}
	}
}

func TestBudgetHour(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := New(Config{ClientID: "app", ClientSecret: "s", PerMinute: -1, PerHour: 1500})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		spendBudget(t, c, tenantA, func(n int) bool { return n < 1500 })
		if d := time.Since(start); d < 59*time.Minute || d > 61*time.Minute {
			t.Errorf("1,500 calls took %v, want about an hour", d)
		}
	})
}

func TestBudgetWaitPastDeadlineIsThrottled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := New(Config{ClientID: "app", ClientSecret: "s", PerMinute: 10, PerHour: -1})
		if err != nil {
			t.Fatal(err)
		}
		b := c.budget(tenantA)
		if err := b.wait(context.Background()); err != nil { // burst of 1
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		_, err = c.do(ctx, request{tenant: tenantA, method: http.MethodGet, path: alertsPath})
		if !errors.Is(err, ErrThrottled) || time.Since(start) != 0 {
			t.Errorf("do with no budget before the deadline: %v after %v", err, time.Since(start))
		}
	})
}
