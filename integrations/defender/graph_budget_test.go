package defender

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// TestGraphBudget: Graph's default budget is 150 calls a minute per
// tenant, with no hourly cap (MDE's 1,500/h does not apply).
func TestGraphBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := New(Config{ClientID: "app", ClientSecret: "s", API: APIGraph})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		start := time.Now()
		for i := range 150 {
			if err := c.budget(tenantA).wait(ctx); err != nil {
				t.Fatalf("wait %d: %v", i, err)
			}
		}
		if d := time.Since(start); d < 59*time.Second || d > 61*time.Second {
			t.Errorf("150 calls took %v, want about a minute", d)
		}
		other := time.Now()
		if err := c.budget(tenantB).wait(ctx); err != nil || time.Since(other) != 0 {
			t.Errorf("tenant B waited %v (%v)", time.Since(other), err)
		}
		// 1,600 calls (more than MDE's hourly 1,500) fit in 12 minutes, and
		// no 60 s window holds more than 150.
		var calls []time.Time
		start = time.Now()
		for range 1600 {
			if err := c.budget(tenantB).wait(ctx); err != nil {
				t.Fatal(err)
			}
			calls = append(calls, time.Now())
		}
		if d := time.Since(start); d > 12*time.Minute {
			t.Errorf("1,600 calls took %v: an hourly cap applies", d)
		}
		for i := range calls {
			n := 0
			for j := i; j < len(calls) && calls[j].Sub(calls[i]) < time.Minute; j++ {
				n++
			}
			if n > 150 {
				t.Fatalf("%d calls within a minute from call %d", n, i)
			}
		}
	})
}
