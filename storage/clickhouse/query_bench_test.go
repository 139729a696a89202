//go:build integration

package clickhouse

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"postbox/audit"
)

// Auditor query latency over 10 million events of one Kasse (plus 1
// million of another), generated inside ClickHouse with INSERT … SELECT
// FROM numbers(): one year, ≈27,400 events a day, 200,000 Vorgänge with 50
// events each, every event with full-length ids and hashes.
//
//	go test -tags integration ./storage/clickhouse -run XXX -bench AuditorQueries -benchtime 1x
//
// POSTBOX_BENCH_EVENTS changes the 10 million.

var benchYearStart = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func generateEvents(b *testing.B, s *Store, tenant string, n int64) {
	b.Helper()
	span := int64(365 * 24 * time.Hour / time.Microsecond)
	// Spread n events evenly over the year; number → time keeps them in
	// time order, Vorgang = number % 200000 gives each Vorgang 50 events
	// spread over the year.
	q := fmt.Sprintf(`INSERT INTO %[1]s.audit_trail (ts, id, tenant_id, seq, ts_unix_us, actor_id, actor_role, type,
		subject_type, subject_id, outcome, client_hash, request_id, details, prev_hash, hash)
		SELECT toDateTime(intDiv(us, 1000000)) AS ts,
			lower(hex(MD5(concat('%[2]s', toString(number))))) AS id, '%[2]s', toInt64(number + 1), us,
			concat('acc-', toString(number %% 500)), ['caseworker','teamlead','insured','auditor'][1 + number %% 4],
			['vorgang.status.changed','mailbox.message.sent','auth.login','intake.upload.completed','mailbox.thread.viewed','auth.logout','intake.submitted','audit.query'][1 + number %% 8],
			'vorgang', concat('v-', leftPad(toString(number %% 200000), 7, '0')),
			['success','success','success','denied'][1 + number %% 4],
			lower(hex(MD5(toString(intDiv(number, 7))))), lower(hex(MD5(toString(number * 3)))),
			'{"from":"eingegangen","to":"in_bearbeitung"}',
			lower(hex(SHA256(toString(number)))), lower(hex(SHA256(toString(number + 1))))
		FROM (SELECT number, toInt64(%[3]d + number * %[4]d) AS us FROM numbers(%[5]d))`,
		s.db, tenant, benchYearStart.UnixMicro(), span/n, n)
	// 18.16 lacks leftPad; pad by formatting instead.
	q = replaceLeftPad(q)
	if err := s.conn.Exec(context.Background(), q); err != nil {
		b.Fatalf("generate %d events: %v", n, err)
	}
}

func replaceLeftPad(q string) string {
	const lp = "leftPad(toString(number % 200000), 7, '0')"
	const repl = "substring(toString(10000000 + number % 200000), 2)"
	for i := 0; ; {
		j := indexFrom(q, lp, i)
		if j < 0 {
			return q
		}
		q = q[:j] + repl + q[j+len(lp):]
		i = j + len(repl)
	}
}

func indexFrom(s, sub string, from int) int {
	for i := from; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// measure runs fn reps times and reports p50 and p95 in milliseconds.
func measure(b *testing.B, reps int, fn func() int, want int) {
	b.Helper()
	var ds []time.Duration
	for b.Loop() {
		for range reps {
			t0 := time.Now()
			if got := fn(); got != want {
				b.Fatalf("got %d events, want %d", got, want)
			}
			ds = append(ds, time.Since(t0))
		}
	}
	b.ReportMetric(float64(percentile(ds, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(ds, 0.95).Microseconds())/1000, "p95-ms")
	b.ReportMetric(float64(len(ds)), "samples")
}

func BenchmarkAuditorQueries(b *testing.B) {
	ctx := context.Background()
	n := int64(10_000_000)
	if v := os.Getenv("POSTBOX_BENCH_EVENTS"); v != "" {
		var err error
		if n, err = strconv.ParseInt(v, 10, 64); err != nil {
			b.Fatal(err)
		}
	}
	s := openTestStore(b)
	if key := os.Getenv("POSTBOX_BENCH_ORDER_BY"); key != "" {
		// Another sorting key for comparison, e.g. 0001's
		// "tenant_id, toDate(ts), type, subject_type, subject_id, ts_unix_us, id":
		// created first, 0002's CREATE TABLE IF NOT EXISTS keeps it.
		ddl, err := migrationsFS.ReadFile("migrations/0002_audit_trail.sql")
		if err != nil {
			b.Fatal(err)
		}
		stmt := splitStatements(strings.ReplaceAll(string(ddl), "{db}", s.db))[0].sql
		stmt = stmt[:strings.Index(stmt, "ORDER BY (")] + "ORDER BY (" + key + ")"
		for _, q := range []string{"CREATE DATABASE IF NOT EXISTS " + s.db, stmt} {
			if err := s.conn.Exec(ctx, q); err != nil {
				b.Fatal(err)
			}
		}
	}
	if _, err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	generateEvents(b, s, "bench", n)
	generateEvents(b, s, "other", n/10)
	b.Logf("generated %d + %d events in %v", n, n/10, time.Since(t0))
	perVorgang := int(n / 200000)
	day := benchYearStart.AddDate(0, 5, 10) // a Wednesday in June
	var dayCount int64
	if err := s.conn.QueryRow(ctx, `SELECT toInt64(count()) FROM `+s.db+`.audit_trail WHERE tenant_id = 'bench'
		AND ts_unix_us >= ? AND ts_unix_us < ?`, day.UnixMicro(), day.AddDate(0, 0, 1).UnixMicro()).Scan(&dayCount); err != nil {
		b.Fatal(err)
	}
	perDay := int(dayCount)
	b.Logf("%d events per Vorgang, %d on %s", perVorgang, perDay, day.Format(time.DateOnly))

	vorgang := func(i int) string { return fmt.Sprintf("v-%07d", (i*7919)%200000) }
	b.Run("VorgangHistory", func(b *testing.B) {
		i := 0
		measure(b, 20, func() int {
			i++
			evs, err := s.Query(ctx, audit.Filter{TenantID: "bench", SubjectType: "vorgang", SubjectID: vorgang(i)})
			if err != nil {
				b.Fatal(err)
			}
			return len(evs)
		}, perVorgang)
	})
	b.Run("DayExport", func(b *testing.B) {
		measure(b, 20, func() int {
			n := 0
			err := s.Scan(ctx, audit.Filter{TenantID: "bench", From: day, To: day.AddDate(0, 0, 1)}, func(audit.Event) error {
				n++
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			return n
		}, perDay)
	})
	b.Run("DayExportCSV", func(b *testing.B) {
		measure(b, 20, func() int {
			w, _ := audit.NewExportWriter(discard{}, "csv")
			n := 0
			err := s.Scan(ctx, audit.Filter{TenantID: "bench", From: day, To: day.AddDate(0, 0, 1)}, func(e audit.Event) error {
				n++
				return w.Write(e)
			})
			if err != nil {
				b.Fatal(err)
			}
			return n
		}, perDay)
	})
	b.Run("DayPage100", func(b *testing.B) {
		measure(b, 20, func() int {
			evs, err := s.Query(ctx, audit.Filter{TenantID: "bench", From: day, To: day.AddDate(0, 0, 1), Limit: 100})
			if err != nil {
				b.Fatal(err)
			}
			return len(evs)
		}, 100)
	})
	b.Run("CountsOneMonth", func(b *testing.B) {
		measure(b, 20, func() int {
			cs, err := s.CountByDayAndType(ctx, audit.Filter{TenantID: "bench", From: day, To: day.AddDate(0, 1, 0)})
			if err != nil {
				b.Fatal(err)
			}
			return len(cs)
		}, 30*8)
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
