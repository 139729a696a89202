package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"slices"
	"testing"
)

// /readyz names what is down; with ?require=… only the named checks decide
// the status (a readiness probe that ignores the outbox-buffered parts).
func TestReadyzRequire(t *testing.T) {
	up := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("dial tcp: connection refused") }
	s := New(Options{Checks: []Check{{"postgres", up}, {"minio", up}, {"clickhouse", down}, {"smtp", down}}})
	for _, tc := range []struct {
		url    string
		status int
	}{
		{"/readyz", 503},
		{"/readyz?require=postgres,minio", 200},
		{"/readyz?require=postgres,smtp", 503},
		{"/readyz?require=postgres,redis", 400},
	} {
		resp, err := s.App().Test(httptest.NewRequest("GET", tc.url, nil), 10000)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Down []string `json:"down"`
		}
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", tc.url, resp.StatusCode, tc.status)
		}
		if tc.status != 400 && !slices.Equal(body.Down, []string{"clickhouse", "smtp"}) {
			t.Errorf("%s: down = %v, want both outbox-buffered parts named", tc.url, body.Down)
		}
	}
}
