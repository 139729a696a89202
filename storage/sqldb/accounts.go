package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"postbox/auth"
)

// CreateAccount stores a login; the username is unique per tenant.
func (t *Tx) CreateAccount(ctx context.Context, a auth.Account) error {
	if !a.Role.Valid() {
		return fmt.Errorf("account role %q is unknown", a.Role)
	}
	if a.CreatedAt.IsZero() {
		a.CreatedAt = t.Now()
	}
	var person sql.NullString
	if a.PersonID != "" {
		person = sql.NullString{String: a.PersonID, Valid: true}
	}
	_, err := t.exec(ctx, `INSERT INTO accounts (id, tenant_id, role, username, email, display_name, person_id, password_hash, status, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		a.ID, a.TenantID, string(a.Role), a.Username, a.Email, a.DisplayName, person, a.PasswordHash, string(a.Status), micros(a.CreatedAt))
	if isUniqueViolation(err) {
		return fmt.Errorf("username in %s: %w", a.TenantID, auth.ErrAccountExists)
	}
	if err != nil {
		return fmt.Errorf("insert account: %w", err)
	}
	return nil
}

// AccountByUsername finds a login of one tenant.
func (s *Store) AccountByUsername(ctx context.Context, tenantID, username string) (auth.Account, error) {
	var (
		a            auth.Account
		role, status string
		person       sql.NullString
		created      int64
	)
	err := s.db.QueryRowContext(ctx, s.rebind(`SELECT id, tenant_id, role, username, email, display_name, person_id, password_hash, status, created_at
		FROM accounts WHERE tenant_id = $1 AND username = $2`), tenantID, username).
		Scan(&a.ID, &a.TenantID, &role, &a.Username, &a.Email, &a.DisplayName, &person, &a.PasswordHash, &status, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return a, auth.ErrAccountNotFound
	}
	if err != nil {
		return a, fmt.Errorf("get account: %w", err)
	}
	a.Role, a.Status, a.PersonID, a.CreatedAt = auth.Role(role), auth.AccountStatus(status), person.String, fromMicros(created)
	return a, nil
}

// SetPasswordHash replaces an account's password hash.
func (t *Tx) SetPasswordHash(ctx context.Context, tenantID, accountID, hash string) error {
	res, err := t.exec(ctx, `UPDATE accounts SET password_hash = $1 WHERE tenant_id = $2 AND id = $3`, hash, tenantID, accountID)
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return auth.ErrAccountNotFound
	}
	return nil
}
