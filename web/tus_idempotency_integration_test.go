//go:build integration

package web

import "testing"

// TestTusIdempotencyServer runs the Idempotency-Key cases on PostgreSQL
// (the person lock is FOR UPDATE there) and MinIO.
func TestTusIdempotencyServer(t *testing.T) {
	runTusIdempotencyCases(t, serverBackend)
}
