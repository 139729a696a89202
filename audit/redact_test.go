package audit

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestRedactKeepsTheChainVerifiable(t *testing.T) {
	c := chain(5)
	r := Redact(c[2])
	if !r.Redacted() || r.Hash != c[2].Hash || r.ComputeHash() != c[2].Hash {
		t.Fatalf("redacted event does not hash as before: %+v", r)
	}
	for _, personal := range []string{r.ActorID, r.SubjectID, r.ClientHash, r.RequestID} {
		if personal != "" {
			t.Fatalf("redaction kept payload: %+v", r)
		}
	}
	if strings.Contains(r.Details, "size") || !strings.HasPrefix(r.Details, RedactedPrefix) {
		t.Fatalf("redacted details %s", r.Details)
	}
	if r.Type != c[2].Type || !r.Time.Equal(c[2].Time) || r.Outcome != c[2].Outcome || r.SubjectType != c[2].SubjectType {
		t.Fatalf("redaction changed the header: %+v", r)
	}
	if Redact(r) != r {
		t.Fatal("redacting twice changes the event")
	}

	evs := clone(c)
	evs[2] = r
	res, err := Verify(context.Background(), sliceStore{events: evs}, "tenant-a")
	if err != nil || !res.OK() || res.Redacted != 1 {
		t.Fatalf("chain with a redacted event: %+v, %v", res, err)
	}

	// The header stays protected: a redacted event relabelled as another
	// type or moved in time no longer hashes to its stored value.
	relabelled := clone(evs)
	relabelled[2].Type = "auth.login"
	if res, _ := Verify(context.Background(), sliceStore{events: relabelled}, "tenant-a"); res.OK() || res.Problem.Kind != ProblemChanged {
		t.Fatalf("relabelled redacted event: %+v", res.Problem)
	}
	// A digest that is not the original payload's is a change too.
	forged := clone(evs)
	forged[2].Details = RedactedPrefix + strings.Repeat("0", 64) + `"}`
	if res, _ := Verify(context.Background(), sliceStore{events: forged}, "tenant-a"); res.OK() || res.Problem.EventID != c[2].ID {
		t.Fatalf("forged digest: %+v", res.Problem)
	}

	// The policy decides which redactions are legitimate.
	policy := VerifyOptions{MayRedact: func(e Event) bool { return e.Seq < 3 }}
	res, err = VerifyWith(context.Background(), sliceStore{events: evs}, "tenant-a", policy)
	if err != nil || res.OK() || res.Problem.Kind != ProblemRedacted || res.Problem.EventID != c[2].ID {
		t.Fatalf("redaction the policy forbids: %+v, %v", res.Problem, err)
	}
}

func TestVerifyFromRetentionAnchor(t *testing.T) {
	c := chain(6)
	anchor := &Anchor{Seq: 2, Hash: c[1].Hash}
	for _, tc := range []struct {
		name   string
		events []Event
		anchor *Anchor
		kind   ProblemKind
		atSeq  int64
	}{
		{"prefix deleted, anchor kept", c[2:], anchor, "", 0},
		{"prefix not yet deleted", c, anchor, "", 0},
		{"prefix deleted without anchor", c[2:], nil, ProblemRemoved, 3},
		{"more deleted than the anchor says", c[3:], anchor, ProblemRemoved, 4},
		{"anchor of another chain", c[2:], &Anchor{Seq: 2, Hash: strings.Repeat("f", 64)}, ProblemInserted, 3},
		{"kept event at the anchor differs from it", c, &Anchor{Seq: 2, Hash: c[0].Hash}, ProblemChanged, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := VerifyWith(context.Background(), sliceStore{events: tc.events}, "tenant-a", VerifyOptions{Anchor: tc.anchor})
			if err != nil {
				t.Fatal(err)
			}
			if tc.kind == "" {
				if !res.OK() || res.LastSeq != 6 || res.FirstSeq != tc.events[0].Seq {
					t.Fatalf("want intact: %+v", res)
				}
				return
			}
			if res.OK() || res.Problem.Kind != tc.kind || res.Problem.Seq != tc.atSeq {
				t.Fatalf("got %+v, want %s at seq %d", res.Problem, tc.kind, tc.atSeq)
			}
		})
	}
}

func TestCheckEventRefusesForgedRedaction(t *testing.T) {
	e := Redact(chain(1)[0])
	if err := CheckEvent(e); err == nil {
		t.Fatal("a new event in redacted form was accepted")
	}
}

// TestVerifyJudgesRedactionsByTheRecordedRun: a redaction is legitimate
// when a retention run recorded in the chain redacted business events up
// to a time after it, even if today's policy (here: nothing may be
// redacted, as after lengthening the period) would not allow it. A
// redaction after every recorded cutoff is still a finding, and a record
// altered to cover more is found as a changed event.
func TestVerifyJudgesRedactionsByTheRecordedRun(t *testing.T) {
	record := func(details string) Event {
		e := sample(5)
		e.Time = t0.Add(24*time.Hour + 3*time.Minute + 30*time.Second)
		e.Type, e.SubjectType, e.SubjectID, e.ActorID, e.ActorRole = RetentionAppliedType, "kasse", "tenant-a", "retention", "system"
		e.ClientHash, e.RequestID, e.Details = "", "", details
		return e
	}
	build := func(rec Event, redact ...int) []Event {
		var out []Event
		var prev *Event
		for i := 1; i <= 6; i++ {
			e := sample(i)
			if i == 5 {
				e = rec
			}
			out = append(out, Link(prev, e))
			prev = &out[len(out)-1]
		}
		for _, i := range redact {
			out[i-1] = Redact(out[i-1])
		}
		return out
	}
	today := VerifyOptions{MayRedact: func(Event) bool { return false }}
	cutoff := t0.Add(3*time.Minute + 30*time.Second) // events 1-3 are older
	for name, rec := range map[string]Event{
		"business_before": record(`{"business_before":"` + cutoff.Format(time.RFC3339Nano) + `","business_days":2190,"redacted":3}`),
		"business_days":   record(`{"business_days":1,"redacted":3}`), // a record of before business_before: time less days
	} {
		t.Run(name, func(t *testing.T) {
			res, err := VerifyWith(context.Background(), sliceStore{events: build(rec, 1, 2, 3)}, "tenant-a", today)
			if err != nil || !res.OK() || res.Redacted != 3 {
				t.Fatalf("redactions the recorded run covers: %+v, %v", res.Problem, err)
			}
			res, err = VerifyWith(context.Background(), sliceStore{events: build(rec, 1, 2, 3, 4)}, "tenant-a", today)
			if err != nil || res.OK() || res.Problem.Kind != ProblemRedacted || res.Problem.Seq != 4 {
				t.Fatalf("redaction after the recorded cutoff: %+v, %v", res.Problem, err)
			}
		})
	}
	// Moving the recorded cutoff to cover event 4 changes the record.
	evs := build(record(`{"business_before":"`+cutoff.Format(time.RFC3339Nano)+`","redacted":3}`), 1, 2, 3, 4)
	evs[4].Details = `{"business_before":"` + t0.Add(time.Hour).Format(time.RFC3339Nano) + `","redacted":3}`
	res, err := VerifyWith(context.Background(), sliceStore{events: evs}, "tenant-a", today)
	if err != nil || res.OK() || res.Problem.Kind != ProblemChanged || res.Problem.Seq != 5 {
		t.Fatalf("altered retention record: %+v, %v", res.Problem, err)
	}
	// Without a record, today's policy alone decides, as before.
	res, err = VerifyWith(context.Background(), sliceStore{events: build(sample(5), 1)}, "tenant-a", today)
	if err != nil || res.OK() || res.Problem.Kind != ProblemRedacted || res.Problem.Seq != 1 {
		t.Fatalf("redaction without a record: %+v, %v", res.Problem, err)
	}
}
