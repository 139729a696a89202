package web

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"postbox/intake"
)

// Every answer of the whole service carries the security headers: pages,
// static files, redirects, every kind of error (also a handler that
// panics), the upload protocol and the operational endpoints.
func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	w := newUIWorldWith(t, Options{HSTS: true})
	MountTus(w.srv.App(), intake.NewTusHandler(intake.TusConfig{Store: w.db, Blobs: w.pin.Blobs, BasePath: TusPath + "/",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}), TusOptions{})
	w.srv.App().Get("/test/panik", func(c *fiber.Ctx) error { panic("a bug in a handler") })

	_, home := get(t, w.srv, "/")
	css := regexp.MustCompile(`href="(/static/[^"]+\.css)"`).FindStringSubmatch(home)
	if css == nil {
		t.Fatalf("home page links no stylesheet: %s", home)
	}
	erika := w.as("erika")
	bigJSON := `{"kvnr":"` + strings.Repeat("x", 2<<20) + `"}`
	for _, tc := range []struct {
		name, method, path string
		header             map[string]string
		body               string
		b                  *browser
		want               int
	}{
		{"page", "GET", "/", nil, "", nil, 200},
		{"static file", "GET", css[1], nil, "", nil, 200},
		{"unknown static file", "GET", "/static/gibt-es-nicht.css", nil, "", nil, 404},
		{"unknown page (HTML error page)", "GET", "/gibt-es-nicht", nil, "", nil, 404},
		{"unknown API path (problem+json)", "GET", "/api/gibt-es-nicht", map[string]string{"Accept": "application/json"}, "", nil, 404},
		{"login redirect", "GET", "/postfach", nil, "", nil, 303},
		{"missing CSRF token", "POST", "/postfach/neu", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, "betreff=x", erika, 403},
		{"PIN login from another site", "POST", "/einmal-pin/" + w.kasse.ID, map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "cross-site"}, "kvnr=x&pin=y", nil, 403},
		{"body too large", "POST", "/api/pin-login", map[string]string{"Content-Type": "application/json"}, bigJSON, nil, 413},
		{"handler panics (page)", "GET", "/test/panik", nil, "", nil, 500},
		{"handler panics (API)", "GET", "/test/panik", map[string]string{"Accept": "application/json"}, "", nil, 500},
		{"tus OPTIONS", "OPTIONS", TusPath, map[string]string{"Tus-Resumable": "1.0.0"}, "", nil, 204},
		{"tus without login", "POST", TusPath, map[string]string{"Tus-Resumable": "1.0.0", "Upload-Length": "10"}, "", nil, 401},
		{"tus without protocol header", "HEAD", TusPath + "/0123456789abcdef0123456789abcdef", nil, "", erika, 412},
		{"healthz", "GET", "/healthz", nil, "", nil, 200},
		{"readyz", "GET", "/readyz", nil, "", nil, 200},
		{"metrics", "GET", "/metrics", nil, "", nil, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			if tc.body != "" {
				req.ContentLength = int64(len(tc.body))
				req.Header.Set("Content-Length", strconv.Itoa(len(tc.body)))
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			b := tc.b
			if b == nil {
				b = newBrowser(t, w.srv)
			}
			resp, body := b.do(req)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %.200s", resp.StatusCode, tc.want, body)
			}
			assertSecurityHeaders(t, resp)
			if tc.want == 500 && strings.Contains(body, "a bug in a handler") {
				t.Errorf("the panic's text reached the client: %.300s", body)
			}
		})
	}
	// The server is still there after the panics.
	if resp, _ := get(t, w.srv, "/healthz"); resp.StatusCode != 200 {
		t.Fatalf("healthz after the panics: %d", resp.StatusCode)
	}
}

func assertSecurityHeaders(t *testing.T, resp *http.Response) {
	t.Helper()
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"frame-ancestors 'none'", "default-src 'self'", "script-src 'self'", "object-src 'none'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP allows inline code: %q", csp)
	}
	for h, want := range map[string]string{
		"X-Content-Type-Options":    "nosniff",
		"Referrer-Policy":           "no-referrer",
		"X-Frame-Options":           "DENY",
		"Strict-Transport-Security": "max-age=63072000; includeSubDomains",
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
}

// Requests the server cannot parse are answered before any middleware
// runs (fasthttp → the error handler); they get the headers too.
func TestSecurityHeadersOnProtocolErrors(t *testing.T) {
	s := quietServer(Options{HSTS: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.App().Shutdown() })
	for _, tc := range []struct {
		name, raw string
		want      int
	}{
		{"header too large", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Gross: " + strings.Repeat("a", 9000) + "\r\n\r\n", 431},
		{"not HTTP", "KAPUTT\r\n\r\n", 400},
		{"broken Content-Length", "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write([]byte(tc.raw))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			assertSecurityHeaders(t, resp)
		})
	}
}
