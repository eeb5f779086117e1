package discord

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/gorilla/websocket"
)

// fakeGateway serves GET /gateway and a websocket that says hello, reads
// the identify, sends READY and then the given dispatches.
type fakeGateway struct {
	identify  chan map[string]any
	events    []string // raw INTERACTION_CREATE payloads
	closeWith int      // when set: close with this code instead of READY
}

func (g *fakeGateway) install(t *testing.T, f *fakeDiscord) {
	g.identify = make(chan map[string]any, 4)
	f.mux.HandleFunc("GET /api/v9/gateway", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]string{"url": "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/ws"})
	})
	up := websocket.Upgrader{}
	f.mux.HandleFunc("GET /ws/", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.WriteJSON(map[string]any{"op": 10, "d": map[string]any{"heartbeat_interval": 45000}})
		var id map[string]any
		for {
			if err := c.ReadJSON(&id); err != nil {
				return
			}
			if id["op"] == float64(2) {
				break
			}
		}
		g.identify <- id
		if g.closeWith != 0 {
			c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(g.closeWith, "Authentication failed."))
			return
		}
		c.WriteJSON(map[string]any{"op": 0, "s": 1, "t": "READY", "d": map[string]any{
			"v": 9, "session_id": "sess1", "user": map[string]any{"id": "42", "username": "msspbot", "bot": true}, "guilds": []any{},
		}})
		for n, ev := range g.events {
			c.WriteJSON(map[string]any{"op": 0, "s": n + 2, "t": "INTERACTION_CREATE", "d": json.RawMessage(ev)})
		}
		for { // heartbeats until the client closes
			var m map[string]any
			if err := c.ReadJSON(&m); err != nil {
				return
			}
			if m["op"] == float64(1) {
				c.WriteJSON(map[string]any{"op": 11})
			}
		}
	})
}

func TestGatewayRunner(t *testing.T) {
	h, f, exec := newInteractions(t)
	g := &fakeGateway{events: []string{
		commandInteraction("500", `[{"type":1,"name":"status"}]`),
		clickInteraction("t1", "alert_ack:"+alertID, "m5"),
	}}
	g.install(t, f)
	r := &Runner{Session: h.Session, Interactions: h}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	select {
	case id := <-g.identify:
		d, _ := id["d"].(map[string]any)
		if d["token"] != "Bot test-token" || d["intents"] != float64(0) {
			t.Errorf("identify token %v intents %v", d["token"], d["intents"])
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no identify")
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(f.reqs("POST", "/api/v9/interactions/")) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("callbacks = %d, want 2", len(f.reqs("POST", "/api/v9/interactions/")))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !r.Connected() {
		t.Error("not connected after READY")
	}
	for _, cb := range f.reqs("POST", "/api/v9/interactions/") {
		if cb.Path != "/api/v9/interactions/i1/tok/callback" && cb.Path != "/api/v9/interactions/i2/tok/callback" {
			t.Errorf("callback path %s", cb.Path)
		}
		var resp struct {
			Type int `json:"type"`
			Data struct {
				Flags int `json:"flags"`
			} `json:"data"`
		}
		json.Unmarshal(cb.Body, &resp)
		if resp.Type != 4 || resp.Data.Flags != 64 {
			t.Errorf("callback body %s", cb.Body)
		}
	}
	cmds := exec.commands()
	if len(cmds) != 2 {
		t.Fatalf("commands = %d", len(cmds))
	}
	for _, c := range cmds {
		if c.Channel != "discord:500" {
			t.Errorf("command channel %s", c.Channel)
		}
		if c.Origin == "click" && (c.Action != "alert_ack" || c.Value != alertID || c.MessageID != "m5") {
			t.Errorf("click = %+v", c)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if r.Connected() {
		t.Error("still connected after Run")
	}
}

func TestGatewayAuthFailed(t *testing.T) {
	h, f, _ := newInteractions(t)
	g := &fakeGateway{closeWith: closeAuthFailed}
	g.install(t, f)
	r := &Runner{Session: h.Session, Interactions: h}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := r.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "4004") {
		t.Errorf("Run = %v, want the auth failure", err)
	}
}

func TestGatewayDeferredEdit(t *testing.T) {
	// The gateway path: deferred response first, then the edit.
	h, f, exec := newInteractions(t)
	h.Deadline = 20 * time.Millisecond
	exec.gate = make(chan struct{})
	r := &Runner{Session: h.Session, Interactions: h}
	var i discordgo.Interaction
	if err := json.Unmarshal([]byte(commandInteraction("500", `[{"type":1,"name":"tenants"}]`)), &i); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		close(exec.gate)
	}()
	r.handle(context.Background(), &i)
	cb := f.reqs("POST", "/api/v9/interactions/i1/tok/callback")
	edits := f.reqs("PATCH", "/api/v9/webhooks/app1/tok/messages/@original")
	if len(cb) != 1 || !strings.HasPrefix(string(cb[0].Body), `{"type":5`) || len(edits) != 1 {
		t.Fatalf("callbacks %d (%s), edits %d", len(cb), cb[0].Body, len(edits))
	}
}
