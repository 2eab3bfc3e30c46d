package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestPrefersMinimal(t *testing.T) {
	for _, c := range []struct {
		headers []string
		want    bool
	}{
		{nil, false},
		{[]string{"return=minimal"}, true},
		{[]string{"RETURN = \"Minimal\""}, true},
		{[]string{"respond-async, return=minimal; foo=bar"}, true},
		{[]string{"wait=10", "return=minimal"}, true},
		{[]string{"return=representation"}, false},
		{[]string{"minimal"}, false},
		{[]string{"return-minimal"}, false},
		{[]string{"handling=strict; return=minimal"}, false}, // a parameter of another preference
	} {
		r := httptest.NewRequest("POST", "/", nil)
		for _, h := range c.headers {
			r.Header.Add("Prefer", h)
		}
		if got := prefersMinimal(r); got != c.want {
			t.Errorf("Prefer %q: minimal %v, want %v", c.headers, got, c.want)
		}
	}
}

// A submission and an amendment with "Prefer: return=minimal" answer
// the order's summary, say so, and change the order all the same;
// without it, the whole order.
func TestPreferMinimalAnswers(t *testing.T) {
	s := newStack(t, nil)
	minimal := map[string]string{"Authorization": "Bearer " + testToken, "Content-Type": "application/json", "Prefer": "return=minimal"}
	resp, data := s.request(t, http.MethodPost, "/v1/orders", activeOrder(t), minimal)
	wantStatus(t, resp, data, http.StatusCreated)
	if got := resp.Header.Get("Preference-Applied"); got != "return=minimal" {
		t.Errorf("Preference-Applied %q", got)
	}
	var created orderSummary
	if err := json.Unmarshal(data, &created); err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	json.Unmarshal(data, &fields)
	if _, ok := fields["authority"]; ok || created.ID == "" || created.Targets == 0 || !created.Enforced || resp.Header.Get("Location") != "/v1/orders/"+created.ID {
		t.Fatalf("minimal answer to a submission: %s (Location %q)", data, resp.Header.Get("Location"))
	}

	body, _ := json.Marshal(map[string]any{"add": []map[string]any{{"fqdn": "mirror-one.example"}, {"ip": "104.16.0.1"}}})
	resp, data = s.request(t, http.MethodPost, "/v1/orders/"+created.ID+"/amendments", body, minimal)
	wantStatus(t, resp, data, http.StatusOK)
	var amended orderSummary
	if err := json.Unmarshal(data, &amended); err != nil {
		t.Fatal(err)
	}
	// The shared-infrastructure address is held.
	if amended.Targets != created.Targets+2 || amended.Held != created.Held+1 || amended.Amendments != 1 || resp.Header.Get("Preference-Applied") != "return=minimal" {
		t.Fatalf("minimal answer to an amendment: %s after %+v", data, created)
	}

	// Without the preference: the whole order, with its new target.
	resp, data = s.request(t, http.MethodPost, "/v1/orders/"+created.ID+"/amendments",
		[]byte(`{"add":[{"fqdn":"mirror-two.example"}]}`), authJSON)
	wantStatus(t, resp, data, http.StatusOK)
	full := decode[orderResp](t, data)
	if resp.Header.Get("Preference-Applied") != "" || len(full.Targets) != amended.Targets+1 || full.Targets[len(full.Targets)-1].FQDN != "mirror-two.example" {
		t.Fatalf("full answer: %s", data)
	}
}
