package main

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/msspbot/msspbot/bot"
	"github.com/msspbot/msspbot/integrations/defender/defendertest"
	"github.com/msspbot/msspbot/storage/sqlite"
)

// TestMain lets a test run the real binary's main in a child process: the
// test binary re-executes itself with MSSPBOT_TEST_MAIN set.
func TestMain(m *testing.M) {
	if args := os.Getenv("MSSPBOT_TEST_MAIN"); args != "" {
		os.Exit(run(strings.Fields(args), os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestServeProcessFetchesAndStopsOnSIGTERM runs `msspbot serve` as its own
// process, configured only by MSSPBOT_CONFIG and trusting the fake Entra
// and MDE servers only through SSL_CERT_FILE, as an operator would point it
// at test endpoints. It fetches the config tenant's alerts on schedule,
// posts them, and exits 0 on SIGTERM with the database closed cleanly.
func TestServeProcessFetchesAndStopsOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	idp := defendertest.NewIdP(t)
	mde := defendertest.NewMDE(t, idp)
	slack := newFakeSlack(t)
	idp.Consent(e2eTenantB)
	mde.Put(e2eTenantB, defendertest.SampleAlert("da-proc-1"))

	dir := t.TempDir()
	var certs []byte
	certs = append(certs, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: idp.Certificate().Raw})...)
	certs = append(certs, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: mde.Certificate().Raw})...)
	caFile := filepath.Join(dir, "ca.pem")
	dbPath := filepath.Join(dir, "msspbot.db")
	cfgPath := filepath.Join(dir, "config.yaml")
	must(t, os.WriteFile(caFile, certs, 0o600))
	must(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
database: %s
http: {listen: "127.0.0.1:0"}
azure: {client_id: %q, authority_host: %q}
defender: {base_url: %q, schedule: "@every 1s"}
slack: {enabled: true, mode: http, api_url: %q}
soc: {channels: ["slack:CSOC"], users: ["slack:UANALYST"]}
tenants:
  - {id: %q, name: Fabrikam, channels: ["slack:CFAB"]}
`, dbPath, idp.ClientID, idp.URL, mde.URL, slack.srv.URL+"/api/", e2eTenantB)), 0o600))

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		"MSSPBOT_TEST_MAIN=serve",
		"MSSPBOT_CONFIG="+cfgPath,
		"SSL_CERT_FILE="+caFile,
		// Secrets from the environment, as in a container.
		"MSSPBOT_AZURE_CLIENT_SECRET="+idp.Secret(),
		"MSSPBOT_SLACK_BOT_TOKEN="+e2eToken,
		"MSSPBOT_SLACK_SIGNING_SECRET="+e2eSecret,
	)
	stderr, err := cmd.StderrPipe()
	must(t, err)
	must(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	logs := make(chan map[string]any, 256)
	var logText strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logText.WriteString(sc.Text() + "\n")
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil {
				logs <- rec
			}
		}
		close(logs)
	}()
	var base string
	deadline := time.After(30 * time.Second)
	for base == "" {
		select {
		case rec, ok := <-logs:
			if !ok {
				t.Fatalf("serve exited early:\n%s", logText.String())
			}
			if rec["msg"] == "listening" {
				base, _ = rec["url"].(string)
			}
		case <-deadline:
			t.Fatal("serve did not start listening")
		}
	}
	go func() {
		for range logs { // keep draining
		}
	}()

	// Fetched over TLS that only SSL_CERT_FILE makes trusted, posted to Slack.
	slack.waitMsg(t, "CFAB", func(m *slackMsg) bool { return strings.Contains(m.Text, "da-proc-1") })
	e := &e2e{t: t, base: base}
	if code, _ := e.get("/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	// The schedule keeps running: a later change arrives in the thread.
	mde.Update(e2eTenantB, "da-proc-1", func(a map[string]any) { a["status"] = "Resolved" })
	slack.waitMsg(t, "CFAB", func(m *slackMsg) bool { return m.ThreadTS != "" && strings.Contains(m.Text, "Resolved") })

	must(t, cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve exited with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
	// A clean close checkpoints the WAL: nothing is left to replay.
	if fi, err := os.Stat(dbPath + "-wal"); err == nil && fi.Size() > 0 {
		t.Fatalf("WAL left behind (%d bytes): the database was not closed cleanly", fi.Size())
	}
	db, err := sqlite.Open(context.Background(), dbPath)
	must(t, err)
	defer db.Close()
	a, err := db.FindAlert(context.Background(), e2eTenantB, "da-proc-1")
	if err != nil || a.Status != bot.StatusResolved {
		t.Fatalf("stored alert %+v, %v", a.Status, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
