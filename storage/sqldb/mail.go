package sqldb

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"

	"postbox/notifier"
)

// EnqueueMail queues a notification in this transaction (outbox). The
// Message-ID is fixed now, so every later send attempt carries the same one.
func (t *Tx) EnqueueMail(ctx context.Context, j notifier.Job) (notifier.Job, error) {
	if j.ID == "" {
		j.ID = uuid.NewString()
	}
	if j.MessageID == "" {
		j.MessageID = "<" + j.ID + "@postbox>"
	}
	now := t.Now()
	j.Status, j.CreatedAt = "pending", now
	if j.NextAttemptAt.IsZero() {
		j.NextAttemptAt = now
	}
	data, err := json.Marshal(j.Data)
	if err != nil {
		return j, fmt.Errorf("encode mail data: %w", err)
	}
	_, err = t.exec(ctx, `INSERT INTO mail_outbox (id, tenant_id, recipient, template, data, message_id, status, attempts, next_attempt_at, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9)`,
		j.ID, j.TenantID, j.Recipient, string(j.Template), string(data), j.MessageID, j.Status, micros(j.NextAttemptAt), micros(now))
	if err != nil {
		return j, fmt.Errorf("enqueue mail: %w", err)
	}
	return j, nil
}
