package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"postbox/auth"
	"postbox/kasse"
	"postbox/mailbox"
	"postbox/notifier"
	"postbox/storage/sqldb"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

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

func (a *acceptTimes) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.at)
}

// NotificationStats is one run of ReplyNotifications.
type NotificationStats struct {
	Replies        int
	RepliesPerSec  float64         // committed by the caseworkers
	MailsPerSec    float64         // accepted by the SMTP server, from the worker's start
	Latencies      []time.Duration // commit → acceptance, sorted; empty for a backlog run
	CommitDuration time.Duration
	SendDuration   time.Duration
}

// Percentile of the sorted latencies, p in [0, 1].
func (s NotificationStats) Percentile(p float64) time.Duration {
	if len(s.Latencies) == 0 {
		return 0
	}
	return s.Latencies[int(p*float64(len(s.Latencies)-1))]
}

// ReplyNotifications: n caseworker replies, each to another insured
// person with online delivery, committed by 8 concurrent caseworkers
// (mailbox.Service.Reply: message, audit event and notification job in one
// transaction). One notifier.Worker (batches of 100, 8 SMTP sessions)
// sends to the SMTP server at smtpAddr. live (backlog false): the worker
// runs while the replies come in, and the latency from each reply's commit
// to the server's acceptance of its mail is measured. backlog: all n are
// queued first, then the worker empties the outbox. maildevURL, when set,
// is asked afterwards whether it holds at least n mails.
func ReplyNotifications(ctx context.Context, store *sqldb.Store, smtpAddr, maildevURL string, n int, backlog bool, limit time.Duration) (NotificationStats, error) {
	var st NotificationStats
	k := kasse.Kasse{ID: "bench-" + uuid.NewString()[:8], Name: "Benchkasse", PortalURL: "https://portal.example", Settings: kasse.DefaultSettings()}
	const workers = 8
	var cws []auth.Principal
	threads := make([]string, n)
	err := store.InTx(ctx, func(tx *sqldb.Tx) error {
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
		return st, err
	}

	smtpSender, err := notifier.NewSMTP(notifier.SMTPConfig{Addr: smtpAddr})
	if err != nil {
		return st, err
	}
	defer smtpSender.Close() // the kept sessions: maildev waits for them when it stops
	sender := &acceptTimes{Sender: smtpSender, at: map[string]time.Time{}}
	wk := &notifier.Worker{Outbox: store, Sender: sender, From: "postfach@kasse.example", Tenants: []string{k.ID},
		Batch: 100, Concurrency: 8, PollInterval: 100 * time.Millisecond, Logger: quiet}
	svc := &mailbox.Service{Store: store.Mailbox(), NotifyWindow: 15 * time.Minute, Notified: wk.Notify, Logger: quiet}
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
		return st, err
	}
	workerStart := start
	if backlog {
		workerStart = time.Now()
		runWorker()
	}
	deadline := time.Now().Add(limit)
	for sender.count() < n {
		if time.Now().After(deadline) {
			return st, fmt.Errorf("only %d of %d mails accepted after %v", sender.count(), n, limit)
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}

	// Latency: the reply's commit to the server's acceptance of its mail.
	rows, err := store.DB().QueryContext(ctx, `SELECT o.message_id, t.id FROM mail_outbox o JOIN threads t ON t.owner_id = o.person_id WHERE o.tenant_id = '`+k.ID+`'`)
	if err != nil {
		return st, err
	}
	index := map[string]int{}
	for i, id := range threads {
		index[id] = i
	}
	var last time.Time
	var lat []time.Duration
	for rows.Next() {
		var mid, tid string
		if err := rows.Scan(&mid, &tid); err != nil {
			rows.Close()
			return st, err
		}
		acc := sender.at[mid]
		lat = append(lat, acc.Sub(committed[index[tid]]))
		if acc.After(last) {
			last = acc
		}
	}
	rows.Close()
	if len(lat) != n {
		return st, fmt.Errorf("%d mail jobs for %d replies", len(lat), n)
	}
	if maildevURL != "" {
		api := &notifier.Maildev{URL: maildevURL}
		if total, err := api.Count(ctx); err != nil || total < n {
			return st, fmt.Errorf("maildev holds %d mails (%v), want at least %d", total, err, n)
		}
	}
	slices.Sort(lat)
	st = NotificationStats{Replies: n, CommitDuration: allCommitted.Sub(start), SendDuration: last.Sub(workerStart)}
	st.RepliesPerSec = float64(n) / st.CommitDuration.Seconds()
	st.MailsPerSec = float64(n) / st.SendDuration.Seconds()
	if !backlog {
		st.Latencies = lat
	}
	return st, nil
}

// startMaildev runs a maildev of this step's own (the shared one is not
// flooded) and returns its SMTP address and web URL.
func (r *run) startMaildev(ctx context.Context) (smtpAddr, webURL string, err error) {
	bin := filepath.Join(r.opts.Services.ServicesDir, "npm", "node_modules", ".bin", "maildev")
	smtpPort, err := freePort()
	if err != nil {
		return "", "", err
	}
	webPort, err := freePort()
	if err != nil {
		return "", "", err
	}
	dir, err := r.tempDir()
	if err != nil {
		return "", "", err
	}
	webURL = "http://127.0.0.1:" + strconv.Itoa(webPort)
	_, err = r.startProc(ctx, "maildev", baseEnv(), webURL+"/api/healthz", bin, "--ip", "127.0.0.1", "-s", strconv.Itoa(smtpPort),
		"--web-ip", "127.0.0.1", "-w", strconv.Itoa(webPort), "--mail-directory", dir)
	return "127.0.0.1:" + strconv.Itoa(smtpPort), webURL, err
}

// stepNotifications: mails/s into maildev and commit → acceptance latency,
// on PostgreSQL, live and backlog.
func stepNotifications(ctx context.Context, r *run) error {
	n := 2000
	if r.opts.Quick {
		n = 40
	}
	var live, back = map[string][]float64{}, map[string][]float64{}
	for run := range r.runs() {
		// A fresh database and maildev per run: the outbox and the
		// server's mail store start empty each time.
		db, err := r.freshStore(ctx)
		if err != nil {
			return err
		}
		smtpAddr, webURL, err := r.startMaildev(ctx)
		if err != nil {
			return err
		}
		st, err := ReplyNotifications(ctx, db, smtpAddr, webURL, n, false, time.Minute)
		if err != nil {
			return fmt.Errorf("live run %d: %w", run+1, err)
		}
		live["replies"] = append(live["replies"], st.RepliesPerSec)
		live["mails"] = append(live["mails"], st.MailsPerSec)
		live["p50"] = append(live["p50"], ms(st.Percentile(0.5)))
		live["p99"] = append(live["p99"], ms(st.Percentile(0.99)))
		r.logf("live: %d replies %.0f/s, mails %.0f/s, p50 %v p99 %v", n, st.RepliesPerSec, st.MailsPerSec, st.Percentile(0.5), st.Percentile(0.99))
		st, err = ReplyNotifications(ctx, db, smtpAddr, "", n, true, time.Minute)
		if err != nil {
			return fmt.Errorf("backlog run %d: %w", run+1, err)
		}
		back["mails"] = append(back["mails"], st.MailsPerSec)
		r.logf("backlog: %d mails %.0f/s", n, st.MailsPerSec)
	}
	r.figure("replies committed/s (8 caseworkers, live)", "1/s", live["replies"], "", nil, "PostgreSQL")
	r.figure("mails/s accepted by maildev, live", "1/s", live["mails"], "", nil, "")
	r.figure("commit → SMTP accept p50, live", "ms", live["p50"], "", nil, "")
	r.figure("commit → SMTP accept p99, live", "ms", live["p99"], "", nil, "")
	r.figure("mails/s accepted by maildev, backlog drain", "1/s", back["mails"], "", nil, "all queued first, then the worker starts")
	r.rep.note("Notifications: %d replies to %d distinct persons per run (no coalescing), live and backlog, into a maildev 3 of the step's own "+
		"(started and stopped by the step, so the shared one is not flooded), a fresh PostgreSQL database per run; a run fails if maildev does "+
		"not hold every mail within a minute. The hand-written section below has the 10,000-reply runs and SQLite.", n, n)
	return nil
}
