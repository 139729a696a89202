package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"postbox/audit"
	"postbox/intake"
	"postbox/kasse"
)

// PINIntake adapts the store to the Einmal-PIN desk (intake.PINStore).
func (s *Store) PINIntake() intake.PINStore { return pinStore{s} }

type pinStore struct{ s *Store }

func (p pinStore) InPINTx(ctx context.Context, fn func(intake.PINTx) error) error {
	return p.s.InTx(ctx, func(tx *Tx) error { return fn(pinTx{tx}) })
}

// pinTx is a Tx seen by the PIN desk. It embeds *Tx for the shared methods
// (RecordEvent, CreateVorgang, EnqueueMail, Now) and adds reads inside the
// transaction.
type pinTx struct{ *Tx }

func (t pinTx) forUpdate() string {
	if t.s.dialect == Postgres {
		return " FOR UPDATE"
	}
	return "" // SQLite transactions hold the write lock from their start
}

func (t pinTx) Kasse(ctx context.Context, id string) (kasse.Kasse, error) {
	k, err := scanKasse(t.queryRow(ctx, `SELECT `+kasseColumns+` FROM kassen WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return k, fmt.Errorf("kasse %s: %w", id, kasse.ErrNotFound)
	}
	return k, err
}

func (t pinTx) PersonByKVNR(ctx context.Context, tenantID, kvnr string) (kasse.Person, error) {
	p, err := scanPerson(t.queryRow(ctx, `SELECT `+personColumns+` FROM persons WHERE tenant_id = $1 AND kvnr = $2`, tenantID, kvnr))
	if errors.Is(err, sql.ErrNoRows) {
		return kasse.Person{}, fmt.Errorf("person: %w", kasse.ErrNotFound)
	}
	return p, err
}

func (t pinTx) Person(ctx context.Context, tenantID, id string) (kasse.Person, error) {
	p, err := scanPerson(t.queryRow(ctx, `SELECT `+personColumns+` FROM persons WHERE tenant_id = $1 AND id = $2`, tenantID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return kasse.Person{}, fmt.Errorf("person: %w", kasse.ErrNotFound)
	}
	return p, err
}

// InsertPIN stores a PIN's keyed hash with its Anliegen and issuer.
func (t pinTx) InsertPIN(ctx context.Context, p intake.EinmalPIN) error {
	_, err := t.exec(ctx, `INSERT INTO einmal_pins (id, tenant_id, person_id, pin_hash, request_text, case_type, issued_by, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		p.ID, p.TenantID, p.PersonID, p.Hash, p.RequestText, string(p.CaseType), p.IssuedBy, micros(p.CreatedAt), micros(p.ExpiresAt))
	if err != nil {
		return fmt.Errorf("insert einmal-pin: %w", err)
	}
	return nil
}

func (t pinTx) PINsOfPerson(ctx context.Context, tenantID, personID string) ([]intake.EinmalPIN, error) {
	rows, err := t.query(ctx, `SELECT id, tenant_id, person_id, pin_hash, request_text, case_type, issued_by, created_at, expires_at, used_at, revoked_at
		FROM einmal_pins WHERE tenant_id = $1 AND person_id = $2 ORDER BY created_at DESC, id`, tenantID, personID)
	if err != nil {
		return nil, fmt.Errorf("list einmal-pins: %w", err)
	}
	defer rows.Close()
	var out []intake.EinmalPIN
	for rows.Next() {
		var (
			p                intake.EinmalPIN
			caseType         string
			created, expires int64
			used, revoked    sql.NullInt64
		)
		if err := rows.Scan(&p.ID, &p.TenantID, &p.PersonID, &p.Hash, &p.RequestText, &caseType, &p.IssuedBy, &created, &expires, &used, &revoked); err != nil {
			return nil, err
		}
		p.CaseType, p.CreatedAt, p.ExpiresAt = audit.CaseType(caseType), fromMicros(created), fromMicros(expires)
		p.UsedAt, p.RevokedAt = fromNullMicros(used), fromNullMicros(revoked)
		out = append(out, p)
	}
	return out, rows.Err()
}

func (t pinTx) RevokeOpenPINs(ctx context.Context, tenantID, personID string, at time.Time) (int, error) {
	res, err := t.exec(ctx, `UPDATE einmal_pins SET revoked_at = $1
		WHERE tenant_id = $2 AND person_id = $3 AND used_at IS NULL AND revoked_at IS NULL`, micros(at), tenantID, personID)
	if err != nil {
		return 0, fmt.Errorf("revoke einmal-pins: %w", err)
	}
	if _, err := t.exec(ctx, `UPDATE persons SET pin_locked_at = $1 WHERE tenant_id = $2 AND id = $3`, micros(at), tenantID, personID); err != nil {
		return 0, fmt.Errorf("mark person locked: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

func (t pinTx) UsePINs(ctx context.Context, tenantID, personID string, at time.Time) (int, error) {
	res, err := t.exec(ctx, `UPDATE einmal_pins SET used_at = $1 WHERE tenant_id = $2 AND person_id = $3 AND used_at IS NULL`,
		micros(at), tenantID, personID)
	if err != nil {
		return 0, fmt.Errorf("use einmal-pins: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// LockLoginCounter creates the counter at zero if needed, then reads it
// under a row lock (PostgreSQL) or the transaction's write lock (SQLite),
// so concurrent attempts for one KVNR are counted one after the other.
func (t pinTx) LockLoginCounter(ctx context.Context, tenantID, subjectHash string) (intake.LoginCounter, error) {
	c := intake.LoginCounter{TenantID: tenantID, SubjectHash: subjectHash}
	if _, err := t.exec(ctx, `INSERT INTO pin_login_failures (tenant_id, subject_hash, failures, updated_at) VALUES ($1, $2, 0, $3)
		ON CONFLICT (tenant_id, subject_hash) DO NOTHING`, tenantID, subjectHash, micros(t.Now())); err != nil {
		return c, fmt.Errorf("login counter: %w", err)
	}
	var locked sql.NullInt64
	if err := t.queryRow(ctx, `SELECT failures, locked_at FROM pin_login_failures WHERE tenant_id = $1 AND subject_hash = $2`+t.forUpdate(),
		tenantID, subjectHash).Scan(&c.Failures, &locked); err != nil {
		return c, fmt.Errorf("login counter: %w", err)
	}
	c.LockedAt = fromNullMicros(locked)
	return c, nil
}

// SaveLoginCounter writes the counter (creating it if needed).
func (t pinTx) SaveLoginCounter(ctx context.Context, c intake.LoginCounter, at time.Time) error {
	_, err := t.exec(ctx, `INSERT INTO pin_login_failures (tenant_id, subject_hash, failures, locked_at, updated_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (tenant_id, subject_hash) DO UPDATE SET failures = $3, locked_at = $4, updated_at = $5`,
		c.TenantID, c.SubjectHash, c.Failures, nullMicros(c.LockedAt), micros(at))
	if err != nil {
		return fmt.Errorf("save login counter: %w", err)
	}
	return nil
}

// HitRateLimit counts a hit in a fixed window in one statement, so
// concurrent requests on any replica add up.
func (t pinTx) HitRateLimit(ctx context.Context, bucket, keyHash string, window time.Duration, now time.Time) (int, time.Time, error) {
	var (
		hits  int
		start int64
	)
	err := t.queryRow(ctx, `INSERT INTO intake_rate_limits (bucket, key_hash, window_start, hits) VALUES ($1, $2, $3, 1)
		ON CONFLICT (bucket, key_hash) DO UPDATE SET
			hits = CASE WHEN intake_rate_limits.window_start <= $4 THEN 1 ELSE intake_rate_limits.hits + 1 END,
			window_start = CASE WHEN intake_rate_limits.window_start <= $4 THEN $3 ELSE intake_rate_limits.window_start END
		RETURNING hits, window_start`, bucket, keyHash, micros(now), micros(now.Add(-window))).Scan(&hits, &start)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("rate limit: %w", err)
	}
	return hits, fromMicros(start), nil
}

func (t pinTx) CreatePINSession(ctx context.Context, s intake.PINSession) error {
	_, err := t.exec(ctx, `INSERT INTO pin_sessions (id_hash, tenant_id, person_id, pin_id, kind, created_at, last_seen_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		s.IDHash, s.TenantID, s.PersonID, s.PINID, s.Kind, micros(s.CreatedAt), micros(s.LastSeenAt))
	if err != nil {
		return fmt.Errorf("insert pin session: %w", err)
	}
	return nil
}

func (p pinStore) ReadPINSession(ctx context.Context, idHash string) (intake.PINSession, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	return scanPINSession(p.s.db.QueryRowContext(ctx, p.s.rebind(pinSessionQuery), idHash))
}

func (p pinStore) Now() time.Time { return p.s.now() }

func (t pinTx) PINSessionByHash(ctx context.Context, idHash string) (intake.PINSession, error) {
	return scanPINSession(t.queryRow(ctx, pinSessionQuery, idHash))
}

const pinSessionQuery = `SELECT id_hash, tenant_id, person_id, pin_id, kind, created_at, last_seen_at, ended_at, end_reason, vorgang_id
	FROM pin_sessions WHERE id_hash = $1`

func scanPINSession(row *sql.Row) (intake.PINSession, error) {
	var (
		s             intake.PINSession
		created, seen int64
		ended         sql.NullInt64
		vorgang       sql.NullString
	)
	err := row.Scan(&s.IDHash, &s.TenantID, &s.PersonID, &s.PINID, &s.Kind, &created, &seen, &ended, &s.EndReason, &vorgang)
	if errors.Is(err, sql.ErrNoRows) {
		return s, intake.ErrPINSessionNotFound
	}
	if err != nil {
		return s, fmt.Errorf("get pin session: %w", err)
	}
	s.CreatedAt, s.LastSeenAt, s.EndedAt, s.VorgangID = fromMicros(created), fromMicros(seen), fromNullMicros(ended), vorgang.String
	return s, nil
}

func (t pinTx) TouchPINSession(ctx context.Context, idHash string, at time.Time) error {
	_, err := t.exec(ctx, `UPDATE pin_sessions SET last_seen_at = $1 WHERE id_hash = $2 AND ended_at IS NULL`, micros(at), idHash)
	if err != nil {
		return fmt.Errorf("touch pin session: %w", err)
	}
	return nil
}

func (t pinTx) EndPINSessions(ctx context.Context, tenantID, personID, idHash string, at time.Time, reason, vorgangID string) error {
	q := `UPDATE pin_sessions SET ended_at = $1, end_reason = $2, vorgang_id = $3
		WHERE tenant_id = $4 AND person_id = $5 AND ended_at IS NULL`
	args := []any{micros(at), reason, nullString(vorgangID), tenantID, personID}
	if idHash != "" {
		q += ` AND id_hash = $6`
		args = append(args, idHash)
	}
	if _, err := t.exec(ctx, q, args...); err != nil {
		return fmt.Errorf("end pin sessions: %w", err)
	}
	return nil
}

func (t pinTx) PurgePINSessions(ctx context.Context, tenantID, personID string, before time.Time) error {
	if _, err := t.exec(ctx, `DELETE FROM pin_sessions WHERE tenant_id = $1 AND person_id = $2 AND created_at < $3`,
		tenantID, personID, micros(before)); err != nil {
		return fmt.Errorf("purge pin sessions: %w", err)
	}
	return nil
}

func (t pinTx) PurgeStale(ctx context.Context, windowsBefore, zeroBefore, countersBefore, sessionsBefore time.Time) (int64, error) {
	var total int64
	for _, q := range []struct {
		sql string
		at  time.Time
	}{
		{`DELETE FROM intake_rate_limits WHERE window_start < $1`, windowsBefore},
		{`DELETE FROM pin_login_failures WHERE failures = 0 AND updated_at < $1`, zeroBefore},
		{`DELETE FROM pin_login_failures WHERE updated_at < $1`, countersBefore},
		{`DELETE FROM pin_sessions WHERE created_at < $1`, sessionsBefore},
	} {
		res, err := t.exec(ctx, q.sql, micros(q.at))
		if err != nil {
			return total, fmt.Errorf("purge: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
	}
	return total, nil
}
