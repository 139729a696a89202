package storagetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"testing"
	"time"

	"postbox/audit"
)

// TestEventStore is the contract every audit.EventStore passes. Beyond the
// interface comments it fixes these semantics, so all stores answer alike:
//   - Filter.From is inclusive, Filter.To exclusive; To must be after From
//     when both are set. Limit 0 means no limit; a negative Limit, a missing
//     TenantID or a bad range give an error wrapping audit.ErrInvalidFilter.
//   - Query orders by (Time, ID); After returns events strictly after it.
//   - Times come back in UTC with microsecond precision.
//   - CountByDayAndType applies every filter field except After and Limit,
//     orders by (Day, Type), and Day is midnight UTC.
//   - Chain orders by (Seq, ID) and stops with fn's error, wrapped.
//   - Scan calls fn with exactly what Query returns, in the same order, and
//     stops with fn's error, wrapped.
//   - Append rejects, as a whole, a batch with an event lacking ID, TenantID
//     or a time after 1970.
//
// newStore may return the same store every time: every subtest uses its own
// random tenant IDs, so a shared ClickHouse database works.
func TestEventStore(t *testing.T, newStore func(t *testing.T) audit.EventStore) {
	t.Run("QueryFilters", func(t *testing.T) { testQueryFilters(t, newStore(t)) })
	t.Run("TenantIsolation", func(t *testing.T) { testTenantIsolation(t, newStore(t)) })
	t.Run("Pagination", func(t *testing.T) { testPagination(t, newStore(t)) })
	t.Run("IdempotentAppend", func(t *testing.T) { testIdempotentAppend(t, newStore(t)) })
	t.Run("CountByDayAndType", func(t *testing.T) { testCountByDayAndType(t, newStore(t)) })
	t.Run("ChainOrderedBySeq", func(t *testing.T) { testChainOrder(t, newStore(t)) })
	t.Run("InvalidFilter", func(t *testing.T) { testInvalidFilter(t, newStore(t)) })
	t.Run("InvalidEvent", func(t *testing.T) { testInvalidEvent(t, newStore(t)) })
	t.Run("VerifyLinkedChain", func(t *testing.T) { testVerify(t, newStore(t)) })
	t.Run("ScanStreamsQueryResults", func(t *testing.T) { testScan(t, newStore(t)) })
	t.Run("Ping", func(t *testing.T) {
		if err := newStore(t).Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// base is a Monday; day two starts at base+24h (UTC).
var base = time.Date(2026, 3, 30, 0, 0, 0, 0, time.UTC)

var (
	types    = []string{"auth.login", "intake.upload.created", "vorgang.status.changed"}
	actors   = []string{"user-1", "user-2", `o'brien\"x`} // quotes test escaping
	subjects = [][2]string{{"vorgang", "V-1"}, {"vorgang", "V-2"}, {"upload", "V-1"}}
	outcomes = []audit.Outcome{audit.OutcomeSuccess, audit.OutcomeFailure, audit.OutcomeDenied}
)

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func tenant(name string) string { return "t-" + name + "-" + randHex(6) }

func newID() string {
	h := randHex(16)
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}

// dataset returns n varied events of one tenant across two UTC days, some
// sharing a time so ordering has to fall back to ID.
func dataset(tenantID string, n int) []audit.Event {
	evs := make([]audit.Event, n)
	for i := range evs {
		s := subjects[i%len(subjects)]
		evs[i] = audit.Event{
			ID:          newID(),
			TenantID:    tenantID,
			Seq:         int64(i + 1),
			Time:        base.Add(20*time.Hour + time.Duration(i/2)*17*time.Minute + time.Duration(i/2)*1234*time.Microsecond),
			ActorID:     actors[i%len(actors)],
			ActorRole:   "role-" + fmt.Sprint(i%2),
			Type:        types[(i/2)%len(types)],
			SubjectType: s[0],
			SubjectID:   s[1],
			Outcome:     outcomes[(i/3)%len(outcomes)],
			ClientHash:  randHex(8),
			RequestID:   "req-" + randHex(4),
			Details:     `{"note":"ä \"q\" \\ ` + "\n" + `","i":` + fmt.Sprint(i) + `}`,
			PrevHash:    randHex(32),
			Hash:        randHex(32),
		}
	}
	return evs
}

// matches is the reference semantics of a Filter.
func matches(e audit.Event, f audit.Filter) bool {
	return e.TenantID == f.TenantID &&
		(f.From.IsZero() || !e.Time.Before(f.From)) &&
		(f.To.IsZero() || e.Time.Before(f.To)) &&
		(f.Type == "" || e.Type == f.Type) &&
		(f.ActorID == "" || e.ActorID == f.ActorID) &&
		(f.SubjectType == "" || e.SubjectType == f.SubjectType) &&
		(f.SubjectID == "" || e.SubjectID == f.SubjectID) &&
		(f.Outcome == "" || e.Outcome == f.Outcome) &&
		(f.After == nil || e.Time.After(f.After.Time) || e.Time.Equal(f.After.Time) && e.ID > f.After.ID)
}

func sortTimeID(evs []audit.Event) {
	sort.Slice(evs, func(i, j int) bool {
		if !evs[i].Time.Equal(evs[j].Time) {
			return evs[i].Time.Before(evs[j].Time)
		}
		return evs[i].ID < evs[j].ID
	})
}

func expect(all []audit.Event, f audit.Filter) []audit.Event {
	var out []audit.Event
	for _, e := range all {
		if matches(e, f) {
			out = append(out, e)
		}
	}
	sortTimeID(out)
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out
}

func shuffled(evs []audit.Event) []audit.Event {
	out := append([]audit.Event(nil), evs...)
	for i := len(out) - 1; i > 0; i-- {
		j, _ := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		out[i], out[j.Int64()] = out[j.Int64()], out[i]
	}
	return out
}

func mustAppend(t *testing.T, s audit.EventStore, evs []audit.Event) {
	t.Helper()
	if err := s.Append(context.Background(), evs); err != nil {
		t.Fatalf("Append %d events: %v", len(evs), err)
	}
}

func mustQuery(t *testing.T, s audit.EventStore, f audit.Filter) []audit.Event {
	t.Helper()
	got, err := s.Query(context.Background(), f)
	if err != nil {
		t.Fatalf("Query %+v: %v", f, err)
	}
	return got
}

func chainOf(t *testing.T, s audit.EventStore, tenantID string) []audit.Event {
	t.Helper()
	var got []audit.Event
	err := s.Chain(context.Background(), tenantID, func(e audit.Event) error {
		got = append(got, e)
		return nil
	})
	if err != nil {
		t.Fatalf("Chain %s: %v", tenantID, err)
	}
	return got
}

// sameEvents reports the first difference between got and want, which must
// be in the same order.
func sameEvents(got, want []audit.Event) error {
	if len(got) != len(want) {
		return fmt.Errorf("got %d events, want %d\n got: %s\nwant: %s", len(got), len(want), ids(got), ids(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Time.Location() != time.UTC {
			return fmt.Errorf("event %d (%s): time %v is not in UTC", i, g.ID, g.Time)
		}
		if !g.Time.Equal(w.Time) {
			return fmt.Errorf("event %d (%s): time %s, want %s", i, g.ID,
				g.Time.Format(time.RFC3339Nano), w.Time.Format(time.RFC3339Nano))
		}
		g.Time = w.Time
		if g != w {
			return fmt.Errorf("event %d differs\n got: %+v\nwant: %+v", i, g, w)
		}
	}
	return nil
}

func ids(evs []audit.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = fmt.Sprintf("%s@%s", e.ID[:8], e.Time.UTC().Format("15:04:05.000000"))
	}
	return out
}

func testQueryFilters(t *testing.T, s audit.EventStore) {
	a, b := tenant("a"), tenant("b")
	all := dataset(a, 30)
	mustAppend(t, s, shuffled(all))
	mustAppend(t, s, dataset(b, 30)) // same shape, must never show up

	sorted := expect(all, audit.Filter{TenantID: a})
	cet := time.FixedZone("CET", 3600)
	cases := []struct {
		name string
		f    audit.Filter
	}{
		{"all", audit.Filter{}},
		{"from inclusive", audit.Filter{From: sorted[10].Time}},
		{"to exclusive", audit.Filter{To: sorted[10].Time}},
		{"from and to", audit.Filter{From: sorted[5].Time, To: sorted[20].Time}},
		{"from in another zone", audit.Filter{From: sorted[7].Time.In(cet)}},
		{"sub-microsecond bounds", audit.Filter{From: sorted[4].Time.Add(-1), To: sorted[9].Time.Add(1)}},
		{"type", audit.Filter{Type: types[1]}},
		{"actor with quotes", audit.Filter{ActorID: actors[2]}},
		{"subject type", audit.Filter{SubjectType: "vorgang"}},
		{"subject type and id", audit.Filter{SubjectType: "upload", SubjectID: "V-1"}},
		{"subject id", audit.Filter{SubjectID: "V-1"}},
		{"outcome", audit.Filter{Outcome: audit.OutcomeDenied}},
		{"combined", audit.Filter{Type: types[2], Outcome: audit.OutcomeSuccess, From: sorted[3].Time}},
		{"limit", audit.Filter{Limit: 5}},
		{"no match", audit.Filter{Type: "no.such.type"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := c.f
			f.TenantID = a
			want := expect(all, f)
			if c.name != "no match" && len(want) == 0 {
				t.Fatal("test data selects nothing; the case proves nothing")
			}
			if err := sameEvents(mustQuery(t, s, f), want); err != nil {
				t.Error(err)
			}
		})
	}
}

func testTenantIsolation(t *testing.T, s audit.EventStore) {
	a, b := tenant("a"), tenant("b")
	evA, evB := dataset(a, 12), dataset(b, 12)
	// B's events mirror A's in everything but tenant and ID.
	for i := range evB {
		id := evB[i].ID
		evB[i] = evA[i]
		evB[i].ID, evB[i].TenantID = id, b
	}
	mustAppend(t, s, append(shuffled(evA), evB...))

	for _, f := range []audit.Filter{
		{TenantID: a},
		{TenantID: a, Type: evA[0].Type, SubjectType: evA[0].SubjectType, SubjectID: evA[0].SubjectID},
		{TenantID: a, ActorID: evA[0].ActorID, Outcome: evA[0].Outcome, From: base, To: base.Add(72 * time.Hour)},
	} {
		for _, e := range mustQuery(t, s, f) {
			if e.TenantID != a {
				t.Fatalf("query %+v for tenant A returned an event of %s", f, e.TenantID)
			}
		}
		if err := sameEvents(mustQuery(t, s, f), expect(evA, f)); err != nil {
			t.Errorf("query %+v: %v", f, err)
		}
	}
	for _, e := range chainOf(t, s, a) {
		if e.TenantID != a {
			t.Fatalf("chain of tenant A holds an event of %s", e.TenantID)
		}
	}
	counts, err := s.CountByDayAndType(context.Background(), audit.Filter{TenantID: a})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, c := range counts {
		n += c.Count
	}
	if n != int64(len(evA)) {
		t.Errorf("counts for tenant A sum to %d, want %d", n, len(evA))
	}
	if got := mustQuery(t, s, audit.Filter{TenantID: tenant("none")}); len(got) != 0 {
		t.Errorf("unknown tenant: got %d events", len(got))
	}
}

// page collects every page of f, checking each page's size.
func page(t *testing.T, s audit.EventStore, f audit.Filter) []audit.Event {
	t.Helper()
	var out []audit.Event
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("pagination does not end")
		}
		got := mustQuery(t, s, f)
		if len(got) > f.Limit {
			t.Fatalf("page of %d events, limit %d", len(got), f.Limit)
		}
		out = append(out, got...)
		if len(got) < f.Limit {
			return out
		}
		last := got[len(got)-1]
		f.After = &audit.Cursor{Time: last.Time, ID: last.ID}
	}
}

func testPagination(t *testing.T, s audit.EventStore) {
	a := tenant("page")
	all := dataset(a, 23)
	// Three events at one instant: the page boundary falls inside the group.
	for i := 4; i < 7; i++ {
		all[i].Time = all[3].Time
	}
	mustAppend(t, s, shuffled(all))
	mustAppend(t, s, dataset(tenant("other"), 10))

	for _, f := range []audit.Filter{
		{TenantID: a, Limit: 4},
		{TenantID: a, Limit: 1},
		{TenantID: a, Limit: 23}, // exactly one full page, then an empty one
		{TenantID: a, Limit: 2, Type: types[0]},
		{TenantID: a, Limit: 3, From: all[2].Time, To: all[20].Time},
	} {
		got := page(t, s, f)
		seen := map[string]bool{}
		for _, e := range got {
			if seen[e.ID] {
				t.Fatalf("limit %d: event %s returned twice", f.Limit, e.ID)
			}
			seen[e.ID] = true
		}
		f.Limit = 0
		if err := sameEvents(got, expect(all, f)); err != nil {
			t.Errorf("pages of %+v: %v", f, err)
		}
	}
}

// linked returns n events of one tenant linked into a valid chain, with
// times running backwards so Seq order differs from Time order.
func linked(tenantID string, n int) []audit.Event {
	out := make([]audit.Event, 0, n)
	var prev *audit.Event
	for i, e := range dataset(tenantID, n) {
		e.Time = base.Add(30*time.Hour - time.Duration(i)*time.Minute + 999*time.Nanosecond)
		out = append(out, audit.Link(prev, e))
		prev = &out[len(out)-1]
	}
	return out
}

func testIdempotentAppend(t *testing.T, s audit.EventStore) {
	a := tenant("dup")
	evs := linked(a, 10)
	mustAppend(t, s, evs)
	mustAppend(t, s, shuffled(evs))                             // the whole batch shipped again
	mustAppend(t, s, append(evs[:5:5], evs[2], evs[2], evs[9])) // duplicates within one batch

	if err := sameEvents(mustQuery(t, s, audit.Filter{TenantID: a}), expect(evs, audit.Filter{TenantID: a})); err != nil {
		t.Errorf("query: %v", err)
	}
	if err := sameEvents(chainOf(t, s, a), evs); err != nil {
		t.Errorf("chain: %v", err)
	}
	if got := page(t, s, audit.Filter{TenantID: a, Limit: 3}); len(got) != len(evs) {
		t.Errorf("pages hold %d events, want %d", len(got), len(evs))
	}
	counts, err := s.CountByDayAndType(context.Background(), audit.Filter{TenantID: a})
	if err != nil {
		t.Fatal(err)
	}
	if want := expectCounts(evs, audit.Filter{TenantID: a}); !sameCounts(counts, want) {
		t.Errorf("counts %v, want %v", counts, want)
	}
	res, err := audit.Verify(context.Background(), s, a)
	if err != nil || !res.OK() || res.Checked != int64(len(evs)) {
		t.Errorf("verify after duplicates: %+v, %v", res, err)
	}
}

func expectCounts(evs []audit.Event, f audit.Filter) []audit.DayCount {
	f.After, f.Limit = nil, 0
	m := map[audit.DayCount]int64{}
	for _, e := range evs {
		if matches(e, f) {
			m[audit.DayCount{Day: e.Time.UTC().Truncate(24 * time.Hour), Type: e.Type}]++
		}
	}
	var out []audit.DayCount
	for k, n := range m {
		k.Count = n
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Day.Equal(out[j].Day) {
			return out[i].Day.Before(out[j].Day)
		}
		return out[i].Type < out[j].Type
	})
	return out
}

func sameCounts(got, want []audit.DayCount) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i].Day.Location() != time.UTC || !got[i].Day.Equal(want[i].Day) ||
			got[i].Type != want[i].Type || got[i].Count != want[i].Count {
			return false
		}
	}
	return true
}

func testCountByDayAndType(t *testing.T, s audit.EventStore) {
	a := tenant("count")
	day2 := base.Add(24 * time.Hour)
	cet := time.FixedZone("CET", 3600)
	at := []struct {
		t   time.Time
		typ string
	}{
		{base.Add(time.Hour), types[0]},
		{base.Add(2 * time.Hour), types[0]},
		{base.Add(3 * time.Hour), types[1]},
		{day2.Add(-time.Microsecond), types[1]},         // last instant of day one
		{day2.Add(30 * time.Minute).In(cet), types[0]},  // 00:30 UTC, 01:30 CET
		{day2.Add(-30 * time.Minute).In(cet), types[2]}, // day two in CET, day one in UTC
		{day2, types[1]},
		{day2.Add(5 * time.Hour), types[1]},
		{day2.Add(6 * time.Hour), types[2]},
	}
	evs := dataset(a, len(at))
	for i, x := range at {
		evs[i].Time, evs[i].Type = x.t, x.typ
	}
	mustAppend(t, s, evs)
	mustAppend(t, s, dataset(tenant("other"), 5))

	for _, f := range []audit.Filter{
		{TenantID: a},
		{TenantID: a, Type: types[1]},
		{TenantID: a, From: day2},
		{TenantID: a, From: base.Add(2 * time.Hour), To: day2.Add(5 * time.Hour)},
		{TenantID: a, Outcome: evs[0].Outcome},
		{TenantID: a, Limit: 1, After: &audit.Cursor{Time: day2, ID: "z"}}, // ignored for counts
	} {
		got, err := s.CountByDayAndType(context.Background(), f)
		if err != nil {
			t.Fatalf("counts %+v: %v", f, err)
		}
		if want := expectCounts(evs, f); !sameCounts(got, want) {
			t.Errorf("counts %+v:\n got %v\nwant %v", f, got, want)
		}
	}
	// The whole-tenant case in plain numbers, so the reference cannot hide a
	// shared mistake: day one has 2 logins, 2 uploads, 1 status change.
	got, _ := s.CountByDayAndType(context.Background(), audit.Filter{TenantID: a})
	var want []audit.DayCount
	for _, c := range []struct {
		day time.Time
		n   [3]int64 // per types[i]
	}{{base, [3]int64{2, 2, 1}}, {day2, [3]int64{1, 2, 1}}} {
		for i, n := range c.n {
			want = append(want, audit.DayCount{Day: c.day, Type: types[i], Count: n})
		}
	}
	if !sameCounts(got, want) {
		t.Errorf("counts:\n got %v\nwant %v", got, want)
	}
}

func testChainOrder(t *testing.T, s audit.EventStore) {
	a := tenant("chain")
	evs := linked(a, 12)
	mixed := shuffled(evs)
	mustAppend(t, s, mixed[:5])
	mustAppend(t, s, mixed[5:])
	mustAppend(t, s, linked(tenant("other"), 4))

	if err := sameEvents(chainOf(t, s, a), evs); err != nil {
		t.Errorf("chain: %v", err)
	}
	if got := chainOf(t, s, tenant("none")); len(got) != 0 {
		t.Errorf("chain of an unknown tenant holds %d events", len(got))
	}
	stop := errors.New("stop here")
	calls := 0
	err := s.Chain(context.Background(), a, func(audit.Event) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Chain with failing fn: err %v after %d calls, want the fn's error after 1", err, calls)
	}
}

func testInvalidFilter(t *testing.T, s audit.EventStore) {
	ctx := context.Background()
	a := tenant("inv")
	for name, f := range map[string]audit.Filter{
		"no tenant":      {Type: types[0]},
		"to before from": {TenantID: a, From: base.Add(time.Hour), To: base},
		"empty range":    {TenantID: a, From: base, To: base},
		"negative limit": {TenantID: a, Limit: -1},
	} {
		if _, err := s.Query(ctx, f); !errors.Is(err, audit.ErrInvalidFilter) {
			t.Errorf("Query with %s: err %v, want ErrInvalidFilter", name, err)
		}
		if f.Limit < 0 {
			continue // counts ignore Limit
		}
		if _, err := s.CountByDayAndType(ctx, f); !errors.Is(err, audit.ErrInvalidFilter) {
			t.Errorf("CountByDayAndType with %s: err %v, want ErrInvalidFilter", name, err)
		}
	}
	err := s.Chain(ctx, "", func(audit.Event) error { return nil })
	if !errors.Is(err, audit.ErrInvalidFilter) {
		t.Errorf("Chain without tenant: err %v, want ErrInvalidFilter", err)
	}
}

func testInvalidEvent(t *testing.T, s audit.EventStore) {
	a := tenant("bad")
	for name, mutate := range map[string]func(*audit.Event){
		"no id":        func(e *audit.Event) { e.ID = "" },
		"no tenant":    func(e *audit.Event) { e.TenantID = "" },
		"zero time":    func(e *audit.Event) { e.Time = time.Time{} },
		"before 1970":  func(e *audit.Event) { e.Time = time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC) },
		"after 2105":   func(e *audit.Event) { e.Time = time.Date(2106, 1, 1, 0, 0, 0, 0, time.UTC) },
		"negative seq": func(e *audit.Event) { e.Seq = -1 },
	} {
		evs := dataset(a, 2)
		mutate(&evs[1])
		if err := s.Append(context.Background(), evs); err == nil {
			t.Errorf("Append with %s: no error", name)
		}
	}
	if got := mustQuery(t, s, audit.Filter{TenantID: a}); len(got) != 0 {
		t.Errorf("rejected batches left %d events", len(got))
	}
	if err := s.Append(context.Background(), nil); err != nil {
		t.Errorf("Append of nothing: %v", err)
	}
}

func testVerify(t *testing.T, s audit.EventStore) {
	a := tenant("verify")
	evs := linked(a, 40)
	mixed := shuffled(evs)
	for i := 0; i < len(mixed); i += 7 {
		mustAppend(t, s, mixed[i:min(i+7, len(mixed))])
	}
	res, err := audit.Verify(context.Background(), s, a)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || res.Checked != 40 || res.LastSeq != 40 || res.LastHash != evs[39].Hash {
		t.Errorf("verify of a linked chain: %+v", res)
	}
}

func testScan(t *testing.T, s audit.EventStore) {
	ctx := context.Background()
	a := tenant("scan")
	all := dataset(a, 40)
	mustAppend(t, s, shuffled(all))
	mustAppend(t, s, all[:10]) // shipped twice: still once in a scan
	mustAppend(t, s, dataset(tenant("other"), 10))
	sorted := expect(all, audit.Filter{TenantID: a})
	for _, f := range []audit.Filter{
		{TenantID: a},
		{TenantID: a, Type: types[1]},
		{TenantID: a, Limit: 7},
		{TenantID: a, From: sorted[5].Time, To: sorted[30].Time, Limit: 12},
		{TenantID: a, After: &audit.Cursor{Time: sorted[9].Time, ID: sorted[9].ID}},
	} {
		var got []audit.Event
		if err := s.Scan(ctx, f, func(e audit.Event) error { got = append(got, e); return nil }); err != nil {
			t.Fatalf("Scan %+v: %v", f, err)
		}
		if err := sameEvents(got, expect(all, f)); err != nil {
			t.Errorf("Scan %+v: %v", f, err)
		}
		if err := sameEvents(got, mustQuery(t, s, f)); err != nil {
			t.Errorf("Scan and Query differ for %+v: %v", f, err)
		}
	}
	stop := errors.New("client went away")
	calls := 0
	err := s.Scan(ctx, audit.Filter{TenantID: a}, func(audit.Event) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 3 {
		t.Errorf("Scan with failing fn: err %v after %d calls, want the fn's error after 3", err, calls)
	}
	if err := s.Scan(ctx, audit.Filter{Type: types[0]}, func(audit.Event) error { return nil }); !errors.Is(err, audit.ErrInvalidFilter) {
		t.Errorf("Scan without tenant: %v", err)
	}
}
