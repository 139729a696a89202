package web

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"postbox/intake"
	"postbox/storage/sqldb"
)

func TestTusIdempotencyEmbedded(t *testing.T) {
	runTusIdempotencyCases(t, embeddedBackend)
}

// createKeyed sends a creation with an Idempotency-Key.
func (f *tusFixture) createKeyed(who, key string, length int64, filename string) *http.Response {
	f.t.Helper()
	return f.do("POST", TusPath, who, hdr{"Idempotency-Key": key, "Upload-Length": strconv.FormatInt(length, 10),
		"Upload-Metadata": metadata("filename", filename, "filetype", "application/pdf")}, nil)
}

// uploadsOf returns every upload row of a person, whatever its status.
func (f *tusFixture) uploadsOf(personID, tenantID string) []intake.Upload {
	f.t.Helper()
	list, err := f.db.UploadsOfPerson(context.Background(), tenantID, personID)
	if err != nil {
		f.t.Fatal(err)
	}
	return list
}

// createdEvents counts the intake.upload.created events of a tenant.
func (f *tusFixture) createdEvents(tenantID string) int {
	f.t.Helper()
	events, err := f.db.PendingEvents(context.Background(), 10000)
	if err != nil {
		f.t.Fatal(err)
	}
	n := 0
	for _, e := range events {
		if e.Type == "intake.upload.created" && e.TenantID == tenantID {
			n++
		}
	}
	return n
}

func runTusIdempotencyCases(t *testing.T, factory tusBackendFactory) {
	t.Run("a repeated creation with the same key gets the same upload, its offset, no second row or event", func(t *testing.T) {
		f := newTusFixture(t, factory)
		data := doc("pdf", 3*mib+17, 41)
		key := "4f1c2a9e-7b3d-4e8a-9c21-0d5e6f7a8b9c"
		first := f.createKeyed(f.erika.ID, `"`+key+`"`, int64(len(data)), "befund.pdf")
		if first.StatusCode != http.StatusCreated {
			t.Fatalf("first creation: %d %s", first.StatusCode, readProblem(t, first).Detail)
		}
		id := idOf(t, first.Header.Get("Location"))
		// The answer was lost; the client sends the POST again (the draft's
		// sf-string and the bare token are the same key).
		for _, k := range []string{`"` + key + `"`, key} {
			again := f.createKeyed(f.erika.ID, k, int64(len(data)), "befund.pdf")
			if again.StatusCode != http.StatusCreated || again.Header.Get("Location") != first.Header.Get("Location") {
				t.Fatalf("repeat %s: status %d Location %q, want 201 %q", k, again.StatusCode, again.Header.Get("Location"), first.Header.Get("Location"))
			}
			if again.Header.Get("Upload-Offset") != "0" || again.Header.Get("Tus-Resumable") != "1.0.0" || again.Header.Get("Upload-Expires") == "" {
				t.Fatalf("repeat: Upload-Offset %q Tus-Resumable %q Upload-Expires %q", again.Header.Get("Upload-Offset"),
					again.Header.Get("Tus-Resumable"), again.Header.Get("Upload-Expires"))
			}
		}
		// Halfway through, a repeat tells where to continue.
		f.send(f.erika.ID, id, data[:mib], 0, mib)
		again := f.createKeyed(f.erika.ID, key, int64(len(data)), "befund.pdf")
		if again.StatusCode != http.StatusCreated || idOf(t, again.Header.Get("Location")) != id || again.Header.Get("Upload-Offset") != strconv.Itoa(mib) {
			t.Fatalf("repeat after 1 MiB: status %d Location %q offset %q", again.StatusCode, again.Header.Get("Location"), again.Header.Get("Upload-Offset"))
		}
		f.send(f.erika.ID, id, data, mib, mib)
		if !bytes.Equal(f.stored(id), data) {
			t.Fatal("object not byte-identical")
		}
		if list := f.uploadsOf(f.erika.ID, f.kasse.ID); len(list) != 1 || list[0].ID != id {
			t.Fatalf("%d uploads of the person, want the one %s", len(list), id)
		}
		if n := f.createdEvents(f.kasse.ID); n != 1 {
			t.Fatalf("%d intake.upload.created events, want 1", n)
		}
		// Complete: a repeat still names it (the client finds it done).
		again = f.createKeyed(f.erika.ID, key, int64(len(data)), "befund.pdf")
		if again.StatusCode != http.StatusCreated || idOf(t, again.Header.Get("Location")) != id || again.Header.Get("Upload-Offset") != strconv.Itoa(len(data)) {
			t.Fatalf("repeat of a complete upload: status %d offset %q", again.StatusCode, again.Header.Get("Upload-Offset"))
		}
	})

	t.Run("the same key of another person or tenant is another upload", func(t *testing.T) {
		f := newTusFixture(t, factory)
		key := "same-key-for-everyone-0123456789"
		ids := map[string]string{}
		for _, p := range []struct{ who, tenant string }{{f.erika.ID, f.kasse.ID}, {f.max.ID, f.kasse.ID}, {f.foreign.ID, f.foreign.TenantID}} {
			for range 2 {
				resp := f.createKeyed(p.who, key, 1000, "a.pdf")
				if resp.StatusCode != http.StatusCreated {
					t.Fatalf("%s: %d %s", p.who, resp.StatusCode, readProblem(t, resp).Detail)
				}
				id := idOf(t, resp.Header.Get("Location"))
				if prev, ok := ids[p.who]; ok && prev != id {
					t.Fatalf("%s: repeat got %s, want %s", p.who, id, prev)
				}
				ids[p.who] = id
			}
			if list := f.uploadsOf(p.who, p.tenant); len(list) != 1 || list[0].ID != ids[p.who] || list[0].PersonID != p.who {
				t.Fatalf("%s has %d uploads, want its own one", p.who, len(list))
			}
		}
		if ids[f.erika.ID] == ids[f.max.ID] || ids[f.erika.ID] == ids[f.foreign.ID] || ids[f.max.ID] == ids[f.foreign.ID] {
			t.Fatalf("one key gave two owners the same upload: %v", ids)
		}
	})

	t.Run("the same key for another file answers 422 and creates nothing", func(t *testing.T) {
		f := newTusFixture(t, factory)
		key := "a1b2c3d4e5f6a7b8c9d0"
		if resp := f.createKeyed(f.erika.ID, key, 1000, "a.pdf"); resp.StatusCode != http.StatusCreated {
			t.Fatalf("first: %d", resp.StatusCode)
		}
		for _, tc := range []struct {
			name string
			h    hdr
		}{
			{"other length", hdr{"Upload-Length": "1001", "Upload-Metadata": metadata("filename", "a.pdf", "filetype", "application/pdf")}},
			{"other file name", hdr{"Upload-Length": "1000", "Upload-Metadata": metadata("filename", "b.pdf", "filetype", "application/pdf")}},
			{"deferred length", hdr{"Upload-Defer-Length": "1", "Upload-Metadata": metadata("filename", "a.pdf", "filetype", "application/pdf")}},
			{"partial", hdr{"Upload-Concat": "partial", "Upload-Length": "1000", "Upload-Metadata": metadata("filename", "a.pdf", "filetype", "application/pdf")}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tc.h["Idempotency-Key"] = key
				resp := f.do("POST", TusPath, f.erika.ID, tc.h, nil)
				p := readProblem(t, resp)
				if resp.StatusCode != http.StatusUnprocessableEntity || p.Type == "" || !strings.Contains(p.Detail, "bereits für eine andere Datei verwendet") {
					t.Fatalf("status %d problem %+v, want 422 with the German reason", resp.StatusCode, p)
				}
				if resp.Header.Get("Location") != "" {
					t.Fatalf("a refused creation names an upload: %s", resp.Header.Get("Location"))
				}
			})
		}
		if list := f.uploadsOf(f.erika.ID, f.kasse.ID); len(list) != 1 {
			t.Fatalf("%d uploads, want 1", len(list))
		}
		if n := f.createdEvents(f.kasse.ID); n != 1 {
			t.Fatalf("%d created events, want 1", n)
		}
	})

	t.Run("a malformed key answers 400 in German and creates nothing", func(t *testing.T) {
		f := newTusFixture(t, factory)
		for _, key := range []string{
			"short",
			strings.Repeat("k", 65),
			`"` + strings.Repeat("k", 65) + `"`,
			"key with spaces 0123456789",
			"schlüssel-0123456789abc",
			"key;0123456789abcdefgh",
			`"unterminated-0123456789`,
			`""`,
		} {
			t.Run(key, func(t *testing.T) {
				resp := f.createKeyed(f.erika.ID, key, 1000, "a.pdf")
				p := readProblem(t, resp)
				if resp.StatusCode != http.StatusBadRequest || !strings.Contains(p.Detail, "„Idempotency-Key“ muss") {
					t.Fatalf("status %d detail %q, want 400 explaining the key", resp.StatusCode, p.Detail)
				}
			})
		}
		if list := f.uploadsOf(f.erika.ID, f.kasse.ID); len(list) != 0 {
			t.Fatalf("%d uploads after malformed keys, want none", len(list))
		}
	})

	t.Run("a terminated upload gives its key up to a new upload", func(t *testing.T) {
		f := newTusFixture(t, factory)
		key := "reuse-after-termination-42"
		first := idOf(t, f.createKeyed(f.erika.ID, key, 1000, "a.pdf").Header.Get("Location"))
		if resp := f.do("DELETE", TusPath+"/"+first, f.erika.ID, nil, nil); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("DELETE: %d", resp.StatusCode)
		}
		resp := f.createKeyed(f.erika.ID, key, 1000, "a.pdf")
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("creation after termination: %d %s", resp.StatusCode, readProblem(t, resp).Detail)
		}
		second := idOf(t, resp.Header.Get("Location"))
		if second == first {
			t.Fatal("the terminated upload was handed out again")
		}
		if again := f.createKeyed(f.erika.ID, key, 1000, "a.pdf"); idOf(t, again.Header.Get("Location")) != second {
			t.Fatalf("the key now names %s, want the new upload %s", again.Header.Get("Location"), second)
		}
	})

	t.Run("a submitted upload gives its key up: a new draft gets a new upload", func(t *testing.T) {
		f := newTusFixture(t, factory)
		data := doc("pdf", 3000, 5)
		key := "reuse-after-submission-42"
		first := idOf(t, f.createKeyed(f.erika.ID, key, int64(len(data)), "a.pdf").Header.Get("Location"))
		f.send(f.erika.ID, first, data, 0, len(data))
		err := f.db.InTx(context.Background(), func(tx *sqldb.Tx) error {
			_, err := tx.MarkUploadsFinal(context.Background(), f.kasse.ID, f.erika.ID, []string{first})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		resp := f.createKeyed(f.erika.ID, key, int64(len(data)), "a.pdf")
		if resp.StatusCode != http.StatusCreated || idOf(t, resp.Header.Get("Location")) == first {
			t.Fatalf("creation after submission: %d %q, want a new upload", resp.StatusCode, resp.Header.Get("Location"))
		}
		if u := f.row(first); u.Status != intake.StatusFinal {
			t.Fatalf("the submitted upload changed: %s", u.Status)
		}
	})

	t.Run("a repeated creation-with-upload does not write its body twice", func(t *testing.T) {
		f := newTusFixture(t, factory)
		data := doc("pdf", 200<<10, 7)
		h := hdr{"Idempotency-Key": "with-body-0123456789", "Upload-Length": strconv.Itoa(len(data)),
			"Upload-Metadata": metadata("filename", "a.pdf", "filetype", "application/pdf"), "Content-Type": "application/offset+octet-stream"}
		first := f.do("POST", TusPath, f.erika.ID, h, data[:100<<10])
		if first.StatusCode != http.StatusCreated || first.Header.Get("Upload-Offset") != strconv.Itoa(100<<10) {
			t.Fatalf("first: %d offset %q", first.StatusCode, first.Header.Get("Upload-Offset"))
		}
		again := f.do("POST", TusPath, f.erika.ID, h, data[:100<<10])
		if again.StatusCode != http.StatusCreated || again.Header.Get("Location") != first.Header.Get("Location") || again.Header.Get("Upload-Offset") != strconv.Itoa(100<<10) {
			t.Fatalf("repeat: %d Location %q offset %q", again.StatusCode, again.Header.Get("Location"), again.Header.Get("Upload-Offset"))
		}
		id := idOf(t, first.Header.Get("Location"))
		f.send(f.erika.ID, id, data, 100<<10, 100<<10)
		if !bytes.Equal(f.stored(id), data) {
			t.Fatal("object not byte-identical")
		}
	})

	t.Run("concurrent creations with one key make one upload", func(t *testing.T) {
		f := newTusFixture(t, factory)
		const n = 6
		locs := make([]string, n)
		codes := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req := f.createKeyedRaw(f.erika.ID, "concurrent-key-0123456789", 5000, "a.pdf")
				codes[i], locs[i] = req.StatusCode, req.Header.Get("Location")
			}()
		}
		wg.Wait()
		for i := range n {
			if codes[i] != http.StatusCreated || locs[i] != locs[0] {
				t.Fatalf("request %d: %d %q, want 201 %q", i, codes[i], locs[i], locs[0])
			}
		}
		if list := f.uploadsOf(f.erika.ID, f.kasse.ID); len(list) != 1 {
			t.Fatalf("%d uploads, want 1", len(list))
		}
		if c := f.createdEvents(f.kasse.ID); c != 1 {
			t.Fatalf("%d created events, want 1", c)
		}
	})

	t.Run("creations without a key stay independent", func(t *testing.T) {
		f := newTusFixture(t, factory)
		a, b := f.create(f.erika.ID, 1000, "a.pdf"), f.create(f.erika.ID, 1000, "a.pdf")
		if a == b || len(f.uploadsOf(f.erika.ID, f.kasse.ID)) != 2 {
			t.Fatal("two creations without a key did not make two uploads")
		}
	})
}

// createKeyedRaw is createKeyed safe for goroutines (no t.Fatal inside).
func (f *tusFixture) createKeyedRaw(who, key string, length int64, filename string) *http.Response {
	req, _ := http.NewRequest("POST", TusPath, nil)
	req.Header.Set("Tus-Resumable", intake.TusVersion)
	req.Header.Set("X-Test-Person", who)
	req.Header.Set("Idempotency-Key", key)
	req.Header.Set("Upload-Length", strconv.FormatInt(length, 10))
	req.Header.Set("Upload-Metadata", metadata("filename", filename, "filetype", "application/pdf"))
	resp, err := f.srv.App().Test(req, -1)
	if err != nil {
		return &http.Response{StatusCode: -1, Header: http.Header{}}
	}
	return resp
}
