package bot

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The command grammar (DESIGN §4.4). Every parse error is an *Error with code
// EINVALID whose message is one line saying what is wrong, then the usage of
// the subcommand, so adapters can show it as is.

// command is one line of the grammar, in help order.
type command struct {
	name  string // canonical Request.Name
	usage string // grammar line, without "/mssp "
	help  string // one-line description
}

var commands = []command{
	{"help", "help", "Show this list."},
	{"alerts", "alerts [new|inprogress|resolved|open|all] [severity>=LEVEL] [tenant=TENANT_ID] [limit N]",
		"List alerts whatever the rules say: open by default, newest first, 20 unless limit is given."},
	{"show", "show ALERT", "Show one alert in detail."},
	{"ack", "ack ALERT [comment…]", "Acknowledge: set the alert in progress, assigned to you, with an optional comment."},
	{"resolve", "resolve ALERT [truepositive|falsepositive|informational] [determination=NAME] [comment…]",
		"Resolve the alert; determination defaults to Other."},
	{"comment", "comment ALERT text…", "Add a comment to the alert in Defender."},
	{"reopen", "reopen ALERT", "Set the alert back to new."},
	{"rules", "rules", "List this channel's notification rules."},
	{"rules add", "rules add [severity>=LEVEL] [category=NAME] [source=NAME] [group=NAME] [title~TEXT] [tenant=TENANT_ID]",
		"Add a notification rule to this channel: every condition given must match."},
	{"rules remove", "rules remove RULE_ID", "Remove one of this channel's rules."},
	{"onboard", "onboard TENANT_ID NAME…", "Ask the customer's admin, in this channel, to grant access to their tenant."},
	{"offboard", "offboard", "Stop watching this channel's tenant and unlink it."},
	{"link", "link TENANT_ID", "Link this channel to a known tenant (you confirm with a button)."},
	{"unlink", "unlink", "Unlink this channel from its tenant."},
	{"tenants", "tenants", "List the tenants and their state."},
	{"status", "status", "Show fetching and delivery status."},
	{"audit", "audit [limit N]", "Show recent actions."},
}

// Usage returns the grammar line of a canonical command name ("alerts",
// "rules add"), without the leading "/mssp ", or "" for an unknown name.
func Usage(name string) string {
	for _, c := range commands {
		if c.name == name {
			return c.usage
		}
	}
	return ""
}

// HelpText is the answer to `help`: every usage line with its description,
// then what the placeholders mean.
func HelpText() string {
	var b strings.Builder
	b.WriteString("Commands:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "/mssp %s — %s\n", c.usage, c.help)
	}
	b.WriteString("LEVEL is informational, low, medium or high. ")
	b.WriteString("ALERT is an alert id; in a SOC channel TENANT_ID/ALERT_ID when the id is in several tenants. ")
	b.WriteString("TENANT_ID is the tenant's GUID. ")
	b.WriteString(`title~ takes one word or a "quoted text". `)
	b.WriteString("Determinations: " + strings.Join(DeterminationNames(), ", ") + ".")
	return b.String()
}

// UnescapeSlack undoes Slack's escaping of &, < and > in command text. It is
// a single pass, so "&amp;lt;" becomes "&lt;" and not "<".
func UnescapeSlack(s string) string { return slackUnescaper.Replace(s) }

var slackUnescaper = strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">")

// ParseRequest parses command text (what follows "/mssp", already unescaped
// by the adapter). Empty text is help.
func ParseRequest(text string) (Request, error) {
	text = strings.TrimFunc(text, unicode.IsSpace)
	if text == "" {
		return Request{Name: "help"}, nil
	}
	p := &parser{text: text, toks: tokenize(text)}
	first, _ := p.next()
	switch lowerASCII(first.text) {
	case "help", "offboard", "unlink", "tenants", "status":
		return p.bare(lowerASCII(first.text))
	case "alerts":
		return p.alerts()
	case "show", "reopen":
		return p.alertOnly(lowerASCII(first.text))
	case "ack":
		return p.ack()
	case "resolve":
		return p.resolve()
	case "comment":
		return p.comment()
	case "rules":
		return p.rules()
	case "onboard":
		return p.onboard()
	case "link":
		return p.link()
	case "audit":
		return p.audit()
	}
	return Request{}, &Error{Code: EINVALID, Message: fmt.Sprintf("unknown command %s\nType /mssp help for the list.", quote(first.text))}
}

// token is one word of the text. A double quote (" “ ”) inside a word runs
// to the next double quote, spaces included. start lets rest-of-line
// arguments be cut from the text exactly as typed.
type token struct {
	text  string
	start int
	open  bool // a quote is not closed
}

func tokenize(s string) []token {
	var toks []token
	i := 0
	for {
		for i < len(s) {
			r, n := utf8.DecodeRuneInString(s[i:])
			if !unicode.IsSpace(r) {
				break
			}
			i += n
		}
		if i == len(s) {
			return toks
		}
		start, inQuote := i, false
		for i < len(s) {
			r, n := utf8.DecodeRuneInString(s[i:])
			if !inQuote && unicode.IsSpace(r) {
				break
			}
			if isQuote(r) {
				inQuote = !inQuote
			}
			i += n
		}
		toks = append(toks, token{text: s[start:i], start: start, open: inQuote})
	}
}

// isQuote accepts straight and smart double quotes, in either role, since
// clients and keyboards substitute them unpredictably.
func isQuote(r rune) bool { return r == '"' || r == '“' || r == '”' }

// parser walks the tokens of one command; name is the canonical command
// whose usage errors show.
type parser struct {
	text string
	toks []token
	i    int
	name string
}

func (p *parser) more() bool { return p.i < len(p.toks) }

func (p *parser) next() (token, bool) {
	if !p.more() {
		return token{}, false
	}
	t := p.toks[p.i]
	p.i++
	return t, true
}

func (p *parser) peek() (token, bool) {
	if !p.more() {
		return token{}, false
	}
	return p.toks[p.i], true
}

// rest consumes the remaining tokens and returns the text from the next
// token to the end, verbatim (the text's ends are already trimmed).
func (p *parser) rest() string {
	if !p.more() {
		return ""
	}
	s := p.text[p.toks[p.i].start:]
	p.i = len(p.toks)
	return s
}

// errorf returns an EINVALID error: the problem, then the command's usage.
func (p *parser) errorf(format string, args ...any) error {
	return &Error{Code: EINVALID, Message: fmt.Sprintf(format, args...) + "\nUsage: /mssp " + Usage(p.name)}
}

// end fails if tokens remain.
func (p *parser) end() error {
	if t, ok := p.next(); ok {
		return p.errorf("unexpected %s", quote(t.text))
	}
	return nil
}

func (p *parser) bare(name string) (Request, error) {
	p.name = name
	if err := p.end(); err != nil {
		return Request{}, err
	}
	return Request{Name: name}, nil
}

// alert reads the required ALERT argument, kept as typed.
func (p *parser) alert() (string, error) {
	t, ok := p.next()
	if !ok {
		return "", p.errorf("missing the alert id")
	}
	if strings.ContainsFunc(t.text, isQuote) {
		return "", p.errorf("alert id %s must not contain quotes", quote(t.text))
	}
	return t.text, nil
}

func (p *parser) alertOnly(name string) (Request, error) {
	p.name = name
	ref, err := p.alert()
	if err != nil {
		return Request{}, err
	}
	if err := p.end(); err != nil {
		return Request{}, err
	}
	return Request{Name: name, AlertRef: ref}, nil
}

func (p *parser) alerts() (Request, error) {
	p.name = "alerts"
	r := Request{Name: "alerts"}
	seen := map[string]bool{}
	for p.more() {
		t, _ := p.next()
		word := lowerASCII(t.text)
		key := option(word, "severity>=", "tenant=")
		switch {
		case statusFilters[word]:
			key = "status"
		case word == "limit":
			key = "limit"
		case key == "":
			return Request{}, p.unknown(t)
		}
		if seen[key] {
			if key == "status" {
				return Request{}, p.errorf("more than one status (%s)", quote(t.text))
			}
			return Request{}, p.errorf("%s given twice", key)
		}
		seen[key] = true
		var err error
		switch key {
		case "status":
			r.StatusFilter = word
		case "severity>=":
			r.MinSeverity, err = p.level(t.text[len(key):])
		case "tenant=":
			r.TenantID, err = p.tenantID(t.text[len(key):])
		case "limit":
			r.Limit, err = p.limit()
		}
		if err != nil {
			return Request{}, err
		}
	}
	return r, nil
}

// option returns the key ("severity>=", "title~") that word starts with, or "".
func option(word string, keys ...string) string {
	for _, k := range keys {
		if strings.HasPrefix(word, k) {
			return k
		}
	}
	return ""
}

var statusFilters = map[string]bool{"new": true, "inprogress": true, "resolved": true, "open": true, "all": true}

// levels are the LEVEL words; ParseSeverity also takes "unspecified".
var levels = map[string]bool{"informational": true, "low": true, "medium": true, "high": true}

// unknown rejects a token, with a hint for the likeliest slip.
func (p *parser) unknown(t token) error {
	if w := lowerASCII(t.text); levels[w] {
		return p.errorf("unknown option %s (did you mean severity>=%s?)", quote(t.text), w)
	}
	return p.errorf("unknown option %s", quote(t.text))
}

// level parses LEVEL, the value of severity>=.
func (p *parser) level(v string) (Severity, error) {
	if !levels[lowerASCII(v)] {
		return 0, p.errorf("severity>= takes informational, low, medium or high, not %s", quote(v))
	}
	s, _ := ParseSeverity(v)
	return s, nil
}

func (p *parser) tenantID(v string) (string, error) {
	if !ValidTenantID(v) {
		return "", p.errorf("tenant id %s is not a GUID", quote(v))
	}
	return NormalizeTenantID(v), nil
}

// limit reads the N after "limit".
func (p *parser) limit() (int, error) {
	t, ok := p.next()
	if !ok {
		return 0, p.errorf("limit needs a number from 1 to 100")
	}
	n, ok := positive(t.text)
	if !ok || n > 100 {
		return 0, p.errorf("limit must be a number from 1 to 100, not %s", quote(t.text))
	}
	return int(n), nil
}

// positive parses a decimal integer > 0 made of ASCII digits only
// (strconv alone would take "+5").
func positive(s string) (int64, bool) {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r < '0' || r > '9' }) {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n > 0
}

func (p *parser) ack() (Request, error) {
	p.name = "ack"
	ref, err := p.alert()
	if err != nil {
		return Request{}, err
	}
	return Request{Name: "ack", AlertRef: ref, Comment: p.rest()}, nil
}

// resolve takes the classification and determination in any order; the
// first token that is neither starts the comment.
func (p *parser) resolve() (Request, error) {
	p.name = "resolve"
	ref, err := p.alert()
	if err != nil {
		return Request{}, err
	}
	r := Request{Name: "resolve", AlertRef: ref}
	for {
		t, ok := p.peek()
		if !ok {
			return r, nil
		}
		word := lowerASCII(t.text)
		switch {
		case classWords[word]:
			if r.Classification != "" {
				return Request{}, p.errorf("more than one classification (%s)", quote(t.text))
			}
			r.Classification, _ = ParseClassification(word)
		case strings.HasPrefix(word, "determination="):
			if r.Determination != "" {
				return Request{}, p.errorf("determination= given twice")
			}
			v := t.text[len("determination="):]
			d, ok := ParseDetermination(v)
			if !ok || d == "" {
				return Request{}, p.errorf("unknown determination %s (one of %s)", quote(v), strings.Join(DeterminationNames(), ", "))
			}
			r.Determination = d
		default:
			r.Comment = p.rest()
			return r, nil
		}
		p.i++
	}
}

var classWords = map[string]bool{"truepositive": true, "falsepositive": true, "informational": true}

func (p *parser) comment() (Request, error) {
	p.name = "comment"
	ref, err := p.alert()
	if err != nil {
		return Request{}, err
	}
	text := p.rest()
	if text == "" {
		return Request{}, p.errorf("missing the comment text")
	}
	return Request{Name: "comment", AlertRef: ref, Comment: text}, nil
}

// rules is the list; "rules list" too, since Discord's command group sends it.
func (p *parser) rules() (Request, error) {
	p.name = "rules"
	t, ok := p.next()
	if !ok {
		return Request{Name: "rules"}, nil
	}
	switch lowerASCII(t.text) {
	case "list":
		return p.bare("rules")
	case "add":
		return p.rulesAdd()
	case "remove":
		return p.rulesRemove()
	}
	return Request{}, p.errorf("unknown rules subcommand %s (use rules, rules add or rules remove)", quote(t.text))
}

func (p *parser) rulesAdd() (Request, error) {
	p.name = "rules add"
	r := Request{Name: "rules add"}
	seen := map[string]bool{}
	for p.more() {
		t, _ := p.next()
		word := lowerASCII(t.text)
		key := option(word, "severity>=", "category=", "source=", "group=", "title~", "tenant=")
		if key == "" {
			return Request{}, p.unknown(t)
		}
		if seen[key] {
			return Request{}, p.errorf("%s given twice", key)
		}
		seen[key] = true
		v := t.text[len(key):]
		var err error
		switch key {
		case "severity>=":
			r.Rule.MinSeverity, err = p.level(v)
		case "tenant=":
			r.Rule.TenantID, err = p.tenantID(v)
		case "category=":
			r.Rule.Category, err = p.textValue(key, v, t.open)
		case "source=":
			r.Rule.Source, err = p.textValue(key, v, t.open)
		case "group=":
			r.Rule.Group, err = p.textValue(key, v, t.open)
		case "title~":
			r.Rule.Title, err = p.textValue(key, v, t.open)
		}
		if err != nil {
			return Request{}, err
		}
	}
	// Mirrored so the executor checks severity and tenant= the same way for
	// alerts and rules add.
	r.MinSeverity, r.TenantID = r.Rule.MinSeverity, r.Rule.TenantID
	return r, nil
}

// textValue parses the value of a text option: one word, or one quoted string
// whose ends are trimmed. Quoting works for every text option (group names
// often have spaces), not only title~.
func (p *parser) textValue(key, v string, open bool) (string, error) {
	if open {
		return "", p.errorf("unterminated quote in %s", key)
	}
	if r, n := utf8.DecodeRuneInString(v); isQuote(r) {
		inner := v[n:]
		end := strings.IndexFunc(inner, isQuote)
		if _, m := utf8.DecodeRuneInString(inner[end:]); end+m != len(inner) {
			return "", p.errorf("unexpected text after the closing quote in %s", key)
		}
		v = strings.TrimFunc(inner[:end], unicode.IsSpace)
	} else if strings.ContainsFunc(v, isQuote) {
		return "", p.errorf("quote the whole value of %s, not part of it", key)
	}
	if v == "" {
		return "", p.errorf("%s needs a value", key)
	}
	return v, nil
}

func (p *parser) rulesRemove() (Request, error) {
	p.name = "rules remove"
	t, ok := p.next()
	if !ok {
		return Request{}, p.errorf("missing the rule id")
	}
	id, ok := positive(t.text)
	if !ok {
		return Request{}, p.errorf("rule id must be a positive number, not %s", quote(t.text))
	}
	if err := p.end(); err != nil {
		return Request{}, err
	}
	return Request{Name: "rules remove", RuleID: id}, nil
}

func (p *parser) onboard() (Request, error) {
	p.name = "onboard"
	t, ok := p.next()
	if !ok {
		return Request{}, p.errorf("missing the tenant id")
	}
	id, err := p.tenantID(t.text)
	if err != nil {
		return Request{}, err
	}
	name := p.rest()
	if name == "" {
		return Request{}, p.errorf("missing the customer's name")
	}
	return Request{Name: "onboard", TenantID: id, TenantName: name}, nil
}

func (p *parser) link() (Request, error) {
	p.name = "link"
	t, ok := p.next()
	if !ok {
		return Request{}, p.errorf("missing the tenant id")
	}
	id, err := p.tenantID(t.text)
	if err != nil {
		return Request{}, err
	}
	if err := p.end(); err != nil {
		return Request{}, err
	}
	return Request{Name: "link", TenantID: id}, nil
}

func (p *parser) audit() (Request, error) {
	p.name = "audit"
	r := Request{Name: "audit"}
	for p.more() {
		t, _ := p.next()
		if lowerASCII(t.text) != "limit" {
			return Request{}, p.unknown(t)
		}
		if r.Limit != 0 {
			return Request{}, p.errorf("limit given twice")
		}
		n, err := p.limit()
		if err != nil {
			return Request{}, err
		}
		r.Limit = n
	}
	return r, nil
}

// lowerASCII folds only A-Z: keywords are ASCII, and byte offsets into the
// token stay valid (unicode.ToLower can change a string's length, and
// strings.EqualFold would let "ſhow" mean "show").
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// quote shows user input in an error: Go-quoted so it stays on one line,
// shortened so a long paste does not flood the reply.
func quote(s string) string {
	const max = 40
	if utf8.RuneCountInString(s) > max {
		r := []rune(s)
		s = string(r[:max]) + "…"
	}
	return strconv.Quote(s)
}
