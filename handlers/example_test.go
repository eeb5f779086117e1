package handlers_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/msspbot/msspbot/handlers"
	"github.com/msspbot/msspbot/metrics"
	"github.com/msspbot/msspbot/scheduler"
)

// Example shows the serve wiring of this package with metrics and the
// scheduler: mount, add readiness checks, open, and shut down in reverse.
func Example() {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)

	m := metrics.New(log)
	poll := func(ctx context.Context) error { return nil } // svc.Poll
	sched, err := scheduler.New("@every 1m", poll, log)
	if err != nil {
		panic(err)
	}

	srv := handlers.NewServer()
	srv.Addr = "127.0.0.1:0" // cfg.HTTP.Listen
	srv.Logger = log
	srv.Metrics = m.Handler()
	srv.AddCheck("scheduler", sched.Ready)
	srv.AddCheck("database", func(ctx context.Context) error { return nil }) // db.PingContext
	srv.Handle("GET /consent/callback", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "granted")
	}))

	if err := sched.Start(ctx); err != nil {
		panic(err)
	}
	if err := srv.Open(); err != nil {
		panic(err)
	}
	res, err := http.Get(srv.URL() + "/readyz")
	if err != nil {
		panic(err)
	}
	res.Body.Close()
	fmt.Println("readyz", res.StatusCode)

	shutdown, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	fmt.Println(srv.Close(shutdown), sched.Stop(shutdown))
	// Output:
	// readyz 200
	// <nil> <nil>
}
