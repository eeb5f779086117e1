package config

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

const day = 24 * time.Hour

// Duration is a time.Duration written as a Go duration ("90s", "24h") or
// in days ("180d", also "1d12h").
type Duration time.Duration

// Duration returns d as a time.Duration.
func (d Duration) Duration() time.Duration { return time.Duration(d) }

// String writes whole days as "Nd", anything else as a Go duration.
func (d Duration) String() string {
	td := time.Duration(d)
	if td > 0 && td%day == 0 {
		return strconv.FormatInt(int64(td/day), 10) + "d"
	}
	return td.String()
}

var daysRE = regexp.MustCompile(`^(\d+)d(.*)$`)

// ParseDuration parses a Go duration with an optional leading "Nd".
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	m := daysRE.FindStringSubmatch(s)
	if m == nil {
		return time.ParseDuration(s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n > int64(math.MaxInt64/int64(day)) {
		return 0, fmt.Errorf("duration %q out of range", s)
	}
	d := time.Duration(n) * day
	if m[2] == "" {
		return d, nil
	}
	rest, err := time.ParseDuration(m[2])
	if err != nil {
		return 0, err
	}
	if rest < 0 || d > math.MaxInt64-rest {
		return 0, errors.New("duration out of range")
	}
	return d + rest, nil
}

// UnmarshalYAML implements yaml.Unmarshaler. Errors are *yaml.TypeError so
// that decoding goes on and every bad key is reported.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: cannot unmarshal %s into config.Duration", n.Line, n.ShortTag())}}
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: invalid duration %q (e.g. 90s, 5m, 24h, 180d)", n.Line, n.Value)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }
