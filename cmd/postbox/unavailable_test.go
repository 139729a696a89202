package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	miniogo "github.com/minio/minio-go/v7"
)

// Which errors answer 503 (a dependency is away, try again) and which stay
// 500 (a bug or a refused statement, retrying does not help).
func TestDependencyDown(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain bug", errors.New("upload abc: parts hold 3 bytes, length is 4"), false},
		{"connection refused, wrapped twice", fmt.Errorf("get pin session: %w", fmt.Errorf("query: %w", dial)), true},
		{"connection reset", fmt.Errorf("put part 2: %w", syscall.ECONNRESET), true},
		{"database dial timeout", fmt.Errorf("get pin session: %w", &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}), true},
		{"minio read timeout", fmt.Errorf("put part 2: %w", &url.Error{Op: "Put", URL: "http://minio:9000/b/k", Err: &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}}), true},
		{"client's stalled body", fmt.Errorf("read form: %w", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}), false},
		{"postgres shutting down", fmt.Errorf("x: %w", &pgconn.PgError{Code: "57P01"}), true},
		{"postgres starting up", &pgconn.PgError{Code: "57P03"}, true},
		{"postgres unique violation", fmt.Errorf("insert: %w", &pgconn.PgError{Code: "23505"}), false},
		{"postgres connection cut mid-query", fmt.Errorf("mark events shipped: %w", errors.New("unexpected EOF")), true},
		{"minio busy", fmt.Errorf("put: %w", miniogo.ErrorResponse{StatusCode: 503, Code: "SlowDown"}), true},
		{"minio access denied", fmt.Errorf("put: %w", miniogo.ErrorResponse{StatusCode: 403, Code: "AccessDenied"}), false},
	} {
		if got := dependencyDown(tc.err); got != tc.want {
			t.Errorf("%s: dependencyDown(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
