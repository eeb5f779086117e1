package discord

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestScrubTokenFromNetworkErrors(t *testing.T) {
	const token = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDpzZWNyZXQ"
	err := &url.Error{Op: "Patch", URL: "https://discord.com/api/v9/webhooks/777/" + token + "/messages/@original", Err: errors.New("i/o timeout")}
	got := scrubToken(err, token)
	if strings.Contains(got.Error(), token) || !strings.Contains(got.Error(), "i/o timeout") {
		t.Fatalf("scrubbed error %q", got)
	}
	if scrubToken(nil, token) != nil {
		t.Fatal("nil error changed")
	}
}
