package bot

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"", "help", "HELP", "alerts", "ALERTS NEW", "alerts open severity>=high limit 5",
		"alerts all tenant=" + testGUIDUpper + " limit 100", "alerts limit 0", "alerts limit 101",
		"alerts limit abc", "alerts new new", "alerts severity>=bogus", "alerts high",
		"show da1", "show " + testGUID + "/da1", `show "da1"`, "reopen da1 x",
		"ack da1", "ack da1   with  spaces ", `ack da1 "open quote`, "ack",
		"resolve da1 truepositive determination=Malware done", "resolve da1 determination=notMalicious informational",
		"resolve da1 truepositive falsepositive", "resolve da1 determination=bogus", "resolve da1 note truepositive",
		"comment da1 hello  world", "comment da1", "comment da1 ✅ “smart”",
		"rules", "rules list", "rules LIST x", "rules add", `rules add title~"a b" group=“Tier 0” severity>=low`,
		"rules add tenant=" + testGUID + " category=Malware source=EDR", `rules add title~"unterminated`,
		`rules add title~`, `rules add title~"a"b`, `rules add title~a"b"`, "rules remove 1", "rules remove 0",
		"rules remove 99999999999999999999", "rules bogus",
		"onboard " + testGUID + " Contoso  Ltd", "onboard " + testGUID, "onboard bad Name",
		"offboard", "link " + testGUID, "link nope", "unlink", "tenants", "status", "audit", "audit limit 20",
		"audit limit 5 limit 5", "foo", "/mssp help", "\"\n\"", "\t \u00a0 alerts\u2003new ", "alerts \xff", "ſhow da1",
		"alerts severity&gt;=high",
	} {
		f.Add(s)
	}
	names := make([]string, len(commands))
	for i, c := range commands {
		names[i] = c.name
	}
	f.Fuzz(func(t *testing.T, text string) {
		r, err := ParseRequest(text)
		if err != nil {
			checkFuzzError(t, text, err)
			return
		}
		if !slices.Contains(names, r.Name) {
			t.Fatalf("ParseRequest(%q): unknown name %q", text, r.Name)
		}
		if r.Limit < 0 || r.Limit > 100 {
			t.Fatalf("ParseRequest(%q): limit %d", text, r.Limit)
		}
		for _, id := range []string{r.TenantID, r.Rule.TenantID} {
			if id != "" && (!ValidTenantID(id) || id != NormalizeTenantID(id)) {
				t.Fatalf("ParseRequest(%q): tenant id %q is not a normalised GUID", text, id)
			}
		}
		if r.MinSeverity < SeverityUnspecified || r.MinSeverity > SeverityHigh || (r.Name == "rules add" && r.Rule.MinSeverity != r.MinSeverity) {
			t.Fatalf("ParseRequest(%q): severity %v / rule %v", text, r.MinSeverity, r.Rule.MinSeverity)
		}
		switch r.StatusFilter {
		case "", "new", "inprogress", "resolved", "open", "all":
		default:
			t.Fatalf("ParseRequest(%q): status filter %q", text, r.StatusFilter)
		}
		switch r.Classification {
		case "", ClassTruePositive, ClassFalsePositive, ClassInformational:
		default:
			t.Fatalf("ParseRequest(%q): classification %q", text, r.Classification)
		}
		if r.Determination != "" && !slices.Contains(DeterminationNames(), r.Determination) {
			t.Fatalf("ParseRequest(%q): determination %q", text, r.Determination)
		}
		switch r.Name {
		case "show", "ack", "resolve", "comment", "reopen":
			if r.AlertRef == "" || strings.ContainsFunc(r.AlertRef, unicode.IsSpace) || strings.ContainsFunc(r.AlertRef, isQuote) {
				t.Fatalf("ParseRequest(%q): alert ref %q", text, r.AlertRef)
			}
		case "rules remove":
			if r.RuleID <= 0 {
				t.Fatalf("ParseRequest(%q): rule id %d", text, r.RuleID)
			}
		case "onboard":
			if r.TenantID == "" || r.TenantName == "" {
				t.Fatalf("ParseRequest(%q): onboard %+v", text, r)
			}
		case "link":
			if r.TenantID == "" {
				t.Fatalf("ParseRequest(%q): link without tenant", text)
			}
		case "rules add":
			checkRuleRoundTrip(t, text, r.Rule)
		}
		if r.Name == "comment" && r.Comment == "" {
			t.Fatalf("ParseRequest(%q): comment without text", text)
		}
		// Rest-of-line values are verbatim from the text, ends trimmed.
		for _, s := range []string{r.Comment, r.TenantName} {
			if s != strings.TrimFunc(s, unicode.IsSpace) || !strings.Contains(text, s) {
				t.Fatalf("ParseRequest(%q): rest-of-line %q not verbatim", text, s)
			}
		}
	})
}

// checkFuzzError: every parse error is EINVALID, its first line says what is
// wrong and the second is a usage line or the pointer to help.
func checkFuzzError(t *testing.T, text string, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Code != EINVALID {
		t.Fatalf("ParseRequest(%q): error %v is not EINVALID", text, err)
	}
	first, second, ok := strings.Cut(e.Message, "\n")
	if !ok || first == "" || strings.Contains(second, "\n") || !utf8.ValidString(first) {
		t.Fatalf("ParseRequest(%q): message %q is not one line plus usage", text, e.Message)
	}
	if second == "Type /mssp help for the list." {
		return
	}
	usage, ok := strings.CutPrefix(second, "Usage: /mssp ")
	if !ok || !slices.ContainsFunc(commands, func(c command) bool { return c.usage == usage }) {
		t.Fatalf("ParseRequest(%q): second line %q is not a usage", text, second)
	}
}

// checkRuleRoundTrip: a rule renders (Rule.String) to text that parses back
// to the same rule.
func checkRuleRoundTrip(t *testing.T, text string, rule Rule) {
	t.Helper()
	if rule == (Rule{}) {
		return // "everything"
	}
	again, err := ParseRequest("rules add " + rule.String())
	if err != nil || again.Rule != rule {
		t.Fatalf("ParseRequest(%q): rule %+v renders as %q, which parses to %+v, %v", text, rule, rule.String(), again.Rule, err)
	}
}
