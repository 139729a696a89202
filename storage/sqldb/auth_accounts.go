package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"postbox/auth"
)

const authAccountColumns = `id, tenant_id, role, username, email, display_name, person_id, password_hash, status, created_at,
	mobile, mobile_pending, org_id, salutation, given_name, family_name, profile, failed_logins, lock_reason, locked_at,
	password_changed_at, email_confirmed_at, mobile_confirmed_at, activated_at, security_question, security_answer_hash,
	consent_version, consent_at, invited_by, ended_at, updated_at, email_pending`

func scanAuthAccount(row interface{ Scan(...any) error }) (auth.Account, error) {
	var (
		a                                                        auth.Account
		role, status                                             string
		person                                                   sql.NullString
		created, locked, pwChanged, emailOK, mobileOK, activated int64
		consentAt, ended, updated                                int64
	)
	err := row.Scan(&a.ID, &a.TenantID, &role, &a.Username, &a.Email, &a.DisplayName, &person, &a.PasswordHash, &status, &created,
		&a.Mobile, &a.MobilePending, &a.OrgID, &a.Salutation, &a.GivenName, &a.FamilyName, &a.Profile, &a.FailedLogins, &a.LockReason, &locked,
		&pwChanged, &emailOK, &mobileOK, &activated, &a.SecurityQuestion, &a.SecurityAnswerHash,
		&a.ConsentVersion, &consentAt, &a.InvitedBy, &ended, &updated, &a.EmailPending)
	if errors.Is(err, sql.ErrNoRows) {
		return a, auth.ErrAccountNotFound
	}
	if err != nil {
		return a, fmt.Errorf("read account: %w", err)
	}
	a.Role, a.Status, a.PersonID = auth.Role(role), auth.AccountStatus(status), person.String
	a.CreatedAt, a.LockedAt, a.PasswordChangedAt = fromMicros(created), fromMicros(locked), fromMicros(pwChanged)
	a.EmailConfirmedAt, a.MobileConfirmedAt, a.ActivatedAt = fromMicros(emailOK), fromMicros(mobileOK), fromMicros(activated)
	a.ConsentAt, a.EndedAt, a.UpdatedAt = fromMicros(consentAt), fromMicros(ended), fromMicros(updated)
	return a, nil
}

func (t authTx) forUpdate() string {
	if t.s.dialect == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// CreateAccount stores an account with every auth field. Usernames and
// e-mail addresses are stored in lower case, so logins ignore case.
func (t authTx) CreateAccount(ctx context.Context, a auth.Account) error {
	if !a.Role.Valid() {
		return fmt.Errorf("account role %q is unknown", a.Role)
	}
	now := t.Now()
	if a.CreatedAt.IsZero() {
		a.CreatedAt = now
	}
	if a.Profile == "" {
		a.Profile = "{}"
	}
	var person sql.NullString
	if a.PersonID != "" {
		person = sql.NullString{String: a.PersonID, Valid: true}
	}
	_, err := t.exec(ctx, `INSERT INTO accounts (id, tenant_id, role, username, email, display_name, person_id, password_hash, status, created_at,
		mobile, mobile_pending, org_id, salutation, given_name, family_name, profile, failed_logins, lock_reason, locked_at,
		password_changed_at, email_confirmed_at, mobile_confirmed_at, activated_at, security_question, security_answer_hash,
		consent_version, consent_at, invited_by, ended_at, updated_at, email_pending)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
		$21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32)`,
		a.ID, a.TenantID, string(a.Role), strings.ToLower(a.Username), strings.ToLower(a.Email), a.DisplayName, person, a.PasswordHash, string(a.Status), micros(a.CreatedAt),
		a.Mobile, a.MobilePending, a.OrgID, a.Salutation, a.GivenName, a.FamilyName, a.Profile, a.FailedLogins, a.LockReason, micros(a.LockedAt),
		micros(a.PasswordChangedAt), micros(a.EmailConfirmedAt), micros(a.MobileConfirmedAt), micros(a.ActivatedAt), a.SecurityQuestion, a.SecurityAnswerHash,
		a.ConsentVersion, micros(a.ConsentAt), a.InvitedBy, micros(a.EndedAt), micros(now), strings.ToLower(a.EmailPending))
	if isUniqueViolation(err) {
		if strings.Contains(err.Error(), "person") {
			return fmt.Errorf("person %s: %w", a.PersonID, auth.ErrAlreadyRegistered)
		}
		return fmt.Errorf("username in %s: %w", a.TenantID, auth.ErrAccountExists)
	}
	if err != nil {
		return fmt.Errorf("insert account: %w", err)
	}
	return nil
}

func (t authTx) AccountByID(ctx context.Context, tenantID, id string) (auth.Account, error) {
	return scanAuthAccount(t.queryRow(ctx, `SELECT `+authAccountColumns+` FROM accounts WHERE tenant_id = $1 AND id = $2`+t.forUpdate(), tenantID, id))
}

func (t authTx) AccountByLogin(ctx context.Context, tenantID, username string) (auth.Account, error) {
	return scanAuthAccount(t.queryRow(ctx, `SELECT `+authAccountColumns+` FROM accounts WHERE tenant_id = $1 AND username = $2`+t.forUpdate(),
		tenantID, strings.ToLower(username)))
}

func (t authTx) accounts(ctx context.Context, where string, args ...any) ([]auth.Account, error) {
	rows, err := t.query(ctx, `SELECT `+authAccountColumns+` FROM accounts WHERE `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	return collect(rows, scanAuthAccount)
}

func (t authTx) AccountsByEmail(ctx context.Context, tenantID, email string) ([]auth.Account, error) {
	return t.accounts(ctx, `tenant_id = $1 AND email = $2 ORDER BY created_at`, tenantID, strings.ToLower(email))
}

func (t authTx) LiveAccountOfPerson(ctx context.Context, tenantID, personID string) (auth.Account, error) {
	list, err := t.accounts(ctx, `tenant_id = $1 AND person_id = $2 AND status <> 'ended'`, tenantID, personID)
	if err != nil {
		return auth.Account{}, err
	}
	if len(list) == 0 {
		return auth.Account{}, auth.ErrAccountNotFound
	}
	return list[0], nil
}

func (t authTx) AccountsOfOrg(ctx context.Context, tenantID, orgID string) ([]auth.Account, error) {
	return t.accounts(ctx, `tenant_id = $1 AND org_id = $2 ORDER BY created_at`, tenantID, orgID)
}

func (t authTx) ExpiredRegistrations(ctx context.Context, tenantID string, cutoff time.Time) ([]auth.Account, error) {
	return t.accounts(ctx, `tenant_id = $1 AND status = 'pending' AND email_confirmed_at = 0 AND created_at < $2`, tenantID, micros(cutoff))
}

func (t authTx) UpdateAccount(ctx context.Context, a auth.Account) error {
	if a.Profile == "" {
		a.Profile = "{}"
	}
	res, err := t.exec(ctx, `UPDATE accounts SET username = $1, email = $2, display_name = $3, password_hash = $4, status = $5,
		mobile = $6, mobile_pending = $7, org_id = $8, salutation = $9, given_name = $10, family_name = $11, profile = $12,
		failed_logins = $13, lock_reason = $14, locked_at = $15, password_changed_at = $16, email_confirmed_at = $17,
		mobile_confirmed_at = $18, activated_at = $19, security_question = $20, security_answer_hash = $21,
		consent_version = $22, consent_at = $23, invited_by = $24, ended_at = $25, updated_at = $26, email_pending = $27
		WHERE tenant_id = $28 AND id = $29`,
		strings.ToLower(a.Username), strings.ToLower(a.Email), a.DisplayName, a.PasswordHash, string(a.Status),
		a.Mobile, a.MobilePending, a.OrgID, a.Salutation, a.GivenName, a.FamilyName, a.Profile,
		a.FailedLogins, a.LockReason, micros(a.LockedAt), micros(a.PasswordChangedAt), micros(a.EmailConfirmedAt),
		micros(a.MobileConfirmedAt), micros(a.ActivatedAt), a.SecurityQuestion, a.SecurityAnswerHash,
		a.ConsentVersion, micros(a.ConsentAt), a.InvitedBy, micros(a.EndedAt), micros(t.Now()), strings.ToLower(a.EmailPending),
		a.TenantID, a.ID)
	if isUniqueViolation(err) {
		return fmt.Errorf("username in %s: %w", a.TenantID, auth.ErrAccountExists)
	}
	if err != nil {
		return fmt.Errorf("update account: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return auth.ErrAccountNotFound
	}
	return nil
}

func (t authTx) AddLoginFailure(ctx context.Context, tenantID, id string) (int, error) {
	var n int
	err := t.queryRow(ctx, `UPDATE accounts SET failed_logins = failed_logins + 1 WHERE tenant_id = $1 AND id = $2 RETURNING failed_logins`,
		tenantID, id).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, auth.ErrAccountNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("count login failure: %w", err)
	}
	return n, nil
}

func (t authTx) DeleteAccount(ctx context.Context, tenantID, id string) error {
	for _, q := range []string{
		`DELETE FROM auth_sessions WHERE tenant_id = $1 AND account_id = $2`,
		`DELETE FROM auth_password_history WHERE tenant_id = $1 AND account_id = $2`,
		`DELETE FROM auth_codes WHERE tenant_id = $1 AND account_id = $2`,
		`DELETE FROM auth_tokens WHERE tenant_id = $1 AND account_id = $2`,
		`DELETE FROM auth_devices WHERE tenant_id = $1 AND account_id = $2`,
		`DELETE FROM auth_consents WHERE tenant_id = $1 AND account_id = $2`,
		`DELETE FROM accounts WHERE tenant_id = $1 AND id = $2`,
	} {
		if _, err := t.exec(ctx, q, tenantID, id); err != nil {
			return fmt.Errorf("delete account: %w", err)
		}
	}
	return nil
}

func (t authTx) AddPasswordHistory(ctx context.Context, tenantID, accountID, hash string, at time.Time) error {
	_, err := t.exec(ctx, `INSERT INTO auth_password_history (id, tenant_id, account_id, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)`,
		uuid.NewString(), tenantID, accountID, hash, micros(at))
	if err != nil {
		return fmt.Errorf("password history: %w", err)
	}
	return nil
}

func (t authTx) PasswordHistory(ctx context.Context, tenantID, accountID string, n int) ([]string, error) {
	rows, err := t.query(ctx, `SELECT password_hash FROM auth_password_history WHERE tenant_id = $1 AND account_id = $2
		ORDER BY created_at DESC, id DESC LIMIT $3`, tenantID, accountID, n)
	if err != nil {
		return nil, fmt.Errorf("password history: %w", err)
	}
	return collect(rows, scanString)
}
