//go:build integration

package main

// Scale-out: three postbox processes on loopback share one PostgreSQL
// database, one bucket, one ClickHouse database and one maildev, as three
// pods behind a load balancer would. The test client spreads its requests
// round-robin over them.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"postbox/audit"
	"postbox/notifier"
	"postbox/storage/sqldb"
	"postbox/storage/storagetest"
)

func TestThreeReplicas(t *testing.T) {
	t.Parallel()
	md := storagetest.NewPrivateMaildev(t)
	md.Start()
	c := newCluster(t)
	c.smtpAddr, c.maildevURL = md.SMTPAddr, md.WebURL
	// The first replica seeds the demo Kasse with its accounts.
	replicas := []*pbProc{c.start("", "--demo")}
	for range 2 {
		replicas = append(replicas, c.start(""))
	}
	next := 0
	rr := func() *pbProc { p := replicas[next%len(replicas)]; next++; return p }
	ctx := context.Background()
	p := c.newPerson(nil)
	pc := c.login(p, replicas[0])

	// A session made on one replica works on every replica: what is typed
	// on the third is read back on the first.
	t.Run("sessions", func(t *testing.T) {
		for i, r := range replicas {
			pc.must("PUT", r.url("/api/draft"), map[string]string{"case_type": "hilfsmittel", "subject": "Betreff von Replik " + strconv.Itoa(i)}, 200)
			var d struct {
				Draft struct {
					Subject string `json:"subject"`
				} `json:"draft"`
			}
			pc.must("GET", replicas[(i+1)%3].url("/api/draft"), nil, 200).json(t, &d)
			if want := "Betreff von Replik " + strconv.Itoa(i); d.Draft.Subject != want {
				t.Fatalf("replica %d reads subject %q, want %q written on replica %d", (i+1)%3, d.Draft.Subject, want, i)
			}
		}
	})

	// An account login whose password step, second factor and first page
	// each land on another replica: the pending login and the session are
	// in the database, not in a replica's memory.
	t.Run("account_login_across_replicas", func(t *testing.T) {
		out := replicas[0].Logs()
		var password string
		for _, l := range loginLine.FindAllStringSubmatch(out, -1) {
			if l[2] == "sachb" {
				password = l[3]
			}
		}
		var uri string
		for _, m := range demoOTPLine.FindAllStringSubmatch(out, -1) {
			if m[1] == "sachb" {
				uri = m[2]
			}
		}
		if password == "" || uri == "" {
			t.Fatalf("demo printed no login for sachb:\n%s", storagetest.Tail(out, 3000))
		}
		jar, _ := cookiejar.New(nil) // cookies of 127.0.0.1 go to every port
		hc := &http.Client{Jar: jar, Timeout: time.Minute}
		call := func(on *pbProc, csrf, path string, body any) (int, map[string]any) {
			t.Helper()
			raw, _ := json.Marshal(body)
			req, _ := http.NewRequest("POST", on.url(path), bytes.NewReader(raw))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json")
			if csrf != "" {
				req.Header.Set("X-CSRF-Token", csrf)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var m map[string]any
			json.NewDecoder(resp.Body).Decode(&m)
			return resp.StatusCode, m
		}
		code, m := call(replicas[0], "", "/api/auth/login", map[string]string{"kasse": demoKasseID, "username": "sachb", "password": password})
		if code != 200 || m["stage"] != "second_factor" {
			t.Fatalf("password step on replica 0: %d %v", code, m)
		}
		key, err := otp.NewKeyFromURL(uri)
		if err != nil {
			t.Fatal(err)
		}
		totpCode, _ := totp.GenerateCode(key.Secret(), time.Now())
		code, m = call(replicas[1], m["csrf_token"].(string), "/api/auth/login/second-factor", map[string]string{"method": "totp", "code": totpCode})
		if code != 200 || m["stage"] != "done" {
			t.Fatalf("second factor on replica 1: %d %v", code, m)
		}
		for i, r := range replicas {
			resp, err := hc.Get(r.url("/api/account"))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("GET /api/account on replica %d with the session: %d", i, resp.StatusCode)
			}
		}
	})

	// Each PATCH of one upload goes to the next replica; every replica
	// reports the same offset; the object is byte-identical.
	t.Run("upload_round_robin", func(t *testing.T) {
		const chunk = 6 << 20
		data, sum := pdf(7*chunk + 12345)
		path := pc.create(rr(), int64(len(data)), "befund.pdf")
		for off := 0; off < len(data); {
			end := min(off+chunk, len(data))
			r := rr()
			a, err := pc.patch(ctx, r, path, int64(off), bytes.NewReader(data[off:end]), int64(end-off))
			if err != nil || a.status != http.StatusNoContent || a.header.Get("Upload-Offset") != strconv.Itoa(end) {
				t.Fatalf("PATCH %d-%d on %s: %d %v %s", off, end, r.addr, a.status, err, a.body)
			}
			off = end
			for _, other := range replicas {
				if got := pc.offset(other, path); got != int64(off) {
					t.Fatalf("replica %s reports offset %d, want %d", other.addr, got, off)
				}
			}
		}
		if got, n := c.storedSHA256(path); got != sum || n != int64(len(data)) {
			t.Fatalf("stored %d bytes sha256 %s, want %d bytes %s", n, got, len(data), sum)
		}
	})

	// Two PATCHes of the same bytes at the same offset reach two replicas
	// at once: never both write. Deterministic first (one holds the lease
	// while the other arrives: 423), then raced ten times (exactly one 204,
	// the other 423 or 409; the offset moves by one chunk per round).
	t.Run("concurrent_patches", func(t *testing.T) {
		const chunk = 1 << 20
		const rounds = 10
		data, sum := pdf((rounds + 1) * chunk)
		path := pc.create(replicas[0], int64(len(data)), "zwei.pdf")
		id := path[strings.LastIndexByte(path, '/')+1:]

		pr, pw := io.Pipe()
		first := make(chan answer, 1)
		go func() {
			a, err := pc.patch(ctx, replicas[0], path, 0, pr, chunk)
			if err != nil {
				t.Errorf("slow PATCH: %v", err)
			}
			first <- a
		}()
		pw.Write(data[:chunk/2])
		eventually(t, 20*time.Second, "the first PATCH does not hold the upload", func() bool {
			u, err := c.db().UploadByID(ctx, id)
			return err == nil && u.LockOwner != ""
		})
		a, err := pc.patch(ctx, replicas[1], path, 0, bytes.NewReader(data[:chunk]), chunk)
		if err != nil {
			t.Fatal(err)
		}
		if a.status != http.StatusLocked || a.header.Get("Retry-After") == "" {
			t.Fatalf("second PATCH while the first holds the upload: %d %s, want 423 with Retry-After", a.status, a.body)
		}
		if p := a.problem(t); !strings.Contains(p.Detail, "gerade von einer anderen Anfrage") {
			t.Fatalf("423 without a clear German message: %+v", p)
		}
		pw.Write(data[chunk/2 : chunk])
		pw.Close()
		if a := <-first; a.status != http.StatusNoContent {
			t.Fatalf("first PATCH: %d %s", a.status, a.body)
		}
		if a, _ := pc.patch(ctx, replicas[1], path, 0, bytes.NewReader(data[:chunk]), chunk); a.status != http.StatusConflict {
			t.Fatalf("late PATCH at the old offset: %d, want 409", a.status)
		}

		tally := map[int]int{}
		for round := 1; round <= rounds; round++ {
			off := round * chunk
			var wg sync.WaitGroup
			got := make([]int, 2)
			start := make(chan struct{})
			for i := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					a, err := pc.patch(ctx, replicas[(round+i)%3], path, int64(off), bytes.NewReader(data[off:off+chunk]), chunk)
					if err != nil {
						t.Errorf("round %d: %v", round, err)
					}
					got[i] = a.status
				}()
			}
			close(start)
			wg.Wait()
			ok := (got[0] == 204) != (got[1] == 204)
			for _, s := range got {
				ok = ok && (s == 204 || s == http.StatusLocked || s == http.StatusConflict)
			}
			if !ok {
				t.Fatalf("round %d: answers %v; want exactly one 204 and the other 423 or 409", round, got)
			}
			tally[got[0]]++
			tally[got[1]]++
			if o := pc.offset(replicas[2], path); o != int64(off+chunk) {
				t.Fatalf("round %d: offset %d, want %d (both wrote?)", round, o, off+chunk)
			}
		}
		t.Logf("raced PATCHes, answers over %d rounds: %v", rounds, tally)
		if got, n := c.storedSHA256(path); got != sum || n != int64(len(data)) {
			t.Fatalf("stored %d bytes sha256 %s, want %d bytes %s", n, got, len(data), sum)
		}
	})

	// The outbox workers of all three replicas run at once: every event
	// arrives once in ClickHouse (chains verify) and every mail once in
	// maildev.
	t.Run("outboxes_exactly_once", func(t *testing.T) {
		db := c.db()
		const mails = 300
		var jobs []notifier.Job
		err := db.InTx(ctx, func(tx *sqldb.Tx) error {
			for i := range mails {
				j, err := tx.EnqueueMail(ctx, notifier.Job{TenantID: p.kasseID, Recipient: fmt.Sprintf("rr-%03d-%s@example.org", i, rndHex(3)),
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
		// Events keep coming from four writers while three shippers run.
		tenants := []string{c.newPerson(nil).kasseID, c.newPerson(nil).kasseID}
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range 750 {
					err := db.InTx(ctx, func(tx *sqldb.Tx) error {
						_, err := tx.RecordEvent(ctx, audit.Event{TenantID: tenants[w%2], ActorID: fmt.Sprintf("acc-%d", w), ActorRole: "caseworker",
							Type: "vorgang.status.changed", SubjectType: "vorgang", SubjectID: fmt.Sprintf("v-%d", k%40),
							Details: `{"from":"eingegangen","to":"in_bearbeitung"}`})
						return err
					})
					if err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		eventually(t, 2*time.Minute, "outboxes not drained", func() bool {
			ev, _, err := db.OutboxDepth(ctx)
			var open int
			err2 := db.DB().QueryRowContext(ctx, `SELECT count(*) FROM mail_outbox WHERE tenant_id = $1 AND status <> 'sent'`, p.kasseID).Scan(&open)
			return err == nil && err2 == nil && ev == 0 && open == 0
		})
		copies := map[string]int{}
		for _, id := range maildevMessageIDs(t, md.WebURL) {
			copies[id]++
		}
		for _, j := range jobs {
			if k := copies[strings.Trim(j.MessageID, "<>")]; k != 1 {
				t.Errorf("mail %s arrived %d times, want once", j.MessageID, k)
			}
		}
		store := c.events()
		for _, tenant := range tenants {
			got, err := store.Query(ctx, audit.Filter{TenantID: tenant})
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, e := range got {
				if seen[e.ID] {
					t.Fatalf("event %s twice in the auditor's results", e.ID)
				}
				seen[e.ID] = true
			}
			var recorded int
			if err := db.DB().QueryRowContext(ctx, `SELECT count(*) FROM audit_outbox WHERE tenant_id = $1`, tenant).Scan(&recorded); err != nil {
				t.Fatal(err)
			}
			if len(got) != recorded || recorded != 1500 {
				t.Fatalf("Kasse %s: %d events in ClickHouse, %d recorded (want 1500)", tenant, len(got), recorded)
			}
			cmd := exec.Command(postboxBinary(t), "audit", "verify", "--kasse", tenant)
			cmd.Env = c.env("127.0.0.1:1", t.TempDir())
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("audit verify: %v\n%s", err, out)
			}
		}
	})

	// The submission made on one replica is answered the same by another
	// (a retry that lands elsewhere), and exists once.
	t.Run("submission_retry_elsewhere", func(t *testing.T) {
		q := c.newPerson(nil)
		qc := c.login(q, replicas[0])
		data, _ := pdf(128 << 10)
		qc.uploadComplete(replicas[1], data, "verordnung.pdf")
		qc.must("PUT", replicas[2].url("/api/draft"), map[string]string{"case_type": "hilfsmittel", "subject": "Verordnung"}, 200)
		var r1, r2 receiptOut
		qc.must("POST", replicas[0].url("/api/submit"), map[string]string{}, 200).json(t, &r1)
		qc.must("POST", replicas[1].url("/api/submit"), map[string]string{}, 200).json(t, &r2)
		vs, err := c.db().VorgaengeOfPerson(ctx, q.kasseID, q.id)
		if err != nil {
			t.Fatal(err)
		}
		if r1.Vorgang.ID == "" || r1.Vorgang.ID != r2.Vorgang.ID || len(vs) != 1 {
			t.Fatalf("receipts %q and %q, %d Vorgänge; want one Vorgang answered twice", r1.Vorgang.ID, r2.Vorgang.ID, len(vs))
		}
	})
}
