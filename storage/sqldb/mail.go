package sqldb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"postbox/audit"
	"postbox/notifier"
)

// EnqueueMail queues a notification in this transaction (outbox). The
// Message-ID is fixed now, so every later send attempt carries the same one.
//
// With a CoalesceKey the job does not flood its recipient: while a job with
// the key waits (pending), the new one is folded into it (one partial unique
// index makes this hold under concurrency on both databases) and the
// returned job is the waiting one; when the last mail with the key went out
// less than CoalesceWindow ago, the new job waits until the window has
// passed, so at most one mail per window leaves and none is lost.
func (t *Tx) EnqueueMail(ctx context.Context, j notifier.Job) (notifier.Job, error) {
	if j.ID == "" {
		j.ID = uuid.NewString()
	}
	if j.MessageID == "" {
		j.MessageID = "<" + j.ID + "@postbox>"
	}
	now := t.Now()
	j.Status, j.CreatedAt = notifier.StatusPending, now
	if j.NextAttemptAt.IsZero() {
		j.NextAttemptAt = now
	}
	data, err := json.Marshal(j.Data)
	if err != nil {
		return j, fmt.Errorf("encode mail data: %w", err)
	}
	inserted := j.ID
	if j.CoalesceKey == "" {
		_, err = t.exec(ctx, `INSERT INTO mail_outbox (id, tenant_id, recipient, template, data, message_id, status, attempts, next_attempt_at, created_at, person_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9, $10)`,
			j.ID, j.TenantID, j.Recipient, string(j.Template), string(data), j.MessageID, j.Status, micros(j.NextAttemptAt), micros(now), j.PersonID)
		if err != nil {
			return j, fmt.Errorf("enqueue mail: %w", err)
		}
		return j, nil
	}
	var next, created int64
	err = t.queryRow(ctx, `INSERT INTO mail_outbox (id, tenant_id, recipient, template, data, message_id, status, attempts, next_attempt_at, created_at, person_id, coalesce_key)
		VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9, $10, $11)
		ON CONFLICT (coalesce_key) WHERE status = 'pending' AND coalesce_key <> ''
		DO UPDATE SET coalesced = mail_outbox.coalesced + 1, recipient = excluded.recipient, data = excluded.data
		RETURNING id, message_id, next_attempt_at, created_at, coalesced`,
		j.ID, j.TenantID, j.Recipient, string(j.Template), string(data), j.MessageID, j.Status, micros(j.NextAttemptAt), micros(now), j.PersonID, j.CoalesceKey).
		Scan(&j.ID, &j.MessageID, &next, &created, &j.Coalesced)
	if err != nil {
		return j, fmt.Errorf("enqueue mail: %w", err)
	}
	// A new job (not folded) waits for the window after the last mail of
	// its key. This is asked after the INSERT on purpose: if a worker was
	// claiming the waiting job meanwhile, PostgreSQL made the INSERT wait for
	// that claim and then found no pending job to fold into; a check before
	// the INSERT would have seen the job still pending and let the new one
	// go out at once — two mails in the same second.
	if j.CoalesceWindow > 0 && j.Coalesced == 0 && j.ID == inserted {
		var last sql.NullInt64
		if err := t.queryRow(ctx, `SELECT MAX(CASE WHEN sent_at IS NOT NULL THEN sent_at ELSE next_attempt_at END)
			FROM mail_outbox WHERE coalesce_key = $1 AND status IN ('sending', 'sent') AND id <> $2`, j.CoalesceKey, j.ID).Scan(&last); err != nil {
			return j, fmt.Errorf("enqueue mail: last mail of key: %w", err)
		}
		if last.Valid {
			if due := fromMicros(last.Int64).Add(j.CoalesceWindow); due.After(fromMicros(next)) {
				if _, err := t.exec(ctx, `UPDATE mail_outbox SET next_attempt_at = $1 WHERE id = $2`, micros(due), j.ID); err != nil {
					return j, fmt.Errorf("enqueue mail: wait for the window: %w", err)
				}
				next = micros(due)
			}
		}
	}
	j.NextAttemptAt, j.CreatedAt = fromMicros(next), fromMicros(created)
	return j, nil
}

const mailColumns = `id, tenant_id, recipient, template, data, message_id, status, attempts, next_attempt_at, created_at,
	sent_at, last_error, person_id, coalesce_key, coalesced, claim_token, lease_until, reclaimed`

func scanMail(row interface{ Scan(...any) error }) (notifier.Job, error) {
	var (
		j                  notifier.Job
		tmpl, data         string
		next, created, lse int64
		sent               sql.NullInt64
		reclaimed          int
	)
	if err := row.Scan(&j.ID, &j.TenantID, &j.Recipient, &tmpl, &data, &j.MessageID, &j.Status, &j.Attempts, &next, &created,
		&sent, &j.LastError, &j.PersonID, &j.CoalesceKey, &j.Coalesced, &j.ClaimToken, &lse, &reclaimed); err != nil {
		return j, err
	}
	j.Template = notifier.Template(tmpl)
	if err := json.Unmarshal([]byte(data), &j.Data); err != nil {
		return j, fmt.Errorf("decode mail data of %s: %w", j.ID, err)
	}
	j.NextAttemptAt, j.CreatedAt, j.SentAt = fromMicros(next), fromMicros(created), fromNullMicros(sent)
	j.LeaseUntil, j.Reclaimed = fromMicros(lse), reclaimed != 0
	return j, nil
}

// ClaimMails implements notifier.Outbox. One statement picks the due jobs
// and leases them. PostgreSQL skips rows another replica is claiming (FOR
// UPDATE SKIP LOCKED); SQLite has a single writer, so the statement is
// exclusive by itself. A job whose lease ran out while "sending" is taken
// again and marked reclaimed, so the worker asks the server first.
func (s *Store) ClaimMails(ctx context.Context, c notifier.Claim) ([]notifier.Job, error) {
	now := s.now()
	lock := ""
	if s.dialect == Postgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	a := args{c.Token, micros(now.Add(c.Lease)), micros(now), c.Limit}
	scope := ""
	if len(c.Tenants) > 0 {
		marks := make([]string, len(c.Tenants))
		for i, t := range c.Tenants {
			marks[i] = a.add(t)
		}
		scope = " AND tenant_id IN (" + strings.Join(marks, ", ") + ")"
	}
	rows, err := s.db.QueryContext(ctx, s.rebind(`UPDATE mail_outbox
		SET status = 'sending', claim_token = $1, lease_until = $2, attempts = attempts + 1,
			reclaimed = CASE WHEN status = 'sending' THEN 1 ELSE 0 END
		WHERE id IN (SELECT id FROM mail_outbox
			WHERE ((status = 'pending' AND next_attempt_at <= $3) OR (status = 'sending' AND lease_until <= $3))`+scope+`
			ORDER BY next_attempt_at, id LIMIT $4`+lock+`)
		RETURNING `+mailColumns), a...)
	if err != nil {
		return nil, fmt.Errorf("claim mails: %w", err)
	}
	defer rows.Close()
	var out []notifier.Job
	for rows.Next() {
		j, err := scanMail(rows)
		if err != nil {
			return nil, fmt.Errorf("claim mails: %w", err)
		}
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim mails: %w", err)
	}
	return out, nil
}

// MarkMailsSent implements notifier.Outbox: one statement for the jobs of
// one claim. The template data is cleared with it: it may hold a one-time
// link token (password reset, e-mail confirmation, invitation), which must
// not outlive the send in the database.
func (s *Store) MarkMailsSent(ctx context.Context, token string, ids []string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	a := args{micros(s.now()), token}
	marks := make([]string, len(ids))
	for i, id := range ids {
		marks[i] = a.add(id)
	}
	res, err := s.db.ExecContext(ctx, s.rebind(`UPDATE mail_outbox SET status = 'sent', sent_at = $1, last_error = '', lease_until = 0, data = '{}'
		WHERE claim_token = $2 AND status = 'sending' AND id IN (`+strings.Join(marks, ", ")+`)`), a...)
	if err != nil {
		return 0, fmt.Errorf("mark mails sent: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// MarkMailSent marks one job; ErrLeaseLost when the claim is no longer
// the token's.
func (s *Store) MarkMailSent(ctx context.Context, id, token string) error {
	n, err := s.MarkMailsSent(ctx, token, []string{id})
	if err == nil && n == 0 {
		err = notifier.ErrLeaseLost
	}
	return err
}

// RetryMail implements notifier.Outbox. If a newer notification for the
// same key is waiting, the two are merged into this one (the older, which
// is due sooner), keeping one waiting job per key.
func (s *Store) RetryMail(ctx context.Context, id, token string, delay time.Duration, lastErr string) error {
	return s.InTx(ctx, func(tx *Tx) error {
		folded, err := tx.foldWaiting(ctx, id)
		if err != nil {
			return err
		}
		res, err := tx.exec(ctx, `UPDATE mail_outbox SET status = 'pending', next_attempt_at = $1, last_error = $2, claim_token = '', lease_until = 0,
			coalesced = coalesced + $3 WHERE id = $4 AND claim_token = $5 AND status = 'sending'`,
			micros(tx.Now().Add(delay)), lastErr, folded, id, token)
		return leaseResult(res, err, "retry mail")
	})
}

// foldWaiting removes the job waiting under the same coalesce key as id (if
// any) and returns how many notifications it stood for.
func (t *Tx) foldWaiting(ctx context.Context, id string) (int, error) {
	var key string
	if err := t.queryRow(ctx, `SELECT coalesce_key FROM mail_outbox WHERE id = $1`, id).Scan(&key); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return 0, notifier.ErrLeaseLost
		}
		return 0, fmt.Errorf("fold mail: %w", err)
	}
	if key == "" {
		return 0, nil
	}
	rows, err := t.query(ctx, `DELETE FROM mail_outbox WHERE coalesce_key = $1 AND status = 'pending' AND id <> $2 RETURNING coalesced`, key, id)
	if err != nil {
		return 0, fmt.Errorf("fold mail: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var c int
		if err := rows.Scan(&c); err != nil {
			return 0, err
		}
		n += c + 1
	}
	return n, rows.Err()
}

// FailMail implements notifier.Outbox: the job is given up and the audit
// event is written in the same transaction.
func (s *Store) FailMail(ctx context.Context, id, token, lastErr string, ev audit.Event) error {
	return s.InTx(ctx, func(tx *Tx) error {
		now := tx.Now()
		res, err := tx.exec(ctx, `UPDATE mail_outbox SET status = 'failed', failed_at = $1, last_error = $2, lease_until = 0
			WHERE id = $3 AND claim_token = $4 AND status = 'sending'`, micros(now), lastErr, id, token)
		if err := leaseResult(res, err, "fail mail"); err != nil {
			return err
		}
		_, err = tx.RecordEvent(ctx, ev)
		return err
	})
}

func leaseResult(res sql.Result, err error, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notifier.ErrLeaseLost
	}
	return nil
}

// MailJob returns one outbox row (for operators and tests).
func (s *Store) MailJob(ctx context.Context, id string) (notifier.Job, error) {
	j, err := scanMail(s.db.QueryRowContext(ctx, s.rebind(`SELECT `+mailColumns+` FROM mail_outbox WHERE id = $1`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return j, fmt.Errorf("mail job %s: %w", id, ErrMailJobNotFound)
	}
	return j, err
}

// MailJobsOfPerson lists the notifications queued for one person, newest
// first (for operators and tests).
func (s *Store) MailJobsOfPerson(ctx context.Context, tenantID, personID string) ([]notifier.Job, error) {
	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT `+mailColumns+` FROM mail_outbox WHERE tenant_id = $1 AND person_id = $2 ORDER BY created_at DESC, id`), tenantID, personID)
	if err != nil {
		return nil, fmt.Errorf("mail jobs: %w", err)
	}
	return collect(rows, scanMail)
}

// ErrMailJobNotFound is returned for an unknown mail job.
var ErrMailJobNotFound = errors.New("mail job not found")
