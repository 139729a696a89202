package main

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"net"
	"net/url"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	miniogo "github.com/minio/minio-go/v7"
)

// dependencyDown reports whether err means a backend (PostgreSQL, MinIO,
// SQLite's disk) cannot be reached right now rather than a bug or bad
// input: the request is answered 503 with Retry-After, and the client tries
// again once /readyz is green. Only cmd/postbox knows the drivers, so the
// classification lives here and is handed to web and intake.
func dependencyDown(err error) bool {
	if err == nil {
		return false
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, sql.ErrConnDone), errors.Is(err, driver.ErrBadConn):
		return true
	}
	// Outbound only: a dial is always postbox reaching a backend, and the
	// HTTP client (MinIO) wraps its failures in *url.Error. A read timeout
	// on its own may be the client's stalled body (408, web decides).
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return true
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return true
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// 08: connection exception; 57P01-57P05: the server shuts down,
		// crashed, or does not accept connections yet.
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P")
	}
	if pgconn.Timeout(err) || pgconn.SafeToRetry(err) {
		return true
	}
	var s3Err miniogo.ErrorResponse
	if errors.As(err, &s3Err) {
		return s3Err.StatusCode == 503 || s3Err.Code == "XMinioServerNotInitialized" || s3Err.Code == "SlowDown"
	}
	// pgx reports a connection cut in the middle of a query this way.
	return strings.Contains(err.Error(), "conn closed") || strings.Contains(err.Error(), "unexpected EOF")
}
