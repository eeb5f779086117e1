package discord

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"

	"github.com/bwmarrin/discordgo"
)

// optionValues holds a subcommand's options by name, as text.
type optionValues map[string]string

func (o optionValues) add(opt *discordgo.ApplicationCommandInteractionDataOption) {
	switch v := opt.Value.(type) {
	case string:
		o[opt.Name] = strings.TrimSpace(v)
	case float64: // JSON numbers; integer options hold whole values
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			o[opt.Name] = strconv.FormatInt(int64(v), 10)
		} else {
			o[opt.Name] = strconv.FormatFloat(v, 'f', -1, 64)
		}
	case bool:
		o[opt.Name] = strconv.FormatBool(v)
	case nil:
	default:
		o[opt.Name] = fmt.Sprint(v)
	}
}

// commandText rebuilds the canonical command text (DESIGN §4.4) from a
// /mssp interaction; the executor's parser validates it like typed text.
func commandText(d discordgo.ApplicationCommandInteractionData) (string, error) {
	if d.Name != CommandName {
		return "", fmt.Errorf("unknown command %q", d.Name)
	}
	if len(d.Options) == 0 {
		return "help", nil
	}
	path := []string{}
	opts := d.Options
	vals := optionValues{}
	for len(opts) > 0 {
		o := opts[0]
		if o.Type == discordgo.ApplicationCommandOptionSubCommandGroup || o.Type == discordgo.ApplicationCommandOptionSubCommand {
			path = append(path, o.Name)
			opts = o.Options
			continue
		}
		for _, v := range opts {
			vals.add(v)
		}
		break
	}
	return buildText(strings.Join(path, " "), vals)
}

// buildText writes one subcommand with its options in grammar order.
// Single-token values that contain spaces or quotes are quoted so that they
// cannot turn into further tokens; the parser refuses what it cannot take.
// Rest-of-line values (comment, text, name) always come last.
func buildText(sub string, v optionValues) (string, error) {
	var parts []string
	add := func(s ...string) {
		for _, p := range s {
			if p != "" {
				parts = append(parts, p)
			}
		}
	}
	kv := func(prefix, name string) string {
		if v[name] == "" {
			return ""
		}
		return prefix + token(v[name])
	}
	switch sub {
	case "help", "offboard", "unlink", "tenants", "status":
		add(sub)
	case "alerts":
		add("alerts", strings.ToLower(v[optStatus]), kv("severity>=", optMinSeverity), kv("tenant=", optTenant), kv("limit ", optLimit))
	case "show", "reopen":
		add(sub, token(v[optAlert]))
	case "ack":
		add("ack", token(v[optAlert]), v[optComment])
	case "resolve":
		add("resolve", token(v[optAlert]), strings.ToLower(v[optClassification]), kv("determination=", optDetermination), v[optComment])
	case "comment":
		add("comment", token(v[optAlert]), v[optText])
	case "rules list":
		add("rules")
	case "rules add":
		title := ""
		if v[optTitle] != "" {
			q, err := quote(v[optTitle])
			if err != nil {
				return "", err
			}
			title = "title~" + q
		}
		add("rules add", kv("severity>=", optMinSeverity), kv("category=", optCategory), kv("source=", optSource),
			kv("group=", optGroup), title, kv("tenant=", optTenant))
	case "rules remove":
		add("rules remove", token(v[optRuleID]))
	case "onboard":
		add("onboard", token(v[optTenantID]), v[optName])
	case "link":
		add("link", token(v[optTenantID]))
	case "audit":
		add("audit", kv("limit ", optLimit))
	default:
		return "", fmt.Errorf("unknown subcommand %q", sub)
	}
	return strings.Join(parts, " "), nil
}

// token returns s as one token: quoted when it holds spaces or quotes.
func token(s string) string {
	if s == "" || !strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || strings.ContainsRune(`"“”`, r) }) {
		return s
	}
	if q, err := quote(s); err == nil {
		return q
	}
	// Both kinds of quotes: drop the straight ones rather than let the
	// value split into tokens.
	return `"` + strings.ReplaceAll(s, `"`, "") + `"`
}

var errQuotes = errors.New("text may not contain both straight and curly double quotes")

// quote wraps s in the quotes the grammar accepts ("…" or “…”).
func quote(s string) (string, error) {
	switch {
	case !strings.Contains(s, `"`):
		return `"` + s + `"`, nil
	case !strings.ContainsAny(s, "“”"):
		return "“" + s + "”", nil
	}
	return "", errQuotes
}
