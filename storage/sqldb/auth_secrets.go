package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"postbox/auth"
)

// One-time codes, tokens, devices, consents and rate limits of the auth store.

func (t authTx) CreateCode(ctx context.Context, c auth.Code) error {
	_, err := t.exec(ctx, `INSERT INTO auth_codes (id, tenant_id, account_id, purpose, code_hash, attempts, created_at, expires_at, used_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		c.ID, c.TenantID, c.AccountID, c.Purpose, c.Hash, c.Attempts, micros(c.CreatedAt), micros(c.ExpiresAt), micros(c.UsedAt))
	if err != nil {
		return fmt.Errorf("insert code: %w", err)
	}
	return nil
}

func (t authTx) ActiveCodes(ctx context.Context, tenantID, accountID, purpose string, now time.Time) ([]auth.Code, error) {
	rows, err := t.query(ctx, `SELECT id, tenant_id, account_id, purpose, code_hash, attempts, created_at, expires_at, used_at
		FROM auth_codes WHERE tenant_id = $1 AND account_id = $2 AND purpose = $3 AND used_at = 0 AND expires_at > $4
		ORDER BY created_at DESC`, tenantID, accountID, purpose, micros(now))
	if err != nil {
		return nil, fmt.Errorf("active codes: %w", err)
	}
	defer rows.Close()
	var out []auth.Code
	for rows.Next() {
		var (
			c                      auth.Code
			created, expires, used int64
		)
		if err := rows.Scan(&c.ID, &c.TenantID, &c.AccountID, &c.Purpose, &c.Hash, &c.Attempts, &created, &expires, &used); err != nil {
			return nil, err
		}
		c.CreatedAt, c.ExpiresAt, c.UsedAt = fromMicros(created), fromMicros(expires), fromMicros(used)
		out = append(out, c)
	}
	return out, rows.Err()
}

func (t authTx) UpdateCode(ctx context.Context, c auth.Code) error {
	_, err := t.exec(ctx, `UPDATE auth_codes SET attempts = $1, used_at = $2, expires_at = $3 WHERE tenant_id = $4 AND id = $5`,
		c.Attempts, micros(c.UsedAt), micros(c.ExpiresAt), c.TenantID, c.ID)
	if err != nil {
		return fmt.Errorf("update code: %w", err)
	}
	return nil
}

func (t authTx) InvalidateCodes(ctx context.Context, tenantID, accountID, purpose string, now time.Time) error {
	_, err := t.exec(ctx, `UPDATE auth_codes SET expires_at = $1 WHERE tenant_id = $2 AND account_id = $3 AND purpose = $4 AND used_at = 0 AND expires_at > $1`,
		micros(now), tenantID, accountID, purpose)
	if err != nil {
		return fmt.Errorf("invalidate codes: %w", err)
	}
	return nil
}

func (t authTx) CountCodesSince(ctx context.Context, tenantID, accountID string, since time.Time) (int, error) {
	var n int
	err := t.queryRow(ctx, `SELECT COUNT(*) FROM auth_codes WHERE tenant_id = $1 AND account_id = $2 AND created_at >= $3`,
		tenantID, accountID, micros(since)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count codes: %w", err)
	}
	return n, nil
}

const tokenColumns = `id, tenant_id, account_id, purpose, token_hash, ref_id, attempts, created_at, expires_at, used_at, revoked_at`

func scanToken(row interface{ Scan(...any) error }) (auth.Token, error) {
	var (
		tk                              auth.Token
		created, expires, used, revoked int64
	)
	err := row.Scan(&tk.ID, &tk.TenantID, &tk.AccountID, &tk.Purpose, &tk.Hash, &tk.RefID, &tk.Attempts, &created, &expires, &used, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return tk, auth.ErrTokenInvalid
	}
	if err != nil {
		return tk, fmt.Errorf("read token: %w", err)
	}
	tk.CreatedAt, tk.ExpiresAt, tk.UsedAt, tk.RevokedAt = fromMicros(created), fromMicros(expires), fromMicros(used), fromMicros(revoked)
	return tk, nil
}

func (t authTx) CreateToken(ctx context.Context, tk auth.Token) error {
	_, err := t.exec(ctx, `INSERT INTO auth_tokens (`+tokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		tk.ID, tk.TenantID, tk.AccountID, tk.Purpose, tk.Hash, tk.RefID, tk.Attempts, micros(tk.CreatedAt), micros(tk.ExpiresAt), micros(tk.UsedAt), micros(tk.RevokedAt))
	if err != nil {
		return fmt.Errorf("insert token: %w", err)
	}
	return nil
}

func (t authTx) TokenByHash(ctx context.Context, purpose, hash string) (auth.Token, error) {
	return scanToken(t.queryRow(ctx, `SELECT `+tokenColumns+` FROM auth_tokens WHERE purpose = $1 AND token_hash = $2`+t.forUpdate(), purpose, hash))
}

func (t authTx) LatestToken(ctx context.Context, tenantID, accountID, purpose string) (auth.Token, error) {
	return scanToken(t.queryRow(ctx, `SELECT `+tokenColumns+` FROM auth_tokens WHERE tenant_id = $1 AND account_id = $2 AND purpose = $3
		ORDER BY created_at DESC, id DESC LIMIT 1`, tenantID, accountID, purpose))
}

func (t authTx) TokenOfRef(ctx context.Context, tenantID, accountID, purpose, refID string) (auth.Token, error) {
	return scanToken(t.queryRow(ctx, `SELECT `+tokenColumns+` FROM auth_tokens WHERE tenant_id = $1 AND account_id = $2 AND purpose = $3 AND ref_id = $4
		ORDER BY created_at DESC, id DESC LIMIT 1`+t.forUpdate(), tenantID, accountID, purpose, refID))
}

func (t authTx) UpdateToken(ctx context.Context, tk auth.Token) error {
	_, err := t.exec(ctx, `UPDATE auth_tokens SET attempts = $1, used_at = $2, revoked_at = $3, ref_id = $4 WHERE tenant_id = $5 AND id = $6`,
		tk.Attempts, micros(tk.UsedAt), micros(tk.RevokedAt), tk.RefID, tk.TenantID, tk.ID)
	if err != nil {
		return fmt.Errorf("update token: %w", err)
	}
	return nil
}

func (t authTx) RevokeTokens(ctx context.Context, tenantID, accountID, purpose string, now time.Time) error {
	_, err := t.exec(ctx, `UPDATE auth_tokens SET revoked_at = $1 WHERE tenant_id = $2 AND account_id = $3 AND purpose = $4 AND used_at = 0 AND revoked_at = 0`,
		micros(now), tenantID, accountID, purpose)
	if err != nil {
		return fmt.Errorf("revoke tokens: %w", err)
	}
	return nil
}

const deviceColumns = `id, tenant_id, account_id, name, status, secret_sealed, pin_hash, last_step, created_at, activated_at, last_used_at, removed_at`

func (t authTx) CreateDevice(ctx context.Context, d auth.Device) error {
	_, err := t.exec(ctx, `INSERT INTO auth_devices (`+deviceColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		d.ID, d.TenantID, d.AccountID, d.Name, string(d.Status), d.SecretSealed, d.PINHash, d.LastStep,
		micros(d.CreatedAt), micros(d.ActivatedAt), micros(d.LastUsedAt), micros(d.RemovedAt))
	if err != nil {
		return fmt.Errorf("insert device: %w", err)
	}
	return nil
}

func (t authTx) DevicesOfAccount(ctx context.Context, tenantID, accountID string) ([]auth.Device, error) {
	rows, err := t.query(ctx, `SELECT `+deviceColumns+` FROM auth_devices WHERE tenant_id = $1 AND account_id = $2 ORDER BY created_at, id`, tenantID, accountID)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	defer rows.Close()
	var out []auth.Device
	for rows.Next() {
		var (
			d                                 auth.Device
			status                            string
			created, activated, used, removed int64
		)
		if err := rows.Scan(&d.ID, &d.TenantID, &d.AccountID, &d.Name, &status, &d.SecretSealed, &d.PINHash, &d.LastStep,
			&created, &activated, &used, &removed); err != nil {
			return nil, err
		}
		d.Status = auth.DeviceStatus(status)
		d.CreatedAt, d.ActivatedAt, d.LastUsedAt, d.RemovedAt = fromMicros(created), fromMicros(activated), fromMicros(used), fromMicros(removed)
		out = append(out, d)
	}
	return out, rows.Err()
}

func (t authTx) UpdateDevice(ctx context.Context, d auth.Device) error {
	_, err := t.exec(ctx, `UPDATE auth_devices SET name = $1, status = $2, secret_sealed = $3, pin_hash = $4, activated_at = $5,
		last_used_at = $6, removed_at = $7 WHERE tenant_id = $8 AND id = $9`,
		d.Name, string(d.Status), d.SecretSealed, d.PINHash, micros(d.ActivatedAt), micros(d.LastUsedAt), micros(d.RemovedAt), d.TenantID, d.ID)
	if err != nil {
		return fmt.Errorf("update device: %w", err)
	}
	return nil
}

// UseDeviceStep is a compare-and-set, so two requests with the same code
// cannot both pass even on two replicas.
func (t authTx) UseDeviceStep(ctx context.Context, tenantID, deviceID string, step int64, at time.Time) (bool, error) {
	res, err := t.exec(ctx, `UPDATE auth_devices SET last_step = $1, last_used_at = $2 WHERE tenant_id = $3 AND id = $4 AND last_step < $1`,
		step, micros(at), tenantID, deviceID)
	if err != nil {
		return false, fmt.Errorf("use device step: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

func (t authTx) CreateConsent(ctx context.Context, c auth.Consent) error {
	_, err := t.exec(ctx, `INSERT INTO auth_consents (id, tenant_id, account_id, text_version, text_hash, given_at, revoked_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, c.ID, c.TenantID, c.AccountID, c.TextVersion, c.TextHash, micros(c.GivenAt), micros(c.RevokedAt))
	if err != nil {
		return fmt.Errorf("insert consent: %w", err)
	}
	return nil
}

func (t authTx) RevokeConsents(ctx context.Context, tenantID, accountID string, at time.Time) (int, error) {
	res, err := t.exec(ctx, `UPDATE auth_consents SET revoked_at = $1 WHERE tenant_id = $2 AND account_id = $3 AND revoked_at = 0`,
		micros(at), tenantID, accountID)
	if err != nil {
		return 0, fmt.Errorf("revoke consents: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// HitRateLimit is one upsert, atomic on both backends: a window older than
// windowStart restarts at now with one hit.
func (t authTx) HitRateLimit(ctx context.Context, bucket string, windowStart, now time.Time) (int, error) {
	var hits int
	err := t.queryRow(ctx, `INSERT INTO auth_rate_limits (bucket, window_start, hits) VALUES ($1, $2, 1)
		ON CONFLICT (bucket) DO UPDATE SET
			hits = CASE WHEN auth_rate_limits.window_start < $3 THEN 1 ELSE auth_rate_limits.hits + 1 END,
			window_start = CASE WHEN auth_rate_limits.window_start < $3 THEN $2 ELSE auth_rate_limits.window_start END
		RETURNING hits`, bucket, micros(now), micros(windowStart)).Scan(&hits)
	if err != nil {
		return 0, fmt.Errorf("rate limit: %w", err)
	}
	return hits, nil
}

func (t authTx) DeleteRateLimitsBefore(ctx context.Context, before time.Time) error {
	if _, err := t.exec(ctx, `DELETE FROM auth_rate_limits WHERE window_start < $1`, micros(before)); err != nil {
		return fmt.Errorf("delete rate limits: %w", err)
	}
	return nil
}
