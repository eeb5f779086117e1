package sim

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

const (
	contosoID  = "6f1c3e2a-0b7d-4c1e-9a55-1d2b3c4d5e6f"
	fabrikamID = "0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d"
)

var (
	t0      = time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	tenants = []Tenant{{ID: contosoID, Name: "Contoso"}, {ID: strings.ToUpper(fabrikamID), Name: "Fabrikam"}}
)

// fixedClock is a settable clock for write-backs.
type fixedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fixedClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fixedClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// ticked returns a sim advanced by n ticks, one a minute from t0.
func ticked(t *testing.T, seed int64, n int) *Sim {
	t.Helper()
	s := New(seed, tenants, func() time.Time { return t0.Add(time.Hour) })
	for i := range n {
		s.Tick(t0.Add(time.Duration(i) * time.Minute))
	}
	return s
}

func all(t *testing.T, s *Sim, tenantID string) []bot.Alert {
	t.Helper()
	as, err := s.Alerts(context.Background(), tenantID, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return as
}

func TestDeterministic(t *testing.T) {
	a, b := ticked(t, 42, 20), ticked(t, 42, 20)
	for _, id := range []string{contosoID, fabrikamID} {
		x, y := all(t, a, id), all(t, b, id)
		if len(x) == 0 {
			t.Fatalf("no alerts for %s after 20 ticks", id)
		}
		if !reflect.DeepEqual(x, y) {
			t.Errorf("same seed gave different alerts for %s", id)
		}
	}
	c := ticked(t, 43, 20)
	if reflect.DeepEqual(all(t, a, contosoID), all(t, c, contosoID)) {
		t.Error("different seeds gave the same alerts")
	}
}

var (
	idRE   = regexp.MustCompile(`^da6\d{17}_-?\d{1,10}$`)
	timeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$`)
)

func TestAlertShape(t *testing.T) {
	s := ticked(t, 1, 40)
	sev := map[bot.Severity]int{}
	titles := map[string]bool{}
	total := 0
	for _, tn := range tenants {
		id := bot.NormalizeTenantID(tn.ID)
		domain := strings.ToLower(tn.Name)
		seen := map[string]bool{}
		for _, a := range all(t, s, id) {
			total++
			sev[a.Severity]++
			titles[a.Title] = true
			if seen[a.ID] {
				t.Errorf("duplicate id %s", a.ID)
			}
			seen[a.ID] = true
			if !idRE.MatchString(a.ID) {
				t.Errorf("id %q is not MDE-shaped", a.ID)
			}
			if a.TenantID != id {
				t.Errorf("tenant id %q; want %q", a.TenantID, id)
			}
			if !strings.HasSuffix(a.DeviceName, "."+domain+".local") || a.DeviceGroup == "" || len(a.DeviceID) != 40 {
				t.Errorf("device %q group %q id %q", a.DeviceName, a.DeviceGroup, a.DeviceID)
			}
			if a.UserName != "" && !strings.HasPrefix(a.UserName, strings.ToUpper(domain)+`\`) {
				t.Errorf("user %q", a.UserName)
			}
			if want := "https://security.microsoft.com/alerts/" + a.ID + "?tid=" + id; a.PortalURL != want {
				t.Errorf("portal %q; want %q", a.PortalURL, want)
			}
			if a.Title == "" || a.Category == "" || a.DetectionSource == "" || a.IncidentID == "" {
				t.Errorf("incomplete alert %+v", a)
			}
			if a.CreatedAt.IsZero() || a.LastUpdatedAt.Before(a.CreatedAt) {
				t.Errorf("times created %v updated %v", a.CreatedAt, a.LastUpdatedAt)
			}

			var raw map[string]any
			if err := json.Unmarshal(a.Raw, &raw); err != nil {
				t.Fatalf("raw: %v", err)
			}
			if raw["id"] != a.ID || raw["aadTenantId"] != id || raw["title"] != a.Title || raw["severity"] != a.Severity.String() || raw["status"] != string(a.Status) {
				t.Errorf("raw disagrees with the alert: %s", a.Raw)
			}
			if _, ok := raw["mitreTechniques"].([]any); !ok {
				t.Errorf("mitreTechniques is not an array: %s", a.Raw)
			}
			if ru, ok := raw["relatedUser"]; !ok || (ru != nil && reflect.TypeOf(ru).Kind() != reflect.Map) {
				t.Errorf("relatedUser is neither an object nor null: %s", a.Raw)
			}
			for _, k := range []string{"alertCreationTime", "lastUpdateTime", "firstEventTime"} {
				if v, _ := raw[k].(string); !timeRE.MatchString(v) {
					t.Errorf("%s = %v; want seven fractional digits", k, raw[k])
				}
			}
			if _, ok := raw["classification"]; !ok {
				t.Error("classification missing (null expected)")
			}
		}
	}
	if total < 40 {
		t.Fatalf("only %d alerts in 40 ticks for 2 tenants", total)
	}
	if hm := sev[bot.SeverityHigh] + sev[bot.SeverityMedium]; hm*2 < total || sev[bot.SeverityHigh] == 0 {
		t.Errorf("severity mix %v: want High and Medium to be at least half", sev)
	}
	if len(titles) < 6 {
		t.Errorf("only %d distinct titles", len(titles))
	}
}

func TestSinceFilter(t *testing.T) {
	ctx := context.Background()
	s := New(7, tenants, nil)
	t1 := t0.Add(time.Minute)
	for s.Tick(t0); len(all(t, s, contosoID)) == 0; s.Tick(t0) {
	}
	before := len(all(t, s, contosoID))
	for r, _ := s.Tick(t1); r == 0; r, _ = s.Tick(t1) {
	}
	got, err := s.Alerts(ctx, contosoID, t1)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range got {
		if a.LastUpdatedAt.Before(t1) {
			t.Errorf("alert updated %v returned for since %v", a.LastUpdatedAt, t1)
		}
	}
	if total := len(all(t, s, contosoID)); len(got) >= total && before > 0 {
		t.Errorf("since returned %d of %d alerts", len(got), total)
	}
	if got, _ := s.Alerts(ctx, contosoID, t1.Add(time.Hour)); len(got) != 0 {
		t.Errorf("future since returned %d alerts", len(got))
	}
	// A tenant id in upper case is the same tenant.
	if got, err := s.Alerts(ctx, strings.ToUpper(contosoID), time.Time{}); err != nil || len(got) != len(all(t, s, contosoID)) {
		t.Errorf("upper-case tenant id: %d alerts, %v", len(got), err)
	}
}

func TestApply(t *testing.T) {
	ctx := context.Background()
	clock := &fixedClock{t: t0.Add(time.Hour)}
	s := New(3, tenants, clock.Now)
	for len(all(t, s, fabrikamID)) == 0 {
		s.Tick(t0)
	}
	a := all(t, s, fabrikamID)[0]

	// Ack: InProgress, assignee, comment.
	err := s.Apply(ctx, bot.WriteBack{TenantID: fabrikamID, AlertID: a.ID, Kind: bot.WriteBackAck,
		Status: bot.StatusInProgress, AssignedTo: "analyst@mssp.example", Comment: "on it", Actor: "analyst@mssp.example"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Alerts(ctx, fabrikamID, a.LastUpdatedAt.Add(time.Nanosecond))
	if err != nil || len(got) != 1 || got[0].ID != a.ID {
		t.Fatalf("after ack, since the old update: %v, %v", got, err)
	}
	acked := got[0]
	if acked.Status != bot.StatusInProgress || acked.AssignedTo != "analyst@mssp.example" || !acked.LastUpdatedAt.Equal(clock.Now()) {
		t.Errorf("after ack: %+v", acked)
	}
	if !strings.Contains(string(acked.Raw), `"comment":"on it","createdBy":"analyst@mssp.example"`) {
		t.Errorf("comment missing from raw: %s", acked.Raw)
	}

	// Resolve with the clock standing still: still a newer update.
	err = s.Apply(ctx, bot.WriteBack{TenantID: fabrikamID, AlertID: a.ID, Kind: bot.WriteBackResolve,
		Status: bot.StatusResolved, Classification: bot.ClassFalsePositive, Determination: "Clean"})
	if err != nil {
		t.Fatal(err)
	}
	got, _ = s.Alerts(ctx, fabrikamID, acked.LastUpdatedAt.Add(time.Nanosecond))
	if len(got) != 1 {
		t.Fatalf("resolve did not move lastUpdateTime: %d alerts", len(got))
	}
	r := got[0]
	if r.Status != bot.StatusResolved || r.Classification != bot.ClassFalsePositive || r.Determination != "Clean" || r.ResolvedAt.IsZero() {
		t.Errorf("after resolve: %+v", r)
	}

	// Reopen clears the resolved time.
	clock.Set(t0.Add(2 * time.Hour))
	if err := s.Apply(ctx, bot.WriteBack{TenantID: fabrikamID, AlertID: a.ID, Kind: bot.WriteBackReopen, Status: bot.StatusNew}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Alerts(ctx, fabrikamID, t0.Add(2*time.Hour))
	if len(got) != 1 || got[0].Status != bot.StatusNew || !got[0].ResolvedAt.IsZero() || got[0].AssignedTo != "analyst@mssp.example" {
		t.Errorf("after reopen: %+v", got)
	}
}

func TestApplyErrors(t *testing.T) {
	ctx := context.Background()
	s := ticked(t, 5, 10)
	a := all(t, s, contosoID)[0]
	permanent := func(err error) bool {
		var se *bot.SendError
		return errors.As(err, &se) && se.Permanent
	}
	for _, tc := range []struct {
		name  string
		wb    bot.WriteBack
		check func(error) bool
	}{
		{"unknown tenant", bot.WriteBack{TenantID: "11111111-1111-1111-1111-111111111111", AlertID: a.ID, Status: bot.StatusNew},
			func(err error) bool { return errors.Is(err, bot.ErrAuth) }},
		{"unknown alert", bot.WriteBack{TenantID: contosoID, AlertID: "da1_1", Status: bot.StatusNew}, permanent},
		{"other tenant's alert", bot.WriteBack{TenantID: fabrikamID, AlertID: a.ID, Status: bot.StatusNew}, permanent},
		{"alert id case", bot.WriteBack{TenantID: contosoID, AlertID: strings.ToUpper(a.ID), Status: bot.StatusNew}, permanent},
		{"bad status", bot.WriteBack{TenantID: contosoID, AlertID: a.ID, Status: "Closed"}, permanent},
		{"bad classification", bot.WriteBack{TenantID: contosoID, AlertID: a.ID, Classification: "Maybe"}, permanent},
		{"bad determination", bot.WriteBack{TenantID: contosoID, AlertID: a.ID, Determination: "Aliens"}, permanent},
	} {
		err := s.Apply(ctx, tc.wb)
		if err == nil || !tc.check(err) {
			t.Errorf("%s: Apply = %v", tc.name, err)
		}
	}
	if got := all(t, s, contosoID)[0]; !reflect.DeepEqual(got, a) {
		t.Error("a refused write-back changed the alert")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Apply(cctx, bot.WriteBack{TenantID: contosoID, AlertID: a.ID}); !errors.Is(err, context.Canceled) {
		t.Errorf("Apply with a cancelled context = %v", err)
	}
	if _, err := s.Alerts(cctx, contosoID, time.Time{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Alerts with a cancelled context = %v", err)
	}
}

func TestUnknownTenantAndAccess(t *testing.T) {
	ctx := context.Background()
	s := New(1, tenants, nil)
	const litware = "22222222-2222-2222-2222-222222222222"
	if _, err := s.Alerts(ctx, litware, time.Time{}); !errors.Is(err, bot.ErrAuth) {
		t.Errorf("Alerts of an unknown tenant = %v; want ErrAuth", err)
	}
	if err := s.CheckAccess(ctx, litware, true); !errors.Is(err, bot.ErrAuth) {
		t.Errorf("CheckAccess of an unknown tenant = %v; want ErrAuth", err)
	}
	if err := s.CheckAccess(ctx, strings.ToUpper(contosoID), false); err != nil {
		t.Errorf("CheckAccess of a known tenant = %v", err)
	}
	s.AddTenant(Tenant{ID: litware, Name: "Litware, Inc."})
	s.AddTenant(Tenant{ID: litware, Name: "again"}) // no duplicate
	if err := s.CheckAccess(ctx, litware, true); err != nil {
		t.Errorf("CheckAccess after AddTenant = %v", err)
	}
	for len(all(t, s, litware)) == 0 {
		s.Tick(t0)
	}
	if a := all(t, s, litware)[0]; !strings.HasSuffix(a.DeviceName, ".litwareinc.local") {
		t.Errorf("device %q", a.DeviceName)
	}
	if len(s.order) != 3 {
		t.Errorf("%d tenants", len(s.order))
	}
}

func TestChangesOverTicks(t *testing.T) {
	s := New(11, tenants, nil)
	first := map[string]bot.Alert{}
	changedTotal := 0
	for i := range 60 {
		now := t0.Add(time.Duration(i) * time.Minute)
		_, changed := s.Tick(now)
		changedTotal += changed
		for _, tn := range []string{contosoID, fabrikamID} {
			for _, a := range all(t, s, tn) {
				if _, ok := first[a.ID]; !ok {
					first[a.ID] = a
				}
			}
		}
	}
	if changedTotal == 0 {
		t.Fatal("no alert changed in 60 ticks")
	}
	var statusChanges, severityUps, resolved int
	for _, tn := range []string{contosoID, fabrikamID} {
		for _, a := range all(t, s, tn) {
			f := first[a.ID]
			if a.Status != f.Status {
				statusChanges++
				if !a.LastUpdatedAt.After(f.LastUpdatedAt) {
					t.Errorf("%s changed status without a newer lastUpdateTime", a.ID)
				}
			}
			if a.Severity > f.Severity {
				severityUps++
			}
			if a.Status == bot.StatusResolved {
				resolved++
				if a.ResolvedAt.IsZero() || a.Classification == "" || a.Determination == "" {
					t.Errorf("resolved alert without resolution: %+v", a)
				}
			}
			if a.Status == bot.StatusInProgress && a.AssignedTo == "" {
				t.Errorf("in-progress alert without assignee: %s", a.ID)
			}
		}
	}
	if statusChanges == 0 || severityUps == 0 || resolved == 0 {
		t.Errorf("changes: %d status, %d severity raised, %d resolved; want all kinds", statusChanges, severityUps, resolved)
	}
}

func TestConcurrent(t *testing.T) {
	ctx := context.Background()
	s := New(9, tenants, nil)
	s.Tick(t0)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				switch g {
				case 0:
					s.Tick(t0.Add(time.Duration(i) * time.Second))
				case 1:
					s.AddTenant(Tenant{ID: "33333333-3333-3333-3333-33333333333" + string(rune('0'+i%10)), Name: "N"})
				default:
					as, err := s.Alerts(ctx, contosoID, time.Time{})
					if err != nil {
						t.Error(err)
						return
					}
					if len(as) > 0 {
						_ = s.Apply(ctx, bot.WriteBack{TenantID: contosoID, AlertID: as[i%len(as)].ID, Status: bot.StatusInProgress})
					}
				}
			}
		}()
	}
	wg.Wait()
}
