package defendertest

import (
	"embed"
	"encoding/json"
	"fmt"
	"net/url"
)

// The Graph fixtures: the pages of ../shared/fixtures/graph, and cases of
// our own beside them (every evidence type, unknown enum members, error
// bodies).
//
//go:embed testdata/graph/*.json
var graphFixtures embed.FS

// GraphFixture returns a Graph fixture file by name: "alerts_v2-page1.json",
// "alerts_v2-page2.json", "alert-evidence.json", "alert-unknown-enums.json",
// "error-401.json", "error-429.json".
func GraphFixture(name string) []byte {
	b, err := graphFixtures.ReadFile("testdata/graph/" + name)
	if err != nil {
		panic(fmt.Sprintf("defendertest: no graph fixture %q", name))
	}
	return b
}

// GraphFixtureAlerts returns the alerts of both alerts_v2 pages, in order,
// as maps (three alerts; the first has device and user evidence).
func GraphFixtureAlerts() []map[string]any {
	var out []map[string]any
	for _, name := range []string{"alerts_v2-page1.json", "alerts_v2-page2.json"} {
		var page struct {
			Value []map[string]any `json:"value"`
		}
		if err := json.Unmarshal(GraphFixture(name), &page); err != nil {
			panic(err)
		}
		out = append(out, page.Value...)
	}
	return out
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
	var a map[string]any
	if err := json.Unmarshal(GraphFixture(name), &a); err != nil {
		panic(err)
	}
	if id != "" {
		a["id"] = id
		a["providerAlertId"] = id
		tid, _ := a["tenantId"].(string)
		a["alertWebUrl"] = "https://security.microsoft.com/alerts/" + url.PathEscape(id) + "?tid=" + tid
	}
	return a
}
