//go:build integration

package main

// A dependency goes away while postbox runs: PostgreSQL restarted, MinIO
// killed in the middle of an upload, the SMTP server down, ClickHouse down.
// Each test starts a PRIVATE instance of that one service on free ports
// (storagetest.NewPrivate*) and stops only that; the shared services other
// tests use keep running. What a user or operator would check: a clear
// German 503 where the request cannot be served, /readyz naming the part
// that is down while /healthz stays 200 (no restart loop of healthy
// pods), recovery without a restart of postbox, nothing lost.

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"postbox/audit"
	"postbox/storage/storagetest"
)

type readyAnswer struct {
	Status string   `json:"status"`
	Down   []string `json:"down"`
}

func ready(t *testing.T, p *pbProc) (int, readyAnswer) {
	t.Helper()
	resp, err := http.Get(p.url("/readyz"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var r readyAnswer
	answer{status: resp.StatusCode, body: raw}.json(t, &r)
	return resp.StatusCode, r
}

// waitDown waits until /readyz answers 503 naming exactly want, and checks
// /healthz still answers 200.
func waitDown(t *testing.T, p *pbProc, want ...string) {
	t.Helper()
	var last readyAnswer
	eventually(t, 30*time.Second, "readyz does not name the stopped service", func() bool {
		code, r := ready(t, p)
		last = r
		return code == http.StatusServiceUnavailable && slices.Equal(r.Down, want)
	})
	t.Logf("readyz while down: %+v", last)
	resp, err := http.Get(p.url("/healthz"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz = %d while %v is down, want 200 (liveness must not restart the pod)", resp.StatusCode, want)
	}
}

func waitReady(t *testing.T, p *pbProc, within time.Duration) {
	t.Helper()
	start := time.Now()
	eventually(t, within, "readyz did not turn ready again", func() bool {
		code, _ := ready(t, p)
		return code == http.StatusOK
	})
	t.Logf("ready again %v after the service came back", time.Since(start).Round(100*time.Millisecond))
}

// unavailable checks a 503 answer: German problem+json, Retry-After.
func unavailable(t *testing.T, what string, a answer) {
	t.Helper()
	if a.status != http.StatusServiceUnavailable {
		t.Fatalf("%s: %d, want 503: %s", what, a.status, a.body)
	}
	p := a.problem(t)
	if a.header.Get("Retry-After") == "" || !strings.Contains(p.Title, "vorübergehend nicht") || !strings.Contains(p.Detail, "Sekunden") {
		t.Fatalf("%s: 503 without Retry-After or a clear German message: %+v %v", what, p, a.header)
	}
}

// TestPostgresRestarted: with the database gone the API answers 503 (not
// 500) in German, an upload chunk is refused without changing the offset,
// the upload page (HTML) says the same; once PostgreSQL is back the same
// session goes on, the draft typed before is there, the upload resumes
// to a byte-identical file, and every audit event arrives once.
func TestPostgresRestarted(t *testing.T) {
	t.Parallel()
	pg := storagetest.NewPrivatePostgres(t)
	c := newCluster(t)
	c.pgDSN = pg.CreateDatabase("postbox")
	srv := c.start("")
	ctx := context.Background()
	p := c.newPerson(nil)
	pc := c.login(p, srv)
	pc.must("PUT", srv.url("/api/draft"), map[string]string{"case_type": "hilfsmittel", "subject": "Rollator"}, 200)
	data, sum := pdf(12 << 20)
	path := pc.create(srv, int64(len(data)), "verordnung.pdf")
	if a, err := pc.patch(ctx, srv, path, 0, bytes.NewReader(data[:6<<20]), 6<<20); err != nil || a.status != http.StatusNoContent {
		t.Fatalf("first chunk: %d %v", a.status, err)
	}

	pg.Stop()
	waitDown(t, srv, "postgres")
	a, err := pc.do(ctx, "GET", srv.url("/api/draft"), nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	unavailable(t, "GET /api/draft", a)
	a, err = pc.patch(ctx, srv, path, 6<<20, bytes.NewReader(data[6<<20:]), int64(len(data)-6<<20))
	if err != nil {
		t.Fatal(err)
	}
	unavailable(t, "PATCH while the database is down", a)
	page, err := http.NewRequest("GET", srv.url("/einmal-pin/"+p.kasseID), nil)
	if err != nil {
		t.Fatal(err)
	}
	page.Header.Set("Accept", "text/html")
	resp, err := http.DefaultClient.Do(page)
	if err != nil {
		t.Fatal(err)
	}
	html, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !bytes.Contains(html, []byte("vorübergehend nicht verfügbar")) {
		t.Fatalf("PIN page while the database is down: %d\n%s", resp.StatusCode, storagetest.Tail(string(html), 1500))
	}

	pg.Start()
	waitReady(t, srv, 60*time.Second)
	c.reconnect()
	var d struct {
		Draft struct {
			Subject string `json:"subject"`
		} `json:"draft"`
	}
	pc.must("GET", srv.url("/api/draft"), nil, 200).json(t, &d)
	if d.Draft.Subject != "Rollator" {
		t.Fatalf("draft after the restart: %+v, want the subject typed before", d)
	}
	if off := pc.offset(srv, path); off != 6<<20 {
		t.Fatalf("offset after the restart %d, want %d (the refused chunk must not count)", off, 6<<20)
	}
	if a, err := pc.patch(ctx, srv, path, 6<<20, bytes.NewReader(data[6<<20:]), int64(len(data)-6<<20)); err != nil || a.status != http.StatusNoContent {
		t.Fatalf("resume: %d %v %s", a.status, err, a.body)
	}
	if got, n := c.storedSHA256(path); got != sum || n != int64(len(data)) {
		t.Fatalf("stored %d bytes sha256 %s, want %d bytes %s", n, got, len(data), sum)
	}
	// The events of before and after the outage all reach ClickHouse once.
	eventually(t, time.Minute, "events still wait after the database came back", func() bool {
		n, _, err := c.db().OutboxDepth(ctx)
		return err == nil && n == 0
	})
	var recorded int
	if err := c.db().DB().QueryRowContext(ctx, `SELECT count(*) FROM audit_outbox WHERE tenant_id = $1`, p.kasseID).Scan(&recorded); err != nil {
		t.Fatal(err)
	}
	got, err := c.events().Query(ctx, audit.Filter{TenantID: p.kasseID})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range got {
		seen[e.ID] = true
	}
	if len(got) != recorded || len(seen) != recorded || recorded == 0 {
		t.Fatalf("%d events in ClickHouse (%d distinct), %d recorded", len(got), len(seen), recorded)
	}
}

// TestMinIOKilledMidUpload kills MinIO while a PATCH streams the second
// part of a 48 MiB file: the answer (if the client still gets one) is a
// German 503, the upload keeps exactly the part stored before, /readyz
// names minio; after MinIO is back the client resumes from the offset the
// server reports and the object is byte-identical.
func TestMinIOKilledMidUpload(t *testing.T) {
	t.Parallel()
	mio := storagetest.NewPrivateMinIO(t)
	mio.Start()
	c := newCluster(t)
	c.s3Endpoint, c.s3Key, c.s3Pass = mio.Endpoint, mio.AccessKey, mio.SecretKey
	srv := c.start("")
	ctx := context.Background()
	p := c.newPerson(nil)
	pc := c.login(p, srv)
	const size = 48 << 20
	data, sum := pdf(size)
	path := pc.create(srv, size, "befund.pdf")
	id := path[strings.LastIndexByte(path, '/')+1:]

	pr, pw := io.Pipe()
	answered := make(chan answer, 1)
	go func() {
		a, err := pc.patch(ctx, srv, path, 0, pr, size)
		if err != nil {
			t.Logf("PATCH during the MinIO kill: transport error %v", err)
		}
		answered <- a
	}()
	go func() {
		// The first 32 MiB part, then the rest slowly, so the kill lands
		// while the second part streams.
		if _, err := pw.Write(data[:36<<20]); err != nil {
			return
		}
		for off := 36 << 20; off < size; off += 256 << 10 {
			if _, err := pw.Write(data[off : off+256<<10]); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		pw.Close()
	}()
	eventually(t, 60*time.Second, "the first part was not stored", func() bool {
		u, err := c.db().UploadByID(ctx, id)
		return err == nil && u.Offset >= 32<<20
	})
	mio.Stop()
	a := <-answered
	pw.CloseWithError(io.ErrClosedPipe)
	if a.status != 0 {
		t.Logf("the PATCH cut by the kill answered %d: %s", a.status, a.body)
		unavailable(t, "PATCH while MinIO is killed", a)
	}
	waitDown(t, srv, "minio")

	mio.Start()
	waitReady(t, srv, 60*time.Second)
	off := int64(-1)
	eventually(t, 40*time.Second, "the upload stays locked", func() bool {
		resp, err := pc.do(ctx, "HEAD", srv.url(path), nil, 0, tusHeader(nil))
		if err != nil || resp.status != http.StatusOK {
			return false
		}
		u, err := c.db().UploadByID(ctx, id)
		if err != nil || u.LockOwner != "" && time.Now().Before(u.LockUntil) {
			return false
		}
		off = u.Offset
		return true
	})
	if off != 32<<20 {
		t.Fatalf("after the MinIO kill the upload holds %d bytes, want exactly the stored part (%d)", off, 32<<20)
	}
	if a, err := pc.patch(ctx, srv, path, off, bytes.NewReader(data[off:]), size-off); err != nil || a.status != http.StatusNoContent {
		t.Fatalf("resume: %d %v %s", a.status, err, a.body)
	}
	if got, n := c.storedSHA256(path); got != sum || n != size {
		t.Fatalf("stored %d bytes sha256 %s, want %d bytes %s", n, got, size, sum)
	}
}

// TestSMTPDown: with the mail server down a submission still succeeds at
// once (its notification waits in the outbox and is retried), /readyz
// names smtp; when the server is back the mail arrives exactly once.
func TestSMTPDown(t *testing.T) {
	t.Parallel()
	md := storagetest.NewPrivateMaildev(t)
	md.Start()
	c := newCluster(t)
	c.smtpAddr, c.maildevURL = md.SMTPAddr, md.WebURL
	srv := c.start("")
	p := c.newPerson(nil)
	pc := c.login(p, srv)
	data, _ := pdf(64 << 10)
	pc.uploadComplete(srv, data, "verordnung.pdf")
	pc.must("PUT", srv.url("/api/draft"), map[string]string{"case_type": "hilfsmittel", "subject": "Verordnung"}, 200)

	md.Stop()
	waitDown(t, srv, "smtp")
	pc.must("POST", srv.url("/api/submit"), map[string]string{}, 200)
	ctx := context.Background()
	eventually(t, 30*time.Second, "the mail job was not retried while the server is down", func() bool {
		var attempts int
		var lastErr string
		err := c.db().DB().QueryRowContext(ctx, `SELECT attempts, last_error FROM mail_outbox WHERE tenant_id = $1`, p.kasseID).Scan(&attempts, &lastErr)
		return err == nil && attempts >= 2 && lastErr != ""
	})
	md.Start()
	waitReady(t, srv, 30*time.Second)
	eventually(t, 30*time.Second, "the waiting mail did not arrive", func() bool { return len(maildevMessageIDs(t, md.WebURL)) > 0 })
	time.Sleep(3 * time.Second) // a second copy would come within the retry delay
	if ids := maildevMessageIDs(t, md.WebURL); len(ids) != 1 {
		t.Fatalf("maildev holds %d mails, want exactly 1: %v", len(ids), ids)
	}
}

// TestClickHouseDown: with ClickHouse down (POSTBOX_FAULT_OUTAGE, default
// 15 s here; the shipper-level 60 s outage is
// storage/clickhouse TestShippingSurvivesClickHouseOutage) users go on
// working (a submission answers 200), /readyz names clickhouse and the
// events wait in the outbox (/metrics postbox_outbox_depth); afterwards
// every event arrives once and the chain verifies.
func TestClickHouseDown(t *testing.T) {
	t.Parallel()
	down := 15 * time.Second
	if v := os.Getenv("POSTBOX_FAULT_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("POSTBOX_FAULT_OUTAGE: %v", err)
		}
		down = d
	}
	chs := storagetest.NewPrivateClickHouse(t)
	chs.Start()
	c := newCluster(t)
	c.chAddr = chs.Addr
	srv := c.start("")
	ctx := context.Background()
	db := c.db()
	eventually(t, 30*time.Second, "the start-up events were not shipped", func() bool {
		n, _, err := db.OutboxDepth(ctx)
		return err == nil && n == 0
	})

	chs.Stop()
	waitDown(t, srv, "clickhouse")
	p := c.newPerson(nil)
	pc := c.login(p, srv)
	data, _ := pdf(64 << 10)
	pc.uploadComplete(srv, data, "verordnung.pdf")
	pc.must("PUT", srv.url("/api/draft"), map[string]string{"case_type": "hilfsmittel", "subject": "Verordnung"}, 200)
	pc.must("POST", srv.url("/api/submit"), map[string]string{}, 200)
	time.Sleep(down)
	resp, err := http.Get(srv.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	waiting, _, _ := db.OutboxDepth(ctx)
	if waiting == 0 || !bytes.Contains(metrics, []byte(`postbox_outbox_depth{outbox="events"}`)) || bytes.Contains(metrics, []byte(`postbox_outbox_depth{outbox="events"} 0`)) {
		t.Fatalf("%d events waiting; /metrics must show them:\n%s", waiting, grepLines(string(metrics), "postbox_outbox_depth"))
	}
	t.Logf("%d events waiting after %v without ClickHouse", waiting, down)

	chs.Start()
	waitReady(t, srv, 30*time.Second)
	eventually(t, 60*time.Second, "events still wait after ClickHouse came back", func() bool {
		n, _, err := db.OutboxDepth(ctx)
		return err == nil && n == 0
	})
	var outbox int
	if err := db.DB().QueryRowContext(ctx, `SELECT count(*) FROM audit_outbox WHERE tenant_id = $1`, p.kasseID).Scan(&outbox); err != nil {
		t.Fatal(err)
	}
	store := c.events()
	got, err := store.Query(ctx, audit.Filter{TenantID: p.kasseID})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range got {
		if seen[e.ID] {
			t.Fatalf("event %s twice", e.ID)
		}
		seen[e.ID] = true
	}
	if len(got) != outbox || outbox == 0 {
		t.Fatalf("%d events in ClickHouse, %d recorded", len(got), outbox)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
