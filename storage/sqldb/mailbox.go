package sqldb

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/google/uuid"

	"postbox/mailbox"
)

// CreateTeam stores a team inbox; the topic is unique per tenant.
func (t *Tx) CreateTeam(ctx context.Context, team mailbox.Team) (mailbox.Team, error) {
	if team.ID == "" {
		team.ID = uuid.NewString()
	}
	team.CreatedAt = t.Now()
	_, err := t.exec(ctx, `INSERT INTO teams (id, tenant_id, name, topic, created_at) VALUES ($1, $2, $3, $4, $5)`,
		team.ID, team.TenantID, team.Name, team.Topic, micros(team.CreatedAt))
	if err != nil {
		return team, fmt.Errorf("insert team: %w", err)
	}
	return team, nil
}

// AddTeamMember puts an account into a team inbox.
func (t *Tx) AddTeamMember(ctx context.Context, tenantID, teamID, accountID string) error {
	_, err := t.exec(ctx, `INSERT INTO team_members (tenant_id, team_id, account_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		tenantID, teamID, accountID)
	if err != nil {
		return fmt.Errorf("add team member: %w", err)
	}
	return nil
}

// CreateThread opens a thread in a Postfach.
func (t *Tx) CreateThread(ctx context.Context, th mailbox.Thread) (mailbox.Thread, error) {
	if th.ID == "" {
		th.ID = uuid.NewString()
	}
	if th.State == "" {
		th.State = "open"
	}
	now := t.Now()
	th.CreatedAt, th.LastMessageAt = now, now
	var vorgang, assigned sql.NullString
	if th.VorgangID != "" {
		vorgang = sql.NullString{String: th.VorgangID, Valid: true}
	}
	if th.AssignedTo != "" {
		assigned = sql.NullString{String: th.AssignedTo, Valid: true}
	}
	_, err := t.exec(ctx, `INSERT INTO threads (id, tenant_id, owner_kind, owner_id, team_id, subject, vorgang_id, state, assigned_to, legal_hold, created_at, last_message_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		th.ID, th.TenantID, string(th.OwnerKind), th.OwnerID, th.TeamID, th.Subject, vorgang, th.State, assigned, boolInt(th.LegalHold), micros(now), micros(now))
	if err != nil {
		return th, fmt.Errorf("insert thread: %w", err)
	}
	return th, nil
}

// AddMessage stores an immutable message with its attachments and moves the
// thread's last activity.
func (t *Tx) AddMessage(ctx context.Context, m mailbox.Message) (mailbox.Message, error) {
	if m.ID == "" {
		m.ID = uuid.NewString()
	}
	m.CreatedAt = t.Now()
	if _, err := t.exec(ctx, `INSERT INTO messages (id, tenant_id, thread_id, direction, kind, sender_account_id, body, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		m.ID, m.TenantID, m.ThreadID, string(m.Direction), string(m.Kind), m.SenderAccountID, m.Body, micros(m.CreatedAt)); err != nil {
		return m, fmt.Errorf("insert message: %w", err)
	}
	for i := range m.Attachments {
		a := &m.Attachments[i]
		a.MessageID, a.TenantID = m.ID, m.TenantID
		if err := t.AddAttachment(ctx, a); err != nil {
			return m, err
		}
	}
	if _, err := t.exec(ctx, `UPDATE threads SET last_message_at = $1 WHERE tenant_id = $2 AND id = $3`,
		micros(m.CreatedAt), m.TenantID, m.ThreadID); err != nil {
		return m, fmt.Errorf("touch thread: %w", err)
	}
	return m, nil
}

// AddAttachment stores a file record (the bytes are already in the blob store).
func (t *Tx) AddAttachment(ctx context.Context, a *mailbox.Attachment) error {
	if a.ID == "" {
		a.ID = uuid.NewString()
	}
	a.CreatedAt = t.Now()
	_, err := t.exec(ctx, `INSERT INTO attachments (id, tenant_id, message_id, vorgang_id, blob_key, file_name, content_type, size, sha256, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		a.ID, a.TenantID, nullString(a.MessageID), nullString(a.VorgangID), a.BlobKey, a.FileName, a.ContentType, a.Size, a.SHA256, micros(a.CreatedAt))
	if err != nil {
		return fmt.Errorf("insert attachment: %w", err)
	}
	return nil
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
