package web

import (
	"context"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"postbox/kasse"
)

// fakeKassen is a fixed tenant list for page tests that need no database.
type fakeKassen []kasse.Kasse

func (f fakeKassen) Kasse(_ context.Context, id string) (kasse.Kasse, error) {
	for _, k := range f {
		if k.ID == id {
			return k, nil
		}
	}
	return kasse.Kasse{}, kasse.ErrNotFound
}

func (f fakeKassen) Kassen(context.Context) ([]kasse.Kasse, error) { return f, nil }

func uiServer(t *testing.T, o UIOptions) *Server {
	t.Helper()
	s := quietServer(Options{})
	if o.Kassen == nil {
		o.Kassen = fakeKassen{{ID: "demo", Name: "Demo-Krankenkasse"}}
	}
	if _, err := MountUI(s, o); err != nil {
		t.Fatal(err)
	}
	return s
}

// get fetches path as a browser would (Accept: text/html) and returns the
// response with its body.
func get(t *testing.T, s *Server, path string, header ...string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := s.App().Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

var (
	reForm      = regexp.MustCompile(`(?is)<form\b([^>]*)>(.*?)</form>`)
	reStyleAttr = regexp.MustCompile(`(?i)<[^>]+\sstyle\s*=`)
	reOnAttr    = regexp.MustCompile(`(?i)<[^>]+\son[a-z]+\s*=`)
	reScriptTag = regexp.MustCompile(`(?i)<script\b[^>]*>`)
	reStyleTag  = regexp.MustCompile(`(?i)<style\b`)
	reAttrValue = regexp.MustCompile(`="[^"]*"`)
)

// checkPage asserts what every page must have: German, a skip link to the
// main content, one h1, no inline script or style (the CSP would block
// them), and a CSRF field in every form that changes something.
func checkPage(t *testing.T, name, html string) {
	t.Helper()
	if !strings.Contains(html, `<html lang="de">`) {
		t.Errorf("%s: not marked as German", name)
	}
	if !strings.Contains(html, `href="#inhalt"`) || !strings.Contains(html, `id="inhalt"`) {
		t.Errorf("%s: no skip link to the main content", name)
	}
	if n := strings.Count(html, "<h1"); n != 1 {
		t.Errorf("%s: %d h1 headings, want 1", name, n)
	}
	// Attribute values hold escaped user text, which may spell "onerror=".
	bare := reAttrValue.ReplaceAllString(html, `=""`)
	if reStyleAttr.MatchString(bare) || reStyleTag.MatchString(bare) {
		t.Errorf("%s: inline style", name)
	}
	if reOnAttr.MatchString(bare) {
		t.Errorf("%s: inline event handler", name)
	}
	for _, tag := range reScriptTag.FindAllString(html, -1) {
		if !strings.Contains(tag, ` src="/static/`) {
			t.Errorf("%s: script without src from /static/: %s", name, tag)
		}
	}
	for _, m := range reForm.FindAllStringSubmatch(html, -1) {
		attrs, inner := strings.ToLower(m[1]), m[2]
		if strings.Contains(attrs, `method="post"`) && !strings.Contains(inner, `name="_csrf"`) {
			t.Errorf("%s: POST form without CSRF field: <form%s>", name, m[1])
		}
	}
}

func TestHomeAndLayout(t *testing.T) {
	s := uiServer(t, UIOptions{})
	resp, html := get(t, s, "/")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	checkPage(t, "home", html)
	for _, want := range []string{"Demo-Krankenkasse", `href="/einmal-pin/demo"`, `href="/anmelden?kasse=demo"`, `href="/barrierefreiheit"`} {
		if !strings.Contains(html, want) {
			t.Errorf("home page lacks %q", want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("page without the CSP: %q", csp)
	}
}

// The stylesheet is linked under a content-hashed name that may be cached
// for a year; the same file under its plain name must be revalidated.
func TestStaticAssetsAreHashedAndCached(t *testing.T) {
	s := uiServer(t, UIOptions{})
	_, html := get(t, s, "/")
	m := regexp.MustCompile(`href="(/static/css/site\.[0-9a-f]{12}\.css)"`).FindStringSubmatch(html)
	if m == nil {
		t.Fatalf("no hashed stylesheet link in %s", html)
	}
	want, err := fs.ReadFile(staticFS, "static/css/site.css")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, cache string }{
		{m[1], "public, max-age=31536000, immutable"},
		{"/static/css/site.css", "no-cache"},
	} {
		resp, body := get(t, s, tc.path)
		if resp.StatusCode != 200 || body != string(want) {
			t.Errorf("%s: %d, %d bytes", tc.path, resp.StatusCode, len(body))
		}
		if resp.Header.Get("Cache-Control") != tc.cache || resp.Header.Get("Content-Type") != "text/css; charset=utf-8" {
			t.Errorf("%s: Cache-Control %q, Content-Type %q", tc.path, resp.Header.Get("Cache-Control"), resp.Header.Get("Content-Type"))
		}
		etag := resp.Header.Get("ETag")
		if resp, _ := get(t, s, tc.path, "If-None-Match", etag); resp.StatusCode != 304 {
			t.Errorf("%s with If-None-Match: %d, want 304", tc.path, resp.StatusCode)
		}
	}
	for _, p := range []string{"/static/css/site.000000000000.css", "/static/vendor/update.sh", "/static/../ui.go"} {
		if resp, _ := get(t, s, p); resp.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", p, resp.StatusCode)
		}
	}
	// The bundled tus-js-client is served by the binary itself.
	resp, body := get(t, s, "/static/vendor/tus.min.js")
	if resp.StatusCode != 200 || !strings.Contains(body, "tus-js-client 4.3.1") || resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Errorf("tus.min.js: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// Browsers get German error pages; API clients keep problem+json.
func TestErrorPagesForBrowsers(t *testing.T) {
	s := uiServer(t, UIOptions{})
	resp, html := get(t, s, "/gibt-es-nicht")
	if resp.StatusCode != 404 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("404 page: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	checkPage(t, "404", html)
	if !strings.Contains(html, "Seite nicht gefunden") || !strings.Contains(html, `href="/"`) {
		t.Errorf("404 page does not say what happened and where to go: %s", html)
	}
	s.App().Get("/kaputt", func(c *fiber.Ctx) error { return io.ErrUnexpectedEOF })
	resp, html = get(t, s, "/kaputt")
	if resp.StatusCode != 500 || !strings.Contains(html, "Ein Fehler ist aufgetreten") || !strings.Contains(html, resp.Header.Get("X-Request-ID")) {
		t.Errorf("500 page: %d %s", resp.StatusCode, html)
	}
	if strings.Contains(html, "unexpected EOF") {
		t.Errorf("500 page leaks the internal error")
	}
	for _, tc := range []struct{ path, accept string }{
		{"/api/gibt-es-nicht", "text/html"},
		{"/gibt-es-nicht", "application/json"},
		{"/gibt-es-nicht", ""},
	} {
		req := httptest.NewRequest("GET", tc.path, nil)
		if tc.accept != "" {
			req.Header.Set("Accept", tc.accept)
		}
		resp, err := s.App().Test(req)
		if err != nil {
			t.Fatal(err)
		}
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 404 || ct != "application/problem+json" {
			t.Errorf("%s (Accept %q): %d %s, want problem+json", tc.path, tc.accept, resp.StatusCode, ct)
		}
	}
}

// No template may contain inline script, inline style or event handler
// attributes: the CSP would silently block them in the browser.
func TestTemplatesHaveNoInlineCode(t *testing.T) {
	err := fs.WalkDir(templateFS, "templates", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := fs.ReadFile(templateFS, p)
		if err != nil {
			return err
		}
		src := string(raw)
		if reStyleAttr.MatchString(src) || reStyleTag.MatchString(src) || reOnAttr.MatchString(src) {
			t.Errorf("%s: inline style or event handler", p)
		}
		for _, tag := range reScriptTag.FindAllString(src, -1) {
			if !strings.Contains(tag, "src=") {
				t.Errorf("%s: inline script %s", p, tag)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestGermanSize(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{{-1, "unbekannt"}, {0, "0 Bytes"}, {999, "999 Bytes"}, {1500, "2 KB"}, {2_400_000, "2,4 MB"}, {3_210_000_000, "3,21 GB"}} {
		if got := germanSize(tc.n); got != tc.want {
			t.Errorf("germanSize(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}
