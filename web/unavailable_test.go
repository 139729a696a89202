package web

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
)

var errDown = errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")

// A handler error that Options.Unavailable recognises answers 503 with
// Retry-After and a German problem, other errors stay 500.
func TestUnavailableDependencyAnswers503(t *testing.T) {
	s := New(Options{Unavailable: func(err error) bool { return errors.Is(err, errDown) }})
	s.App().Get("/down", func(c *fiber.Ctx) error { return errDown })
	s.App().Get("/bug", func(c *fiber.Ctx) error { return errors.New("nil map") })
	for _, tc := range []struct {
		path       string
		status     int
		retryAfter string
		title      string
	}{
		{"/down", 503, RetryAfterUnavailable, "Dienst vorübergehend nicht verfügbar"},
		{"/bug", 500, "", "Interner Fehler"},
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
