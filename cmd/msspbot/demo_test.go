package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
)

// syncBuffer is a bytes.Buffer that the demo writes to while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls out until match finds something or the deadline passes.
func waitFor(t *testing.T, out *syncBuffer, what string, timeout time.Duration, match func(string) []string) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if m := match(out.String()); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; output:\n%s", timeout, what, tail(out.String(), 4000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// cardRE finds a card posted in a customer channel while the alert is
// still open: channel, message id, alert id.
var cardRE = regexp.MustCompile("(?m)^#(contoso|fabrikam) \\[msg ([^\\]]+)\\]\\n┌─ [^\\n]*\\n(?:│ [^\\n]*\\n)*?│ Created: [^\\n]*Status: (?:New|InProgress) [^\\n]*\\n(?:│ [^\\n]*\\n)*?│ Alert: `([^`]+)`")

func TestDemoEndToEnd(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "demo.db")
	stdin, typing := io.Pipe()
	var out, errOut syncBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- run([]string{"demo", "--db", dbPath, "--tenants", "2", "--interval", "50ms"}, stdin, &out, &errOut)
	}()
	defer typing.Close()
	typeLine := func(s string) {
		t.Helper()
		if _, err := io.WriteString(typing, s+"\n"); err != nil {
			t.Fatalf("type %q: %v", s, err)
		}
	}

	m := waitFor(t, &out, "an open alert's card in a customer channel", 30*time.Second, cardRE.FindStringSubmatch)
	channel, msgID, alertID := m[1], m[2], m[3]
	t.Logf("acknowledging %s (card %s in #%s)", alertID, msgID, channel)

	typeLine("/channel " + channel)
	typeLine("/mssp ack " + alertID)

	// The reply to the asker, then the public effects through the outbox:
	// a thread line under the card and the card edited.
	waitFor(t, &out, "the ack reply", 10*time.Second, regexp.MustCompile(
		`(?m)^\[#`+channel+`\] > /mssp ack `+regexp.QuoteMeta(alertID)+`\n(?:.*\n)*?\(only you\) [^\n]*`+regexp.QuoteMeta(alertID)).FindStringSubmatch)
	waitFor(t, &out, "a thread line acknowledging the alert", 10*time.Second, regexp.MustCompile(
		`(?mi)^  ↳ #`+channel+` \[msg `+regexp.QuoteMeta(msgID)+`\] [^\n]*acknowledged[^\n]*analyst`).FindStringSubmatch)
	waitFor(t, &out, "the card edited with the assignee", 10*time.Second, regexp.MustCompile(
		`(?m)^#`+channel+` ✎ card \[msg `+regexp.QuoteMeta(msgID)+`\] updated:\n(?:│ [^\n]*\n|┌─[^\n]*\n)*?│ Created: [^\n]*Status: [^\n]*assigned to analyst@mssp\.example`).FindStringSubmatch)

	typeLine("/mssp audit")
	audit := waitFor(t, &out, "the audit reply", 10*time.Second, regexp.MustCompile(
		`(?m)^\[#`+channel+`\] > /mssp audit\n(?:.*\n)*?(\(only you\) [^\n]*\n(?:  [^\n]*\n)*)`).FindStringSubmatch)[1]
	var ackRow bool
	for _, line := range strings.Split(audit, "\n") {
		if strings.Contains(line, "ack") && strings.Contains(line, alertID) {
			ackRow = true
		}
	}
	if !ackRow {
		t.Errorf("audit does not list the ack of %s:\n%s", alertID, audit)
	}

	if strings.Contains(errOut.String(), "level=ERROR") {
		t.Errorf("errors logged while running:\n%s", errOut.String())
	}
	before := len(errOut.String())
	typing.Close() // end of input ends the demo
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("exit code %d; stderr:\n%s", code, errOut.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("demo did not end after end of input")
	}
	// Stopping on purpose is not an error: nothing may be logged as one.
	if atExit := errOut.String()[before:]; strings.Contains(atExit, "level=ERROR") {
		t.Errorf("errors logged at shutdown:\n%s", atExit)
	}
	if _, err := os.Stat(dbPath); err != nil {
		t.Errorf("--db file not kept: %v", err)
	}
}

// TestDemoQuitRemovesTemporaryDB runs the demo without --db: the banner
// names a temporary database, which is gone after /quit.
func TestDemoQuitRemovesTemporaryDB(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	var out, errOut syncBuffer
	code := run([]string{"demo", "--tenants", "12"}, strings.NewReader("/help\n/quit\n/mssp status\n"), &out, &errOut)
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, errOut.String())
	}
	s := out.String()
	for _, want := range []string{
		"12 simulated customer tenant(s)",
		"#contoso (Contoso), #fabrikam (Fabrikam), #northwind (Northwind)",
		"… 4 more",
		"SOC channel:       #soc",
		"/click alert_ack ALERT_ID",
		"[#contoso] > /help\n",
		"#soc is the SOC channel",
		"#lamna", // every tenant's channel is listed in /help
		"[#contoso] > /quit\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "/mssp status\n") {
		t.Error("input after /quit was read")
	}
	m := regexp.MustCompile(`Database: (\S+) \(temporary, removed at exit\)`).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("banner names no temporary database:\n%s", s)
	}
	if _, err := os.Stat(filepath.Dir(m[1])); !os.IsNotExist(err) {
		t.Errorf("temporary database directory %s still there (%v)", filepath.Dir(m[1]), err)
	}
}

func TestRunUsage(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       []string
		code       int
		stdout     string
		stderr     string
		noStdout   bool
		noStderrOK bool
	}{
		{name: "no command", args: nil, code: 2, stderr: "usage:", noStdout: true},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, stderr: `unknown command "frobnicate"`, noStdout: true},
		{name: "help", args: []string{"help"}, code: 0, stdout: "msspbot demo  [--db PATH]"},
		{name: "--help", args: []string{"--help"}, code: 0, stdout: "msspbot serve --config FILE"},
		{name: "demo -h", args: []string{"demo", "-h"}, code: 0, stderr: "-interval duration", noStdout: true},
		{name: "tenants 0", args: []string{"demo", "--tenants", "0"}, code: 2, stderr: "--tenants must be between 1 and 50, not 0", noStdout: true},
		{name: "tenants 51", args: []string{"demo", "--tenants", "51"}, code: 2, stderr: "--tenants must be between 1 and 50, not 51", noStdout: true},
		{name: "tenants not a number", args: []string{"demo", "--tenants", "many"}, code: 2, stderr: `invalid value "many" for flag -tenants`, noStdout: true},
		{name: "interval zero", args: []string{"demo", "--interval", "0s"}, code: 2, stderr: "--interval must be at least 10ms, not 0s", noStdout: true},
		{name: "interval negative", args: []string{"demo", "--interval", "-5s"}, code: 2, stderr: "--interval must be at least 10ms", noStdout: true},
		{name: "interval bad", args: []string{"demo", "--interval", "soon"}, code: 2, stderr: `invalid value "soon" for flag -interval`, noStdout: true},
		{name: "unknown flag", args: []string{"demo", "--tenant", "3"}, code: 2, stderr: "flag provided but not defined: -tenant", noStdout: true},
		{name: "extra argument", args: []string{"demo", "now"}, code: 2, stderr: `unexpected argument "now"`, noStdout: true},
		{name: "version extra", args: []string{"version", "--json"}, code: 2, stderr: `unexpected argument "--json"`, noStdout: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut syncBuffer
			code := run(tc.args, strings.NewReader(""), &out, &errOut)
			if code != tc.code {
				t.Errorf("exit code %d; want %d (stderr %q)", code, tc.code, errOut.String())
			}
			if tc.stdout != "" && !strings.Contains(out.String(), tc.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tc.stdout, out.String())
			}
			if tc.stderr != "" && !strings.Contains(errOut.String(), tc.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderr, errOut.String())
			}
			if tc.noStdout && out.String() != "" {
				t.Errorf("stdout not empty:\n%s", out.String())
			}
		})
	}
}

func TestDemoBadDBPath(t *testing.T) {
	var out, errOut syncBuffer
	dir := t.TempDir()
	code := run([]string{"demo", "--db", filepath.Join(dir, "missing", "sub", "demo.db")}, strings.NewReader(""), &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "msspbot demo: open database:") {
		t.Errorf("exit code %d, stderr %q; want 1 and an open error", code, errOut.String())
	}
}

func TestVersion(t *testing.T) {
	var out, errOut syncBuffer
	if code := run([]string{"version"}, nil, &out, &errOut); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	for _, want := range []string{"msspbot dev\n", runtime.Version(), runtime.GOOS + "/" + runtime.GOARCH} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("version output lacks %q:\n%s", want, out.String())
		}
	}

	old := version
	version = "v1.2.3"
	defer func() { version = old }()
	var b bytes.Buffer
	writeVersion(&b, &debug.BuildInfo{
		Main: debug.Module{Path: "github.com/msspbot/msspbot", Version: "v1.2.3"},
		Deps: []*debug.Module{
			{Path: "github.com/slack-go/slack", Version: "v0.35.0"},
			{Path: "modernc.org/sqlite", Version: "v1.62.0", Replace: &debug.Module{Path: "../sqlite", Version: "(devel)"}},
		},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "190c41c"},
			{Key: "vcs.modified", Value: "false"},
			{Key: "-ldflags", Value: "-X main.version=v1.2.3"},
		},
	}, true)
	got := b.String()
	for _, want := range []string{
		"msspbot v1.2.3\n",
		"module  github.com/msspbot/msspbot v1.2.3\n",
		"build   vcs.revision=190c41c\n",
		"build   vcs.modified=false\n",
		"dep     github.com/slack-go/slack v0.35.0\n",
		"dep     modernc.org/sqlite v1.62.0 => ../sqlite (devel)\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("version output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "ldflags") {
		t.Errorf("version output shows -ldflags:\n%s", got)
	}
	b.Reset()
	writeVersion(&b, nil, false)
	if !strings.Contains(b.String(), "build information unavailable") {
		t.Errorf("got %q", b.String())
	}
}

func TestDemoTenants(t *testing.T) {
	ts := demoTenants(maxDemoTenants)
	if ts[0].Name != "Contoso" || ts[1].Name != "Fabrikam" || ts[2].Name != "Northwind" || ts[0].Channel != "contoso" {
		t.Errorf("first tenants %+v", ts[:3])
	}
	ids, names, chans := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, tn := range ts {
		if !bot.ValidTenantID(tn.ID) || tn.ID != bot.NormalizeTenantID(tn.ID) {
			t.Errorf("tenant id %q is not a lower-case GUID", tn.ID)
		}
		if ids[tn.ID] || names[tn.Name] || chans[tn.Channel] {
			t.Errorf("duplicate %+v", tn)
		}
		ids[tn.ID], names[tn.Name], chans[tn.Channel] = true, true, true
		if !bot.NewChannelRef("console", tn.Channel).Valid() || strings.ContainsAny(tn.Channel, " :") || tn.Channel != strings.ToLower(tn.Channel) {
			t.Errorf("channel %q", tn.Channel)
		}
		if tn.Channel == demoSOCChannel {
			t.Errorf("a tenant uses the SOC channel")
		}
	}
	if again := demoTenants(3); again[0] != ts[0] || again[2] != ts[2] {
		t.Error("tenant ids are not stable")
	}
	if last := ts[len(ts)-1]; last.Name != "Consolidated 2" || last.Channel != "consolidated2" {
		t.Errorf("last tenant %+v", last)
	}
}
