package config

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

const clientID = "11111111-2222-3333-4444-555555555555"

// minimal is the smallest valid file; secrets carry a SECRET marker so
// tests can check they never leak.
const minimal = `
azure:
  client_id: "11111111-2222-3333-4444-555555555555"
  client_secret: "SECRET-azure"
slack:
  enabled: true
  bot_token: "xoxb-SECRET-bot"
  app_token: "xapp-SECRET-app"
`

// load runs Load over an in-memory file system and environment.
func load(t *testing.T, yaml string, env map[string]string, files map[string]string) (*Config, error) {
	t.Helper()
	fsys := map[string]string{"/etc/msspbot.yaml": yaml}
	for k, v := range files {
		fsys[k] = v
	}
	readFile := func(name string) ([]byte, error) {
		s, ok := fsys[name]
		if !ok {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		return []byte(s), nil
	}
	getenv := func(k string) string { return env[k] }
	return Load("/etc/msspbot.yaml", getenv, readFile)
}

func mustLoad(t *testing.T, yaml string, env map[string]string, files map[string]string) *Config {
	t.Helper()
	c, err := load(t, yaml, env, files)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

// problemsOf returns the problems of a failed Load as "path: message".
func problemsOf(t *testing.T, err error) []string {
	t.Helper()
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("want *config.Error, got %v", err)
	}
	var out []string
	for _, p := range ce.Problems {
		out = append(out, p.String())
	}
	return out
}

func TestDefaults(t *testing.T) {
	c := mustLoad(t, minimal, nil, nil)
	want := Default()
	want.Azure.ClientID = clientID
	want.Azure.ClientSecret = "SECRET-azure"
	want.Slack.Enabled = true
	want.Slack.BotToken = "xoxb-SECRET-bot"
	want.Slack.AppToken = "xapp-SECRET-app"
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", c, want)
	}
	// The documented defaults, spelled out once more against Default().
	checks := []struct {
		name      string
		got, want any
	}{
		{"database", c.Database, "/var/lib/msspbot/msspbot.db"},
		{"retention.alerts", c.Retention.Alerts.Duration(), 180 * 24 * time.Hour},
		{"retention.audit", c.Retention.Audit.Duration(), 400 * 24 * time.Hour},
		{"http.listen", c.HTTP.Listen, ":8080"},
		{"http.public_url", c.HTTP.PublicURL, ""},
		{"azure.cloud", c.Azure.Cloud, "public"},
		{"azure.authority_host", c.Azure.AuthorityHost, ""},
		{"azure.consent_ttl", c.Azure.ConsentTTL.Duration(), 24 * time.Hour},
		{"defender.api", c.Defender.API, "mde"},
		{"defender.base_url", c.Defender.BaseURL, ""},
		{"defender.schedule", c.Defender.Schedule, "@every 1m"},
		{"defender.concurrency", c.Defender.Concurrency, 8},
		{"defender.lookback", c.Defender.Lookback.Duration(), 24 * time.Hour},
		{"defender.overlap", c.Defender.Overlap.Duration(), 5 * time.Minute},
		{"defender.write_back", c.Defender.WriteBack, true},
		{"slack.mode", c.Slack.Mode, "socket"},
		{"slack.command", c.Slack.Command, "/mssp"},
		{"slack.api_url", c.Slack.APIURL, ""},
		{"discord.enabled", c.Discord.Enabled, false},
		{"discord.mode", c.Discord.Mode, "gateway"},
		{"discord.guild_ids", len(c.Discord.GuildIDs), 0},
		{"notify.storm_threshold", c.Notify.StormThreshold, 20},
		{"soc.customers_can_ack", c.SOC.CustomersCanAck, true},
		{"tenants", len(c.Tenants), 0},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
	if Default().Slack.Enabled {
		t.Error("slack.enabled must default to false")
	}
}

// The example of DESIGN §4.2, with a real client id and the secrets filled.
const designExample = `
database: /var/lib/msspbot/msspbot.db
retention:
  alerts: 180d
  audit: 400d
http:
  listen: ":8080"
  public_url: "https://msspbot.example.com/"
azure:
  cloud: public
  client_id: "11111111-2222-3333-4444-555555555555"
  client_secret: "SECRET-azure"
  authority_host: ""
  consent_ttl: 24h
defender:
  api: mde
  base_url: ""
  schedule: "@every 1m"
  concurrency: 8
  lookback: 24h
  overlap: 5m
  write_back: true
slack:
  enabled: true
  mode: socket
  bot_token: "xoxb-SECRET"
  app_token: "xapp-SECRET"
  signing_secret: ""
  api_url: ""
  command: /mssp
discord:
  enabled: true
  mode: gateway
  token: "SECRET-discord"
  application_id: "1180000000000000001"
  public_key: ""
  guild_ids: ["1180000000000000002"]
  api_url: ""
notify:
  storm_threshold: 20
soc:
  channels: ["slack:C0SOC"]
  users: ["slack:U012ANALYST", "discord:123456789"]
  identities: {"slack:U012ANALYST": "analyst1@mssp.example"}
  customers_can_ack: true
tenants:
  - id: "6F1C3E2A-0B7D-4C1E-9A55-1D2B3C4D5E6F"
    name: Contoso
    channels: ["slack:C0CONTOSO"]
`

func TestDesignExample(t *testing.T) {
	c := mustLoad(t, designExample, nil, nil)
	if c.HTTP.PublicURL != "https://msspbot.example.com" {
		t.Errorf("public_url = %q, want the trailing slash trimmed", c.HTTP.PublicURL)
	}
	if got := c.Tenants[0].ID; got != "6f1c3e2a-0b7d-4c1e-9a55-1d2b3c4d5e6f" {
		t.Errorf("tenant id = %q, want lower case", got)
	}
	if c.SOC.Identities["slack:U012ANALYST"] != "analyst1@mssp.example" {
		t.Errorf("identities = %v", c.SOC.Identities)
	}
	if !reflect.DeepEqual(c.Discord.GuildIDs, []string{"1180000000000000002"}) {
		t.Errorf("guild_ids = %v", c.Discord.GuildIDs)
	}

	b := c.Bot()
	if len(b.SOCChannels) != 1 || b.SOCChannels[0] != "slack:C0SOC" || b.AppID != clientID ||
		b.StormThreshold != 20 || b.Concurrency != 8 || b.Lookback != 24*time.Hour ||
		b.Overlap != 5*time.Minute || !b.WriteBack || !b.CustomersCanAck ||
		b.PublicURL != "https://msspbot.example.com" || b.ConsentTTL != 24*time.Hour ||
		len(b.SOCUsers) != 2 || b.Identities["slack:U012ANALYST"] != "analyst1@mssp.example" {
		t.Errorf("Bot() = %+v", b)
	}
	ct := c.ConfigTenants()
	want := []bot.ConfigTenant{{ID: "6f1c3e2a-0b7d-4c1e-9a55-1d2b3c4d5e6f", Name: "Contoso", Channels: []bot.ChannelRef{"slack:C0CONTOSO"}}}
	if !reflect.DeepEqual(ct, want) {
		t.Errorf("ConfigTenants() = %+v", ct)
	}
}

func TestEmptyFileIsAllDefaults(t *testing.T) {
	_, err := load(t, "", nil, nil)
	got := strings.Join(problemsOf(t, err), "\n")
	for _, want := range []string{"azure.client_id: required", "azure.client_secret: required", "slack.enabled: no chat platform enabled"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
}

func TestUnknownKeys(t *testing.T) {
	_, err := load(t, minimal+"\nfoo: 1\nnotify:\n  storm_treshold: 3\n", nil, nil)
	got := problemsOf(t, err)
	want := []string{"foo: unknown key (line 10)", "notify.storm_treshold: unknown key (line 12)"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("problems = %q, want %q", got, want)
	}
	// In a list of tenants too.
	_, err = load(t, minimal+`tenants:
  - id: "6f1c3e2a-0b7d-4c1e-9a55-1d2b3c4d5e6f"
    name: A
    channel: ["slack:C1"]
`, nil, nil)
	if got := problemsOf(t, err); len(got) != 1 || !strings.HasPrefix(got[0], "tenants[0].channel: unknown key") {
		t.Fatalf("problems = %q", got)
	}
}

func TestTypeErrorsNameTheKeyAndHideTheValue(t *testing.T) {
	y := minimal + `
defender:
  concurrency: "xoxb-SECRET-wrongplace"
  write_back: maybe
retention:
  alerts: 3x
http: "SECRET-http"
`
	_, err := load(t, y, nil, nil)
	got := problemsOf(t, err)
	want := []string{
		"defender.concurrency: expected an integer, got a string (line 11)",
		"defender.write_back: expected true or false, got a string (line 12)",
		`retention.alerts: invalid duration "3x" (e.g. 90s, 5m, 24h, 180d) (line 14)`,
		"http: expected a mapping, got a string (line 15)",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("problems =\n%q\nwant\n%q", got, want)
	}
	if strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("error leaks a value: %v", err)
	}
}

func TestSyntaxError(t *testing.T) {
	_, err := load(t, "azure: [\n", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "config: parse /etc/msspbot.yaml") {
		t.Fatalf("err = %v", err)
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load("/nope.yaml", func(string) string { return "" }, os.ReadFile)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want ErrNotExist wrapped", err)
	}
	if _, err := Load("", nil, nil); err == nil {
		t.Fatal("empty path accepted")
	}
}

// TestValidation checks each rule on its own: the mutation must produce
// exactly the expected problem.
func TestValidation(t *testing.T) {
	const slackHTTP = `
azure:
  client_id: "11111111-2222-3333-4444-555555555555"
  client_secret: "SECRET-azure"
slack:
  enabled: true
  mode: http
  bot_token: "xoxb-SECRET-bot"
`
	const discordHTTP = `
azure:
  client_id: "11111111-2222-3333-4444-555555555555"
  client_secret: "SECRET-azure"
discord:
  enabled: true
  mode: http
  token: "SECRET-discord"
  application_id: "1180000000000000001"
`
	tests := []struct {
		name  string
		yaml  string
		env   map[string]string
		files map[string]string
		want  string
	}{
		{"client id missing", strings.Replace(minimal, `client_id: "11111111-2222-3333-4444-555555555555"`, "", 1), nil, nil,
			"azure.client_id: required"},
		{"client id not a guid", minimal, map[string]string{"MSSPBOT_AZURE_CLIENT_ID": "my-app"}, nil,
			"azure.client_id: must be a GUID (the application (client) id)"},
		{"no credential", strings.Replace(minimal, `client_secret: "SECRET-azure"`, "", 1), nil, nil,
			"azure.client_secret: required (or client_secret_file, or certificate_file)"},
		{"bad schedule", minimal, map[string]string{"MSSPBOT_DEFENDER_SCHEDULE": "every minute"}, nil,
			`defender.schedule: invalid cron spec "every minute": expected exactly 5 fields, found 2: [every minute]`},
		{"bad descriptor", minimal, map[string]string{"MSSPBOT_DEFENDER_SCHEDULE": "@every soon"}, nil,
			`defender.schedule: invalid cron spec "@every soon": failed to parse duration @every soon: time: invalid duration "soon"`},
		{"schedule that panics cron", minimal, map[string]string{"MSSPBOT_DEFENDER_SCHEDULE": "TZ=UTC"}, nil,
			`defender.schedule: invalid cron spec "TZ=UTC": malformed spec`},
		{"slack http without signing secret", slackHTTP, nil, nil,
			"slack.signing_secret: required when slack.mode is http"},
		{"slack socket without app token", strings.Replace(minimal, `app_token: "xapp-SECRET-app"`, "", 1), nil, nil,
			"slack.app_token: required when slack.mode is socket"},
		{"slack without bot token", strings.Replace(minimal, `bot_token: "xoxb-SECRET-bot"`, "", 1), nil, nil,
			"slack.bot_token: required when slack.enabled"},
		{"discord http without public key", discordHTTP, nil, nil,
			"discord.public_key: required when discord.mode is http"},
		{"discord public key not hex", discordHTTP, map[string]string{"MSSPBOT_DISCORD_PUBLIC_KEY": "zz"}, nil,
			"discord.public_key: must be 64 hex characters (the application's public key)"},
		{"discord without token", strings.Replace(discordHTTP, `token: "SECRET-discord"`, "", 1),
			map[string]string{"MSSPBOT_DISCORD_PUBLIC_KEY": strings.Repeat("ab", 32)}, nil,
			"discord.token: required when discord.enabled"},
		{"discord without application id", strings.Replace(discordHTTP, `application_id: "1180000000000000001"`, "", 1),
			map[string]string{"MSSPBOT_DISCORD_PUBLIC_KEY": strings.Repeat("ab", 32)}, nil,
			"discord.application_id: required when discord.enabled"},
		{"discord guild id", discordHTTP, map[string]string{"MSSPBOT_DISCORD_PUBLIC_KEY": strings.Repeat("AB", 32), "MSSPBOT_DISCORD_GUILD_IDS": "1,general"}, nil,
			`discord.guild_ids[1]: "general" is not a Discord id`},
		{"public url http", minimal, map[string]string{"MSSPBOT_HTTP_PUBLIC_URL": "http://msspbot.example.com"}, nil,
			"http.public_url: must be https unless loopback"},
		{"public url not a url", minimal, map[string]string{"MSSPBOT_HTTP_PUBLIC_URL": "msspbot.example.com"}, nil,
			"http.public_url: must be an http or https URL"},
		{"public url with query", minimal, map[string]string{"MSSPBOT_HTTP_PUBLIC_URL": "https://x.example/?a=1"}, nil,
			"http.public_url: must not have a query or fragment"},
		{"public url with credentials", minimal, map[string]string{"MSSPBOT_HTTP_PUBLIC_URL": "https://user:SECRET@x.example"}, nil,
			"http.public_url: must not include credentials"},
		{"listen", minimal, map[string]string{"MSSPBOT_HTTP_LISTEN": "8080"}, nil,
			`http.listen: invalid address "8080" (want host:port, e.g. ":8080")`},
		{"listen port", minimal, map[string]string{"MSSPBOT_HTTP_LISTEN": ":99999"}, nil,
			`http.listen: invalid port "99999"`},
		{"cloud", minimal, map[string]string{"MSSPBOT_AZURE_CLOUD": "china"}, nil,
			`azure.cloud: must be one of public, gcc, gcchigh, dod, not "china"`},
		{"authority host http", minimal, map[string]string{"MSSPBOT_AZURE_AUTHORITY_HOST": "http://login.example"}, nil,
			"azure.authority_host: must be https"},
		{"api", minimal, map[string]string{"MSSPBOT_DEFENDER_API": "siem"}, nil,
			`defender.api: must be one of mde, graph, not "siem"`},
		{"base url", minimal, map[string]string{"MSSPBOT_DEFENDER_BASE_URL": "ftp://x"}, nil,
			"defender.base_url: must be an http or https URL"},
		{"slack mode", minimal, map[string]string{"MSSPBOT_SLACK_MODE": "rtm"}, nil,
			`slack.mode: must be one of socket, http, not "rtm"`},
		{"slack command", minimal, map[string]string{"MSSPBOT_SLACK_COMMAND": "mssp"}, nil,
			`slack.command: must be a slash command such as "/mssp", not "mssp"`},
		{"slack api url", minimal, map[string]string{"MSSPBOT_SLACK_API_URL": "/api/"}, nil,
			"slack.api_url: must be an http or https URL"},
		{"discord mode", minimal, map[string]string{"MSSPBOT_DISCORD_MODE": "webhook"}, nil,
			`discord.mode: must be one of gateway, http, not "webhook"`},
		{"concurrency", minimal, map[string]string{"MSSPBOT_DEFENDER_CONCURRENCY": "0"}, nil,
			"defender.concurrency: must be at least 1"},
		{"storm threshold", minimal + "notify:\n  storm_threshold: 0\n", nil, nil,
			"notify.storm_threshold: must be at least 1"},
		{"lookback", minimal, map[string]string{"MSSPBOT_DEFENDER_LOOKBACK": "0s"}, nil,
			"defender.lookback: must be a positive duration"},
		{"overlap", minimal, map[string]string{"MSSPBOT_DEFENDER_OVERLAP": "-1m"}, nil,
			"defender.overlap: must not be negative"},
		{"retention", minimal, map[string]string{"MSSPBOT_RETENTION_AUDIT": "0d"}, nil,
			"retention.audit: must be a positive duration"},
		{"consent ttl", minimal, map[string]string{"MSSPBOT_AZURE_CONSENT_TTL": "0s"}, nil,
			"azure.consent_ttl: must be a positive duration"},
		{"database", minimal + "database: \"\"\n", nil, nil,
			"database: required"},
		{"channel ref", minimal, map[string]string{"MSSPBOT_SOC_CHANNELS": "C0SOC"}, nil,
			`soc.channels[0]: "C0SOC" is not platform:id (e.g. "slack:C024BE91L")`},
		{"channel platform", minimal, map[string]string{"MSSPBOT_SOC_CHANNELS": "teams:19abc"}, nil,
			`soc.channels[0]: "teams:19abc": unknown platform "teams" (slack or discord)`},
		{"channel platform disabled", minimal, map[string]string{"MSSPBOT_SOC_CHANNELS": "discord:1"}, nil,
			`soc.channels[0]: "discord:1": discord is not enabled`},
		{"user ref", minimal, map[string]string{"MSSPBOT_SOC_USERS": "slack:U1,U2"}, nil,
			`soc.users[1]: "U2" is not platform:id (e.g. "slack:C024BE91L")`},
		{"identity ref", minimal + "soc:\n  identities: {\"U1\": \"a@b\"}\n", nil, nil,
			`soc.identities["U1"]: "U1" is not platform:id (e.g. "slack:C024BE91L")`},
		{"identity empty", minimal + "soc:\n  identities: {\"slack:U1\": \" \"}\n", nil, nil,
			`soc.identities["slack:U1"]: empty identity`},
		{"no platform", strings.Replace(minimal, "enabled: true", "enabled: false", 1), nil, nil,
			"slack.enabled: no chat platform enabled: set slack.enabled or discord.enabled"},
		{"tenant id", minimal + "tenants:\n  - {id: contoso, name: Contoso}\n", nil, nil,
			`tenants[0].id: "contoso" is not a GUID`},
		{"tenant id missing", minimal + "tenants:\n  - {name: Contoso}\n", nil, nil,
			`tenants[0].id: required`},
		{"tenant name", minimal + "tenants:\n  - {id: 6f1c3e2a-0b7d-4c1e-9a55-1d2b3c4d5e6f}\n", nil, nil,
			`tenants[0].name: required`},
		{"tenant duplicate", minimal + "tenants:\n  - {id: 6f1c3e2a-0b7d-4c1e-9a55-1d2b3c4d5e6f, name: A}\n  - {id: 6F1C3E2A-0B7D-4C1E-9A55-1D2B3C4D5E6F, name: B}\n", nil, nil,
			`tenants[1].id: 6f1c3e2a-0b7d-4c1e-9a55-1d2b3c4d5e6f is also tenants[0]`},
		{"tenant channel ref", minimal + "tenants:\n  - {id: 6f1c3e2a-0b7d-4c1e-9a55-1d2b3c4d5e6f, name: A, channels: [\"slack\"]}\n", nil, nil,
			`tenants[0].channels[0]: "slack" is not platform:id (e.g. "slack:C024BE91L")`},
		{"tenant channel shared", minimal + "tenants:\n  - {id: 6f1c3e2a-0b7d-4c1e-9a55-1d2b3c4d5e6f, name: A, channels: [\"slack:C1\"]}\n  - {id: 7f1c3e2a-0b7d-4c1e-9a55-1d2b3c4d5e6f, name: B, channels: [\"slack:C1\"]}\n", nil, nil,
			`tenants[1].channels[0]: slack:C1 is already linked to tenants[0]`},
		{"tenant channel is soc", minimal + "soc:\n  channels: [\"slack:C0SOC\"]\ntenants:\n  - {id: 6f1c3e2a-0b7d-4c1e-9a55-1d2b3c4d5e6f, name: A, channels: [\"slack:C0SOC\"]}\n", nil, nil,
			`tenants[0].channels[0]: slack:C0SOC is a SOC channel; a customer channel belongs to one tenant`},
		{"secret and file", minimal, map[string]string{"MSSPBOT_SLACK_BOT_TOKEN_FILE": "/run/secrets/bot"}, map[string]string{"/run/secrets/bot": "xoxb-SECRET-file"},
			"slack.bot_token: set either bot_token or bot_token_file, not both"},
		{"unreadable file", strings.Replace(minimal, `client_secret: "SECRET-azure"`, `client_secret_file: /run/secrets/azure`, 1), nil, nil,
			`azure.client_secret_file: cannot read "/run/secrets/azure": file does not exist`},
		{"empty file", strings.Replace(minimal, `client_secret: "SECRET-azure"`, `client_secret_file: /run/secrets/azure`, 1), nil, map[string]string{"/run/secrets/azure": " \n"},
			`azure.client_secret_file: "/run/secrets/azure" is empty`},
		{"secret and certificate", minimal, map[string]string{"MSSPBOT_AZURE_CERTIFICATE_FILE": "/c.pem"}, map[string]string{"/c.pem": testPEM},
			"azure.certificate_file: set either a client secret or a certificate, not both"},
		{"certificate unreadable", strings.Replace(minimal, `client_secret: "SECRET-azure"`, `certificate_file: /c.pem`, 1), nil, nil,
			`azure.certificate_file: cannot read "/c.pem": file does not exist`},
		{"certificate without key", strings.Replace(minimal, `client_secret: "SECRET-azure"`, `certificate_file: /c.pem`, 1), nil, map[string]string{"/c.pem": certOnlyPEM},
			`azure.certificate_file: "/c.pem" must hold a PEM CERTIFICATE and its PRIVATE KEY`},
		{"env bool", minimal, map[string]string{"MSSPBOT_DEFENDER_WRITE_BACK": "SECRET-yes"}, nil,
			"defender.write_back: MSSPBOT_DEFENDER_WRITE_BACK is not a boolean (true or false)"},
		{"env int", minimal, map[string]string{"MSSPBOT_NOTIFY_STORM_THRESHOLD": "SECRET-many"}, nil,
			"notify.storm_threshold: MSSPBOT_NOTIFY_STORM_THRESHOLD is not an integer"},
		{"env duration", minimal, map[string]string{"MSSPBOT_AZURE_CONSENT_TTL": "SECRET-long"}, nil,
			"azure.consent_ttl: MSSPBOT_AZURE_CONSENT_TTL is not a duration (e.g. 90s, 5m, 24h, 180d)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.yaml, tt.env, tt.files)
			if err == nil {
				t.Fatalf("Load succeeded, want %q", tt.want)
			}
			got := problemsOf(t, err)
			if len(got) != 1 || got[0] != tt.want {
				t.Fatalf("problems = %q\nwant [%q]", got, tt.want)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Fatalf("error leaks a secret: %v", err)
			}
		})
	}
}

func TestEveryProblemInOneError(t *testing.T) {
	y := `
http:
  public_url: "http://example.com"
azure:
  cloud: mars
  client_secret: "SECRET-1"
  client_secret_file: /s
defender:
  api: splunk
  schedule: "* * *"
  concurrency: 0
slack:
  enabled: true
  mode: http
  bot_token: "SECRET-2"
discord:
  enabled: true
  mode: http
  token: "SECRET-3"
  application_id: "1"
notify:
  storm_threshold: -1
soc:
  channels: ["nope"]
tenants:
  - id: "not-a-guid"
    name: X
`
	_, err := load(t, y, nil, map[string]string{"/s": "SECRET-4"})
	got := problemsOf(t, err)
	for _, want := range []string{
		"azure.client_secret: set either client_secret or client_secret_file, not both",
		"http.public_url: must be https unless loopback",
		`azure.cloud: must be one of public, gcc, gcchigh, dod, not "mars"`,
		"azure.client_id: required",
		`defender.api: must be one of mde, graph, not "splunk"`,
		`defender.schedule: invalid cron spec "* * *"`,
		"defender.concurrency: must be at least 1",
		"slack.signing_secret: required when slack.mode is http",
		"discord.public_key: required when discord.mode is http",
		"notify.storm_threshold: must be at least 1",
		`soc.channels[0]: "nope" is not platform:id`,
		`tenants[0].id: "not-a-guid" is not a GUID`,
	} {
		found := false
		for _, g := range got {
			if strings.HasPrefix(g, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("missing %q", want)
		}
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "config: /etc/msspbot.yaml: ") || strings.Count(msg, "; ") != len(got)-1 {
		t.Errorf("error text = %q", msg)
	}
	if strings.Contains(msg, "SECRET") {
		t.Errorf("error leaks a secret: %v", msg)
	}
}

func TestEnvOverrides(t *testing.T) {
	env := map[string]string{
		"MSSPBOT_DATABASE":                  "/data/x.db",
		"MSSPBOT_SLACK_BOT_TOKEN":           "xoxb-from-env",
		"MSSPBOT_AZURE_CLIENT_SECRET":       "",
		"MSSPBOT_SOC_CHANNELS":              "slack:C1, discord:2 ,,",
		"MSSPBOT_SOC_USERS":                 "slack:U1",
		"MSSPBOT_DISCORD_ENABLED":           "true",
		"MSSPBOT_DISCORD_TOKEN_FILE":        "/run/secrets/discord",
		"MSSPBOT_DISCORD_APPLICATION_ID":    "42",
		"MSSPBOT_DISCORD_GUILD_IDS":         "100,200",
		"MSSPBOT_DEFENDER_WRITE_BACK":       "false",
		"MSSPBOT_DEFENDER_CONCURRENCY":      "3",
		"MSSPBOT_RETENTION_ALERTS":          "30d",
		"MSSPBOT_AZURE_CONSENT_TTL":         "1d12h",
		"MSSPBOT_SOC_CUSTOMERS_CAN_ACK":     "false",
		"MSSPBOT_HTTP_PUBLIC_URL":           "http://127.0.0.1:8080/",
		"MSSPBOT_SLACK_SIGNING_SECRET_FILE": "/run/secrets/signing",
	}
	files := map[string]string{"/run/secrets/discord": "  SECRET-discord\n", "/run/secrets/signing": "SECRET-sign\n"}
	c := mustLoad(t, minimal, env, files)
	if c.Database != "/data/x.db" || c.Slack.BotToken != "xoxb-from-env" {
		t.Errorf("scalars: database=%q bot_token=%q", c.Database, c.Slack.BotToken)
	}
	if c.Azure.ClientSecret != "SECRET-azure" {
		t.Error("an empty env value must not clear the file's value")
	}
	if !reflect.DeepEqual(c.SOC.Channels, []bot.ChannelRef{"slack:C1", "discord:2"}) {
		t.Errorf("soc.channels = %q", c.SOC.Channels)
	}
	if !reflect.DeepEqual(c.Discord.GuildIDs, []string{"100", "200"}) {
		t.Errorf("guild_ids = %q", c.Discord.GuildIDs)
	}
	if c.Discord.Token != "SECRET-discord" || c.Slack.SigningSecret != "SECRET-sign" {
		t.Errorf("_file twins not read and trimmed: %q %q", c.Discord.Token, c.Slack.SigningSecret)
	}
	if c.Defender.WriteBack || c.Defender.Concurrency != 3 || c.SOC.CustomersCanAck {
		t.Errorf("bool/int overrides: %+v %+v", c.Defender, c.SOC)
	}
	if c.Retention.Alerts.Duration() != 30*24*time.Hour || c.Azure.ConsentTTL.Duration() != 36*time.Hour {
		t.Errorf("durations: %v %v", c.Retention.Alerts, c.Azure.ConsentTTL)
	}
	if c.HTTP.PublicURL != "http://127.0.0.1:8080" {
		t.Errorf("loopback http public_url = %q", c.HTTP.PublicURL)
	}
}

// TestEveryKeyFromEnv drives each key of the table through applyEnv, so a
// new field is covered without editing this test.
func TestEveryKeyFromEnv(t *testing.T) {
	values := map[string]string{"string": "v", "bool": "true", "int": "7", "duration": "2d", "list": "a, b,,c"}
	env := make(map[string]string)
	for _, k := range Keys() {
		env[k.Env] = values[k.Kind]
	}
	c := Default()
	var ps problems
	applyEnv(c, func(k string) string { return env[k] }, &ps)
	if len(ps) != 0 {
		t.Fatalf("problems: %v", ps)
	}
	v := reflect.ValueOf(c).Elem()
	for _, k := range Keys() {
		f := v.FieldByIndex(k.index)
		var ok bool
		switch k.Kind {
		case "string":
			ok = f.String() == "v"
		case "bool":
			ok = f.Bool()
		case "int":
			ok = f.Int() == 7
		case "duration":
			ok = time.Duration(f.Int()) == 48*time.Hour
		case "list":
			ok = f.Len() == 3 && f.Index(2).String() == "c"
		}
		if !ok {
			t.Errorf("%s (%s) not set from %s: %v", k.Path, k.Kind, k.Env, f)
		}
	}
}

func TestKeysTable(t *testing.T) {
	byEnv := make(map[string]Key)
	for _, k := range Keys() {
		byEnv[k.Env] = k
	}
	for env, path := range map[string]string{
		"MSSPBOT_DATABASE":                  "database",
		"MSSPBOT_SLACK_BOT_TOKEN":           "slack.bot_token",
		"MSSPBOT_AZURE_CLIENT_SECRET_FILE":  "azure.client_secret_file",
		"MSSPBOT_SOC_CHANNELS":              "soc.channels",
		"MSSPBOT_DISCORD_GUILD_IDS":         "discord.guild_ids",
		"MSSPBOT_SOC_CUSTOMERS_CAN_ACK":     "soc.customers_can_ack",
		"MSSPBOT_SLACK_SIGNING_SECRET_FILE": "slack.signing_secret_file",
	} {
		if byEnv[env].Path != path {
			t.Errorf("%s -> %q, want %q", env, byEnv[env].Path, path)
		}
	}
	for _, env := range []string{"MSSPBOT_TENANTS", "MSSPBOT_SOC_IDENTITIES"} {
		if _, ok := byEnv[env]; ok {
			t.Errorf("%s must be YAML only", env)
		}
	}
	var secrets []string
	for _, k := range Keys() {
		if k.Secret {
			secrets = append(secrets, k.Path)
		}
	}
	want := []string{"azure.client_secret", "slack.bot_token", "slack.app_token", "slack.signing_secret", "discord.token"}
	if !reflect.DeepEqual(secrets, want) {
		t.Errorf("secrets = %q, want %q", secrets, want)
	}
	if n := len(Keys()); n != 41 {
		t.Errorf("%d keys; update docs/configuration.md and this count when keys change", n)
	}
}

func TestRedacted(t *testing.T) {
	c := mustLoad(t, designExample, nil, nil)
	c.Slack.SigningSecret = "SECRET-sign"
	out := c.Redacted()
	if strings.Contains(out, "SECRET") {
		t.Fatalf("Redacted leaks a secret:\n%s", out)
	}
	for _, want := range []string{"client_secret: '[redacted]'", "bot_token: '[redacted]'", "signing_secret: '[redacted]'", "alerts: 180d", "client_id: " + clientID, "app_token: '[redacted]'"} {
		if !strings.Contains(out, want) {
			t.Errorf("Redacted lacks %q:\n%s", want, out)
		}
	}
	if c.Slack.SigningSecret != "SECRET-sign" {
		t.Error("Redacted changed the config")
	}
}

func TestPath(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "MSSPBOT_CONFIG" {
				return v
			}
			return ""
		}
	}
	if p, err := Path("/a.yaml", env("/b.yaml")); err != nil || p != "/a.yaml" {
		t.Errorf("flag first: %q %v", p, err)
	}
	if p, err := Path("", env("/b.yaml")); err != nil || p != "/b.yaml" {
		t.Errorf("env: %q %v", p, err)
	}
	if _, err := Path("", env("")); err == nil || !strings.Contains(err.Error(), "MSSPBOT_CONFIG") {
		t.Errorf("neither: %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"180d": 180 * day, "1d12h": 36 * time.Hour, "90s": 90 * time.Second, " 5m ": 5 * time.Minute, "0d": 0,
	} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "1.5d", "3 days", "99999999999999d", "1d-1h", "1dx"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) succeeded", in)
		}
	}
	if s := Duration(400 * day).String(); s != "400d" {
		t.Errorf("String = %q", s)
	}
	if s := Duration(90 * time.Minute).String(); s != "1h30m0s" {
		t.Errorf("String = %q", s)
	}
}

// TestDocsListEveryKey keeps the configuration references (README and
// docs/configuration.md) in step with the table.
func TestDocsListEveryKey(t *testing.T) {
	for _, path := range []string{"../docs/configuration.md", "../README.md"} {
		doc, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range Keys() {
			if !strings.Contains(string(doc), "`"+k.Env+"`") {
				t.Errorf("%s does not mention `%s`", path, k.Env)
			}
			if !strings.Contains(string(doc), "`"+k.Path+"`") {
				t.Errorf("%s does not mention `%s`", path, k.Path)
			}
		}
	}
}

// testPEM is a certificate and its RSA key (PKCS#8), generated once.
var testPEM = func() string {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "msspbot test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})) +
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
}()

const certOnlyPEM = `-----BEGIN CERTIFICATE-----
MIIBszCCAVmgAwIBAgIUU0VDUkVU
-----END CERTIFICATE-----
`

func TestCertificateFile(t *testing.T) {
	y := strings.Replace(minimal, `client_secret: "SECRET-azure"`, `certificate_file: /c.pem`, 1)
	c := mustLoad(t, y, nil, map[string]string{"/c.pem": testPEM})
	if string(c.Azure.Certificate) != testPEM {
		t.Errorf("certificate not read")
	}
	if strings.Contains(c.Redacted(), "PRIVATE KEY") {
		t.Error("Redacted shows the certificate")
	}
}
