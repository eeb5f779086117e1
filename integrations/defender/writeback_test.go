package defender

import (
	"errors"
	"net/http"
	"testing"

	"github.com/msspbot/msspbot/bot"
	"github.com/msspbot/msspbot/integrations/defender/defendertest"
)

func TestApplyPatchBodies(t *testing.T) {
	cases := []struct {
		name string
		wb   bot.WriteBack
		body string
		// the alert afterwards
		status, assignee, class, det string
	}{
		{
			name:   "ack",
			wb:     bot.WriteBack{Kind: bot.WriteBackAck, Status: bot.StatusInProgress, AssignedTo: "analyst1@mssp.example", Comment: "Looking into it", Actor: "analyst1@mssp.example"},
			body:   `{"status":"InProgress","assignedTo":"analyst1@mssp.example","comment":"Looking into it"}`,
			status: "InProgress", assignee: "analyst1@mssp.example",
		},
		{
			name:   "ack without comment",
			wb:     bot.WriteBack{Kind: bot.WriteBackAck, Actor: "msspbot:slack:U012"},
			body:   `{"status":"InProgress","assignedTo":"msspbot:slack:U012","comment":"Acknowledged in msspbot by msspbot:slack:U012"}`,
			status: "InProgress", assignee: "msspbot:slack:U012",
		},
		{
			name:   "resolve",
			wb:     bot.WriteBack{Kind: bot.WriteBackResolve, Status: bot.StatusResolved, Classification: bot.ClassFalsePositive, Determination: "notMalicious", Comment: "benign admin tool"},
			body:   `{"status":"Resolved","classification":"FalsePositive","determination":"Clean","comment":"benign admin tool"}`,
			status: "Resolved", class: "FalsePositive", det: "Clean",
		},
		{
			name:   "resolve true positive, no comment",
			wb:     bot.WriteBack{Kind: bot.WriteBackResolve, Classification: bot.ClassTruePositive, Determination: "Malware"},
			body:   `{"status":"Resolved","classification":"TruePositive","determination":"Malware"}`,
			status: "Resolved", class: "TruePositive", det: "Malware",
		},
		{
			name:   "resolve informational",
			wb:     bot.WriteBack{Kind: bot.WriteBackResolve, Classification: bot.ClassInformational, Determination: "SecurityTesting"},
			body:   `{"status":"Resolved","classification":"InformationalExpectedActivity","determination":"SecurityTesting"}`,
			status: "Resolved", class: "InformationalExpectedActivity", det: "SecurityTesting",
		},
		{
			name:   "comment",
			wb:     bot.WriteBack{Kind: bot.WriteBackComment, Comment: "Customer confirms the user was travelling"},
			body:   `{"comment":"Customer confirms the user was travelling"}`,
			status: "New",
		},
		{
			name:   "reopen",
			wb:     bot.WriteBack{Kind: bot.WriteBackReopen, Status: bot.StatusNew},
			body:   `{"status":"New"}`,
			status: "New",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.idp.Consent(tenantA)
			id := e.mde.Put(tenantA, defendertest.SampleAlert("wb-1"))
			c.wb.TenantID, c.wb.AlertID = tenantA, id
			if err := e.c.Apply(ctxT(t), c.wb); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			p := e.mde.Patches()
			if len(p) != 1 {
				t.Fatalf("%d patches", len(p))
			}
			if string(p[0].Body) != c.body || p[0].Tenant != tenantA || p[0].AlertID != id || p[0].Method != http.MethodPatch || p[0].Status != 200 {
				t.Errorf("patch = %+v body %s\nwant body %s", p[0], p[0].Body, c.body)
			}
			a, _ := e.mde.Alert(tenantA, id)
			str := func(k string) string { s, _ := a[k].(string); return s }
			if str("status") != c.status || str("assignedTo") != c.assignee || str("classification") != c.class || str("determination") != c.det {
				t.Errorf("alert after patch: status %q assignedTo %q classification %q determination %q", str("status"), str("assignedTo"), str("classification"), str("determination"))
			}
		})
	}
}

func TestApplyDisabled(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.WriteBack = false })
	e.idp.Consent(tenantA)
	id := e.mde.Put(tenantA, defendertest.SampleAlert("wb-1"))
	if err := e.c.Apply(ctxT(t), bot.WriteBack{TenantID: tenantA, AlertID: id, Kind: bot.WriteBackAck, Actor: "a"}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if n := len(e.mde.Calls()); n != 0 || e.idp.TokenRequests(tenantA) != 0 {
		t.Errorf("write-back disabled but %d calls were made", n)
	}
}

func TestApplyErrors(t *testing.T) {
	e := newEnv(t)
	e.idp.Consent(tenantA)
	id := e.mde.Put(tenantA, defendertest.SampleAlert("wb-1"))
	permanent := func(err error) bool {
		var se *bot.SendError
		return errors.As(err, &se) && se.Permanent
	}
	if err := e.c.Apply(ctxT(t), bot.WriteBack{TenantID: tenantA, AlertID: "gone", Kind: bot.WriteBackReopen}); !permanent(err) {
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
		if err := e.c.Apply(ctxT(t), wb); !permanent(err) {
			t.Errorf("%+v: %v, want permanent", wb, err)
		}
	}
	e.mde.Inject(defendertest.Fault{Status: http.StatusBadRequest, Method: http.MethodPatch}, 1)
	if err := e.c.Apply(ctxT(t), bot.WriteBack{TenantID: tenantA, AlertID: id, Kind: bot.WriteBackReopen}); !permanent(err) {
		t.Errorf("400: %v, want permanent", err)
	}
	e.mde.FailNext(2, http.StatusForbidden)
	if err := e.c.Apply(ctxT(t), bot.WriteBack{TenantID: tenantA, AlertID: id, Kind: bot.WriteBackReopen}); !errors.Is(err, bot.ErrAuth) {
		t.Errorf("403: %v, want ErrAuth", err)
	}
	e.mde.ThrottleNext(10, 1)
	err := e.c.Apply(ctxT(t), bot.WriteBack{TenantID: tenantA, AlertID: id, Kind: bot.WriteBackReopen})
	var se *bot.SendError
	if !errors.As(err, &se) || se.Permanent || se.RetryAfter == 0 || !errors.Is(err, ErrThrottled) {
		t.Errorf("throttled: %v, want a retryable SendError with RetryAfter", err)
	}
	e.mde.ClearFaults()
	e.mde.FailNext(1, http.StatusBadGateway)
	if err := e.c.Apply(ctxT(t), bot.WriteBack{TenantID: tenantA, AlertID: id, Kind: bot.WriteBackReopen}); err != nil {
		t.Errorf("one 502 then success: %v", err)
	}
	// Only accepted patches changed the alert; the last one reopened it.
	if a, _ := e.mde.Alert(tenantA, id); a["status"] != "New" {
		t.Errorf("status = %v", a["status"])
	}
}
