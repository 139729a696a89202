package sqldb

import (
	"context"
	"fmt"

	"postbox/intake"
)

// CreatePIN stores a new Einmal-PIN (its keyed hash only).
func (t *Tx) CreatePIN(ctx context.Context, p intake.EinmalPIN) error {
	if p.CreatedAt.IsZero() {
		p.CreatedAt = t.Now()
	}
	_, err := t.exec(ctx, `INSERT INTO einmal_pins (id, tenant_id, person_id, pin_hash, request_text, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		p.ID, p.TenantID, p.PersonID, p.Hash, p.RequestText, micros(p.CreatedAt), micros(p.ExpiresAt))
	if err != nil {
		return fmt.Errorf("insert einmal-pin: %w", err)
	}
	return nil
}
