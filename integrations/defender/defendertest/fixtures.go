package defendertest

import (
	"embed"
	"encoding/json"
	"fmt"
)

// The MDE fixtures of ../shared/fixtures/mde, copied here so that tests of
// other packages can use them.
//
//go:embed testdata/mde/*.json
var fixtures embed.FS

// Fixture returns a fixture file by name, e.g. "alerts-page.json",
// "alert-with-evidence.json", "error-401.json", "error-429.json".
func Fixture(name string) []byte {
	b, err := fixtures.ReadFile("testdata/mde/" + name)
	if err != nil {
		panic(fmt.Sprintf("defendertest: no fixture %q", name))
	}
	return b
}

// FixtureAlerts returns the alerts of alerts-page.json as maps.
func FixtureAlerts() []map[string]any {
	var page struct {
		Value []map[string]any `json:"value"`
	}
	if err := json.Unmarshal(Fixture("alerts-page.json"), &page); err != nil {
		panic(err)
	}
	return page.Value
}

// SampleAlert returns the alert of alert-with-evidence.json (High, New,
// with a related user and two evidence entities) with id set to id.
func SampleAlert(id string) map[string]any {
	var a map[string]any
	if err := json.Unmarshal(Fixture("alert-with-evidence.json"), &a); err != nil {
		panic(err)
	}
	if id != "" {
		a["id"] = id
	}
	return a
}
