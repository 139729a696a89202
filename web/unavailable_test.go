package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
)

// errDown is a backend that did not answer in time: a net.Error timeout,
// like a client's stalled body, yet a 503.
var errDown = fmt.Errorf("get pin session: %w", &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded})

// A handler error that Options.Unavailable recognises answers 503 with
// Retry-After and a German problem, other errors stay 500.
func TestUnavailableDependencyAnswers503(t *testing.T) {
	s := New(Options{Unavailable: func(err error) bool { return errors.Is(err, errDown) }})
	s.App().Get("/down", func(c *fiber.Ctx) error { return errDown })
	s.App().Get("/bug", func(c *fiber.Ctx) error { return errors.New("nil map") })
	s.App().Get("/slow", func(c *fiber.Ctx) error {
		return fmt.Errorf("read form: %w", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded})
	})
	for _, tc := range []struct {
		path       string
		status     int
		retryAfter string
		title      string
	}{
		{"/down", 503, RetryAfterUnavailable, "Dienst vorübergehend nicht verfügbar"},
		{"/bug", 500, "", "Interner Fehler"},
		{"/slow", 408, "", "Zeitüberschreitung"},
	} {
		resp, err := s.App().Test(httptest.NewRequest("GET", tc.path, nil))
		if err != nil {
			t.Fatal(err)
		}
		var p Problem
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Retry-After") != tc.retryAfter || p.Title != tc.title ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
			t.Errorf("%s: %d Retry-After %q %+v", tc.path, resp.StatusCode, resp.Header.Get("Retry-After"), p)
		}
		if tc.status == 503 && (!strings.Contains(p.Detail, "nichts verloren") || p.RequestID == "") {
			t.Errorf("%s: detail %q does not reassure the user or lacks the request id", tc.path, p.Detail)
		}
	}
}

// An upload refused with 503 before anything read its body (the session
// lookup failed) still reaches the client, which is sending the body at
// that moment: a small rest is drained, a large one closed lingering.
func TestUnavailableAnswerReachesAClientStillSending(t *testing.T) {
	s := New(Options{Unavailable: func(err error) bool { return errors.Is(err, errDown) }})
	s.App().Patch("/up", func(c *fiber.Ctx) error { return errDown })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	defer s.Shutdown(context.Background())
	for _, size := range []int{6 << 20, 48 << 20} {
		req, err := http.NewRequest("PATCH", "http://"+ln.Addr().String()+"/up", bytes.NewReader(make([]byte, size)))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%d MiB body: the client got no answer: %v", size>>20, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("%d MiB body: %d, want 503", size>>20, resp.StatusCode)
		}
	}
}
