package config

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/msspbot/msspbot/bot"
	"github.com/robfig/cron/v3"
)

var (
	clouds       = []string{"public", "gcc", "gcchigh", "dod"}
	apis         = []string{"mde", "graph"}
	slackModes   = []string{"socket", "http"}
	discordModes = []string{"gateway", "http"}
	snowflakeRE  = regexp.MustCompile(`^[0-9]{1,20}$`)
	hexKeyRE     = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
)

// validate adds a problem for every missing or wrong key. Messages name
// keys and quote only non-secret values.
func (c *Config) validate(ps *problems) {
	if strings.TrimSpace(c.Database) == "" {
		ps.add("database", "required")
	}
	positive(ps, "retention.alerts", c.Retention.Alerts)
	positive(ps, "retention.audit", c.Retention.Audit)

	// http
	if c.HTTP.Listen == "" {
		ps.add("http.listen", "required")
	} else if _, port, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
		ps.addf("http.listen", "invalid address %q (want host:port, e.g. \":8080\")", c.HTTP.Listen)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		ps.addf("http.listen", "invalid port %q", port)
	}
	if c.HTTP.PublicURL != "" {
		if u, msg := checkURL(c.HTTP.PublicURL); msg != "" {
			ps.add("http.public_url", msg)
		} else if u.Scheme != "https" && !loopback(u.Hostname()) {
			ps.add("http.public_url", "must be https unless loopback")
		} else if u.RawQuery != "" || u.Fragment != "" {
			ps.add("http.public_url", "must not have a query or fragment")
		}
	}

	// azure
	oneOf(ps, "azure.cloud", c.Azure.Cloud, clouds)
	switch {
	case c.Azure.ClientID == "":
		ps.add("azure.client_id", "required")
	case !bot.ValidTenantID(c.Azure.ClientID):
		ps.add("azure.client_id", "must be a GUID (the application (client) id)")
	}
	switch {
	case c.Azure.ClientSecret != "" && c.Azure.CertificateFile != "":
		ps.add("azure.certificate_file", "set either a client secret or a certificate, not both")
	case c.Azure.ClientSecret == "" && c.Azure.ClientSecretFile == "" && c.Azure.CertificateFile == "":
		ps.add("azure.client_secret", "required (or client_secret_file, or certificate_file)")
	}
	baseURL(ps, "azure.authority_host", c.Azure.AuthorityHost, false)
	positive(ps, "azure.consent_ttl", c.Azure.ConsentTTL)

	// defender
	oneOf(ps, "defender.api", c.Defender.API, apis)
	baseURL(ps, "defender.base_url", c.Defender.BaseURL, true)
	if err := checkSchedule(c.Defender.Schedule); err != nil {
		ps.addf("defender.schedule", "invalid cron spec %q: %v", c.Defender.Schedule, err)
	}
	if c.Defender.Concurrency < 1 {
		ps.add("defender.concurrency", "must be at least 1")
	}
	positive(ps, "defender.lookback", c.Defender.Lookback)
	if c.Defender.Overlap < 0 {
		ps.add("defender.overlap", "must not be negative")
	}

	// slack
	oneOf(ps, "slack.mode", c.Slack.Mode, slackModes)
	optionalURL(ps, "slack.api_url", c.Slack.APIURL)
	if c.Slack.Enabled {
		if c.Slack.BotToken == "" {
			ps.add("slack.bot_token", "required when slack.enabled")
		}
		switch c.Slack.Mode {
		case "socket":
			if c.Slack.AppToken == "" {
				ps.add("slack.app_token", "required when slack.mode is socket")
			}
		case "http":
			if c.Slack.SigningSecret == "" {
				ps.add("slack.signing_secret", "required when slack.mode is http")
			}
		}
	}
	if !strings.HasPrefix(c.Slack.Command, "/") || len(c.Slack.Command) < 2 || strings.ContainsAny(c.Slack.Command, " \t") {
		ps.addf("slack.command", "must be a slash command such as \"/mssp\", not %q", c.Slack.Command)
	}

	// discord
	oneOf(ps, "discord.mode", c.Discord.Mode, discordModes)
	optionalURL(ps, "discord.api_url", c.Discord.APIURL)
	if c.Discord.Enabled {
		if c.Discord.Token == "" {
			ps.add("discord.token", "required when discord.enabled")
		}
		if c.Discord.ApplicationID == "" {
			ps.add("discord.application_id", "required when discord.enabled")
		}
		if c.Discord.Mode == "http" && c.Discord.PublicKey == "" {
			ps.add("discord.public_key", "required when discord.mode is http")
		}
	}
	if c.Discord.ApplicationID != "" && !snowflakeRE.MatchString(c.Discord.ApplicationID) {
		ps.addf("discord.application_id", "%q is not a Discord id", c.Discord.ApplicationID)
	}
	if c.Discord.PublicKey != "" && !hexKeyRE.MatchString(c.Discord.PublicKey) {
		ps.add("discord.public_key", "must be 64 hex characters (the application's public key)")
	}
	for i, g := range c.Discord.GuildIDs {
		if !snowflakeRE.MatchString(g) {
			ps.addf(fmt.Sprintf("discord.guild_ids[%d]", i), "%q is not a Discord id", g)
		}
	}
	if !c.Slack.Enabled && !c.Discord.Enabled {
		ps.add("slack.enabled", "no chat platform enabled: set slack.enabled or discord.enabled")
	}

	if c.Notify.StormThreshold < 1 {
		ps.add("notify.storm_threshold", "must be at least 1")
	}

	// soc
	soc := make(map[bot.ChannelRef]bool)
	for i, ch := range c.SOC.Channels {
		c.checkRef(ps, fmt.Sprintf("soc.channels[%d]", i), string(ch))
		soc[ch] = true
	}
	for i, u := range c.SOC.Users {
		c.checkRef(ps, fmt.Sprintf("soc.users[%d]", i), u)
	}
	for _, u := range slices.Sorted(maps.Keys(c.SOC.Identities)) {
		id := c.SOC.Identities[u]
		c.checkRef(ps, "soc.identities["+strconv.Quote(u)+"]", u)
		if strings.TrimSpace(id) == "" {
			ps.add("soc.identities["+strconv.Quote(u)+"]", "empty identity")
		}
	}

	// tenants
	seen := make(map[string]int)
	owner := make(map[bot.ChannelRef]int)
	for i, t := range c.Tenants {
		p := fmt.Sprintf("tenants[%d]", i)
		switch {
		case t.ID == "":
			ps.add(p+".id", "required")
		case !bot.ValidTenantID(t.ID):
			ps.addf(p+".id", "%q is not a GUID", t.ID)
		default:
			if j, dup := seen[t.ID]; dup {
				ps.addf(p+".id", "%s is also tenants[%d]", t.ID, j)
			}
			seen[t.ID] = i
		}
		if t.Name == "" {
			ps.add(p+".name", "required")
		}
		for k, ch := range t.Channels {
			cp := fmt.Sprintf("%s.channels[%d]", p, k)
			if !c.checkRef(ps, cp, string(ch)) {
				continue
			}
			if soc[ch] {
				ps.addf(cp, "%s is a SOC channel; a customer channel belongs to one tenant", ch)
			}
			if j, dup := owner[ch]; dup && j != i {
				ps.addf(cp, "%s is already linked to tenants[%d]", ch, j)
			}
			owner[ch] = i
		}
	}
}

// checkRef checks a "platform:id" reference to an enabled platform.
func (c *Config) checkRef(ps *problems, path, ref string) bool {
	r := bot.ChannelRef(ref)
	if !r.Valid() || strings.ContainsAny(ref, " \t") {
		ps.addf(path, "%q is not platform:id (e.g. \"slack:C024BE91L\")", ref)
		return false
	}
	switch r.Platform() {
	case "slack":
		if !c.Slack.Enabled {
			ps.addf(path, "%q: slack is not enabled", ref)
			return false
		}
	case "discord":
		if !c.Discord.Enabled {
			ps.addf(path, "%q: discord is not enabled", ref)
			return false
		}
	default:
		ps.addf(path, "%q: unknown platform %q (slack or discord)", ref, r.Platform())
		return false
	}
	return true
}

// checkSchedule parses spec as cron does. robfig/cron panics on some bad
// specs (e.g. "TZ=UTC" with nothing after it), so a panic is an error too.
func checkSchedule(spec string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed spec")
		}
	}()
	_, err = cron.ParseStandard(spec)
	return err
}

func positive(ps *problems, path string, d Duration) {
	if d <= 0 {
		ps.add(path, "must be a positive duration")
	}
}

func oneOf(ps *problems, path, v string, allowed []string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	ps.addf(path, "must be one of %s, not %q", strings.Join(allowed, ", "), v)
}

func optionalURL(ps *problems, path, raw string) {
	if raw == "" {
		return
	}
	if _, msg := checkURL(raw); msg != "" {
		ps.add(path, msg)
	}
}

// baseURL checks an API or sign-in host override as the Defender client
// will use it: scheme://host[:port][/path], https (http only on a loopback
// host when loopbackHTTP, for local fakes), no query, fragment or
// credentials.
func baseURL(ps *problems, path, raw string, loopbackHTTP bool) {
	if raw == "" {
		return
	}
	u, msg := checkURL(raw)
	switch {
	case msg != "":
		ps.add(path, msg)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		ps.add(path, "must be a base URL without a query or fragment")
	case u.Scheme == "http" && (!loopbackHTTP || !loopback(u.Hostname())):
		ps.add(path, "must be https")
	}
}

// checkURL wants an absolute http(s) URL without credentials. The URL is
// not quoted back: it could carry a secret.
func checkURL(raw string) (*url.URL, string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, "not a valid URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, "must be an http or https URL"
	case u.Host == "":
		return nil, "must include a host"
	case u.User != nil:
		return nil, "must not include credentials"
	}
	return u, ""
}

func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
