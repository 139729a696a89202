package notifier_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/google/uuid"

	"postbox/audit"
	"postbox/kasse"
	"postbox/notifier"
	"postbox/storage/sqldb"
	"postbox/storage/sqlite"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func job(recipient string) notifier.Job {
	return notifier.Job{
		ID: uuid.NewString(), TenantID: "k1", Recipient: recipient, Template: notifier.TemplateNewMessage,
		MessageID: "<" + uuid.NewString() + "@postbox>",
		Data: map[string]string{
			notifier.DataKasseName: "AOK <Niedersachsen> & Co",
			notifier.DataPortalURL: "https://meine.kasse.example/portal",
			// Values a careless caller might add: a template cannot show them.
			"body": "Ihre Diagnose F32.1", "subject": "Befund Psychiatrie", "file_name": "Befund.pdf",
		},
	}
}

func TestRenderShowsOnlyKasseAndPortal(t *testing.T) {
	m, err := notifier.Render(job("erika@example.org"), "postfach@kasse.example")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := m.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{"F32", "Diagnose", "Befund", "Psychiatrie"} {
		if bytes.Contains(raw, []byte(leak)) || strings.Contains(m.Text+m.HTML, leak) {
			t.Errorf("mail carries %q", leak)
		}
	}
	if m.Subject != "Neue Nachricht in Ihrem Postfach" {
		t.Errorf("subject %q", m.Subject)
	}
	for _, want := range []string{"AOK <Niedersachsen> & Co", "https://meine.kasse.example/portal", "neue Nachricht", "keine Inhalte"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, m.Text)
		}
	}
	for _, want := range []string{"AOK &lt;Niedersachsen&gt; &amp; Co", `href="https://meine.kasse.example/portal"`, `lang="de"`} {
		if !strings.Contains(m.HTML, want) {
			t.Errorf("html lacks %q:\n%s", want, m.HTML)
		}
	}
	// As a mail reader sees it: headers decode, both parts present.
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	subj, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil || subj != "Neue Nachricht in Ihrem Postfach" {
		t.Fatalf("decoded subject %q, %v", subj, err)
	}
	if msg.Header.Get("Message-ID") != m.MessageID || msg.Header.Get("To") != "erika@example.org" {
		t.Fatalf("headers: %v", msg.Header)
	}
	body, _ := io.ReadAll(msg.Body)
	if !bytes.Contains(body, []byte("text/plain; charset=utf-8")) || !bytes.Contains(body, []byte("text/html; charset=utf-8")) {
		t.Fatal("not multipart/alternative with text and html")
	}
	if bytes.Contains(body, []byte("Content-Disposition: attachment")) {
		t.Fatal("mail has an attachment")
	}
}

func TestRenderRefusesBrokenJobs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*notifier.Job)
	}{
		{"unknown template", func(j *notifier.Job) { j.Template = "bescheid_anhang" }},
		{"no Kasse name", func(j *notifier.Job) { delete(j.Data, notifier.DataKasseName) }},
		{"script link", func(j *notifier.Job) { j.Data[notifier.DataPortalURL] = "javascript:alert(1)" }},
		{"no recipient", func(j *notifier.Job) { j.Recipient = "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := job("a@example.org")
			tc.change(&j)
			if _, err := notifier.Render(j, "x@example.org"); !errors.Is(err, notifier.ErrTemplate) || !notifier.Permanent(err) {
				t.Fatalf("err = %v, want a permanent ErrTemplate", err)
			}
		})
	}
	j := job("a@example.org\r\nBcc: victim@example.org")
	m, err := notifier.Render(j, "x@example.org")
	if err == nil {
		if _, err = m.Bytes(); err == nil {
			t.Fatal("header injection through the recipient")
		}
	}
}

func TestBackoffGrowsWithJitterUpToTheCap(t *testing.T) {
	w := &notifier.Worker{RetryBase: time.Second, RetryMax: time.Minute}
	for _, tc := range []struct {
		attempt int
		full    time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {6, 32 * time.Second}, {7, time.Minute}, {30, time.Minute}} {
		seen := map[time.Duration]bool{}
		for i := 0; i < 50; i++ {
			d := w.Backoff(tc.attempt)
			if d < tc.full/2 || d > tc.full {
				t.Fatalf("attempt %d: %v outside [%v, %v]", tc.attempt, d, tc.full/2, tc.full)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Fatalf("attempt %d: no jitter (%d distinct delays)", tc.attempt, len(seen))
		}
	}
}

func TestRedactErrorDropsAddresses(t *testing.T) {
	err := errors.New("smtp send: 550 5.1.1 <erika.mustermann@example.org>: Recipient address rejected")
	got := notifier.RedactError(err)
	if strings.Contains(got, "erika") || !strings.Contains(got, "550 5.1.1") {
		t.Fatalf("%q", got)
	}
}

// outbox is a real SQLite store with a movable clock and one tenant.
type outbox struct {
	s      *sqldb.Store
	tenant string
	mu     sync.Mutex
	now    time.Time
}

func newOutbox(t *testing.T) *outbox {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "postbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	o := &outbox{s: s, tenant: "k-" + uuid.NewString()[:8], now: time.Now().UTC()}
	s.SetClock(func() time.Time { o.mu.Lock(); defer o.mu.Unlock(); return o.now })
	if err := s.InTx(context.Background(), func(tx *sqldb.Tx) error {
		return tx.CreateKasse(context.Background(), kasse.Kasse{ID: o.tenant, Name: "Testkasse", PortalURL: "https://portal.example", Settings: kasse.DefaultSettings()})
	}); err != nil {
		t.Fatal(err)
	}
	return o
}

func (o *outbox) advance(d time.Duration) { o.mu.Lock(); o.now = o.now.Add(d); o.mu.Unlock() }

func (o *outbox) enqueue(t *testing.T, recipient string) notifier.Job {
	t.Helper()
	var j notifier.Job
	err := o.s.InTx(context.Background(), func(tx *sqldb.Tx) error {
		var err error
		j, err = tx.EnqueueMail(context.Background(), notifier.Job{TenantID: o.tenant, Recipient: recipient, Template: notifier.TemplateNewMessage,
			Data: map[string]string{notifier.DataKasseName: "Testkasse", notifier.DataPortalURL: "https://portal.example"}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func (o *outbox) job(t *testing.T, id string) notifier.Job {
	t.Helper()
	j, err := o.s.MailJob(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func (o *outbox) worker(s notifier.Sender) *notifier.Worker {
	return &notifier.Worker{Outbox: o.s, Sender: s, From: "postfach@kasse.example", Tenants: []string{o.tenant},
		RetryBase: time.Second, RetryMax: 10 * time.Second, MaxAttempts: 3, SendTimeout: 5 * time.Second, Logger: quiet}
}

func TestWorkerWritesEMLOnceAndMarksSent(t *testing.T) {
	o := newOutbox(t)
	dir := t.TempDir()
	eml, err := notifier.NewEMLDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	j := o.enqueue(t, "erika@example.org")
	w := o.worker(eml)
	if n, err := w.RunOnce(context.Background()); n != 1 || err != nil {
		t.Fatalf("RunOnce = %d, %v", n, err)
	}
	if got := o.job(t, j.ID); got.Status != notifier.StatusSent || got.Attempts != 1 || got.SentAt.IsZero() {
		t.Fatalf("job after send: %+v", got)
	}
	raw, err := os.ReadFile(eml.Path(j.MessageID))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte("Message-ID: "+j.MessageID)) {
		t.Fatal("eml without the job's Message-ID")
	}
	if n, _ := w.RunOnce(context.Background()); n != 0 {
		t.Fatalf("sent job claimed again: %d", n)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	if len(files) != 1 {
		t.Fatalf("%d mails written", len(files))
	}
}

func TestWorkerRetriesWithBackoffThenGivesUpAndAudits(t *testing.T) {
	o := newOutbox(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close() // nothing listens there now
	sender, err := notifier.NewSMTP(notifier.SMTPConfig{Addr: closed, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	j := o.enqueue(t, "erika@example.org")
	w := o.worker(sender)
	for attempt := 1; attempt <= 3; attempt++ {
		if n, err := w.RunOnce(context.Background()); n != 1 || err != nil {
			t.Fatalf("attempt %d: RunOnce = %d, %v", attempt, n, err)
		}
		got := o.job(t, j.ID)
		if got.Attempts != attempt {
			t.Fatalf("attempts = %d, want %d", got.Attempts, attempt)
		}
		if attempt < 3 {
			wait := got.NextAttemptAt.Sub(o.now)
			full := time.Second << (attempt - 1)
			if got.Status != notifier.StatusPending || wait < full/2 || wait > full || !strings.Contains(got.LastError, "connect") {
				t.Fatalf("after attempt %d: %+v (wait %v)", attempt, got, wait)
			}
			if n, _ := w.RunOnce(context.Background()); n != 0 {
				t.Fatal("job retried before its backoff")
			}
			o.advance(wait)
		}
	}
	got := o.job(t, j.ID)
	if got.Status != notifier.StatusFailed {
		t.Fatalf("after the last attempt: %+v", got)
	}
	evs, err := o.s.PendingEvents(context.Background(), 100000)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range evs {
		if e.TenantID == o.tenant && e.Type == "notifier.mail.failed" && e.SubjectID == j.ID && e.Outcome == audit.OutcomeFailure {
			found = !strings.Contains(e.Details, "erika")
		}
	}
	if !found {
		t.Fatal("no audit event for the failed mail")
	}
}

// smtpSink is a real SMTP server (go-smtp's server side) in the test
// process: it counts accepted mails by Message-ID and can refuse recipients.
type smtpSink struct {
	mu       sync.Mutex
	accepted map[string]int // Message-ID -> deliveries
	sessions int
	refuse   bool
	addr     string
}

func newSMTPSink(t *testing.T, refuse bool) *smtpSink { return newSMTPSinkIdle(t, refuse, 0) }

// newSMTPSinkIdle closes a session idle for longer than idle (0: never).
func newSMTPSinkIdle(t *testing.T, refuse bool, idle time.Duration) *smtpSink {
	t.Helper()
	k := &smtpSink{accepted: map[string]int{}, refuse: refuse}
	srv := smtp.NewServer(k)
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout = idle
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	k.addr = ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return k
}

func (k *smtpSink) NewSession(*smtp.Conn) (smtp.Session, error) {
	k.mu.Lock()
	k.sessions++
	k.mu.Unlock()
	return &sinkSession{k: k}, nil
}

func (k *smtpSink) count(id string) int { k.mu.Lock(); defer k.mu.Unlock(); return k.accepted[id] }

type sinkSession struct{ k *smtpSink }

func (s *sinkSession) Reset()                               {}
func (s *sinkSession) Logout() error                        { return nil }
func (s *sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.k.refuse {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<" + to + ">: Recipient address rejected"}
	}
	return nil
}
func (s *sinkSession) Data(r io.Reader) error {
	m, err := mail.ReadMessage(r)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, m.Body)
	s.k.mu.Lock()
	s.k.accepted[m.Header.Get("Message-ID")]++
	s.k.mu.Unlock()
	return nil
}

func TestWorkerGivesUpAtOnceOnPermanentRejection(t *testing.T) {
	o := newOutbox(t)
	sink := newSMTPSink(t, true)
	sender, _ := notifier.NewSMTP(notifier.SMTPConfig{Addr: sink.addr})
	j := o.enqueue(t, "unknown@example.org")
	if n, err := o.worker(sender).RunOnce(context.Background()); n != 1 || err != nil {
		t.Fatalf("RunOnce = %d, %v", n, err)
	}
	got := o.job(t, j.ID)
	if got.Status != notifier.StatusFailed || got.Attempts != 1 || !strings.Contains(got.LastError, "550") || strings.Contains(got.LastError, "unknown@") {
		t.Fatalf("job after a 550: %+v", got)
	}
}

// The residual window, shown honestly: a worker that dies after the server
// accepted the mail but before recording it leaves the job "sending". When
// the lease ends another worker takes it. With a sender that can be asked
// (the .eml directory; maildev in the integration test) it records the
// earlier delivery instead of sending again; plain SMTP cannot be asked, so
// the mail goes out a second time, with the same Message-ID.
func TestWorkerAfterACrashBetweenSendAndCommit(t *testing.T) {
	crash := func(t *testing.T, o *outbox, s notifier.Sender) notifier.Job {
		t.Helper()
		j := o.enqueue(t, "erika@example.org")
		claimed, err := o.s.ClaimMails(context.Background(), notifier.Claim{Token: "dead-worker", Lease: time.Minute, Limit: 1, Tenants: []string{o.tenant}})
		if err != nil || len(claimed) != 1 {
			t.Fatalf("claim: %v %v", claimed, err)
		}
		m, err := notifier.Render(claimed[0], "postfach@kasse.example")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		// ...and the worker is gone before MarkMailSent.
		w := o.worker(s)
		if n, _ := w.RunOnce(context.Background()); n != 0 {
			t.Fatal("job taken over while its lease runs")
		}
		o.advance(2 * time.Minute)
		if n, err := w.RunOnce(context.Background()); n != 1 || err != nil {
			t.Fatalf("takeover: %d, %v", n, err)
		}
		got := o.job(t, j.ID)
		if got.Status != notifier.StatusSent || !got.Reclaimed || got.Attempts != 2 {
			t.Fatalf("after takeover: %+v", got)
		}
		return got
	}
	t.Run("eml directory: asked, not written twice", func(t *testing.T) {
		o := newOutbox(t)
		dir := t.TempDir()
		eml, _ := notifier.NewEMLDir(dir)
		before := time.Now()
		j := crash(t, o, eml)
		info, err := os.Stat(eml.Path(j.MessageID))
		if err != nil {
			t.Fatal(err)
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
		if len(files) != 1 || info.ModTime().Before(before.Add(-time.Second)) {
			t.Fatalf("%d files", len(files))
		}
	})
	t.Run("plain SMTP: cannot be asked, sent again with the same Message-ID", func(t *testing.T) {
		o := newOutbox(t)
		sink := newSMTPSink(t, false)
		sender, _ := notifier.NewSMTP(notifier.SMTPConfig{Addr: sink.addr})
		j := crash(t, o, sender)
		if n := sink.count(j.MessageID); n != 2 {
			t.Fatalf("server accepted %d copies, want 2 (the documented residual window)", n)
		}
	})
}

// Two workers on one outbox never send a job twice.
func TestWorkersShareTheOutbox(t *testing.T) {
	o := newOutbox(t)
	sink := newSMTPSink(t, false)
	sender, _ := notifier.NewSMTP(notifier.SMTPConfig{Addr: sink.addr})
	var ids []string
	for i := 0; i < 60; i++ {
		ids = append(ids, o.enqueue(t, "p"+uuid.NewString()[:6]+"@example.org").MessageID)
	}
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		w := o.worker(sender)
		w.Batch, w.Concurrency = 7, 3
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n, err := w.RunOnce(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				if n == 0 {
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if n := sink.count(id); n != 1 {
			t.Fatalf("mail %s delivered %d times", id, n)
		}
	}
}

// The SMTP sender keeps sessions open between mails, and a kept session the
// server closed meanwhile costs nothing but a new session: no mail is lost
// or sent twice.
func TestSMTPReusesSessions(t *testing.T) {
	sink := newSMTPSinkIdle(t, false, 300*time.Millisecond)
	sender, err := notifier.NewSMTP(notifier.SMTPConfig{Addr: sink.addr})
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	send := func() string {
		t.Helper()
		j := job("erika@example.org")
		m, err := notifier.Render(j, "postfach@kasse.example")
		if err != nil {
			t.Fatal(err)
		}
		if err := sender.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		return m.MessageID
	}
	var ids []string
	for i := 0; i < 5; i++ {
		ids = append(ids, send())
	}
	sink.mu.Lock()
	sessions := sink.sessions
	sink.mu.Unlock()
	if sessions != 1 {
		t.Fatalf("5 mails used %d sessions, want 1", sessions)
	}
	time.Sleep(600 * time.Millisecond) // the server drops the idle session
	ids = append(ids, send())
	sink.mu.Lock()
	sessions = sink.sessions
	sink.mu.Unlock()
	if sessions != 2 {
		t.Fatalf("sessions after the server closed the kept one: %d, want 2", sessions)
	}
	for _, id := range ids {
		if n := sink.count(id); n != 1 {
			t.Fatalf("mail %s accepted %d times", id, n)
		}
	}
}
