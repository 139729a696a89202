//go:build integration

package web_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"postbox/auth"
	"postbox/kasse"
	"postbox/mailbox"
	"postbox/notifier"
	"postbox/storage/fsblob"
	"postbox/storage/postgres"
	"postbox/storage/sqldb"
	"postbox/storage/sqlite"
	"postbox/storage/storagetest"
)

// acceptTimes wraps the real SMTP sender and notes when the server
// accepted each mail (Send returned nil), by Message-ID.
type acceptTimes struct {
	notifier.Sender
	mu sync.Mutex
	at map[string]time.Time
}

func (a *acceptTimes) Send(ctx context.Context, m notifier.Mail) error {
	err := a.Sender.Send(ctx, m)
	if err == nil {
		a.mu.Lock()
		a.at[m.MessageID] = time.Now()
		a.mu.Unlock()
	}
	return err
}

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
	dir := b.TempDir()
	if backend == "postgres" {
		store, err = postgres.Open(ctx, storagetest.FreshPostgres(b))
	} else {
		store, err = sqlite.Open(ctx, filepath.Join(dir, "postbox.db"))
	}
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	key := make([]byte, fsblob.KeySize)
	rand.Read(key)
	fs, err := fsblob.New(filepath.Join(dir, "blobs"), key)
	if err != nil {
		b.Fatal(err)
	}

	// One Kasse, one team, 8 caseworkers, n persons each with a thread.
	k := kasse.Kasse{ID: "bench-" + uuid.NewString()[:8], Name: "Benchkasse", PortalURL: "https://portal.example", Settings: kasse.DefaultSettings()}
	const workers = 8
	var cws []auth.Principal
	threads := make([]string, n)
	err = store.InTx(ctx, func(tx *sqldb.Tx) error {
		if err := tx.CreateKasse(ctx, k); err != nil {
			return err
		}
		team, err := tx.CreateTeam(ctx, mailbox.Team{TenantID: k.ID, Name: "Krankengeld", Topic: "krankengeld"})
		if err != nil {
			return err
		}
		for i := 0; i < workers; i++ {
			acc := auth.Account{ID: uuid.NewString(), TenantID: k.ID, Role: auth.RoleCaseworker, Username: fmt.Sprint("sb", i), Status: auth.StatusActive}
			if err := tx.CreateAccount(ctx, acc); err != nil {
				return err
			}
			if err := tx.AddTeamMember(ctx, k.ID, team.ID, acc.ID); err != nil {
				return err
			}
			cws = append(cws, auth.Principal{TenantID: k.ID, Role: auth.RoleCaseworker, AccountID: acc.ID})
		}
		for i := 0; i < n; i++ {
			p := kasse.Person{ID: uuid.NewString(), TenantID: k.ID, KVNR: kasse.CompleteKVNR(fmt.Sprintf("B%08d", i)), GivenName: "P", FamilyName: "B",
				Email: fmt.Sprintf("p%d-%s@bench.example", i, k.ID), Delivery: kasse.DeliveryOnline}
			if err := tx.CreatePerson(ctx, p); err != nil {
				return err
			}
			th, err := tx.CreateThread(ctx, mailbox.Thread{TenantID: k.ID, OwnerKind: mailbox.OwnerPerson, OwnerID: p.ID, TeamID: team.ID, Subject: "Anfrage"})
			if err != nil {
				return err
			}
			threads[i] = th.ID
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}

	md := newMaildevProc(b)
	md.start()
	smtpSender, err := notifier.NewSMTP(notifier.SMTPConfig{Addr: md.smtpAddr})
	if err != nil {
		b.Fatal(err)
	}
	sender := &acceptTimes{Sender: smtpSender, at: map[string]time.Time{}}
	wk := &notifier.Worker{Outbox: store, Sender: sender, From: "postfach@kasse.example", Tenants: []string{k.ID},
		Batch: 100, Concurrency: 8, PollInterval: 100 * time.Millisecond, Logger: pfQuiet}
	svc := &mailbox.Service{Store: store.Mailbox(), Blobs: blobs{fs}, NotifyWindow: 15 * time.Minute, Notified: wk.Notify, Logger: pfQuiet}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	started := false
	runWorker := func() { started = true; go func() { defer close(done); wk.Run(wctx) }() }
	defer func() {
		stop()
		if started {
			<-done
		}
	}()
	if !backlog {
		runWorker()
	}

	committed := make([]time.Time, n)
	b.StartTimer()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := mailbox.Actor{Principal: cws[w]}
			for i := w; i < n; i += workers {
				if _, err := svc.Reply(ctx, a, threads[i], "Ihr Antrag ist eingegangen und wird bearbeitet.", nil); err != nil {
					errs <- err
					return
				}
				committed[i] = time.Now()
			}
		}()
	}
	wg.Wait()
	allCommitted := time.Now()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	workerStart := start
	if backlog {
		workerStart = time.Now()
		runWorker()
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		sender.mu.Lock()
		got := len(sender.at)
		sender.mu.Unlock()
		if got >= n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d mails accepted after 10 minutes", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.StopTimer()

	// Latency: the reply's commit to the server's acceptance of its mail.
	rows, err := store.DB().QueryContext(ctx, fmt.Sprintf(`SELECT o.message_id, t.id FROM mail_outbox o JOIN threads t ON t.owner_id = o.person_id WHERE o.tenant_id = '%s'`, k.ID))
	if err != nil {
		b.Fatal(err)
	}
	index := map[string]int{}
	for i, id := range threads {
		index[id] = i
	}
	var lat []time.Duration
	var last time.Time
	for rows.Next() {
		var mid, tid string
		if err := rows.Scan(&mid, &tid); err != nil {
			b.Fatal(err)
		}
		acc := sender.at[mid]
		lat = append(lat, acc.Sub(committed[index[tid]]))
		if acc.After(last) {
			last = acc
		}
	}
	rows.Close()
	if len(lat) != n {
		b.Fatalf("%d mail jobs for %d replies", len(lat), n)
	}
	api := &notifier.Maildev{URL: "http://" + md.webAddr}
	if total, err := api.Count(ctx); err != nil || total != n {
		b.Fatalf("maildev holds %d mails (%v), want %d", total, err, n)
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	elapsed := last.Sub(workerStart)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "mails/s")
	b.ReportMetric(float64(n)/allCommitted.Sub(start).Seconds(), "replies/s")
	if backlog {
		b.Logf("%s backlog: %d replies committed in %v; the worker then delivered all %d to maildev in %v",
			backend, n, allCommitted.Sub(start).Round(time.Millisecond), n, elapsed.Round(time.Millisecond))
		return
	}
	b.ReportMetric(float64(pct(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	b.Logf("%s live: %d replies committed in %v, all %d mails accepted by maildev after %v; latency p50 %v p99 %v max %v",
		backend, n, allCommitted.Sub(start).Round(time.Millisecond), n, elapsed.Round(time.Millisecond),
		pct(0.5).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
}
