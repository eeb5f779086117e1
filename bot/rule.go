package bot

import (
	"strings"
	"time"
	"unicode"
)

// Rule is a notification rule of one channel. All set fields must match
// (AND); a channel's rules combine with OR. Text matches are case-insensitive.
type Rule struct {
	ID          int64
	Channel     ChannelRef
	MinSeverity Severity // SeverityUnspecified: any
	Category    string
	Source      string // detection source or service source
	Group       string // device group
	Title       string // substring of the title
	TenantID    string // SOC channels only
	CreatedBy   string
	CreatedAt   time.Time
}

// ChannelRules is a channel that may receive an alert, with its rules.
type ChannelRules struct {
	Channel ChannelRef
	SOC     bool
	Rules   []Rule
}

// Matches reports whether every set field of r matches a.
func (r Rule) Matches(a Alert) bool {
	if r.MinSeverity != SeverityUnspecified && a.Severity < r.MinSeverity {
		return false
	}
	if r.TenantID != "" && !strings.EqualFold(r.TenantID, a.TenantID) {
		return false
	}
	if r.Category != "" && !strings.EqualFold(r.Category, a.Category) {
		return false
	}
	if r.Source != "" && !strings.EqualFold(r.Source, a.DetectionSource) && !strings.EqualFold(r.Source, a.ServiceSource) {
		return false
	}
	if r.Group != "" && !matchGroup(r.Group, a) {
		return false
	}
	if r.Title != "" && !strings.Contains(strings.ToLower(a.Title), strings.ToLower(r.Title)) {
		return false
	}
	return true
}

func matchGroup(group string, a Alert) bool {
	if strings.EqualFold(group, a.DeviceGroup) {
		return true
	}
	for _, e := range a.Evidence {
		if e.Group != "" && strings.EqualFold(group, e.Group) {
			return true
		}
	}
	return false
}

// Default rules when a channel has none (DESIGN §4.4).
var (
	DefaultCustomerRule = Rule{MinSeverity: SeverityMedium}
	DefaultSOCRule      = Rule{MinSeverity: SeverityHigh}
)

// Wants reports whether the channel's rules (or the default when it has
// none) select the alert: OR across rules.
func (c ChannelRules) Wants(a Alert) bool {
	if len(c.Rules) == 0 {
		if c.SOC {
			return DefaultSOCRule.Matches(a)
		}
		return DefaultCustomerRule.Matches(a)
	}
	for _, r := range c.Rules {
		if !c.SOC && r.TenantID != "" {
			continue // tenant= is for SOC channels only
		}
		if r.Matches(a) {
			return true
		}
	}
	return false
}

// String renders a rule in command syntax, e.g. "severity>=high category=Malware".
func (r Rule) String() string {
	var parts []string
	if r.MinSeverity != SeverityUnspecified {
		parts = append(parts, "severity>="+strings.ToLower(r.MinSeverity.String()))
	}
	if r.Category != "" {
		parts = append(parts, "category="+quoteIfSpaced(r.Category))
	}
	if r.Source != "" {
		parts = append(parts, "source="+quoteIfSpaced(r.Source))
	}
	if r.Group != "" {
		parts = append(parts, "group="+quoteIfSpaced(r.Group))
	}
	if r.Title != "" {
		parts = append(parts, "title~\""+r.Title+"\"")
	}
	if r.TenantID != "" {
		parts = append(parts, "tenant="+r.TenantID)
	}
	if len(parts) == 0 {
		return "everything"
	}
	return strings.Join(parts, " ")
}

// quoteIfSpaced keeps a rendered rule typeable: values with spaces are quoted.
func quoteIfSpaced(v string) string {
	if strings.ContainsFunc(v, unicode.IsSpace) {
		return "\"" + v + "\""
	}
	return v
}
