package main

import (
	"os"
	"strings"
	"testing"
)

// The README's settings table is what "postbox config" prints; this keeps the
// documentation true when a setting is added or changed.
func TestREADMEListsEverySetting(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), configTable()) {
		t.Fatal("README.md settings table is out of date: paste the output of `go run ./cmd/postbox config`")
	}
	// Exactly two commands open it: the code block holds these two lines.
	lines := strings.SplitN(string(raw), "\n", 7)
	if lines[2] != "```sh" || !strings.HasPrefix(lines[3], "go run ./cmd/postbox serve") || !strings.HasPrefix(lines[4], "./deploy/test") || lines[5] != "```" {
		t.Fatalf("README must open with exactly the two commands, got:\n%s", strings.Join(lines[:6], "\n"))
	}
}
