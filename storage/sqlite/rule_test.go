package sqlite

import (
	"context"
	"strings"
	"testing"

	"github.com/msspbot/msspbot/bot"
)

func TestRules(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	_, err := db.CreateRule(ctx, bot.Rule{Channel: "nope"})
	wantCode(t, err, bot.EINVALID)
	r1, err := db.CreateRule(ctx, bot.Rule{Channel: chanSOC, MinSeverity: bot.SeverityMedium, Category: "Malware", Source: "WindowsDefenderAv",
		Group: "Finance", Title: "lsass", TenantID: strings.ToUpper(tenantA), CreatedBy: "slack:U1", CreatedAt: t0})
	must(t, err)
	r2, err := db.CreateRule(ctx, bot.Rule{Channel: chanSOC})
	must(t, err)
	_, err = db.CreateRule(ctx, bot.Rule{Channel: chanA, MinSeverity: bot.SeverityHigh})
	must(t, err)
	if r1.ID == 0 || r2.ID <= r1.ID || r2.CreatedAt.IsZero() {
		t.Fatalf("created %+v %+v", r1, r2)
	}
	rules, err := db.FindRules(ctx, chanSOC)
	must(t, err)
	want := r1
	want.TenantID = tenantA
	if len(rules) != 2 || rules[0] != want || rules[1].ID != r2.ID {
		t.Fatalf("FindRules = %+v\nwant first %+v", rules, want)
	}
	// Removing only works in the rule's own channel.
	wantCode(t, db.DeleteRule(ctx, chanA, r1.ID), bot.ENOTFOUND)
	must(t, db.DeleteRule(ctx, chanSOC, r1.ID))
	wantCode(t, db.DeleteRule(ctx, chanSOC, r1.ID), bot.ENOTFOUND)
	rules, err = db.FindRules(ctx, chanSOC)
	must(t, err)
	if len(rules) != 1 || rules[0].ID != r2.ID {
		t.Fatalf("after delete = %+v", rules)
	}
	if none, err := db.FindRules(ctx, "slack:EMPTY"); err != nil || len(none) != 0 {
		t.Fatalf("FindRules(empty) = %v, %v", none, err)
	}
}

func TestChannelRulesOrder(t *testing.T) {
	ctx := context.Background()
	db := setup(t)
	must(t, db.Link(ctx, "slack:C0CONTOSO2", tenantA))
	_, err := db.CreateRule(ctx, bot.Rule{Channel: chanSOC, Category: "Malware"})
	must(t, err)
	_, err = db.CreateRule(ctx, bot.Rule{Channel: chanA, Title: "x"})
	must(t, err)
	// A SOC channel listed twice, or also linked, appears once.
	got, err := channelRules(ctx, db.r, tenantA, []bot.ChannelRef{chanSOC, chanA, chanSOC})
	must(t, err)
	if len(got) != 3 || got[0].Channel != chanA || got[0].SOC || len(got[0].Rules) != 1 ||
		got[1].Channel != "slack:C0CONTOSO2" || len(got[1].Rules) != 0 ||
		got[2].Channel != chanSOC || !got[2].SOC || len(got[2].Rules) != 1 {
		t.Fatalf("channelRules = %+v", got)
	}
}
