//go:build integration

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"postbox/bench"
	"postbox/storage/storagetest"
)

// "postbox bench --quick" runs every step against the real services with
// tiny sizes, writes its section into an existing BENCHMARKS.md (keeping
// the hand-written text) and the upload plot. The test checks that every
// step produced numbers, not how fast anything was.
func TestBenchQuickRunsEveryStep(t *testing.T) {
	bin := postboxBinary(t)
	dir := t.TempDir()
	md, svg := filepath.Join(dir, "BENCHMARKS.md"), filepath.Join(dir, "bench", "upload.svg")
	if err := os.MkdirAll(filepath.Dir(svg), 0o755); err != nil {
		t.Fatal(err)
	}
	const handWritten = "# Benchmarks\n\nEach section belongs to one area.\n\n## Login (auth)\n\nhand-written table stays\n"
	if err := os.WriteFile(md, []byte(handWritten), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}
	for _, name := range []string{"POSTBOX_TEST_PG_DSN", "POSTBOX_TEST_MINIO_ENDPOINT", "POSTBOX_TEST_MINIO_ACCESS_KEY",
		"POSTBOX_TEST_MINIO_SECRET_KEY", "POSTBOX_TEST_CLICKHOUSE_ADDR", "POSTBOX_SERVICES_DIR"} {
		env = append(env, name+"="+storagetest.Service(t, name))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "bench", "--quick", "--runs", "2", "--markdown", md, "--svg", svg)
	cmd.Dir, cmd.Env = dir, env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("postbox bench --quick: %v\n%s", err, stderr.String())
	}

	doc, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	if !strings.Contains(text, "hand-written table stays") || !strings.HasPrefix(text, "# Benchmarks\n") {
		t.Errorf("the hand-written part of BENCHMARKS.md was not kept:\n%s", text)
	}
	if !strings.Contains(text, bench.BeginMarker) || !strings.Contains(text, bench.EndMarker) {
		t.Fatalf("no generated section in BENCHMARKS.md:\n%s", text)
	}
	if !strings.Contains(string(stdout), bench.BeginMarker) {
		t.Errorf("the section was not printed on stdout")
	}
	for _, want := range []string{"Load average (1/5/15 min) before:", "cores", "PostgreSQL", "@tus/server", "upload.svg"} {
		if !strings.Contains(text, want) {
			t.Errorf("section lacks %q", want)
		}
	}
	// Each step has table rows whose min, median and max are numbers.
	row := func(step, figure string) *regexp.Regexp {
		return regexp.MustCompile(`(?m)^\| ` + step + ` \| [^|]*` + regexp.QuoteMeta(figure) + `[^|]*\| [0-9.,]+ \| \*\*[0-9.,]+\*\* \| [0-9.,]+ \|`)
	}
	for _, c := range []struct{ step, figure string }{
		{"upload", "postbox 8 × 1 MiB, 1 stream, one PATCH per file"},
		{"upload", "postbox 8 × 1 MiB, 8 streams, chunk 512 KiB"},
		{"upload", "postbox 12 MiB, 2 streams, chunk 1 MiB"},
		{"upload", "direct PutObject 8 × 1 MiB, 1 stream"},
		{"upload", "direct PutObject 12 MiB, 1 stream, 5 MiB parts"},
		{"upload", "direct PutObject 12 MiB, 1 stream, as 1 MiB objects"},
		{"upload", "direct PutObject 12 MiB, 2 streams"},
		{"upload", "peer @tus/server 8 × 1 MiB, 8 streams, chunk 5 MiB"},
		{"upload", "peer @tus/server 12 MiB, 2 streams, chunk 5 MiB"},
		{"upload", "ratio postbox/direct"},
		{"upload", "ratio postbox/direct with 5 MiB parts 12 MiB"},
		{"upload", "ratio postbox/direct as 1 MiB objects 12 MiB"},
		{"upload", "ratio postbox/peer"},
		{"memory", "peak RSS, parallel uploads"},
		{"memory", "peak RSS, one 16 MiB upload"},
		{"events", "ingest outbox → ClickHouse"},
		{"events", "query p95: one Vorgang's history"},
		{"notifications", "mails/s accepted by maildev, live"},
		{"notifications", "commit → SMTP accept p99"},
		{"logins", "logins/s, password + mTAN"},
		{"logins", "login p99, password"},
		{"mixed", "1 instance: requests/s"},
		{"mixed", "3 instances: p99 POST /api/postfach/threads/:id/messages"},
		{"mixed", "3 instances: p50 PATCH /api/uploads/:id"},
		{"mixed", "1 instance: p99 POST /api/auth/login"},
	} {
		if !row(c.step, c.figure).MatchString(text) {
			t.Errorf("no row with numbers for %s / %q", c.step, c.figure)
		}
	}
	// The quick run sees no errors in the mixed load: a failing route
	// there means a broken request, not a slow machine.
	if m := regexp.MustCompile(`(?m)^\| mixed \| \d instances?: errors \| (\S+) \|`).FindAllStringSubmatch(text, -1); len(m) != 2 || m[0][1] != "0" || m[1][1] != "0" {
		t.Errorf("mixed load errors: %v", m)
	}
	if !regexp.MustCompile(`(?m)^\| POST /api/uploads \| [0-9.,]+ / [0-9.,]+, \d+ req, 0 err \| [0-9.,]+ / [0-9.,]+, \d+ req, 0 err \|$`).MatchString(text) {
		t.Errorf("no per-route row of the mixed load for both instance counts")
	}
	if strings.Contains(text, "Steps that failed") {
		t.Errorf("a step failed:\n%s", stderr.String())
	}

	plot, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	p := string(plot)
	if !strings.HasPrefix(p, "<svg ") || !strings.HasSuffix(strings.TrimSpace(p), "</svg>") {
		t.Fatalf("not an SVG document: %.200s", p)
	}
	for _, who := range []string{"postbox (tus):", "direct PutObject:", "peer @tus/server + s3-store:"} {
		// one bar per group: 10 groups (workload × chunk size) in the quick plan
		if n := strings.Count(p, "<title>"+who); n != 10 {
			t.Errorf("%d bars for %q, want 10", n, who)
		}
	}
	for _, group := range []string{"8 × 1 MiB", "12 MiB", "1 stream", "8 parallel", "2 parallel", "chunk 512 KiB", "chunk 1 MiB", "chunk 5 MiB", "one PATCH per file"} {
		if !strings.Contains(p, ">"+group+"<") {
			t.Errorf("plot lacks the group label %q", group)
		}
	}
}
