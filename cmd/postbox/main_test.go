package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"postbox/auth"
	"postbox/intake"
	"postbox/storage/sqlite"
)

func envFrom(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestBrokenSettingStopsStartWithOneLine(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		wantEnv string
	}{
		{"malformed minio endpoint", nil, map[string]string{"POSTBOX_S3_ENDPOINT": "http//minio:9000", "POSTBOX_S3_ACCESS_KEY": "a", "POSTBOX_S3_SECRET_KEY": "b"}, "POSTBOX_S3_ENDPOINT"},
		{"minio endpoint with scheme", []string{"--s3-endpoint", "http://127.0.0.1:9000"}, nil, "POSTBOX_S3_ENDPOINT"},
		{"minio endpoint without port", nil, map[string]string{"POSTBOX_S3_ENDPOINT": "minio.local"}, "POSTBOX_S3_ENDPOINT"},
		{"minio without keys", nil, map[string]string{"POSTBOX_S3_ENDPOINT": "127.0.0.1:9000"}, "POSTBOX_S3_ACCESS_KEY"},
		{"database not postgres", nil, map[string]string{"POSTBOX_DATABASE_URL": "mysql://u:p@h/db"}, "POSTBOX_DATABASE_URL"},
		{"clickhouse port out of range", nil, map[string]string{"POSTBOX_CLICKHOUSE_ADDR": "127.0.0.1:99999"}, "POSTBOX_CLICKHOUSE_ADDR"},
		{"smtp without port", nil, map[string]string{"POSTBOX_SMTP_ADDR": "mail"}, "POSTBOX_SMTP_ADDR"},
		{"short secret key", nil, map[string]string{"POSTBOX_SECRET_KEY": "abcd"}, "POSTBOX_SECRET_KEY"},
		{"bad duration", []string{"--shutdown-timeout", "soon"}, nil, "POSTBOX_SHUTDOWN_TIMEOUT"},
		{"bad log level", nil, map[string]string{"POSTBOX_LOG_LEVEL": "loud"}, "POSTBOX_LOG_LEVEL"},
		{"relative base url", nil, map[string]string{"POSTBOX_BASE_URL": "postfach.example.de"}, "POSTBOX_BASE_URL"},
		{"bad bucket", nil, map[string]string{"POSTBOX_S3_BUCKET": "My_Bucket"}, "POSTBOX_S3_BUCKET"},
		{"deleted objects kept for no time", []string{"--s3-keep-deleted-days", "0"}, nil, "POSTBOX_S3_KEEP_DELETED_DAYS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			env := map[string]string{"POSTBOX_DATA_DIR": t.TempDir()}
			for k, v := range tc.env {
				env[k] = v
			}
			code := run(context.Background(), append([]string{"serve"}, tc.args...), envFrom(env), &stdout, &stderr)
			if code == 0 {
				t.Fatal("started with a broken setting")
			}
			out := strings.TrimSpace(stderr.String())
			if strings.Count(out, "\n") != 0 {
				t.Fatalf("want one line, got:\n%s", out)
			}
			if !strings.Contains(out, tc.wantEnv) || !strings.HasPrefix(out, "postbox: invalid configuration:") {
				t.Fatalf("line does not name %s: %q", tc.wantEnv, out)
			}
			if strings.Contains(out, "panic") || strings.Contains(out, "goroutine") {
				t.Fatalf("panicked: %s", out)
			}
		})
	}
}

func TestSecretsAreNotEchoed(t *testing.T) {
	var stderr bytes.Buffer
	env := map[string]string{"POSTBOX_DATA_DIR": t.TempDir(), "POSTBOX_DATABASE_URL": "postgres://u:topsecretpw@host:notaport/db"}
	if code := run(context.Background(), []string{"serve"}, envFrom(env), &bytes.Buffer{}, &stderr); code == 0 {
		t.Fatal("started with a broken database URL")
	}
	if strings.Contains(stderr.String(), "topsecretpw") {
		t.Fatalf("password shown in error: %s", stderr.String())
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// syncBuffer is written by the server goroutine and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type running struct {
	addr           string
	stdout, stderr *syncBuffer
	stop           context.CancelFunc
	done           chan int
}

// startServe runs "postbox serve" in process and waits until it listens.
func startServe(t *testing.T, args []string, env map[string]string) *running {
	t.Helper()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{addr: addr, stdout: &syncBuffer{}, stderr: &syncBuffer{}, stop: cancel, done: make(chan int, 1)}
	env["POSTBOX_LISTEN"] = addr
	go func() { r.done <- run(ctx, append([]string{"serve"}, args...), envFrom(env), r.stdout, r.stderr) }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case code := <-r.done:
			t.Fatalf("serve exited with %d:\n%s", code, r.stderr.String())
		default:
		}
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			t.Cleanup(func() { r.shutdown(t) })
			return r
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("serve did not listen within 60 s:\n%s", r.stderr.String())
	return nil
}

func (r *running) shutdown(t *testing.T) {
	r.stop()
	select {
	case code := <-r.done:
		if code != 0 {
			t.Errorf("serve exited with %d after shutdown:\n%s", code, r.stderr.String())
		}
	case <-time.After(40 * time.Second):
		t.Error("serve did not stop within 40 s")
	}
	r.stop = func() {}
	r.done = make(chan int, 1)
	r.done <- 0
}

type readiness struct {
	Status string   `json:"status"`
	Down   []string `json:"down"`
	Checks []struct {
		Name, Status, Error string
	} `json:"checks"`
}

func getReady(t *testing.T, addr string) (int, readiness) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r readiness
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("readyz body: %v", err)
	}
	return resp.StatusCode, r
}

var loginLine = regexp.MustCompile(`(?m)^  (.+?)\s{2,}(\S+)\s+(\S+)$`)
var pinLine = regexp.MustCompile(`Einmal-PIN .*\(KVNR (\w+)\): ([A-Z0-9-]+) — gültig bis (\d\d\.\d\d\.\d{4})`)

func TestEmbeddedDemoServes(t *testing.T) {
	dir := t.TempDir()
	r := startServe(t, []string{"--demo"}, map[string]string{"POSTBOX_DATA_DIR": dir})

	code, ready := getReady(t, r.addr)
	if code != 200 || ready.Status != "ready" {
		t.Fatalf("readyz = %d %+v", code, ready)
	}
	names := map[string]bool{}
	for _, c := range ready.Checks {
		names[c.Name] = true
	}
	for _, want := range []string{"sqlite", "blobs", "events", "mail"} {
		if !names[want] {
			t.Errorf("readyz does not check %s: %+v", want, ready.Checks)
		}
	}
	for _, f := range []string{"postbox.db", "secret.key", "blobs", "mail"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("embedded default did not create %s: %v", f, err)
		}
	}
	resp, err := http.Get("http://" + r.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"postbox_http_requests_total", "postbox_outbox_depth", "postbox_http_request_duration_seconds"} {
		if !strings.Contains(body.String(), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}

	out := r.stdout.String()
	logins := loginLine.FindAllStringSubmatch(out, -1)
	pin := pinLine.FindStringSubmatch(out)
	r.shutdown(t) // release the database before reading it

	if len(logins) < 5 { // header + four roles
		t.Fatalf("demo printed %d login lines:\n%s", len(logins), out)
	}
	if pin == nil {
		t.Fatalf("demo printed no Einmal-PIN:\n%s", out)
	}
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "postbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	roles := map[auth.Role]bool{}
	for _, l := range logins[1:] {
		acc, err := db.AccountByUsername(ctx, demoKasseID, l[2])
		if err != nil {
			t.Fatalf("printed login %q does not exist: %v", l[2], err)
		}
		ok, err := auth.VerifySecret(l[3], acc.PasswordHash)
		if err != nil || !ok {
			t.Fatalf("printed password of %q does not match the stored hash", l[2])
		}
		roles[acc.Role] = true
	}
	for _, role := range []auth.Role{auth.RoleInsured, auth.RoleCaseworker, auth.RoleAuditor, auth.RoleProviderAdmin} {
		if !roles[role] {
			t.Errorf("no demo login with role %s", role)
		}
	}
	// The printed PIN is stored only as its keyed hash, and is valid.
	master, _ := os.ReadFile(filepath.Join(dir, "secret.key"))
	k, _ := decodeKey(strings.TrimSpace(string(master)))
	hash := intake.NewPINHasher(deriveKeys(k).pin).Hash(demoKasseID, pin[2])
	var expires int64
	var used *int64
	if err := db.DB().QueryRow(`SELECT expires_at, used_at FROM einmal_pins WHERE pin_hash = ?`, hash).Scan(&expires, &used); err != nil {
		t.Fatalf("printed PIN not found by its hash: %v", err)
	}
	if used != nil || time.UnixMicro(expires).Before(time.Now().Add(59*24*time.Hour)) {
		t.Fatalf("printed PIN not valid for 60 days: expires %v used %v", time.UnixMicro(expires), used)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "postbox.db"))
	if bytes.Contains(raw, []byte(strings.ReplaceAll(pin[2], "-", ""))) {
		t.Fatal("the PIN itself is stored in the database")
	}

	// A second start keeps the data and prints fresh, working passwords.
	r2 := startServe(t, []string{"--demo"}, map[string]string{"POSTBOX_DATA_DIR": dir})
	if code, _ := getReady(t, r2.addr); code != 200 {
		t.Fatalf("second start not ready: %d", code)
	}
	if !strings.Contains(r2.stdout.String(), "erika") {
		t.Fatalf("second start printed no logins:\n%s", r2.stdout.String())
	}
}
