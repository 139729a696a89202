package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"postbox/notifier"
	"postbox/storage/sqldb"
	"postbox/storage/sqlite"
)

func TestPostfachSettingsAreChecked(t *testing.T) {
	for _, tc := range []struct{ env, value string }{
		{"POSTBOX_MAIL_MAX_ATTEMPTS", "0"},
		{"POSTBOX_MAIL_MAX_ATTEMPTS", "viele"},
		{"POSTBOX_MAIL_RETRY_BASE", "-1s"},
		{"POSTBOX_MAIL_RETRY_MAX", "bald"},
		{"POSTBOX_MAIL_COALESCE_WINDOW", "0"},
		{"POSTBOX_POSTFACH_MAX_ATTACHMENTS", "0"},
		{"POSTBOX_POSTFACH_MAX_TEXT", "10"},
	} {
		t.Run(tc.env+"="+tc.value, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"serve"}, envFrom(map[string]string{"POSTBOX_DATA_DIR": t.TempDir(), tc.env: tc.value}), &stdout, &stderr)
			out := strings.TrimSpace(stderr.String())
			if code != 2 || strings.Count(out, "\n") != 0 || !strings.Contains(out, tc.env) {
				t.Fatalf("exit %d, stderr:\n%s", code, out)
			}
		})
	}
}

// The embedded default serves the Postfach API and runs its notifier: a
// queued notification becomes an .eml file in DATA_DIR/mail.
func TestServeRunsThePostfachAndItsNotifier(t *testing.T) {
	dir := t.TempDir()
	r := startServe(t, []string{"--demo"}, map[string]string{"POSTBOX_DATA_DIR": dir})
	resp, err := http.Get("http://" + r.addr + "/api/postfach/threads")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("Postfach without login: %d, want 401", resp.StatusCode)
	}
	// A second connection to the same file, as another replica would have.
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "postbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var job notifier.Job
	err = db.InTx(context.Background(), func(tx *sqldb.Tx) error {
		job, err = tx.EnqueueMail(context.Background(), notifier.Job{TenantID: demoKasseID, Recipient: "erika@example.org", Template: notifier.TemplateNewMessage,
			Data: map[string]string{notifier.DataKasseName: "Demo-Krankenkasse", notifier.DataPortalURL: "http://" + r.addr}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	eml, err := notifier.NewEMLDir(filepath.Join(dir, "mail"))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		raw, err := os.ReadFile(eml.Path(job.MessageID))
		if err == nil {
			if !bytes.Contains(raw, []byte("Message-ID: "+job.MessageID)) {
				t.Fatal("written mail lacks the job's Message-ID")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no .eml after 10 s: %v\n%s", err, r.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The worker writes the file first and records the delivery right after.
	for {
		got, err := db.MailJob(context.Background(), job.ID)
		if err == nil && got.Status == notifier.StatusSent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job not marked sent after 10 s: %+v, %v", got, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
