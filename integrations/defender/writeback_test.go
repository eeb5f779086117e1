package defender

import (
	"errors"
	"net/http"
	"testing"

	"github.com/msspbot/msspbot/bot"
	"github.com/msspbot/msspbot/integrations/defender/defendertest"
)

// alertState is what a write-back changes on an alert.
type alertState struct{ status, assignee, class, det string }

func stateOf(a map[string]any) alertState {
	str := func(k string) string { s, _ := a[k].(string); return s }
	return alertState{str("status"), str("assignedTo"), str("classification"), str("determination")}
}

// TestApplyBodies checks what Apply sends to each API and the alert
// afterwards. MDE takes the comment in the PATCH; Graph takes it as a
// POST of its own, after the PATCH.
func TestApplyBodies(t *testing.T) {
	const ct = `{"@odata.type":"microsoft.graph.security.alertComment","comment":`
	type sent struct {
		patch   string // "" = no PATCH
		comment string // "" = no comment POST (Graph)
		alert   alertState
	}
	cases := []struct {
		name       string
		wb         bot.WriteBack
		mde, graph *sent // nil: the case is not run against that API
	}{
		{
			name: "ack",
			wb:   bot.WriteBack{Kind: bot.WriteBackAck, Status: bot.StatusInProgress, AssignedTo: "analyst1@mssp.example", Comment: "Looking into it", Actor: "analyst1@mssp.example"},
			mde: &sent{
				patch: `{"status":"InProgress","assignedTo":"analyst1@mssp.example","comment":"Looking into it"}`,
				alert: alertState{status: "InProgress", assignee: "analyst1@mssp.example"},
			},
			graph: &sent{
				patch: `{"status":"inProgress","assignedTo":"analyst1@mssp.example"}`, comment: ct + `"Looking into it"}`,
				alert: alertState{status: "inProgress", assignee: "analyst1@mssp.example"},
			},
		},
		{
			name: "ack without comment",
			wb:   bot.WriteBack{Kind: bot.WriteBackAck, Actor: "msspbot:slack:U012"},
			mde: &sent{
				patch: `{"status":"InProgress","assignedTo":"msspbot:slack:U012","comment":"Acknowledged in msspbot by msspbot:slack:U012"}`,
				alert: alertState{status: "InProgress", assignee: "msspbot:slack:U012"},
			},
			graph: &sent{
				patch: `{"status":"inProgress","assignedTo":"msspbot:slack:U012"}`, comment: ct + `"Acknowledged in msspbot by msspbot:slack:U012"}`,
				alert: alertState{status: "inProgress", assignee: "msspbot:slack:U012"},
			},
		},
		{
			name: "resolve",
			wb:   bot.WriteBack{Kind: bot.WriteBackResolve, Status: bot.StatusResolved, Classification: bot.ClassFalsePositive, Determination: "notMalicious", Comment: "benign admin tool"},
			mde: &sent{
				patch: `{"status":"Resolved","classification":"FalsePositive","determination":"Clean","comment":"benign admin tool"}`,
				alert: alertState{status: "Resolved", class: "FalsePositive", det: "Clean"},
			},
		},
		{
			name: "resolve with a Graph determination",
			wb:   bot.WriteBack{Kind: bot.WriteBackResolve, Classification: bot.ClassFalsePositive, Determination: "notMalicious", Comment: "benign admin tool"},
			graph: &sent{
				patch: `{"status":"resolved","classification":"falsePositive","determination":"notMalicious"}`, comment: ct + `"benign admin tool"}`,
				alert: alertState{status: "resolved", class: "falsePositive", det: "notMalicious"},
			},
		},
		{
			name: "resolve true positive, no comment",
			wb:   bot.WriteBack{Kind: bot.WriteBackResolve, Classification: bot.ClassTruePositive, Determination: "Malware"},
			mde: &sent{
				patch: `{"status":"Resolved","classification":"TruePositive","determination":"Malware"}`,
				alert: alertState{status: "Resolved", class: "TruePositive", det: "Malware"},
			},
		},
		{
			name: "resolve with an MDE determination",
			wb:   bot.WriteBack{Kind: bot.WriteBackResolve, Classification: bot.ClassTruePositive, Determination: "CompromisedUser"},
			graph: &sent{
				patch: `{"status":"resolved","classification":"truePositive","determination":"compromisedAccount"}`,
				alert: alertState{status: "resolved", class: "truePositive", det: "compromisedAccount"},
			},
		},
		{
			name: "resolve informational",
			wb:   bot.WriteBack{Kind: bot.WriteBackResolve, Classification: bot.ClassInformational, Determination: "SecurityTesting"},
			mde: &sent{
				patch: `{"status":"Resolved","classification":"InformationalExpectedActivity","determination":"SecurityTesting"}`,
				alert: alertState{status: "Resolved", class: "InformationalExpectedActivity", det: "SecurityTesting"},
			},
		},
		{
			name: "resolve informational, MDE alias",
			wb:   bot.WriteBack{Kind: bot.WriteBackResolve, Classification: bot.ClassInformational, Determination: "ConfirmedActivity"},
			graph: &sent{
				patch: `{"status":"resolved","classification":"informationalExpectedActivity","determination":"confirmedActivity"}`,
				alert: alertState{status: "resolved", class: "informationalExpectedActivity", det: "confirmedActivity"},
			},
		},
		{
			name: "resolve unclassified",
			wb:   bot.WriteBack{Kind: bot.WriteBackResolve, Determination: "Other"},
			graph: &sent{
				patch: `{"status":"resolved","determination":"other"}`,
				alert: alertState{status: "resolved", det: "other"},
			},
		},
		{
			name: "comment",
			wb:   bot.WriteBack{Kind: bot.WriteBackComment, Comment: "Customer confirms the user was travelling"},
			mde: &sent{
				patch: `{"comment":"Customer confirms the user was travelling"}`,
				alert: alertState{status: "New"},
			},
		},
		{
			name: "comment that needs escaping",
			wb:   bot.WriteBack{Kind: bot.WriteBackComment, Comment: `Customer says "travelling" <ok> & fine`},
			graph: &sent{
				comment: ct + `"Customer says \"travelling\" \u003cok\u003e \u0026 fine"}`,
				alert:   alertState{status: "new"},
			},
		},
		{
			name:  "reopen",
			wb:    bot.WriteBack{Kind: bot.WriteBackReopen, Status: bot.StatusNew},
			mde:   &sent{patch: `{"status":"New"}`, alert: alertState{status: "New"}},
			graph: &sent{patch: `{"status":"new"}`, alert: alertState{status: "new"}},
		},
		{
			name:  "reopen with comment",
			wb:    bot.WriteBack{Kind: bot.WriteBackReopen, Comment: "new evidence"},
			graph: &sent{patch: `{"status":"new"}`, comment: ct + `"new evidence"}`, alert: alertState{status: "new"}},
		},
	}
	// An alert id per API; Graph's needs escaping.
	ids := map[string]string{"mde": "wb-1", "graph": "wb/1 x"}
	for _, c := range cases {
		for _, api := range apis {
			want := map[string]*sent{"mde": c.mde, "graph": c.graph}[api.name]
			if want == nil {
				continue
			}
			t.Run(api.name+"/"+c.name, func(t *testing.T) {
				e := api.newEnv(t)
				e.idp.Consent(tenantA)
				id := e.fake.Put(tenantA, api.sample(ids[api.name]))
				wb := c.wb
				wb.TenantID, wb.AlertID = tenantA, id
				if err := e.c.Apply(ctxT(t), wb); err != nil {
					t.Fatalf("Apply: %v", err)
				}
				ps := e.fake.Patches()
				if want.patch == "" && len(ps) != 0 {
					t.Errorf("unexpected PATCH %s", ps[0].Body)
				}
				if want.patch != "" && (len(ps) != 1 || string(ps[0].Body) != want.patch || ps[0].AlertID != id || ps[0].Tenant != tenantA ||
					ps[0].Method != http.MethodPatch || ps[0].Status != 200) {
					t.Errorf("patches = %+v, want body %s", ps, want.patch)
				}
				if e.g != nil {
					cs := e.g.Comments()
					if want.comment == "" && len(cs) != 0 {
						t.Errorf("unexpected comment %s", cs[0].Body)
					}
					if want.comment != "" && (len(cs) != 1 || string(cs[0].Body) != want.comment || cs[0].AlertID != id || cs[0].Status != 200) {
						t.Errorf("comments = %+v, want body %s", cs, want.comment)
					}
					// The PATCH comes before the comment.
					calls := e.g.Calls()
					if want.patch != "" && want.comment != "" && (len(calls) != 2 || calls[0].Method != http.MethodPatch || calls[1].Method != http.MethodPost) {
						t.Errorf("order of calls: %+v", calls)
					}
				}
				a, _ := e.fake.Alert(tenantA, id)
				if got := stateOf(a); got != want.alert {
					t.Errorf("alert after write-back: %+v, want %+v", got, want.alert)
				}
			})
		}
	}
}

func TestApplyDisabled(t *testing.T) {
	for _, api := range apis {
		t.Run(api.name, func(t *testing.T) {
			e := api.newEnv(t, func(c *Config) { c.WriteBack = false })
			e.idp.Consent(tenantA)
			id := e.fake.Put(tenantA, api.sample("wb-1"))
			if err := e.c.Apply(ctxT(t), bot.WriteBack{TenantID: tenantA, AlertID: id, Kind: bot.WriteBackAck, Actor: "a@b"}); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if n := e.fake.CallCount(); n != 0 || e.idp.TokenRequests(tenantA) != 0 {
				t.Errorf("write-back disabled but %d calls were made", n)
			}
		})
	}
}

// permanent reports whether err is a SendError not worth retrying.
func permanent(err error) (*bot.SendError, bool) {
	var se *bot.SendError
	return se, errors.As(err, &se) && se.Permanent
}

// expectRefused checks that Apply refuses for good a write-back of a
// missing alert and malformed write-backs of alert id.
func expectRefused(t *testing.T, e *env, id string) {
	t.Helper()
	if err := e.c.Apply(ctxT(t), bot.WriteBack{TenantID: tenantA, AlertID: "gone", Kind: bot.WriteBackReopen}); !isPermanent(err) {
		t.Errorf("missing alert: %v, want permanent", err)
	}
	for _, wb := range []bot.WriteBack{
		{TenantID: tenantA, AlertID: id, Kind: "escalate"},
		{TenantID: tenantA, AlertID: id, Kind: bot.WriteBackComment},
		{TenantID: tenantA, AlertID: id, Kind: bot.WriteBackResolve, Determination: "Aliens"},
		{TenantID: tenantA, AlertID: id, Kind: bot.WriteBackResolve, Classification: "Maybe"},
		{TenantID: tenantA, Kind: bot.WriteBackReopen},
		{TenantID: "nope", AlertID: id, Kind: bot.WriteBackReopen},
	} {
		if err := e.c.Apply(ctxT(t), wb); !isPermanent(err) {
			t.Errorf("%+v: %v, want permanent", wb, err)
		}
	}
}

func isPermanent(err error) bool {
	_, ok := permanent(err)
	return ok
}

// expectAuthThenThrottled checks wb against 403s (ErrAuth) and 429s (a
// retryable SendError with RetryAfter), then clears the faults.
func expectAuthThenThrottled(t *testing.T, e *env, wb bot.WriteBack) {
	t.Helper()
	e.fake.FailNext(2, http.StatusForbidden)
	if err := e.c.Apply(ctxT(t), wb); !errors.Is(err, bot.ErrAuth) {
		t.Errorf("403: %v, want ErrAuth", err)
	}
	e.fake.ThrottleNext(10, 1)
	err := e.c.Apply(ctxT(t), wb)
	var se *bot.SendError
	if !errors.As(err, &se) || se.Permanent || se.RetryAfter == 0 || !errors.Is(err, ErrThrottled) {
		t.Errorf("throttled: %v, want a retryable SendError with RetryAfter", err)
	}
	e.fake.ClearFaults()
}

func TestApplyErrors(t *testing.T) {
	e := newEnv(t)
	e.idp.Consent(tenantA)
	id := e.mde.Put(tenantA, defendertest.SampleAlert("wb-1"))
	expectRefused(t, e, id)
	reopen := bot.WriteBack{TenantID: tenantA, AlertID: id, Kind: bot.WriteBackReopen}
	e.mde.Inject(defendertest.Fault{Status: http.StatusBadRequest, Method: http.MethodPatch}, 1)
	if err := e.c.Apply(ctxT(t), reopen); !isPermanent(err) {
		t.Errorf("400: %v, want permanent", err)
	}
	expectAuthThenThrottled(t, e, reopen)
	e.mde.FailNext(1, http.StatusBadGateway)
	if err := e.c.Apply(ctxT(t), reopen); err != nil {
		t.Errorf("one 502 then success: %v", err)
	}
	// Only accepted patches changed the alert; the last one reopened it.
	if a, _ := e.mde.Alert(tenantA, id); a["status"] != "New" {
		t.Errorf("status = %v", a["status"])
	}
}
