//go:build !integration

package auth_test

// Without the integration tag the service tests need no running service:
// they run on SQLite only. ./deploy/test runs them with the tag, on both.
var backends = []backend{{"sqlite", openSQLite}}
