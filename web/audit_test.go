package web_test

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"postbox/audit"
	"postbox/auth"
	"postbox/storage/sqlite"
	"postbox/web"
)

// auditWorld is the Vorgang world plus events of both Kassen in the
// embedded event store and the auditor API.
type auditWorld struct {
	*vorgangWorld
	events []audit.Event // tenant A's, linked
	day    time.Time
}

func newAuditWorld(t *testing.T) *auditWorld {
	t.Helper()
	w := &auditWorld{vorgangWorld: newVorgangWorld(t), day: time.Date(2026, 3, 30, 0, 0, 0, 0, time.UTC)}
	store := sqlite.NewEventStore(w.store.DB())
	mk := func(tenant string, n int) []audit.Event {
		var out []audit.Event
		var prev *audit.Event
		for i := 0; i < n; i++ {
			e := audit.Event{
				ID: uuid.NewString(), TenantID: tenant, Time: w.day.Add(time.Duration(i) * 3 * time.Hour),
				ActorID: []string{"acc-1", "acc-2"}[i%2], ActorRole: "caseworker",
				Type:        []string{"vorgang.status.changed", "auth.login", "mailbox.message.sent"}[i%3],
				SubjectType: "vorgang", SubjectID: fmt.Sprintf("v-%d", i%4), Outcome: audit.OutcomeSuccess,
				ClientHash: "c0ffee", RequestID: fmt.Sprintf("req-%d", i), Details: `{"i":` + fmt.Sprint(i) + `}`,
			}
			if i == 5 {
				e.Outcome = audit.OutcomeDenied
			}
			if i == 7 { // what an attacker could get into an event through ids
				e.SubjectID, e.ActorID, e.RequestID = `=HYPERLINK("http://evil")`, "@SUM(A1)", "+1-2"
			}
			e = audit.Link(prev, e)
			out = append(out, e)
			prev = &out[len(out)-1]
		}
		return out
	}
	w.events = mk(w.ka.ID, 20)
	if err := store.Append(context.Background(), append(append([]audit.Event(nil), w.events...), mk(w.kb.ID, 20)...)); err != nil {
		t.Fatal(err)
	}
	svc := &audit.AuditorService{Events: store, Recorder: w.store.AuditRecorder()}
	web.MountAudit(w.srv.App(), svc, web.AuditOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return w
}

func (w *auditWorld) queries() []audit.Event {
	w.t.Helper()
	all, err := w.store.PendingEvents(context.Background(), 100000)
	if err != nil {
		w.t.Fatal(err)
	}
	var out []audit.Event
	for _, e := range all {
		if e.Type == "audit.query" {
			out = append(out, e)
		}
	}
	return out
}

type page struct {
	Events     []audit.EventJSON `json:"events"`
	NextCursor string            `json:"next_cursor"`
}

func TestAuditEventsFiltersAndPages(t *testing.T) {
	w := newAuditWorld(t)
	evs := w.events
	idsOf := func(p []audit.EventJSON) []string {
		var out []string
		for _, e := range p {
			out = append(out, e.ID)
		}
		return out
	}
	pick := func(keep func(audit.Event) bool) []string {
		var out []string
		for _, e := range evs {
			if keep(e) {
				out = append(out, e.ID)
			}
		}
		return out
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", pick(func(audit.Event) bool { return true })},
		{"type=auth.login", pick(func(e audit.Event) bool { return e.Type == "auth.login" })},
		{"actor=acc-1", pick(func(e audit.Event) bool { return e.ActorID == "acc-1" })},
		{"subject_type=vorgang&subject_id=v-2", pick(func(e audit.Event) bool { return e.SubjectID == "v-2" })},
		{"outcome=denied", []string{evs[5].ID}},
		{"from=2026-03-31", pick(func(e audit.Event) bool { return !e.Time.Before(w.day.Add(24 * time.Hour)) })},
		{"from=2026-03-30&to=2026-03-30", pick(func(e audit.Event) bool { return e.Time.Before(w.day.Add(24 * time.Hour)) })},
		{"from=2026-03-30T06:00:00Z&to=2026-03-30T12:00:00%2B02:00", []string{evs[2].ID, evs[3].ID}},
		{"tenant_id=" + w.kb.ID, pick(func(audit.Event) bool { return true })}, // no way to name another tenant
	} {
		var p page
		a := w.do("pruefer", "GET", "/api/audit/events?"+tc.query, "")
		if a.code != 200 {
			t.Fatalf("%s: %d %s", tc.query, a.code, a.body)
		}
		a.json(t, &p)
		if got := idsOf(p.Events); !slices.Equal(got, tc.want) {
			t.Errorf("%q: %d events %v, want %d %v", tc.query, len(got), got, len(tc.want), tc.want)
		}
		for _, e := range p.Events {
			if e.TenantID != w.ka.ID {
				t.Fatalf("auditor of %s saw an event of %s", w.ka.ID, e.TenantID)
			}
		}
	}
	// Pages of 6 with the opaque cursor: everything once, in order.
	var got []string
	next := ""
	for i := 0; ; i++ {
		q := "/api/audit/events?limit=6"
		if next != "" {
			q += "&cursor=" + url.QueryEscape(next)
		}
		var p page
		w.do("pruefer", "GET", q, "").json(t, &p)
		got = append(got, idsOf(p.Events)...)
		if p.NextCursor == "" || i > 10 {
			break
		}
		next = p.NextCursor
	}
	if !slices.Equal(got, pick(func(audit.Event) bool { return true })) {
		t.Errorf("pages: %v", got)
	}
	// The page's events are complete enough to check the chain offline.
	var p page
	w.do("pruefer", "GET", "/api/audit/events?limit=2", "").json(t, &p)
	if p.Events[0].Hash != evs[0].Hash || p.Events[1].PrevHash != evs[0].Hash || string(p.Events[1].Details) != `{"i":1}` {
		t.Errorf("event as JSON: %+v", p.Events[:2])
	}
}

func TestAuditAPIRefusals(t *testing.T) {
	w := newAuditWorld(t)
	for _, tc := range []struct {
		as, method, path string
		code             int
	}{
		{"sachb", "GET", "/api/audit/events", 404},
		{"erika", "GET", "/api/audit/export.csv", 404},
		{"lead", "GET", "/api/audit/counts", 404},
		{"", "GET", "/api/audit/events", 401},
		{"pruefer", "POST", "/api/audit/events", 405},
		{"pruefer", "DELETE", "/api/audit/events", 405},
		{"pruefer", "GET", "/api/audit/events?from=gestern", 400},
		{"pruefer", "GET", "/api/audit/events?from=2026-04-01&to=2026-03-01", 400},
		{"pruefer", "GET", "/api/audit/events?limit=5000", 400},
		{"pruefer", "GET", "/api/audit/events?cursor=bm9wZQ", 400},
		{"pruefer", "GET", "/api/audit/events?outcome=maybe", 400},
		{"pruefer", "GET", "/api/audit/events?subject_id=" + url.QueryEscape("erika@example.org"), 400},
		{"pruefer", "GET", "/api/audit/export.csv?type=" + url.QueryEscape("a b"), 400},
	} {
		a := w.do(tc.as, tc.method, tc.path, "")
		if a.code != tc.code {
			t.Errorf("%s %s %s: %d %s, want %d", tc.as, tc.method, tc.path, a.code, a.body, tc.code)
		}
		if tc.code == 400 && (a.ctype != "application/problem+json" || !strings.Contains(string(a.body), "Ungültiger Filter")) {
			t.Errorf("%s: %s %s", tc.path, a.ctype, a.body)
		}
	}
	// Refused requests record nothing; the auditor's e-mail-like filter is
	// not in any event.
	for _, q := range w.queries() {
		if strings.Contains(fmt.Sprintf("%+v", q), "example.org") {
			t.Errorf("query event carries the refused filter: %+v", q)
		}
	}
}

func TestAuditExportCSVIsComplete(t *testing.T) {
	w := newAuditWorld(t)
	a := w.do("pruefer", "GET", "/api/audit/export.csv?from=2026-03-30", "")
	if a.code != 200 || !strings.HasPrefix(a.ctype, "text/csv") {
		t.Fatalf("export: %d %s %s", a.code, a.ctype, a.body)
	}
	recs, err := csv.NewReader(strings.NewReader(string(a.body))).ReadAll()
	if err != nil {
		t.Fatalf("not CSV: %v\n%s", err, a.body)
	}
	if !slices.Equal(recs[0], audit.CSVHeader) || len(recs) != 1+len(w.events) {
		t.Fatalf("%d rows, header %v", len(recs), recs[0])
	}
	for i, rec := range recs[1:] {
		e := w.events[i]
		if rec[0] != e.ID || rec[1] != w.ka.ID || rec[14] != e.Hash || rec[12] != e.Details {
			t.Errorf("row %d: %v, want event %s", i, rec, e.ID)
		}
	}
	// No cell starts a formula: the injected values are quoted as text.
	row := recs[1+7]
	if row[8] != `'=HYPERLINK("http://evil")` || row[4] != "'@SUM(A1)" || row[11] != "'+1-2" {
		t.Errorf("injection not defused: %q", row)
	}
	for _, rec := range recs {
		for _, cell := range rec {
			if cell != "" && strings.ContainsRune("=+-@", rune(cell[0])) {
				t.Errorf("cell %q starts a formula", cell)
			}
		}
	}
}

func TestAuditExportNDJSONAndCounts(t *testing.T) {
	w := newAuditWorld(t)
	a := w.do("pruefer", "GET", "/api/audit/export.ndjson?type=vorgang.status.changed", "")
	if a.code != 200 || !strings.HasPrefix(a.ctype, "application/x-ndjson") {
		t.Fatalf("export: %d %s", a.code, a.ctype)
	}
	var n int
	sc := bufio.NewScanner(strings.NewReader(string(a.body)))
	for sc.Scan() {
		var e audit.EventJSON
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Type != "vorgang.status.changed" || e.TenantID != w.ka.ID {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		n++
	}
	if n != 7 { // i = 0, 3, ..., 18
		t.Errorf("%d lines, want 7", n)
	}

	var counts struct {
		Counts []struct {
			Day, Type string
			Count     int64
		} `json:"counts"`
	}
	a = w.do("pruefer", "GET", "/api/audit/counts", "")
	if a.code != 200 {
		t.Fatalf("counts: %d %s", a.code, a.body)
	}
	a.json(t, &counts)
	// 20 events 3 h apart from 2026-03-30 00:00: 8 on each of the first two days, 4 on the third.
	perDay := map[string]int64{}
	for _, c := range counts.Counts {
		perDay[c.Day] += c.Count
	}
	if perDay["2026-03-30"] != 8 || perDay["2026-03-31"] != 8 || perDay["2026-04-01"] != 4 || len(perDay) != 3 {
		t.Errorf("counts per day: %v", perDay)
	}
}

func TestAuditQueriesAreAudited(t *testing.T) {
	w := newAuditWorld(t)
	w.do("pruefer", "GET", "/api/audit/events?subject_type=vorgang&subject_id=v-1&type=vorgang.status.changed", "")
	w.do("pruefer", "GET", "/api/audit/export.csv?from=2026-03-30", "")
	w.do("pruefer", "GET", "/api/audit/counts?outcome=denied", "")
	qs := w.queries()
	if len(qs) != 3 {
		t.Fatalf("%d audit.query events, want 3: %+v", len(qs), qs)
	}
	p := w.accts["pruefer"]
	for _, q := range qs {
		if q.TenantID != w.ka.ID || q.ActorID != p.AccountID || q.ActorRole != "auditor" || q.RequestID == "" || q.ClientHash == "" {
			t.Errorf("query event: %+v", q)
		}
		if err := audit.CheckEvent(q); err != nil {
			t.Errorf("query event details: %v", err)
		}
	}
	if qs[0].SubjectType != "vorgang" || qs[0].SubjectID != "v-1" || !strings.Contains(qs[0].Details, `"kind":"events"`) ||
		!strings.Contains(qs[0].Details, `"type":"vorgang.status.changed"`) {
		t.Errorf("page query: %+v", qs[0])
	}
	if qs[1].SubjectType != "kasse" || qs[1].SubjectID != w.ka.ID || !strings.Contains(qs[1].Details, `"kind":"export_csv"`) ||
		!strings.Contains(qs[1].Details, `"from":"2026-03-30T00:00:00Z"`) {
		t.Errorf("export query: %+v", qs[1])
	}
	if !strings.Contains(qs[2].Details, `"kind":"counts"`) || !strings.Contains(qs[2].Details, `"outcome":"denied"`) {
		t.Errorf("counts query: %+v", qs[2])
	}
}

// gateStore hands out one event, then waits until the test has read it
// from the network before it hands out the rest: an export that gathered
// rows before sending would hang here.
type gateStore struct {
	audit.EventStore
	first, rest []audit.Event
	gate        chan struct{}
}

func (g *gateStore) Scan(ctx context.Context, f audit.Filter, fn func(audit.Event) error) error {
	for _, e := range g.first {
		if err := fn(e); err != nil {
			return err
		}
	}
	select {
	case <-g.gate:
	case <-time.After(10 * time.Second):
		return errors.New("the first rows never reached the client")
	case <-ctx.Done():
		return ctx.Err()
	}
	for _, e := range g.rest {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

type nopRecorder struct{ n int }

func (r *nopRecorder) Record(context.Context, audit.Event) error { r.n++; return nil }

func TestAuditExportStreams(t *testing.T) {
	mk := func(i int) audit.Event {
		return audit.Event{ID: fmt.Sprintf("e-%04d", i), TenantID: "k1", Seq: int64(i + 1), Time: time.Unix(1700000000+int64(i), 0).UTC(),
			Type: "auth.login", Outcome: audit.OutcomeSuccess, Details: "{}"}
	}
	g := &gateStore{gate: make(chan struct{})}
	for i := 0; i < 600; i++ { // beyond the first flush
		g.first = append(g.first, mk(i))
	}
	for i := 600; i < 700; i++ {
		g.rest = append(g.rest, mk(i))
	}
	rec := &nopRecorder{}
	srv := web.New(web.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	srv.App().Use(func(c *fiber.Ctx) error {
		web.SetPrincipal(c, auth.Principal{TenantID: "k1", Role: auth.RoleAuditor, AccountID: "acc-p"})
		return c.Next()
	})
	web.MountAudit(srv.App(), &audit.AuditorService{Events: g, Recorder: rec}, web.AuditOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })

	resp, err := http.Get("http://" + ln.Addr().String() + "/api/audit/export.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != -1 {
		t.Fatalf("status %d, length %d: want 200 and a chunked stream", resp.StatusCode, resp.ContentLength)
	}
	sc := bufio.NewScanner(resp.Body)
	if !sc.Scan() || !strings.Contains(sc.Text(), `"id":"e-0000"`) {
		t.Fatalf("first line %q, %v", sc.Text(), sc.Err())
	}
	close(g.gate) // the first row arrived while the store still held the rest
	n := 1
	for sc.Scan() {
		n++
	}
	if n != 700 || rec.n != 1 {
		t.Fatalf("%d lines, %d recorded queries; want 700 and 1", n, rec.n)
	}
}
