package bot

import (
	"strings"
	"time"
)

// Severity is ordered: a higher value is more severe.
type Severity int

const (
	SeverityUnspecified Severity = iota
	SeverityInformational
	SeverityLow
	SeverityMedium
	SeverityHigh
)

var severityNames = [...]string{"Unspecified", "Informational", "Low", "Medium", "High"}

func (s Severity) String() string {
	if s < 0 || int(s) >= len(severityNames) {
		return "Unspecified"
	}
	return severityNames[s]
}

// ParseSeverity accepts MDE and Graph spellings in any case
// ("High", "high", "UnSpecified", "unknownFutureValue" -> Unspecified).
func ParseSeverity(s string) (Severity, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "informational":
		return SeverityInformational, true
	case "low":
		return SeverityLow, true
	case "medium":
		return SeverityMedium, true
	case "high":
		return SeverityHigh, true
	case "unspecified", "unknown", "unknownfuturevalue", "":
		return SeverityUnspecified, true
	}
	return SeverityUnspecified, false
}

// AlertStatus uses the MDE spelling; Graph clients convert.
type AlertStatus string

const (
	StatusUnknown    AlertStatus = "Unknown"
	StatusNew        AlertStatus = "New"
	StatusInProgress AlertStatus = "InProgress"
	StatusResolved   AlertStatus = "Resolved"
)

// ParseStatus accepts MDE ("InProgress") and Graph ("inProgress") spellings.
func ParseStatus(s string) AlertStatus {
	switch strings.ToLower(s) {
	case "new":
		return StatusNew
	case "inprogress":
		return StatusInProgress
	case "resolved":
		return StatusResolved
	}
	return StatusUnknown
}

// Classification uses the MDE spelling; empty means not classified.
type Classification string

const (
	ClassTruePositive  Classification = "TruePositive"
	ClassFalsePositive Classification = "FalsePositive"
	ClassInformational Classification = "InformationalExpectedActivity"
)

// ParseClassification accepts MDE, Graph and command spellings
// (truepositive, falsepositive, informational).
func ParseClassification(s string) (Classification, bool) {
	switch strings.ToLower(s) {
	case "truepositive":
		return ClassTruePositive, true
	case "falsepositive":
		return ClassFalsePositive, true
	case "informational", "informationalexpectedactivity":
		return ClassInformational, true
	case "", "unknown", "unknownfuturevalue":
		return "", true
	}
	return "", false
}

// Determinations, canonical MDE names (DESIGN §5). Graph names convert with
// DeterminationGraphName; ParseDetermination accepts both.
var determinations = []struct{ mde, graph string }{
	{"MultiStagedAttack", "multiStagedAttack"},
	{"MaliciousUserActivity", "maliciousUserActivity"},
	{"Malware", "malware"},
	{"Phishing", "phishing"},
	{"UnwantedSoftware", "unwantedSoftware"},
	{"SecurityTesting", "securityTesting"},
	{"LineOfBusinessApplication", "lineOfBusinessApplication"},
	{"Other", "other"},
	{"CompromisedUser", "compromisedAccount"},
	{"Clean", "notMalicious"},
	{"InsufficientData", "notEnoughDataToValidate"},
	{"ConfirmedUserActivity", "confirmedActivity"},
}

var determinationAliases = map[string]string{
	"notmalicious":      "Clean",
	"confirmedactivity": "ConfirmedUserActivity",
}

// ParseDetermination returns the canonical (MDE) name for an MDE or Graph
// determination in any case; ok is false for an unknown name.
func ParseDetermination(s string) (string, bool) {
	l := strings.ToLower(strings.TrimSpace(s))
	if l == "" || l == "unknownfuturevalue" || l == "unknown" {
		return "", l != "" || s == ""
	}
	if c, ok := determinationAliases[l]; ok {
		return c, true
	}
	for _, d := range determinations {
		if strings.ToLower(d.mde) == l || strings.ToLower(d.graph) == l {
			return d.mde, true
		}
	}
	return "", false
}

// DeterminationGraphName returns the Graph name of a canonical determination.
func DeterminationGraphName(canonical string) string {
	for _, d := range determinations {
		if d.mde == canonical {
			return d.graph
		}
	}
	return ""
}

// DeterminationNames lists the canonical names, for usage text.
func DeterminationNames() []string {
	out := make([]string, len(determinations))
	for i, d := range determinations {
		out[i] = d.mde
	}
	return out
}

// Alert is one Defender alert, normalised from either API. Identity is
// (TenantID, ID); ID is exact and case-sensitive. Raw keeps the provider's JSON.
type Alert struct {
	TenantID        string
	ID              string
	Title           string
	Description     string
	Severity        Severity
	Status          AlertStatus
	Classification  Classification
	Determination   string // canonical MDE name, "" when unset
	AssignedTo      string
	Category        string
	DetectionSource string
	ServiceSource   string // Graph: microsoftDefenderForEndpoint, …; MDE: ""
	DeviceName      string
	DeviceID        string
	DeviceGroup     string
	UserName        string // "DOMAIN\\user" or UPN
	IncidentID      string
	IncidentURL     string
	MitreTechniques []string
	Evidence        []Evidence
	PortalURL       string
	CreatedAt       time.Time
	LastUpdatedAt   time.Time
	ResolvedAt      time.Time
	Raw             []byte
	// ChangedBy names who last changed the alert from chat; "" when the
	// last change came from Defender.
	ChangedBy string
}

// Evidence is a brief view of one evidence entity, for `show`.
type Evidence struct {
	Type    string // device, user, file, process, ip, url, mailbox, …
	Name    string
	Verdict string
	Group   string // device evidence: its device group
}

// Open reports whether the alert counts as open (new or in progress).
func (a Alert) Open() bool { return a.Status == StatusNew || a.Status == StatusInProgress }

// serviceSources are Graph's serviceSource values and their product names.
var serviceSources = map[string]string{
	"microsoftdefenderforendpoint":        "Defender for Endpoint",
	"microsoftdefenderforidentity":        "Defender for Identity",
	"microsoftdefenderforcloudapps":       "Defender for Cloud Apps",
	"microsoftdefenderforoffice365":       "Defender for Office 365",
	"microsoft365defender":                "Microsoft Defender XDR",
	"azureadidentityprotection":           "Entra ID Protection",
	"microsoftappgovernance":              "App Governance",
	"datalossprevention":                  "Data Loss Prevention",
	"microsoftdefenderforcloud":           "Defender for Cloud",
	"microsoftsentinel":                   "Microsoft Sentinel",
	"microsoftinsiderriskmanagement":      "Insider Risk Management",
	"microsoftthreatintelligence":         "Threat Intelligence",
	"microsoftdefenderforiot":             "Defender for IoT",
	"microsoftdefenderforservers":         "Defender for Servers",
	"microsoftdefenderforstorage":         "Defender for Storage",
	"microsoftdefenderfordns":             "Defender for DNS",
	"microsoftdefenderfordatabases":       "Defender for Databases",
	"microsoftdefenderforcontainers":      "Defender for Containers",
	"microsoftdefenderfornetwork":         "Defender for Network",
	"microsoftdefenderforappservice":      "Defender for App Service",
	"microsoftdefenderforkeyvault":        "Defender for Key Vault",
	"microsoftdefenderforresourcemanager": "Defender for Resource Manager",
	"microsoftdefenderforapimanagement":   "Defender for API Management",
}

// ServiceSourceName is the product name of a Graph serviceSource for
// display ("microsoftDefenderForOffice365" → "Defender for Office 365");
// unknown values are shown as they are, "unknown" ones not at all. The raw
// value stays on the alert, where source= rules match it.
func ServiceSourceName(raw string) string {
	l := strings.ToLower(raw)
	if l == "" || l == "unknown" || l == "unknownfuturevalue" {
		return ""
	}
	if n, ok := serviceSources[l]; ok {
		return n
	}
	return raw
}
