//go:build integration

package clickhouse

import (
	"context"
	"fmt"
	"testing"
	"time"

	"postbox/audit"
)

// TestRedactionInFlightShowsOneRow: between appending the redacted form of
// an event and the mutation that deletes the original (RedactBusiness),
// both rows are stored. Queries, pages, counts and Verify must see the
// event once, as its redacted form, whichever part holds which row.
func TestRedactionInFlightShowsOneRow(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, redactedFirst := range []bool{false, true} {
		tenant := fmt.Sprintf("inflight-%v-%s", redactedFirst, s.db)
		var evs []audit.Event
		var prev *audit.Event
		start := time.Now().UTC().Add(-time.Hour)
		for i := range 4 {
			e := audit.Link(prev, audit.Event{ID: fmt.Sprintf("%s-%d", tenant, i), TenantID: tenant,
				Time: start.Add(time.Duration(i) * time.Second), Type: "mailbox.message.sent", ActorID: "acc-1", ActorRole: "caseworker",
				SubjectType: "thread", SubjectID: "th-1", Outcome: audit.OutcomeSuccess, RequestID: "req", Details: `{"n":1}`})
			evs = append(evs, e)
			prev = &evs[len(evs)-1]
		}
		red := audit.Redact(evs[1])
		// Separate appends: separate parts, so the server's order of the
		// two rows is up to the read, not the insert.
		first, second := evs, []audit.Event{red}
		if redactedFirst {
			first, second = second, evs
		}
		for _, b := range [][]audit.Event{first, second} {
			if err := s.Append(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		want := append([]audit.Event(nil), evs...)
		want[1] = red

		got, err := s.Query(ctx, audit.Filter{TenantID: tenant})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("redacted first=%v: query returned\n%v\nwant\n%v", redactedFirst, got, want)
		}
		// Page by page, one event a page: the page ends between the rows.
		var paged []audit.Event
		f := audit.Filter{TenantID: tenant, Limit: 1}
		for {
			page, err := s.Query(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			paged = append(paged, page...)
			f.After = &audit.Cursor{Time: page[0].Time, ID: page[0].ID}
		}
		if fmt.Sprint(paged) != fmt.Sprint(want) {
			t.Errorf("redacted first=%v: pages returned\n%v\nwant\n%v", redactedFirst, paged, want)
		}
		counts, err := s.CountByDayAndType(ctx, audit.Filter{TenantID: tenant})
		if err != nil || len(counts) != 1 || counts[0].Count != 4 {
			t.Errorf("redacted first=%v: counts %+v, %v; want 4 events", redactedFirst, counts, err)
		}
		res, err := audit.VerifyWith(ctx, s, tenant, audit.VerifyOptions{MayRedact: func(e audit.Event) bool { return e.ID == red.ID }})
		if err != nil || !res.OK() || res.Checked != 4 || res.Redacted != 1 {
			t.Errorf("redacted first=%v: verify %+v, %v; want 4 events, 1 redacted, intact", redactedFirst, res, err)
		}
	}
}
