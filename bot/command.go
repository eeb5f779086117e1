package bot

// Origin says whether a command was typed or clicked.
type Origin string

const (
	OriginTyped Origin = "typed"
	OriginClick Origin = "click"
)

// Command is one typed command or button click from any platform. Adapters
// build it; one executor and one authorization table handle it.
type Command struct {
	Platform string     // "slack", "discord", "console"
	Channel  ChannelRef // where it happened (a Discord thread: its parent)
	User     string     // platform user id
	UserName string     // display name, optional
	Email    string     // the platform's e-mail for the user, optional
	Origin   Origin

	// Typed: the text after the slash command, already unescaped by the
	// adapter (Slack: UnescapeSlack). Name and Args are filled by the parser.
	Text string

	// Clicked: the action id, the button's value and the message clicked.
	Action    string
	Value     string
	MessageID string
}

// UserRef is the user as "platform:id", the form used in soc.users.
func (c Command) UserRef() string { return c.Platform + ":" + c.User }

// Request is a parsed command (DESIGN §4.4). Name is the canonical
// subcommand: help, alerts, show, ack, resolve, comment, reopen, rules,
// "rules add", "rules remove", onboard, offboard, link, unlink, tenants,
// status, audit.
type Request struct {
	Name string

	// alerts
	StatusFilter string   // new|inprogress|resolved|open|all; "" = open
	MinSeverity  Severity // alerts, rules add: severity>=LEVEL (Unspecified: any)
	TenantID     string   // tenant=…, link, onboard (normalised)
	Limit        int      // limit N; 0 = default

	// show, ack, resolve, comment, reopen
	AlertRef       string // ALERT or TENANT_ID/ALERT_ID as typed
	Comment        string // ack/resolve comment…, comment text…
	Classification Classification
	Determination  string // canonical; resolve defaults to Other in the executor

	// rules add / remove
	Rule   Rule // MinSeverity, Category, Source, Group, Title, TenantID set
	RuleID int64

	// onboard
	TenantName string
}
