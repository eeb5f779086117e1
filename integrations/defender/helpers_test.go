package defender

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/msspbot/msspbot/integrations/defender/defendertest"
)

const (
	tenantA = "6f1c3e2a-0b7d-4c1e-9a55-1d2b3c4d5e6f" // Contoso in the fixtures
	tenantB = "0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d" // Fabrikam
)

// env is a Client wired to a fake IdP and a fake MDE API.
type env struct {
	idp    *defendertest.IdP
	mde    *defendertest.MDE
	c      *Client
	cfg    Config
	sleeps *sleeps
	logs   *syncBuffer
}

func newEnv(t *testing.T, mutate ...func(*Config)) *env {
	t.Helper()
	idp := defendertest.NewIdP(t)
	mde := defendertest.NewMDE(t, idp)
	e := &env{idp: idp, mde: mde, sleeps: &sleeps{}, logs: &syncBuffer{}}
	e.cfg = Config{
		ClientID:      idp.ClientID,
		ClientSecret:  idp.Secret(),
		AuthorityHost: idp.URL,
		BaseURL:       mde.URL,
		WriteBack:     true,
		HTTPClient:    mde.Client(),
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
