// Package storagetest holds the contract suites every storage backend must
// pass, so the embedded default and the server backends behave the same.
package storagetest

import (
	"os"
	"testing"
)

// Service returns the address or DSN of a real service from the environment
// variable name. ./deploy/test starts the services and sets these variables.
// A test that needs a service fails when it is missing; it never skips, so CI
// cannot turn green without the real service.
func Service(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: this test needs the real service; run ./deploy/test, which installs and starts it", name)
	}
	return v
}
