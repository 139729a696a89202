package storagetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"postbox/audit"
	"postbox/kasse"
)

// memAnchors is an in-memory audit.AnchorStore for the retention contract.
type memAnchors struct {
	mu sync.Mutex
	m  map[string]audit.Anchor
}

func (a *memAnchors) ChainAnchor(_ context.Context, tenantID string) (audit.Anchor, bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	x, ok := a.m[tenantID]
	return x, ok, nil
}

func (a *memAnchors) SetChainAnchor(_ context.Context, tenantID string, x audit.Anchor) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if x.Seq > a.m[tenantID].Seq {
		a.m[tenantID] = x
	}
	return nil
}

// retentionNow is "today" for the retention contract.
var retentionNow = time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)

// spec of one event of a retention test chain.
type spec struct {
	age     time.Duration // before retentionNow
	typ     string
	outcome audit.Outcome
}

const year = 365 * 24 * time.Hour

// retentionChain links events of tenantID from specs, oldest first.
func retentionChain(tenantID string, specs []spec) []audit.Event {
	var out []audit.Event
	var prev *audit.Event
	for i, sp := range specs {
		e := audit.Link(prev, audit.Event{
			ID: newID(), TenantID: tenantID, Time: retentionNow.Add(-sp.age),
			ActorID: fmt.Sprintf("acc-%d", i), ActorRole: "caseworker", Type: sp.typ,
			SubjectType: "vorgang", SubjectID: fmt.Sprintf("v-%d", i), Outcome: sp.outcome,
			ClientHash: randHex(16), RequestID: "req-" + randHex(4), Details: fmt.Sprintf(`{"i":%d}`, i),
		})
		out = append(out, e)
		prev = &out[len(out)-1]
	}
	return out
}

// TestRetentionStore is the contract of audit.RetentionStore, through
// audit.Retention: expired business events lose their payload, expired
// prefixes are deleted behind an anchor, and every chain still verifies.
// The store must not hold events of other tests in the years 2010-2024.
func TestRetentionStore(t *testing.T, s audit.RetentionEventStore) {
	ctx := context.Background()
	ok := audit.OutcomeSuccess
	// Tenant A keeps the defaults: security 10 years, business 6.
	a := tenant("ret-a")
	chainA := retentionChain(a, []spec{
		{12 * year, "auth.login", ok},                             // 1: deleted
		{11 * year, "vorgang.status.changed", ok},                 // 2: deleted
		{10*year + 24*time.Hour, "mailbox.message.sent", ok},      // 3: deleted
		{9 * year, "auth.login", ok},                              // 4 ← a young event ends the prefix
		{8 * year, "vorgang.status.changed", ok},                  // 5: redacted
		{7 * year, "vorgang.status.changed", audit.OutcomeDenied}, // 6: security (denied): kept whole
		{7 * year, "intake.submitted", ok},                        // 7: redacted
		{6*year + 24*time.Hour, "mailbox.thread.viewed", ok},      // 8: redacted
		{5 * year, "vorgang.status.changed", ok},                  // 9: young business: kept whole
		{24 * time.Hour, "auth.password.changed", ok},             // 10
		{time.Hour, "vorgang.status.changed", ok},                 // 11
	})
	// Tenant B keeps security events 2 years and messages 1 year; one old
	// event comes after a young one in seq order and must stay.
	b := tenant("ret-b")
	chainB := retentionChain(b, []spec{
		{4 * year, "auth.login", ok},                          // 1: deleted
		{3 * year, "mailbox.message.sent", ok},                // 2: deleted
		{18 * 30 * 24 * time.Hour, "auth.login", ok},          // 3: young for security
		{3 * year, "vorgang.status.changed", ok},              // 4: old, but after a young one: kept, redacted
		{6 * 30 * 24 * time.Hour, "mailbox.message.sent", ok}, // 5
	})
	// Tenant C is all young.
	c := tenant("ret-c")
	chainC := retentionChain(c, []spec{{30 * 24 * time.Hour, "vorgang.status.changed", ok}, {time.Hour, "auth.login", ok}})

	mustAppend(t, s, shuffled(append(append(append([]audit.Event(nil), chainA...), chainB...), chainC...)))
	mustAppend(t, s, chainA[4:6]) // shipped twice

	kA := kasse.Kasse{ID: a, Settings: kasse.DefaultSettings()}
	kB := kasse.Kasse{ID: b, Settings: kasse.DefaultSettings()}
	kB.Settings.AuditRetention, kB.Settings.MessageRetention = 2*year, year
	kC := kasse.Kasse{ID: c, Settings: kasse.DefaultSettings()}
	anchors := &memAnchors{m: map[string]audit.Anchor{}}
	r := &audit.Retention{Events: s, Anchors: anchors, Now: func() time.Time { return retentionNow }}

	reports, deleted, err := r.Apply(ctx, []kasse.Kasse{kA, kB, kC})
	if err != nil {
		t.Fatal(err)
	}
	if deleted != 5 {
		t.Errorf("deleted %d events, want 5 (3 of A, 2 of B)", deleted)
	}
	want := map[string]struct {
		redacted int64
		anchor   int64
	}{a: {3, 3}, b: {1, 2}, c: {0, 0}}
	for _, rep := range reports {
		w := want[rep.TenantID]
		if rep.Redacted != w.redacted || rep.Anchor.Seq != w.anchor {
			t.Errorf("report %s: redacted %d, anchor %d; want %d, %d", rep.TenantID, rep.Redacted, rep.Anchor.Seq, w.redacted, w.anchor)
		}
	}

	check := func(name string, chain []audit.Event, k kasse.Kasse, keep, redacted []int64) {
		t.Helper()
		got := chainOf(t, s, chain[0].TenantID)
		var seqs, red []int64
		for _, e := range got {
			seqs = append(seqs, e.Seq)
			orig := chain[e.Seq-1]
			if e.Redacted() {
				red = append(red, e.Seq)
				if e.Hash != orig.Hash || e.Type != orig.Type || !e.Time.Equal(orig.Time) || e.ActorID != "" || e.SubjectID != "" ||
					e.ClientHash != "" || e.RequestID != "" || e.Details == orig.Details {
					t.Errorf("%s: redacted event %d: %+v", name, e.Seq, e)
				}
			} else if err := sameEvents([]audit.Event{e}, []audit.Event{orig}); err != nil {
				t.Errorf("%s: kept event %d changed: %v", name, e.Seq, err)
			}
		}
		if fmt.Sprint(seqs) != fmt.Sprint(keep) || fmt.Sprint(red) != fmt.Sprint(redacted) {
			t.Errorf("%s: chain holds seq %v (redacted %v), want %v (redacted %v)", name, seqs, red, keep, redacted)
		}
		anchor, hasAnchor, _ := anchors.ChainAnchor(ctx, k.ID)
		o := audit.VerifyOptions{MayRedact: audit.PolicyFor(k.Settings).MayRedact(retentionNow)}
		if hasAnchor {
			o.Anchor = &anchor
		}
		res, err := audit.VerifyWith(ctx, s, k.ID, o)
		if err != nil || !res.OK() || res.LastSeq != int64(len(chain)) || res.Redacted != int64(len(redacted)) {
			t.Errorf("%s: verify after retention: %+v %v", name, res, err)
		}
		if hasAnchor {
			// Without the anchor the cut shows as removed events.
			if res, _ := audit.Verify(ctx, s, k.ID); res.OK() || res.Problem.Kind != audit.ProblemRemoved {
				t.Errorf("%s: verify without the anchor: %+v", name, res.Problem)
			}
		}
	}
	check("A", chainA, kA, []int64{4, 5, 6, 7, 8, 9, 10, 11}, []int64{5, 7, 8})
	check("B", chainB, kB, []int64{3, 4, 5}, []int64{4})
	check("C", chainC, kC, []int64{1, 2}, nil)

	// Redacted events no longer answer a query for their subject or actor.
	if got := mustQuery(t, s, audit.Filter{TenantID: a, SubjectID: "v-4"}); len(got) != 0 {
		t.Errorf("redacted event found by its subject: %+v", got)
	}
	if got := mustQuery(t, s, audit.Filter{TenantID: a, SubjectID: "v-5"}); len(got) != 1 || got[0].ID != chainA[5].ID {
		t.Errorf("denied event kept whole: %+v", got)
	}
	// Counts still see every remaining event once.
	counts, err := s.CountByDayAndType(ctx, audit.Filter{TenantID: a})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, c := range counts {
		n += c.Count
	}
	if n != 8 {
		t.Errorf("tenant A counts %d events after retention, want 8", n)
	}

	// A second run finds nothing to do and leaves every chain intact.
	reports, deleted, err = r.Apply(ctx, []kasse.Kasse{kA, kB, kC})
	if err != nil || deleted != 0 {
		t.Fatalf("second run: deleted %d, %v", deleted, err)
	}
	for _, rep := range reports {
		if rep.Redacted != 0 || rep.Truncated {
			t.Errorf("second run did work for %s: %+v", rep.TenantID, rep)
		}
	}
	check("A again", chainA, kA, []int64{4, 5, 6, 7, 8, 9, 10, 11}, []int64{5, 7, 8})

	// A stricter policy later: the business period now covers seq 9 too.
	kA.Settings.MessageRetention = 4 * year
	if _, _, err := r.Apply(ctx, []kasse.Kasse{kA}); err != nil {
		t.Fatal(err)
	}
	check("A stricter", chainA, kA, []int64{4, 5, 6, 7, 8, 9, 10, 11}, []int64{5, 7, 8, 9})
}
