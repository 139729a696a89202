package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"postbox/intake"
	"postbox/mailbox"
	"postbox/notifier"
)

// Mailbox returns the Postfach's view of the store.
func (s *Store) Mailbox() mailbox.Store { return mailboxStore{s} }

// Mailbox returns the Postfach's view of this transaction.
func (t *Tx) Mailbox() mailbox.Tx { return mailboxTx{t} }

// mailboxStore adapts Store to mailbox.Store; the methods that need a
// Viewer live here, so they cannot clash with other domains' methods.
type mailboxStore struct{ *Store }

// mailboxTx adapts Tx to mailbox.Tx.
type mailboxTx struct{ *Tx }

func (m mailboxStore) InTx(ctx context.Context, fn func(mailbox.Tx) error) error {
	return m.Store.InTx(ctx, func(tx *Tx) error { return fn(mailboxTx{tx}) })
}

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
		th.State = mailbox.StateOpen
	}
	if th.Channel == "" {
		th.Channel = mailbox.ChannelPostfach
	}
	now := t.Now()
	th.CreatedAt, th.LastMessageAt = now, now
	_, err := t.exec(ctx, `INSERT INTO threads (id, tenant_id, owner_kind, owner_id, team_id, subject, vorgang_id, state, assigned_to, legal_hold,
		created_at, last_message_at, subject_search, channel, paper_status, archived_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
		th.ID, th.TenantID, string(th.OwnerKind), th.OwnerID, th.TeamID, th.Subject, nullString(th.VorgangID), th.State, nullString(th.AssignedTo),
		boolInt(th.LegalHold), micros(now), micros(now), mailbox.SearchFold(th.Subject), string(th.Channel), th.PaperStatus, nullMicros(th.ArchivedAt))
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

// --- visibility ---

// args collects query arguments and hands out their $N placeholders.
type args []any

func (a *args) add(v any) string {
	*a = append(*a, v)
	return fmt.Sprintf("$%d", len(*a))
}

// visibleThreads is the WHERE condition for the threads (alias t) that v
// may see: the owner's own Postfach threads, or the threads of the team
// inboxes the caseworker belongs to, always within v's tenant. A viewer
// without a side sees nothing.
func visibleThreads(v mailbox.Viewer, a *args) string {
	switch v.Side {
	case mailbox.SideOwner:
		return fmt.Sprintf("t.tenant_id = %s AND t.owner_kind = %s AND t.owner_id = %s AND t.channel = 'postfach'",
			a.add(v.TenantID), a.add(string(v.OwnerKind)), a.add(v.OwnerID))
	case mailbox.SideTeam:
		ten := a.add(v.TenantID)
		return fmt.Sprintf("t.tenant_id = %s AND t.team_id IN (SELECT tm2.team_id FROM team_members tm2 WHERE tm2.tenant_id = %s AND tm2.account_id = %s)",
			ten, ten, a.add(v.ReaderID))
	}
	return "1 = 0"
}

const threadColumns = `t.id, t.tenant_id, t.owner_kind, t.owner_id, t.team_id, t.subject, t.vorgang_id, t.state, t.assigned_to, t.legal_hold,
	t.channel, t.paper_status, t.archived_at, t.created_at, t.last_message_at, tm.topic, tm.name`

func scanThread(row interface{ Scan(...any) error }, extra ...any) (mailbox.Thread, error) {
	var (
		th                  mailbox.Thread
		owner, channel      string
		vorgang, assigned   sql.NullString
		hold                int
		archived            sql.NullInt64
		created, lastActive int64
	)
	dst := []any{&th.ID, &th.TenantID, &owner, &th.OwnerID, &th.TeamID, &th.Subject, &vorgang, &th.State, &assigned, &hold,
		&channel, &th.PaperStatus, &archived, &created, &lastActive, &th.Topic, &th.TeamName}
	if err := row.Scan(append(dst, extra...)...); err != nil {
		return th, err
	}
	th.OwnerKind, th.Channel = mailbox.OwnerKind(owner), mailbox.Channel(channel)
	th.VorgangID, th.AssignedTo, th.LegalHold = vorgang.String, assigned.String, hold != 0
	th.ArchivedAt, th.CreatedAt, th.LastMessageAt = fromNullMicros(archived), fromMicros(created), fromMicros(lastActive)
	return th, nil
}

// Threads lists the threads v may see, newest activity first.
func (m mailboxStore) Threads(ctx context.Context, v mailbox.Viewer, f mailbox.Filter) ([]mailbox.Thread, error) {
	var a args
	dir, reader := a.add(string(v.Toward())), a.add(v.ReaderID)
	unread := `(SELECT COUNT(*) FROM messages m WHERE m.tenant_id = t.tenant_id AND m.thread_id = t.id AND m.direction = ` + dir + `
		AND NOT EXISTS (SELECT 1 FROM message_reads r WHERE r.message_id = m.id AND r.reader_id = ` + reader + `))`
	where := []string{visibleThreads(v, &a)}
	if f.Topic != "" {
		where = append(where, "tm.topic = "+a.add(f.Topic))
	}
	if f.State != "" {
		where = append(where, "t.state = "+a.add(f.State))
	}
	if !f.From.IsZero() {
		where = append(where, "t.last_message_at >= "+a.add(micros(f.From)))
	}
	if !f.To.IsZero() {
		where = append(where, "t.last_message_at < "+a.add(micros(f.To)))
	}
	if f.Query != "" {
		where = append(where, "t.subject_search LIKE "+a.add(mailbox.LikePattern(f.Query))+` ESCAPE '\'`)
	}
	if v.Side == mailbox.SideOwner {
		switch f.Archive {
		case mailbox.ArchiveInbox:
			where = append(where, "t.archived_at IS NULL")
		case mailbox.ArchiveArchived:
			where = append(where, "t.archived_at IS NOT NULL")
		}
	}
	if f.TeamID != "" {
		where = append(where, "t.team_id = "+a.add(f.TeamID))
	}
	if f.Unread {
		where = append(where, unread+" > 0")
	}
	if f.Before != nil {
		at, id := a.add(micros(f.Before.LastMessageAt)), a.add(f.Before.ID)
		where = append(where, fmt.Sprintf("(t.last_message_at < %s OR (t.last_message_at = %s AND t.id < %s))", at, at, id))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	q := `SELECT ` + threadColumns + `, ` + unread + `, (SELECT COUNT(*) FROM messages m WHERE m.tenant_id = t.tenant_id AND m.thread_id = t.id)
		FROM threads t JOIN teams tm ON tm.id = t.team_id
		WHERE ` + strings.Join(where, " AND ") + `
		ORDER BY t.last_message_at DESC, t.id DESC LIMIT ` + a.add(limit)
	rows, err := m.db.QueryContext(ctx, m.rebind(q), a...)
	if err != nil {
		return nil, fmt.Errorf("list threads: %w", err)
	}
	defer rows.Close()
	var out []mailbox.Thread
	for rows.Next() {
		var th mailbox.Thread
		var unreadN, total int
		if th, err = scanThread(rows, &unreadN, &total); err != nil {
			return nil, fmt.Errorf("list threads: %w", err)
		}
		th.Unread, th.Messages = unreadN, total
		out = append(out, th)
	}
	return out, rows.Err()
}

// Thread returns one thread if v may see it.
func (m mailboxStore) Thread(ctx context.Context, v mailbox.Viewer, id string) (mailbox.Thread, error) {
	var a args
	dir, reader := a.add(string(v.Toward())), a.add(v.ReaderID)
	q := `SELECT ` + threadColumns + `,
		(SELECT COUNT(*) FROM messages m WHERE m.tenant_id = t.tenant_id AND m.thread_id = t.id AND m.direction = ` + dir + `
			AND NOT EXISTS (SELECT 1 FROM message_reads r WHERE r.message_id = m.id AND r.reader_id = ` + reader + `)),
		(SELECT COUNT(*) FROM messages m WHERE m.tenant_id = t.tenant_id AND m.thread_id = t.id)
		FROM threads t JOIN teams tm ON tm.id = t.team_id
		WHERE t.id = ` + a.add(id) + ` AND ` + visibleThreads(v, &a)
	var unreadN, total int
	th, err := scanThread(m.db.QueryRowContext(ctx, m.rebind(q), a...), &unreadN, &total)
	if errors.Is(err, sql.ErrNoRows) {
		return th, mailbox.ErrNotFound
	}
	if err != nil {
		return th, fmt.Errorf("get thread: %w", err)
	}
	th.Unread, th.Messages = unreadN, total
	return th, nil
}

// ThreadMessages returns the messages of a thread v may see, oldest first,
// with their attachments and v's read state.
func (m mailboxStore) ThreadMessages(ctx context.Context, v mailbox.Viewer, threadID string) ([]mailbox.Message, error) {
	var a args
	toward, reader, tid, ten := a.add(string(v.Toward())), a.add(v.ReaderID), a.add(threadID), a.add(v.TenantID)
	vis := visibleThreads(v, &a)
	rows, err := m.db.QueryContext(ctx, m.rebind(`SELECT m.id, m.tenant_id, m.thread_id, m.direction, m.kind, m.sender_account_id, m.body, m.created_at,
		CASE WHEN m.direction <> `+toward+` OR EXISTS (SELECT 1 FROM message_reads r WHERE r.message_id = m.id AND r.reader_id = `+reader+`) THEN 1 ELSE 0 END
		FROM messages m JOIN threads t ON t.id = m.thread_id AND t.tenant_id = m.tenant_id
		WHERE m.tenant_id = `+ten+` AND m.thread_id = `+tid+` AND `+vis+` ORDER BY m.created_at, m.id`), a...)
	if err != nil {
		return nil, fmt.Errorf("thread messages: %w", err)
	}
	defer rows.Close()
	var out []mailbox.Message
	index := map[string]int{}
	for rows.Next() {
		var (
			msg       mailbox.Message
			dir, kind string
			created   int64
			read      int
		)
		if err := rows.Scan(&msg.ID, &msg.TenantID, &msg.ThreadID, &dir, &kind, &msg.SenderAccountID, &msg.Body, &created, &read); err != nil {
			return nil, fmt.Errorf("thread messages: %w", err)
		}
		msg.Direction, msg.Kind, msg.CreatedAt, msg.Read = mailbox.Direction(dir), mailbox.Kind(kind), fromMicros(created), read != 0
		index[msg.ID] = len(out)
		out = append(out, msg)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	if len(out) == 0 {
		return out, nil
	}
	var b args
	tid, ten = b.add(threadID), b.add(v.TenantID)
	vis = visibleThreads(v, &b)
	arows, err := m.db.QueryContext(ctx, m.rebind(`SELECT `+attachmentColumns+`
		FROM attachments a JOIN messages m ON m.id = a.message_id AND m.tenant_id = a.tenant_id JOIN threads t ON t.id = m.thread_id AND t.tenant_id = m.tenant_id
		WHERE m.tenant_id = `+ten+` AND m.thread_id = `+tid+` AND `+vis+` ORDER BY a.created_at, a.id`), b...)
	if err != nil {
		return nil, fmt.Errorf("thread attachments: %w", err)
	}
	defer arows.Close()
	for arows.Next() {
		att, err := scanAttachment(arows)
		if err != nil {
			return nil, fmt.Errorf("thread attachments: %w", err)
		}
		if i, ok := index[att.MessageID]; ok {
			out[i].Attachments = append(out[i].Attachments, att)
		}
	}
	return out, arows.Err()
}

const attachmentColumns = `a.id, a.tenant_id, a.message_id, a.vorgang_id, a.blob_key, a.file_name, a.content_type, a.size, a.sha256, a.created_at`

func scanAttachment(row interface{ Scan(...any) error }) (mailbox.Attachment, error) {
	var (
		att            mailbox.Attachment
		msgID, vorgang sql.NullString
		created        int64
	)
	err := row.Scan(&att.ID, &att.TenantID, &msgID, &vorgang, &att.BlobKey, &att.FileName, &att.ContentType, &att.Size, &att.SHA256, &created)
	att.MessageID, att.VorgangID, att.CreatedAt = msgID.String, vorgang.String, fromMicros(created)
	return att, err
}

// Attachment returns one message attachment if v may see its thread.
func (m mailboxStore) Attachment(ctx context.Context, v mailbox.Viewer, id string) (mailbox.Attachment, error) {
	var a args
	aid := a.add(id)
	vis := visibleThreads(v, &a)
	att, err := scanAttachment(m.db.QueryRowContext(ctx, m.rebind(`SELECT `+attachmentColumns+`
		FROM attachments a JOIN messages m ON m.id = a.message_id AND m.tenant_id = a.tenant_id JOIN threads t ON t.id = m.thread_id AND t.tenant_id = m.tenant_id
		WHERE a.id = `+aid+` AND `+vis), a...))
	if errors.Is(err, sql.ErrNoRows) {
		return att, mailbox.ErrNotFound
	}
	if err != nil {
		return att, fmt.Errorf("get attachment: %w", err)
	}
	return att, nil
}

// ProviderOrgExists implements mailbox.Store.
func (m mailboxStore) ProviderOrgExists(ctx context.Context, tenantID, orgID string) (bool, error) {
	if orgID == "" {
		return false, nil
	}
	var n int
	err := m.db.QueryRowContext(ctx, m.rebind(`SELECT COUNT(*) FROM accounts WHERE tenant_id = $1 AND org_id = $2`), tenantID, orgID).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("provider organisation: %w", err)
	}
	return n > 0, nil
}

// --- teams ---

func (m mailboxStore) Teams(ctx context.Context, tenantID string) ([]mailbox.Team, error) {
	return m.teams(ctx, `SELECT id, tenant_id, name, topic, created_at FROM teams WHERE tenant_id = $1 ORDER BY name, id`, tenantID)
}

func (m mailboxStore) TeamsOf(ctx context.Context, tenantID, accountID string) ([]mailbox.Team, error) {
	return m.teams(ctx, `SELECT t.id, t.tenant_id, t.name, t.topic, t.created_at FROM teams t
		JOIN team_members tm ON tm.team_id = t.id AND tm.tenant_id = t.tenant_id
		WHERE t.tenant_id = $1 AND tm.account_id = $2 ORDER BY t.name, t.id`, tenantID, accountID)
}

func (m mailboxStore) teams(ctx context.Context, q string, args ...any) ([]mailbox.Team, error) {
	rows, err := m.db.QueryContext(ctx, m.rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("list teams: %w", err)
	}
	defer rows.Close()
	var out []mailbox.Team
	for rows.Next() {
		var (
			team    mailbox.Team
			created int64
		)
		if err := rows.Scan(&team.ID, &team.TenantID, &team.Name, &team.Topic, &created); err != nil {
			return nil, err
		}
		team.CreatedAt = fromMicros(created)
		out = append(out, team)
	}
	return out, rows.Err()
}

func (t mailboxTx) TeamByTopic(ctx context.Context, tenantID, topic string) (mailbox.Team, error) {
	var (
		team    mailbox.Team
		created int64
	)
	err := t.queryRow(ctx, `SELECT id, tenant_id, name, topic, created_at FROM teams WHERE tenant_id = $1 AND topic = $2`, tenantID, topic).
		Scan(&team.ID, &team.TenantID, &team.Name, &team.Topic, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return team, mailbox.ErrNotFound
	}
	if err != nil {
		return team, fmt.Errorf("team by topic: %w", err)
	}
	team.CreatedAt = fromMicros(created)
	return team, nil
}

func (t mailboxTx) IsTeamMember(ctx context.Context, tenantID, teamID, accountID string) (bool, error) {
	var n int
	err := t.queryRow(ctx, `SELECT COUNT(*) FROM team_members WHERE tenant_id = $1 AND team_id = $2 AND account_id = $3`, tenantID, teamID, accountID).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("team member: %w", err)
	}
	return n > 0, nil
}

// --- thread changes ---

// LockThread implements mailbox.Tx. On PostgreSQL the row is locked; on
// SQLite the transaction already holds the write lock.
func (t mailboxTx) LockThread(ctx context.Context, v mailbox.Viewer, id string) (mailbox.Thread, error) {
	var a args
	q := `SELECT ` + threadColumns + ` FROM threads t JOIN teams tm ON tm.id = t.team_id WHERE t.id = ` + a.add(id) + ` AND ` + visibleThreads(v, &a)
	if t.s.dialect == Postgres {
		q += " FOR UPDATE OF t"
	}
	th, err := scanThread(t.queryRow(ctx, q, a...))
	if errors.Is(err, sql.ErrNoRows) {
		return th, mailbox.ErrNotFound
	}
	if err != nil {
		return th, fmt.Errorf("lock thread: %w", err)
	}
	return th, nil
}

func (t mailboxTx) updateThread(ctx context.Context, what, set string, tenantID, id string, val any) error {
	res, err := t.exec(ctx, `UPDATE threads SET `+set+` = $1 WHERE tenant_id = $2 AND id = $3`, val, tenantID, id)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return mailbox.ErrNotFound
	}
	return nil
}

func (t mailboxTx) SetThreadState(ctx context.Context, tenantID, id, state string) error {
	return t.updateThread(ctx, "set thread state", "state", tenantID, id, state)
}

func (t mailboxTx) AssignThread(ctx context.Context, tenantID, id, accountID string) error {
	return t.updateThread(ctx, "assign thread", "assigned_to", tenantID, id, nullString(accountID))
}

func (t mailboxTx) SetThreadArchived(ctx context.Context, tenantID, id string, archived bool) error {
	var at sql.NullInt64
	if archived {
		at = nullMicros(t.Now())
	}
	return t.updateThread(ctx, "archive thread", "archived_at", tenantID, id, at)
}

func (t mailboxTx) SetLegalHold(ctx context.Context, tenantID, id string, hold bool) error {
	return t.updateThread(ctx, "legal hold", "legal_hold", tenantID, id, boolInt(hold))
}

// MarkThreadRead sets v's read state of the messages towards v in a thread
// v may see, and reports how many marks changed.
func (t mailboxTx) MarkThreadRead(ctx context.Context, v mailbox.Viewer, threadID string, read bool) (int, error) {
	var a args
	reader := a.add(v.ReaderID)
	var q string
	if read {
		now := a.add(micros(t.Now()))
		tid, dir, ten := a.add(threadID), a.add(string(v.Toward())), a.add(v.TenantID)
		q = `INSERT INTO message_reads (message_id, reader_id, read_at)
			SELECT m.id, ` + reader + `, ` + now + ` FROM messages m JOIN threads t ON t.id = m.thread_id AND t.tenant_id = m.tenant_id
			WHERE m.tenant_id = ` + ten + ` AND m.thread_id = ` + tid + ` AND m.direction = ` + dir + ` AND ` + visibleThreads(v, &a) + `
			ON CONFLICT DO NOTHING`
	} else {
		tid, dir, ten := a.add(threadID), a.add(string(v.Toward())), a.add(v.TenantID)
		q = `DELETE FROM message_reads WHERE reader_id = ` + reader + ` AND message_id IN (
			SELECT m.id FROM messages m JOIN threads t ON t.id = m.thread_id AND t.tenant_id = m.tenant_id
			WHERE m.tenant_id = ` + ten + ` AND m.thread_id = ` + tid + ` AND m.direction = ` + dir + ` AND ` + visibleThreads(v, &a) + `)`
	}
	res, err := t.exec(ctx, q, a...)
	if err != nil {
		return 0, fmt.Errorf("mark read: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// --- uploads ---

func (t mailboxTx) AddUpload(ctx context.Context, u mailbox.Upload) error {
	if u.CreatedAt.IsZero() {
		u.CreatedAt = t.Now()
	}
	_, err := t.exec(ctx, `INSERT INTO mailbox_uploads (id, tenant_id, uploader_id, blob_key, file_name, content_type, size, sha256, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		u.ID, u.TenantID, u.UploaderID, u.BlobKey, u.FileName, u.ContentType, u.Size, u.SHA256, micros(u.CreatedAt))
	if err != nil {
		return fmt.Errorf("add upload: %w", err)
	}
	return nil
}

const uploadColumns = `id, tenant_id, uploader_id, blob_key, file_name, content_type, size, sha256, created_at`

func scanUpload(row interface{ Scan(...any) error }) (mailbox.Upload, error) {
	var (
		u       mailbox.Upload
		created int64
	)
	err := row.Scan(&u.ID, &u.TenantID, &u.UploaderID, &u.BlobKey, &u.FileName, &u.ContentType, &u.Size, &u.SHA256, &created)
	u.CreatedAt = fromMicros(created)
	return u, err
}

// TakeUpload removes one of the uploader's pending uploads and returns it;
// another account's upload is not found.
func (t mailboxTx) TakeUpload(ctx context.Context, tenantID, uploaderID, id string) (mailbox.Upload, error) {
	u, err := scanUpload(t.queryRow(ctx, `DELETE FROM mailbox_uploads WHERE tenant_id = $1 AND uploader_id = $2 AND id = $3 RETURNING `+uploadColumns,
		tenantID, uploaderID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return u, mailbox.ErrNotFound
	}
	if err != nil {
		return u, fmt.Errorf("take upload: %w", err)
	}
	return u, nil
}

// FinalizePersonUploads implements mailbox.Tx with the intake upload path's
// MarkUploadsFinal. The blob stays where the upload wrote it; the
// attachment row shares its key (as a submission's files do), and the
// final upload row is never cleaned up by intake.
func (t mailboxTx) FinalizePersonUploads(ctx context.Context, tenantID, personID string, ids []string) ([]mailbox.Upload, error) {
	ups, err := t.MarkUploadsFinal(ctx, tenantID, personID, ids)
	switch {
	case errors.Is(err, intake.ErrUploadNotFound), errors.Is(err, intake.ErrUploadAlreadyFinal):
		// Already attached or submitted elsewhere counts as gone.
		return nil, mailbox.ErrNotFound
	case errors.Is(err, intake.ErrUploadNotReady):
		return nil, mailbox.ErrUploadNotReady
	case err != nil:
		return nil, err
	}
	out := make([]mailbox.Upload, len(ups))
	for i, u := range ups {
		out[i] = mailbox.Upload{ID: u.ID, TenantID: u.TenantID, UploaderID: u.PersonID, BlobKey: u.BlobKey, FileName: u.Filename,
			ContentType: u.DetectedType, Size: u.Size(), SHA256: u.SHA256, CreatedAt: u.CreatedAt}
	}
	return out, nil
}

func (t mailboxTx) DeleteUpload(ctx context.Context, tenantID, id string) error {
	if _, err := t.exec(ctx, `DELETE FROM mailbox_uploads WHERE tenant_id = $1 AND id = $2`, tenantID, id); err != nil {
		return fmt.Errorf("delete upload: %w", err)
	}
	return nil
}

func (m mailboxStore) StaleUploads(ctx context.Context, before time.Time, limit int) ([]mailbox.Upload, error) {
	rows, err := m.db.QueryContext(ctx, m.rebind(`SELECT `+uploadColumns+` FROM mailbox_uploads WHERE created_at < $1 ORDER BY created_at LIMIT $2`),
		micros(before), limit)
	if err != nil {
		return nil, fmt.Errorf("stale uploads: %w", err)
	}
	return collect(rows, scanUpload)
}

// --- retention ---

func (m mailboxStore) ExpiredMessages(ctx context.Context, tenantID string, before time.Time, limit int) ([]string, error) {
	rows, err := m.db.QueryContext(ctx, m.rebind(`SELECT m.id FROM messages m JOIN threads t ON t.id = m.thread_id AND t.tenant_id = m.tenant_id
		WHERE m.tenant_id = $1 AND m.created_at < $2 AND t.legal_hold = 0 ORDER BY m.created_at, m.id LIMIT $3`),
		tenantID, micros(before), limit)
	if err != nil {
		return nil, fmt.Errorf("expired messages: %w", err)
	}
	return collect(rows, scanString)
}

// DeleteMessage implements mailbox.Tx.
func (t mailboxTx) DeleteMessage(ctx context.Context, tenantID, id string) (mailbox.DeletedMessage, error) {
	d := mailbox.DeletedMessage{MessageID: id}
	lock := ""
	if t.s.dialect == Postgres {
		lock = " FOR UPDATE OF t"
	}
	var hold int
	err := t.queryRow(ctx, `SELECT t.id, t.legal_hold FROM threads t JOIN messages m ON m.thread_id = t.id
		WHERE m.id = $1 AND m.tenant_id = $2`+lock, id, tenantID).Scan(&d.ThreadID, &hold)
	if errors.Is(err, sql.ErrNoRows) {
		return d, mailbox.ErrNotFound
	}
	if err != nil {
		return d, fmt.Errorf("delete message: %w", err)
	}
	if hold != 0 {
		return d, mailbox.ErrLegalHold
	}
	rows, err := t.query(ctx, `SELECT id, blob_key FROM attachments WHERE tenant_id = $1 AND message_id = $2`, tenantID, id)
	if err != nil {
		return d, fmt.Errorf("delete message: %w", err)
	}
	var keys []string
	for rows.Next() {
		var aid, key string
		if err := rows.Scan(&aid, &key); err != nil {
			rows.Close()
			return d, err
		}
		d.Attachments = append(d.Attachments, aid)
		keys = append(keys, key)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return d, err
	}
	for _, key := range keys {
		if err := t.TrashBlob(ctx, tenantID, key); err != nil {
			return d, err
		}
	}
	for _, q := range []string{
		`DELETE FROM attachments WHERE tenant_id = $1 AND message_id = $2`,
		`DELETE FROM message_reads WHERE message_id IN (SELECT id FROM messages WHERE tenant_id = $1 AND id = $2)`,
		`DELETE FROM messages WHERE tenant_id = $1 AND id = $2`,
	} {
		if _, err := t.exec(ctx, q, tenantID, id); err != nil {
			return d, fmt.Errorf("delete message: %w", err)
		}
	}
	var left int
	if err := t.queryRow(ctx, `SELECT COUNT(*) FROM messages WHERE tenant_id = $1 AND thread_id = $2`, tenantID, d.ThreadID).Scan(&left); err != nil {
		return d, fmt.Errorf("delete message: %w", err)
	}
	if left == 0 {
		if _, err := t.exec(ctx, `DELETE FROM threads WHERE tenant_id = $1 AND id = $2`, tenantID, d.ThreadID); err != nil {
			return d, fmt.Errorf("delete thread: %w", err)
		}
		d.ThreadDeleted = true
	}
	return d, nil
}

func (t mailboxTx) TrashBlob(ctx context.Context, tenantID, key string) error {
	_, err := t.exec(ctx, `INSERT INTO mailbox_blob_trash (blob_key, tenant_id, queued_at) VALUES ($1, $2, $3) ON CONFLICT (blob_key) DO NOTHING`,
		key, tenantID, micros(t.Now()))
	if err != nil {
		return fmt.Errorf("trash blob: %w", err)
	}
	return nil
}

func (m mailboxStore) TrashedBlobs(ctx context.Context, limit int) ([]string, error) {
	rows, err := m.db.QueryContext(ctx, m.rebind(`SELECT blob_key FROM mailbox_blob_trash ORDER BY queued_at, blob_key LIMIT $1`), limit)
	if err != nil {
		return nil, fmt.Errorf("trashed blobs: %w", err)
	}
	return collect(rows, scanString)
}

func (m mailboxStore) ForgetTrashedBlob(ctx context.Context, key string) error {
	if _, err := m.db.ExecContext(ctx, m.rebind(`DELETE FROM mailbox_blob_trash WHERE blob_key = $1`), key); err != nil {
		return fmt.Errorf("forget trashed blob: %w", err)
	}
	return nil
}

// PurgeMailJobs implements mailbox.Store.
func (m mailboxStore) PurgeMailJobs(ctx context.Context, sentBefore, failedBefore time.Time) (int, error) {
	res, err := m.db.ExecContext(ctx, m.rebind(`DELETE FROM mail_outbox
		WHERE (status = 'sent' AND sent_at < $1) OR (status = 'failed' AND failed_at < $2)`), micros(sentBefore), micros(failedBefore))
	if err != nil {
		return 0, fmt.Errorf("purge mail jobs: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// --- failed notifications ---

// teamPersons is the condition "the job's person owns a thread in one of
// v's teams" for mail_outbox rows (alias o).
func teamPersons(v mailbox.Viewer, a *args) string {
	return `o.person_id IN (SELECT t.owner_id FROM threads t WHERE t.owner_kind = 'person' AND ` + visibleThreads(v, a) + `)`
}

func (m mailboxStore) FailedNotifications(ctx context.Context, v mailbox.Viewer, limit int) ([]mailbox.FailedNotification, error) {
	if v.Side != mailbox.SideTeam {
		return nil, nil
	}
	var a args
	ten := a.add(v.TenantID)
	cond := teamPersons(v, &a)
	rows, err := m.db.QueryContext(ctx, m.rebind(`SELECT o.id, o.person_id, o.recipient, o.template, o.attempts, o.last_error, o.created_at, o.failed_at
		FROM mail_outbox o WHERE o.tenant_id = `+ten+` AND o.status = 'failed' AND `+cond+`
		ORDER BY o.failed_at DESC, o.id LIMIT `+a.add(limit)), a...)
	if err != nil {
		return nil, fmt.Errorf("failed notifications: %w", err)
	}
	defer rows.Close()
	var out []mailbox.FailedNotification
	for rows.Next() {
		var (
			f       mailbox.FailedNotification
			created int64
			failed  sql.NullInt64
		)
		if err := rows.Scan(&f.ID, &f.PersonID, &f.Recipient, &f.Template, &f.Attempts, &f.LastError, &created, &failed); err != nil {
			return nil, err
		}
		f.Recipient, f.CreatedAt, f.FailedAt = maskAddress(f.Recipient), fromMicros(created), fromNullMicros(failed)
		out = append(out, f)
	}
	return out, rows.Err()
}

// maskAddress keeps enough of an address to recognise it: "e***@example.org".
func maskAddress(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 {
		return "***"
	}
	return addr[:1] + "***" + addr[at:]
}

// RequeueNotification puts a failed notification of one of v's persons
// back into the queue with fresh attempts and the person's current address.
func (t mailboxTx) RequeueNotification(ctx context.Context, v mailbox.Viewer, id string) (notifier.Job, error) {
	var a args
	jid, ten := a.add(id), a.add(v.TenantID)
	q := `SELECT o.id FROM mail_outbox o WHERE o.id = ` + jid + ` AND o.tenant_id = ` + ten + ` AND o.status = 'failed' AND ` + teamPersons(v, &a)
	if v.Side != mailbox.SideTeam {
		return notifier.Job{}, mailbox.ErrNotFound
	}
	var got string
	if err := t.queryRow(ctx, q, a...).Scan(&got); errors.Is(err, sql.ErrNoRows) {
		return notifier.Job{}, mailbox.ErrNotFound
	} else if err != nil {
		return notifier.Job{}, fmt.Errorf("requeue mail: %w", err)
	}
	folded, err := t.foldWaiting(ctx, id)
	if err != nil {
		return notifier.Job{}, err
	}
	_, err = t.exec(ctx, `UPDATE mail_outbox SET status = 'pending', attempts = 0, next_attempt_at = $1, failed_at = NULL, claim_token = '',
		lease_until = 0, coalesced = coalesced + $2,
		recipient = COALESCE((SELECT p.email FROM persons p WHERE p.id = mail_outbox.person_id AND p.email <> ''), recipient)
		WHERE id = $3`, micros(t.Now()), folded, id)
	if err != nil {
		return notifier.Job{}, fmt.Errorf("requeue mail: %w", err)
	}
	return notifier.Job{ID: id, TenantID: v.TenantID, Status: notifier.StatusPending}, nil
}

var (
	_ mailbox.Store = mailboxStore{}
	_ mailbox.Tx    = mailboxTx{}
)
