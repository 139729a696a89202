package web

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"postbox/auth"
	"postbox/mailbox"
)

// Hostile input against the whole service (fullWorld: the router as serve
// wires it). Every case is refused cleanly, with a German problem+json
// (API) or German page (browser), and nothing is stored: the row counts of
// every table that holds what people store and the files of the blob
// store stay as they were. Where the service keeps the input instead (a
// file name is cleaned, a polyglot that is a valid PDF is a PDF), the test
// says so and checks how it is kept.

// blobFiles lists the files under the data directory.
func (w *fullWorld) blobFiles() map[string]bool {
	w.t.Helper()
	out := map[string]bool{}
	err := filepath.WalkDir(w.dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasPrefix(filepath.Base(p), "postbox.db") {
			out[p] = true
		}
		return err
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return out
}

// nothingStored checks that fn changes neither the tables (but the ones
// named in except, which the caller checks itself) nor the files.
func (w *fullWorld) nothingStored(t *testing.T, what string, fn func(), except ...string) {
	t.Helper()
	rows, files := w.counts(), w.blobFiles()
	fn()
	after := w.counts()
	for _, table := range except {
		delete(rows, table)
		delete(after, table)
	}
	if !mapsEqual(rows, after) {
		t.Errorf("%s stored rows:\nbefore %v\nafter  %v", what, rows, after)
	}
	if afterFiles := w.blobFiles(); len(afterFiles) != len(files) {
		t.Errorf("%s stored files: %d before, %d after", what, len(files), len(afterFiles))
	}
}

// liveUploads counts the uploads that are not a refusal's tombstone.
func (w *fullWorld) liveUploads() int {
	w.t.Helper()
	var n int
	if err := w.db.DB().QueryRow("SELECT COUNT(*) FROM uploads WHERE status <> 'rejected'").Scan(&n); err != nil {
		w.t.Fatal(err)
	}
	return n
}

// germanRefusal checks a refusal: the status, and a German problem+json
// (or page) that says what is wrong.
func germanRefusal(t *testing.T, what string, resp *http.Response, body []byte, status int, want string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("%s: %d, want %d: %.300s", what, resp.StatusCode, status, body)
		return
	}
	if !strings.Contains(string(body), want) {
		t.Errorf("%s: answer lacks %q: %.400s", what, want, body)
	}
	ct := resp.Header.Get("Content-Type")
	if !strings.HasPrefix(ct, "application/problem+json") && !strings.HasPrefix(ct, "text/html") {
		t.Errorf("%s: answered as %q", what, ct)
	}
}

func gzipped(t *testing.T, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	zw.Write(p)
	zw.Close()
	return b.Bytes()
}

// Compressed request bodies: Fiber would inflate them whole and without a
// limit when a handler reads the body ("gzip, gzip" twice), so a few KB
// become hundreds of MB. The service refuses any Content-Encoding before
// that; the memory the requests allocate stays small.
func TestHostileCompressedBodies(t *testing.T) {
	w := newFullWorld(t)
	pinToken, pinCSRF := w.pinSession(w.erika)
	zeros := make([]byte, 64<<20)
	bomb := gzipped(t, gzipped(t, zeros)) // 64 MiB behind a few hundred bytes
	zeros = nil
	var deflated bytes.Buffer
	zw := zlib.NewWriter(&deflated)
	zw.Write(bytes.Repeat([]byte(`{"kvnr":"A123456780",`), 1<<16))
	zw.Close()
	t.Logf("gzip, gzip bomb: %d bytes for 64 MiB", len(bomb))
	for _, tc := range []struct {
		name     string
		req      fullRequest
		encoding string
	}{
		{"PIN login (public)", fullRequest{method: "POST", path: "/api/pin-login", ctype: "application/json", body: bomb}, "gzip, gzip"},
		{"account login (public)", fullRequest{method: "POST", path: "/api/auth/login", ctype: "application/json", body: bomb}, "gzip,gzip"},
		{"registration", fullRequest{method: "POST", path: "/api/auth/register", ctype: "application/json", body: deflated.Bytes()}, "deflate"},
		{"draft of a PIN session", fullRequest{method: "PUT", path: "/api/draft", ctype: "application/json", body: bomb, pinToken: pinToken, csrf: pinCSRF}, "gzip, gzip"},
		{"login form (page)", fullRequest{method: "POST", path: "/anmelden", ctype: "application/x-www-form-urlencoded", body: bomb, accept: "text/html"}, "gzip, gzip"},
		{"brotli", fullRequest{method: "POST", path: "/api/pin-login", ctype: "application/json", body: []byte{0x1b, 0xff, 0xff}}, "br"},
	} {
		tc.req.header = map[string]string{"Content-Encoding": tc.encoding}
		var before, after runtime.MemStats
		w.nothingStored(t, tc.name, func() {
			runtime.GC()
			runtime.ReadMemStats(&before)
			resp, body := w.do(tc.req)
			runtime.ReadMemStats(&after)
			germanRefusal(t, tc.name, resp, body, 415, "Komprimierte Anfragen werden nicht angenommen")
		})
		if grown := after.TotalAlloc - before.TotalAlloc; grown > 16<<20 {
			t.Errorf("%s: the request allocated %d MiB", tc.name, grown>>20)
		}
	}
	// identity is no compression.
	resp, _ := w.do(fullRequest{method: "POST", path: "/api/pin-login", ctype: "application/json", body: []byte(`{}`), header: map[string]string{"Content-Encoding": "identity"}})
	if resp.StatusCode == 415 {
		t.Errorf("Content-Encoding: identity refused")
	}
}

// Oversized request lines and headers: 431 with a German problem, nothing
// stored, and the server goes on serving. (Over a real connection: the
// in-process test client refuses to send such requests itself.)
func TestHostileOversizedHeaders(t *testing.T) {
	w := newFullWorld(t)
	addr := w.listen(t)
	for _, tc := range []struct {
		name, method, path string
		header             map[string]string
	}{
		{"one 64 KiB header", "POST", "/api/pin-login", map[string]string{"X-Filler": strings.Repeat("a", 64<<10), "Content-Type": "application/json"}},
		{"a 32 KiB cookie", "GET", "/postfach", map[string]string{"Cookie": "postbox_session=" + strings.Repeat("b", 32<<10)}},
		{"a 16 KiB path", "GET", "/postfach/" + strings.Repeat("c", 16<<10), nil},
		{"400 small headers", "GET", "/", manyHeaders(400)},
	} {
		w.nothingStored(t, tc.name, func() {
			req, _ := http.NewRequest(tc.method, "http://"+addr+tc.path, strings.NewReader("{}"))
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			// A raw connection: the server answers as soon as its header
			// buffer is full and closes; net/http's client may still be
			// writing then and report the reset instead of the answer,
			// which is already on the wire. So write, then read.
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(30 * time.Second))
			werr := req.Write(conn)
			resp, err := http.ReadResponse(bufio.NewReader(conn), req)
			if err != nil {
				t.Errorf("%s: no answer (write: %v): %v", tc.name, werr, err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			germanRefusal(t, tc.name, resp, body, 431, "Kopfzeilen zu groß")
		})
	}
	if resp, _ := w.do(fullRequest{method: "GET", path: "/healthz"}); resp.StatusCode != 200 {
		t.Errorf("after the oversized requests: healthz %d", resp.StatusCode)
	}
}

// listen serves the world on a loopback port until the test ends.
func (w *fullWorld) listen(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go w.srv.Serve(ln)
	t.Cleanup(func() { w.srv.Shutdown(context.Background()) })
	return ln.Addr().String()
}

func manyHeaders(n int) map[string]string {
	h := map[string]string{}
	for i := range n {
		h[fmt.Sprintf("X-H%d", i)] = "0123456789"
	}
	return h
}

// multipartFile builds a multipart/form-data body with one file in the
// field "datei".
func multipartFile(name string, content []byte) ([]byte, string) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	h := make(map[string][]string)
	h["Content-Disposition"] = []string{`form-data; name="datei"; filename="` + name + `"`}
	h["Content-Type"] = []string{"application/octet-stream"}
	fw, _ := mw.CreatePart(h)
	fw.Write(content)
	mw.Close()
	return b.Bytes(), mw.FormDataContentType()
}

// postfachUpload sends a file as Erika to the Postfach attachment upload.
func (w *fullWorld) postfachUpload(name string, content []byte) (*http.Response, []byte) {
	w.t.Helper()
	body, ctype := multipartFile(name, content)
	session := w.session("erika")
	return w.do(fullRequest{method: "POST", path: "/api/postfach/attachments", session: session, csrf: auth.CSRFToken(session), ctype: ctype, body: body})
}

// tusUpload creates an upload with its whole content in a PIN session.
func (w *fullWorld) tusUpload(pinToken, name string, content []byte) (*http.Response, []byte) {
	w.t.Helper()
	return w.do(fullRequest{method: "POST", path: TusPath, pinToken: pinToken, body: content, ctype: "application/offset+octet-stream",
		header: map[string]string{"Tus-Resumable": "1.0.0", "Upload-Length": fmt.Sprint(len(content)),
			"Upload-Metadata": "filename " + base64.StdEncoding.EncodeToString([]byte(name))}})
}

func zipBomb(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for i := range 4 {
		f, err := zw.Create(fmt.Sprintf("befund-%d.pdf", i))
		if err != nil {
			t.Fatal(err)
		}
		f.Write(make([]byte, 32<<20))
	}
	zw.Close()
	return b.Bytes()
}

// Files whose content is not what they claim, and archives. The service
// never decompresses an upload (the only archive code writes the Postfach
// export), so a ZIP bomb is refused by the type rules like any ZIP, before
// anything is stored. HTML named .png is refused; a file that is a valid
// PDF (or PNG) with something else appended is kept as that type and
// served only as a download (attachment, nosniff).
func TestHostileFileContent(t *testing.T) {
	w := newFullWorld(t)
	pinToken, _ := w.pinSession(w.erika)
	html := []byte("<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>")
	bomb := zipBomb(t)
	t.Logf("ZIP bomb: %d bytes for 128 MiB", len(bomb))
	for _, tc := range []struct {
		name, file string
		content    []byte
		want       string
	}{
		{"HTML named .png", "bild.png", html, "nicht erlaubt"},
		{"HTML behind a BOM and spaces", "scan.pdf", append([]byte("\xef\xbb\xbf  \n"), html...), "nicht erlaubt"},
		{"SVG with script", "bild.png", []byte(`<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`), "nicht erlaubt"},
		{"ZIP bomb named .pdf", "befund.pdf", bomb, "nicht erlaubt"},
		{"ZIP first, PDF inside", "befund.pdf", append(append([]byte{}, bomb[:200]...), []byte("%PDF-1.4")...), "nicht erlaubt"},
		{"\\x89PNG without the rest of the signature", "bild.png", append([]byte("\x89PNG"), html...), "nicht erlaubt"},
		{"shell script named .pdf", "a.pdf", []byte("#!/bin/sh\nrm -rf /\n"), "nicht erlaubt"},
	} {
		w.nothingStored(t, "Postfach: "+tc.name, func() {
			resp, body := w.postfachUpload(tc.file, tc.content)
			germanRefusal(t, "Postfach: "+tc.name, resp, body, 415, tc.want)
		})
		// tus keeps a tombstone of a refused upload (status rejected, its
		// bytes deleted) so that a resuming client gets 410, not 404.
		w.nothingStored(t, "tus: "+tc.name, func() {
			live := w.liveUploads()
			resp, body := w.tusUpload(pinToken, tc.file, tc.content)
			germanRefusal(t, "tus: "+tc.name, resp, body, 415, tc.want)
			if w.liveUploads() != live {
				t.Errorf("tus: %s left an upload that is not marked rejected", tc.name)
			}
		}, "uploads")
	}

	// Polyglots that are valid documents of an allowed type are kept as
	// that type; they are only ever served as a download.
	pdfZip := append([]byte("%PDF-1.4\n1 0 obj\n<<>>\nendobj\n%%EOF\n"), bomb[:4096]...)
	pngHTML := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), html...)
	for _, tc := range []struct {
		name, file, ctype string
		content           []byte
	}{
		{"PDF with a ZIP appended", "befund.pdf", "application/pdf", pdfZip},
		{"PNG signature, then HTML", "bild.png", "image/png", pngHTML},
	} {
		resp, body := w.postfachUpload(tc.file, tc.content)
		var up struct{ Attachment struct{ ID string } }
		json.Unmarshal(body, &up)
		if resp.StatusCode != 201 {
			t.Fatalf("%s: %d %s", tc.name, resp.StatusCode, body)
		}
		th, _, err := w.mail.StartThread(t.Context(), mailboxActor(w, "erika"), newThreadWith(up.Attachment.ID))
		if err != nil {
			t.Fatal(err)
		}
		var attID string
		w.db.DB().QueryRow("SELECT a.id FROM attachments a JOIN messages m ON m.id = a.message_id WHERE m.thread_id = ?", th.ID).Scan(&attID)
		session := w.session("erika")
		resp, got := w.do(fullRequest{method: "GET", path: "/api/postfach/attachments/" + attID, session: session})
		switch {
		case resp.StatusCode != 200 || !bytes.Equal(got, tc.content):
			t.Errorf("%s: download %d", tc.name, resp.StatusCode)
		case resp.Header.Get("Content-Type") != tc.ctype:
			t.Errorf("%s: served as %q", tc.name, resp.Header.Get("Content-Type"))
		case !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment"):
			t.Errorf("%s: Content-Disposition %q", tc.name, resp.Header.Get("Content-Disposition"))
		case resp.Header.Get("X-Content-Type-Options") != "nosniff":
			t.Errorf("%s: no nosniff", tc.name)
		case !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'"):
			t.Errorf("%s: CSP %q", tc.name, resp.Header.Get("Content-Security-Policy"))
		}
	}
}

// File names with directories, traversal and control characters are not
// refused but cleaned: the name is only a label, never part of a path (the
// blob key is made of ids), so nothing lands outside the data directory.
func TestHostileFileNames(t *testing.T) {
	w := newFullWorld(t)
	pinToken, _ := w.pinSession(w.erika)
	pdf := pdfBytes(2000)
	for _, tc := range []struct{ sent, want string }{
		{"../../../../etc/passwd.pdf", "passwd.pdf"},
		{`..\..\..\windows\win.ini.pdf`, "win.ini.pdf"},
		{"/abs/path/befund.pdf", "befund.pdf"},
		{"befund\x00.pdf", "befund.pdf"},
		{"zeile\r\nSet-Cookie: a=b.pdf", "zeileSet-Cookie: a=b.pdf"},
		{"rechnung\u202Egnp.pdf", "rechnunggnp.pdf"},
		{"..", ""}, // no name left; the list shows the upload without one
	} {
		resp, body := w.tusUpload(pinToken, tc.sent, pdf)
		if resp.StatusCode != 201 {
			t.Errorf("tus %q: %d %s", tc.sent, resp.StatusCode, body)
			continue
		}
		id := resp.Header.Get("Location")[len(TusPath)+1:]
		_, list := w.do(fullRequest{method: "GET", path: TusPath, pinToken: pinToken})
		var ups struct {
			Uploads []struct{ ID, Filename string }
		}
		json.Unmarshal(list, &ups)
		found := false
		for _, u := range ups.Uploads {
			if u.ID == id {
				found = true
				if u.Filename != tc.want {
					t.Errorf("tus %q stored as %q, want %q", tc.sent, u.Filename, tc.want)
				}
			}
		}
		if !found {
			t.Errorf("tus %q: upload %s not listed", tc.sent, id)
		}
		w.do(fullRequest{method: "DELETE", path: TusPath + "/" + id, pinToken: pinToken, header: map[string]string{"Tus-Resumable": "1.0.0"}})
	}
	for _, sent := range []string{"../../../../etc/passwd.pdf", `..\..\boot.ini.pdf`, "\u2066evil\u2069.pdf"} {
		resp, body := w.postfachUpload(sent, pdf)
		var up struct {
			Attachment struct {
				FileName string `json:"file_name"`
			}
		}
		json.Unmarshal(body, &up)
		if name := up.Attachment.FileName; resp.StatusCode != 201 || strings.ContainsAny(name, "/\\\x00\x01\x7f\u2066\u2069") || !strings.HasSuffix(name, ".pdf") {
			t.Errorf("Postfach %q: %d, stored as %q", sent, resp.StatusCode, name)
		}
	}
	root, err := filepath.Abs(w.dir)
	if err != nil {
		t.Fatal(err)
	}
	for f := range w.blobFiles() {
		if strings.Contains(f, "passwd") || strings.Contains(f, "boot.ini") || strings.Contains(f, "win.ini") || !strings.HasPrefix(f, root) {
			t.Errorf("a file name reached the disk: %s", f)
		}
	}
}

// Very long form fields and JSON bodies: refused with a German message,
// nothing stored. Above the server's 1 MiB limit for whole bodies before
// anything reads them; below it by the field rules.
func TestHostileLongFields(t *testing.T) {
	w := newFullWorld(t)
	pinToken, pinCSRF := w.pinSession(w.erika)
	session := w.session("erika")
	long := strings.Repeat("ä", 300<<10) // 600 KiB of UTF-8
	huge := strings.Repeat("x", 2<<20)
	jsonOf := func(m map[string]string) []byte { b, _ := json.Marshal(m); return b }
	for _, tc := range []struct {
		name   string
		req    fullRequest
		status int
		want   string
	}{
		{"login form with a 2 MiB user name", fullRequest{method: "POST", path: "/anmelden", ctype: "application/x-www-form-urlencoded", accept: "text/html",
			body: []byte("kasse=" + w.kasseA.ID + "&username=" + huge + "&password=x")}, 413, "Anfrage zu groß"},
		{"PIN login with a 600 KiB KVNR", fullRequest{method: "POST", path: "/api/pin-login", ctype: "application/json",
			body: jsonOf(map[string]string{"kasse": w.kasseA.ID, "kvnr": long, "pin": "ABCDEFGHJKMNPQR"})}, 422, "Krankenversichertennummer ist nicht gültig"},
		{"draft subject of 300 000 characters", fullRequest{method: "PUT", path: "/api/draft", ctype: "application/json", pinToken: pinToken, csrf: pinCSRF,
			body: jsonOf(map[string]string{"case_type": "krankengeld", "subject": long})}, 422, "höchstens 120 Zeichen"},
		{"Postfach message of 600 KiB", fullRequest{method: "POST", path: "/api/postfach/threads", ctype: "application/json", session: session, csrf: auth.CSRFToken(session),
			body: jsonOf(map[string]string{"topic": "krankengeld", "subject": "Frage", "body": long})}, 413, "zu groß"},
		{"Postfach subject of 600 KiB in 200 KiB", fullRequest{method: "POST", path: "/api/postfach/threads", ctype: "application/json", session: session, csrf: auth.CSRFToken(session),
			body: jsonOf(map[string]string{"topic": "krankengeld", "subject": long[:200<<10], "body": "Hallo"})}, 422, "Betreff"},
		{"registration with 600 KiB names", fullRequest{method: "POST", path: "/api/auth/register", ctype: "application/json",
			body: jsonOf(map[string]string{"kasse": w.kasseA.ID, "kvnr": w.max.KVNR, "given_name": long, "family_name": long})}, 413, "zu groß"},
	} {
		w.nothingStored(t, tc.name, func() {
			resp, body := w.do(tc.req)
			germanRefusal(t, tc.name, resp, body, tc.status, tc.want)
		})
	}
	_, draft := w.do(fullRequest{method: "GET", path: "/api/draft", pinToken: pinToken})
	if bytes.Contains(draft, []byte("ääääää")) {
		t.Errorf("the refused draft subject was saved")
	}
}

// rawConn talks HTTP/1.1 byte by byte to a real listener, as a slow or
// stalling client does.
func rawConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedWithin reads until the server answers or closes the connection
// and reports what it said and how long it took.
func closedWithin(t *testing.T, c net.Conn, limit time.Duration) (string, time.Duration) {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(limit))
	got, err := io.ReadAll(bufio.NewReader(c))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the server still holds the connection after %s", limit)
	}
	return string(got), time.Since(start)
}

// Slow clients (slowloris): the request line and headers must arrive
// within HeaderTimeout, the body within BodyTimeout after them; a client
// that stalls is cut off, and a Postfach upload cut off stores nothing.
func TestHostileSlowClients(t *testing.T) {
	w := newFullWorldWith(t, Options{HeaderTimeout: 300 * time.Millisecond, BodyTimeout: 700 * time.Millisecond})
	addr := w.listen(t)

	t.Run("headers dripping in", func(t *testing.T) {
		c := rawConn(t, addr)
		start := time.Now()
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
		for range 3 { // one header line every 200 ms: never complete in time
			time.Sleep(200 * time.Millisecond)
			if _, err := fmt.Fprintf(c, "X-Slow: a\r\n"); err != nil {
				break
			}
		}
		answer, _ := closedWithin(t, c, 10*time.Second)
		if !strings.HasPrefix(answer, "HTTP/1.1 408") || !strings.Contains(answer, "Zeitüberschreitung") {
			t.Errorf("a request whose headers took 600 ms: %.300s", answer)
		}
		t.Logf("dripping headers answered within %s", time.Since(start).Round(10*time.Millisecond))
	})

	t.Run("a Postfach upload that stalls", func(t *testing.T) {
		session := w.session("erika")
		body, ctype := multipartFile("befund.pdf", pdfBytes(200<<10))
		w.nothingStored(t, "stalled upload", func() {
			c := rawConn(t, addr)
			fmt.Fprintf(c, "POST /api/postfach/attachments HTTP/1.1\r\nHost: x\r\nCookie: %s=%s\r\nX-CSRF-Token: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
				SessionCookieName(false), session, auth.CSRFToken(session), ctype, len(body))
			c.Write(body[:len(body)/2]) // then nothing more
			answer, took := closedWithin(t, c, 10*time.Second)
			if !strings.HasPrefix(answer, "HTTP/1.1 408") || !strings.Contains(answer, "zu langsam") {
				t.Errorf("a half-sent upload: %.300s", answer)
			}
			t.Logf("stalled upload cut after %s: %.60q", took.Round(10*time.Millisecond), answer)
			time.Sleep(200 * time.Millisecond) // let the handler finish its cleanup
		})
	})

	t.Run("a slow but steady request still works", func(t *testing.T) {
		c := rawConn(t, addr)
		req := "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
		for i := 0; i < len(req); i += 10 { // whole headers within ~100 ms
			c.Write([]byte(req[i:min(i+10, len(req))]))
			time.Sleep(5 * time.Millisecond)
		}
		answer, _ := closedWithin(t, c, 10*time.Second)
		if !strings.HasPrefix(answer, "HTTP/1.1 200") {
			t.Errorf("slow but complete request: %.200s", answer)
		}
	})
}

func mailboxActor(w *fullWorld, name string) mailbox.Actor {
	return mailbox.Actor{Principal: w.people[name]}
}

func newThreadWith(uploadID string) mailbox.NewThread {
	return mailbox.NewThread{Topic: "krankengeld", Subject: "Befund", Body: "Anbei.", Uploads: []string{uploadID}}
}
