package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"postbox/auth"
	"postbox/kasse"
)

// Auth returns the auth domain's view of the store.
func (s *Store) Auth() auth.Store { return authStore{s} }

// Auth returns the auth domain's view of this transaction, for callers that
// start a session inside their own transaction (e.g. the Einmal-PIN login).
func (t *Tx) Auth() auth.Tx { return authTx{t} }

type authStore struct{ s *Store }

type authTx struct{ *Tx }

func (a authStore) InTx(ctx context.Context, fn func(tx auth.Tx) error) error {
	return a.s.InTx(ctx, func(tx *Tx) error { return fn(authTx{tx}) })
}

func (a authStore) Now() time.Time { return a.s.now() }

func (a authStore) Kasse(ctx context.Context, id string) (kasse.Kasse, error) {
	return a.s.Kasse(ctx, id)
}

const sessionColumns = `s.id, s.token_hash, s.tenant_id, s.account_id, s.role, s.person_id, s.org_id, s.stage, s.data, s.client_hash,
	s.created_at, s.last_seen_at, s.expires_at, s.step_up_at, COALESCE(a.status, '')`

// The account is joined so a session of a locked or ended account is never
// honoured, even before its rows are deleted.
const sessionFrom = ` FROM auth_sessions s LEFT JOIN accounts a ON a.id = s.account_id AND a.tenant_id = s.tenant_id`

func scanSession(row interface{ Scan(...any) error }) (auth.Session, error) {
	var (
		s                              auth.Session
		role, stage, status            string
		created, seen, expires, stepUp int64
	)
	err := row.Scan(&s.ID, &s.TokenHash, &s.TenantID, &s.AccountID, &role, &s.PersonID, &s.OrgID, &stage, &s.Data, &s.ClientHash,
		&created, &seen, &expires, &stepUp, &status)
	if errors.Is(err, sql.ErrNoRows) {
		return s, auth.ErrSessionNotFound
	}
	if err != nil {
		return s, fmt.Errorf("read session: %w", err)
	}
	s.Role, s.Stage, s.AccountStatus = auth.Role(role), auth.Stage(stage), auth.AccountStatus(status)
	s.CreatedAt, s.LastSeenAt, s.ExpiresAt, s.StepUpAt = fromMicros(created), fromMicros(seen), fromMicros(expires), fromMicros(stepUp)
	return s, nil
}

func (a authStore) SessionByTokenHash(ctx context.Context, hash string) (auth.Session, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	return scanSession(a.s.db.QueryRowContext(ctx, a.s.rebind(`SELECT `+sessionColumns+sessionFrom+` WHERE s.token_hash = $1`), hash))
}

func (a authStore) TouchSession(ctx context.Context, id string, at time.Time) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	_, err := a.s.db.ExecContext(ctx, a.s.rebind(`UPDATE auth_sessions SET last_seen_at = $1 WHERE id = $2 AND last_seen_at < $1`), micros(at), id)
	if err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	return nil
}

func (t authTx) CreateSession(ctx context.Context, s auth.Session) error {
	_, err := t.exec(ctx, `INSERT INTO auth_sessions (id, token_hash, tenant_id, account_id, role, person_id, org_id, stage, data, client_hash,
		created_at, last_seen_at, expires_at, step_up_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		s.ID, s.TokenHash, s.TenantID, s.AccountID, string(s.Role), s.PersonID, s.OrgID, string(s.Stage), s.Data, s.ClientHash,
		micros(s.CreatedAt), micros(s.LastSeenAt), micros(s.ExpiresAt), micros(s.StepUpAt))
	if err != nil {
		return fmt.Errorf("insert session: %w", err)
	}
	return nil
}

func (t authTx) SessionByTokenHash(ctx context.Context, hash string) (auth.Session, error) {
	return scanSession(t.queryRow(ctx, `SELECT `+sessionColumns+sessionFrom+` WHERE s.token_hash = $1`, hash))
}

// UpdateSession stores the mutable fields of a session: its stage, login
// state, step-up time and role data (after a login step completes).
func (t authTx) UpdateSession(ctx context.Context, s auth.Session) error {
	res, err := t.exec(ctx, `UPDATE auth_sessions SET stage = $1, data = $2, step_up_at = $3, last_seen_at = $4 WHERE id = $5`,
		string(s.Stage), s.Data, micros(s.StepUpAt), micros(s.LastSeenAt), s.ID)
	if err != nil {
		return fmt.Errorf("update session: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return auth.ErrSessionNotFound
	}
	return nil
}

func (t authTx) DeleteSession(ctx context.Context, id string) error {
	if _, err := t.exec(ctx, `DELETE FROM auth_sessions WHERE id = $1`, id); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

func (t authTx) DeleteAccountSessions(ctx context.Context, tenantID, accountID, keep string) (int, error) {
	if accountID == "" {
		return 0, nil // never the Einmal-PIN sessions, which have no account
	}
	res, err := t.exec(ctx, `DELETE FROM auth_sessions WHERE tenant_id = $1 AND account_id = $2 AND id <> $3`, tenantID, accountID, keep)
	if err != nil {
		return 0, fmt.Errorf("delete sessions: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

func (t authTx) DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	res, err := t.exec(ctx, `DELETE FROM auth_sessions WHERE expires_at <= $1`, micros(now))
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

func (a authStore) Kassen(ctx context.Context) ([]kasse.Kasse, error) { return a.s.Kassen(ctx) }

func (a authStore) PersonByKVNR(ctx context.Context, tenantID, kvnr string) (kasse.Person, error) {
	return a.s.PersonByKVNR(ctx, tenantID, kvnr)
}

func (a authStore) Person(ctx context.Context, tenantID, id string) (kasse.Person, error) {
	return a.s.Person(ctx, tenantID, id)
}
