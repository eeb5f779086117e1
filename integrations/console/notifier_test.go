package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/msspbot/msspbot/bot"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes under test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const (
	contoso = bot.ChannelRef("console:contoso")
	soc     = bot.ChannelRef("console:soc")
)

func textMsg(s string) bot.Message { return bot.Message{Kind: bot.MessageText, Text: s} }

func TestNotifierIDsAndFind(t *testing.T) {
	ctx := context.Background()
	var out syncBuffer
	n := NewNotifier(&out, Options{Location: cet})
	id1, err := n.Post(ctx, contoso, "msspbot-1", testCard())
	if err != nil || id1 != "c1" {
		t.Fatalf("Post = %q, %v; want c1", id1, err)
	}
	id2, err := n.Post(ctx, soc, "msspbot-2", testCard())
	if err != nil || id2 != "c2" {
		t.Fatalf("Post = %q, %v; want c2", id2, err)
	}
	id3, err := n.Thread(ctx, contoso, id1, textMsg("Acknowledged by console:analyst"))
	if err != nil || id3 != "c3" {
		t.Fatalf("Thread = %q, %v; want c3", id3, err)
	}

	for _, tc := range []struct {
		ch     bot.ChannelRef
		key    string
		want   string
		wantOK bool
	}{
		{contoso, "msspbot-1", "c1", true},
		{soc, "msspbot-2", "c2", true},
		{soc, "msspbot-1", "", false}, // keys are per channel
		{contoso, "msspbot-9", "", false},
	} {
		got, ok, err := n.Find(ctx, tc.ch, tc.key)
		if err != nil || got != tc.want || ok != tc.wantOK {
			t.Errorf("Find(%s, %s) = %q, %v, %v; want %q, %v", tc.ch, tc.key, got, ok, err, tc.want, tc.wantOK)
		}
	}

	s := out.String()
	assertContains(t, s,
		"#contoso [msg c1]\n┌─ 🔴 HIGH",
		"#soc [msg c2]\n┌─",
		"  ↳ #contoso [msg c1] Acknowledged by console:analyst\n",
	)
}

func TestNotifierEdit(t *testing.T) {
	ctx := context.Background()
	var out syncBuffer
	n := NewNotifier(&out, Options{IDPrefix: "r7-"})
	id, err := n.Post(ctx, contoso, "k", testCard())
	if err != nil || id != "r7-1" {
		t.Fatalf("Post = %q, %v", id, err)
	}
	m := testCard()
	m.Card.Alert.Status = bot.StatusInProgress
	m.Card.Alert.AssignedTo = "analyst@mssp.example"
	if err := n.Edit(ctx, contoso, id, m); err != nil {
		t.Fatal(err)
	}
	assertContains(t, out.String(), "#contoso ✎ card [msg r7-1] updated:\n┌─", "Status: InProgress · assigned to analyst@mssp.example")

	// The same id in another channel is not that message.
	err = n.Edit(ctx, soc, id, m)
	var se *bot.SendError
	if !errors.As(err, &se) || !se.Permanent {
		t.Errorf("Edit in the wrong channel = %v; want a permanent SendError", err)
	}
	// A message of an earlier run is printed and its buttons become clickable.
	if err := n.Edit(ctx, soc, "c99", m); err != nil {
		t.Fatalf("Edit of an unknown id: %v", err)
	}
	if got, ok := n.MessageWithButton(soc, bot.ActionAck, testAlertID); !ok || got != "c99" {
		t.Errorf("MessageWithButton after edit = %q, %v; want c99", got, ok)
	}
	if err := n.Edit(ctx, soc, "", m); err == nil {
		t.Error("Edit without an id succeeded")
	}
}

func TestNotifierRefusesBadChannels(t *testing.T) {
	ctx := context.Background()
	n := NewNotifier(&syncBuffer{}, Options{})
	for _, ch := range []bot.ChannelRef{"slack:C1", "console:", "contoso", ""} {
		_, err := n.Post(ctx, ch, "k", textMsg("x"))
		var se *bot.SendError
		if !errors.As(err, &se) || !se.Permanent {
			t.Errorf("Post(%q) = %v; want a permanent SendError", ch, err)
		}
	}
	if _, err := n.Thread(ctx, contoso, "", textMsg("x")); err == nil {
		t.Error("Thread without a root succeeded")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err := n.Post(cctx, contoso, "k", textMsg("x"))
	var se *bot.SendError
	if !errors.As(err, &se) || se.Permanent || !errors.Is(err, context.Canceled) {
		t.Errorf("Post with a cancelled context = %v; want a retryable SendError wrapping Canceled", err)
	}
	if _, _, err := n.Find(cctx, contoso, "k"); err == nil {
		t.Error("Find with a cancelled context succeeded")
	}
}

type failWriter struct{ fail bool }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.fail {
		return 0, errors.New("broken pipe")
	}
	return len(p), nil
}

func TestNotifierWriteFailure(t *testing.T) {
	ctx := context.Background()
	w := &failWriter{fail: true}
	n := NewNotifier(w, Options{})
	_, err := n.Post(ctx, contoso, "k", textMsg("x"))
	var se *bot.SendError
	if !errors.As(err, &se) || se.Permanent {
		t.Fatalf("Post on a failing writer = %v; want a retryable SendError", err)
	}
	if _, ok, _ := n.Find(ctx, contoso, "k"); ok {
		t.Error("a post that failed is found")
	}
	w.fail = false
	// The id of the failed post is handed out again: nothing was shown.
	if id, err := n.Post(ctx, contoso, "k", textMsg("x")); err != nil || id != "c1" {
		t.Errorf("Post = %q, %v; want c1", id, err)
	}
}

func TestMessageWithButton(t *testing.T) {
	ctx := context.Background()
	n := NewNotifier(&syncBuffer{}, Options{})
	other := testCard()
	other.Card.Alert.ID = "da1_2"
	other.Buttons = bot.CardButtons("da1_2")
	mustPost := func(ch bot.ChannelRef, m bot.Message) string {
		t.Helper()
		id, err := n.Post(ctx, ch, "", m)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	c1 := mustPost(contoso, testCard())
	c2 := mustPost(soc, testCard())
	mustPost(contoso, other)
	mustPost(contoso, textMsg("no buttons"))

	for _, tc := range []struct {
		ch            bot.ChannelRef
		action, value string
		want          string
		ok            bool
	}{
		{contoso, bot.ActionAck, testAlertID, c1, true},
		{contoso, bot.ActionResolve, testAlertID, c1, true},
		{soc, bot.ActionAck, testAlertID, c2, true},
		{contoso, bot.ActionAck, "da1_2", "c3", true},
		{soc, bot.ActionAck, "da1_2", "", false},
		{contoso, bot.ActionAck, "nope", "", false},
		{contoso, "alert_nope", testAlertID, "", false},
	} {
		got, ok := n.MessageWithButton(tc.ch, tc.action, tc.value)
		if got != tc.want || ok != tc.ok {
			t.Errorf("MessageWithButton(%s, %s, %s) = %q, %v; want %q, %v", tc.ch, tc.action, tc.value, got, ok, tc.want, tc.ok)
		}
	}
	// The most recent message with the button wins.
	c5 := mustPost(contoso, testCard())
	if got, _ := n.MessageWithButton(contoso, bot.ActionAck, testAlertID); got != c5 {
		t.Errorf("most recent = %q; want %q", got, c5)
	}
}

func TestNotifierConcurrent(t *testing.T) {
	ctx := context.Background()
	var out syncBuffer
	n := NewNotifier(&out, Options{})
	var wg sync.WaitGroup
	ids := make(chan string, 200)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				id, err := n.Post(ctx, contoso, fmt.Sprintf("k%d-%d", g, i), textMsg("line"))
				if err != nil {
					t.Error(err)
					return
				}
				ids <- id
				n.MessageWithButton(contoso, "a", "b")
			}
		}()
	}
	wg.Wait()
	close(ids)
	seen := map[string]bool{}
	for id := range ids {
		if seen[id] {
			t.Fatalf("id %s handed out twice", id)
		}
		seen[id] = true
	}
	if len(seen) != 200 || !seen["c200"] {
		t.Errorf("got %d ids", len(seen))
	}
	if c := strings.Count(out.String(), "#contoso [msg c"); c != 200 {
		t.Errorf("printed %d posts", c)
	}
}

func TestPromptRedraw(t *testing.T) {
	ctx := context.Background()
	var out syncBuffer
	n := NewNotifier(&out, Options{Interactive: true})
	n.showPrompt("[#soc] > ")
	if _, err := n.Post(ctx, contoso, "", textMsg("hello")); err != nil {
		t.Fatal(err)
	}
	want := "[#soc] > \r\x1b[K#contoso [msg c1]\nhello\n[#soc] > "
	if got := out.String(); got != want {
		t.Errorf("interactive: got %q want %q", got, want)
	}

	// Off a terminal the prompt is written with the line once it is read.
	var out2 syncBuffer
	n = NewNotifier(&out2, Options{})
	n.showPrompt("[#soc] > ")
	if _, err := n.Post(ctx, contoso, "", textMsg("hello")); err != nil {
		t.Fatal(err)
	}
	n.lineRead("/mssp status")
	want = "#contoso [msg c1]\nhello\n[#soc] > /mssp status\n"
	if got := out2.String(); got != want {
		t.Errorf("transcript: got %q want %q", got, want)
	}
}
