package slack

import (
	"context"
	"testing"
	"time"
)

func TestIdentitiesCacheEmail(t *testing.T) {
	f := newFakeSlack(t)
	f.setEmail("U1", "ana@customer.example")
	ids, err := NewIdentities(f.config(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ids.now = func() time.Time { return now }
	ctx := context.Background()

	for range 2 {
		if got := ids.Email(ctx, "U1"); got != "ana@customer.example" {
			t.Fatalf("Email = %q", got)
		}
	}
	if n := f.callCount("users.info"); n != 1 {
		t.Errorf("users.info calls = %d, want 1", n)
	}
	now = now.Add(61 * time.Minute)
	ids.Email(ctx, "U1")
	if n := f.callCount("users.info"); n != 2 {
		t.Errorf("after the TTL users.info calls = %d, want 2", n)
	}

	// errors leave the e-mail empty and are not cached
	if got := ids.Email(ctx, "UNKNOWN"); got != "" {
		t.Errorf("unknown user: %q", got)
	}
	f.setEmail("UNKNOWN", "late@customer.example")
	if got := ids.Email(ctx, "UNKNOWN"); got != "late@customer.example" {
		t.Errorf("after an error: %q", got)
	}
	var nilIDs *Identities
	if nilIDs.Email(ctx, "U1") != "" {
		t.Error("nil Identities")
	}
}
