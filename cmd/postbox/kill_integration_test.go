//go:build integration

package main

// SIGKILL of the postbox process in server mode during a submission,
// during mail sending and during event shipping; then a restart, and the
// state a user (or an auditor) would check. SIGKILL during an upload is
// covered by web/tusclient (TestCrashDuringPatch: byte-identical after a
// kill mid-PATCH; TestTusJSClientSurvivesServerKill: tus-js-client's own
// retries finish the file after a kill and restart).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	chgo "github.com/ClickHouse/clickhouse-go/v2"

	"postbox/audit"
	"postbox/notifier"
	"postbox/storage/sqldb"
	"postbox/storage/storagetest"
)

// uploadComplete uploads data as one file in one PATCH and waits until it
// is complete (no scanner configured: released at once).
func (pc *pinClient) uploadComplete(on *pbProc, data []byte, name string) string {
	pc.t.Helper()
	path := pc.create(on, int64(len(data)), name)
	a, err := pc.patch(context.Background(), on, path, 0, bytes.NewReader(data), int64(len(data)))
	if err != nil || a.status != http.StatusNoContent {
		pc.t.Fatalf("PATCH: %d %v %s", a.status, err, a.body)
	}
	return path
}

type receiptOut struct {
	Vorgang struct {
		ID string `json:"id"`
	} `json:"vorgang"`
	Files []struct {
		SHA256 string `json:"sha256"`
		Size   int64  `json:"size"`
	} `json:"files"`
	ThreadID string `json:"thread_id"`
}

// TestKillDuringSubmission kills postbox while a submission's transaction
// is open (the test holds a row lock the transaction waits for, so the kill
// lands inside it for certain) and, in a second round, right after the
// transaction committed, before the client has its answer. After a restart the person's client sends the
// submission again, as the upload page does when an answer got lost: each
// submission exists exactly once — one Vorgang, one receipt, one
// "intake.submitted" event, one notification mail job — and the retry
// answers with that Vorgang.
func TestKillDuringSubmission(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	addr := freeAddr(t)
	srv := c.start(addr)
	db := c.db()
	ctx := context.Background()

	for _, round := range []string{"inside the transaction", "after the commit"} {
		t.Run(strings.ReplaceAll(round, " ", "_"), func(t *testing.T) {
			p := c.newPerson(nil)
			pc := c.login(p, srv)
			data, sum := pdf(256 << 10)
			path := pc.uploadComplete(srv, data, "verordnung.pdf")
			pc.must("PUT", srv.url("/api/draft"), map[string]string{"case_type": "hilfsmittel", "subject": "Verordnung Rollator"}, 200)

			// Hold the upload's row: Submit creates the Vorgang, then waits
			// for this lock in FinalizeUploads.
			uploadID := path[strings.LastIndexByte(path, '/')+1:]
			lockTx, err := db.DB().BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer lockTx.Rollback()
			if _, err := lockTx.ExecContext(ctx, `SELECT id FROM uploads WHERE id = $1 FOR UPDATE`, uploadID); err != nil {
				t.Fatal(err)
			}
			submitted := make(chan error, 1)
			go func() {
				_, err := pc.do(ctx, "POST", srv.url("/api/submit"), map[string]string{}, 0, nil)
				submitted <- err
			}()
			eventually(t, 20*time.Second, "the submission did not wait for the row lock", func() bool {
				var n int
				err := db.DB().QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity
					WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%FROM uploads%'`).Scan(&n)
				return err == nil && n > 0
			})
			if round == "after the commit" {
				// Let it commit, and kill as soon as the Vorgang is visible:
				// the answer is lost or on its way.
				lockTx.Rollback()
				deadline := time.Now().Add(10 * time.Second)
				for {
					vs, err := db.VorgaengeOfPerson(ctx, p.kasseID, p.id)
					if err == nil && len(vs) > 0 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatal("the submission did not commit after the lock was released")
					}
					time.Sleep(time.Millisecond)
				}
			}
			srv.kill()
			lockTx.Rollback()
			if err := <-submitted; err == nil && round == "inside the transaction" {
				t.Fatal("the submission answered although the server was killed inside its transaction")
			}
			vs, err := db.VorgaengeOfPerson(ctx, p.kasseID, p.id)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d Vorgang committed before the kill", round, len(vs))
			if want := map[string]int{"inside the transaction": 0, "after the commit": 1}[round]; len(vs) != want {
				t.Fatalf("%d Vorgänge visible after the kill %s, want %d: %+v", len(vs), round, want, vs)
			}

			srv = c.start(addr)
			// The client sends again with its cookie and token.
			var rec receiptOut
			for attempt := 0; ; attempt++ {
				a, err := pc.do(ctx, "POST", srv.url("/api/submit"), map[string]string{}, 0, nil)
				if err != nil {
					t.Fatal(err)
				}
				if a.status == http.StatusOK {
					a.json(t, &rec)
					break
				}
				// The upload may still be held by the dead process's lease.
				if a.status != http.StatusConflict || attempt > 40 {
					t.Fatalf("submission after restart: %d %s", a.status, a.body)
				}
				time.Sleep(time.Second)
			}
			again, err := pc.do(ctx, "POST", srv.url("/api/submit"), map[string]string{}, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			var rec2 receiptOut
			again.json(t, &rec2)
			if again.status != http.StatusOK || rec2.Vorgang.ID != rec.Vorgang.ID {
				t.Fatalf("a second retry answered %d with Vorgang %q, want 200 with %q", again.status, rec2.Vorgang.ID, rec.Vorgang.ID)
			}

			vs, err = db.VorgaengeOfPerson(ctx, p.kasseID, p.id)
			if err != nil {
				t.Fatal(err)
			}
			if len(vs) != 1 || vs[0].ID != rec.Vorgang.ID {
				t.Fatalf("person has %d Vorgänge after kill and retries, want exactly the one answered (%s): %+v", len(vs), rec.Vorgang.ID, vs)
			}
			if len(rec.Files) != 1 || rec.Files[0].SHA256 != sum || rec.Files[0].Size != int64(len(data)) || rec.ThreadID == "" {
				t.Fatalf("receipt: %+v, want the one file with sha256 %s and a receipt thread", rec, sum)
			}
			var threads, submittedEvents, mails int
			q := func(query string, dst *int, args ...any) {
				if err := db.DB().QueryRowContext(ctx, query, args...).Scan(dst); err != nil {
					t.Fatal(err)
				}
			}
			q(`SELECT count(*) FROM threads WHERE tenant_id = $1 AND owner_kind = 'person' AND owner_id = $2`, &threads, p.kasseID, p.id)
			q(`SELECT count(*) FROM audit_outbox WHERE tenant_id = $1 AND type = 'intake.submitted'`, &submittedEvents, p.kasseID)
			q(`SELECT count(*) FROM mail_outbox WHERE tenant_id = $1 AND recipient = $2`, &mails, p.kasseID, p.email)
			if threads != 1 || submittedEvents != 1 || mails != 1 {
				t.Fatalf("after kill and retries: %d receipt threads, %d intake.submitted events, %d mail jobs; want 1 each", threads, submittedEvents, mails)
			}
		})
	}
}

// maildevMessageIDs lists the Message-ID of every mail a maildev holds.
func maildevMessageIDs(t *testing.T, url string) []string {
	t.Helper()
	resp, err := http.Get(url + "/api/email")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []notifier.MaildevEmail
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(list))
	for i, e := range list {
		ids[i] = strings.Trim(e.MessageID(), "<>")
	}
	return ids
}

// TestKillDuringMailSending queues 300 notification mails, kills postbox
// while its worker sends them to a maildev of the test's own, and starts it
// again. Every mail arrives. A mail is sent twice only inside the
// documented residual window: a job that was being sent at the kill (SMTP
// accepted it, the process died before recording it) is taken over when
// its lease ends and, since a real relay cannot be asked, sent again with
// the same Message-ID. Every copy beyond the first must belong to such a
// reclaimed job.
func TestKillDuringMailSending(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	md := storagetest.NewPrivateMaildev(t)
	md.Start()
	c.smtpAddr, c.maildevURL = md.SMTPAddr, md.WebURL
	db := c.db()
	ctx := context.Background()
	p := c.newPerson(nil)

	const n = 300
	jobs := make([]notifier.Job, 0, n)
	err := db.InTx(ctx, func(tx *sqldb.Tx) error {
		for i := 0; i < n; i++ {
			j, err := tx.EnqueueMail(ctx, notifier.Job{TenantID: p.kasseID, Recipient: fmt.Sprintf("empf-%03d-%s@example.org", i, rndHex(3)),
				Template: notifier.TemplateNewMessage, Data: map[string]string{notifier.DataKasseName: "Fehlertest-Kasse", notifier.DataPortalURL: "http://portal.invalid"}})
			if err != nil {
				return err
			}
			jobs = append(jobs, j)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	addr := freeAddr(t)
	var sending, atKill int
	for attempt := 1; ; attempt++ {
		srv := c.start(addr)
		// Kill once mails arrive and a batch is claimed (between two claims
		// no job is "sending").
		eventually(t, 60*time.Second, "maildev received no mail while jobs were claimed", func() bool {
			err := db.DB().QueryRowContext(ctx, `SELECT count(*) FROM mail_outbox WHERE tenant_id = $1 AND status = 'sending'`, p.kasseID).Scan(&sending)
			return err == nil && sending > 0 && len(maildevMessageIDs(t, md.WebURL)) >= 20
		})
		srv.kill()
		if err := db.DB().QueryRowContext(ctx, `SELECT count(*) FROM mail_outbox WHERE tenant_id = $1 AND status = 'sending'`, p.kasseID).Scan(&sending); err != nil {
			t.Fatal(err)
		}
		atKill = len(maildevMessageIDs(t, md.WebURL))
		t.Logf("killed with %d of %d mails at the server and %d jobs claimed (sending)", atKill, n, sending)
		if sending > 0 && atKill < n {
			break
		}
		if attempt == 3 {
			t.Fatalf("the kill did not happen during sending: %d of %d delivered, %d jobs sending", atKill, n, sending)
		}
		t.Logf("attempt %d: the kill fell between two claims; once more", attempt)
	}

	c.start(addr)
	// Claimed jobs wait for their lease (2 minutes) before another worker
	// takes them over.
	start := time.Now()
	eventually(t, 4*time.Minute, "not every mail job was marked sent", func() bool {
		var open int
		err := db.DB().QueryRowContext(ctx, `SELECT count(*) FROM mail_outbox WHERE tenant_id = $1 AND status <> 'sent'`, p.kasseID).Scan(&open)
		return err == nil && open == 0
	})
	t.Logf("all jobs sent %v after the restart", time.Since(start).Round(time.Second))

	copies := map[string]int{}
	for _, id := range maildevMessageIDs(t, md.WebURL) {
		copies[id]++
	}
	dups, reclaimed := 0, 0
	for _, j := range jobs {
		got, err := db.MailJob(ctx, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		id := strings.Trim(j.MessageID, "<>")
		if got.Reclaimed {
			reclaimed++
		}
		switch k := copies[id]; {
		case k == 0:
			t.Errorf("mail %s never arrived (job %+v)", id, got)
		case k > 2 || (k == 2 && !got.Reclaimed):
			t.Errorf("mail %s arrived %d times; reclaimed=%v", id, k, got.Reclaimed)
		case k == 2:
			dups++
		}
	}
	if len(copies) != n {
		t.Errorf("maildev holds %d distinct mails, want %d", len(copies), n)
	}
	t.Logf("%d jobs were taken over after the kill; %d of them were sent a second time (the residual window)", reclaimed, dups)
	if reclaimed == 0 {
		t.Error("no job was taken over although jobs were being sent at the kill")
	}
}

// TestKillDuringEventShipping fills the outbox with a backlog of 12,000
// audit events of four Kassen (two shipper batches), starts postbox, kills
// it after its shipper appended a batch to ClickHouse but before it marked
// the batch shipped, and starts it again: every event arrives exactly once
// in the auditor's queries and each Kasse's hash chain verifies ("postbox
// audit verify"). The batch is shipped a second time; the dedupe absorbs it.
func TestKillDuringEventShipping(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	db := c.db()
	ctx := context.Background()

	const perTenant = 3000
	tenants := make([]string, 4)
	produced := make([]map[string]audit.Event, len(tenants))
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range tenants {
		tenants[i] = c.newPerson(nil).kasseID
		produced[i] = make(map[string]audit.Event, perTenant)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			err := db.InTx(ctx, func(tx *sqldb.Tx) error {
				for k := 0; k < perTenant; k++ {
					e, err := tx.RecordEvent(ctx, audit.Event{TenantID: tenants[i], ActorID: fmt.Sprintf("acc-%d", k%7), ActorRole: "caseworker",
						Type: "vorgang.status.changed", SubjectType: "vorgang", SubjectID: fmt.Sprintf("v-%d", k%100),
						Details: `{"from":"eingegangen","to":"in_bearbeitung"}`})
					if err != nil {
						return err
					}
					produced[i][e.ID] = e
				}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	total := perTenant * len(tenants)
	t.Logf("backlog of %d events written in %v", total, time.Since(t0).Round(time.Millisecond))

	conn, err := chgo.Open(&chgo.Options{Addr: []string{c.chAddr}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rows := func() uint64 {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+c.chDB+".audit_trail").Scan(&n); err != nil {
			return 0 // the table does not exist yet
		}
		return n
	}

	// Hold the queue rows: the shipper reads a batch and appends it to
	// ClickHouse, then waits for this lock to mark it shipped — the kill
	// lands exactly between append and mark, the window at-least-once
	// shipping exists for.
	lockTx, err := db.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lockTx.Rollback()
	if _, err := lockTx.ExecContext(ctx, `SELECT id FROM audit_ship_queue FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	srv := c.start(addr)
	eventually(t, 2*time.Minute, "the shipper did not append and then wait to mark", func() bool {
		var waiting int
		err := db.DB().QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'DELETE FROM audit_ship_queue%'`).Scan(&waiting)
		return err == nil && waiting > 0 && rows() > 0
	})
	srv.kill()
	lockTx.Rollback()
	depth, _, err := db.OutboxDepth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	atKill := rows()
	t.Logf("killed between append and mark: %d rows in ClickHouse, %d events still queued", atKill, depth)
	if depth != int64(total) || atKill == 0 {
		t.Fatalf("the kill did not happen between append and mark: %d queued of %d, %d rows", depth, total, atKill)
	}

	c.start(addr)
	eventually(t, 3*time.Minute, "events still wait in the outbox", func() bool {
		n, _, err := db.OutboxDepth(ctx)
		return err == nil && n == 0
	})
	var stored, distinct uint64
	if err := conn.QueryRow(ctx, "SELECT count(), uniqExact(id) FROM "+c.chDB+".audit_trail").Scan(&stored, &distinct); err != nil {
		t.Fatal(err)
	}
	t.Logf("ClickHouse storage: %d rows for %d distinct events (copies from the batch in flight are deduped on read)", stored, distinct)
	if distinct != uint64(total) {
		t.Fatalf("%d distinct events in ClickHouse, %d produced", distinct, total)
	}

	store := c.events()
	for i, tenant := range tenants {
		got, err := store.Query(ctx, audit.Filter{TenantID: tenant})
		if err != nil {
			t.Fatal(err)
		}
		seen := make(map[string]bool, len(got))
		for _, e := range got {
			if seen[e.ID] {
				t.Fatalf("event %s twice in the auditor's results", e.ID)
			}
			seen[e.ID] = true
			if p, ok := produced[i][e.ID]; !ok || p != e {
				t.Fatalf("event %s in ClickHouse differs from the one produced", e.ID)
			}
		}
		if len(got) != perTenant {
			t.Fatalf("Kasse %s: %d events in ClickHouse, %d produced", tenant, len(got), perTenant)
		}
		cmd := exec.Command(postboxBinary(t), "audit", "verify", "--kasse", tenant)
		cmd.Env = c.env("127.0.0.1:1", t.TempDir())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("postbox audit verify --kasse %s: %v\n%s", tenant, err, out)
		}
		if i == 0 {
			t.Logf("audit verify: %s", strings.TrimSpace(string(out)))
		}
	}
}

// TestKillDuringUploadCompletion kills postbox after the last chunk of an
// upload arrived and the parts were joined in MinIO, but before the upload
// was recorded complete (the test holds the Kasse's chain head, which the
// "completed" event needs). After a restart the upload maintenance of a
// replica finishes it once the dead process's lease ran out: the upload is
// complete with the file's SHA-256, the object is byte-identical, and its
// completion is recorded once.
func TestKillDuringUploadCompletion(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	addr := freeAddr(t)
	srv := c.start(addr)
	db := c.db()
	ctx := context.Background()
	p := c.newPerson(nil)
	pc := c.login(p, srv)
	data, sum := pdf(12 << 20)
	path := pc.create(srv, int64(len(data)), "befund.pdf")
	id := path[strings.LastIndexByte(path, '/')+1:]
	if a, err := pc.patch(ctx, srv, path, 0, bytes.NewReader(data[:6<<20]), 6<<20); err != nil || a.status != http.StatusNoContent {
		t.Fatalf("first chunk: %d %v", a.status, err)
	}

	lockTx, err := db.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lockTx.Rollback()
	if _, err := lockTx.ExecContext(ctx, `SELECT seq FROM audit_chain_heads WHERE tenant_id = $1 FOR UPDATE`, p.kasseID); err != nil {
		t.Fatal(err)
	}
	go pc.patch(ctx, srv, path, 6<<20, bytes.NewReader(data[6<<20:]), int64(len(data)-6<<20))
	eventually(t, 30*time.Second, "the completion did not wait for the chain head", func() bool {
		var waiting int
		err := db.DB().QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%audit_chain_heads%'`).Scan(&waiting)
		return err == nil && waiting > 0
	})
	u, err := db.UploadByID(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	srv.kill()
	lockTx.Rollback()
	t.Logf("killed with the upload %s at offset %d of %d", u.Status, u.Offset, u.Length)
	if u.Status != "completing" || u.Offset != int64(len(data)) {
		t.Fatalf("the kill did not land in the completion: %s at %d", u.Status, u.Offset)
	}

	srv = c.start(addr)
	if off := pc.offset(srv, path); off != int64(len(data)) {
		t.Fatalf("after the restart the client is told offset %d, want %d (all bytes are stored)", off, len(data))
	}
	start := time.Now()
	eventually(t, 3*time.Minute, "the stalled upload was not finished", func() bool {
		u, err := db.UploadByID(ctx, id)
		return err == nil && u.Status == "complete"
	})
	t.Logf("finished by upload maintenance %v after the restart", time.Since(start).Round(time.Second))
	u, err = db.UploadByID(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if u.SHA256 != sum {
		t.Fatalf("recorded sha256 %s, want %s", u.SHA256, sum)
	}
	if got, n := c.storedSHA256(path); got != sum || n != int64(len(data)) {
		t.Fatalf("stored %d bytes sha256 %s, want %d bytes %s", n, got, len(data), sum)
	}
	var completed int
	if err := db.DB().QueryRowContext(ctx, `SELECT count(*) FROM audit_outbox WHERE tenant_id = $1 AND type = 'intake.upload.completed' AND subject_id = $2`,
		p.kasseID, id).Scan(&completed); err != nil {
		t.Fatal(err)
	}
	if completed != 1 {
		t.Fatalf("%d intake.upload.completed events, want 1", completed)
	}
}
