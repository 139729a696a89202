package audit

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestNewEventTakesTheRequestOrigin(t *testing.T) {
	o := Origin{TenantID: "k1", ActorID: "acc-7", ActorRole: "caseworker", RequestID: "req-12345678", ClientHash: "c0ffee"}
	ctx := WithOrigin(context.Background(), o)
	e := NewEvent(ctx, "vorgang.status.changed", "vorgang", "v-1", "", Details{"from": "eingegangen", "to": "in_bearbeitung"})
	want := Event{TenantID: "k1", ActorID: "acc-7", ActorRole: "caseworker", RequestID: "req-12345678", ClientHash: "c0ffee",
		Type: "vorgang.status.changed", SubjectType: "vorgang", SubjectID: "v-1", Outcome: OutcomeSuccess,
		Details: `{"from":"eingegangen","to":"in_bearbeitung"}`}
	if e != want {
		t.Fatalf("event\n got %+v\nwant %+v", e, want)
	}
	if got := NewEvent(context.Background(), "x.y.z", "", "", OutcomeDenied, nil); got.TenantID != "" || got.Details != "{}" || got.Outcome != OutcomeDenied {
		t.Fatalf("event without origin: %+v", got)
	}
	sys := NewEvent(WithOrigin(context.Background(), System("k1", "retention")), "audit.retention.applied", "kasse", "k1", "", nil)
	if sys.ActorID != "retention" || sys.ActorRole != "system" || sys.ClientHash != "" {
		t.Fatalf("system event: %+v", sys)
	}
}

func TestClientHasherShortensThenHashes(t *testing.T) {
	key := []byte(strings.Repeat("k", 32))
	h := NewClientHasher(key)
	other := NewClientHasher([]byte(strings.Repeat("x", 32)))
	for _, tc := range []struct {
		name   string
		a, b   string
		sameAs bool
	}{
		{"same /24 is one pseudonym", "192.0.2.10", "192.0.2.250", true},
		{"port and brackets ignored", "192.0.2.10:51234", "192.0.2.11", true},
		{"IPv4-mapped IPv6 is IPv4", "[::ffff:192.0.2.7]:80", "192.0.2.9", true},
		{"next /24 differs", "192.0.2.10", "192.0.3.10", false},
		{"same IPv6 /48 is one pseudonym", "2001:db8:1234:1::1", "[2001:db8:1234:ffff::99]:443", true},
		{"other IPv6 /48 differs", "2001:db8:1234::1", "2001:db8:1235::1", false},
	} {
		ha, hb := h.Hash(tc.a), h.Hash(tc.b)
		if ha == "" || hb == "" {
			t.Fatalf("%s: empty hash for %q or %q", tc.name, tc.a, tc.b)
		}
		if (ha == hb) != tc.sameAs {
			t.Errorf("%s: Hash(%q)=%s Hash(%q)=%s", tc.name, tc.a, ha, tc.b, hb)
		}
		if len(ha) != 32 || strings.Contains(ha, "192") {
			t.Errorf("%s: hash %q is not 128 bits of hex", tc.name, ha)
		}
		if other.Hash(tc.a) == ha {
			t.Errorf("%s: hash does not depend on the key", tc.name)
		}
	}
	for _, bad := range []string{"", "unknown", "999.1.1.1"} {
		if got := h.Hash(bad); got != "" {
			t.Errorf("Hash(%q) = %q, want empty", bad, got)
		}
	}
	if p, _ := ClientNetwork("192.0.2.77"); p.String() != "192.0.2.0/24" {
		t.Errorf("network of 192.0.2.77 = %s", p)
	}
}

func TestCheckEventRefusesContentAndPersonalData(t *testing.T) {
	for _, tc := range []struct {
		details string
		ok      bool
	}{
		{`{}`, true},
		{``, true},
		{`{"from":"eingegangen","to":"in_bearbeitung"}`, true},
		{`{"reason":"content_type","type":"application/pdf","size":42}`, true},
		{`{"thread":"t-1","attachments":2,"nested":{"ids":["a","b"]}}`, true},
		{`{"reason":"Der Versicherte hat angerufen"}`, false}, // free-text reason
		{`{"text":"Guten Tag"}`, false},
		{`{"Message_Text":"x"}`, false},
		{`{"fileName":"befund.pdf"}`, false},
		{`{"nested":{"email":"x"}}`, false},
		{`{"list":[{"kvnr":"A123456780"}]}`, false},
		{`{"who":"erika@example.de"}`, false},
		{`{"password":"x"}`, false},
		{`{"pin":"1234"}`, false},
		{`{"ip":"192.0.2.1"}`, false},
		{`{"v":"line one` + "\\n" + `line two"}`, false},
		{`{"v":"` + strings.Repeat("a", 300) + `"}`, false},
		{`[1,2]`, false},
		{`not json`, false},
	} {
		err := CheckEvent(Event{Type: "x.y.z", Details: tc.details})
		if (err == nil) != tc.ok {
			t.Errorf("details %.60s: err %v, want ok=%v", tc.details, err, tc.ok)
		}
		if !tc.ok && json.Valid([]byte(tc.details)) && strings.HasPrefix(tc.details, "{") && !errors.Is(err, ErrForbiddenDetail) {
			t.Errorf("details %.60s: err %v does not wrap ErrForbiddenDetail", tc.details, err)
		}
		if err != nil && (strings.Contains(err.Error(), "erika") || strings.Contains(err.Error(), "Guten")) {
			t.Errorf("error repeats the forbidden value: %v", err)
		}
	}
	if CheckEvent(Event{Details: "{}"}) == nil {
		t.Error("event without type accepted")
	}
}
