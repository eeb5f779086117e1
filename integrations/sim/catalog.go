package sim

// template is one kind of alert the simulated Defender raises, modelled on
// real Defender for Endpoint alerts.
type template struct {
	title, description string
	category           string
	source             string // detectionSource
	severity           string
	mitre              []string
	threatFamily       string
	threatName         string
	groups             []string // device groups it shows up in; empty: any
	noUser             bool     // raised by a system process: relatedUser null
}

// catalog is weighted towards High and Medium so that cards (customer
// channels default to severity>=medium, SOC channels to >=high) show up.
var catalog = []template{
	{
		title:       "Suspicious PowerShell command line",
		description: "A suspicious PowerShell activity was observed on the machine. This behavior may indicate that PowerShell was used during installation, exploration, or in some cases in lateral movement activities.",
		category:    "Execution", source: "WindowsDefenderAtp", severity: "Medium",
		mitre: []string{"T1059.001"},
	},
	{
		title:       "Ransomware behavior detected in the file system",
		description: "Ransomware-like activity was detected: a process renamed and encrypted many files in a short time.",
		category:    "Ransomware", source: "WindowsDefenderAtp", severity: "High",
		mitre: []string{"T1486", "T1490"}, groups: []string{"Finance", "Servers", "HR"},
	},
	{
		title:       "'Mimikatz' credential theft tool",
		description: "The Mimikatz credential theft tool was detected on the device.",
		category:    "CredentialAccess", source: "WindowsDefenderAv", severity: "High",
		mitre: []string{"T1003.001"}, threatFamily: "Mimikatz", threatName: "HackTool:Win32/Mimikatz!pz",
	},
	{
		title:       "Suspicious access to LSASS service",
		description: "A process accessed the memory of the Local Security Authority Subsystem Service, which can be used to steal credentials.",
		category:    "CredentialAccess", source: "WindowsDefenderAtp", severity: "High",
		mitre: []string{"T1003.001"},
	},
	{
		title:       "Possible lateral movement using PsExec",
		description: "PsExec was used to run a process on a remote device, a common step in lateral movement.",
		category:    "LateralMovement", source: "WindowsDefenderAtp", severity: "Medium",
		mitre: []string{"T1570", "T1021.002"},
	},
	{
		title:       "Suspicious process injection observed",
		description: "A process injected code into another process, a technique used to evade defences and run with the target's privileges.",
		category:    "DefenseEvasion", source: "WindowsDefenderAtp", severity: "Medium",
		mitre: []string{"T1055"},
	},
	{
		title:       "'Emotet' malware was detected",
		description: "Emotet, a banking trojan that also drops other malware, was detected in an Office document.",
		category:    "Malware", source: "WindowsDefenderAv", severity: "Medium",
		mitre: []string{"T1566.001"}, threatFamily: "Emotet", threatName: "TrojanDownloader:O97M/Emotet.CSK!MTB",
	},
	{
		title:       "Cobalt Strike command and control detected",
		description: "Network traffic from the device matches a Cobalt Strike beacon talking to its command and control server.",
		category:    "CommandAndControl", source: "WindowsDefenderAtp", severity: "High",
		mitre: []string{"T1071.001"}, threatFamily: "CobaltStrike",
	},
	{
		title:       "Suspicious 'Rundll32' process behavior",
		description: "Rundll32 ran with unusual arguments, which attackers use to run malicious code through a trusted binary.",
		category:    "DefenseEvasion", source: "WindowsDefenderAtp", severity: "Low",
		mitre: []string{"T1218.011"},
	},
	{
		title:       "Anomalous scheduled task created",
		description: "A scheduled task was created with a command line that resembles persistence mechanisms used by attackers.",
		category:    "Persistence", source: "WindowsDefenderAtp", severity: "Low",
		mitre: []string{"T1053.005"}, groups: []string{"Servers", "Engineering"},
	},
	{
		title:       "Suspicious LDAP query",
		description: "A process ran LDAP queries that enumerate privileged accounts, which can be reconnaissance.",
		category:    "Discovery", source: "WindowsDefenderAtp", severity: "Low",
		mitre: []string{"T1087.002"},
	},
	{
		title:       "'Presenoker' unwanted software was detected",
		description: "Potentially unwanted software was detected on the device.",
		category:    "SuspiciousActivity", source: "WindowsDefenderAv", severity: "Informational",
		threatFamily: "Adware", threatName: "PUA:Win32/Presenoker",
	},
	{
		title:       "Suspicious service registration",
		description: "A new service was registered with a binary in a user-writable folder.",
		category:    "PrivilegeEscalation", source: "WindowsDefenderAtp", severity: "Medium",
		mitre: []string{"T1543.003"}, groups: []string{"Servers"}, noUser: true,
	},
}

// groups are device groups (rbacGroupName) with their host name prefixes.
var groups = []struct{ name, prefix string }{
	{"Finance", "fin-ws"},
	{"Marketing", "mkt-lt"},
	{"Engineering", "eng-ws"},
	{"HR", "hr-lt"},
	{"Servers", "srv-app"},
}

var users = []string{"jdoe", "asmith", "mgarcia", "kchen", "plee", "rpatel", "twilson", "nbrown", "ekowalski", "sadmin"}
