package defender

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
	"github.com/msspbot/msspbot/integrations/defender/defendertest"
)

const (
	tenantA = "6f1c3e2a-0b7d-4c1e-9a55-1d2b3c4d5e6f" // Contoso in the fixtures
	tenantB = "0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d" // Fabrikam
)

// env is a Client wired to a fake IdP and a fake alert API: MDE (newEnv)
// or Graph (newGraphEnv).
type env struct {
	idp    *defendertest.IdP
	mde    *defendertest.MDE   // set by newEnv
	g      *defendertest.Graph // set by newGraphEnv
	fake   fakeAPI             // whichever of the two is set
	api    apiCase             // the API's specifics
	c      *Client
	cfg    Config
	sleeps *sleeps
	logs   *syncBuffer
}

// fakeAPI is what the MDE and Graph fakes both offer.
type fakeAPI interface {
	URL() string
	Client() *http.Client
	Put(tenant string, alert any) string
	Alert(tenant, id string) (map[string]any, bool)
	Patches() []defendertest.Patch
	Inject(f defendertest.Fault, n int)
	FailNext(n, status int)
	ThrottleNext(n, retryAfterSeconds int)
	SlowNext(n int, d time.Duration)
	BadJSONNext(n int)
	ClearFaults()
	SetAudience(aud string)
	CallCount() int
}

// mdeFake and graphFake adapt the fakes to fakeAPI: URL is a field, and
// each API has its own call record.
type mdeFake struct{ *defendertest.MDE }

func (f mdeFake) URL() string    { return f.MDE.URL }
func (f mdeFake) CallCount() int { return len(f.MDE.Calls()) }

type graphFake struct{ *defendertest.Graph }

func (f graphFake) URL() string    { return f.Graph.URL }
func (f graphFake) CallCount() int { return len(f.Graph.Calls()) }

// apiCase is what tests over both APIs need to know of one.
type apiCase struct {
	name     string
	sample   func(id string) map[string]any // the API's sample alert
	path     string                         // of the alert list
	authCode string                         // the error code of the fake's 401
	noRoles  string                         // a word of the fake's 403 message
}

var (
	mdeAPI = apiCase{
		name: "mde", sample: defendertest.SampleAlert,
		path: alertsPath, authCode: "Unauthorized", noRoles: "Alert.Read",
	}
	graphAPI = apiCase{
		name: "graph", sample: defendertest.GraphSampleAlert,
		path: graphAlertsPath, authCode: "InvalidAuthenticationToken", noRoles: "SecurityAlert",
	}
	// apis runs a test over both APIs.
	apis = []apiCase{mdeAPI, graphAPI}
)

// newEnv is an env of the API.
func (a apiCase) newEnv(t *testing.T, mutate ...func(*Config)) *env {
	t.Helper()
	if a.name == graphAPI.name {
		return newGraphEnv(t, mutate...)
	}
	return newEnv(t, mutate...)
}

// newEnv is an env with defender.api: mde.
func newEnv(t *testing.T, mutate ...func(*Config)) *env {
	t.Helper()
	idp := defendertest.NewIdP(t)
	mde := defendertest.NewMDE(t, idp)
	return startEnv(t, &env{idp: idp, mde: mde, fake: mdeFake{mde}, api: mdeAPI}, "", mutate)
}

// newGraphEnv is an env with defender.api: graph.
func newGraphEnv(t *testing.T, mutate ...func(*Config)) *env {
	t.Helper()
	idp := defendertest.NewIdP(t)
	g := defendertest.NewGraph(t, idp)
	return startEnv(t, &env{idp: idp, g: g, fake: graphFake{g}, api: graphAPI}, APIGraph, mutate)
}

// onEachAPI runs f as a subtest per API (and per status, when there are
// statuses), each on a fresh env in which tenantA has consented.
func onEachAPI(t *testing.T, statuses []int, f func(t *testing.T, e *env, status int)) {
	for _, api := range apis {
		name, cases := api.name+"/%d", statuses
		if len(cases) == 0 {
			name, cases = api.name+"%.0d", []int{0}
		}
		for _, status := range cases {
			t.Run(fmt.Sprintf(name, status), func(t *testing.T) {
				e := api.newEnv(t)
				e.idp.Consent(tenantA)
				f(t, e, status)
			})
		}
	}
}

// sampleAlert puts the API's sample alert with id into tenantA and reads
// it back with GetAlert.
func sampleAlert(t *testing.T, e *env, id string) bot.Alert {
	t.Helper()
	a, err := e.c.GetAlert(ctxT(t), tenantA, e.fake.Put(tenantA, e.api.sample(id)))
	if err != nil {
		t.Fatalf("GetAlert: %v", err)
	}
	return a
}

// expectAlertIDs lists tenantA's alerts since and fails the test unless
// their ids are want, in order.
func expectAlertIDs(t *testing.T, e *env, since time.Time, want []string) []bot.Alert {
	t.Helper()
	got, err := e.c.Alerts(ctxT(t), tenantA, since)
	if err != nil {
		t.Fatalf("Alerts: %v", err)
	}
	if ids := idsOf(got); !reflect.DeepEqual(ids, want) {
		t.Fatalf("ids = %v, want %v", ids, want)
	}
	return got
}

func startEnv(t *testing.T, e *env, api string, mutate []func(*Config)) *env {
	t.Helper()
	e.sleeps, e.logs = &sleeps{}, &syncBuffer{}
	e.cfg = Config{
		ClientID:      e.idp.ClientID,
		ClientSecret:  e.idp.Secret(),
		AuthorityHost: e.idp.URL,
		API:           api,
		BaseURL:       e.fake.URL(),
		WriteBack:     true,
		HTTPClient:    e.fake.Client(),
		Logger:        slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		PerMinute:     -1,
		PerHour:       -1,
		MaxAttempts:   4,
		BackoffBase:   time.Second,
		sleep:         e.sleeps.sleep,
	}
	for _, m := range mutate {
		m(&e.cfg)
	}
	c, err := New(e.cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.c = c
	return e
}

// sleeps records the client's waits instead of sleeping.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
