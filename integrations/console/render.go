// Package console implements the demo's terminal chat: a renderer of
// bot.Message as plain text, a bot.Notifier that prints to a terminal, and
// a read-eval-print loop that turns typed lines and /click into
// bot.Commands.
package console

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/msspbot/msspbot/bot"
)

// ANSI styles; used only when Renderer.Color is set.
const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiDim    = "\x1b[2m"
	ansiRed    = "\x1b[31m"
	ansiYellow = "\x1b[33m"
	ansiBlue   = "\x1b[34m"
	ansiCyan   = "\x1b[36m"
)

// Renderer turns a bot.Message into terminal text.
type Renderer struct {
	// Color enables ANSI colour; see ColorAllowed.
	Color bool
	// Location is the viewer's time zone for created times; nil: time.Local.
	Location *time.Location
}

// IsTerminal reports whether v is an *os.File attached to a character
// device (a terminal), without pulling in golang.org/x/term.
func IsTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok || f == nil {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	return fi.Mode()&os.ModeCharDevice != 0
}

// ColorAllowed reports whether colour may be used on w: w is a terminal and
// NO_COLOR (https://no-color.org) is unset or empty.
func ColorAllowed(w any) bool {
	return os.Getenv("NO_COLOR") == "" && IsTerminal(w)
}

func (r Renderer) style(code, s string) string {
	if !r.Color || s == "" {
		return s
	}
	return code + s + ansiReset
}

func (r Renderer) loc() *time.Location {
	if r.Location != nil {
		return r.Location
	}
	return time.Local
}

// Render returns m as lines of text ending in a newline. Ephemeral messages
// are marked "(only you)".
func (r Renderer) Render(m bot.Message) string {
	var b strings.Builder
	if m.Ephemeral {
		b.WriteString(r.style(ansiDim, "(only you) "))
	}
	switch {
	case m.Kind == bot.MessageCard && m.Card != nil:
		if m.Ephemeral {
			b.WriteString("\n")
		}
		r.card(&b, m)
	case m.Kind == bot.MessageDigest && m.Digest != nil:
		if m.Ephemeral {
			b.WriteString("\n")
		}
		r.digest(&b, m)
	case m.Kind == bot.MessagePrompt:
		if m.Ephemeral {
			b.WriteString("\n")
		}
		r.prompt(&b, m)
	default:
		r.plain(&b, m)
	}
	out := b.String()
	if !strings.HasSuffix(out, "\n") {
		out += "\n"
	}
	return out
}

func (r Renderer) severity(s bot.Severity) string {
	word := strings.ToUpper(s.String())
	switch s {
	case bot.SeverityHigh:
		word = r.style(ansiBold+ansiRed, word)
	case bot.SeverityMedium:
		word = r.style(ansiBold+ansiYellow, word)
	case bot.SeverityLow:
		word = r.style(ansiCyan, word)
	case bot.SeverityInformational:
		word = r.style(ansiBlue, word)
	}
	return bot.SeverityEmoji(s) + " " + word
}

func dash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "—"
	}
	return s
}

func (r Renderer) card(b *strings.Builder, m bot.Message) {
	a := m.Card.Alert
	bar := r.style(ansiDim, "│")
	fmt.Fprintf(b, "%s %s %s %s\n", r.style(ansiDim, "┌─"), r.severity(a.Severity), r.style(ansiDim, "─"), r.style(ansiBold, dash(a.Title)))
	line := func(pairs ...string) {
		var parts []string
		for i := 0; i+1 < len(pairs); i += 2 {
			parts = append(parts, r.style(ansiDim, pairs[i]+":")+" "+pairs[i+1])
		}
		fmt.Fprintf(b, "%s %s\n", bar, strings.Join(parts, " · "))
	}
	line("Tenant", dash(m.Card.TenantName), "Device", dash(a.DeviceName), "User", dash(a.UserName))
	src := dash(a.DetectionSource)
	if name := bot.ServiceSourceName(a.ServiceSource); name != "" {
		src += " (" + name + ")"
	}
	what := []string{"Category", dash(a.Category), "Source", src}
	if len(a.MitreTechniques) > 0 {
		what = append(what, "MITRE", strings.Join(a.MitreTechniques, ", "))
	}
	line(what...)
	created := "—"
	if !a.CreatedAt.IsZero() {
		created = a.CreatedAt.In(r.loc()).Format("2006-01-02 15:04:05 MST")
	}
	line("Created", created, "Status", statusLine(a))
	if m.Card.UpdatedBy != "" {
		line("Updated by", m.Card.UpdatedBy)
	}
	line("Alert", "`"+a.ID+"`")
	if a.PortalURL != "" {
		line("Portal", a.PortalURL)
	}
	r.buttons(b, bar+" ", m.Buttons)
	b.WriteString(r.style(ansiDim, "└─") + "\n")
}

func statusLine(a bot.Alert) string {
	s := dash(string(a.Status))
	if a.AssignedTo != "" {
		s += " · assigned to " + a.AssignedTo
	} else {
		s += " · unassigned"
	}
	if a.Classification != "" {
		s += " · " + string(a.Classification)
		if a.Determination != "" {
			s += "/" + a.Determination
		}
	}
	return s
}

// severityOrder lists severities most severe first, for digests.
var severityOrder = []bot.Severity{bot.SeverityHigh, bot.SeverityMedium, bot.SeverityLow, bot.SeverityInformational, bot.SeverityUnspecified}

func (r Renderer) digest(b *strings.Builder, m bot.Message) {
	d := m.Digest
	bar := r.style(ansiDim, "│")
	title := m.Title
	if title == "" {
		title = fmt.Sprintf("Alert storm: %d alerts", d.Total)
	}
	fmt.Fprintf(b, "%s 🌩 %s\n", r.style(ansiDim, "┌─"), r.style(ansiBold, title))
	if len(d.Tenants) > 0 {
		fmt.Fprintf(b, "%s %-9s %s\n", bar, "Tenants", strings.Join(d.Tenants, ", "))
	}
	if !d.Since.IsZero() {
		fmt.Fprintf(b, "%s %-9s %s\n", bar, "Since", d.Since.In(r.loc()).Format("2006-01-02 15:04:05 MST"))
	}
	var counts []string
	seen := map[bot.Severity]bool{}
	for _, s := range severityOrder {
		seen[s] = true
		if n := d.BySeverity[s]; n > 0 {
			counts = append(counts, fmt.Sprintf("%s %d", r.severity(s), n))
		}
	}
	// Severities outside the known range still count.
	var odd []bot.Severity
	for s := range d.BySeverity {
		if !seen[s] && d.BySeverity[s] > 0 {
			odd = append(odd, s)
		}
	}
	sort.Slice(odd, func(i, j int) bool { return odd[i] > odd[j] })
	for _, s := range odd {
		counts = append(counts, fmt.Sprintf("%s %d", r.severity(s), d.BySeverity[s]))
	}
	fmt.Fprintf(b, "%s %-9s %d: %s\n", bar, "Alerts", d.Total, strings.Join(counts, " · "))
	for i, t := range d.TopTitles {
		label := ""
		if i == 0 {
			label = "Top"
		}
		fmt.Fprintf(b, "%s %-9s %s\n", bar, label, t)
	}
	if m.Text != "" {
		for _, line := range strings.Split(m.Text, "\n") {
			fmt.Fprintf(b, "%s %s\n", bar, line)
		}
	}
	r.buttons(b, bar+" ", m.Buttons)
	b.WriteString(r.style(ansiDim, "└─") + "\n")
}

func (r Renderer) prompt(b *strings.Builder, m bot.Message) {
	bar := r.style(ansiDim, "│")
	title := m.Title
	if title == "" {
		title = "Action needed"
	}
	fmt.Fprintf(b, "%s %s\n", r.style(ansiDim, "┌─"), r.style(ansiBold, title))
	for _, line := range strings.Split(strings.TrimRight(m.Text, "\n"), "\n") {
		if line != "" {
			fmt.Fprintf(b, "%s %s\n", bar, line)
		}
	}
	for _, f := range m.Fields {
		fmt.Fprintf(b, "%s %s: %s\n", bar, f.Label, f.Value)
	}
	r.buttons(b, bar+" ", m.Buttons)
	b.WriteString(r.style(ansiDim, "└─") + "\n")
}

// plain renders text, notices and lists: the first line follows whatever
// prefix the caller wrote, the rest are indented by two spaces.
func (r Renderer) plain(b *strings.Builder, m bot.Message) {
	var lines []string
	if m.Kind == bot.MessageNotice {
		t := m.Title
		if t == "" {
			t = "Notice"
		}
		lines = append(lines, "📣 "+r.style(ansiBold, t))
	} else if m.Title != "" && (m.List == nil || m.List.Header != m.Title) {
		lines = append(lines, r.style(ansiBold, m.Title))
	}
	if m.Text != "" {
		lines = append(lines, strings.Split(strings.TrimRight(m.Text, "\n"), "\n")...)
	}
	if l := m.List; l != nil {
		if l.Header != "" {
			lines = append(lines, r.style(ansiBold, l.Header))
		}
		if len(l.Rows) == 0 {
			empty := l.Empty
			if empty == "" {
				empty = "Nothing to show."
			}
			lines = append(lines, empty)
		}
		for _, row := range l.Rows {
			lines = append(lines, "• "+row)
		}
		if l.More != "" {
			lines = append(lines, "… "+l.More)
		}
	}
	for _, f := range m.Fields {
		lines = append(lines, f.Label+": "+f.Value)
	}
	if len(lines) == 0 {
		lines = []string{""}
	}
	for i, line := range lines {
		if i > 0 {
			b.WriteString("  ")
		}
		b.WriteString(line)
		b.WriteString("\n")
	}
	r.buttons(b, "  ", m.Buttons)
}

// buttons prints one line per button: the click command for action
// buttons, the URL for link buttons (both when a link also has an action,
// as the demo's Grant button does).
func (r Renderer) buttons(b *strings.Builder, prefix string, bs []bot.Button) {
	for _, btn := range bs {
		parts := []string{r.style(ansiBold, "["+btn.Label+"]")}
		if btn.URL != "" {
			parts = append(parts, btn.URL)
		}
		if btn.ActionID != "" {
			click := "/click " + btn.ActionID
			if btn.Value != "" {
				click += " " + btn.Value
			}
			parts = append(parts, r.style(ansiCyan, click))
		}
		b.WriteString(prefix + strings.Join(parts, " ") + "\n")
	}
}
