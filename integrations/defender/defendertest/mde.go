package defendertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// MDE is a fake Defender for Endpoint alert API (GET /api/alerts with the
// lastUpdateTime $filter forms, $top and $skip; GET and PATCH
// /api/alerts/{id}). Bearer tokens are checked against the IdP: a token
// only ever sees its own tenant's alerts. Its methods are the core it
// shares with Graph; its Calls and OnRequest use Call.
type MDE struct {
	URL string

	api[Call]
}

// The audience MDE tokens must be issued for.
const mdeAudience = "https://api.securitycenter.microsoft.com"

// NewMDE starts a fake MDE API that trusts tokens issued by idp.
func NewMDE(t testing.TB, idp *IdP) *MDE {
	t.Helper()
	m := &MDE{api: api[Call]{
		audience:    mdeAudience,
		timeField:   "lastUpdateTime",
		contentType: "application/json; odata.metadata=minimal; charset=utf-8",
		errorBody:   errorBody,
		prepare:     func(alert map[string]any, tenant string) { alert["aadTenantId"] = tenant },
		record:      func(c Call, _ *http.Request) Call { return c },
	}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/alerts", m.list)
	mux.HandleFunc("GET /api/alerts/{id}", m.getHandler(func(r *http.Request, alert map[string]any) map[string]any {
		a := copyAlert(alert)
		if r.URL.Query().Get("$expand") != "evidence" {
			a["evidence"] = []any{}
		}
		return a
	}))
	mux.HandleFunc("PATCH /api/alerts/{id}", m.patchHandler(mdePatch))
	m.URL = m.start(t, idp, mux)
	return m
}

var mdeErrors = errorMessages{
	http.StatusForbidden:           {"Forbidden", "The application does not have any of the required application permissions (Alert.ReadWrite.All, Alert.Read.All) to access the resource."},
	http.StatusNotFound:            {"NotFound", "Alert not found"},
	http.StatusInternalServerError: {"InternalServerError", "An internal server error occurred."},
	http.StatusBadRequest:          {"BadRequest", "Bad request"},
}

func errorBody(status int) []byte { return mdeErrors.body(status, Fixture, mdeError) }

func mdeError(code, msg string) []byte {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"code": code, "message": msg, "target": newGUID()}})
	return b
}

func mdeBadRequest(code, msg string) answer {
	return answer{status: http.StatusBadRequest, body: mdeError(code, msg)}
}

var filterRE = regexp.MustCompile(`^lastUpdateTime ge (\S+)(?: and lastUpdateTime lt (\S+))?$`)

func (m *MDE) list(w http.ResponseWriter, r *http.Request) {
	m.serve(w, r, func(tenant string) answer {
		q := r.URL.Query()
		lo, hi, err := parseWindow(filterRE, q.Get("$filter"), "Invalid filter: ")
		if err != nil {
			return mdeBadRequest("InvalidRequest", err.Error())
		}
		top, valid := parseTop(q.Get("$top"), 10000)
		if !valid {
			return mdeBadRequest("InvalidRequest", "$top must be between 1 and 10000")
		}
		skip := 0
		if v := q.Get("$skip"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return mdeBadRequest("InvalidRequest", "bad $skip")
			}
			skip = n
		}
		value, _ := m.window(tenant, lo, hi, skip, top, func(alert map[string]any) map[string]any {
			a := copyAlert(alert)
			a["evidence"] = []any{} // only with $expand=evidence
			return a
		})
		body, _ := json.Marshal(map[string]any{
			"@odata.context": m.URL + "/api/$metadata#Alerts",
			"value":          value,
		})
		return okBody(body)
	})
}

// mdePatch: MDE's PascalCase values, the comment a PATCH may carry, and
// resolvedTime.
var mdePatch = patchRules{
	values: map[string]map[string]bool{
		"status":         set("New", "InProgress", "Resolved"),
		"classification": set("TruePositive", "InformationalExpectedActivity", "FalsePositive"),
		"determination": set("MultiStagedAttack", "MaliciousUserActivity", "CompromisedUser", "Malware",
			"Phishing", "UnwantedSoftware", "SecurityTesting", "LineOfBusinessApplication",
			"ConfirmedUserActivity", "ConfirmedActivity", "Clean", "NotMalicious", "InsufficientData",
			"Other", "NotAvailable", "Apt", "SecurityPersonnel"),
		"assignedTo": nil,
		"comment":    nil,
	},
	refuse: func(e fieldError) answer {
		switch e.kind {
		case unknownField:
			return mdeBadRequest("InvalidRequestBody", "Unknown property "+e.field)
		case notString:
			return mdeBadRequest("InvalidRequestBody", e.field+" must be a string")
		case badValue:
			return mdeBadRequest("InvalidRequestBody", fmt.Sprintf("Invalid %s value %q", e.field, e.value))
		}
		return mdeBadRequest("InvalidRequestBody", "Request body is not a JSON object")
	},
	apply: func(a, fields map[string]any, now time.Time) {
		resolution(a, fields, "resolvedTime", now, "Resolved", "New", "InProgress")
		if c, ok := fields["comment"].(string); ok {
			comments, _ := a["comments"].([]any)
			a["comments"] = append(comments, map[string]any{
				"comment": c, "createdBy": "msspbot", "createdTime": formatTime(now),
			})
		}
	},
}
