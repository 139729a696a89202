package web

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"postbox/intake"
	"postbox/kasse"
)

const mib = 1 << 20

// runTusProtocolCases is the tus 1.0.0 behaviour every backend shows: the
// embedded one (SQLite, files) and the server one (PostgreSQL, MinIO).
func runTusProtocolCases(t *testing.T, factory tusBackendFactory) {
	t.Run("OPTIONS announces version, extensions, size limit and checksums", func(t *testing.T) {
		f := newTusFixture(t, factory)
		resp := f.do("OPTIONS", TusPath, f.erika.ID, hdr{"Tus-Resumable": ""}, nil)
		want := map[string]string{
			"Tus-Version":            "1.0.0",
			"Tus-Resumable":          "1.0.0",
			"Tus-Extension":          "creation,creation-with-upload,creation-defer-length,expiration,checksum,termination,concatenation",
			"Tus-Checksum-Algorithm": "sha1,sha256",
			"Tus-Max-Size":           strconv.FormatInt(2<<30, 10),
		}
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("status %d", resp.StatusCode)
		}
		for k, v := range want {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
	})

	t.Run("a version other than 1.0.0 is refused with 412 and Tus-Version", func(t *testing.T) {
		f := newTusFixture(t, factory)
		id := f.create(f.erika.ID, 100, "a.pdf")
		for _, tc := range []struct{ name, method, path, version string }{
			{"POST without header", "POST", TusPath, ""},
			{"POST 0.2.2", "POST", TusPath, "0.2.2"},
			{"HEAD 1.0.1", "HEAD", TusPath + "/" + id, "1.0.1"},
			{"PATCH without header", "PATCH", TusPath + "/" + id, ""},
			{"DELETE 2.0.0", "DELETE", TusPath + "/" + id, "2.0.0"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp := f.do(tc.method, tc.path, f.erika.ID, hdr{"Tus-Resumable": tc.version, "Upload-Length": "10",
					"Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}, []byte("%PDF-1.7\n1"))
				if resp.StatusCode != http.StatusPreconditionFailed || resp.Header.Get("Tus-Version") != "1.0.0" {
					t.Fatalf("status %d, Tus-Version %q; want 412 with 1.0.0", resp.StatusCode, resp.Header.Get("Tus-Version"))
				}
			})
		}
		if u := f.row(id); u.Offset != 0 || u.Status != intake.StatusUploading {
			t.Fatalf("refused requests changed the upload: offset %d status %s", u.Offset, u.Status)
		}
	})

	t.Run("without login every request answers 401 problem+json", func(t *testing.T) {
		f := newTusFixture(t, factory)
		id := f.create(f.erika.ID, 100, "a.pdf")
		for _, m := range []string{"POST", "PATCH", "DELETE", "GET"} {
			path := TusPath + "/" + id
			if m == "POST" || m == "GET" {
				path = TusPath
			}
			resp := f.do(m, path, "", hdr{"Upload-Length": "10", "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}, nil)
			p := readProblem(t, resp)
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(p.Detail, "Einmal-PIN") {
				t.Errorf("%s: status %d detail %q, want 401 asking for the Einmal-PIN login", m, resp.StatusCode, p.Detail)
			}
		}
		if resp := f.do("POST", TusPath, "caseworker", hdr{"Upload-Length": "10"}, nil); resp.StatusCode != http.StatusForbidden {
			t.Errorf("caseworker creating an upload: status %d, want 403", resp.StatusCode)
		}
	})

	t.Run("chunks of any size end in a byte-identical object with its SHA-256", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			size   int
			chunks []int
		}{
			{"one small file in one PATCH", 3000, []int{3000}},
			{"a file of one part's size in one PATCH", 5 * mib, []int{5 * mib}},
			{"tiny chunks below the sniff length", 9000, []int{100, 50, 4000}},
			{"1 MiB chunks collect in staging", 12*mib + 345, []int{mib}},
			{"one 13 MiB PATCH is cut into parts", 13*mib + 7, []int{13*mib + 7}},
			{"mixed sizes cross part boundaries", 17*mib + 11, []int{3 * mib, 7*mib + 1, 300 << 10, 6 * mib}},
			{"many small chunks merge staging segments", 6*mib + 5, []int{200 << 10}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := newTusFixture(t, factory)
				data := doc("pdf", tc.size, uint64(tc.size))
				id := f.upload(f.erika.ID, data, "befund.pdf", tc.chunks...)
				if got := f.stored(id); !bytes.Equal(got, data) {
					t.Fatalf("stored %d bytes, not identical to the %d sent", len(got), len(data))
				}
				u := f.row(id)
				if u.SHA256 != sha(data) || u.Status != intake.StatusComplete || u.ScanStatus != intake.ScanNotScanned || u.DetectedType != "application/pdf" {
					t.Fatalf("upload %+v: want sha %s, complete, not_scanned, application/pdf", u, sha(data))
				}
				f.assertNoStaging(u)
				// A file that arrives whole in one request of at most a
				// part's size is written as its object in one PUT: no
				// multipart upload to create and complete.
				whole := len(tc.chunks) == 1 && tc.chunks[0] == tc.size && tc.size <= intake.MinPartSize
				if multipart := u.MultipartID != ""; multipart == whole {
					t.Errorf("multipart upload %q for a file sent whole: %v (want a multipart upload only for files in several parts)", u.MultipartID, whole)
				}
				head := f.do("HEAD", TusPath+"/"+id, f.erika.ID, nil, nil)
				if head.Header.Get("Upload-Offset") != strconv.Itoa(tc.size) || head.Header.Get("Upload-Length") != strconv.Itoa(tc.size) {
					t.Fatalf("HEAD after completion: offset %q length %q", head.Header.Get("Upload-Offset"), head.Header.Get("Upload-Length"))
				}
				// A repeated empty PATCH at the end is answered, not an error.
				if resp := f.patch(f.erika.ID, id, int64(tc.size), nil, nil); resp.StatusCode != http.StatusNoContent {
					t.Fatalf("empty PATCH after completion: %d", resp.StatusCode)
				}
			})
		}
	})

	t.Run("HEAD reports offset, length, metadata, expiry and forbids caching", func(t *testing.T) {
		f := newTusFixture(t, factory)
		meta := metadata("filename", "Arztbrief März.pdf", "filetype", "application/pdf")
		resp := f.do("POST", TusPath, f.erika.ID, hdr{"Upload-Length": "5000", "Upload-Metadata": meta}, nil)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("create: %d", resp.StatusCode)
		}
		created, err := http.ParseTime(resp.Header.Get("Upload-Expires"))
		if err != nil {
			t.Fatalf("Upload-Expires %q on creation is no HTTP date: %v", resp.Header.Get("Upload-Expires"), err)
		}
		if want := f.clock.Now().Add(60 * 24 * time.Hour); !created.Equal(want) {
			t.Errorf("expires %v, want creation + 60 days (the PIN lifetime) = %v", created, want)
		}
		id := idOf(t, resp.Header.Get("Location"))
		f.clock.Add(time.Hour)
		if r := f.patch(f.erika.ID, id, 0, doc("pdf", 1200, 1), nil); r.StatusCode != http.StatusNoContent || r.Header.Get("Upload-Expires") == "" {
			t.Fatalf("PATCH: %d, Upload-Expires %q", r.StatusCode, r.Header.Get("Upload-Expires"))
		}
		head := f.do("HEAD", TusPath+"/"+id, f.erika.ID, nil, nil)
		want := map[string]string{"Upload-Offset": "1200", "Upload-Length": "5000", "Upload-Metadata": meta, "Cache-Control": "no-store", "Tus-Resumable": "1.0.0"}
		for k, v := range want {
			if got := head.Header.Get(k); got != v {
				t.Errorf("HEAD %s = %q, want %q", k, got, v)
			}
		}
		exp, err := http.ParseTime(head.Header.Get("Upload-Expires"))
		if err != nil || !exp.After(created) {
			t.Errorf("Upload-Expires %q should move with the last PATCH (after %v)", head.Header.Get("Upload-Expires"), created)
		}
	})

	t.Run("offset mismatch answers 409 and changes nothing", func(t *testing.T) {
		f := newTusFixture(t, factory)
		data := doc("pdf", 4000, 2)
		id := f.create(f.erika.ID, 4000, "a.pdf")
		f.send(f.erika.ID, id, data[:1000], 0, 1000)
		for _, off := range []int64{0, 999, 1001, 4000} {
			resp := f.patch(f.erika.ID, id, off, data[off:min(off+500, 4000)], nil)
			p := readProblem(t, resp)
			if resp.StatusCode != http.StatusConflict || !strings.Contains(p.Detail, "1000") {
				t.Errorf("offset %d: status %d detail %q, want 409 naming 1000", off, resp.StatusCode, p.Detail)
			}
		}
		if resp := f.patch(f.erika.ID, id, 0, nil, hdr{"Upload-Offset": "abc"}); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("Upload-Offset abc: %d, want 400", resp.StatusCode)
		}
		f.send(f.erika.ID, id, data, 1000, 3000)
		if !bytes.Equal(f.stored(id), data) {
			t.Fatal("object differs after refused PATCHes")
		}
	})

	t.Run("PATCH with another Content-Type answers 415", func(t *testing.T) {
		f := newTusFixture(t, factory)
		id := f.create(f.erika.ID, 100, "a.pdf")
		for _, ct := range []string{"", "application/octet-stream", "text/plain"} {
			resp := f.patch(f.erika.ID, id, 0, doc("pdf", 100, 3), hdr{"Content-Type": ct})
			p := readProblem(t, resp)
			if resp.StatusCode != http.StatusUnsupportedMediaType || !strings.Contains(p.Detail, "application/offset+octet-stream") {
				t.Errorf("Content-Type %q: %d %q", ct, resp.StatusCode, p.Detail)
			}
		}
		if f.row(id).Offset != 0 {
			t.Fatal("refused PATCH was applied")
		}
	})

	t.Run("too large answers 413 with the limit in German", func(t *testing.T) {
		f := newTusFixture(t, factory)
		resp := f.do("POST", TusPath, f.erika.ID, hdr{"Upload-Length": strconv.FormatInt(3<<30, 10)}, nil)
		if p := readProblem(t, resp); resp.StatusCode != http.StatusRequestEntityTooLarge || p.Detail != "Die Datei ist größer als die erlaubten 2 GB." {
			t.Errorf("Upload-Length 3 GiB: %d %q", resp.StatusCode, p.Detail)
		}
		id := f.create(f.erika.ID, 1000, "a.pdf")
		resp = f.patch(f.erika.ID, id, 0, doc("pdf", 1001, 4), nil)
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("PATCH beyond Upload-Length: %d", resp.StatusCode)
		}
		if f.row(id).Offset != 0 {
			t.Error("too long PATCH was applied")
		}
		d := f.do("POST", TusPath, f.erika.ID, hdr{"Upload-Defer-Length": "1"}, nil)
		did := idOf(t, d.Header.Get("Location"))
		resp = f.patch(f.erika.ID, did, 0, doc("pdf", 100, 5), hdr{"Upload-Length": strconv.FormatInt(3<<30, 10)})
		if p := readProblem(t, resp); resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(p.Detail, "2 GB") {
			t.Errorf("deferred length above the limit: %d %q", resp.StatusCode, p.Detail)
		}
	})

	t.Run("chunked bodies (no Content-Length) are stored and limited like others", func(t *testing.T) {
		f := newTusFixture(t, factory, withSettings(func(s *kasse.Settings) { s.MaxFileBytes = 8 * mib }))
		base := f.listen()
		chunked := func(id string, off int64, data []byte, h hdr) *http.Response {
			t.Helper()
			// An io.Reader of unknown length makes net/http send Transfer-Encoding: chunked.
			req, _ := http.NewRequest("PATCH", "http://"+base+TusPath+"/"+id, io.MultiReader(bytes.NewReader(data)))
			req.Header.Set("Tus-Resumable", "1.0.0")
			req.Header.Set("X-Test-Person", f.erika.ID)
			req.Header.Set("Content-Type", "application/offset+octet-stream")
			req.Header.Set("Upload-Offset", strconv.FormatInt(off, 10))
			for k, v := range h {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp
		}
		data := doc("pdf", 7*mib+3, 27)
		id := f.create(f.erika.ID, int64(len(data)), "a.pdf")
		if r := chunked(id, 0, data[:6*mib], nil); r.StatusCode != http.StatusNoContent || r.Header.Get("Upload-Offset") != strconv.Itoa(6*mib) {
			t.Fatalf("chunked PATCH: %d offset %q", r.StatusCode, r.Header.Get("Upload-Offset"))
		}
		if r := chunked(id, 6*mib, append(append([]byte(nil), data[6*mib:]...), 'x'), nil); r.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("chunked PATCH beyond Upload-Length: %d, want 413", r.StatusCode)
		}
		if r := chunked(id, 6*mib, data[6*mib:], nil); r.StatusCode != http.StatusNoContent {
			t.Fatalf("last chunked PATCH: %d", r.StatusCode)
		}
		if !bytes.Equal(f.stored(id), data) {
			t.Fatal("object differs")
		}
		d := f.do("POST", TusPath, f.erika.ID, hdr{"Upload-Defer-Length": "1"}, nil)
		did := idOf(t, d.Header.Get("Location"))
		if r := chunked(did, 0, doc("pdf", 9*mib, 28), nil); r.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("chunked body over the file limit with deferred length: %d, want 413", r.StatusCode)
		}
		if u := f.row(did); u.Offset > 8*mib {
			t.Fatalf("deferred upload holds %d bytes, more than the 8 MiB limit", u.Offset)
		}
	})

	t.Run("content that is not an allowed document answers 415 naming the type", func(t *testing.T) {
		for _, tc := range []struct{ kind, file, named string }{
			{"exe", "bild.jpg", "application/vnd.microsoft.portable-executable"},
			{"elf", "scan.pdf", "application/x-executable"},
			{"zip", "scan.pdf", "application/zip"},
			{"html", "brief.pdf", "text/html"},
			{"sh", "brief.pdf", "text/x-shellscript"},
		} {
			t.Run(tc.kind, func(t *testing.T) {
				f := newTusFixture(t, factory)
				data := doc(tc.kind, 20000, 6)
				id := f.create(f.erika.ID, int64(len(data)), tc.file)
				resp := f.patch(f.erika.ID, id, 0, data[:8000], nil)
				p := readProblem(t, resp)
				want := "Der Dateityp „" + tc.named + "“ ist nicht erlaubt. Erlaubt sind PDF, JPEG, PNG, TIFF und HEIC."
				if resp.StatusCode != http.StatusUnsupportedMediaType || p.Detail != want {
					t.Fatalf("status %d detail %q, want 415 %q", resp.StatusCode, p.Detail, want)
				}
				if h := f.do("HEAD", TusPath+"/"+id, f.erika.ID, nil, nil); h.StatusCode != http.StatusGone {
					t.Fatalf("HEAD of refused upload: %d, want 410", h.StatusCode)
				}
				u := f.row(id)
				if u.Status != intake.StatusRejected || u.Offset != 0 {
					t.Fatalf("refused upload: status %s offset %d", u.Status, u.Offset)
				}
				f.assertNoBlobs(u)
			})
		}
	})

	t.Run("type is checked once the first bytes arrive, even in tiny chunks", func(t *testing.T) {
		f := newTusFixture(t, factory)
		data := doc("zip", 5000, 7)
		id := f.create(f.erika.ID, 5000, "")
		f.send(f.erika.ID, id, data[:200], 0, 100) // 200 bytes: not enough to decide
		resp := f.patch(f.erika.ID, id, 200, data[200:400], nil)
		if p := readProblem(t, resp); resp.StatusCode != http.StatusUnsupportedMediaType || !strings.Contains(p.Detail, "application/zip") {
			t.Fatalf("status %d detail %q", resp.StatusCode, p.Detail)
		}
		f.assertNoBlobs(f.row(id))
	})

	t.Run("declared type or extension that is not allowed is refused at creation", func(t *testing.T) {
		f := newTusFixture(t, factory)
		for _, tc := range []struct{ name, meta, want string }{
			{"browser type", metadata("filename", "setup", "filetype", "application/x-msdownload"),
				"Der Dateityp „application/x-msdownload“ ist nicht erlaubt. Erlaubt sind PDF, JPEG, PNG, TIFF und HEIC."},
			{"extension", metadata("filename", "rechnung.exe", "filetype", "application/octet-stream"),
				"Dateien mit der Endung „.exe“ sind nicht erlaubt. Erlaubt sind PDF, JPEG, PNG, TIFF und HEIC."},
		} {
			resp := f.do("POST", TusPath, f.erika.ID, hdr{"Upload-Length": "1000", "Upload-Metadata": tc.meta}, nil)
			if p := readProblem(t, resp); resp.StatusCode != http.StatusUnsupportedMediaType || p.Detail != tc.want {
				t.Errorf("%s: %d %q", tc.name, resp.StatusCode, p.Detail)
			}
		}
		if list := f.list(f.erika.ID); len(list) != 0 {
			t.Fatalf("refused creations left uploads: %v", list)
		}
	})

	t.Run("an extension that does not match the content is refused", func(t *testing.T) {
		f := newTusFixture(t, factory)
		data := doc("png", 3000, 8)
		id := f.create(f.erika.ID, 3000, "rechnung.pdf")
		resp := f.patch(f.erika.ID, id, 0, data, nil)
		want := "Die Dateiendung „.pdf“ passt nicht zum Inhalt der Datei (erkannt: PNG). Bitte prüfen Sie, ob Sie die richtige Datei ausgewählt haben."
		if p := readProblem(t, resp); resp.StatusCode != http.StatusUnsupportedMediaType || p.Detail != want {
			t.Fatalf("%d %q", resp.StatusCode, p.Detail)
		}
		// The same bytes under a fitting name are fine.
		ok := f.upload(f.erika.ID, data, "rechnung.png", 3000)
		if f.row(ok).DetectedType != "image/png" {
			t.Fatal("png not detected")
		}
	})

	t.Run("checksum: a match applies the chunk, a mismatch answers 460 and applies nothing", func(t *testing.T) {
		f := newTusFixture(t, factory)
		data := doc("pdf", 12*mib+9, 9)
		id := f.create(f.erika.ID, int64(len(data)), "a.pdf")
		sum1 := sha1.Sum(data[:mib])
		if r := f.patch(f.erika.ID, id, 0, data[:mib], hdr{"Upload-Checksum": "sha1 " + base64.StdEncoding.EncodeToString(sum1[:])}); r.StatusCode != http.StatusNoContent {
			t.Fatalf("matching sha1: %d", r.StatusCode)
		}
		// 8 MiB after 1 MiB of staging: a part and new staging are written,
		// then the checksum fails; none of it may count.
		chunk := data[mib : 9*mib]
		wrong := sha256.Sum256(append([]byte("x"), chunk...))
		resp := f.patch(f.erika.ID, id, mib, chunk, hdr{"Upload-Checksum": "sha256 " + base64.StdEncoding.EncodeToString(wrong[:])})
		if p := readProblem(t, resp); resp.StatusCode != 460 || !strings.Contains(p.Detail, "Prüfsumme") {
			t.Fatalf("wrong sha256: %d %q, want 460", resp.StatusCode, p.Detail)
		}
		if h := f.do("HEAD", TusPath+"/"+id, f.erika.ID, nil, nil); h.Header.Get("Upload-Offset") != strconv.Itoa(mib) {
			t.Fatalf("offset after 460: %s, want %d", h.Header.Get("Upload-Offset"), mib)
		}
		right := sha256.Sum256(chunk)
		if r := f.patch(f.erika.ID, id, mib, chunk, hdr{"Upload-Checksum": "sha256 " + base64.StdEncoding.EncodeToString(right[:])}); r.StatusCode != http.StatusNoContent {
			t.Fatalf("retry with matching sha256: %d", r.StatusCode)
		}
		f.send(f.erika.ID, id, data, 9*mib, 4*mib)
		if got := f.stored(id); !bytes.Equal(got, data) {
			t.Fatal("object differs from the source after a refused chunk")
		}
		if f.row(id).SHA256 != sha(data) {
			t.Fatal("SHA-256 of the upload is wrong after a refused chunk")
		}
	})

	t.Run("unsupported or malformed checksum answers 400", func(t *testing.T) {
		f := newTusFixture(t, factory)
		id := f.create(f.erika.ID, 1000, "a.pdf")
		for _, v := range []string{"md5 1B2M2Y8AsgTpgAmY7PhCfg==", "sha1", "sha1 !!!", "sha256 " + base64.StdEncoding.EncodeToString([]byte("short"))} {
			if r := f.patch(f.erika.ID, id, 0, doc("pdf", 1000, 1), hdr{"Upload-Checksum": v}); r.StatusCode != http.StatusBadRequest {
				t.Errorf("Upload-Checksum %q: %d, want 400", v, r.StatusCode)
			}
		}
		if f.row(id).Offset != 0 {
			t.Fatal("chunk with a bad checksum header was applied")
		}
	})

	t.Run("DELETE terminates: 204, then 410, and the stored bytes are gone", func(t *testing.T) {
		f := newTusFixture(t, factory)
		data := doc("pdf", 7*mib, 10)
		unfinished := f.create(f.erika.ID, int64(len(data)), "a.pdf")
		f.send(f.erika.ID, unfinished, data[:6*mib], 0, mib) // one part and staging
		done := f.upload(f.erika.ID, doc("pdf", 2000, 11), "b.pdf", 2000)
		for _, id := range []string{unfinished, done} {
			before := f.row(id)
			if r := f.do("DELETE", TusPath+"/"+id, f.erika.ID, nil, nil); r.StatusCode != http.StatusNoContent {
				t.Fatalf("DELETE: %d", r.StatusCode)
			}
			if r := f.patch(f.erika.ID, id, before.Offset, nil, nil); r.StatusCode != http.StatusGone {
				t.Errorf("PATCH after DELETE: %d, want 410", r.StatusCode)
			}
			for _, m := range []string{"HEAD", "DELETE"} {
				if r := f.do(m, TusPath+"/"+id, f.erika.ID, nil, nil); r.StatusCode != http.StatusGone {
					t.Errorf("%s after DELETE: %d, want 410", m, r.StatusCode)
				}
			}
			f.assertNoBlobs(before)
			if before.MultipartID != "" && before.Status == intake.StatusUploading {
				if _, err := f.blobs.ListParts(context.Background(), before.BlobKey, before.MultipartID); !errors.Is(err, intake.ErrBlobNotFound) {
					t.Errorf("multipart upload not aborted: %v", err)
				}
			}
		}
		if list := f.list(f.erika.ID); len(list) != 0 {
			t.Fatalf("terminated uploads still listed: %d", len(list))
		}
	})

	t.Run("another person's or tenant's upload answers 404, never 403", func(t *testing.T) {
		f := newTusFixture(t, factory)
		data := doc("pdf", 3000, 12)
		id := f.create(f.erika.ID, 3000, "a.pdf")
		f.send(f.erika.ID, id, data[:1000], 0, 1000)
		for _, who := range []string{f.max.ID, f.foreign.ID} {
			for _, m := range []string{"HEAD", "PATCH", "DELETE"} {
				var r *http.Response
				if m == "PATCH" {
					r = f.patch(who, id, 1000, data[1000:2000], nil)
				} else {
					r = f.do(m, TusPath+"/"+id, who, nil, nil)
				}
				if r.StatusCode != http.StatusNotFound {
					t.Errorf("%s by %s: %d, want 404", m, who, r.StatusCode)
				}
			}
			fin := f.do("POST", TusPath, who, hdr{"Upload-Concat": "final;" + TusPath + "/" + id}, nil)
			if fin.StatusCode != http.StatusNotFound {
				t.Errorf("concatenating another's upload: %d, want 404", fin.StatusCode)
			}
		}
		for _, bad := range []string{randHex(16), "../../etc", "x"} {
			if r := f.do("HEAD", TusPath+"/"+bad, f.erika.ID, nil, nil); r.StatusCode != http.StatusNotFound {
				t.Errorf("HEAD unknown %q: %d", bad, r.StatusCode)
			}
		}
		if u := f.row(id); u.Offset != 1000 || u.Status != intake.StatusUploading {
			t.Fatalf("foreign requests changed the upload: %+v", u)
		}
		f.send(f.erika.ID, id, data, 1000, 2000)
		events, err := f.db.PendingEvents(context.Background(), 1000)
		if err != nil {
			t.Fatal(err)
		}
		denied := 0
		for _, e := range events {
			if e.Type == "intake.upload.access_denied" && e.SubjectID == id {
				denied++
			}
		}
		if denied < 6 {
			t.Errorf("%d access_denied audit events, want one per foreign request (≥ 6)", denied)
		}
	})

	t.Run("two concurrent PATCHes: the second gets 423, only the first writes", func(t *testing.T) {
		gate := &gatedBlobs{}
		f := newTusFixture(t, factory, withBlobs(func(b intake.BlobStore) intake.BlobStore { gate.BlobStore = b; return gate }))
		data := doc("pdf", 6*mib, 13)
		id := f.create(f.erika.ID, int64(len(data)), "a.pdf")
		gate.arm()
		first := make(chan *http.Response)
		go func() { first <- f.patch(f.erika.ID, id, 0, data[:5*mib], nil) }()
		<-gate.entered // the first PATCH holds the lock and is writing
		second := f.patch(f.erika.ID, id, 0, data[:5*mib], nil)
		if p := readProblem(t, second); second.StatusCode != http.StatusLocked || second.Header.Get("Retry-After") == "" || p.Detail == "" {
			t.Errorf("second PATCH: %d Retry-After %q, want 423 with Retry-After", second.StatusCode, second.Header.Get("Retry-After"))
		}
		if r := f.do("DELETE", TusPath+"/"+id, f.erika.ID, nil, nil); r.StatusCode != http.StatusLocked {
			t.Errorf("DELETE during PATCH: %d, want 423", r.StatusCode)
		}
		close(gate.release)
		if r := <-first; r.StatusCode != http.StatusNoContent || r.Header.Get("Upload-Offset") != strconv.Itoa(5*mib) {
			t.Fatalf("first PATCH: %d offset %s", r.StatusCode, r.Header.Get("Upload-Offset"))
		}
		f.send(f.erika.ID, id, data, 5*mib, mib)
		if !bytes.Equal(f.stored(id), data) {
			t.Fatal("object differs")
		}
	})

	t.Run("the lock of a crashed request frees itself after its lease", func(t *testing.T) {
		f := newTusFixture(t, factory)
		data := doc("pdf", 4000, 14)
		id := f.create(f.erika.ID, 4000, "a.pdf")
		// A replica took the lock and died: nobody renews or releases it.
		now := f.clock.Now()
		if _, err := f.db.LockUpload(context.Background(), f.kasse.ID, f.erika.ID, id, "dead-replica", now.Add(f.cfg.LockTTL), now); err != nil {
			t.Fatal(err)
		}
		if r := f.patch(f.erika.ID, id, 0, data[:1000], nil); r.StatusCode != http.StatusLocked {
			t.Fatalf("PATCH while the lease runs: %d, want 423", r.StatusCode)
		}
		f.clock.Add(f.cfg.LockTTL + time.Second)
		f.send(f.erika.ID, id, data, 0, 1000)
		// The dead replica's late write is fenced off.
		u := f.row(id)
		if err := f.db.SaveUpload(context.Background(), u, "dead-replica"); !errors.Is(err, intake.ErrLockLost) {
			t.Fatalf("write of the replica that lost its lease: %v, want ErrLockLost", err)
		}
		if !bytes.Equal(f.stored(id), data) {
			t.Fatal("object differs")
		}
	})

	t.Run("deferred length: Upload-Defer-Length until a PATCH names the length", func(t *testing.T) {
		f := newTusFixture(t, factory)
		data := doc("pdf", 7*mib+3, 15)
		resp := f.do("POST", TusPath, f.erika.ID, hdr{"Upload-Defer-Length": "1", "Upload-Metadata": metadata("filename", "x.pdf")}, nil)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("create: %d", resp.StatusCode)
		}
		id := idOf(t, resp.Header.Get("Location"))
		if bad := f.do("POST", TusPath, f.erika.ID, hdr{"Upload-Defer-Length": "2"}, nil); bad.StatusCode != http.StatusBadRequest {
			t.Errorf("Upload-Defer-Length 2: %d, want 400", bad.StatusCode)
		}
		f.send(f.erika.ID, id, data[:6*mib], 0, 2*mib)
		h := f.do("HEAD", TusPath+"/"+id, f.erika.ID, nil, nil)
		if h.Header.Get("Upload-Defer-Length") != "1" || h.Header.Get("Upload-Length") != "" {
			t.Fatalf("HEAD while deferred: Defer %q Length %q", h.Header.Get("Upload-Defer-Length"), h.Header.Get("Upload-Length"))
		}
		r := f.patch(f.erika.ID, id, 6*mib, data[6*mib:], hdr{"Upload-Length": strconv.Itoa(len(data))})
		if r.StatusCode != http.StatusNoContent {
			t.Fatalf("last PATCH with Upload-Length: %d", r.StatusCode)
		}
		if r := f.patch(f.erika.ID, id, int64(len(data)), nil, hdr{"Upload-Length": "99"}); r.StatusCode != http.StatusBadRequest && r.StatusCode != http.StatusConflict {
			t.Errorf("changing the length afterwards: %d, want 400", r.StatusCode)
		}
		if !bytes.Equal(f.stored(id), data) || f.row(id).Status != intake.StatusComplete {
			t.Fatal("deferred upload not stored correctly")
		}
	})

	t.Run("creation with upload: the POST body is the first chunk", func(t *testing.T) {
		f := newTusFixture(t, factory)
		data := doc("jpeg", 6*mib, 16)
		resp := f.do("POST", TusPath, f.erika.ID, hdr{"Upload-Length": strconv.Itoa(len(data)), "Content-Type": "application/offset+octet-stream",
			"Upload-Metadata": metadata("filename", "foto.jpg")}, data[:5*mib+1])
		if resp.StatusCode != http.StatusCreated || resp.Header.Get("Upload-Offset") != strconv.Itoa(5*mib+1) {
			t.Fatalf("create with upload: %d offset %q", resp.StatusCode, resp.Header.Get("Upload-Offset"))
		}
		id := idOf(t, resp.Header.Get("Location"))
		f.send(f.erika.ID, id, data, 5*mib+1, mib)
		if !bytes.Equal(f.stored(id), data) {
			t.Fatal("object differs")
		}
		resp = f.do("POST", TusPath, f.erika.ID, hdr{"Upload-Length": "2000", "Content-Type": "application/offset+octet-stream"}, doc("pdf", 2000, 17))
		if resp.StatusCode != http.StatusCreated || resp.Header.Get("Upload-Offset") != "2000" || resp.Header.Get("Upload-Expires") != "" {
			t.Fatalf("whole file in the POST: %d offset %q expires %q", resp.StatusCode, resp.Header.Get("Upload-Offset"), resp.Header.Get("Upload-Expires"))
		}
		if u := f.row(idOf(t, resp.Header.Get("Location"))); u.Status != intake.StatusComplete {
			t.Fatalf("status %s", u.Status)
		}
	})

	t.Run("expiration: 410 after Upload-Expires, cleanup removes multipart upload, staging and row", func(t *testing.T) {
		f := newTusFixture(t, factory, withLifetime(time.Hour))
		data := doc("pdf", 8*mib, 18)
		id := f.create(f.erika.ID, int64(len(data)), "a.pdf")
		f.send(f.erika.ID, id, data[:6*mib], 0, 3*mib) // one part + staging
		done := f.upload(f.erika.ID, doc("pdf", 3000, 19), "b.pdf", 3000)
		before, doneRow := f.row(id), f.row(done)
		if len(before.Staging) == 0 || len(before.Parts) == 0 {
			t.Fatalf("setup: want parts and staging, got %d parts %d segments", len(before.Parts), len(before.Staging))
		}
		f.clock.Add(2 * time.Hour)
		for _, x := range []string{id, done} {
			if r := f.do("HEAD", TusPath+"/"+x, f.erika.ID, nil, nil); r.StatusCode != http.StatusGone {
				t.Errorf("HEAD after expiry: %d, want 410", r.StatusCode)
			}
		}
		if r := f.patch(f.erika.ID, id, 6*mib, data[6*mib:], nil); r.StatusCode != http.StatusGone {
			t.Errorf("PATCH after expiry: %d, want 410", r.StatusCode)
		}
		// Other tests may share the database: count at least ours.
		n, err := f.h.CleanupExpired(context.Background())
		if err != nil || n < 2 {
			t.Fatalf("CleanupExpired: %d, %v; want ≥ 2", n, err)
		}
		for _, u := range []intake.Upload{before, doneRow} {
			if r := f.do("HEAD", TusPath+"/"+u.ID, f.erika.ID, nil, nil); r.StatusCode != http.StatusNotFound {
				t.Errorf("HEAD after cleanup: %d, want 404", r.StatusCode)
			}
			f.assertNoBlobs(u)
		}
		if _, err := f.blobs.ListParts(context.Background(), before.BlobKey, before.MultipartID); !errors.Is(err, intake.ErrBlobNotFound) {
			t.Errorf("multipart upload survived the cleanup: %v", err)
		}
		if _, err := f.h.CleanupExpired(context.Background()); err != nil {
			t.Errorf("second cleanup: %v", err)
		}
	})

	for _, tc := range []struct {
		name   string
		cuts   []int // of a 13 MiB + 5 file
		copies int   // parts the store copies, if it can
	}{
		// A partial smaller than a multipart part: the bytes go through postbox.
		{"concatenation joins partial uploads in order (parallel uploads)", []int{0, 6 * mib, 7*mib + 1, 13*mib + 5}, 0},
		// Every partial but the last fills a part: a store that copies parts
		// (MinIO) joins them itself.
		{"concatenation of partials that fill parts joins them in order", []int{0, 5 * mib, 10*mib + 3, 13*mib + 5}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) { testConcatenation(t, factory, tc.cuts, tc.copies) })
		t.Run(tc.name+": a program is refused with 415 and nothing stays", func(t *testing.T) { testConcatenationRefused(t, factory, tc.cuts) })
		t.Run(tc.name+": a store failure during the join loses nothing, the retry joins", func(t *testing.T) { testConcatenationStoreFails(t, factory, tc.cuts) })
	}

	t.Run("concatenation of an unfinished partial answers 400", func(t *testing.T) {
		f := newTusFixture(t, factory)
		resp := f.do("POST", TusPath, f.erika.ID, hdr{"Upload-Concat": "partial", "Upload-Length": "5000"}, nil)
		pid := idOf(t, resp.Header.Get("Location"))
		fin := f.do("POST", TusPath, f.erika.ID, hdr{"Upload-Concat": "final;" + TusPath + "/" + pid}, nil)
		if fin.StatusCode != http.StatusBadRequest {
			t.Fatalf("final over unfinished partial: %d", fin.StatusCode)
		}
	})

	t.Run("per-person limits: number of files and bytes together answer 413", func(t *testing.T) {
		f := newTusFixture(t, factory, withSettings(func(s *kasse.Settings) {
			s.MaxFilesPerUpload = 2
			s.MaxSubmissionBytes = 10 * mib
			s.MaxFileBytes = 8 * mib
		}))
		a := f.create(f.erika.ID, 6*mib, "a.pdf")
		resp := f.do("POST", TusPath, f.erika.ID, hdr{"Upload-Length": strconv.Itoa(5 * mib)}, nil)
		if p := readProblem(t, resp); resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(p.Detail, "10 MB") || !strings.Contains(p.Detail, "6 MB") {
			t.Errorf("bytes over the submission limit: %d %q", resp.StatusCode, p.Detail)
		}
		f.create(f.erika.ID, mib, "b.pdf")
		resp = f.do("POST", TusPath, f.erika.ID, hdr{"Upload-Length": "100"}, nil)
		if p := readProblem(t, resp); resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(p.Detail, "höchstens 2 Dateien") {
			t.Errorf("third file: %d %q", resp.StatusCode, p.Detail)
		}
		// Another person has their own quota.
		f.create(f.max.ID, 6*mib, "c.pdf")
		// Removing a file makes room again.
		if r := f.do("DELETE", TusPath+"/"+a, f.erika.ID, nil, nil); r.StatusCode != http.StatusNoContent {
			t.Fatal(r.StatusCode)
		}
		f.create(f.erika.ID, 8*mib, "d.pdf")
	})

	t.Run("a restarted server resumes from the stored offset", func(t *testing.T) {
		f := newTusFixture(t, factory)
		data := doc("pdf", 11*mib+77, 21)
		id := f.create(f.erika.ID, int64(len(data)), "a.pdf")
		f.send(f.erika.ID, id, data[:7*mib+5], 0, 3*mib) // one part plus staging
		db, blobs := f.be.Reopen(t)
		f.start(db, blobs) // a new process over the same database and storage
		h := f.do("HEAD", TusPath+"/"+id, f.erika.ID, nil, nil)
		if h.Header.Get("Upload-Offset") != strconv.Itoa(7*mib+5) {
			t.Fatalf("offset after restart: %q", h.Header.Get("Upload-Offset"))
		}
		f.send(f.erika.ID, id, data, 7*mib+5, mib)
		if !bytes.Equal(f.stored(id), data) || f.row(id).SHA256 != sha(data) {
			t.Fatal("object or SHA-256 wrong after the restart")
		}
	})

	t.Run("1 MiB chunks on two replicas in turn: each builds parts from the other's staging segments", func(t *testing.T) {
		f := newTusFixture(t, factory)
		a := f.replica()
		db, blobs := f.be.Reopen(t)
		f.start(db, blobs)
		b := f.replica()
		data := doc("pdf", 12*mib+3, 31)
		f.use(a)
		id := f.create(f.erika.ID, int64(len(data)), "a.pdf")
		// Chunks 1–5 on A (part 1), 6–10 alternate B, A, B, A, B (B builds
		// part 2 from segments of both), the rest on A.
		on := []replica{a, a, a, a, a, b, a, b, a, b, a, a, a}
		for i, off := 0, 0; off < len(data); i++ {
			f.use(on[i])
			end := min(off+mib, len(data))
			f.send(f.erika.ID, id, data[:end], off, mib)
			off = end
		}
		if !bytes.Equal(f.stored(id), data) || f.row(id).SHA256 != sha(data) {
			t.Fatal("object or SHA-256 differ from what was sent")
		}
		f.assertNoStaging(f.row(id))
	})

	t.Run("virus scan: a clean file is released, malware is deleted and reported", func(t *testing.T) {
		clamd := newFakeClamd(t)
		f := newTusFixture(t, factory, withScanner(clamd.scanner()))
		clean := f.upload(f.erika.ID, doc("pdf", 6*mib, 22), "ok.pdf", 2*mib)
		if u := f.row(clean); u.Status != intake.StatusComplete || u.ScanStatus != intake.ScanClean {
			t.Fatalf("clean file: %s/%s", u.Status, u.ScanStatus)
		}
		bad := doc("pdf", 6*mib, 23)
		copy(bad[5*mib+100:], testSignature)
		id := f.create(f.erika.ID, int64(len(bad)), "virus.pdf")
		f.send(f.erika.ID, id, bad[:4*mib], 0, 4*mib)
		resp := f.patch(f.erika.ID, id, 4*mib, bad[4*mib:], nil)
		if p := readProblem(t, resp); resp.StatusCode != http.StatusUnprocessableEntity || p.Detail != "Die Datei enthält Schadsoftware und wurde verworfen." {
			t.Fatalf("last PATCH of an infected file: %d %q", resp.StatusCode, p.Detail)
		}
		u := f.row(id)
		if u.Status != intake.StatusInfected || u.ScanSignature != "Postbox.Test-Signature" {
			t.Fatalf("infected upload: %s %q", u.Status, u.ScanSignature)
		}
		f.assertNoBlobs(u)
		if h := f.do("HEAD", TusPath+"/"+id, f.erika.ID, nil, nil); h.StatusCode != http.StatusGone {
			t.Errorf("HEAD of an infected upload: %d, want 410", h.StatusCode)
		}
		statuses := map[string]string{}
		for _, l := range f.list(f.erika.ID) {
			statuses[l.ID] = l.Status + "/" + l.ScanStatus
		}
		if statuses[clean] != "complete/clean" || statuses[id] != "infected/infected" {
			t.Fatalf("list: %v", statuses)
		}
	})

	t.Run("scanner unreachable: the file stays quarantined until a later scan", func(t *testing.T) {
		clamd := newFakeClamd(t)
		clamd.setDown(true)
		f := newTusFixture(t, factory, withScanner(clamd.scanner()))
		id := f.upload(f.erika.ID, doc("pdf", 3000, 24), "a.pdf", 3000)
		if u := f.row(id); u.Status != intake.StatusQuarantined || u.ScanStatus != intake.ScanPending {
			t.Fatalf("after failed scan: %s/%s, want quarantined/pending", u.Status, u.ScanStatus)
		}
		clamd.setDown(false)
		// In a shared database other tests' rows may be listed too; only
		// this upload's outcome counts.
		if n, err := f.h.RecoverStalled(context.Background()); n < 1 || (err != nil && strings.Contains(err.Error(), id)) {
			t.Fatalf("RecoverStalled: %d %v", n, err)
		}
		if u := f.row(id); u.Status != intake.StatusComplete || u.ScanStatus != intake.ScanClean {
			t.Fatalf("after the later scan: %s/%s", u.Status, u.ScanStatus)
		}
	})

	t.Run("an early refusal of a large chunk reaches a client that is still sending", func(t *testing.T) {
		f := newTusFixture(t, factory)
		base := f.listen()
		data := doc("pdf", 24*mib, 26) // more than is drained: the connection is closed
		id := f.create(f.erika.ID, int64(len(data)), "a.pdf")
		for i := 0; i < 3; i++ { // a new connection each time
			req, _ := http.NewRequest("PATCH", "http://"+base+TusPath+"/"+id, bytes.NewReader(data))
			req.Header.Set("Tus-Resumable", "1.0.0")
			req.Header.Set("X-Test-Person", f.erika.ID)
			req.Header.Set("Content-Type", "application/offset+octet-stream")
			req.Header.Set("Upload-Offset", "7") // wrong: refused before the body is read
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("attempt %d: the 409 did not reach the client: %v", i, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusConflict {
				t.Fatalf("attempt %d: %d, want 409", i, resp.StatusCode)
			}
		}
		if f.row(id).Offset != 0 {
			t.Fatal("refused chunk was applied")
		}
	})

	t.Run("a broken connection keeps the parts already stored", func(t *testing.T) {
		f := newTusFixture(t, factory)
		base := f.listen()
		data := doc("pdf", 12*mib, 25)
		id := f.create(f.erika.ID, int64(len(data)), "a.pdf")
		// Send headers for the whole file, 7 MiB of it, then hang up.
		conn, err := net.Dial("tcp", base)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "PATCH %s/%s HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nX-Test-Person: %s\r\nContent-Type: application/offset+octet-stream\r\n"+
			"Upload-Offset: 0\r\nContent-Length: %d\r\n\r\n", TusPath, id, f.erika.ID, len(data))
		conn.Write(data[:7*mib])
		conn.Close()
		var off int64
		deadline := time.Now().Add(20 * time.Second)
		for {
			u := f.row(id)
			if u.LockOwner == "" && u.Offset > 0 {
				off = u.Offset
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("upload not released after the broken connection: %+v", u)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if off != 5*mib {
			t.Fatalf("offset after the broken connection: %d, want the one stored part (%d)", off, 5*mib)
		}
		f.send(f.erika.ID, id, data, int(off), 4*mib)
		if !bytes.Equal(f.stored(id), data) || f.row(id).SHA256 != sha(data) {
			t.Fatal("object or SHA-256 wrong after resuming a broken PATCH")
		}
	})
}

// listen serves the fixture's app on a loopback port, returning host:port.
func (f *tusFixture) listen() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.t.Fatal(err)
	}
	go f.srv.Serve(ln)
	f.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		f.srv.Shutdown(ctx)
	})
	return ln.Addr().String()
}

type listed struct {
	ID         string `json:"id"`
	Filename   string `json:"filename"`
	Size       int64  `json:"size"`
	Status     string `json:"status"`
	ScanStatus string `json:"scan_status"`
	SHA256     string `json:"sha256"`
}

func (f *tusFixture) list(who string) []listed {
	f.t.Helper()
	resp := f.do("GET", TusPath, who, nil, nil)
	if resp.StatusCode != http.StatusOK {
		f.t.Fatalf("GET list: %d", resp.StatusCode)
	}
	var body struct {
		Uploads []listed `json:"uploads"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &body); err != nil {
		f.t.Fatal(err)
	}
	return body.Uploads
}

func (f *tusFixture) assertNoStaging(u intake.Upload) {
	f.t.Helper()
	for n := int64(1); n <= u.StagingSeq+1; n++ {
		key := intake.StagingKey(u.TenantID, u.ID, n)
		if _, err := f.blobs.Stat(context.Background(), key); !errors.Is(err, intake.ErrBlobNotFound) {
			f.t.Errorf("staging segment %d of a completed upload still there (err %v)", n, err)
		}
	}
}

// testConcatenation sends a 13 MiB + 5 file as partial uploads cut at cuts
// and joins them.
func testConcatenation(t *testing.T, factory tusBackendFactory, cuts []int, copies int) {
	cc := &copyCount{}
	f := newTusFixture(t, factory, withBlobs(cc.wrap))
	data := doc("pdf", 13*mib+5, 20)
	var urls []string
	for _, pid := range f.partials(data, cuts, 2*mib) {
		if h := f.do("HEAD", TusPath+"/"+pid, f.erika.ID, nil, nil); h.Header.Get("Upload-Concat") != "partial" {
			t.Fatalf("HEAD partial: Upload-Concat %q", h.Header.Get("Upload-Concat"))
		}
		urls = append(urls, "http://example.invalid"+TusPath+"/"+pid)
	}
	if list := f.list(f.erika.ID); len(list) != 0 {
		t.Fatalf("partials are listed as files: %d", len(list))
	}
	resp := f.do("POST", TusPath, f.erika.ID, hdr{"Upload-Concat": "final;" + strings.Join(urls, " "), "Upload-Metadata": metadata("filename", "gesamt.pdf")}, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("final: %d %s", resp.StatusCode, readProblem(t, resp).Detail)
	}
	id := idOf(t, resp.Header.Get("Location"))
	h := f.do("HEAD", TusPath+"/"+id, f.erika.ID, nil, nil)
	if h.Header.Get("Upload-Offset") != strconv.Itoa(len(data)) || h.Header.Get("Upload-Length") != strconv.Itoa(len(data)) ||
		!strings.HasPrefix(h.Header.Get("Upload-Concat"), "final;"+TusPath+"/") {
		t.Fatalf("HEAD final: offset %q length %q concat %q", h.Header.Get("Upload-Offset"), h.Header.Get("Upload-Length"), h.Header.Get("Upload-Concat"))
	}
	if got := f.stored(id); !bytes.Equal(got, data) {
		t.Fatal("joined object differs from the source")
	}
	if u := f.row(id); u.SHA256 != sha(data) || u.Status != intake.StatusComplete || u.Filename != "gesamt.pdf" {
		t.Fatalf("final upload %+v", u)
	}
	if r := f.patch(f.erika.ID, id, int64(len(data)), nil, nil); r.StatusCode != http.StatusForbidden {
		t.Errorf("PATCH to a final upload: %d, want 403", r.StatusCode)
	}
	for _, u := range urls {
		pid := u[strings.LastIndexByte(u, '/')+1:]
		if r := f.do("HEAD", TusPath+"/"+pid, f.erika.ID, nil, nil); r.StatusCode != http.StatusGone {
			t.Errorf("HEAD of a joined partial: %d, want 410", r.StatusCode)
		}
		f.assertNoBlobs(f.row(pid))
	}
	if list := f.list(f.erika.ID); len(list) != 1 || list[0].ID != id || list[0].SHA256 != sha(data) {
		t.Fatalf("list after concatenation: %+v", list)
	}
	if !cc.can {
		copies = 0
	}
	if n := int(cc.n.Load()); n != copies {
		t.Errorf("the store copied %d partials into parts, want %d", n, copies)
	}
}

// copyCount counts the parts a store that can copy them copies.
type copyCount struct {
	can bool
	n   atomic.Int32
}

func (c *copyCount) wrap(b intake.BlobStore) intake.BlobStore {
	pc, ok := b.(intake.PartCopier)
	if !ok {
		return b
	}
	c.can = true
	return &countingCopier{BlobStore: b, pc: pc, n: &c.n}
}

type countingCopier struct {
	intake.BlobStore
	pc intake.PartCopier
	n  *atomic.Int32
}

func (c *countingCopier) CopyPart(ctx context.Context, key, uploadID string, n int, srcKey string, size int64) (intake.Part, error) {
	c.n.Add(1)
	return c.pc.CopyPart(ctx, key, uploadID, n, srcKey, size)
}

// partials sends data cut at cuts as partial uploads of Erika, each in
// PATCHes of chunk bytes, and returns their ids.
func (f *tusFixture) partials(data []byte, cuts []int, chunk int) []string {
	f.t.Helper()
	var ids []string
	for i := 0; i+1 < len(cuts); i++ {
		part := data[cuts[i]:cuts[i+1]]
		resp := f.do("POST", TusPath, f.erika.ID, hdr{"Upload-Concat": "partial", "Upload-Length": strconv.Itoa(len(part))}, nil)
		if resp.StatusCode != http.StatusCreated {
			f.t.Fatalf("partial %d: %d", i, resp.StatusCode)
		}
		pid := idOf(f.t, resp.Header.Get("Location"))
		f.send(f.erika.ID, pid, part, 0, chunk)
		ids = append(ids, pid)
	}
	return ids
}

// testConcatenationRefused joins partials that make a Windows program: the
// final upload answers 415 with the German reason, the partials are used
// up, and neither they nor the final upload leave bytes behind.
func testConcatenationRefused(t *testing.T, factory tusBackendFactory, cuts []int) {
	f := newTusFixture(t, factory)
	data := doc("exe", cuts[len(cuts)-1], 40)
	ids := f.partials(data, cuts, 5*mib)
	var urls []string
	for _, pid := range ids {
		urls = append(urls, TusPath+"/"+pid)
	}
	resp := f.do("POST", TusPath, f.erika.ID, hdr{"Upload-Concat": "final;" + strings.Join(urls, " "), "Upload-Metadata": metadata("filename", "gesamt.pdf")}, nil)
	p := readProblem(t, resp)
	if resp.StatusCode != http.StatusUnsupportedMediaType || !strings.Contains(p.Detail, "nicht erlaubt") {
		t.Fatalf("final of a program: %d %q, want 415 with the reason", resp.StatusCode, p.Detail)
	}
	for _, pid := range ids {
		if r := f.do("HEAD", TusPath+"/"+pid, f.erika.ID, nil, nil); r.StatusCode != http.StatusGone {
			t.Errorf("HEAD of a used-up partial: %d, want 410", r.StatusCode)
		}
		f.assertNoBlobs(f.row(pid))
	}
	if list := f.list(f.erika.ID); len(list) != 1 || list[0].Status != string(intake.StatusRejected) {
		t.Fatalf("list after the refused join: %+v", list)
	}
	f.assertNoBlobs(f.row(f.list(f.erika.ID)[0].ID))
}

// testConcatenationStoreFails breaks the blob store once while the final
// upload is joined: the answer is an error, the partials stay complete,
// no half-joined file is listed, and the same join sent again succeeds.
func testConcatenationStoreFails(t *testing.T, factory tusBackendFactory, cuts []int) {
	fail := &failOnce{}
	f := newTusFixture(t, factory, withBlobs(fail.wrap))
	data := doc("pdf", cuts[len(cuts)-1], 41)
	ids := f.partials(data, cuts, 5*mib)
	var urls []string
	for _, pid := range ids {
		urls = append(urls, TusPath+"/"+pid)
	}
	final := hdr{"Upload-Concat": "final;" + strings.Join(urls, " "), "Upload-Metadata": metadata("filename", "gesamt.pdf")}
	fail.arm()
	resp := f.do("POST", TusPath, f.erika.ID, final, nil)
	if resp.StatusCode < 500 || !strings.Contains(readProblem(t, resp).Detail, "Vorgangsnummer") {
		t.Fatalf("join while the store fails: %d, want a 5xx with a request id", resp.StatusCode)
	}
	for i, pid := range ids {
		h := f.do("HEAD", TusPath+"/"+pid, f.erika.ID, nil, nil)
		if h.StatusCode != http.StatusOK || h.Header.Get("Upload-Offset") != strconv.Itoa(cuts[i+1]-cuts[i]) {
			t.Fatalf("partial %d after the failed join: %d, offset %q", i, h.StatusCode, h.Header.Get("Upload-Offset"))
		}
	}
	if list := f.list(f.erika.ID); len(list) != 0 {
		t.Fatalf("the failed join left files in the list: %+v", list)
	}
	resp = f.do("POST", TusPath, f.erika.ID, final, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("join sent again: %d %s", resp.StatusCode, readProblem(t, resp).Detail)
	}
	id := idOf(t, resp.Header.Get("Location"))
	if !bytes.Equal(f.stored(id), data) || f.row(id).SHA256 != sha(data) {
		t.Fatal("the retried join stored other bytes")
	}
	if list := f.list(f.erika.ID); len(list) != 1 || list[0].ID != id {
		t.Fatalf("list after the retried join: %+v", list)
	}
}

// failOnce fails the next part write once armed: CopyPart where the store
// copies parts, PutPart and Put otherwise.
type failOnce struct {
	intake.BlobStore
	mu    sync.Mutex
	armed bool
}

func (f *failOnce) wrap(b intake.BlobStore) intake.BlobStore {
	f.BlobStore = b
	if pc, ok := b.(intake.PartCopier); ok {
		return &failOnceCopier{failOnce: f, pc: pc}
	}
	return f
}

func (f *failOnce) arm() { f.mu.Lock(); f.armed = true; f.mu.Unlock() }

func (f *failOnce) fire() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.armed {
		f.armed = false
		return errors.New("store broke (test)")
	}
	return nil
}

func (f *failOnce) PutPart(ctx context.Context, key, uploadID string, n int, r io.Reader, size int64) (intake.Part, error) {
	if err := f.fire(); err != nil {
		return intake.Part{}, err
	}
	return f.BlobStore.PutPart(ctx, key, uploadID, n, r, size)
}

func (f *failOnce) Put(ctx context.Context, key string, r io.Reader, size int64) (intake.BlobInfo, error) {
	if err := f.fire(); err != nil {
		return intake.BlobInfo{}, err
	}
	return f.BlobStore.Put(ctx, key, r, size)
}

type failOnceCopier struct {
	*failOnce
	pc intake.PartCopier
}

func (f *failOnceCopier) CopyPart(ctx context.Context, key, uploadID string, n int, srcKey string, size int64) (intake.Part, error) {
	if err := f.fire(); err != nil {
		return intake.Part{}, err
	}
	return f.pc.CopyPart(ctx, key, uploadID, n, srcKey, size)
}
