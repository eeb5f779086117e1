package discord

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/bwmarrin/discordgo"
)

// commandData decodes the data of a /mssp interaction as Discord sends it.
// path is "sub" or "group sub"; opts is the JSON array of value options.
func commandData(t *testing.T, path, opts string) discordgo.ApplicationCommandInteractionData {
	t.Helper()
	if opts == "" {
		opts = "[]"
	}
	parts := strings.Fields(path)
	inner := fmt.Sprintf(`{"type":1,"name":%q,"options":%s}`, parts[len(parts)-1], opts)
	if len(parts) == 2 {
		inner = fmt.Sprintf(`{"type":2,"name":%q,"options":[%s]}`, parts[0], inner)
	}
	raw := fmt.Sprintf(`{"id":"1","application_id":"app1","type":2,"token":"tok","channel_id":"500",
		"data":{"id":"c1","name":"mssp","type":1,"options":[%s]}}`, inner)
	var i discordgo.Interaction
	if err := json.Unmarshal([]byte(raw), &i); err != nil {
		t.Fatal(err)
	}
	return i.ApplicationCommandData()
}

func TestOptionsToText(t *testing.T) {
	const guid = "6f1c3e2a-0b7d-4c1e-9a55-1d2b3c4d5e6f"
	s := func(name, v string) string { return fmt.Sprintf(`{"name":%q,"type":3,"value":%q}`, name, v) }
	n := func(name string, v int) string { return fmt.Sprintf(`{"name":%q,"type":4,"value":%d}`, name, v) }
	list := func(o ...string) string { return "[" + strings.Join(o, ",") + "]" }
	cases := []struct {
		path, opts, want string
	}{
		{"help", "", "help"},
		{"alerts", "", "alerts"},
		{"alerts", list(s("status", "resolved"), s("min_severity", "high"), n("limit", 5)), "alerts resolved severity>=high limit 5"},
		{"alerts", list(n("limit", 100), s("tenant", guid), s("status", "all")), "alerts all tenant=" + guid + " limit 100"},
		{"show", list(s("alert", alertID)), "show " + alertID},
		{"show", list(s("alert", guid+"/"+alertID)), "show " + guid + "/" + alertID},
		{"ack", list(s("alert", alertID)), "ack " + alertID},
		{"ack", list(s("alert", alertID), s("comment", "on it, isolating host")), "ack " + alertID + " on it, isolating host"},
		{"resolve", list(s("alert", alertID), s("classification", "truepositive"), s("determination", "Malware"), s("comment", "cleaned by AV")),
			"resolve " + alertID + " truepositive determination=Malware cleaned by AV"},
		{"resolve", list(s("comment", "benign"), s("alert", alertID)), "resolve " + alertID + " benign"},
		{"resolve", list(s("alert", alertID), s("determination", "Line Of Business")), "resolve " + alertID + ` determination="Line Of Business"`},
		{"comment", list(s("alert", alertID), s("text", "customer confirmed the test")), "comment " + alertID + " customer confirmed the test"},
		{"reopen", list(s("alert", alertID)), "reopen " + alertID},
		{"rules list", "", "rules"},
		{"rules add", list(s("title", "foo bar")), `rules add title~"foo bar"`},
		{"rules add", list(s("min_severity", "medium"), s("category", "Malware"), s("source", "WindowsDefenderAv"), s("group", "Finance Laptops"), s("title", "lsass"), s("tenant", guid)),
			`rules add severity>=medium category=Malware source=WindowsDefenderAv group="Finance Laptops" title~"lsass" tenant=` + guid},
		{"rules add", list(s("title", `say "hi"`)), `rules add title~“say "hi"”`},
		{"rules add", list(s("category", "Malware limit 5")), `rules add category="Malware limit 5"`},
		{"rules remove", list(n("rule_id", 12)), "rules remove 12"},
		{"onboard", list(s("tenant_id", guid), s("name", "Contoso Ltd")), "onboard " + guid + " Contoso Ltd"},
		{"offboard", "", "offboard"},
		{"link", list(s("tenant_id", " "+guid+" ")), "link " + guid},
		{"unlink", "", "unlink"},
		{"tenants", "", "tenants"},
		{"status", "", "status"},
		{"audit", "", "audit"},
		{"audit", list(n("limit", 50)), "audit limit 50"},
	}
	for _, tc := range cases {
		got, err := commandText(commandData(t, tc.path, tc.opts))
		if err != nil {
			t.Errorf("%s %s: %v", tc.path, tc.opts, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%s %s:\n got %q\nwant %q", tc.path, tc.opts, got, tc.want)
		}
	}
}

func TestOptionsToTextErrors(t *testing.T) {
	if _, err := commandText(commandData(t, "nosuch", "")); err == nil {
		t.Error("unknown subcommand accepted")
	}
	if _, err := commandText(discordgo.ApplicationCommandInteractionData{Name: "other"}); err == nil {
		t.Error("other command accepted")
	}
	_, err := commandText(commandData(t, "rules add", `[{"name":"title","type":3,"value":"a \" b “c”"}]`))
	if err != errQuotes {
		t.Errorf("title with both quote kinds: %v", err)
	}
	// A single-token value with both quote kinds still stays one token.
	got, err := commandText(commandData(t, "rules add", `[{"name":"group","type":3,"value":"a \" b “c”"}]`))
	if err != nil || got != `rules add group="a  b “c”"` {
		t.Errorf("group = %q, %v", got, err)
	}
	if got, _ := commandText(discordgo.ApplicationCommandInteractionData{Name: "mssp"}); got != "help" {
		t.Errorf("bare /mssp = %q", got)
	}
}
