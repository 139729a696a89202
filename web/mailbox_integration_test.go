//go:build integration

package web_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	miniogo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"postbox/notifier"
	"postbox/storage/minio"
	"postbox/storage/postgres"
	"postbox/storage/storagetest"
)

// newServerWorld runs the Postfach on PostgreSQL (a fresh database) and
// MinIO (a fresh bucket, removed afterwards): the server mode.
func newServerWorld(t *testing.T) *postfachWorld {
	t.Helper()
	ctx := context.Background()
	store, err := postgres.Open(ctx, storagetest.FreshPostgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	endpoint := storagetest.Service(t, "POSTBOX_TEST_MINIO_ENDPOINT")
	access := storagetest.Service(t, "POSTBOX_TEST_MINIO_ACCESS_KEY")
	secret := storagetest.Service(t, "POSTBOX_TEST_MINIO_SECRET_KEY")
	var b [6]byte
	rand.Read(b[:])
	bucket := "postbox-postfach-" + hex.EncodeToString(b[:])
	bs, err := minio.New(endpoint, access, secret, bucket, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := bs.EnsureBucket(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := miniogo.New(endpoint, &miniogo.Options{Creds: credentials.NewStaticV4(access, secret, "")})
		if err == nil {
			err = c.RemoveBucketWithOptions(context.Background(), bucket, miniogo.RemoveBucketOptions{ForceDelete: true})
		}
		if err != nil {
			t.Logf("remove bucket %s: %v", bucket, err)
		}
	})
	return newPostfachWorld(t, store, bs)
}

// The attachment round trip on PostgreSQL + MinIO (SSE-S3, multipart for a
// stream of unknown length).
func TestPostfachAttachmentRoundTripServerMode(t *testing.T) {
	attachmentRoundTrip(t, newServerWorld(t))
}

func maildevAPI(t *testing.T) *notifier.Maildev {
	return &notifier.Maildev{URL: storagetest.Service(t, "POSTBOX_TEST_MAILDEV_URL")}
}

// runWorker sends the world's notifications through sender until the test
// ends.
func (w *postfachWorld) runWorker(t *testing.T, sender notifier.Sender, checker notifier.DeliveryChecker) *notifier.Worker {
	t.Helper()
	wk := &notifier.Worker{
		Outbox: w.store, Sender: sender, Checker: checker, From: "postfach@kasse.example",
		Tenants:   []string{w.ka.ID, w.kb.ID},
		RetryBase: 200 * time.Millisecond, RetryMax: time.Second, MaxAttempts: 1000,
		SendTimeout: 5 * time.Second, PollInterval: 100 * time.Millisecond, Logger: pfQuiet,
	}
	w.svc.Notified = wk.Notify
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); wk.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return wk
}

// mailsTo polls maildev until it holds at least want mails for recipient
// (or the deadline passes) and returns what it holds.
func mailsTo(t *testing.T, md *notifier.Maildev, recipient string, want int, within time.Duration) []notifier.MaildevEmail {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		list, err := md.EmailsTo(context.Background(), recipient)
		if err == nil && len(list) >= want {
			return list
		}
		if time.Now().After(deadline) {
			t.Fatalf("maildev holds %d mails for the recipient after %v (want %d); last error %v", len(list), within, want, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Acceptance: a caseworker's reply produces exactly one mail in maildev
// (the real SMTP server of ./deploy), and nothing of the reply is in it.
func TestCaseworkerReplyMailsOnceWithoutContent(t *testing.T) {
	w := newServerWorld(t)
	md := maildevAPI(t)
	sender, err := notifier.NewSMTP(notifier.SMTPConfig{Addr: storagetest.Service(t, "POSTBOX_TEST_SMTP_ADDR")})
	if err != nil {
		t.Fatal(err)
	}
	w.runWorker(t, sender, md)
	th := w.startThread("Krankengeld Juni", "Meine AU liegt bei.")
	const secret = "Vertraulich: Diagnose F43.2, Anpassungsstörung"
	w.must(w.doJSON("sachb-kg", "POST", "/api/postfach/threads/"+th.Thread.ID+"/messages", map[string]any{"body": secret}), 201)
	// Two more answers right after: no second mail now. The first mail left
	// at once; the two wait as one job until the window after it has passed.
	w.must(w.doJSON("sachb-kg", "POST", "/api/postfach/threads/"+th.Thread.ID+"/messages", map[string]any{"body": "Nachtrag 1"}), 201)
	w.must(w.doJSON("sachb-kg", "POST", "/api/postfach/threads/"+th.Thread.ID+"/messages", map[string]any{"body": "Nachtrag 2"}), 201)
	recipient := w.people["erika"].Email
	mails := mailsTo(t, md, recipient, 1, 15*time.Second)
	time.Sleep(2 * time.Second) // a second mail would have arrived by now
	mails = mailsTo(t, md, recipient, 1, time.Second)
	if len(mails) != 1 {
		t.Fatalf("maildev holds %d mails for the recipient, want exactly 1", len(mails))
	}
	m := mails[0]
	raw, err := md.Source(context.Background(), m.ID)
	if err != nil {
		t.Fatal(err)
	}
	everything := m.Subject + m.Text + m.HTML + string(raw)
	for _, leak := range []string{secret, "F43", "Diagnose", "Vertraulich", "Nachtrag", "Krankengeld Juni", "AU liegt"} {
		if strings.Contains(everything, leak) {
			t.Errorf("mail contains %q", leak)
		}
	}
	if m.Subject != "Neue Nachricht in Ihrem Postfach" || !strings.Contains(m.Text, "https://portal.example/ka") || len(m.Attachments) != 0 {
		t.Fatalf("mail: subject %q, %d attachments\n%s", m.Subject, len(m.Attachments), m.Text)
	}
	var sent, waiting []notifier.Job
	for _, j := range w.jobs("erika") {
		if j.Status == notifier.StatusSent {
			sent = append(sent, j)
		} else {
			waiting = append(waiting, j)
		}
	}
	if len(sent) != 1 || strings.Trim(sent[0].MessageID, "<>") != strings.Trim(m.MessageID(), "<>") {
		t.Fatalf("sent jobs %+v, mail Message-ID %q", sent, m.MessageID())
	}
	// Whether the later answers fold into the first job depends on whether
	// the worker had claimed it yet; either way they are announced once,
	// and not before the window has passed.
	switch {
	case len(waiting) == 0 && sent[0].Coalesced == 2:
	case len(waiting) == 1 && waiting[0].Status == notifier.StatusPending && sent[0].Coalesced+waiting[0].Coalesced == 1 &&
		!waiting[0].NextAttemptAt.Before(sent[0].CreatedAt.Add(15*time.Minute)):
	default:
		t.Fatalf("jobs: sent %+v, waiting %+v", sent, waiting)
	}
}

// maildevProc is a maildev of this test alone, on its own ports, so the
// test can stop and start it without touching the shared one.
type maildevProc struct {
	t                 testing.TB
	smtpAddr, webAddr string
	dir               string
	cmd               *exec.Cmd
}

func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}

func maildevBinary(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("POSTBOX_SERVICES_DIR")
	if dir == "" {
		dir = "/var/tmp/postbox-services"
	}
	bin := filepath.Join(dir, "npm", "node_modules", ".bin", "maildev")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("maildev binary %s missing: run ./deploy/install (%v)", bin, err)
	}
	return bin
}

func newMaildevProc(t testing.TB) *maildevProc {
	smtpPort, webPort := freePort(t), freePort(t)
	p := &maildevProc{t: t, smtpAddr: "127.0.0.1:" + smtpPort, webAddr: "127.0.0.1:" + webPort, dir: t.TempDir()}
	t.Cleanup(p.stop)
	return p
}

// start launches maildev and waits until its API answers.
func (p *maildevProc) start() {
	p.t.Helper()
	_, smtpPort, _ := net.SplitHostPort(p.smtpAddr)
	_, webPort, _ := net.SplitHostPort(p.webAddr)
	cmd := exec.Command(maildevBinary(p.t), "--ip", "127.0.0.1", "-s", smtpPort, "--web-ip", "127.0.0.1", "-w", webPort, "--mail-directory", p.dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logf, err := os.Create(filepath.Join(p.t.TempDir(), "maildev.log"))
	if err != nil {
		p.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.cmd = cmd
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + p.webAddr + "/api/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			p.t.Fatalf("maildev did not come up: %v\n%s", err, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop ends the maildev this test started (its own process group only).
func (p *maildevProc) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	p.cmd = nil
}

// Acceptance: with the mail server stopped, a reply is still in the
// Postfach and its mail waits (retrying); once the server runs again the
// mail arrives within seconds. The test stops and starts a maildev of its
// own; the shared one keeps running.
func TestNotificationWaitsWhileMailServerIsDown(t *testing.T) {
	w := newServerWorld(t)
	md := newMaildevProc(t)
	md.start()
	api := &notifier.Maildev{URL: "http://" + md.webAddr}
	sender, err := notifier.NewSMTP(notifier.SMTPConfig{Addr: md.smtpAddr, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	w.runWorker(t, sender, api)

	// The server works: a first notification arrives.
	th := w.startThread("Frage", "Hallo")
	w.must(w.doJSON("sachb-kg", "POST", "/api/postfach/threads/"+th.Thread.ID+"/messages", map[string]any{"body": "Antwort"}), 201)
	mailsTo(t, api, w.people["erika"].Email, 1, 15*time.Second)

	// The server stops. Bea's caseworker answers her.
	md.stop()
	var started threadOut
	w.must(w.doJSON("sachb-b", "POST", "/api/postfach/threads", map[string]any{
		"person_id": w.people["bea"].ID, "topic": "krankengeld", "subject": "Ihr Antrag", "body": "Ihr Antrag ist vollständig.",
	}), 201).json(t, &started)
	// The reply is in her Postfach at once.
	var view threadOut
	w.must(w.do("bea", "GET", "/api/postfach/threads/"+started.Thread.ID, nil, ""), 200).json(t, &view)
	if len(view.Messages) != 1 || view.Messages[0].Body != "Ihr Antrag ist vollständig." {
		t.Fatalf("Bea's Postfach: %+v", view)
	}
	// The mail waits and is retried while the server is away.
	deadline := time.Now().Add(20 * time.Second)
	for {
		jobs := w.jobs("bea")
		if len(jobs) == 1 && jobs[0].Status == notifier.StatusPending && jobs[0].Attempts >= 2 && jobs[0].LastError != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job while the server is down: %+v", jobs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The server is back: the mail arrives within seconds.
	md.start()
	back := time.Now()
	mails := mailsTo(t, api, w.people["bea"].Email, 1, 10*time.Second)
	t.Logf("mail arrived %v after the server answered again", time.Since(back).Round(10*time.Millisecond))
	if len(mails) != 1 || mails[0].Subject != "Neue Nachricht in Ihrem Postfach" || strings.Contains(mails[0].Text, "vollständig") {
		t.Fatalf("mails: %+v", mails)
	}
	if jobs := w.jobs("bea"); jobs[0].Status != notifier.StatusSent {
		t.Fatalf("job after delivery: %+v", jobs[0])
	}
}

// The residual window, narrowed where the server can be asked: a worker
// that died after maildev accepted the mail but before recording it. The
// worker that takes the job over asks maildev by Message-ID and records the
// delivery instead of sending a second copy.
func TestTakeoverAsksMaildevBeforeSendingAgain(t *testing.T) {
	w := newServerWorld(t)
	md := maildevAPI(t)
	sender, err := notifier.NewSMTP(notifier.SMTPConfig{Addr: storagetest.Service(t, "POSTBOX_TEST_SMTP_ADDR")})
	if err != nil {
		t.Fatal(err)
	}
	th := w.startThread("Frage", "Hallo")
	w.must(w.doJSON("sachb-kg", "POST", "/api/postfach/threads/"+th.Thread.ID+"/messages", map[string]any{"body": "Antwort"}), 201)
	ctx := context.Background()
	claimed, err := w.store.ClaimMails(ctx, notifier.Claim{Token: "dead", Lease: time.Second, Limit: 10, Tenants: []string{w.ka.ID}})
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %+v %v", claimed, err)
	}
	m, err := notifier.Render(claimed[0], "postfach@kasse.example")
	if err != nil {
		t.Fatal(err)
	}
	if err := sender.Send(ctx, m); err != nil {
		t.Fatal(err)
	}
	// The worker "crashes" here. Another one takes over after the lease.
	time.Sleep(1100 * time.Millisecond)
	wk := &notifier.Worker{Outbox: w.store, Sender: sender, Checker: md, From: "postfach@kasse.example", Tenants: []string{w.ka.ID}, Logger: pfQuiet}
	if n, err := wk.RunOnce(ctx); n != 1 || err != nil {
		t.Fatalf("takeover: %d, %v", n, err)
	}
	time.Sleep(time.Second)
	if mails := mailsTo(t, md, w.people["erika"].Email, 1, time.Second); len(mails) != 1 {
		t.Fatalf("maildev holds %d copies, want 1", len(mails))
	}
	if jobs := w.jobs("erika"); jobs[0].Status != notifier.StatusSent || !jobs[0].Reclaimed {
		t.Fatalf("job: %+v", jobs[0])
	}
}
