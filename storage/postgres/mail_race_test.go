//go:build integration

package postgres

import (
	"context"
	"testing"
	"time"

	"postbox/notifier"
	"postbox/storage/sqldb"
	"postbox/storage/storagetest"
)

// A notification that arrives while a worker is claiming the waiting one
// must wait for the window after it, not go out in the same second. The
// claim is held open by hand so the race happens every time: PostgreSQL
// makes the new INSERT wait for the claim's row lock, after which there is
// no pending job left to fold into.
func TestNotificationDuringClaimWaitsForTheWindow(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, storagetest.FreshPostgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ms, err := sqldb.Migrations(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Migrate(ctx, ms); err != nil {
		t.Fatal(err)
	}
	const window = 15 * time.Minute
	enqueue := func() notifier.Job {
		var j notifier.Job
		err := s.InTx(ctx, func(tx *sqldb.Tx) error {
			var err error
			j, err = tx.EnqueueMail(ctx, notifier.Job{TenantID: "k", Recipient: "p@example.org", Template: notifier.TemplateNewMessage,
				Data: map[string]string{notifier.DataKasseName: "K"}, PersonID: "p", CoalesceKey: "person:k:p", CoalesceWindow: window})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	first := enqueue()

	// A worker's claim, not yet committed.
	claim, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	claimedAt := time.Now()
	if _, err := claim.ExecContext(ctx, `UPDATE mail_outbox SET status = 'sending', claim_token = 'w', lease_until = $1 WHERE id = $2`,
		claimedAt.Add(time.Minute).UnixMicro(), first.ID); err != nil {
		t.Fatal(err)
	}
	got := make(chan notifier.Job, 1)
	go func() { got <- enqueue() }()
	time.Sleep(300 * time.Millisecond) // the INSERT now waits for the claim's lock
	if err := claim.Commit(); err != nil {
		t.Fatal(err)
	}
	second := <-got
	if second.ID == first.ID {
		t.Fatalf("folded into the job being sent: %+v", second)
	}
	stored, err := s.MailJob(ctx, second.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !stored.NextAttemptAt.After(claimedAt.Add(window - time.Minute)) {
		t.Fatalf("the new notification is due at %v, while the one being sent was due at %v: two mails within the %v window",
			stored.NextAttemptAt, first.NextAttemptAt, window)
	}
	if !second.NextAttemptAt.Equal(stored.NextAttemptAt) {
		t.Errorf("EnqueueMail reports %v, the row holds %v", second.NextAttemptAt, stored.NextAttemptAt)
	}
}
