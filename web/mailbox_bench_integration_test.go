//go:build integration

package web_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"postbox/bench"
	"postbox/storage/postgres"
	"postbox/storage/sqldb"
	"postbox/storage/sqlite"
	"postbox/storage/storagetest"
)

// BenchmarkReplyNotifications: 10,000 caseworker replies, each to another
// insured person (online delivery), committed by 8 concurrent caseworkers.
// "live": the notifier worker delivers to a maildev of its own while the
// replies come in; reports the delivery rate and the latency from the
// reply's commit to the SMTP server's acceptance of its mail. "backlog":
// all 10,000 are queued first, then the worker starts; reports the rate at
// which it empties the outbox.
//
//	. /var/tmp/postbox-services/env
//	go test -tags integration -run '^$' -bench BenchmarkReplyNotifications -benchtime 1x -timeout 30m ./web/
func BenchmarkReplyNotifications(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		for _, mode := range []string{"live", "backlog"} {
			b.Run(backend+"/"+mode, func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					benchNotifications(b, backend, 10000, mode == "backlog")
				}
			})
		}
	}
}

func benchNotifications(b *testing.B, backend string, n int, backlog bool) {
	b.StopTimer()
	ctx := context.Background()
	var store *sqldb.Store
	var err error
	if backend == "postgres" {
		store, err = postgres.Open(ctx, storagetest.FreshPostgres(b))
	} else {
		store, err = sqlite.Open(ctx, filepath.Join(b.TempDir(), "postbox.db"))
	}
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	md := newMaildevProc(b)
	md.start()
	b.StartTimer()
	st, err := bench.ReplyNotifications(ctx, store, md.smtpAddr, "http://"+md.webAddr, n, backlog, 10*time.Minute)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(st.MailsPerSec, "mails/s")
	b.ReportMetric(st.RepliesPerSec, "replies/s")
	if backlog {
		b.Logf("%s backlog: %d replies committed in %v; the worker then delivered all %d to maildev in %v",
			backend, n, st.CommitDuration.Round(time.Millisecond), n, st.SendDuration.Round(time.Millisecond))
		return
	}
	b.ReportMetric(float64(st.Percentile(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(st.Percentile(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(st.Percentile(1).Microseconds())/1000, "max-ms")
	b.Logf("%s live: %d replies committed in %v, all %d mails accepted by maildev after %v; latency p50 %v p99 %v max %v",
		backend, n, st.CommitDuration.Round(time.Millisecond), n, st.SendDuration.Round(time.Millisecond),
		st.Percentile(0.5).Round(time.Millisecond), st.Percentile(0.99).Round(time.Millisecond), st.Percentile(1).Round(time.Millisecond))
}
