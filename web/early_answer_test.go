package web

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"
)

// An answer given before anything read the request body (the PIN session's
// CSRF check, a missing login, an unknown route, a form too large) reaches
// a client that is still sending that body, over a real connection: a
// small rest is drained and the connection stays usable, a large one is
// closed lingering. Without that the client sees "connection reset by
// peer" instead of the answer.
func TestEarlyAnswerReachesAClientStillSending(t *testing.T) {
	d := newPINDesk(t, false)
	cookie, _ := d.login(d.erika.KVNR, d.issue(d.erika, "krankengeld"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go d.app.Listener(ln)
	defer d.app.Shutdown()
	base := "http://" + ln.Addr().String()

	cases := []struct {
		name, method, path, contentType string
		cookie                          bool
		want                            int
	}{
		{"CSRF token missing", "PUT", pinDraftPath, "application/octet-stream", true, http.StatusForbidden},
		{"no login", "PUT", pinDraftPath, "application/octet-stream", false, http.StatusUnauthorized},
		{"unknown route", "POST", "/api/gibt-es-nicht", "application/octet-stream", false, http.StatusNotFound},
		{"form too large", "POST", pinLoginPath, "application/json", false, http.StatusRequestEntityTooLarge},
	}
	for _, tc := range cases {
		for _, size := range []int{6 << 20, 48 << 20} {
			// A fresh transport per request: a connection must not be
			// reused from an earlier case by luck.
			hc := &http.Client{Transport: &http.Transport{}}
			req, err := http.NewRequest(tc.method, base+tc.path, bytes.NewReader(make([]byte, size)))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", tc.contentType)
			if tc.cookie {
				req.AddCookie(&http.Cookie{Name: PINCookieName(false), Value: cookie})
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatalf("%s, %d MiB body: the client got no answer: %v", tc.name, size>>20, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("%s, %d MiB body: %d, want %d: %s", tc.name, size>>20, resp.StatusCode, tc.want, body)
			}
			if p := problemOf(t, body); p["title"] == "" || p["title"] == nil {
				t.Fatalf("%s, %d MiB body: no German problem: %s", tc.name, size>>20, body)
			}
			// The drained connection serves the next request.
			if size <= maxDrain {
				resp, err := hc.Get(base + "/healthz")
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("%s, %d MiB body: the next request on the connection failed: %v", tc.name, size>>20, err)
				}
				resp.Body.Close()
			}
			hc.CloseIdleConnections()
		}
	}
}
