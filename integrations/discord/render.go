package discord

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"

	"github.com/msspbot/msspbot/bot"
)

// Discord's message limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits).
const (
	maxContent       = 2000
	maxEmbedTitle    = 256
	maxEmbedDesc     = 4096
	maxFieldName     = 256
	maxFieldValue    = 1024
	maxFields        = 25
	maxFooter        = 2048
	maxEmbedTotal    = 6000
	maxButtonLabel   = 80
	maxCustomID      = 100
	maxButtonURL     = 512
	maxButtonsPerRow = 5
	maxRows          = 5
	maxNonce         = 25
)

// Embed colours by severity.
const (
	colorHigh          = 0xD13438
	colorMedium        = 0xF7630C
	colorLow           = 0xFFB900
	colorInformational = 0x0078D4
	colorNeutral       = 0x8A8886
	colorPrompt        = 0x5865F2
)

func severityColor(s bot.Severity) int {
	switch s {
	case bot.SeverityHigh:
		return colorHigh
	case bot.SeverityMedium:
		return colorMedium
	case bot.SeverityLow:
		return colorLow
	case bot.SeverityInformational:
		return colorInformational
	}
	return colorNeutral
}

// rendered is a bot.Message in Discord's terms.
type rendered struct {
	Content    string
	Embeds     []*discordgo.MessageEmbed
	Components []discordgo.MessageComponent
	// dropped counts buttons left out because their custom id or URL does
	// not fit Discord's limits.
	dropped int
}

// noMentions keeps alert text such as "@everyone" from pinging anyone.
func noMentions() *discordgo.MessageAllowedMentions {
	return &discordgo.MessageAllowedMentions{Parse: []discordgo.AllowedMentionType{}}
}

// render turns m into Discord content, embeds and components. key, when
// set, goes into the embed footer so that Find can recognise the message.
// Message text is plain text: markdown in it is escaped.
func render(m bot.Message, key string) rendered {
	var r rendered
	var e *discordgo.MessageEmbed
	buttons := m.Buttons
	switch {
	case m.Kind == bot.MessageCard && m.Card != nil:
		e = cardEmbed(m.Card)
		if key == "" {
			key = m.Card.Key
		}
		if buttons == nil {
			buttons = bot.CardButtons(m.Card.Alert.ID)
		}
	case m.Kind == bot.MessageDigest && m.Digest != nil:
		e = digestEmbed(m)
	case m.Kind == bot.MessageList && m.List != nil:
		e = listEmbed(m)
	case m.Kind == bot.MessageText && len(m.Fields) == 0 && len(buttons) == 0 && key == "":
		text := escapeMarkdown(m.Text)
		if m.Title != "" {
			text = "**" + escapeMarkdown(m.Title) + "**\n" + text
		}
		r.Content = truncate(text, maxContent)
		if r.Content == "" {
			r.Content = "\u200b" // Discord refuses an empty message
		}
		return r
	default: // notice, prompt, text with fields or buttons
		e = &discordgo.MessageEmbed{
			Title:       truncate(escapeMarkdown(m.Title), maxEmbedTitle),
			Description: truncate(escapeMarkdown(m.Text), maxEmbedDesc),
			Color:       colorNeutral,
		}
		if m.Kind == bot.MessagePrompt {
			e.Color = colorPrompt
		}
		for _, f := range m.Fields {
			addField(e, escapeMarkdown(f.Label), escapeMarkdown(f.Value), false)
		}
		if e.Title == "" && e.Description == "" && len(e.Fields) == 0 {
			e.Description = "\u200b"
		}
	}
	if key != "" {
		e.Footer = &discordgo.MessageEmbedFooter{Text: truncate(key, maxFooter)}
	}
	e.Type = discordgo.EmbedTypeRich
	r.Components, r.dropped = renderButtons(buttons, e)
	fitEmbed(e)
	r.Embeds = []*discordgo.MessageEmbed{e}
	return r
}

func cardEmbed(c *bot.Card) *discordgo.MessageEmbed {
	a := c.Alert
	title := a.Title
	if title == "" {
		title = "Alert"
	}
	e := &discordgo.MessageEmbed{
		Title: truncate(bot.SeverityEmoji(a.Severity)+" "+a.Severity.String()+" · "+escapeMarkdown(title), maxEmbedTitle),
		URL:   safeURL(a.PortalURL),
		Color: severityColor(a.Severity),
	}
	tenant := c.TenantName
	if tenant == "" {
		tenant = a.TenantID
	}
	addField(e, "Tenant", escapeMarkdown(tenant), true)
	addField(e, "Device", escapeMarkdown(a.DeviceName), true)
	addField(e, "User", escapeMarkdown(a.UserName), true)
	addField(e, "Category", escapeMarkdown(a.Category), true)
	addField(e, "Detection source", escapeMarkdown(a.DetectionSource), true)
	addField(e, "Service source", escapeMarkdown(bot.ServiceSourceName(a.ServiceSource)), true)
	if !a.CreatedAt.IsZero() {
		addField(e, "Created", "<t:"+strconv.FormatInt(a.CreatedAt.Unix(), 10)+":f>", true)
	}
	status := string(a.Status)
	if status == "" {
		status = string(bot.StatusUnknown)
	}
	if a.AssignedTo != "" {
		status += " · " + escapeMarkdown(a.AssignedTo)
	}
	addField(e, "Status", status, true)
	if a.Classification != "" {
		class := string(a.Classification)
		if a.Determination != "" {
			class += " · " + a.Determination
		}
		addField(e, "Classification", escapeMarkdown(class), true)
	}
	if c.UpdatedBy != "" {
		addField(e, "Updated by", escapeMarkdown(c.UpdatedBy), true)
	}
	addField(e, "Alert ID", inlineCode(a.ID), false)
	if u := safeURL(a.PortalURL); u != "" {
		addField(e, "Portal", "[Open in Microsoft Defender]("+u+")", true)
	}
	if a.IncidentID != "" || a.IncidentURL != "" {
		label := "Incident"
		if a.IncidentID != "" {
			label = "Incident " + escapeMarkdown(a.IncidentID)
		}
		if u := safeURL(a.IncidentURL); u != "" {
			label = "[" + label + "](" + u + ")"
		}
		addField(e, "Incident", label, true)
	}
	return e
}

func digestEmbed(m bot.Message) *discordgo.MessageEmbed {
	d := m.Digest
	title := m.Title
	if title == "" {
		title = fmt.Sprintf("%d new alerts", d.Total)
	}
	top := bot.SeverityUnspecified
	var counts []string
	for s := bot.SeverityHigh; s >= bot.SeverityUnspecified; s-- {
		if n := d.BySeverity[s]; n > 0 {
			if top == bot.SeverityUnspecified {
				top = s
			}
			counts = append(counts, fmt.Sprintf("%s %s: %d", bot.SeverityEmoji(s), s, n))
		}
	}
	var b strings.Builder
	if m.Text != "" {
		b.WriteString(escapeMarkdown(m.Text))
		b.WriteString("\n\n")
	}
	if len(counts) > 0 {
		b.WriteString(strings.Join(counts, " · "))
		b.WriteString("\n")
	}
	if len(d.TopTitles) > 0 {
		b.WriteString("\n**Top titles**\n")
		for _, t := range d.TopTitles {
			b.WriteString("• " + escapeMarkdown(t) + "\n")
		}
	}
	b.WriteString("\nEach alert is listed in this message's thread.")
	e := &discordgo.MessageEmbed{
		Title:       truncate("⚠️ "+escapeMarkdown(title), maxEmbedTitle),
		Description: truncate(b.String(), maxEmbedDesc),
		Color:       severityColor(top),
	}
	if len(d.Tenants) > 0 {
		tenants := append([]string(nil), d.Tenants...)
		sort.Strings(tenants)
		for i := range tenants {
			tenants[i] = escapeMarkdown(tenants[i])
		}
		addField(e, "Tenants", strings.Join(tenants, ", "), false)
	}
	if !d.Since.IsZero() {
		addField(e, "Since", "<t:"+strconv.FormatInt(d.Since.Unix(), 10)+":f>", true)
	}
	for _, f := range m.Fields {
		addField(e, escapeMarkdown(f.Label), escapeMarkdown(f.Value), false)
	}
	return e
}

func listEmbed(m bot.Message) *discordgo.MessageEmbed {
	l := m.List
	title := m.Title
	var lines []string
	switch {
	case title == "":
		title = l.Header
	case l.Header != "":
		lines = append(lines, "**"+escapeMarkdown(l.Header)+"**")
	}
	if m.Text != "" {
		lines = append(lines, escapeMarkdown(m.Text), "")
	}
	if len(l.Rows) == 0 && l.Empty != "" {
		lines = append(lines, "_"+escapeMarkdown(l.Empty)+"_")
	}
	for _, row := range l.Rows {
		lines = append(lines, escapeMarkdown(row))
	}
	tail := ""
	if l.More != "" {
		tail = "… " + escapeMarkdown(l.More)
	}
	e := &discordgo.MessageEmbed{
		Title:       truncate(escapeMarkdown(title), maxEmbedTitle),
		Description: joinLines(lines, tail, maxEmbedDesc),
		Color:       colorNeutral,
	}
	if e.Description == "" {
		e.Description = "\u200b"
	}
	for _, f := range m.Fields {
		addField(e, escapeMarkdown(f.Label), escapeMarkdown(f.Value), false)
	}
	return e
}

// joinLines joins whole lines up to limit, then says how many were left out.
func joinLines(lines []string, tail string, limit int) string {
	var b strings.Builder
	for i, line := range lines {
		more := len(lines) - i
		note := fmt.Sprintf("… %d more lines", more)
		if utf16Len(b.String())+utf16Len(line)+1+utf16Len(note)+utf16Len(tail)+2 > limit {
			b.WriteString(note)
			if tail != "" {
				b.WriteString("\n" + tail)
			}
			return truncate(b.String(), limit)
		}
		b.WriteString(line)
		b.WriteString("\n")
	}
	if tail != "" {
		b.WriteString(tail)
	}
	return truncate(strings.TrimRight(b.String(), "\n"), limit)
}

// renderButtons lays buttons out in rows of five. A link button whose URL
// is too long for a button becomes a masked link in a field of e instead.
func renderButtons(buttons []bot.Button, e *discordgo.MessageEmbed) ([]discordgo.MessageComponent, int) {
	var rows []discordgo.MessageComponent
	var row []discordgo.MessageComponent
	dropped := 0
	for _, b := range buttons {
		label := b.Label
		if label == "" {
			label = b.ActionID
		}
		btn := discordgo.Button{Label: truncate(label, maxButtonLabel)}
		if b.URL != "" {
			u := safeURL(b.URL)
			switch {
			case u == "":
				dropped++
				continue
			case utf8.RuneCountInString(u) > maxButtonURL:
				if e != nil {
					addField(e, escapeMarkdown(label), "["+escapeMarkdown(label)+"]("+u+")", false)
				} else {
					dropped++
				}
				continue
			}
			btn.Style = discordgo.LinkButton
			btn.URL = u
		} else {
			id := customID(b.ActionID, b.Value)
			if id == "" {
				dropped++
				continue
			}
			btn.CustomID = id
			switch b.Style {
			case bot.ButtonPrimary:
				btn.Style = discordgo.PrimaryButton
			case bot.ButtonDanger:
				btn.Style = discordgo.DangerButton
			default:
				btn.Style = discordgo.SecondaryButton
			}
		}
		if len(row) == maxButtonsPerRow {
			rows = append(rows, discordgo.ActionsRow{Components: row})
			row = nil
		}
		if len(rows) == maxRows {
			dropped++
			continue
		}
		row = append(row, btn)
	}
	if len(row) > 0 && len(rows) < maxRows {
		rows = append(rows, discordgo.ActionsRow{Components: row})
	}
	return rows, dropped
}

// customID joins action and value as "<action>:<value>"; "" when the
// result does not fit Discord's 100 characters (a cut id would act on
// something else).
func customID(action, value string) string {
	if action == "" {
		return ""
	}
	id := action
	if value != "" {
		id += ":" + value
	}
	if utf8.RuneCountInString(id) > maxCustomID {
		return ""
	}
	return id
}

// splitCustomID is the inverse of customID: split at the first colon.
func splitCustomID(id string) (action, value string) {
	action, value, _ = strings.Cut(id, ":")
	return action, value
}

func addField(e *discordgo.MessageEmbed, name, value string, inline bool) {
	if strings.TrimSpace(value) == "" || len(e.Fields) >= maxFields {
		return
	}
	if strings.TrimSpace(name) == "" {
		name = "\u200b"
	}
	e.Fields = append(e.Fields, &discordgo.MessageEmbedField{
		Name:   truncate(name, maxFieldName),
		Value:  truncate(value, maxFieldValue),
		Inline: inline,
	})
}

// fitEmbed keeps the embed within Discord's 6000-character total: first
// the description shrinks, then fields go from the end.
func fitEmbed(e *discordgo.MessageEmbed) {
	total := func() int {
		n := utf16Len(e.Title) + utf16Len(e.Description)
		if e.Footer != nil {
			n += utf16Len(e.Footer.Text)
		}
		if e.Author != nil {
			n += utf16Len(e.Author.Name)
		}
		for _, f := range e.Fields {
			n += utf16Len(f.Name) + utf16Len(f.Value)
		}
		return n
	}
	over := total() - maxEmbedTotal
	if over <= 0 {
		return
	}
	if d := utf16Len(e.Description); d > 0 {
		keep := d - over
		if keep < 1 {
			keep = 1
		}
		e.Description = truncate(e.Description, keep)
	}
	// Then shorten the longest field values (free text: device, user,
	// evidence), so the short ones that matter most (status, alert id,
	// portal link) stay; dropping fields from the end is the last resort.
	for over = total() - maxEmbedTotal; over > 0; over = total() - maxEmbedTotal {
		longest := -1
		for i, f := range e.Fields {
			if l := utf16Len(f.Value); l > minFieldKeep && (longest < 0 || l > utf16Len(e.Fields[longest].Value)) {
				longest = i
			}
		}
		if longest < 0 {
			break
		}
		f := *e.Fields[longest]
		f.Value = truncate(f.Value, max(minFieldKeep, utf16Len(f.Value)-over))
		e.Fields[longest] = &f
	}
	for total() > maxEmbedTotal && len(e.Fields) > 0 {
		e.Fields = e.Fields[:len(e.Fields)-1]
	}
}

// minFieldKeep is how short fitEmbed cuts a field value before it drops
// fields.
const minFieldKeep = 64

// utf16Len counts as Discord does (JavaScript string length).
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

// truncate cuts s to at most limit UTF-16 units, ending in "…" when cut.
func truncate(s string, limit int) string {
	if utf16Len(s) <= limit {
		return s
	}
	if limit <= 0 {
		return ""
	}
	n := 0
	for i, r := range s {
		if n+utf16.RuneLen(r) > limit-1 {
			return s[:i] + "…"
		}
		n += utf16.RuneLen(r)
	}
	return s
}

var markdownEscaper = strings.NewReplacer(
	`\`, `\\`, "*", `\*`, "_", `\_`, "~", `\~`, "`", "\\`", "|", `\|`,
	">", `\>`, "<", `\<`, "[", `\[`, "]", `\]`, "#", `\#`,
)

// escapeMarkdown makes text from alerts and users show as typed: no
// formatting, masked links, mentions or timestamps. Inline code spans
// (`…` on one line) are kept: nothing inside them is interpreted, and
// messages use them for ids.
func escapeMarkdown(s string) string {
	var b strings.Builder
	for {
		open := strings.IndexByte(s, '`')
		if open < 0 {
			break
		}
		end := strings.IndexByte(s[open+1:], '`')
		if end <= 0 || strings.ContainsAny(s[open+1:open+1+end], "\n") {
			// No closing backtick on this line: escape this one and go on.
			b.WriteString(markdownEscaper.Replace(s[:open+1]))
			s = s[open+1:]
			continue
		}
		b.WriteString(markdownEscaper.Replace(s[:open]))
		b.WriteString(s[open : open+end+2])
		s = s[open+end+2:]
	}
	b.WriteString(markdownEscaper.Replace(s))
	return b.String()
}

// inlineCode shows s whole in inline code; backticks cannot be escaped
// there, so they are replaced.
func inlineCode(s string) string {
	if s == "" {
		return ""
	}
	return "`" + strings.ReplaceAll(s, "`", "'") + "`"
}

// safeURL returns u when it is an absolute http(s) URL (Discord refuses
// others), with parentheses encoded so it can sit in a masked link.
func safeURL(u string) string {
	u = strings.TrimSpace(u)
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
		return ""
	}
	return strings.NewReplacer("(", "%28", ")", "%29", " ", "%20").Replace(u)
}
