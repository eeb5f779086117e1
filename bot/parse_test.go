package bot

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const (
	testGUID      = "6f1c3e2a-0b7d-4c1e-9a55-1d2b3c4d5e6f"
	testGUIDUpper = "6F1C3E2A-0B7D-4C1E-9A55-1D2B3C4D5E6F"
)

func TestParseRequestValid(t *testing.T) {
	tests := []struct {
		text string
		want Request
	}{
		// help
		{"", Request{Name: "help"}},
		{" \t ", Request{Name: "help"}},
		{"help", Request{Name: "help"}},
		{"HELP", Request{Name: "help"}},
		{"  help  ", Request{Name: "help"}},

		// alerts
		{"alerts", Request{Name: "alerts"}},
		{"Alerts", Request{Name: "alerts"}},
		{"alerts new", Request{Name: "alerts", StatusFilter: "new"}},
		{"ALERTS NEW", Request{Name: "alerts", StatusFilter: "new"}},
		{"alerts InProgress", Request{Name: "alerts", StatusFilter: "inprogress"}},
		{"alerts resolved", Request{Name: "alerts", StatusFilter: "resolved"}},
		{"alerts open", Request{Name: "alerts", StatusFilter: "open"}},
		{"alerts all", Request{Name: "alerts", StatusFilter: "all"}},
		{"alerts severity>=high", Request{Name: "alerts", MinSeverity: SeverityHigh}},
		{"alerts SEVERITY>=HIGH", Request{Name: "alerts", MinSeverity: SeverityHigh}},
		{"alerts severity>=Informational", Request{Name: "alerts", MinSeverity: SeverityInformational}},
		{"alerts severity>=low", Request{Name: "alerts", MinSeverity: SeverityLow}},
		{"alerts severity>=medium", Request{Name: "alerts", MinSeverity: SeverityMedium}},
		{"alerts tenant=" + testGUIDUpper, Request{Name: "alerts", TenantID: testGUID}},
		{"alerts limit 1", Request{Name: "alerts", Limit: 1}},
		{"alerts LIMIT 100", Request{Name: "alerts", Limit: 100}},
		{"alerts limit 007", Request{Name: "alerts", Limit: 7}},
		{
			"alerts all severity>=medium tenant=" + testGUID + " limit 50",
			Request{Name: "alerts", StatusFilter: "all", MinSeverity: SeverityMedium, TenantID: testGUID, Limit: 50},
		},
		{
			"alerts\tlimit   5 \t tenant=" + testGUID + "  severity>=low\tnew",
			Request{Name: "alerts", StatusFilter: "new", MinSeverity: SeverityLow, TenantID: testGUID, Limit: 5},
		},

		// show, reopen: the alert id stays exactly as typed
		{"show da637291085411733957_-1043898914", Request{Name: "show", AlertRef: "da637291085411733957_-1043898914"}},
		{"SHOW AbC", Request{Name: "show", AlertRef: "AbC"}},
		{"show " + testGUID + "/da123", Request{Name: "show", AlertRef: testGUID + "/da123"}},
		{"reopen da1", Request{Name: "reopen", AlertRef: "da1"}},
		{"Reopen  da1 ", Request{Name: "reopen", AlertRef: "da1"}},

		// ack: the rest is the comment, inner spacing kept
		{"ack da1", Request{Name: "ack", AlertRef: "da1"}},
		{"ack da1 looking into it", Request{Name: "ack", AlertRef: "da1", Comment: "looking into it"}},
		{"ack da1   two  spaces\tand tab  ", Request{Name: "ack", AlertRef: "da1", Comment: "two  spaces\tand tab"}},
		{"ack da1 truepositive", Request{Name: "ack", AlertRef: "da1", Comment: "truepositive"}},
		{"ack da1 ça marche — “quoted” 🚨", Request{Name: "ack", AlertRef: "da1", Comment: "ça marche — “quoted” 🚨"}},
		{`ack da1 "unterminated quote`, Request{Name: "ack", AlertRef: "da1", Comment: `"unterminated quote`}},

		// resolve: class and determination in any order before the comment
		{"resolve da1", Request{Name: "resolve", AlertRef: "da1"}},
		{"resolve da1 truepositive", Request{Name: "resolve", AlertRef: "da1", Classification: ClassTruePositive}},
		{"resolve da1 FalsePositive", Request{Name: "resolve", AlertRef: "da1", Classification: ClassFalsePositive}},
		{"resolve da1 informational", Request{Name: "resolve", AlertRef: "da1", Classification: ClassInformational}},
		{"resolve da1 determination=Malware", Request{Name: "resolve", AlertRef: "da1", Determination: "Malware"}},
		{"resolve da1 determination=compromisedAccount", Request{Name: "resolve", AlertRef: "da1", Determination: "CompromisedUser"}},
		{"resolve da1 DETERMINATION=notmalicious", Request{Name: "resolve", AlertRef: "da1", Determination: "Clean"}},
		{"resolve da1 determination=ConfirmedActivity", Request{Name: "resolve", AlertRef: "da1", Determination: "ConfirmedUserActivity"}},
		{
			"resolve da1 determination=SecurityTesting falsepositive pen test  by red team",
			Request{Name: "resolve", AlertRef: "da1", Classification: ClassFalsePositive, Determination: "SecurityTesting", Comment: "pen test  by red team"},
		},
		{
			"resolve da1 truepositive determination=malware cleaned up",
			Request{Name: "resolve", AlertRef: "da1", Classification: ClassTruePositive, Determination: "Malware", Comment: "cleaned up"},
		},
		{
			// The first token that is neither starts the comment, even if a
			// class word follows.
			"resolve da1 done truepositive",
			Request{Name: "resolve", AlertRef: "da1", Comment: "done truepositive"},
		},
		{
			// "informationalexpectedactivity" is not a command word: comment.
			"resolve da1 informationalexpectedactivity",
			Request{Name: "resolve", AlertRef: "da1", Comment: "informationalexpectedactivity"},
		},

		// comment
		{"comment da1 hello", Request{Name: "comment", AlertRef: "da1", Comment: "hello"}},
		{"COMMENT da1  user confirmed:  it's fine ✅", Request{Name: "comment", AlertRef: "da1", Comment: "user confirmed:  it's fine ✅"}},
		{"comment da1 severity>=high", Request{Name: "comment", AlertRef: "da1", Comment: "severity>=high"}},

		// rules
		{"rules", Request{Name: "rules"}},
		{"RULES", Request{Name: "rules"}},
		{"rules list", Request{Name: "rules"}},
		{"rules LIST", Request{Name: "rules"}},
		{"rules add", Request{Name: "rules add"}},
		{"rules add severity>=high", Request{Name: "rules add", MinSeverity: SeverityHigh, Rule: Rule{MinSeverity: SeverityHigh}}},
		{"rules add category=Malware", Request{Name: "rules add", Rule: Rule{Category: "Malware"}}},
		{"rules add source=WindowsDefenderAv", Request{Name: "rules add", Rule: Rule{Source: "WindowsDefenderAv"}}},
		{"rules add group=Servers", Request{Name: "rules add", Rule: Rule{Group: "Servers"}}},
		{"rules add title~mimikatz", Request{Name: "rules add", Rule: Rule{Title: "mimikatz"}}},
		{`rules add title~"credential  theft"`, Request{Name: "rules add", Rule: Rule{Title: "credential  theft"}}},
		{`rules add title~“credential theft”`, Request{Name: "rules add", Rule: Rule{Title: "credential theft"}}},
		{`rules add title~"  padded "`, Request{Name: "rules add", Rule: Rule{Title: "padded"}}},
		{`rules add title~"Ünïcödé Σ"`, Request{Name: "rules add", Rule: Rule{Title: "Ünïcödé Σ"}}},
		{`rules add group="Tier 0 servers"`, Request{Name: "rules add", Rule: Rule{Group: "Tier 0 servers"}}},
		{"rules add tenant=" + testGUIDUpper, Request{Name: "rules add", TenantID: testGUID, Rule: Rule{TenantID: testGUID}}},
		{
			`RULES ADD Title~"lateral movement" tenant=` + testGUID + ` GROUP=Servers source=EDR CATEGORY=Execution SEVERITY>=Medium`,
			Request{Name: "rules add", MinSeverity: SeverityMedium, TenantID: testGUID, Rule: Rule{
				MinSeverity: SeverityMedium, Category: "Execution", Source: "EDR", Group: "Servers",
				Title: "lateral movement", TenantID: testGUID,
			}},
		},
		{"rules remove 7", Request{Name: "rules remove", RuleID: 7}},
		{"rules REMOVE 9223372036854775807", Request{Name: "rules remove", RuleID: 9223372036854775807}},

		// onboard: the name is the rest of the line
		{"onboard " + testGUIDUpper + " Contoso", Request{Name: "onboard", TenantID: testGUID, TenantName: "Contoso"}},
		{"onboard " + testGUID + "  Contoso   Ltd  (EU) ", Request{Name: "onboard", TenantID: testGUID, TenantName: "Contoso   Ltd  (EU)"}},
		{"ONBOARD " + testGUID + " Société Générale 🇫🇷", Request{Name: "onboard", TenantID: testGUID, TenantName: "Société Générale 🇫🇷"}},
		{"onboard " + testGUID + ` "Quoted Inc"`, Request{Name: "onboard", TenantID: testGUID, TenantName: `"Quoted Inc"`}},

		// the rest
		{"offboard", Request{Name: "offboard"}},
		{"link " + testGUIDUpper, Request{Name: "link", TenantID: testGUID}},
		{"unlink", Request{Name: "unlink"}},
		{"Tenants", Request{Name: "tenants"}},
		{"status", Request{Name: "status"}},
		{"audit", Request{Name: "audit"}},
		{"audit limit 10", Request{Name: "audit", Limit: 10}},
		{"AUDIT Limit 100", Request{Name: "audit", Limit: 100}},
	}
	for _, tt := range tests {
		got, err := ParseRequest(tt.text)
		if err != nil {
			t.Errorf("ParseRequest(%q): %v", tt.text, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseRequest(%q)\n got %+v\nwant %+v", tt.text, got, tt.want)
		}
	}
}

func TestParseRequestErrors(t *testing.T) {
	tests := []struct {
		text  string
		usage string // command whose usage follows; "" for an unknown command
		want  string // in the first line
	}{
		// unknown subcommand
		{"foo", "", `unknown command "foo"`},
		{"/mssp alerts", "", `unknown command "/mssp"`},
		{"alert", "", `unknown command "alert"`},
		{"rules frobnicate", "rules", `unknown rules subcommand "frobnicate"`},
		{"rules severity>=high", "rules", "unknown rules subcommand"},

		// unexpected tokens after a complete command
		{"help me", "help", `unexpected "me"`},
		{"status now", "status", `unexpected "now"`},
		{"tenants all", "tenants", `unexpected "all"`},
		{"offboard " + testGUID, "offboard", "unexpected"},
		{"unlink x", "unlink", "unexpected"},
		{"show da1 da2", "show", `unexpected "da2"`},
		{"reopen da1 now", "reopen", `unexpected "now"`},
		{"rules list all", "rules", `unexpected "all"`},
		{"rules remove 3 4", "rules remove", `unexpected "4"`},
		{"link " + testGUID + " Contoso", "link", `unexpected "Contoso"`},

		// unknown tokens
		{"alerts high", "alerts", `unknown option "high" (did you mean severity>=high?)`},
		{"alerts severity=high", "alerts", `unknown option "severity=high"`},
		{"alerts closed", "alerts", `unknown option "closed"`},
		{"alerts limit=5", "alerts", `unknown option "limit=5"`},
		{"alerts limited 5", "alerts", `unknown option "limited"`},
		{"rules add severity=high", "rules add", `unknown option "severity=high"`},
		{"rules add Medium", "rules add", "did you mean severity>=medium?"},
		{"rules add status=new", "rules add", `unknown option "status=new"`},
		{"audit all", "audit", `unknown option "all"`},

		// repeated tokens
		{"alerts new open", "alerts", `more than one status ("open")`},
		{"alerts new NEW", "alerts", "more than one status"},
		{"alerts severity>=high severity>=low", "alerts", "severity>= given twice"},
		{"alerts tenant=" + testGUID + " tenant=" + testGUID, "alerts", "tenant= given twice"},
		{"alerts limit 5 limit 6", "alerts", "limit given twice"},
		{"audit limit 5 limit 6", "audit", "limit given twice"},
		{"resolve da1 truepositive falsepositive", "resolve", `more than one classification ("falsepositive")`},
		{"resolve da1 determination=Malware truepositive determination=Other", "resolve", "determination= given twice"},
		{"rules add title~a title~b", "rules add", "title~ given twice"},
		{"rules add category=a CATEGORY=b", "rules add", "category= given twice"},
		{"rules add source=a source=b", "rules add", "source= given twice"},
		{"rules add group=a group=b", "rules add", "group= given twice"},
		{"rules add severity>=low severity>=low", "rules add", "severity>= given twice"},

		// limit bounds
		{"alerts limit 0", "alerts", `limit must be a number from 1 to 100, not "0"`},
		{"alerts limit 101", "alerts", `not "101"`},
		{"alerts limit abc", "alerts", `not "abc"`},
		{"alerts limit -5", "alerts", `not "-5"`},
		{"alerts limit +5", "alerts", `not "+5"`},
		{"alerts limit 99999999999999999999999", "alerts", "limit must be"},
		{"alerts limit", "alerts", "limit needs a number from 1 to 100"},
		{"audit limit 0", "audit", "limit must be"},
		{"audit limit", "audit", "limit needs a number"},

		// bad level
		{"alerts severity>=critical", "alerts", `severity>= takes informational, low, medium or high, not "critical"`},
		{"alerts severity>=", "alerts", `not ""`},
		{"alerts severity>=unspecified", "alerts", "severity>= takes"},
		{"rules add severity>=urgent", "rules add", "severity>= takes"},

		// bad GUID
		{"alerts tenant=contoso", "alerts", `tenant id "contoso" is not a GUID`},
		{"alerts tenant=", "alerts", "is not a GUID"},
		{"rules add tenant={" + testGUID + "}", "rules add", "is not a GUID"},
		{"link contoso", "link", "is not a GUID"},
		{"onboard contoso Contoso", "onboard", `tenant id "contoso" is not a GUID`},
		{"onboard " + testGUID + "0 Contoso", "onboard", "is not a GUID"},

		// missing arguments
		{"show", "show", "missing the alert id"},
		{"ack", "ack", "missing the alert id"},
		{"resolve", "resolve", "missing the alert id"},
		{"comment", "comment", "missing the alert id"},
		{"reopen", "reopen", "missing the alert id"},
		{"comment da1", "comment", "missing the comment text"},
		{"comment da1   ", "comment", "missing the comment text"},
		{"rules remove", "rules remove", "missing the rule id"},
		{"link", "link", "missing the tenant id"},
		{"onboard", "onboard", "missing the tenant id"},
		{"onboard " + testGUID, "onboard", "missing the customer's name"},

		// bad values
		{`show "da1"`, "show", "must not contain quotes"},
		{`ack “da1 comment`, "ack", "must not contain quotes"},
		{"rules remove 0", "rules remove", `rule id must be a positive number, not "0"`},
		{"rules remove -1", "rules remove", "rule id must be a positive number"},
		{"rules remove x", "rules remove", "rule id must be a positive number"},
		{"rules remove 99999999999999999999", "rules remove", "rule id must be a positive number"},
		{"resolve da1 determination=Bogus", "resolve", `unknown determination "Bogus"`},
		{"resolve da1 determination=", "resolve", `unknown determination ""`},
		{"resolve da1 determination=unknown", "resolve", "unknown determination"},

		// unterminated quotes and empty values
		{`rules add title~"credential theft`, "rules add", "unterminated quote in title~"},
		{`rules add title~“credential theft`, "rules add", "unterminated quote in title~"},
		{`rules add title~`, "rules add", "title~ needs a value"},
		{`rules add title~""`, "rules add", "title~ needs a value"},
		{`rules add title~"   "`, "rules add", "title~ needs a value"},
		{`rules add title~"a"b`, "rules add", "unexpected text after the closing quote in title~"},
		{`rules add title~a"b c"`, "rules add", "quote the whole value of title~"},
		{`rules add category=`, "rules add", "category= needs a value"},
		{`rules add source=`, "rules add", "source= needs a value"},
		{`rules add group="x`, "rules add", "unterminated quote in group="},
	}
	for _, tt := range tests {
		_, err := ParseRequest(tt.text)
		checkParseError(t, tt.text, err, tt.usage, tt.want)
	}
}

// checkParseError asserts err is EINVALID with one line about the problem
// (containing want) and then the usage of the command, or the pointer to help.
func checkParseError(t *testing.T, text string, err error, usage, want string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Errorf("ParseRequest(%q): error %v, want *Error", text, err)
		return
	}
	if e.Code != EINVALID {
		t.Errorf("ParseRequest(%q): code %q, want %q", text, e.Code, EINVALID)
	}
	lines := strings.Split(e.Message, "\n")
	if len(lines) != 2 {
		t.Errorf("ParseRequest(%q): message has %d lines, want 2:\n%s", text, len(lines), e.Message)
		return
	}
	if !strings.Contains(lines[0], want) {
		t.Errorf("ParseRequest(%q): first line %q does not contain %q", text, lines[0], want)
	}
	wantSecond := "Type /mssp help for the list."
	if usage != "" {
		wantSecond = "Usage: /mssp " + Usage(usage)
	}
	if lines[1] != wantSecond {
		t.Errorf("ParseRequest(%q): second line %q, want %q", text, lines[1], wantSecond)
	}
}

func TestParseRequestErrorStaysOneLine(t *testing.T) {
	// User input shown in an error is quoted so a newline cannot split it,
	// and shortened so a paste cannot flood the reply.
	long := strings.Repeat("x", 500)
	for _, text := range []string{"\"foo\nbar\"", "alerts \"a\nb\"", "foo" + long, "alerts " + long} {
		_, err := ParseRequest(text)
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("ParseRequest(%q): %v", text, err)
		}
		first, _, _ := strings.Cut(e.Message, "\n")
		if len(first) > 120 {
			t.Errorf("ParseRequest(%q): first line is %d bytes: %q", text, len(first), first)
		}
		if strings.Count(e.Message, "\n") != 1 {
			t.Errorf("ParseRequest(%q): message %q is not two lines", text, e.Message)
		}
	}
}

func TestUsage(t *testing.T) {
	for name, want := range map[string]string{
		"alerts":       "alerts [new|inprogress|resolved|open|all] [severity>=LEVEL] [tenant=TENANT_ID] [limit N]",
		"rules":        "rules",
		"rules add":    "rules add [severity>=LEVEL] [category=NAME] [source=NAME] [group=NAME] [title~TEXT] [tenant=TENANT_ID]",
		"rules remove": "rules remove RULE_ID",
		"resolve":      "resolve ALERT [truepositive|falsepositive|informational] [determination=NAME] [comment…]",
		"audit":        "audit [limit N]",
		"nope":         "",
	} {
		if got := Usage(name); got != want {
			t.Errorf("Usage(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestHelpText(t *testing.T) {
	help := HelpText()
	// Every line of the grammar (DESIGN §4.4), in order.
	grammar := []string{
		"help",
		"alerts [new|inprogress|resolved|open|all] [severity>=LEVEL] [tenant=TENANT_ID] [limit N]",
		"show ALERT",
		"ack ALERT [comment…]",
		"resolve ALERT [truepositive|falsepositive|informational] [determination=NAME] [comment…]",
		"comment ALERT text…",
		"reopen ALERT",
		"rules",
		"rules add [severity>=LEVEL] [category=NAME] [source=NAME] [group=NAME] [title~TEXT] [tenant=TENANT_ID]",
		"rules remove RULE_ID",
		"onboard TENANT_ID NAME…",
		"offboard",
		"link TENANT_ID",
		"unlink",
		"tenants",
		"status",
		"audit [limit N]",
	}
	pos := 0
	for _, g := range grammar {
		i := strings.Index(help[pos:], "/mssp "+g+" — ")
		if i < 0 {
			t.Errorf("help lacks %q after offset %d:\n%s", g, pos, help)
			continue
		}
		pos += i + 1
	}
	for _, s := range []string{"informational, low, medium or high", "TENANT_ID/ALERT_ID", "CompromisedUser"} {
		if !strings.Contains(help, s) {
			t.Errorf("help lacks %q", s)
		}
	}
	// Every command in the help parses to itself, so help and parser
	// cannot drift apart.
	examples := map[string]string{
		"show": "show da1", "ack": "ack da1", "resolve": "resolve da1", "comment": "comment da1 x",
		"reopen": "reopen da1", "rules remove": "rules remove 1", "onboard": "onboard " + testGUID + " X",
		"link": "link " + testGUID,
	}
	for _, c := range commands {
		text, ok := examples[c.name]
		if !ok {
			text = c.name
		}
		got, err := ParseRequest(text)
		if err != nil || got.Name != c.name {
			t.Errorf("ParseRequest(%q) = %+v, %v; want name %q", text, got, err, c.name)
		}
	}
}

func TestUnescapeSlack(t *testing.T) {
	for in, want := range map[string]string{
		"alerts severity&gt;=high":        "alerts severity>=high",
		"comment da1 a &lt;b&gt; &amp; c": "comment da1 a <b> & c",
		"&amp;lt;":                        "&lt;",
		"&amp;amp;":                       "&amp;",
		"&lt;&gt;&amp;":                   "<>&",
		"plain & simple":                  "plain & simple",
		"&quot;":                          "&quot;",
		"":                                "",
	} {
		if got := UnescapeSlack(in); got != want {
			t.Errorf("UnescapeSlack(%q) = %q, want %q", in, got, want)
		}
	}
	// Only &amp; &lt; &gt; are Slack's escapes: &quot; stays as typed.
	got, err := ParseRequest(UnescapeSlack("rules add severity&gt;=high title~&quot;x&quot;"))
	if err != nil || got.Rule.MinSeverity != SeverityHigh || got.Rule.Title != "&quot;x&quot;" {
		t.Errorf("unescaped rule: %+v, %v", got, err)
	}
	got, err = ParseRequest(UnescapeSlack("alerts severity&gt;=HIGH"))
	if err != nil || got.MinSeverity != SeverityHigh {
		t.Errorf("unescaped severity: %+v, %v", got, err)
	}
}

func TestTokenize(t *testing.T) {
	text := `a  "b c"  d“e f”g  "open end`
	var got []string
	for _, tok := range tokenize(text) {
		got = append(got, tok.text)
		if text[tok.start:tok.start+len(tok.text)] != tok.text {
			t.Errorf("token %q: start %d does not point at it", tok.text, tok.start)
		}
	}
	want := []string{"a", `"b c"`, "d“e f”g", `"open end`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tokenize = %q, want %q", got, want)
	}
	toks := tokenize(text)
	if toks[len(toks)-1].open != true || toks[1].open {
		t.Errorf("open flags: %+v", toks)
	}
}
