// Package config loads and validates msspbot's configuration file
// (DESIGN §4.2): YAML with unknown keys refused, every scalar key
// overridable from MSSPBOT_* environment variables, secrets readable from
// …_file twins, and one error naming every problem.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/msspbot/msspbot/bot"
	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration file. Field tags are the contract:
// `yaml` names the key (and, through it, the environment variable);
// `secret` marks values that never appear in logs or errors.
type Config struct {
	Database  string    `yaml:"database"`
	Retention Retention `yaml:"retention"`
	HTTP      HTTP      `yaml:"http"`
	Azure     Azure     `yaml:"azure"`
	Defender  Defender  `yaml:"defender"`
	Slack     Slack     `yaml:"slack"`
	Discord   Discord   `yaml:"discord"`
	Notify    Notify    `yaml:"notify"`
	SOC       SOC       `yaml:"soc"`
	Tenants   []Tenant  `yaml:"tenants"`
}

// Retention is how long history is kept before the daily purge.
type Retention struct {
	Alerts Duration `yaml:"alerts"` // resolved alerts, their deliveries and outbox rows
	Audit  Duration `yaml:"audit"`
}

// HTTP is the listener of /healthz, /metrics, the consent callback and the
// platforms' HTTP modes.
type HTTP struct {
	Listen    string `yaml:"listen"`
	PublicURL string `yaml:"public_url"` // no trailing slash after Load; "" disables onboard
}

// Azure is the MSSP's multi-tenant Entra app.
type Azure struct {
	Cloud            string   `yaml:"cloud"` // public | gcc | gcchigh | dod
	ClientID         string   `yaml:"client_id"`
	ClientSecret     string   `yaml:"client_secret" secret:"true"`
	ClientSecretFile string   `yaml:"client_secret_file"`
	CertificateFile  string   `yaml:"certificate_file"` // PEM: certificate + RSA key
	AuthorityHost    string   `yaml:"authority_host"`
	ConsentTTL       Duration `yaml:"consent_ttl"`

	// Certificate is the PEM read from CertificateFile at load.
	Certificate []byte `yaml:"-" secret:"true"`
}

// Defender is the alert API and the fetch schedule.
type Defender struct {
	API         string   `yaml:"api"` // mde | graph
	BaseURL     string   `yaml:"base_url"`
	Schedule    string   `yaml:"schedule"` // robfig/cron standard spec or descriptor
	Concurrency int      `yaml:"concurrency"`
	Lookback    Duration `yaml:"lookback"`
	Overlap     Duration `yaml:"overlap"`
	WriteBack   bool     `yaml:"write_back"`
}

// Slack is the Slack app.
type Slack struct {
	Enabled           bool   `yaml:"enabled"`
	Mode              string `yaml:"mode"` // socket | http
	BotToken          string `yaml:"bot_token" secret:"true"`
	BotTokenFile      string `yaml:"bot_token_file"`
	AppToken          string `yaml:"app_token" secret:"true"`
	AppTokenFile      string `yaml:"app_token_file"`
	SigningSecret     string `yaml:"signing_secret" secret:"true"`
	SigningSecretFile string `yaml:"signing_secret_file"`
	APIURL            string `yaml:"api_url"`
	Command           string `yaml:"command"`
}

// Discord is the Discord application.
type Discord struct {
	Enabled       bool     `yaml:"enabled"`
	Mode          string   `yaml:"mode"` // gateway | http
	Token         string   `yaml:"token" secret:"true"`
	TokenFile     string   `yaml:"token_file"`
	ApplicationID string   `yaml:"application_id"`
	PublicKey     string   `yaml:"public_key"` // hex Ed25519 key of the application
	GuildIDs      []string `yaml:"guild_ids"`
	APIURL        string   `yaml:"api_url"`
}

// Notify tunes notifications.
type Notify struct {
	StormThreshold int `yaml:"storm_threshold"`
}

// SOC names the MSSP's own channels and analysts.
type SOC struct {
	Channels        []bot.ChannelRef  `yaml:"channels"`
	Users           []string          `yaml:"users"`      // "platform:user"
	Identities      map[string]string `yaml:"identities"` // "platform:user" -> e-mail; YAML only
	CustomersCanAck bool              `yaml:"customers_can_ack"`
}

// Tenant is a tenant consented outside chat; YAML only.
type Tenant struct {
	ID       string           `yaml:"id"`
	Name     string           `yaml:"name"`
	Channels []bot.ChannelRef `yaml:"channels"`
}

// Default returns the configuration with every default of DESIGN §4.2.
func Default() *Config {
	return &Config{
		Database:  "/var/lib/msspbot/msspbot.db",
		Retention: Retention{Alerts: Duration(180 * day), Audit: Duration(400 * day)},
		HTTP:      HTTP{Listen: ":8080"},
		Azure:     Azure{Cloud: "public", ConsentTTL: Duration(24 * time.Hour)},
		Defender: Defender{
			API:         "mde",
			Schedule:    "@every 1m",
			Concurrency: 8,
			Lookback:    Duration(24 * time.Hour),
			Overlap:     Duration(5 * time.Minute),
			WriteBack:   true,
		},
		Slack:   Slack{Mode: "socket", Command: "/mssp"},
		Discord: Discord{Mode: "gateway"},
		Notify:  Notify{StormThreshold: 20},
		SOC:     SOC{CustomersCanAck: true},
	}
}

// EnvConfig names the configuration file when --config is not given.
const EnvConfig = "MSSPBOT_CONFIG"

// Path returns the configuration file to load: the flag's value, else
// $MSSPBOT_CONFIG.
func Path(flagValue string, getenv func(string) string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if p := getenv(EnvConfig); p != "" {
		return p, nil
	}
	return "", errors.New("config: no configuration file: pass --config FILE or set " + EnvConfig)
}

// LoadFile loads path with the process environment and file system.
func LoadFile(path string) (*Config, error) {
	return Load(path, os.Getenv, os.ReadFile)
}

// Load reads the YAML file at path over the defaults, applies environment
// overrides, reads the …_file secrets, and validates the result. A returned
// *Error lists every problem found; secrets never appear in it.
func Load(path string, getenv func(string) string, readFile func(string) ([]byte, error)) (*Config, error) {
	if path == "" {
		return nil, errors.New("config: no configuration file given")
	}
	data, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	c := Default()
	var ps problems
	if err := decode(data, c, &ps); err != nil {
		return nil, fmt.Errorf("config: parse %s: %w", path, err)
	}
	applyEnv(c, getenv, &ps)
	readSecretFiles(c, readFile, &ps)
	c.normalize()
	c.validate(&ps)
	if len(ps) > 0 {
		return nil, &Error{File: path, Problems: ps}
	}
	return c, nil
}

// decode unmarshals YAML with unknown keys refused. Type errors become
// problems named by key path; syntax errors are returned.
func decode(data []byte, c *Config, ps *problems) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(c)
	if err == nil || errors.Is(err, io.EOF) { // an empty file is all defaults
		return nil
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return err
	}
	lines := keyPaths(&root)
	for _, msg := range te.Errors {
		*ps = append(*ps, describeTypeError(msg, lines))
	}
	return nil
}

// Bot returns the bot's behaviour settings. ConsentURL and Permissions
// depend on the cloud and API tables of the Defender adapter and are left
// for the wiring to fill.
func (c *Config) Bot() bot.Config {
	ids := make(map[string]string, len(c.SOC.Identities))
	for k, v := range c.SOC.Identities {
		ids[k] = v
	}
	return bot.Config{
		SOCChannels:     append([]bot.ChannelRef(nil), c.SOC.Channels...),
		SOCUsers:        append([]string(nil), c.SOC.Users...),
		Identities:      ids,
		CustomersCanAck: c.SOC.CustomersCanAck,
		StormThreshold:  c.Notify.StormThreshold,
		Concurrency:     c.Defender.Concurrency,
		Lookback:        c.Defender.Lookback.Duration(),
		Overlap:         c.Defender.Overlap.Duration(),
		WriteBack:       c.Defender.WriteBack,
		PublicURL:       c.HTTP.PublicURL,
		AppID:           c.Azure.ClientID,
		ConsentTTL:      c.Azure.ConsentTTL.Duration(),
	}
}

// ConfigTenants returns the tenants declared in the file, for
// bot.TenantStore.ApplyConfigTenants.
func (c *Config) ConfigTenants() []bot.ConfigTenant {
	out := make([]bot.ConfigTenant, 0, len(c.Tenants))
	for _, t := range c.Tenants {
		out = append(out, bot.ConfigTenant{
			ID:       t.ID,
			Name:     t.Name,
			Channels: append([]bot.ChannelRef(nil), t.Channels...),
		})
	}
	return out
}

// Redacted returns the configuration as YAML with every secret that is set
// replaced by "[redacted]", for logging at start-up.
func (c *Config) Redacted() string {
	cp := *c
	v := reflect.ValueOf(&cp).Elem()
	for _, k := range secretFields {
		f := v.FieldByIndex(k.index)
		if f.Kind() == reflect.String && f.String() != "" {
			f.SetString("[redacted]")
		}
	}
	out, err := yaml.Marshal(&cp)
	if err != nil { // cannot happen with these types; never fall back to %v
		return "config: " + err.Error()
	}
	return string(out)
}

// normalize trims what is compared later: URL slashes, tenant id case.
func (c *Config) normalize() {
	c.HTTP.PublicURL = strings.TrimRight(strings.TrimSpace(c.HTTP.PublicURL), "/")
	c.Azure.AuthorityHost = strings.TrimRight(strings.TrimSpace(c.Azure.AuthorityHost), "/")
	c.Azure.Cloud = strings.ToLower(strings.TrimSpace(c.Azure.Cloud))
	c.Defender.API = strings.ToLower(strings.TrimSpace(c.Defender.API))
	c.Slack.Mode = strings.ToLower(strings.TrimSpace(c.Slack.Mode))
	c.Discord.Mode = strings.ToLower(strings.TrimSpace(c.Discord.Mode))
	c.Azure.ClientID = strings.TrimSpace(c.Azure.ClientID)
	for i := range c.Tenants {
		c.Tenants[i].ID = bot.NormalizeTenantID(c.Tenants[i].ID)
		c.Tenants[i].Name = strings.TrimSpace(c.Tenants[i].Name)
	}
}
