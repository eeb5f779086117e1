package bot

import "time"

// MessageKind selects how a renderer draws a Message.
type MessageKind string

const (
	MessageText   MessageKind = "text"   // a plain reply or thread line
	MessageCard   MessageKind = "card"   // an alert card
	MessageDigest MessageKind = "digest" // a storm digest card
	MessageList   MessageKind = "list"   // a list answer (alerts, tenants, rules, status, audit)
	MessagePrompt MessageKind = "prompt" // an access/confirm prompt with buttons
	MessageNotice MessageKind = "notice" // a public notice (state change, failure)
)

// Message is a platform-neutral message; each chat adapter renders it.
// It is JSON-serialisable so that notices and prompts can be stored.
type Message struct {
	Kind    MessageKind `json:"kind"`
	Text    string      `json:"text,omitempty"` // body; also the plain-text fallback
	Title   string      `json:"title,omitempty"`
	Card    *Card       `json:"card,omitempty"`
	Digest  *Digest     `json:"digest,omitempty"`
	List    *List       `json:"list,omitempty"`
	Fields  []Field     `json:"fields,omitempty"`
	Buttons []Button    `json:"buttons,omitempty"`
	// Ephemeral replies are seen only by the asker.
	Ephemeral bool `json:"ephemeral,omitempty"`
}

// Card is an alert card's content.
type Card struct {
	Alert      Alert  `json:"-"`
	TenantName string `json:"tenant_name"`
	// UpdatedBy names who last changed the alert from chat, if anyone.
	UpdatedBy string `json:"updated_by,omitempty"`
	// Key is the delivery key, carried for crash-safe lookup.
	Key string `json:"key,omitempty"`
}

// Digest summarises a storm of alerts in one channel.
type Digest struct {
	Total      int              `json:"total"`
	BySeverity map[Severity]int `json:"by_severity"`
	TopTitles  []string         `json:"top_titles"`
	Tenants    []string         `json:"tenants"` // tenant names involved
	Since      time.Time        `json:"since"`
}

// List is a list answer. Rows already carry the ids follow-ups need.
type List struct {
	Header string   `json:"header,omitempty"`
	Rows   []string `json:"rows"`
	More   string   `json:"more,omitempty"` // "12 more", "1,000+ more"
	Empty  string   `json:"empty,omitempty"`
}

// Field is a label/value pair (show, prompts).
type Field struct {
	Label string `json:"label"`
	Value string `json:"value"`
}

// ButtonStyle hints at colour.
type ButtonStyle string

const (
	ButtonDefault ButtonStyle = ""
	ButtonPrimary ButtonStyle = "primary"
	ButtonDanger  ButtonStyle = "danger"
)

// Button is a clickable action (ActionID + Value) or a link (URL).
type Button struct {
	Label    string      `json:"label"`
	ActionID string      `json:"action_id,omitempty"`
	Value    string      `json:"value,omitempty"`
	URL      string      `json:"url,omitempty"`
	Style    ButtonStyle `json:"style,omitempty"`
}

// Action ids (DESIGN §4.5). Discord custom ids are "<action>:<value>".
const (
	ActionAck        = "alert_ack"
	ActionResolve    = "alert_resolve"
	ActionResolveAs  = "alert_resolve_as"
	ActionDecline    = "access_decline"
	ActionConfirm    = "access_confirm"
	ActionLinkConfrm = "link_confirm"
	ActionGrant      = "access_grant" // link button; clicks are only acknowledged
)

// CardButtons returns the buttons of an alert card.
func CardButtons(alertID string) []Button {
	return []Button{
		{Label: "Acknowledge", ActionID: ActionAck, Value: alertID, Style: ButtonPrimary},
		{Label: "Resolve", ActionID: ActionResolve, Value: alertID},
	}
}

// SeverityEmoji gives the emoji used on cards and lines.
func SeverityEmoji(s Severity) string {
	switch s {
	case SeverityHigh:
		return "🔴"
	case SeverityMedium:
		return "🟠"
	case SeverityLow:
		return "🟡"
	case SeverityInformational:
		return "🔵"
	}
	return "⚪"
}
