package defendertest

import (
	"embed"
	"encoding/json"
	"fmt"
	"net/url"
)

// The fixtures of ../shared/fixtures (mde and graph), copied here so that
// tests of other packages can use them, and Graph cases of our own beside
// them (every evidence type, unknown enum members, error bodies).
//
//go:embed testdata/mde/*.json testdata/graph/*.json
var fixtures embed.FS

// Fixture returns an MDE fixture file by name, e.g. "alerts-page.json",
// "alert-with-evidence.json", "error-401.json", "error-429.json".
func Fixture(name string) []byte { return readFixture("mde", "", name) }

// GraphFixture returns a Graph fixture file by name: "alerts_v2-page1.json",
// "alerts_v2-page2.json", "alert-evidence.json", "alert-unknown-enums.json",
// "error-401.json", "error-429.json".
func GraphFixture(name string) []byte { return readFixture("graph", "graph ", name) }

func readFixture(dir, kind, name string) []byte {
	b, err := fixtures.ReadFile("testdata/" + dir + "/" + name)
	if err != nil {
		panic(fmt.Sprintf("defendertest: no %sfixture %q", kind, name))
	}
	return b
}

// FixtureAlerts returns the alerts of alerts-page.json as maps.
func FixtureAlerts() []map[string]any { return pageAlerts(Fixture("alerts-page.json")) }

// GraphFixtureAlerts returns the alerts of both alerts_v2 pages, in order,
// as maps (three alerts; the first has device and user evidence).
func GraphFixtureAlerts() []map[string]any {
	return append(pageAlerts(GraphFixture("alerts_v2-page1.json")), pageAlerts(GraphFixture("alerts_v2-page2.json"))...)
}

// pageAlerts returns the "value" of a list page.
func pageAlerts(page []byte) []map[string]any {
	return decodeFixture[struct {
		Value []map[string]any `json:"value"`
	}](page).Value
}

func decodeFixture[T any](b []byte) T {
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		panic(err)
	}
	return v
}

// SampleAlert returns the alert of alert-with-evidence.json (High, New,
// with a related user and two evidence entities) with id set to id.
func SampleAlert(id string) map[string]any {
	a := decodeFixture[map[string]any](Fixture("alert-with-evidence.json"))
	if id != "" {
		a["id"] = id
	}
	return a
}

// GraphSampleAlert returns the alert of alert-evidence.json (high, new,
// one evidence entity of every kind) with id set to id.
func GraphSampleAlert(id string) map[string]any {
	return graphFixtureAlert("alert-evidence.json", id)
}

// GraphUnknownEnumsAlert returns the alert of alert-unknown-enums.json
// (unknownFutureValue everywhere, serviceSource microsoftSentinel, a
// member Graph sends only to clients that ask for it) with id set to id.
func GraphUnknownEnumsAlert(id string) map[string]any {
	return graphFixtureAlert("alert-unknown-enums.json", id)
}

func graphFixtureAlert(name, id string) map[string]any {
	a := decodeFixture[map[string]any](GraphFixture(name))
	if id != "" {
		a["id"] = id
		a["providerAlertId"] = id
		tid, _ := a["tenantId"].(string)
		a["alertWebUrl"] = "https://security.microsoft.com/alerts/" + url.PathEscape(id) + "?tid=" + tid
	}
	return a
}
