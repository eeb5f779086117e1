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
		ctx := context.Background()
		start := time.Now()
		for i := range 100 {
			if err := c.budget(tenantA).wait(ctx); err != nil {
				t.Fatalf("wait %d: %v", i, err)
			}
		}
		// 100 calls never fit in less than a minute...
		if d := time.Since(start); d < 59*time.Second || d > 61*time.Second {
			t.Errorf("100 calls took %v, want about a minute", d)
		}
		// ...while another tenant is not held up by the busy one.
		other := time.Now()
		if err := c.budget(tenantB).wait(ctx); err != nil || time.Since(other) != 0 {
			t.Errorf("tenant B waited %v (%v)", time.Since(other), err)
		}
		// Any window of 60s holds at most 100 calls.
		calls := []time.Time{}
		start = time.Now()
		for time.Since(start) < 3*time.Minute {
			if err := c.budget(tenantB).wait(ctx); err != nil {
				t.Fatal(err)
			}
			calls = append(calls, time.Now())
		}
		for i := range calls {
			n := 0
			for j := i; j < len(calls) && calls[j].Sub(calls[i]) < time.Minute; j++ {
				n++
			}
			if n > 100 {
				t.Fatalf("%d calls within a minute from call %d", n, i)
			}
		}
	})
}

func TestBudgetHour(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := New(Config{ClientID: "app", ClientSecret: "s", PerMinute: -1, PerHour: 1500})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for range 1500 {
			if err := c.budget(tenantA).wait(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
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
