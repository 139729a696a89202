//go:build integration

package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"postbox/storage/storagetest"
)

// TestPostgresHung: the database host freezes (SIGSTOP: connections are
// accepted, nothing answers, nothing is refused). An API request and a page
// still get the German 503 (the request deadline ends the wait) instead of
// hanging; after SIGCONT the same session goes on and the draft typed
// before is still there, and a new one is stored.
func TestPostgresHung(t *testing.T) {
	t.Parallel()
	pg := storagetest.NewPrivatePostgres(t)
	c := newCluster(t)
	c.pgDSN = pg.CreateDatabase("postbox")
	srv := c.start("")
	p := c.newPerson(nil)
	pc := c.login(p, srv)
	pc.must("PUT", srv.url("/api/draft"), map[string]string{"case_type": "hilfsmittel", "subject": "Rollator"}, 200)
	doc, _ := pdf(2 << 20)
	up := pc.create(srv, int64(len(doc)), "verordnung.pdf")

	pg.Pause()
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			pg.Resume()
		}
	})
	waitDown(t, srv, "postgres")

	// Both at once: each waits for the request deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	type result struct {
		a    answer
		err  error
		took time.Duration
	}
	api, page, chunk := make(chan result, 1), make(chan result, 1), make(chan result, 1)
	go func() {
		// An upload request streams its body and has no request deadline:
		// its session and upload lookups are bounded in the store.
		start := time.Now()
		a, err := pc.patch(ctx, srv, up, 0, bytes.NewReader(doc[:1<<20]), 1<<20)
		chunk <- result{a, err, time.Since(start)}
	}()
	go func() {
		start := time.Now()
		a, err := pc.do(ctx, "GET", srv.url("/api/draft"), nil, 0, nil)
		api <- result{a, err, time.Since(start)}
	}()
	go func() {
		start := time.Now()
		req, err := http.NewRequestWithContext(ctx, "GET", srv.url("/einmal-pin/"+p.kasseID), nil)
		if err != nil {
			page <- result{err: err}
			return
		}
		req.Header.Set("Accept", "text/html")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			page <- result{err: err}
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		page <- result{a: answer{status: resp.StatusCode, body: body, header: resp.Header}, took: time.Since(start)}
	}()
	r := <-api
	if r.err != nil {
		t.Fatalf("GET /api/draft while the database hangs: no answer: %v", r.err)
	}
	t.Logf("API answered %d after %v", r.a.status, r.took.Round(100*time.Millisecond))
	unavailable(t, "GET /api/draft while the database hangs", r.a)
	r = <-page
	if r.err != nil {
		t.Fatalf("PIN page while the database hangs: no answer: %v", r.err)
	}
	t.Logf("page answered %d after %v", r.a.status, r.took.Round(100*time.Millisecond))
	if r.a.status != http.StatusServiceUnavailable || !bytes.Contains(r.a.body, []byte("vorübergehend nicht verfügbar")) {
		t.Fatalf("PIN page while the database hangs: %d\n%s", r.a.status, storagetest.Tail(string(r.a.body), 1500))
	}

	r = <-chunk
	if r.err != nil {
		t.Fatalf("PATCH while the database hangs: no answer: %v", r.err)
	}
	t.Logf("upload chunk answered %d after %v", r.a.status, r.took.Round(100*time.Millisecond))
	unavailable(t, "PATCH while the database hangs", r.a)
	if r.took > time.Minute {
		t.Errorf("PATCH while the database hangs answered only after %v", r.took.Round(time.Second))
	}

	pg.Resume()
	resumed = true
	waitReady(t, srv, 60*time.Second)
	var d struct {
		Draft struct {
			Subject string `json:"subject"`
		} `json:"draft"`
	}
	// The connections cut by the deadline are replaced; allow the pool a
	// moment to notice the ones that were waiting.
	eventually(t, 30*time.Second, "the draft cannot be read after the database thawed", func() bool {
		a, err := pc.do(context.Background(), "GET", srv.url("/api/draft"), nil, 0, nil)
		return err == nil && a.status == http.StatusOK
	})
	pc.must("GET", srv.url("/api/draft"), nil, 200).json(t, &d)
	if d.Draft.Subject != "Rollator" {
		t.Fatalf("draft after the database thawed: %+v, want the subject typed before", d)
	}
	pc.must("PUT", srv.url("/api/draft"), map[string]string{"case_type": "hilfsmittel", "subject": "Rollator mit Sitz"}, 200)
	// The refused chunk changed nothing; the upload goes on from 0.
	if off := pc.offset(srv, up); off != 0 {
		t.Fatalf("offset after the refused chunk: %d, want 0", off)
	}
	if a, err := pc.patch(context.Background(), srv, up, 0, bytes.NewReader(doc), int64(len(doc))); err != nil || a.status != http.StatusNoContent {
		t.Fatalf("PATCH after the database thawed: %d %v %s", a.status, err, a.body)
	}
	pc.must("GET", srv.url("/api/draft"), nil, 200).json(t, &d)
	if d.Draft.Subject != "Rollator mit Sitz" {
		t.Fatalf("draft stored after the database thawed: %+v", d)
	}
}
