package defender

import (
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
		expectMinuteBudget(t, c, 150)
		// 1,600 calls (more than MDE's hourly 1,500) fit in 12 minutes, and
		// no 60 s window holds more than 150.
		start := time.Now()
		calls := spendBudget(t, c, tenantB, func(n int) bool { return n < 1600 })
		if d := time.Since(start); d > 12*time.Minute {
			t.Errorf("1,600 calls took %v: an hourly cap applies", d)
		}
		expectAtMostPerMinute(t, calls, 150)
	})
}
