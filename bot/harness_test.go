package bot_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
	"github.com/msspbot/msspbot/storage/sqlite"
)

const (
	tenantA = "6f1c3e2a-0b7d-4c1e-9a55-1d2b3c4d5e6f" // Contoso
	tenantB = "0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d" // Fabrikam
	chA     = bot.ChannelRef("test:contoso")
	chB     = bot.ChannelRef("test:fabrikam")
	chSOC   = bot.ChannelRef("test:soc")
	analyst = "analyst"  // SOC user "test:analyst"
	custA   = "customer" // a customer's user
)

// fakeNotifier is a chat platform in memory. Messages are kept so Find
// works across a simulated restart (the platform outlives the process).
type fakeNotifier struct {
	mu       sync.Mutex
	seq      int
	messages map[string]*fakeMsg // by id
	order    []string
	threads  []fakeLine
	edits    []fakeEdit
	// failPost returns an error for a post to a channel (nil: none).
	failPost func(ch bot.ChannelRef) error
	// crash: the post reaches the platform (or not, with crashBefore) and
	// then the dispatcher goroutine stops before anything is recorded.
	crashAfter, crashBefore bool
	postCalls               int
}

type fakeMsg struct {
	ID, Key string
	Ch      bot.ChannelRef
	Msg     bot.Message
}

type fakeLine struct {
	Ch         bot.ChannelRef
	Root, Text string
}

type fakeEdit struct {
	Ch  bot.ChannelRef
	ID  string
	Msg bot.Message
}

func newFakeNotifier() *fakeNotifier { return &fakeNotifier{messages: map[string]*fakeMsg{}} }

func (f *fakeNotifier) Post(ctx context.Context, ch bot.ChannelRef, key string, m bot.Message) (string, error) {
	f.mu.Lock()
	f.postCalls++
	if f.crashBefore {
		f.crashBefore = false
		f.mu.Unlock()
		runtime.Goexit()
	}
	if f.failPost != nil {
		if err := f.failPost(ch); err != nil {
			f.mu.Unlock()
			return "", err
		}
	}
	f.seq++
	id := fmt.Sprintf("m%d", f.seq)
	f.messages[id] = &fakeMsg{ID: id, Key: key, Ch: ch, Msg: m}
	f.order = append(f.order, id)
	crash := f.crashAfter
	f.crashAfter = false
	f.mu.Unlock()
	if crash {
		runtime.Goexit()
	}
	return id, nil
}

func (f *fakeNotifier) Thread(ctx context.Context, ch bot.ChannelRef, root string, m bot.Message) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.messages[root]; !ok {
		return "", bot.PermanentError("thread_not_found", nil)
	}
	f.threads = append(f.threads, fakeLine{Ch: ch, Root: root, Text: m.Text})
	f.seq++
	return fmt.Sprintf("m%d", f.seq), nil
}

func (f *fakeNotifier) Edit(ctx context.Context, ch bot.ChannelRef, id string, m bot.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	msg, ok := f.messages[id]
	if !ok || msg.Ch != ch {
		return bot.PermanentError("message_not_found", nil)
	}
	msg.Msg = m
	f.edits = append(f.edits, fakeEdit{Ch: ch, ID: id, Msg: m})
	return nil
}

func (f *fakeNotifier) Find(ctx context.Context, ch bot.ChannelRef, key string) (string, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range f.order {
		if m := f.messages[id]; m.Ch == ch && m.Key == key {
			return id, true, nil
		}
	}
	return "", false, nil
}

// message returns a posted message as it is now (after edits).
func (f *fakeNotifier) message(id string) fakeMsg {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m := f.messages[id]; m != nil {
		return *m
	}
	return fakeMsg{}
}

// posts returns the root messages posted to ch, in order.
func (f *fakeNotifier) posts(ch bot.ChannelRef) []*fakeMsg {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*fakeMsg
	for _, id := range f.order {
		if m := f.messages[id]; m.Ch == ch {
			cp := *m
			out = append(out, &cp)
		}
	}
	return out
}

func (f *fakeNotifier) lines(root string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, l := range f.threads {
		if l.Root == root {
			out = append(out, l.Text)
		}
	}
	return out
}

// cardFor finds the card of alert id in ch.
func (f *fakeNotifier) cardFor(ch bot.ChannelRef, alertID string) *fakeMsg {
	for _, m := range f.posts(ch) {
		if m.Msg.Card != nil && m.Msg.Card.Alert.ID == alertID {
			return m
		}
	}
	return nil
}

// fakeSource serves alerts per tenant; err per tenant injects failures.
type fakeSource struct {
	mu     sync.Mutex
	alerts map[string]map[string]bot.Alert
	errs   map[string]error
	calls  map[string][]time.Time // since values asked
}

func newFakeSource() *fakeSource {
	return &fakeSource{alerts: map[string]map[string]bot.Alert{}, errs: map[string]error{}, calls: map[string][]time.Time{}}
}

func (s *fakeSource) put(a bot.Alert) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.alerts[a.TenantID] == nil {
		s.alerts[a.TenantID] = map[string]bot.Alert{}
	}
	s.alerts[a.TenantID][a.ID] = a
}

func (s *fakeSource) setErr(tenant string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs[tenant] = err
}

func (s *fakeSource) Alerts(ctx context.Context, tenant string, since time.Time) ([]bot.Alert, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[tenant] = append(s.calls[tenant], since)
	if err := s.errs[tenant]; err != nil {
		return nil, err
	}
	var out []bot.Alert
	for _, a := range s.alerts[tenant] {
		if !a.LastUpdatedAt.Before(since) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b bot.Alert) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

type fakeTarget struct {
	mu      sync.Mutex
	applied []bot.WriteBack
	err     error
	errFor  map[string]error // by tenant, before err
}

func (t *fakeTarget) Apply(ctx context.Context, wb bot.WriteBack) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.errFor[wb.TenantID]; err != nil {
		return err
	}
	if t.err != nil {
		return t.err
	}
	t.applied = append(t.applied, wb)
	return nil
}

func (t *fakeTarget) list() []bot.WriteBack {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.applied)
}

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type harness struct {
	t      *testing.T
	path   string
	db     *sqlite.DB
	svc    *bot.Service
	cfg    bot.Config
	chat   *fakeNotifier
	src    *fakeSource
	target *fakeTarget
	clk    *clock
	access *fakeAccess
	// triggers counts fetch requests made after grants.
	triggers atomic.Int32
}

// fakeAccess issues tokens only for consented tenants, as Entra does.
type fakeAccess struct {
	mu        sync.Mutex
	consented map[string]bool
	calls     int
	outage    error // answered instead of a token or a refusal (Entra down)
}

func (f *fakeAccess) CheckAccess(ctx context.Context, tenant string, fresh bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.outage != nil {
		return f.outage
	}
	if f.consented[tenant] {
		return nil
	}
	return fmt.Errorf("AADSTS65001: %w", bot.ErrAuth)
}

func (f *fakeAccess) consent(tenant string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.consented[tenant] = true
}

func newHarness(t *testing.T, mod ...func(*bot.Config)) *harness {
	t.Helper()
	h := &harness{
		t: t, path: filepath.Join(t.TempDir(), "bot.db"),
		chat: newFakeNotifier(), src: newFakeSource(), target: &fakeTarget{},
		clk:    &clock{now: time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)},
		access: &fakeAccess{consented: map[string]bool{}},
	}
	h.cfg = bot.Config{
		SOCChannels:     []bot.ChannelRef{chSOC},
		SOCUsers:        []string{"test:" + analyst},
		Identities:      map[string]string{"test:" + analyst: "analyst1@mssp.example"},
		CustomersCanAck: true,
		StormThreshold:  20,
		WriteBack:       true,
		Overlap:         5 * time.Minute,
		Now:             h.clk.Now,
		PublicURL:       "https://msspbot.example.com",
		AppID:           "app-1234",
		Permissions:     []string{"WindowsDefenderATP Alert.ReadWrite.All"},
		ConsentURL: func(tenant, state string) string {
			return "https://login.example/" + tenant + "/v2.0/adminconsent?client_id=app-1234&state=" + url.QueryEscape(state)
		},
	}
	for _, m := range mod {
		m(&h.cfg)
	}
	h.open()
	ctx := context.Background()
	if err := h.db.ApplyConfigTenants(ctx, []bot.ConfigTenant{
		{ID: tenantA, Name: "Contoso", Channels: []bot.ChannelRef{chA}},
		{ID: tenantB, Name: "Fabrikam", Channels: []bot.ChannelRef{chB}},
	}); err != nil {
		t.Fatal(err)
	}
	return h
}

// open (re)opens the DB and builds a fresh Service: a process start.
func (h *harness) open() {
	h.t.Helper()
	db, err := sqlite.Open(context.Background(), h.path)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { db.Close() })
	h.db = db
	h.svc = bot.New(h.cfg, bot.Deps{
		Store: db, Source: h.src, Target: h.target, Access: h.access,
		Notifiers: map[string]bot.Notifier{"test": h.chat},
		Trigger:   func() { h.triggers.Add(1) },
	})
}

// restart simulates a crash: the old process state is dropped.
func (h *harness) restart() {
	h.t.Helper()
	h.db.Close()
	h.open()
	if err := h.svc.Recover(context.Background()); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) poll() {
	h.t.Helper()
	if err := h.svc.Poll(context.Background()); err != nil {
		h.t.Fatal(err)
	}
}

// drain dispatches until nothing is ready.
func (h *harness) drain() {
	h.t.Helper()
	// Two empty rounds in a row: a failure in one round may queue a notice
	// that only the next round sends.
	idle := 0
	for i := 0; i < 100; i++ {
		n, err := h.svc.Dispatch(context.Background())
		if err != nil {
			h.t.Fatal(err)
		}
		if n == 0 {
			if idle++; idle == 2 {
				return
			}
		} else {
			idle = 0
		}
	}
	h.t.Fatal("dispatch did not settle")
}

func (h *harness) run(ch bot.ChannelRef, user, text string) string {
	h.t.Helper()
	m := h.svc.Execute(context.Background(), bot.Command{Platform: "test", Channel: ch, User: user, Origin: bot.OriginTyped, Text: text})
	if !m.Ephemeral {
		h.t.Errorf("reply to %q is not ephemeral", text)
	}
	return render(m)
}

func (h *harness) click(ch bot.ChannelRef, user, action, value, msgID string) string {
	h.t.Helper()
	m := h.svc.Execute(context.Background(), bot.Command{Platform: "test", Channel: ch, User: user, Origin: bot.OriginClick, Action: action, Value: value, MessageID: msgID})
	return render(m)
}

// render flattens a reply for assertions.
func render(m bot.Message) string {
	var b strings.Builder
	b.WriteString(m.Title + "\n" + m.Text + "\n")
	if m.List != nil {
		b.WriteString(m.List.Header + "\n")
		for _, r := range m.List.Rows {
			b.WriteString(r + "\n")
		}
		b.WriteString(m.List.More + m.List.Empty + "\n")
	}
	for _, btn := range m.Buttons {
		b.WriteString("[" + btn.Label + " " + btn.ActionID + " " + btn.Value + btn.URL + "]\n")
	}
	return b.String()
}

// alert returns a fixture-shaped alert updated at the harness's now.
func (h *harness) alert(tenant, id string, sev bot.Severity) bot.Alert {
	return bot.Alert{
		TenantID: tenant, ID: id, Title: "Suspicious access to LSASS service " + id,
		Severity: sev, Status: bot.StatusNew, Category: "CredentialAccess",
		DetectionSource: "WindowsDefenderAtp", DeviceName: "fin-ws-017.contoso.local", DeviceGroup: "Finance",
		UserName: `CONTOSO\jdoe`, CreatedAt: h.clk.Now().Add(-time.Minute), LastUpdatedAt: h.clk.Now().Add(-time.Second),
		PortalURL: "https://security.microsoft.com/alerts/" + id + "?tid=" + tenant, Raw: []byte(`{"id":"` + id + `"}`),
	}
}

func contains(t *testing.T, got, want string) {
	t.Helper()
	if !strings.Contains(got, want) {
		t.Errorf("got %q\nwant it to contain %q", got, want)
	}
}

func notContains(t *testing.T, got, bad string) {
	t.Helper()
	if strings.Contains(got, bad) {
		t.Errorf("got %q\nwant it NOT to contain %q", got, bad)
	}
}

var errBoom = errors.New("boom")
