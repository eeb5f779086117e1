package slack

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	slackapi "github.com/slack-go/slack"

	"github.com/msspbot/msspbot/bot"
)

// Block Kit limits (https://docs.slack.dev/reference/block-kit/blocks).
const (
	maxBlocks        = 50
	maxSectionText   = 3000
	maxFieldText     = 2000
	maxFields        = 10
	maxHeaderText    = 150
	maxButtonText    = 75
	maxButtonValue   = 2000
	maxButtonURL     = 3000
	maxActionButtons = 25
	maxContextText   = 3000
	maxFallbackText  = 40000
	maxBlockID       = 255
)

// originPrefix marks the block_id of the buttons in a reply to a click: it
// carries the ts of the message that was clicked, so that a click on the
// ephemeral reply (the resolve chooser) is still checked against the card.
const originPrefix = "msspbot_origin:"

// Render turns a message into Block Kit blocks and the plain-text fallback
// Slack shows in notifications. All text that comes from alerts or users is
// escaped; every Block Kit limit is respected by truncation. Cards and
// digests are drawn from their structured content alone: their Title and
// Text only repeat it as a fallback, which Render builds itself.
func Render(m bot.Message) ([]slackapi.Block, string) {
	return render(m, "")
}

// render is Render with the ts of the clicked message, if any, stored in
// the block_id of the message's buttons.
func render(m bot.Message, originTS string) ([]slackapi.Block, string) {
	var (
		body     []slackapi.Block
		fallback string
		buttons  = m.Buttons
	)
	switch {
	case m.Kind == bot.MessageCard && m.Card != nil:
		body, fallback = renderCard(m)
		buttons = cardButtons(m)
	case m.Kind == bot.MessageDigest && m.Digest != nil:
		body, fallback = renderDigest(m)
	default:
		body, fallback = renderGeneric(m)
	}
	tail := actionBlocks(buttons, originTS)
	return capBlocks(body, tail), truncate(fallback, maxFallbackText)
}

// cardButtons: a resolved alert has nothing left to click.
func cardButtons(m bot.Message) []bot.Button {
	if m.Card.Alert.Status == bot.StatusResolved {
		return nil
	}
	if len(m.Buttons) > 0 {
		return m.Buttons
	}
	return bot.CardButtons(m.Card.Alert.ID)
}

func renderCard(m bot.Message) ([]slackapi.Block, string) {
	a := m.Card.Alert
	emoji := bot.SeverityEmoji(a.Severity)
	title := a.Title
	if title == "" {
		title = "Untitled alert"
	}

	head := fmt.Sprintf("%s *%s* · *%s*", emoji, a.Severity, escape(title))
	if a.Status == bot.StatusResolved {
		head = "✅ Resolved · " + head
	}
	blocks := []slackapi.Block{section(head)}

	var fields []string
	add := func(label, value string) {
		if strings.TrimSpace(value) != "" {
			fields = append(fields, "*"+label+"*\n"+value)
		}
	}
	add("Tenant", escape(m.Card.TenantName))
	add("Device", escape(a.DeviceName))
	add("User", escape(a.UserName))
	add("Category", escape(a.Category))
	source := escape(a.DetectionSource)
	if bot.ServiceSourceName(a.ServiceSource) != "" {
		source = strings.TrimSpace(source + " (" + escape(bot.ServiceSourceName(a.ServiceSource)) + ")")
	}
	add("Detection source", source)
	add("Created", slackDate(a.CreatedAt))
	status := escape(string(a.Status))
	if status == "" {
		status = string(bot.StatusUnknown)
	}
	add("Status", status)
	assignee := escape(a.AssignedTo)
	if assignee == "" {
		assignee = "unassigned"
	}
	add("Assigned to", assignee)
	if a.Classification != "" {
		c := escape(string(a.Classification))
		if a.Determination != "" {
			c += " / " + escape(a.Determination)
		}
		add("Classification", c)
	}
	blocks = append(blocks, fieldSections(fields)...)

	links := []string{"Alert ID: " + code(a.ID)}
	if l := link(a.PortalURL, "Open in Defender"); l != "" {
		links = append(links, l)
	}
	if a.IncidentID != "" || a.IncidentURL != "" {
		label := "Incident"
		if a.IncidentID != "" {
			label = "Incident " + escape(a.IncidentID)
		}
		if l := link(a.IncidentURL, label); l != "" {
			links = append(links, l)
		} else {
			links = append(links, label)
		}
	}
	blocks = append(blocks, section(strings.Join(links, " · ")))
	if m.Card.UpdatedBy != "" {
		blocks = append(blocks, contextText("Last changed by "+escape(m.Card.UpdatedBy)))
	}

	fallback := fmt.Sprintf("%s %s: %s — %s (alert %s)", emoji, a.Severity, escape(title), escape(m.Card.TenantName), escape(a.ID))
	return blocks, fallback
}

var severityOrder = []bot.Severity{
	bot.SeverityHigh, bot.SeverityMedium, bot.SeverityLow,
	bot.SeverityInformational, bot.SeverityUnspecified,
}

func renderDigest(m bot.Message) ([]slackapi.Block, string) {
	d := m.Digest
	head := "🌪️ Alert storm: " + count(d.Total) + " alerts"
	blocks := []slackapi.Block{
		slackapi.NewHeaderBlock(slackapi.NewTextBlockObject(slackapi.PlainTextType, truncate(head, maxHeaderText), true, false)),
	}

	var info []string
	if len(d.Tenants) > 0 {
		names := make([]string, len(d.Tenants))
		for i, n := range d.Tenants {
			names[i] = escape(n)
		}
		info = append(info, "*Tenants:* "+strings.Join(names, ", "))
	}
	if !d.Since.IsZero() {
		info = append(info, "*Since:* "+slackDate(d.Since))
	}
	if len(info) > 0 {
		blocks = append(blocks, section(strings.Join(info, "\n")))
	}

	var fields, counts []string
	for _, s := range severityOrder {
		if n := d.BySeverity[s]; n > 0 {
			fields = append(fields, fmt.Sprintf("%s *%s*\n%s", bot.SeverityEmoji(s), s, count(n)))
			counts = append(counts, fmt.Sprintf("%s %s", s, count(n)))
		}
	}
	blocks = append(blocks, fieldSections(fields)...)

	if len(d.TopTitles) > 0 {
		lines := []string{"*Top titles*"}
		for _, t := range d.TopTitles {
			lines = append(lines, "• "+escape(t))
		}
		blocks = append(blocks, packLines(lines)...)
	}
	blocks = append(blocks, contextText("Each alert is listed in this thread; act on them with typed commands."))

	fallback := "Alert storm: " + count(d.Total) + " alerts"
	if len(counts) > 0 {
		fallback += " (" + strings.Join(counts, ", ") + ")"
	}
	if len(d.Tenants) > 0 {
		fallback += " — " + escape(strings.Join(d.Tenants, ", "))
	}
	return blocks, fallback
}

// renderGeneric draws text replies, thread lines, notices, lists and
// prompts: title, text, list, fields; the buttons are added by render.
func renderGeneric(m bot.Message) ([]slackapi.Block, string) {
	var (
		blocks []slackapi.Block
		fb     []string
	)
	title := m.Title
	if m.List != nil && m.List.Header != "" {
		if title != "" {
			blocks = append(blocks, section("*"+escape(title)+"*"))
			fb = append(fb, escape(title))
		}
		title = m.List.Header
	}
	if title != "" {
		blocks = append(blocks, section("*"+escape(title)+"*"))
		fb = append(fb, escape(title))
	}
	if m.Text != "" {
		blocks = append(blocks, textSections(escape(m.Text))...)
		fb = append(fb, escape(m.Text))
	}
	if l := m.List; l != nil {
		if len(l.Rows) == 0 {
			empty := l.Empty
			if empty == "" {
				empty = "Nothing to show."
			}
			blocks = append(blocks, section(escape(empty)))
			fb = append(fb, escape(empty))
		} else {
			rows := make([]string, len(l.Rows))
			for i, r := range l.Rows {
				rows[i] = escape(r)
			}
			blocks = append(blocks, packLines(rows)...)
			fb = append(fb, rows...)
		}
		if l.More != "" {
			blocks = append(blocks, contextText(escape(l.More)))
			fb = append(fb, escape(l.More))
		}
	}
	if len(m.Fields) > 0 {
		fields := make([]string, 0, len(m.Fields))
		for _, f := range m.Fields {
			v := escape(f.Value)
			if v == "" {
				v = "—"
			}
			fields = append(fields, "*"+escape(f.Label)+"*\n"+v)
			fb = append(fb, escape(f.Label)+": "+v)
		}
		blocks = append(blocks, fieldSections(fields)...)
	}
	if len(blocks) == 0 && len(m.Buttons) == 0 {
		return nil, ""
	}
	fallback := strings.Join(fb, "\n")
	if fallback == "" {
		// Slack wants a fallback whenever blocks are sent.
		fallback = "msspbot"
	}
	return blocks, fallback
}

// actionBlocks renders buttons, at most 25 per actions block.
func actionBlocks(buttons []bot.Button, originTS string) []slackapi.Block {
	var (
		blocks []slackapi.Block
		elems  []slackapi.BlockElement
	)
	blockID := ""
	if originTS != "" {
		blockID = truncateBytes(originPrefix+originTS, maxBlockID)
	}
	flush := func() {
		if len(elems) == 0 {
			return
		}
		id := blockID
		if id != "" && len(blocks) > 0 {
			// block ids must be unique within a message
			id = truncateBytes(id+"#"+strconv.Itoa(len(blocks)), maxBlockID)
		}
		blocks = append(blocks, slackapi.NewActionBlock(id, elems...))
		elems = nil
	}
	for _, b := range buttons {
		label := truncate(b.Label, maxButtonText)
		if label == "" {
			label = "…"
		}
		actionID := b.ActionID
		if actionID == "" && b.URL != "" {
			actionID = bot.ActionGrant
		}
		el := slackapi.NewButtonBlockElement(actionID, truncateBytes(b.Value, maxButtonValue),
			slackapi.NewTextBlockObject(slackapi.PlainTextType, label, true, false))
		if b.URL != "" {
			if !safeURL(b.URL) || len(b.URL) > maxButtonURL {
				continue // a broken or cut link is worse than none
			}
			el.URL = b.URL
		}
		switch b.Style {
		case bot.ButtonPrimary:
			el.Style = slackapi.StylePrimary
		case bot.ButtonDanger:
			el.Style = slackapi.StyleDanger
		}
		elems = append(elems, el)
		if len(elems) == maxActionButtons {
			flush()
		}
	}
	flush()
	return blocks
}

// capBlocks keeps the message within 50 blocks, dropping body blocks (never
// the buttons) and saying so.
func capBlocks(body, tail []slackapi.Block) []slackapi.Block {
	if len(tail) > maxBlocks {
		tail = tail[:maxBlocks]
	}
	room := maxBlocks - len(tail)
	if len(body) > room {
		if room > 0 {
			body = append(body[:room-1:room-1], contextText("… message shortened to fit Slack's limits."))
		} else {
			body = nil
		}
	}
	out := make([]slackapi.Block, 0, len(body)+len(tail))
	return append(append(out, body...), tail...)
}

func section(mrkdwn string) *slackapi.SectionBlock {
	return slackapi.NewSectionBlock(slackapi.NewTextBlockObject(slackapi.MarkdownType, truncate(mrkdwn, maxSectionText), false, false), nil, nil)
}

func contextText(mrkdwn string) *slackapi.ContextBlock {
	return slackapi.NewContextBlock("", slackapi.NewTextBlockObject(slackapi.MarkdownType, truncate(mrkdwn, maxContextText), false, false))
}

// fieldSections puts fields two-column, ten per section.
func fieldSections(fields []string) []slackapi.Block {
	var blocks []slackapi.Block
	for len(fields) > 0 {
		n := min(len(fields), maxFields)
		objs := make([]*slackapi.TextBlockObject, n)
		for i, f := range fields[:n] {
			objs[i] = slackapi.NewTextBlockObject(slackapi.MarkdownType, truncate(f, maxFieldText), false, false)
		}
		blocks = append(blocks, slackapi.NewSectionBlock(nil, objs, nil))
		fields = fields[n:]
	}
	return blocks
}

// textSections splits long text into sections at line breaks.
func textSections(text string) []slackapi.Block {
	return packLines(strings.Split(text, "\n"))
}

// packLines joins lines into as few sections as the 3000-character limit
// allows; a single overlong line is truncated.
func packLines(lines []string) []slackapi.Block {
	var (
		blocks []slackapi.Block
		cur    []string
		size   int
	)
	flush := func() {
		if len(cur) > 0 {
			blocks = append(blocks, section(strings.Join(cur, "\n")))
			cur, size = nil, 0
		}
	}
	for _, l := range lines {
		l = truncate(l, maxSectionText)
		n := utf8.RuneCountInString(l)
		if len(cur) > 0 && size+1+n > maxSectionText {
			flush()
		}
		if len(cur) > 0 {
			size++
		}
		cur = append(cur, l)
		size += n
	}
	flush()
	return blocks
}

var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// escape makes text safe for mrkdwn: without it an alert title such as
// "<!channel>" or "<https://evil|bank>" would be a mention or a link.
func escape(s string) string { return escaper.Replace(s) }

// code shows an id whole in inline code; backticks cannot be escaped inside
// code spans, so they are dropped.
func code(s string) string {
	s = strings.ReplaceAll(escape(s), "`", "")
	if s == "" {
		return "—"
	}
	return "`" + s + "`"
}

// link renders an http(s) URL as a mrkdwn link, or "" when there is none.
func link(raw, label string) string {
	if !safeURL(raw) {
		return ""
	}
	u := strings.NewReplacer("|", "%7C", ">", "%3E", "<", "%3C", "&", "&amp;").Replace(raw)
	return "<" + u + "|" + label + ">"
}

func safeURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

// slackDate shows t in the viewer's time zone, with a UTC fallback for
// clients that cannot.
func slackDate(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return fmt.Sprintf("<!date^%d^{date_short_pretty} {time}|%s>", t.Unix(), t.UTC().Format("2006-01-02 15:04 UTC"))
}

// count formats n with thousands separators.
func count(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// truncate cuts s to at most n characters, ending with "…". It never cuts
// an escape entity ("&amp;") or a link or date ("<…>") in half: user text
// has its "<" escaped, so a raw "<" always opens markup we generated.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 1 {
		return "…"
	}
	r := []rune(s)[:n-1]
	out := string(r)
	if i := strings.LastIndexByte(out, '&'); i >= 0 && len(out)-i <= len("&amp;") && !strings.Contains(out[i:], ";") {
		out = out[:i]
	}
	if i := strings.LastIndexByte(out, '<'); i >= 0 && !strings.Contains(out[i:], ">") {
		out = out[:i]
	}
	return out + "…"
}

// truncateBytes cuts s to at most n bytes on a rune boundary.
func truncateBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
