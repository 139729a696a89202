package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http/httptest"
	"testing"

	"postbox/auth"
	"postbox/storage/sqldb"
	"postbox/web"
)

// With the real session middleware in front: a cookie alone does not let a
// request change the Postfach (CSRF); the session's token does, also for a
// multipart upload, where the middleware must not read the body to find it.
func TestPostfachBehindSessionsAndCSRF(t *testing.T) {
	var authSvc *auth.Service
	w := newSQLiteWorld(t, func(srv *web.Server, store *sqldb.Store) {
		var err error
		authSvc, err = auth.NewService(store.Auth(), auth.Options{Argon2: auth.Argon2Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
			Key: make([]byte, 32), ClientAddrKey: make([]byte, 32)})
		if err != nil {
			t.Fatal(err)
		}
		srv.UseSessions(authSvc, web.SessionOptions{})
	})
	token, _, err := authSvc.StartSession(context.Background(), w.as["erika"], auth.StageDone, "")
	if err != nil {
		t.Fatal(err)
	}
	cookie := web.SessionCookieName(false) + "=" + token
	send := func(method, path string, body io.Reader, ctype string, csrf bool) (int, []byte) {
		t.Helper()
		req := httptest.NewRequest(method, path, body)
		req.Header.Set("Cookie", cookie)
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if csrf {
			req.Header.Set("X-CSRF-Token", auth.CSRFToken(token))
		}
		res, err := w.app.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}
	start := func() []byte {
		raw, _ := json.Marshal(map[string]any{"topic": "krankengeld", "subject": "Frage", "body": "Hallo"})
		return raw
	}
	if code, _ := send("GET", "/api/postfach/threads", nil, "", false); code != 200 {
		t.Fatalf("GET with the session cookie: %d", code)
	}
	if code, body := send("POST", "/api/postfach/threads", bytes.NewReader(start()), "application/json", false); code != 403 || !bytes.Contains(body, []byte("csrf")) {
		t.Fatalf("POST without CSRF token: %d %s", code, body)
	}
	if code, body := send("POST", "/api/postfach/threads", bytes.NewReader(start()), "application/json", true); code != 201 {
		t.Fatalf("POST with CSRF token: %d %s", code, body)
	}
	multipartBody := func(size int) ([]byte, string) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		fw, _ := mw.CreateFormFile("datei", "a.pdf")
		fw.Write(pdf(size))
		mw.Close()
		return buf.Bytes(), mw.FormDataContentType()
	}
	// (A small body: the middleware refuses before reading it, and
	// app.Test cannot tell a refused large body from the next request.)
	raw, ctype := multipartBody(4000)
	if code, body := send("POST", "/api/postfach/attachments", bytes.NewReader(raw), ctype, false); code != 403 {
		t.Fatalf("upload without CSRF token: %d %s", code, body)
	}
	raw, ctype = multipartBody(3 << 20)
	if code, body := send("POST", "/api/postfach/attachments", bytes.NewReader(raw), ctype, true); code != 201 {
		t.Fatalf("upload with CSRF token: %d %s", code, body)
	}
	// The refused POSTs stored nothing: one thread.
	if ids := w.listIDs("erika", ""); len(ids) != 1 {
		t.Fatalf("threads: %v", ids)
	}
}
