package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

// next returns NextOutbox at t0 as "channel kind root text" lines.
func next(tb testing.TB, db *DB, now time.Time) ([]bot.OutboxItem, string) {
	tb.Helper()
	items, err := db.NextOutbox(context.Background(), now, 100)
	if err != nil {
		tb.Fatalf("NextOutbox: %v", err)
	}
	var b strings.Builder
	for _, it := range items {
		b.WriteString(string(it.Delivery.Channel) + " " + string(it.Entry.Kind) + " " + it.RootMessageID + " " + it.Entry.Text + "\n")
	}
	return items, b.String()
}

// send marks the item in flight and sent with message id msg.
func send(tb testing.TB, db *DB, it bot.OutboxItem, msg string) {
	tb.Helper()
	ctx := context.Background()
	must(tb, db.MarkInFlight(ctx, it.Entry.ID))
	must(tb, db.MarkSent(ctx, it.Entry.ID, msg, it.LastEditID))
}

func find(items []bot.OutboxItem, ch bot.ChannelRef, kind bot.OutboxKind) bot.OutboxItem {
	for _, it := range items {
		if it.Delivery.Channel == ch && it.Entry.Kind == kind {
			return it
		}
	}
	return bot.OutboxItem{}
}

func TestNextOutboxWaitsForTheCard(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	ingest(t, db, tenantA, false, testAlert(t, tenantA, "a1", bot.SeverityHigh))
	// A line and an edit are queued before the cards are posted.
	must(t, db.RecordAction(ctx, bot.Action{TenantID: tenantA, AlertID: "a1", ThreadText: "Comment by analyst", Now: t0}))

	items, got := next(t, db, t0)
	if got != "slack:C0CONTOSO post  \nslack:C0SOC post  \n" {
		t.Fatalf("first round:\n%s", got)
	}
	if items[0].Entry.ID >= items[1].Entry.ID || items[0].Delivery.AlertID != "a1" || items[0].Delivery.TenantID != tenantA {
		t.Fatalf("items = %+v", items)
	}
	// Not due yet: nothing.
	if _, got := next(t, db, t0.Add(-time.Second)); got != "" {
		t.Fatalf("entries due later were returned:\n%s", got)
	}

	postA := items[0]
	must(t, db.MarkInFlight(ctx, postA.Entry.ID))
	if _, got := next(t, db, t0); got != "slack:C0SOC post  \n" {
		t.Fatalf("with A's post in flight:\n%s", got)
	}
	must(t, db.MarkSent(ctx, postA.Entry.ID, "m1", 0))
	d, err := db.FindDelivery(ctx, postA.Delivery.ID)
	must(t, err)
	if d.MessageID != "m1" || d.State != bot.DeliveryPosted {
		t.Fatalf("delivery after post = %+v", d)
	}

	items, got = next(t, db, t0)
	// In entry order: SOC's post was queued before A's line.
	if got != "slack:C0SOC post  \nslack:C0CONTOSO thread m1 Comment by analyst\n" {
		t.Fatalf("after A's post:\n%s", got)
	}
	// While the line is on its way, the edit behind it waits.
	must(t, db.MarkInFlight(ctx, items[1].Entry.ID))
	if _, got := next(t, db, t0); got != "slack:C0SOC post  \n" {
		t.Fatalf("with A's line in flight:\n%s", got)
	}
	must(t, db.MarkSent(ctx, items[1].Entry.ID, "r1", 0))
	items, got = next(t, db, t0)
	if got != "slack:C0SOC post  \nslack:C0CONTOSO edit m1 \n" {
		t.Fatalf("after A's line:\n%s", got)
	}
	if edit := items[1]; edit.LastEditID != edit.Entry.ID {
		t.Fatalf("LastEditID = %d, want %d", edit.LastEditID, edit.Entry.ID)
	}
	send(t, db, items[1], "")
	if _, got = next(t, db, t0); got != "slack:C0SOC post  \n" {
		t.Fatalf("after A's edit:\n%s", got)
	}
	if items, _ := db.NextOutbox(ctx, t0, 0); len(items) != 0 {
		t.Fatalf("limit 0 returned %d items", len(items))
	}
}

func TestEditsCoalesce(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	db.now = func() time.Time { return t0 }
	p, err := db.CreateDelivery(ctx, bot.Delivery{Kind: bot.DeliveryPrompt, Channel: chanA, TenantID: tenantA, RefID: "1",
		Payload: []byte(`{"v":0}`), CreatedAt: t0})
	must(t, err)
	items, _ := next(t, db, t0)
	send(t, db, items[0], "p1")
	for i := 1; i <= 3; i++ {
		must(t, db.EditDelivery(ctx, p.ID, []byte(`{"v":`+string(rune('0'+i))+`}`), ""))
	}
	items, got := next(t, db, t0.Add(time.Hour))
	if got != "slack:C0CONTOSO edit p1 \n" {
		t.Fatalf("edits:\n%s", got)
	}
	edit := items[0]
	if edit.LastEditID != edit.Entry.ID+2 || string(edit.Delivery.Payload) != `{"v":3}` {
		t.Fatalf("first edit %d covers up to %d, payload %s", edit.Entry.ID, edit.LastEditID, edit.Delivery.Payload)
	}
	must(t, db.MarkInFlight(ctx, edit.Entry.ID))
	// An edit queued while the render is on its way is not covered by it.
	must(t, db.EditDelivery(ctx, p.ID, []byte(`{"v":4}`), "granted"))
	must(t, db.MarkSent(ctx, edit.Entry.ID, "", edit.LastEditID))
	items, got = next(t, db, t0.Add(time.Hour))
	if got != "slack:C0CONTOSO edit p1 \n" || items[0].Entry.ID <= edit.LastEditID {
		t.Fatalf("after the coalesced edit:\n%s", got)
	}
	send(t, db, items[0], "")
	if _, got = next(t, db, t0.Add(time.Hour)); got != "slack:C0CONTOSO thread p1 granted\n" {
		t.Fatalf("after the last edit:\n%s", got)
	}
	counts, err := db.OutboxCounts(ctx)
	must(t, err)
	if len(counts) != 1 || counts[0] != (bot.OutboxCount{Platform: "slack", State: bot.OutboxPending, N: 1}) {
		t.Fatalf("counts = %+v (sent entries must not be counted)", counts)
	}
}

func TestDigestFlow(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	_, err := db.Ingest(ctx, bot.IngestBatch{TenantID: tenantA, PassID: 5, Hold: true, SOC: []bot.ChannelRef{chanSOC},
		Now: t0, Plan: bot.PlanIngest, Alerts: []bot.Alert{
			testAlert(t, tenantA, "s1", bot.SeverityHigh), testAlert(t, tenantA, "s2", bot.SeverityHigh),
			testAlert(t, tenantA, "s3", bot.SeverityHigh)}})
	must(t, err)
	held, err := db.HeldPosts(ctx, 5)
	must(t, err)
	if len(held[chanA]) != 3 || len(held[chanSOC]) != 3 {
		t.Fatalf("held = %v", held)
	}
	lines := map[int64]string{}
	for _, h := range held[chanA] {
		lines[h.DeliveryID] = "line " + h.AlertID
	}

	// Refused digests change nothing.
	_, err = db.CreateDigest(ctx, bot.Delivery{Channel: chanA}, map[int64]string{held[chanSOC][0].DeliveryID: "x"})
	wantCode(t, err, bot.EINVALID)
	_, err = db.CreateDigest(ctx, bot.Delivery{Channel: chanA}, map[int64]string{999999: "x"})
	wantCode(t, err, bot.ENOTFOUND)

	dg, err := db.CreateDigest(ctx, bot.Delivery{Channel: chanA, TenantID: tenantA, Payload: []byte(`{"kind":"digest"}`), CreatedAt: t0}, lines)
	must(t, err)
	if dg.ID == 0 || dg.Kind != bot.DeliveryDigest || dg.State != bot.DeliveryPending {
		t.Fatalf("digest = %+v", dg)
	}
	must(t, db.ReleaseHeld(ctx, 5))
	if got := kinds(outboxOf(t, db, tenantA, "s1")); got != "slack:C0CONTOSO post cancelled\nslack:C0SOC post pending\nslack:C0CONTOSO thread pending\n" {
		t.Fatalf("member entries:\n%s", got)
	}
	m, err := db.FindDelivery(ctx, held[chanA][0].DeliveryID)
	must(t, err)
	if m.DigestID != dg.ID {
		t.Fatalf("member digest id = %d, want %d", m.DigestID, dg.ID)
	}
	// A member already in a digest cannot join another; nothing changes.
	_, err = db.CreateDigest(ctx, bot.Delivery{Channel: chanA}, map[int64]string{m.ID: "again"})
	wantCode(t, err, bot.EINVALID)

	// The digest's card first; the members' lines wait for it.
	items, got := next(t, db, t0)
	if got != "slack:C0SOC post  \nslack:C0SOC post  \nslack:C0SOC post  \nslack:C0CONTOSO post  \n" {
		t.Fatalf("before the digest is posted:\n%s", got)
	}
	digestPost := find(items, chanA, bot.OutboxPost)
	if digestPost.Delivery.ID != dg.ID || string(digestPost.Delivery.Payload) != `{"kind":"digest"}` {
		t.Fatalf("digest post = %+v", digestPost)
	}
	send(t, db, digestPost, "dg1")
	_, got = next(t, db, t0)
	want := "slack:C0SOC post  \nslack:C0SOC post  \nslack:C0SOC post  \n" +
		"slack:C0CONTOSO thread dg1 line s1\nslack:C0CONTOSO thread dg1 line s2\nslack:C0CONTOSO thread dg1 line s3\n"
	if got != want {
		t.Fatalf("after the digest is posted:\n%s\nwant\n%s", got, want)
	}
	m, err = db.FindDelivery(ctx, m.ID)
	must(t, err)
	if m.MessageID != "dg1" || m.State != bot.DeliveryPosted {
		t.Fatalf("member after digest post = %+v", m)
	}
	byMsg, err := db.FindDeliveryByMessage(ctx, chanA, "dg1")
	must(t, err)
	if byMsg.ID != dg.ID {
		t.Fatalf("FindDeliveryByMessage = %d, want the digest %d", byMsg.ID, dg.ID)
	}

	// A later change threads under the digest: a line, no edit.
	changed := testAlert(t, tenantA, "s1", bot.SeverityHigh)
	changed.Status, changed.LastUpdatedAt = bot.StatusResolved, changed.LastUpdatedAt.Add(time.Minute)
	ingest(t, db, tenantA, false, changed)
	es := outboxOf(t, db, tenantA, "s1")
	if got := kinds(es[3:]); got != "slack:C0CONTOSO thread pending\nslack:C0SOC thread pending\nslack:C0SOC edit pending\n" {
		t.Fatalf("change of a member:\n%s", got)
	}
	// So does an analyst's action.
	must(t, db.RecordAction(ctx, bot.Action{TenantID: tenantA, AlertID: "s2", ThreadText: "ack", Now: t0}))
	if got := kinds(outboxOf(t, db, tenantA, "s2")[3:]); got != "slack:C0CONTOSO thread pending\nslack:C0SOC thread pending\nslack:C0SOC edit pending\n" {
		t.Fatalf("action on a member:\n%s", got)
	}
}

func TestCreateDigestRefusesPostedMember(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	ingest(t, db, tenantA, false, testAlert(t, tenantA, "p1", bot.SeverityMedium))
	items, _ := next(t, db, t0)
	send(t, db, items[0], "m1")
	_, err := db.CreateDigest(ctx, bot.Delivery{Channel: chanA}, map[int64]string{items[0].Delivery.ID: "x"})
	wantCode(t, err, bot.ECONFLICT)
	var n int
	must(t, db.r.QueryRow(`SELECT count(*) FROM deliveries WHERE kind = 'digest'`).Scan(&n))
	if n != 0 {
		t.Fatalf("a refused digest was stored")
	}
}

func TestFailedDigestFailsMembers(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	_, err := db.Ingest(ctx, bot.IngestBatch{TenantID: tenantA, PassID: 2, Hold: true, Now: t0, Plan: bot.PlanIngest,
		Alerts: []bot.Alert{testAlert(t, tenantA, "f1", bot.SeverityHigh)}})
	must(t, err)
	held, err := db.HeldPosts(ctx, 2)
	must(t, err)
	dg, err := db.CreateDigest(ctx, bot.Delivery{Channel: chanA, CreatedAt: t0}, map[int64]string{held[chanA][0].DeliveryID: "l"})
	must(t, err)
	items, _ := next(t, db, t0)
	must(t, db.MarkFailed(ctx, items[0].Entry.ID, "channel_not_found"))
	m, err := db.FindDelivery(ctx, held[chanA][0].DeliveryID)
	must(t, err)
	d, err := db.FindDelivery(ctx, dg.ID)
	must(t, err)
	if m.State != bot.DeliveryFailed || d.State != bot.DeliveryFailed || d.Error != "channel_not_found" {
		t.Fatalf("digest %+v member %+v", d, m)
	}
	if got := kinds(outboxOf(t, db, tenantA, "f1")); got != "slack:C0CONTOSO post cancelled\nslack:C0CONTOSO thread cancelled\n" {
		t.Fatalf("member entries:\n%s", got)
	}
}

func TestInFlightSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "msspbot.db")
	db, err := Open(ctx, path)
	must(t, err)
	mustTenant(t, db, tenantA, "Contoso", bot.TenantActive)
	must(t, db.Link(ctx, chanA, tenantA))
	ingest(t, db, tenantA, false, testAlert(t, tenantA, "c1", bot.SeverityMedium))
	items, _ := next(t, db, t0)
	must(t, db.MarkInFlight(ctx, items[0].Entry.ID))
	must(t, db.Close()) // the crash, as far as the file is concerned

	db, err = Open(ctx, path)
	must(t, err)
	defer db.Close()
	left, err := db.InFlight(ctx)
	must(t, err)
	if len(left) != 1 || left[0].Entry.ID != items[0].Entry.ID || left[0].Entry.State != bot.OutboxInFlight ||
		left[0].Entry.Attempts != 0 || left[0].Delivery.AlertID != "c1" || left[0].Delivery.Key() == "" {
		t.Fatalf("InFlight = %+v", left)
	}
	if _, got := next(t, db, t0); got != "" {
		t.Fatalf("an in-flight entry's delivery was offered again:\n%s", got)
	}
	// Nobody else can take it; recovery records the post it found.
	wantCode(t, db.MarkInFlight(ctx, left[0].Entry.ID), bot.ECONFLICT)
	must(t, db.MarkSent(ctx, left[0].Entry.ID, "found-1", 0))
	left, err = db.InFlight(ctx)
	must(t, err)
	if len(left) != 0 {
		t.Fatalf("InFlight after recovery = %+v", left)
	}
}

func TestMarkFailedCancelsLaterEntries(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	ingest(t, db, tenantA, false, testAlert(t, tenantA, "x1", bot.SeverityHigh))
	must(t, db.RecordAction(ctx, bot.Action{TenantID: tenantA, AlertID: "x1", ThreadText: "ack", Now: t0}))
	items, _ := next(t, db, t0)
	postA := find(items, chanA, bot.OutboxPost)
	must(t, db.MarkInFlight(ctx, postA.Entry.ID))
	must(t, db.MarkFailed(ctx, postA.Entry.ID, "channel_not_found"))
	d, err := db.FindDelivery(ctx, postA.Delivery.ID)
	must(t, err)
	if d.State != bot.DeliveryFailed || d.Error != "channel_not_found" {
		t.Fatalf("delivery = %+v", d)
	}
	var attempts int
	must(t, db.r.QueryRow(`SELECT attempts FROM outbox WHERE id = ?`, postA.Entry.ID).Scan(&attempts))
	if attempts != 1 {
		t.Fatalf("failed post attempts = %d, want 1 (the failure counts)", attempts)
	}
	want := "slack:C0CONTOSO post failed\nslack:C0SOC post pending\nslack:C0CONTOSO thread cancelled\n" +
		"slack:C0SOC thread pending\nslack:C0CONTOSO edit cancelled\nslack:C0SOC edit pending\n"
	if got := kinds(outboxOf(t, db, tenantA, "x1")); got != want {
		t.Fatalf("entries:\n%s\nwant\n%s", got, want)
	}
	// A failed delivery gets no new lines: it has no message to reply under.
	must(t, db.RecordAction(ctx, bot.Action{TenantID: tenantA, AlertID: "x1", ThreadText: "again", Now: t0}))
	for _, e := range outboxOf(t, db, tenantA, "x1")[6:] {
		if e.Channel == chanA {
			t.Fatalf("entry queued for a failed delivery: %+v", e)
		}
	}

	// A failed line fails alone; the card's next entry goes on.
	items, _ = next(t, db, t0)
	postSOC := find(items, chanSOC, bot.OutboxPost)
	send(t, db, postSOC, "s1")
	items, _ = next(t, db, t0)
	line := find(items, chanSOC, bot.OutboxThread)
	must(t, db.MarkFailed(ctx, line.Entry.ID, "msg_too_long"))
	if _, got := next(t, db, t0); got != "slack:C0SOC edit s1 \n" {
		t.Fatalf("after a failed line:\n%s", got)
	}
}

func TestMarkRetryAndErrors(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	ingest(t, db, tenantA, false, testAlert(t, tenantA, "r1", bot.SeverityMedium))
	items, _ := next(t, db, t0)
	id := items[0].Entry.ID
	// Taking an entry is not an attempt; a rate limit is not one either.
	must(t, db.MarkInFlight(ctx, id))
	must(t, db.MarkRetry(ctx, id, t0.Add(time.Minute), "rate limited", false))
	if _, got := next(t, db, t0); got != "" {
		t.Fatalf("a retry was offered before it was due:\n%s", got)
	}
	items, _ = next(t, db, t0.Add(time.Minute))
	if len(items) != 1 || items[0].Entry.Attempts != 0 || items[0].Entry.Error != "rate limited" || !items[0].Entry.NextAttempt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("rate-limited item = %+v", items)
	}
	must(t, db.MarkInFlight(ctx, id))
	must(t, db.MarkRetry(ctx, id, t0.Add(time.Minute), "500", true))
	items, _ = next(t, db, t0.Add(time.Minute))
	if len(items) != 1 || items[0].Entry.Attempts != 1 || items[0].Entry.Error != "500" {
		t.Fatalf("retried item = %+v", items)
	}

	for name, err := range map[string]error{
		"MarkInFlight": db.MarkInFlight(ctx, 424242),
		"MarkSent":     db.MarkSent(ctx, 424242, "m", 0),
		"MarkRetry":    db.MarkRetry(ctx, 424242, t0, "x", true),
		"MarkFailed":   db.MarkFailed(ctx, 424242, "x"),
	} {
		if bot.ErrorCode(err) != bot.ENOTFOUND {
			t.Errorf("%s(missing) = %v, want ENOTFOUND", name, err)
		}
	}
	wantCode(t, db.MarkSent(ctx, id, "", 0), bot.EINVALID)
	// Recovery after a crash: an in-flight entry goes back to pending.
	must(t, db.MarkInFlight(ctx, id))
	must(t, db.MarkRetry(ctx, id, t0, "recovered after restart", false))
	items, _ = next(t, db, t0.Add(time.Minute))
	send(t, db, items[0], "m1")
	wantCode(t, db.MarkInFlight(ctx, id), bot.ECONFLICT)
	// A retry cannot bring a finished entry back.
	must(t, db.MarkRetry(ctx, id, t0, "late", true))
	if got := kinds(outboxOf(t, db, tenantA, "r1")); got != "slack:C0CONTOSO post sent\n" {
		t.Fatalf("entries:\n%s", got)
	}
	var attempts int
	must(t, db.r.QueryRow(`SELECT attempts FROM outbox WHERE id = ?`, id).Scan(&attempts))
	if attempts != 1 {
		t.Fatalf("attempts = %d after one counted failure, want 1", attempts)
	}
}

func TestDeliveries(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	_, err := db.CreateDelivery(ctx, bot.Delivery{Kind: bot.DeliveryNotice, Channel: "nocolon"})
	wantCode(t, err, bot.EINVALID)
	_, err = db.CreateDelivery(ctx, bot.Delivery{Channel: chanSOC})
	wantCode(t, err, bot.EINVALID)

	n, err := db.CreateDelivery(ctx, bot.Delivery{Kind: bot.DeliveryNotice, Channel: chanSOC, TenantID: strings.ToUpper(tenantA),
		Payload: []byte(`{"kind":"notice","text":"Contoso is failing"}`), MessageID: "ignored", State: bot.DeliveryPosted, CreatedAt: t0})
	must(t, err)
	got, err := db.FindDelivery(ctx, n.ID)
	must(t, err)
	if got.Kind != bot.DeliveryNotice || got.State != bot.DeliveryPending || got.MessageID != "" || got.TenantID != tenantA ||
		string(got.Payload) != string(n.Payload) || !got.CreatedAt.Equal(t0) || got.Key() != bot.DeliveryKey(n.ID) {
		t.Fatalf("FindDelivery = %+v", got)
	}
	_, err = db.FindDelivery(ctx, n.ID+100)
	wantCode(t, err, bot.ENOTFOUND)
	_, err = db.FindDeliveryByMessage(ctx, chanSOC, "")
	wantCode(t, err, bot.ENOTFOUND)

	ingest(t, db, tenantA, false, testAlert(t, tenantA, "d1", bot.SeverityHigh))
	ds, err := db.DeliveriesOfAlert(ctx, strings.ToUpper(tenantA), "d1")
	must(t, err)
	if len(ds) != 2 || ds[0].Channel != chanA || ds[1].Channel != chanSOC || ds[0].AlertID != "d1" || ds[0].Kind != bot.DeliveryAlert {
		t.Fatalf("DeliveriesOfAlert = %+v", ds)
	}
	if other, err := db.DeliveriesOfAlert(ctx, tenantB, "d1"); err != nil || len(other) != 0 {
		t.Fatalf("tenant B sees A's deliveries: %v %v", other, err)
	}
	if other, err := db.DeliveriesOfAlert(ctx, tenantA, "D1"); err != nil || len(other) != 0 {
		t.Fatalf("alert ids are case-insensitive: %v %v", other, err)
	}
	// One card per alert and channel.
	_, err = db.CreateDelivery(ctx, bot.Delivery{Kind: bot.DeliveryAlert, Channel: chanA, TenantID: tenantA, AlertID: "d1"})
	wantCode(t, err, bot.ECONFLICT)

	items, _ := next(t, db, t0)
	post := find(items, chanA, bot.OutboxPost)
	_, err = db.FindDeliveryByMessage(ctx, chanA, "m-d1")
	wantCode(t, err, bot.ENOTFOUND)
	send(t, db, post, "m-d1")
	byMsg, err := db.FindDeliveryByMessage(ctx, chanA, "m-d1")
	must(t, err)
	if byMsg.ID != post.Delivery.ID {
		t.Fatalf("FindDeliveryByMessage = %+v", byMsg)
	}
	// The same message id in another channel is another message.
	_, err = db.FindDeliveryByMessage(ctx, chanSOC, "m-d1")
	wantCode(t, err, bot.ENOTFOUND)

	wantCode(t, db.EditDelivery(ctx, 999999, nil, ""), bot.ENOTFOUND)
}

func TestChannelFailures(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	first, err := db.RecordChannelFailure(ctx, chanA, "channel_not_found", t0)
	must(t, err)
	if !first {
		t.Fatal("first failure not reported as first")
	}
	first, err = db.RecordChannelFailure(ctx, chanA, "not_in_channel", t0.Add(time.Minute))
	must(t, err)
	if first {
		t.Fatal("second failure reported as first")
	}
	fs, err := db.ChannelFailures(ctx)
	must(t, err)
	if len(fs) != 1 || fs[0].Channel != chanA || fs[0].Reason != "not_in_channel" || !fs[0].Since.Equal(t0) {
		t.Fatalf("ChannelFailures = %+v", fs)
	}
	must(t, db.ClearChannelFailure(ctx, chanA))
	must(t, db.ClearChannelFailure(ctx, chanA))
	if fs, _ := db.ChannelFailures(ctx); len(fs) != 0 {
		t.Fatalf("after clear = %+v", fs)
	}
	first, err = db.RecordChannelFailure(ctx, chanA, "channel_not_found", t0.Add(time.Hour))
	must(t, err)
	if !first {
		t.Fatal("a failure after the channel worked again is first again")
	}
}

// A delivery key must never name two cards: ids are not reused after a purge.
func TestDeliveryIDsNotReusedAfterPurge(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	old := testAlert(t, tenantA, "old", bot.SeverityMedium)
	old.Status, old.LastUpdatedAt = bot.StatusResolved, t0.Add(-400*24*time.Hour)
	ingest(t, db, tenantA, false, old)
	ds, err := db.DeliveriesOfAlert(ctx, tenantA, "old")
	must(t, err)
	if _, err := db.Purge(ctx, t0, t0.Add(-1000*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	ingest(t, db, tenantA, false, testAlert(t, tenantA, "new", bot.SeverityMedium))
	n, err := db.DeliveriesOfAlert(ctx, tenantA, "new")
	must(t, err)
	d, err := db.CreateDelivery(ctx, bot.Delivery{Kind: bot.DeliveryNotice, Channel: chanA})
	must(t, err)
	if n[0].ID <= ds[0].ID || d.ID <= n[0].ID {
		t.Fatalf("ids: purged %d, then %d and %d", ds[0].ID, n[0].ID, d.ID)
	}
}

// One channel's backlog must not fill the whole batch: a rate-limited or
// storming channel would otherwise starve every other channel.
func TestNextOutboxIsFairAcrossChannels(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	for range 250 {
		_, err := db.CreateDelivery(ctx, bot.Delivery{Kind: bot.DeliveryNotice, Channel: chanA, CreatedAt: t0})
		must(t, err)
	}
	b, err := db.CreateDelivery(ctx, bot.Delivery{Kind: bot.DeliveryNotice, Channel: chanB, CreatedAt: t0})
	must(t, err)
	items, err := db.NextOutbox(ctx, t0, 200)
	must(t, err)
	perChannel := map[bot.ChannelRef]int{}
	for i, it := range items {
		perChannel[it.Delivery.Channel]++
		if i > 0 && it.Entry.ID <= items[i-1].Entry.ID {
			t.Fatalf("items out of entry order at %d", i)
		}
	}
	if perChannel[chanB] != 1 || items[len(items)-1].Delivery.ID != b.ID {
		t.Fatalf("channel B's entry was not returned (per channel: %v)", perChannel)
	}
	if perChannel[chanA] != outboxPerChannel {
		t.Fatalf("channel A got %d items, want %d", perChannel[chanA], outboxPerChannel)
	}
	// The cap still leaves the oldest first, and a small limit still wins.
	if items[0].Delivery.Channel != chanA || items[0].Entry.ID != 1 {
		t.Fatalf("first item = %+v", items[0].Entry)
	}
	if items, _ := db.NextOutbox(ctx, t0, 5); len(items) != 5 || items[4].Delivery.Channel != chanA {
		t.Fatalf("limit 5 = %d items", len(items))
	}
}

// A card unlinked (or offboarded) while its post is in flight stays
// cancelled once the post lands: later lines and edits must not reach the
// channel.
func TestMarkSentKeepsCancelledDelivery(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	ingest(t, db, tenantA, false, testAlert(t, tenantA, "if1", bot.SeverityHigh))
	items, _ := next(t, db, t0)
	post := find(items, chanA, bot.OutboxPost)
	must(t, db.MarkInFlight(ctx, post.Entry.ID))
	must(t, db.Unlink(ctx, chanA))
	must(t, db.MarkSent(ctx, post.Entry.ID, "m-if1", 0))
	d, err := db.FindDelivery(ctx, post.Delivery.ID)
	must(t, err)
	if d.State != bot.DeliveryCancelled || d.MessageID != "m-if1" {
		t.Fatalf("delivery after the late post = %+v, want cancelled with its message id", d)
	}
	must(t, db.RecordAction(ctx, bot.Action{TenantID: tenantA, AlertID: "if1", ThreadText: "ack", Now: t0}))
	changed := testAlert(t, tenantA, "if1", bot.SeverityHigh)
	changed.Status, changed.LastUpdatedAt = bot.StatusResolved, changed.LastUpdatedAt.Add(time.Minute)
	ingest(t, db, tenantA, false, changed)
	for _, e := range outboxOf(t, db, tenantA, "if1") {
		if e.Channel == chanA && e.Kind != bot.OutboxPost {
			t.Fatalf("unlinked channel got a %s entry: %+v", e.Kind, e)
		}
	}
}

// A digest member has no card of its own: an edit queued before the
// digest (an ack during the pass) would overwrite the digest's message.
func TestCreateDigestCancelsMemberEdits(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	_, err := db.Ingest(ctx, bot.IngestBatch{TenantID: tenantA, PassID: 4, Hold: true, SOC: []bot.ChannelRef{chanSOC},
		Now: t0, Plan: bot.PlanIngest, Alerts: []bot.Alert{
			testAlert(t, tenantA, "e1", bot.SeverityHigh), testAlert(t, tenantA, "e2", bot.SeverityHigh)}})
	must(t, err)
	st := bot.StatusInProgress
	must(t, db.RecordAction(ctx, bot.Action{TenantID: tenantA, AlertID: "e1", Update: bot.AlertUpdate{Status: &st},
		ThreadText: "ack", Now: t0}))
	held, err := db.HeldPosts(ctx, 4)
	must(t, err)
	lines := map[int64]string{}
	for _, h := range held[chanA] {
		lines[h.DeliveryID] = "line " + h.AlertID
	}
	_, err = db.CreateDigest(ctx, bot.Delivery{Channel: chanA, TenantID: tenantA, CreatedAt: t0}, lines)
	must(t, err)
	want := "slack:C0CONTOSO post cancelled\nslack:C0SOC post held\n" +
		"slack:C0CONTOSO thread pending\nslack:C0SOC thread pending\n" +
		"slack:C0CONTOSO edit cancelled\nslack:C0SOC edit pending\n" +
		"slack:C0CONTOSO thread pending\n"
	if got := kinds(outboxOf(t, db, tenantA, "e1")); got != want {
		t.Fatalf("e1 entries:\n%s\nwant\n%s", got, want)
	}
}

// Members cancelled between HeldPosts and CreateDigest (an offboarding, an
// unlink) are left out instead of failing the digest, which would leave
// the rest of the pass held; with no member left, nothing is stored.
func TestCreateDigestSkipsGoneMembers(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	for _, tenant := range []string{tenantA, tenantB} {
		_, err := db.Ingest(ctx, bot.IngestBatch{TenantID: tenant, PassID: 6, Hold: true, SOC: []bot.ChannelRef{chanSOC},
			Now: t0, Plan: bot.PlanIngest, Alerts: []bot.Alert{
				testAlert(t, tenant, "g1", bot.SeverityHigh), testAlert(t, tenant, "g2", bot.SeverityHigh)}})
		must(t, err)
	}
	held, err := db.HeldPosts(ctx, 6)
	must(t, err)
	if len(held[chanSOC]) != 4 {
		t.Fatalf("held = %+v", held)
	}
	lines := map[int64]string{}
	for _, h := range held[chanSOC] {
		lines[h.DeliveryID] = "line " + h.AlertID
	}
	must(t, db.RevokeTenant(ctx, tenantB))
	dg, err := db.CreateDigest(ctx, bot.Delivery{Channel: chanSOC, CreatedAt: t0}, lines)
	must(t, err)
	for _, h := range held[chanSOC] {
		m, err := db.FindDelivery(ctx, h.DeliveryID)
		must(t, err)
		if wantIn := h.TenantID == tenantA; (m.DigestID == dg.ID) != wantIn {
			t.Fatalf("member %s/%s digest id = %d (digest %d)", h.TenantID, h.AlertID, m.DigestID, dg.ID)
		}
	}
	if got := kinds(outboxOf(t, db, tenantB, "g1")); got != "slack:C0FABRIKAM post cancelled\nslack:C0SOC post cancelled\n" {
		t.Fatalf("a revoked tenant's alert got a digest line:\n%s", got)
	}
	must(t, db.ReleaseHeld(ctx, 6))
	items, _ := next(t, db, t0)
	var soc []int64
	for _, it := range items {
		if it.Delivery.Channel == chanSOC {
			soc = append(soc, it.Delivery.ID)
		}
	}
	if len(soc) != 1 || soc[0] != dg.ID {
		t.Fatalf("SOC deliveries due after the pass: %v, want only the digest %d", soc, dg.ID)
	}

	// Nothing left to digest: ECONFLICT, and no digest is stored.
	_, err = db.Ingest(ctx, bot.IngestBatch{TenantID: tenantA, PassID: 7, Hold: true, Now: t0, Plan: bot.PlanIngest,
		Alerts: []bot.Alert{testAlert(t, tenantA, "g3", bot.SeverityHigh)}})
	must(t, err)
	held, err = db.HeldPosts(ctx, 7)
	must(t, err)
	must(t, db.Unlink(ctx, chanA))
	dg2, err := db.CreateDigest(ctx, bot.Delivery{Channel: chanA, CreatedAt: t0}, map[int64]string{held[chanA][0].DeliveryID: "l"})
	wantCode(t, err, bot.ECONFLICT)
	var n int
	must(t, db.r.QueryRow(`SELECT count(*) FROM deliveries WHERE kind = 'digest'`).Scan(&n))
	if n != 1 || dg2.ID != 0 {
		t.Fatalf("%d digests stored (want 1), returned id %d", n, dg2.ID)
	}
}

// Releasing a pass channel by channel leaves the other channels' posts held.
func TestReleaseHeldByChannel(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	for _, tenant := range []string{tenantA, tenantB} {
		_, err := db.Ingest(ctx, bot.IngestBatch{TenantID: tenant, PassID: 9, Hold: true, SOC: []bot.ChannelRef{chanSOC},
			Now: t0, Plan: bot.PlanIngest, Alerts: []bot.Alert{testAlert(t, tenant, "r1", bot.SeverityHigh)}})
		must(t, err)
	}
	must(t, db.ReleaseHeld(ctx, 9, chanA, chanB))
	want := "slack:C0CONTOSO post pending\nslack:C0SOC post held\n"
	if got := kinds(outboxOf(t, db, tenantA, "r1")); got != want {
		t.Fatalf("after releasing A and B:\n%s\nwant\n%s", got, want)
	}
	must(t, db.ReleaseHeld(ctx, 8, chanSOC)) // another pass: nothing
	if got := kinds(outboxOf(t, db, tenantB, "r1")); got != "slack:C0FABRIKAM post pending\nslack:C0SOC post held\n" {
		t.Fatalf("another pass's release touched pass 9:\n%s", got)
	}
	must(t, db.ReleaseHeld(ctx, 0, chanSOC))
	if got := kinds(outboxOf(t, db, tenantB, "r1")); got != "slack:C0FABRIKAM post pending\nslack:C0SOC post pending\n" {
		t.Fatalf("after releasing SOC for all passes:\n%s", got)
	}
}
