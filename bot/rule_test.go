package bot

import (
	"reflect"
	"strings"
	"testing"
)

const otherGUID = "11111111-2222-3333-4444-555555555555"

// testAlert is a Medium MDE alert of testGUID; tests change what they need.
func testAlert() Alert {
	return Alert{
		TenantID:        testGUID,
		ID:              "da637291085411733957_-1043898914",
		Title:           "Suspicious PowerShell command line",
		Severity:        SeverityMedium,
		Status:          StatusNew,
		Category:        "Execution",
		DetectionSource: "WindowsDefenderAtp",
		DeviceGroup:     "Servers",
	}
}

func TestRuleMatches(t *testing.T) {
	withEvidence := testAlert()
	withEvidence.DeviceGroup = ""
	withEvidence.ServiceSource = "microsoftDefenderForEndpoint"
	withEvidence.Evidence = []Evidence{{Type: "user", Name: "bob"}, {Type: "device", Name: "web01", Group: "Tier 0"}}

	tests := []struct {
		name  string
		rule  Rule
		alert Alert
		want  bool
	}{
		{"empty rule matches all", Rule{}, testAlert(), true},
		{"empty rule matches unspecified severity", Rule{}, Alert{}, true},
		{"severity equal", Rule{MinSeverity: SeverityMedium}, testAlert(), true},
		{"severity above", Rule{MinSeverity: SeverityLow}, testAlert(), true},
		{"severity below", Rule{MinSeverity: SeverityHigh}, testAlert(), false},
		{"unspecified alert below any level", Rule{MinSeverity: SeverityInformational}, Alert{}, false},
		{"tenant same, other case", Rule{TenantID: strings.ToUpper(testGUID)}, testAlert(), true},
		{"tenant other", Rule{TenantID: otherGUID}, testAlert(), false},
		{"category case-insensitive", Rule{Category: "EXECUTION"}, testAlert(), true},
		{"category is not a substring match", Rule{Category: "Exec"}, testAlert(), false},
		{"source matches detection source", Rule{Source: "windowsdefenderatp"}, testAlert(), true},
		{"source matches service source", Rule{Source: "MicrosoftDefenderForEndpoint"}, withEvidence, true},
		{"source other", Rule{Source: "Office365"}, withEvidence, false},
		{"group matches device group", Rule{Group: "servers"}, testAlert(), true},
		{"group matches evidence group", Rule{Group: "tier 0"}, withEvidence, true},
		{"group other", Rule{Group: "Workstations"}, withEvidence, false},
		{"group never matches a missing group", Rule{Group: "Servers"}, Alert{Evidence: []Evidence{{Type: "file"}}}, false},
		{"title substring, case-insensitive", Rule{Title: "powershell COMMAND"}, testAlert(), true},
		{"title unicode case", Rule{Title: "ÉCHEC"}, Alert{Title: "Échec de connexion"}, true},
		{"title absent", Rule{Title: "mimikatz"}, testAlert(), false},
		{
			"all fields must match (AND)",
			Rule{MinSeverity: SeverityLow, Category: "execution", Source: "WindowsDefenderAtp", Group: "Servers", Title: "powershell", TenantID: testGUID},
			testAlert(), true,
		},
		{"AND: one field fails", Rule{MinSeverity: SeverityLow, Category: "Malware"}, testAlert(), false},
		{"AND: severity fails", Rule{MinSeverity: SeverityHigh, Category: "Execution"}, testAlert(), false},
	}
	for _, tt := range tests {
		if got := tt.rule.Matches(tt.alert); got != tt.want {
			t.Errorf("%s: %v.Matches = %v, want %v", tt.name, tt.rule, got, tt.want)
		}
	}
}

func TestChannelRulesWants(t *testing.T) {
	alert := func(sev Severity, tenant, category string) Alert {
		a := testAlert()
		a.Severity, a.TenantID, a.Category = sev, tenant, category
		return a
	}
	customer := ChannelRules{Channel: "slack:C0CONTOSO"}
	soc := ChannelRules{Channel: "slack:C0SOC", SOC: true}
	withRules := func(c ChannelRules, rules ...Rule) ChannelRules {
		c.Rules = rules
		return c
	}
	tests := []struct {
		name  string
		ch    ChannelRules
		alert Alert
		want  bool
	}{
		{"customer default: medium", customer, alert(SeverityMedium, testGUID, ""), true},
		{"customer default: high", customer, alert(SeverityHigh, testGUID, ""), true},
		{"customer default: not low", customer, alert(SeverityLow, testGUID, ""), false},
		{"SOC default: high", soc, alert(SeverityHigh, otherGUID, ""), true},
		{"SOC default: not medium", soc, alert(SeverityMedium, testGUID, ""), false},
		{
			"rules replace the default",
			withRules(customer, Rule{Category: "Malware"}), alert(SeverityHigh, testGUID, "Execution"), false,
		},
		{
			"OR across rules: second matches",
			withRules(customer, Rule{MinSeverity: SeverityHigh}, Rule{Category: "Malware"}), alert(SeverityLow, testGUID, "malware"), true,
		},
		{
			"OR across rules: first matches",
			withRules(customer, Rule{MinSeverity: SeverityHigh}, Rule{Category: "Malware"}), alert(SeverityHigh, testGUID, "Execution"), true,
		},
		{
			"OR across rules: none matches",
			withRules(customer, Rule{MinSeverity: SeverityHigh}, Rule{Category: "Malware"}), alert(SeverityLow, testGUID, "Execution"), false,
		},
		{
			"AND inside a rule",
			withRules(soc, Rule{MinSeverity: SeverityHigh, Category: "Malware"}), alert(SeverityHigh, testGUID, "Execution"), false,
		},
		{
			"tenant= rule ignored in a customer channel",
			withRules(customer, Rule{TenantID: testGUID}), alert(SeverityHigh, testGUID, ""), false,
		},
		{
			"customer channel: other rules still apply",
			withRules(customer, Rule{TenantID: testGUID}, Rule{MinSeverity: SeverityLow}), alert(SeverityLow, testGUID, ""), true,
		},
		{
			"tenant= rule in a SOC channel: that tenant",
			withRules(soc, Rule{TenantID: testGUID}), alert(SeverityInformational, testGUID, ""), true,
		},
		{
			"tenant= rule in a SOC channel: other tenant",
			withRules(soc, Rule{TenantID: testGUID}), alert(SeverityHigh, otherGUID, ""), false,
		},
	}
	for _, tt := range tests {
		if got := tt.ch.Wants(tt.alert); got != tt.want {
			t.Errorf("%s: Wants = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestRuleString(t *testing.T) {
	tests := []struct {
		rule Rule
		want string
	}{
		{Rule{}, "everything"},
		{Rule{MinSeverity: SeverityInformational}, "severity>=informational"},
		{Rule{MinSeverity: SeverityHigh, Category: "Malware"}, "severity>=high category=Malware"},
		{Rule{Title: "credential theft"}, `title~"credential theft"`},
		{
			Rule{ID: 3, MinSeverity: SeverityMedium, Category: "Execution", Source: "EDR", Group: "Servers", Title: "ps", TenantID: testGUID},
			`severity>=medium category=Execution source=EDR group=Servers title~"ps" tenant=` + testGUID,
		},
	}
	for _, tt := range tests {
		if got := tt.rule.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.rule, got, tt.want)
		}
		if tt.rule == (Rule{}) {
			continue
		}
		// What a rule shows can be typed back.
		r, err := ParseRequest("rules add " + tt.rule.String())
		want := tt.rule
		want.ID = 0
		if err != nil || r.Rule != want {
			t.Errorf("parse %q = %+v, %v; want %+v", tt.rule.String(), r.Rule, err, want)
		}
	}
}

func TestPlanIngest(t *testing.T) {
	const (
		customer ChannelRef = "slack:C0CONTOSO"
		soc      ChannelRef = "slack:C0SOC"
	)
	channels := []ChannelRules{{Channel: customer}, {Channel: soc, SOC: true}}
	with := func(f func(*Alert)) Alert {
		a := testAlert()
		f(&a)
		return a
	}
	ptr := func(a Alert) *Alert { return &a }
	low := with(func(a *Alert) { a.Severity = SeverityLow })
	high := with(func(a *Alert) { a.Severity = SeverityHigh })
	acked := with(func(a *Alert) { a.Status, a.AssignedTo = StatusInProgress, "analyst1@mssp.example" })
	resolved := with(func(a *Alert) {
		a.Status, a.Classification, a.Determination = StatusResolved, ClassTruePositive, "Malware"
	})

	tests := []struct {
		name           string
		in             PlanInput
		change         Change
		newChannels    []ChannelRef
		threadContains []string // empty: no thread line
		store          Alert
	}{
		{
			name:        "new medium alert: customer default only",
			in:          PlanInput{Next: testAlert(), Channels: channels},
			change:      ChangeNew,
			newChannels: []ChannelRef{customer},
			store:       testAlert(),
		},
		{
			name:        "new high alert: customer and SOC",
			in:          PlanInput{Next: high, Channels: channels},
			change:      ChangeNew,
			newChannels: []ChannelRef{customer, soc},
			store:       high,
		},
		{
			name:   "new low alert: nobody",
			in:     PlanInput{Next: low, Channels: channels},
			change: ChangeNew,
			store:  low,
		},
		{
			name:           "low raised to high, never delivered: posted now",
			in:             PlanInput{Prev: ptr(low), Next: high, Channels: channels},
			change:         ChangeChanged,
			newChannels:    []ChannelRef{customer, soc},
			threadContains: []string{"severity", "Low", "High"},
			store:          high,
		},
		{
			name: "low raised to high, delivered in the customer channel: thread and edit there",
			in: PlanInput{
				Prev: ptr(low), Next: high, Channels: channels,
				Delivered: map[ChannelRef]bool{customer: true},
			},
			change:         ChangeChanged,
			newChannels:    []ChannelRef{soc},
			threadContains: []string{"severity"},
			store:          high,
		},
		{
			name: "changed, delivered everywhere: no new delivery",
			in: PlanInput{
				Prev: ptr(high), Next: with(func(a *Alert) { a.Severity, a.Status = SeverityHigh, StatusInProgress }),
				Channels: channels, Delivered: map[ChannelRef]bool{customer: true, soc: true},
			},
			change:         ChangeChanged,
			threadContains: []string{"status", "New", "InProgress"},
			store:          with(func(a *Alert) { a.Severity, a.Status = SeverityHigh, StatusInProgress }),
		},
		{
			name: "changed but no channel wants it",
			in: PlanInput{
				Prev: ptr(low), Next: with(func(a *Alert) { a.Severity, a.AssignedTo = SeverityLow, "someone" }),
				Channels: channels,
			},
			change:         ChangeChanged,
			threadContains: []string{"assigned to someone"},
			store:          with(func(a *Alert) { a.Severity, a.AssignedTo = SeverityLow, "someone" }),
		},
		{
			name: "unchanged: nothing, even for a channel without delivery",
			in: PlanInput{
				Prev: ptr(high), Next: with(func(a *Alert) { a.Severity, a.Description = SeverityHigh, "new text" }),
				Channels: channels, Delivered: map[ChannelRef]bool{soc: true},
			},
			change: ChangeUnchanged,
			store:  with(func(a *Alert) { a.Severity, a.Description = SeverityHigh, "new text" }),
		},
		{
			name: "pending ack keeps local status and assignee",
			in: PlanInput{
				Prev: ptr(acked), Next: testAlert(), Channels: channels,
				Pending:   []WriteBack{{Kind: WriteBackAck, Status: StatusInProgress, AssignedTo: "analyst1@mssp.example"}},
				Delivered: map[ChannelRef]bool{customer: true},
			},
			change: ChangeUnchanged,
			store:  acked,
		},
		{
			name: "pending resolve keeps local status, classification and determination",
			in: PlanInput{
				Prev: ptr(resolved), Next: testAlert(), Channels: channels,
				Pending:   []WriteBack{{Kind: WriteBackResolve, Status: StatusResolved, Classification: ClassTruePositive, Determination: "Malware"}},
				Delivered: map[ChannelRef]bool{customer: true},
			},
			change: ChangeUnchanged,
			store:  resolved,
		},
		{
			name: "pending write-back does not hide other changes",
			in: PlanInput{
				Prev: ptr(acked), Next: with(func(a *Alert) { a.Severity = SeverityHigh }), Channels: channels,
				Pending:   []WriteBack{{Kind: WriteBackAck, Status: StatusInProgress, AssignedTo: "analyst1@mssp.example"}},
				Delivered: map[ChannelRef]bool{customer: true},
			},
			change:         ChangeChanged,
			newChannels:    []ChannelRef{soc},
			threadContains: []string{"severity"},
			store:          with(func(a *Alert) { *a = acked; a.Severity = SeverityHigh }),
		},
		{
			name: "pending comment keeps nothing",
			in: PlanInput{
				Prev: ptr(testAlert()), Next: acked, Channels: channels,
				Pending:   []WriteBack{{Kind: WriteBackComment, Comment: "hi"}},
				Delivered: map[ChannelRef]bool{customer: true},
			},
			change:         ChangeChanged,
			threadContains: []string{"InProgress", "analyst1@mssp.example"},
			store:          acked,
		},
		{
			name: "fetched value equal to the local one: unchanged",
			in: PlanInput{
				Prev: ptr(acked), Next: acked, Channels: channels,
				Delivered: map[ChannelRef]bool{customer: true},
			},
			change: ChangeUnchanged,
			store:  acked,
		},
	}
	for _, tt := range tests {
		out := PlanIngest(tt.in)
		if out.Change != tt.change {
			t.Errorf("%s: change %q, want %q", tt.name, out.Change, tt.change)
		}
		if !reflect.DeepEqual(out.NewChannels, tt.newChannels) {
			t.Errorf("%s: new channels %v, want %v", tt.name, out.NewChannels, tt.newChannels)
		}
		if !reflect.DeepEqual(out.Store, tt.store) {
			t.Errorf("%s: store\n got %+v\nwant %+v", tt.name, out.Store, tt.store)
		}
		if len(tt.threadContains) == 0 {
			if out.ThreadText != "" || out.Edit {
				t.Errorf("%s: thread %q, edit %v; want none", tt.name, out.ThreadText, out.Edit)
			}
			continue
		}
		if !out.Edit {
			t.Errorf("%s: no edit for a changed alert", tt.name)
		}
		for _, s := range tt.threadContains {
			if !strings.Contains(out.ThreadText, s) {
				t.Errorf("%s: thread %q lacks %q", tt.name, out.ThreadText, s)
			}
		}
	}
}

func TestServiceSourceName(t *testing.T) {
	for raw, want := range map[string]string{
		"microsoftDefenderForOffice365": "Defender for Office 365",
		"MICROSOFTDEFENDERFORIDENTITY":  "Defender for Identity",
		"microsoft365Defender":          "Microsoft Defender XDR",
		"unknownFutureValue":            "",
		"":                              "",
		"someNewSource":                 "someNewSource",
	} {
		if got := ServiceSourceName(raw); got != want {
			t.Errorf("ServiceSourceName(%q) = %q, want %q", raw, got, want)
		}
	}
	// source= rules still match the raw value.
	r := Rule{Source: "microsoftdefenderforoffice365"}
	if !r.Matches(Alert{ServiceSource: "microsoftDefenderForOffice365"}) {
		t.Error("source= no longer matches the raw service source")
	}
}
