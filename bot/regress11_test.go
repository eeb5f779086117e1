package bot_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/msspbot/msspbot/bot"
)

func TestRegressionAlertsCounts(t *testing.T) {
	h := newHarness(t)
	for i := range 25 {
		a := h.alert(tenantA, fmt.Sprintf("q%02d", i), bot.SeverityLow)
		if i%5 == 0 {
			a.Status = bot.StatusResolved
		}
		h.src.put(a)
	}
	h.poll()
	contains(t, h.run(chA, custA, "alerts limit 3"), "17 more") // 20 open
	all := h.run(chA, custA, "alerts all severity>=low limit 30")
	if n := strings.Count(all, "`q"); n != 25 || strings.Contains(all, "more") {
		t.Errorf("alerts all: %d rows\n%s", n, all)
	}
	if n := strings.Count(h.run(chA, custA, "alerts resolved"), "`q"); n != 5 {
		t.Errorf("alerts resolved: %d rows", n)
	}
	contains(t, h.run(chSOC, analyst, "alerts tenant="+tenantA+" limit 1"), "19 more")
}
