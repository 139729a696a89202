package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
)

func quietServer(opts Options) *Server {
	opts.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	return New(opts)
}

func TestReadyzNamesWhatIsDown(t *testing.T) {
	for _, tc := range []struct {
		name     string
		checks   []Check
		wantCode int
		wantDown []string
	}{
		{"all up", []Check{{"postgres", ok}, {"minio", ok}}, 200, []string{}},
		{"clickhouse down", []Check{{"postgres", ok}, {"clickhouse", fail}}, 503, []string{"clickhouse"}},
		{"two down", []Check{{"smtp", fail}, {"clickhouse", fail}, {"minio", ok}}, 503, []string{"clickhouse", "smtp"}},
		{"hanging check times out", []Check{{"minio", hang}}, 503, []string{"minio"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := quietServer(Options{Checks: tc.checks})
			resp, err := s.App().Test(httptest.NewRequest("GET", "/readyz", nil), 10000)
			if err != nil {
				t.Fatal(err)
			}
			var body struct {
				Down []string `json:"down"`
			}
			json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tc.wantCode || strings.Join(body.Down, ",") != strings.Join(tc.wantDown, ",") {
				t.Fatalf("got %d %v, want %d %v", resp.StatusCode, body.Down, tc.wantCode, tc.wantDown)
			}
			h, _ := s.App().Test(httptest.NewRequest("GET", "/healthz", nil))
			if h.StatusCode != 200 {
				t.Fatalf("healthz = %d", h.StatusCode)
			}
		})
	}
}

func ok(context.Context) error   { return nil }
func fail(context.Context) error { return errors.New("connection refused") }
func hang(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

func TestSecurityHeadersAndRequestID(t *testing.T) {
	s := quietServer(Options{HSTS: true})
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("X-Request-ID", "abc") // too short: replaced
	resp, err := s.App().Test(req)
	if err != nil {
		t.Fatal(err)
	}
	for h, want := range map[string]string{
		"Content-Security-Policy":   "frame-ancestors 'none'",
		"X-Content-Type-Options":    "nosniff",
		"Referrer-Policy":           "no-referrer",
		"Strict-Transport-Security": "max-age=",
	} {
		if !strings.Contains(resp.Header.Get(h), want) {
			t.Errorf("%s = %q, want it to contain %q", h, resp.Header.Get(h), want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP allows inline code: %s", csp)
	}
	if id := resp.Header.Get("X-Request-ID"); len(id) < 16 || id == "abc" {
		t.Errorf("request id %q not generated", id)
	}
	req = httptest.NewRequest("GET", "/", nil)
	req.Header.Set("X-Request-ID", "proxy-1234567890")
	resp, _ = s.App().Test(req)
	if resp.Header.Get("X-Request-ID") != "proxy-1234567890" {
		t.Errorf("well-formed request id from proxy not kept")
	}
}

func TestErrorsAreGermanProblemJSON(t *testing.T) {
	s := quietServer(Options{})
	s.App().Get("/boom", func(c *fiber.Ctx) error { return errors.New("db password=hunter2 failed") })
	for _, tc := range []struct {
		path  string
		code  int
		title string
	}{
		{"/does-not-exist", 404, "Nicht gefunden"},
		{"/boom", 500, "Interner Fehler"},
	} {
		resp, err := s.App().Test(httptest.NewRequest("GET", tc.path, nil))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		var p Problem
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatalf("%s: body %q is not JSON", tc.path, raw)
		}
		if resp.StatusCode != tc.code || p.Status != tc.code || p.Title != tc.title || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %q %+v", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), p)
		}
		if strings.Contains(string(raw), "hunter2") {
			t.Errorf("%s: internal error leaked: %s", tc.path, raw)
		}
		if p.RequestID == "" || p.RequestID != resp.Header.Get("X-Request-ID") {
			t.Errorf("%s: problem has request id %q, header %q", tc.path, p.RequestID, resp.Header.Get("X-Request-ID"))
		}
	}
}

// A request in flight when shutdown begins still gets its full answer.
func TestShutdownFinishesInFlightRequests(t *testing.T) {
	s := quietServer(Options{})
	started := make(chan struct{})
	s.App().Get("/slow", func(c *fiber.Ctx) error {
		close(started)
		time.Sleep(500 * time.Millisecond)
		return c.SendString("fertig")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	type result struct {
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/slow")
		if err != nil {
			res <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{body: string(b)}
	}()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	r := <-res
	if r.err != nil || r.body != "fertig" {
		t.Fatalf("in-flight request: %q, %v", r.body, r.err)
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/slow"); err == nil {
		t.Fatal("server still accepts after shutdown")
	}
}

func TestLargeFormBodiesAreRefusedBeforeReading(t *testing.T) {
	s := quietServer(Options{BodyLimit: 1024})
	read := false
	s.App().Post("/form", func(c *fiber.Ctx) error {
		read = true
		return c.SendString(string(c.Body()))
	})
	for _, tc := range []struct {
		name, ctype string
		size        int
		want        int
	}{
		{"small form", "application/x-www-form-urlencoded", 100, 200},
		{"large form", "application/x-www-form-urlencoded", 4096, 413},
		{"large json", "application/json", 4096, 413},
		{"large other body passes to its handler", "application/offset+octet-stream", 4096, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			read = false
			req := httptest.NewRequest("POST", "/form", strings.NewReader(strings.Repeat("a", tc.size)))
			req.Header.Set("Content-Type", tc.ctype)
			resp, err := s.App().Test(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want == 413 && read {
				t.Fatal("handler read the oversized body")
			}
		})
	}
}
