package defender

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// tick is the resolution of MDE timestamps (7 fractional digits).
const tick = 100 * time.Nanosecond

// parseTime reads the timestamps the Defender APIs send: RFC 3339 with 0 to
// 7 (or more) fractional digits, "Z" or an offset, and sometimes no zone at
// all (then UTC).
func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	// RFC3339Nano parses any number of fractional digits up to 9, and
	// none; more than 9 is cut (sub-100ns digits carry nothing).
	if t, err := time.Parse(time.RFC3339Nano, trimFraction(s)); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02T15:04:05.999999999", trimFraction(s)); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("bad timestamp %q", s)
}

// trimFraction shortens a fraction longer than 9 digits.
func trimFraction(s string) string {
	dot := strings.IndexByte(s, '.')
	if dot < 0 {
		return s
	}
	end := dot + 1
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	if end-dot-1 <= 9 {
		return s
	}
	return s[:dot+10] + s[end:]
}

// odataTime formats t for a $filter: UTC, unquoted, fractional digits
// only when needed (at most 7).
func odataTime(t time.Time) string {
	return t.UTC().Truncate(tick).Format("2006-01-02T15:04:05.9999999Z")
}

// jsonTime is a nullable timestamp in provider JSON. A value that is not a
// readable timestamp becomes the zero time rather than failing the alert:
// one odd field must not stop a tenant's fetch.
type jsonTime struct{ time.Time }

func (t *jsonTime) UnmarshalJSON(b []byte) error {
	t.Time = time.Time{}
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) != nil {
		return nil
	}
	if v, err := parseTime(s); err == nil {
		t.Time = v
	}
	return nil
}
