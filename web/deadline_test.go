package web

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
)

// A handler waiting on a dependency that never answers is ended by the
// request deadline and answered with the 503 of Options.Unavailable; a
// streamed upload body gets no deadline (it may legitimately take long),
// and a streamed answer keeps its context after the handler returned.
func TestRequestDeadline(t *testing.T) {
	s := quietServer(Options{RequestTimeout: 50 * time.Millisecond, Unavailable: func(err error) bool { return errors.Is(err, context.DeadlineExceeded) }})
	hang := func(c *fiber.Ctx) error {
		select {
		case <-c.UserContext().Done():
			return c.UserContext().Err()
		case <-time.After(2 * time.Second):
			return c.SendString("no deadline")
		}
	}
	s.App().Get("/hang", hang)
	s.App().Post("/hang", hang)
	s.App().Get("/stream", func(c *fiber.Ctx) error {
		ctx := c.UserContext()
		c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
			time.Sleep(100 * time.Millisecond) // past the deadline
			if ctx.Err() != nil {
				w.WriteString("cut: " + ctx.Err().Error())
				return
			}
			w.WriteString("whole")
		})
		return nil
	})
	for _, tc := range []struct {
		name, method, path, contentType string
		body                            []byte
		want                            int
		wantBody                        string
	}{
		{"page or API call", "GET", "/hang", "", nil, http.StatusServiceUnavailable, "vorübergehend nicht verfügbar"},
		{"form", "POST", "/hang", fiber.MIMEApplicationForm, []byte("a=b"), http.StatusServiceUnavailable, "vorübergehend nicht verfügbar"},
		{"JSON", "POST", "/hang", fiber.MIMEApplicationJSON, []byte(`{}`), http.StatusServiceUnavailable, "vorübergehend nicht verfügbar"},
		{"streamed upload", "POST", "/hang", "application/offset+octet-stream", []byte("data"), http.StatusOK, "no deadline"},
		{"streamed answer", "GET", "/stream", "", nil, http.StatusOK, "whole"},
	} {
		req := httptest.NewRequest(tc.method, tc.path, bytes.NewReader(tc.body))
		if tc.contentType != "" {
			req.Header.Set("Content-Type", tc.contentType)
		}
		resp, err := s.App().Test(req, 10000)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want || !bytes.Contains(body, []byte(tc.wantBody)) {
			t.Fatalf("%s: %d %s, want %d with %q", tc.name, resp.StatusCode, body, tc.want, tc.wantBody)
		}
	}
}
