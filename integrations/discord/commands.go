package discord

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"

	"github.com/bwmarrin/discordgo"
)

// CommandName is the application command msspbot registers.
const CommandName = "mssp"

// BotPermissions are the channel permissions the bot needs: View Channels,
// Send Messages, Send Messages in Threads, Create Public Threads, Embed
// Links, Read Message History (Find) and Use Application Commands.
const BotPermissions int64 = discordgo.PermissionViewChannel |
	discordgo.PermissionSendMessages |
	discordgo.PermissionSendMessagesInThreads |
	discordgo.PermissionCreatePublicThreads |
	discordgo.PermissionEmbedLinks |
	discordgo.PermissionReadMessageHistory |
	discordgo.PermissionUseApplicationCommands

// InstallURL is the link that adds the bot to a guild with the scopes and
// permissions it needs.
func InstallURL(appID string) string {
	v := url.Values{}
	v.Set("client_id", appID)
	v.Set("scope", "bot applications.commands")
	v.Set("permissions", strconv.FormatInt(BotPermissions, 10))
	return "https://discord.com/oauth2/authorize?" + v.Encode()
}

// Option names (DESIGN §4.4: lowercase snake_case).
const (
	optStatus         = "status"
	optMinSeverity    = "min_severity"
	optTenant         = "tenant"
	optLimit          = "limit"
	optAlert          = "alert"
	optComment        = "comment"
	optClassification = "classification"
	optDetermination  = "determination"
	optText           = "text"
	optCategory       = "category"
	optSource         = "source"
	optGroup          = "group"
	optTitle          = "title"
	optRuleID         = "rule_id"
	optTenantID       = "tenant_id"
	optName           = "name"
)

func choices(values ...string) []*discordgo.ApplicationCommandOptionChoice {
	out := make([]*discordgo.ApplicationCommandOptionChoice, len(values))
	for i, v := range values {
		out[i] = &discordgo.ApplicationCommandOptionChoice{Name: v, Value: v}
	}
	return out
}

func floatp(f float64) *float64 { return &f }

func str(name, desc string, required bool) *discordgo.ApplicationCommandOption {
	return &discordgo.ApplicationCommandOption{Type: discordgo.ApplicationCommandOptionString, Name: name, Description: desc, Required: required}
}

func alertOpt() *discordgo.ApplicationCommandOption {
	o := str(optAlert, "Alert id (TENANT_ID/ALERT_ID in a SOC channel when ambiguous)", true)
	o.Autocomplete = true
	return o
}

func limitOpt(desc string) *discordgo.ApplicationCommandOption {
	return &discordgo.ApplicationCommandOption{
		Type: discordgo.ApplicationCommandOptionInteger, Name: optLimit, Description: desc,
		MinValue: floatp(1), MaxValue: 100,
	}
}

func severityOpt(desc string) *discordgo.ApplicationCommandOption {
	o := str(optMinSeverity, desc, false)
	o.Choices = choices("informational", "low", "medium", "high")
	return o
}

func sub(name, desc string, opts ...*discordgo.ApplicationCommandOption) *discordgo.ApplicationCommandOption {
	return &discordgo.ApplicationCommandOption{Type: discordgo.ApplicationCommandOptionSubCommand, Name: name, Description: desc, Options: opts}
}

// Commands returns the /mssp command with the subcommands of DESIGN §4.4.
func Commands() []*discordgo.ApplicationCommand {
	status := str(optStatus, "Which alerts (default: open)", false)
	status.Choices = choices("new", "inprogress", "resolved", "open", "all")
	class := str(optClassification, "How to classify the alert", false)
	class.Choices = choices("truepositive", "falsepositive", "informational")
	guildOnly := []discordgo.InteractionContextType{discordgo.InteractionContextGuild}
	dm := false
	return []*discordgo.ApplicationCommand{{
		Type:         discordgo.ChatApplicationCommand,
		Name:         CommandName,
		Description:  "Microsoft Defender alerts of your tenants",
		DMPermission: &dm,
		Contexts:     &guildOnly,
		Options: []*discordgo.ApplicationCommandOption{
			sub("help", "Show what msspbot can do"),
			sub("alerts", "List alerts",
				status,
				severityOpt("Lowest severity to list"),
				str(optTenant, "Tenant id (SOC channels only)", false),
				limitOpt("How many (1-100, default 20)")),
			sub("show", "Show one alert", alertOpt()),
			sub("ack", "Acknowledge an alert (in progress, assigned to you)",
				alertOpt(), str(optComment, "Comment for Defender", false)),
			sub("resolve", "Resolve an alert",
				alertOpt(), class,
				str(optDetermination, "Determination, e.g. Malware, Phishing, Other (default Other)", false),
				str(optComment, "Comment for Defender", false)),
			sub("comment", "Add a comment to an alert",
				alertOpt(), str(optText, "The comment", true)),
			sub("reopen", "Set an alert back to new", alertOpt()),
			{
				Type: discordgo.ApplicationCommandOptionSubCommandGroup, Name: "rules",
				Description: "Notification rules of this channel",
				Options: []*discordgo.ApplicationCommandOption{
					sub("list", "List this channel's rules"),
					sub("add", "Add a notification rule",
						severityOpt("Lowest severity to post"),
						str(optCategory, "Alert category, e.g. Malware", false),
						str(optSource, "Detection or service source", false),
						str(optGroup, "Device group", false),
						str(optTitle, "Text the title contains", false),
						str(optTenant, "Tenant id (SOC channels only)", false)),
					sub("remove", "Remove a rule of this channel",
						&discordgo.ApplicationCommandOption{
							Type: discordgo.ApplicationCommandOptionInteger, Name: optRuleID,
							Description: "Rule id as listed by /mssp rules list", Required: true, MinValue: floatp(1),
						}),
				},
			},
			sub("onboard", "Ask a customer tenant for access (customer channel)",
				str(optTenantID, "Entra tenant id (GUID)", true),
				str(optName, "Customer name", true)),
			sub("offboard", "Stop watching this channel's tenant"),
			sub("link", "Link this channel to a tenant", str(optTenantID, "Entra tenant id (GUID)", true)),
			sub("unlink", "Unlink this channel from its tenant"),
			sub("tenants", "List tenants"),
			sub("status", "Fetching and delivery status"),
			sub("audit", "Recent actions", limitOpt("How many (1-100, default 20)")),
		},
	}}
}

// Register installs /mssp in each guild with a bulk overwrite, which is
// idempotent: running it at every start leaves one up-to-date command.
// With no guild ids the command is registered globally.
func Register(ctx context.Context, s *discordgo.Session, appID string, guildIDs []string) error {
	if appID == "" {
		return errors.New("discord: register commands: empty application id")
	}
	cmds := Commands()
	if len(guildIDs) == 0 {
		guildIDs = []string{""}
	}
	var errs []error
	for _, g := range guildIDs {
		if _, err := s.ApplicationCommandBulkOverwrite(appID, g, cmds, discordgo.WithContext(ctx)); err != nil {
			where := "globally"
			if g != "" {
				where = "in guild " + g
			}
			errs = append(errs, fmt.Errorf("discord: register commands %s: %w", where, err))
		}
	}
	return errors.Join(errs...)
}
