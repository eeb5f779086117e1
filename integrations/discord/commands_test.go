package discord

import (
	"context"
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"
)

// wireOption is an application command option as Discord receives it.
type wireOption struct {
	Type         int          `json:"type"`
	Name         string       `json:"name"`
	Description  string       `json:"description"`
	Required     bool         `json:"required"`
	Autocomplete bool         `json:"autocomplete"`
	Options      []wireOption `json:"options"`
	Choices      []struct {
		Name  string `json:"name"`
		Value any    `json:"value"`
	} `json:"choices"`
	MinValue *float64 `json:"min_value"`
	MaxValue *float64 `json:"max_value"`
}

type wireCommand struct {
	Type        int          `json:"type"`
	Name        string       `json:"name"`
	Description string       `json:"description"`
	Options     []wireOption `json:"options"`
	Contexts    []int        `json:"contexts"`
}

var nameRE = regexp.MustCompile(`^[-_\p{L}\p{N}]{1,32}$`)

// checkOptions applies Discord's validation rules to one level of options.
func checkOptions(t *testing.T, path string, opts []wireOption) {
	t.Helper()
	if len(opts) > 25 {
		t.Errorf("%s: %d options > 25", path, len(opts))
	}
	seen := map[string]bool{}
	optional := false
	for _, o := range opts {
		p := path + " " + o.Name
		if !nameRE.MatchString(o.Name) || o.Name != strings.ToLower(o.Name) {
			t.Errorf("%s: invalid name", p)
		}
		if seen[o.Name] {
			t.Errorf("%s: duplicate name", p)
		}
		seen[o.Name] = true
		if n := utf8.RuneCountInString(o.Description); n < 1 || n > 100 {
			t.Errorf("%s: description length %d", p, n)
		}
		if len(o.Choices) > 25 {
			t.Errorf("%s: %d choices", p, len(o.Choices))
		}
		if o.Autocomplete && len(o.Choices) > 0 {
			t.Errorf("%s: autocomplete with choices", p)
		}
		for _, c := range o.Choices {
			if n := utf8.RuneCountInString(c.Name); n < 1 || n > 100 {
				t.Errorf("%s: choice name %q", p, c.Name)
			}
		}
		switch o.Type {
		case 1, 2: // subcommand, group: no required flag; groups hold subcommands only
			if o.Required {
				t.Errorf("%s: subcommand marked required", p)
			}
			if o.Type == 2 {
				for _, s := range o.Options {
					if s.Type != 1 {
						t.Errorf("%s: group holds a non-subcommand %s", p, s.Name)
					}
				}
			}
			checkOptions(t, p, o.Options)
		default:
			if len(o.Options) > 0 {
				t.Errorf("%s: value option with sub-options", p)
			}
			if o.Required && optional {
				t.Errorf("%s: required option after an optional one", p)
			}
			if !o.Required {
				optional = true
			}
		}
	}
}

func TestRegisterPayload(t *testing.T) {
	f := newFakeDiscord(t)
	s := f.session()
	if err := Register(context.Background(), s, "app1", []string{"g1", "g2"}); err != nil {
		t.Fatal(err)
	}
	puts := f.reqs("PUT", "/api/v9/applications/app1/guilds/")
	if len(puts) != 2 || puts[0].Path != "/api/v9/applications/app1/guilds/g1/commands" || puts[1].Path != "/api/v9/applications/app1/guilds/g2/commands" {
		t.Fatalf("PUTs = %+v", puts)
	}
	var cmds []wireCommand
	if err := json.Unmarshal(puts[0].Body, &cmds); err != nil {
		t.Fatal(err)
	}
	if len(cmds) != 1 || cmds[0].Name != "mssp" || cmds[0].Type != 1 {
		t.Fatalf("commands = %+v", cmds)
	}
	c := cmds[0]
	if n := utf8.RuneCountInString(c.Description); n < 1 || n > 100 {
		t.Errorf("description length %d", n)
	}
	if len(c.Contexts) != 1 || c.Contexts[0] != 0 {
		t.Errorf("contexts = %v, want guild only", c.Contexts)
	}
	checkOptions(t, "/mssp", c.Options)

	// The subcommands and options of DESIGN §4.4.
	got := map[string][]string{}
	byName := map[string]wireOption{}
	var walk func(prefix string, opts []wireOption)
	walk = func(prefix string, opts []wireOption) {
		for _, o := range opts {
			switch o.Type {
			case 1:
				var names []string
				for _, v := range o.Options {
					n := v.Name
					if v.Required {
						n += "!"
					}
					names = append(names, n)
					byName[prefix+o.Name+"."+v.Name] = v
				}
				got[prefix+o.Name] = names
			case 2:
				walk(prefix+o.Name+" ", o.Options)
			}
		}
	}
	walk("", c.Options)
	want := map[string][]string{
		"help":         nil,
		"alerts":       {"status", "min_severity", "tenant", "limit"},
		"show":         {"alert!"},
		"ack":          {"alert!", "comment"},
		"resolve":      {"alert!", "classification", "determination", "comment"},
		"comment":      {"alert!", "text!"},
		"reopen":       {"alert!"},
		"rules list":   nil,
		"rules add":    {"min_severity", "category", "source", "group", "title", "tenant"},
		"rules remove": {"rule_id!"},
		"onboard":      {"tenant_id!", "name!"},
		"offboard":     nil,
		"link":         {"tenant_id!"},
		"unlink":       nil,
		"tenants":      nil,
		"status":       nil,
		"audit":        {"limit"},
	}
	var gotNames, wantNames []string
	for k := range got {
		gotNames = append(gotNames, k)
	}
	for k := range want {
		wantNames = append(wantNames, k)
	}
	sort.Strings(gotNames)
	sort.Strings(wantNames)
	if strings.Join(gotNames, ",") != strings.Join(wantNames, ",") {
		t.Errorf("subcommands = %v, want %v", gotNames, wantNames)
	}
	for k, w := range want {
		if strings.Join(got[k], ",") != strings.Join(w, ",") {
			t.Errorf("%s options = %v, want %v", k, got[k], w)
		}
	}
	for _, sub := range []string{"show", "ack", "resolve", "comment", "reopen"} {
		if !byName[sub+".alert"].Autocomplete {
			t.Errorf("%s alert: no autocomplete", sub)
		}
	}
	choiceValues := func(k string) string {
		var v []string
		for _, c := range byName[k].Choices {
			v = append(v, c.Value.(string))
		}
		return strings.Join(v, ",")
	}
	if got := choiceValues("alerts.status"); got != "new,inprogress,resolved,open,all" {
		t.Errorf("status choices = %s", got)
	}
	if got := choiceValues("alerts.min_severity"); got != "informational,low,medium,high" {
		t.Errorf("severity choices = %s", got)
	}
	if got := choiceValues("resolve.classification"); got != "truepositive,falsepositive,informational" {
		t.Errorf("classification choices = %s", got)
	}
	lim := byName["alerts.limit"]
	if lim.Type != 4 || lim.MinValue == nil || *lim.MinValue != 1 || lim.MaxValue == nil || *lim.MaxValue != 100 {
		t.Errorf("limit = %+v", lim)
	}

	// Idempotent: a second run overwrites with the same payload.
	if err := Register(context.Background(), s, "app1", []string{"g1"}); err != nil {
		t.Fatal(err)
	}
	again := f.reqs("PUT", "/api/v9/applications/app1/guilds/g1/commands")
	if len(again) != 2 || string(again[0].Body) != string(again[1].Body) {
		t.Error("second registration differs")
	}
}

func TestRegisterGlobalAndErrors(t *testing.T) {
	f := newFakeDiscord(t)
	s := f.session()
	if err := Register(context.Background(), s, "app1", nil); err != nil {
		t.Fatal(err)
	}
	if len(f.reqs("PUT", "/api/v9/applications/app1/commands")) != 1 {
		t.Error("no global registration without guild ids")
	}
	if err := Register(context.Background(), s, "", []string{"g1"}); err == nil {
		t.Error("empty application id accepted")
	}
	f.failNext("PUT /api/v9/applications/app1/guilds/g2/commands", 403, `{"message":"Missing Access","code":50001}`, nil, 0)
	err := Register(context.Background(), s, "app1", []string{"g1", "g2"})
	if err == nil || !strings.Contains(err.Error(), "guild g2") {
		t.Errorf("err = %v, want one naming guild g2", err)
	}
}

func TestInstallURL(t *testing.T) {
	if BotPermissions != 311385213952 {
		t.Errorf("permissions = %d", BotPermissions)
	}
	want := "https://discord.com/oauth2/authorize?client_id=123&permissions=311385213952&scope=bot+applications.commands"
	if got := InstallURL("123"); got != want {
		t.Errorf("InstallURL = %s", got)
	}
}
