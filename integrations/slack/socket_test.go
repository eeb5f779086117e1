package slack

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/msspbot/msspbot/bot"
)

type ack struct {
	EnvelopeID string          `json:"envelope_id"`
	Payload    json.RawMessage `json:"payload"`
}

// envelope sends one Socket Mode request and returns its ack.
func envelope(t *testing.T, conn *websocket.Conn, id, typ string, payload any) (ack, error) {
	t.Helper()
	msg := map[string]any{"envelope_id": id, "type": typ, "payload": payload, "accepts_response_payload": typ == "slash_commands"}
	if err := conn.WriteJSON(msg); err != nil {
		return ack{}, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		var a ack
		if err := conn.ReadJSON(&a); err != nil {
			return ack{}, err
		}
		if a.EnvelopeID == id {
			return a, nil
		}
	}
}

func hello(conn *websocket.Conn) error {
	return conn.WriteJSON(map[string]any{"type": "hello", "num_connections": 1,
		"connection_info": map[string]any{"app_id": "A1"}, "debug_info": map[string]any{"host": "fake"}})
}

func slashPayload(text string) map[string]any {
	return map[string]any{
		"token": "legacy", "team_id": "T1", "channel_id": "C0CONTOSO", "channel_name": "contoso",
		"user_id": "U012ANALYST", "user_name": "ana", "command": "/mssp", "text": text,
		"response_url": "https://hooks.slack.com/commands/T1/1/secret", "trigger_id": "1.2.3",
	}
}

func TestSocketMode(t *testing.T) {
	f := newFakeSlack(t)
	type result struct {
		name string
		ack  ack
		err  error
	}
	results := make(chan result, 10)
	f.ws = func(n int, conn *websocket.Conn) {
		if err := hello(conn); err != nil {
			results <- result{name: "hello", err: err}
			return
		}
		if n == 0 {
			return // drop the first connection: the client must reconnect
		}
		a, err := envelope(t, conn, "e1", "slash_commands", slashPayload("alerts &lt;x&gt;"))
		results <- result{"slash", a, err}
		click := blockActions(map[string]any{"type": "message", "message_ts": "1700000000.000001", "channel_id": "C0CONTOSO"},
			button(bot.ActionAck, alertID, "b"))
		a, err = envelope(t, conn, "e2", "interactive", click)
		results <- result{"click", a, err}
		ev := map[string]any{"type": "event_callback", "team_id": "T1", "api_app_id": "A1", "event_id": "Ev1", "event_time": 1,
			"event": map[string]any{"type": "channel_shared", "connected_team_id": "T9", "channel": "C0SOC", "event_ts": "1.2"}}
		a, err = envelope(t, conn, "e3", "events_api", ev)
		results <- result{"event", a, err}
		_ = conn.SetReadDeadline(time.Time{})
		for { // keep the connection until the client closes it
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}

	hooks := &responseRecorder{}
	exec := &fakeExec{}
	rn, err := NewRunner(f.config(), exec, WithResponseClient(&http.Client{Transport: hooks}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rn.Run(ctx) }()

	get := func(name string) ack {
		t.Helper()
		select {
		case r := <-results:
			if r.err != nil || r.name != name {
				t.Fatalf("%s: got %s, %v", name, r.name, r.err)
			}
			return r.ack
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no ack", name)
		}
		return ack{}
	}

	a := get("slash")
	var payload map[string]any
	if err := json.Unmarshal(a.Payload, &payload); err != nil {
		t.Fatalf("slash ack payload %s: %v", a.Payload, err)
	}
	if payload["response_type"] != "ephemeral" || payload["text"] != "echo: alerts &lt;x&gt;" {
		t.Errorf("slash ack payload = %v", payload)
	}
	if a := get("click"); len(a.Payload) != 0 && string(a.Payload) != "null" {
		t.Errorf("click ack payload = %s", a.Payload)
	}
	get("event")
	if err := rn.Ready(); err != nil {
		t.Errorf("Ready = %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}

	if n := f.callCount("apps.connections.open"); n != 2 {
		t.Errorf("apps.connections.open calls = %d, want 2 (one reconnect)", n)
	}
	cmds := exec.commands()
	if len(cmds) != 2 {
		t.Fatalf("commands = %+v", cmds)
	}
	typed := bot.Command{Platform: "slack", Channel: "slack:C0CONTOSO", User: "U012ANALYST", UserName: "ana", Origin: bot.OriginTyped, Text: "alerts <x>"}
	if cmds[0] != typed {
		t.Errorf("typed = %+v", cmds[0])
	}
	if c := cmds[1]; c.Origin != bot.OriginClick || c.Action != bot.ActionAck || c.Value != alertID || c.MessageID != "1700000000.000001" {
		t.Errorf("click = %+v", c)
	}
	posts := hooks.all()
	if len(posts) != 1 || posts[0].Body["response_type"] != "ephemeral" || posts[0].Body["replace_original"] != false {
		t.Errorf("click answers = %+v", posts)
	}
}

func TestSocketModeSlowCommand(t *testing.T) {
	f := newFakeSlack(t)
	acks := make(chan ack, 1)
	f.ws = func(n int, conn *websocket.Conn) {
		_ = hello(conn)
		a, _ := envelope(t, conn, "slow", "slash_commands", slashPayload("status"))
		acks <- a
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}
	hooks := &responseRecorder{}
	exec := &fakeExec{delay: 300 * time.Millisecond}
	rn, err := NewRunner(f.config(), exec, WithReplyBudget(20*time.Millisecond), WithResponseClient(&http.Client{Transport: hooks}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rn.Run(ctx) }()
	select {
	case a := <-acks:
		if len(a.Payload) != 0 && string(a.Payload) != "null" {
			t.Errorf("slow command acked with %s", a.Payload)
		}
		if len(hooks.all()) != 0 {
			t.Error("answered before the ack")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no ack")
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(hooks.all()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	posts := hooks.all()
	if len(posts) != 1 || posts[0].Body["text"] != "echo: status" || posts[0].URL != "https://hooks.slack.com/commands/T1/1/secret" {
		t.Errorf("response_url posts = %+v", posts)
	}
}

func TestSocketModeBadAppToken(t *testing.T) {
	f := newFakeSlack(t)
	cfg := f.config()
	cfg.AppToken = "xapp-1-revoked-token"
	rn, err := NewRunner(cfg, &fakeExec{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = rn.Run(ctx)
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want an auth error", err)
	}
	if strings.Contains(err.Error(), cfg.AppToken) {
		t.Errorf("token in error %q", err)
	}
}

func TestNewRunnerValidates(t *testing.T) {
	for _, cfg := range []Config{{}, {AppToken: "xoxb-not-an-app-token"}} {
		if _, err := NewRunner(cfg, &fakeExec{}); err == nil {
			t.Errorf("NewRunner(%+v) succeeded", cfg)
		}
	}
	if _, err := NewRunner(Config{AppToken: testAppToken}, nil); err == nil {
		t.Error("nil executor accepted")
	}
}
