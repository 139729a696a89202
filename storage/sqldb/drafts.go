package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"postbox/audit"
	"postbox/intake"
	"postbox/mailbox"
)

const draftColumns = `id, tenant_id, person_id, case_type, subject, message, phone, created_at, updated_at, submitted_at, vorgang_id`

func scanDraft(row interface{ Scan(...any) error }) (intake.Draft, error) {
	var (
		d                intake.Draft
		caseType         string
		created, updated int64
		submitted        sql.NullInt64
		vorgang          sql.NullString
	)
	err := row.Scan(&d.ID, &d.TenantID, &d.PersonID, &caseType, &d.Subject, &d.Message, &d.Phone, &created, &updated, &submitted, &vorgang)
	if errors.Is(err, sql.ErrNoRows) {
		return d, intake.ErrDraftNotFound
	}
	d.CaseType, d.CreatedAt, d.UpdatedAt = audit.CaseType(caseType), fromMicros(created), fromMicros(updated)
	d.SubmittedAt, d.VorgangID = fromNullMicros(submitted), vorgang.String
	return d, err
}

func (t pinTx) OpenDraft(ctx context.Context, tenantID, personID string, lock bool) (intake.Draft, error) {
	q := `SELECT ` + draftColumns + ` FROM intake_drafts WHERE tenant_id = $1 AND person_id = $2 AND submitted_at IS NULL`
	if lock {
		q += t.forUpdate()
	}
	return scanDraft(t.queryRow(ctx, q, tenantID, personID))
}

func (t pinTx) DraftByID(ctx context.Context, tenantID, personID, id string, lock bool) (intake.Draft, error) {
	q := `SELECT ` + draftColumns + ` FROM intake_drafts WHERE tenant_id = $1 AND person_id = $2 AND id = $3`
	if lock {
		q += t.forUpdate()
	}
	return scanDraft(t.queryRow(ctx, q, tenantID, personID, id))
}

// CreateDraft inserts an open draft unless the person has one already (the
// partial unique index decides), then returns the person's open draft.
func (t pinTx) CreateDraft(ctx context.Context, d intake.Draft) (intake.Draft, error) {
	if _, err := t.exec(ctx, `INSERT INTO intake_drafts (id, tenant_id, person_id, case_type, subject, message, phone, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (tenant_id, person_id) WHERE submitted_at IS NULL DO NOTHING`,
		d.ID, d.TenantID, d.PersonID, string(d.CaseType), d.Subject, d.Message, d.Phone, micros(d.CreatedAt), micros(d.UpdatedAt)); err != nil {
		return d, fmt.Errorf("insert draft: %w", err)
	}
	return t.OpenDraft(ctx, d.TenantID, d.PersonID, true)
}

func (t pinTx) SaveDraft(ctx context.Context, d intake.Draft) error {
	res, err := t.exec(ctx, `UPDATE intake_drafts SET case_type = $1, subject = $2, message = $3, phone = $4, updated_at = $5
		WHERE tenant_id = $6 AND person_id = $7 AND id = $8 AND submitted_at IS NULL`,
		string(d.CaseType), d.Subject, d.Message, d.Phone, micros(d.UpdatedAt), d.TenantID, d.PersonID, d.ID)
	if err != nil {
		return fmt.Errorf("save draft: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return intake.ErrDraftNotFound
	}
	return nil
}

func (t pinTx) MarkDraftSubmitted(ctx context.Context, tenantID, draftID, vorgangID string, at time.Time) error {
	res, err := t.exec(ctx, `UPDATE intake_drafts SET submitted_at = $1, vorgang_id = $2, updated_at = $1
		WHERE tenant_id = $3 AND id = $4 AND submitted_at IS NULL`, micros(at), vorgangID, tenantID, draftID)
	if err != nil {
		return fmt.Errorf("mark draft submitted: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return intake.ErrDraftNotFound
	}
	return nil
}

func (t pinTx) VorgangByID(ctx context.Context, tenantID, id string) (audit.Vorgang, error) {
	v, err := t.vorgangBy(ctx, `tenant_id = $1 AND id = $2`, tenantID, id)
	if errors.Is(err, ErrVorgangNotFound) {
		return v, intake.ErrVorgangNotFound
	}
	return v, err
}

// PostReceipt writes the Postfach side of a submission with the mailbox
// methods of Tx. The team of the topic is created race-free: two first
// submissions of one topic at once both end up in the same team.
func (t pinTx) PostReceipt(ctx context.Context, p intake.ReceiptPost) (string, []intake.SubmittedFile, error) {
	res, err := t.exec(ctx, `INSERT INTO teams (id, tenant_id, name, topic, created_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (tenant_id, topic) DO NOTHING`, uuid.NewString(), p.TenantID, p.TeamName, p.Topic, micros(t.Now()))
	if err != nil {
		return "", nil, fmt.Errorf("ensure team: %w", err)
	}
	created, _ := res.RowsAffected()
	var teamID string
	if err := t.queryRow(ctx, `SELECT id FROM teams WHERE tenant_id = $1 AND topic = $2`, p.TenantID, p.Topic).Scan(&teamID); err != nil {
		return "", nil, fmt.Errorf("ensure team: %w", err)
	}
	assignee, err := t.receiptAssignee(ctx, p, teamID, created == 1)
	if err != nil {
		return "", nil, err
	}
	th, err := t.CreateThread(ctx, mailbox.Thread{TenantID: p.TenantID, OwnerKind: mailbox.OwnerPerson, OwnerID: p.PersonID,
		TeamID: teamID, Subject: p.Subject, VorgangID: p.VorgangID, AssignedTo: assignee})
	if err != nil {
		return "", nil, err
	}
	if p.PersonMessage != "" {
		if _, err := t.AddMessage(ctx, mailbox.Message{TenantID: p.TenantID, ThreadID: th.ID, Direction: mailbox.Inbound,
			Kind: mailbox.KindMessage, Body: p.PersonMessage}); err != nil {
			return "", nil, err
		}
	}
	atts := make([]mailbox.Attachment, len(p.Files))
	for i, f := range p.Files {
		atts[i] = mailbox.Attachment{TenantID: p.TenantID, VorgangID: p.VorgangID, BlobKey: f.BlobKey, FileName: f.FileName,
			ContentType: f.ContentType, Size: f.Size, SHA256: f.SHA256}
	}
	m, err := t.AddMessage(ctx, mailbox.Message{TenantID: p.TenantID, ThreadID: th.ID, Direction: mailbox.Outbound,
		Kind: mailbox.KindReceipt, Body: p.ReceiptBody, Attachments: atts})
	if err != nil {
		return "", nil, err
	}
	out := make([]intake.SubmittedFile, len(m.Attachments))
	for i, a := range m.Attachments {
		out[i] = submittedFile(a)
	}
	return th.ID, out, nil
}

// receiptAssignee returns the caseworker to assign the thread to: the one
// who issued the PIN, if they are (or, in a team just created, become) a
// member of the team.
func (t pinTx) receiptAssignee(ctx context.Context, p intake.ReceiptPost, teamID string, teamCreated bool) (string, error) {
	if p.Caseworker == "" {
		return "", nil
	}
	var staff int
	if err := t.queryRow(ctx, `SELECT COUNT(*) FROM accounts WHERE tenant_id = $1 AND id = $2 AND role IN ('caseworker', 'teamlead')`,
		p.TenantID, p.Caseworker).Scan(&staff); err != nil {
		return "", fmt.Errorf("receipt assignee: %w", err)
	}
	if staff == 0 {
		return "", nil
	}
	if teamCreated {
		if err := t.AddTeamMember(ctx, p.TenantID, teamID, p.Caseworker); err != nil {
			return "", err
		}
		return p.Caseworker, nil
	}
	var member int
	if err := t.queryRow(ctx, `SELECT COUNT(*) FROM team_members WHERE tenant_id = $1 AND team_id = $2 AND account_id = $3`,
		p.TenantID, teamID, p.Caseworker).Scan(&member); err != nil {
		return "", fmt.Errorf("receipt assignee: %w", err)
	}
	if member == 0 {
		return "", nil
	}
	return p.Caseworker, nil
}

func submittedFile(a mailbox.Attachment) intake.SubmittedFile {
	return intake.SubmittedFile{ID: a.ID, VorgangID: a.VorgangID, MessageID: a.MessageID, BlobKey: a.BlobKey, FileName: a.FileName,
		ContentType: a.ContentType, Size: a.Size, SHA256: a.SHA256, CreatedAt: a.CreatedAt}
}

// VorgangFiles lists the files of a Vorgang in the order they were attached.
func (t pinTx) VorgangFiles(ctx context.Context, tenantID, vorgangID string) ([]intake.SubmittedFile, error) {
	rows, err := t.query(ctx, `SELECT id, vorgang_id, message_id, blob_key, file_name, content_type, size, sha256, created_at
		FROM attachments WHERE tenant_id = $1 AND vorgang_id = $2 ORDER BY created_at, file_name, id`, tenantID, vorgangID)
	if err != nil {
		return nil, fmt.Errorf("list vorgang files: %w", err)
	}
	defer rows.Close()
	var out []intake.SubmittedFile
	for rows.Next() {
		var (
			f       intake.SubmittedFile
			vorgang sql.NullString
			message sql.NullString
			created int64
		)
		if err := rows.Scan(&f.ID, &vorgang, &message, &f.BlobKey, &f.FileName, &f.ContentType, &f.Size, &f.SHA256, &created); err != nil {
			return nil, err
		}
		f.VorgangID, f.MessageID, f.CreatedAt = vorgang.String, message.String, fromMicros(created)
		out = append(out, f)
	}
	return out, rows.Err()
}

func (t pinTx) ReceiptThreadOf(ctx context.Context, tenantID, vorgangID string) (string, error) {
	var id string
	err := t.queryRow(ctx, `SELECT m.thread_id FROM messages m JOIN threads th ON th.id = m.thread_id
		WHERE th.tenant_id = $1 AND th.vorgang_id = $2 AND m.kind = $3 ORDER BY m.created_at, m.id LIMIT 1`,
		tenantID, vorgangID, string(mailbox.KindReceipt)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("receipt thread: %w", err)
	}
	return id, nil
}

// PersonUploads lists what the person uploaded and has not submitted yet,
// from the tus upload engine, in the states a submission cares about.
// Rejected uploads (refused at upload time) and expired ones (about to be
// cleaned up) are left out.
func (t pinTx) PersonUploads(ctx context.Context, tenantID, personID string) ([]intake.DraftFile, error) {
	ups, err := t.UploadsOfPerson(ctx, tenantID, personID)
	if err != nil {
		return nil, err
	}
	now := t.Now()
	out := make([]intake.DraftFile, 0, len(ups))
	for _, u := range ups {
		var state intake.FileState
		switch u.Status {
		case intake.StatusUploading, intake.StatusCompleting:
			state = intake.FileUploading
		case intake.StatusQuarantined:
			state = intake.FileChecking
		case intake.StatusInfected:
			state = intake.FileInfected
		case intake.StatusComplete:
			state = intake.FileComplete
		default: // final, rejected, terminated, consumed
			continue
		}
		if state != intake.FileInfected && !u.ExpiresAt.IsZero() && now.After(u.ExpiresAt) {
			continue
		}
		out = append(out, intake.DraftFile{ID: u.ID, FileName: u.Filename, ContentType: uploadType(u), Size: u.Length, Offset: u.Offset, State: state})
	}
	return out, nil
}

func uploadType(u intake.Upload) string {
	if u.DetectedType != "" {
		return u.DetectedType
	}
	return u.DeclaredType
}

// FinalizeUploads hands the uploads to the submission (MarkUploadsFinal of
// the upload engine) and returns their stored objects.
func (t pinTx) FinalizeUploads(ctx context.Context, tenantID, personID string, uploadIDs []string) ([]intake.FinalFile, error) {
	ups, err := t.MarkUploadsFinal(ctx, tenantID, personID, uploadIDs)
	if err != nil {
		return nil, err
	}
	out := make([]intake.FinalFile, len(ups))
	for i, u := range ups {
		out[i] = intake.FinalFile{UploadID: u.ID, BlobKey: u.BlobKey, FileName: u.Filename, ContentType: uploadType(u), Size: u.Length, SHA256: u.SHA256}
	}
	return out, nil
}
