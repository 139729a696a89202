//go:build integration

package main

import (
	"net/http"
	"slices"
	"testing"

	"postbox/storage/storagetest"
)

// serverEnv points every backend at the real services ./deploy/test started.
func serverEnv(t *testing.T) map[string]string {
	return map[string]string{
		"POSTBOX_DATA_DIR":        t.TempDir(),
		"POSTBOX_DATABASE_URL":    storagetest.FreshPostgres(t),
		"POSTBOX_S3_ENDPOINT":     storagetest.Service(t, "POSTBOX_TEST_MINIO_ENDPOINT"),
		"POSTBOX_S3_ACCESS_KEY":   storagetest.Service(t, "POSTBOX_TEST_MINIO_ACCESS_KEY"),
		"POSTBOX_S3_SECRET_KEY":   storagetest.Service(t, "POSTBOX_TEST_MINIO_SECRET_KEY"),
		"POSTBOX_S3_BUCKET":       "postbox-cmd-test",
		"POSTBOX_CLICKHOUSE_ADDR": storagetest.Service(t, "POSTBOX_TEST_CLICKHOUSE_ADDR"),
		"POSTBOX_SMTP_ADDR":       storagetest.Service(t, "POSTBOX_TEST_SMTP_ADDR"),
		"POSTBOX_SECRET_KEY":      "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
	}
}

func TestServerModeReady(t *testing.T) {
	r := startServe(t, []string{"--demo"}, serverEnv(t))
	code, ready := getReady(t, r.addr)
	if code != http.StatusOK || ready.Status != "ready" {
		t.Fatalf("readyz = %d %+v", code, ready)
	}
	var names []string
	for _, c := range ready.Checks {
		names = append(names, c.Name)
	}
	for _, want := range []string{"postgres", "minio", "clickhouse", "smtp"} {
		if !slices.Contains(names, want) {
			t.Errorf("readyz does not check %s: %v", want, names)
		}
	}
}

// With ClickHouse gone the service still starts and serves (events wait in
// the outbox); /readyz answers 503 naming clickhouse while /healthz stays 200.
func TestServerModeClickHouseDown(t *testing.T) {
	env := serverEnv(t)
	env["POSTBOX_CLICKHOUSE_ADDR"] = freeAddr(t) // nothing listens there
	r := startServe(t, nil, env)
	code, ready := getReady(t, r.addr)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("readyz = %d, want 503: %+v", code, ready)
	}
	if !slices.Equal(ready.Down, []string{"clickhouse"}) {
		t.Fatalf("down = %v, want [clickhouse]", ready.Down)
	}
	resp, err := http.Get("http://" + r.addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz = %d with clickhouse down, want 200", resp.StatusCode)
	}
}
