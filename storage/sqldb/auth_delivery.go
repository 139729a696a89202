package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"postbox/kasse"
)

// SetPersonDelivery stores a person's preferred way of receiving letters
// (seed 004 "bevorzugte Versandart") and returns the previous value. The
// row is read with FOR UPDATE on PostgreSQL so two concurrent changes
// record the true "from" in their audit events. Another tenant's person is
// not found.
func (t *Tx) SetPersonDelivery(ctx context.Context, tenantID, personID string, d kasse.Delivery) (kasse.Delivery, error) {
	q := `SELECT delivery FROM persons WHERE tenant_id = $1 AND id = $2`
	if t.s.dialect == Postgres {
		q += ` FOR UPDATE`
	}
	var prev string
	err := t.queryRow(ctx, q, tenantID, personID).Scan(&prev)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("person: %w", kasse.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("read delivery: %w", err)
	}
	if _, err := t.exec(ctx, `UPDATE persons SET delivery = $3 WHERE tenant_id = $1 AND id = $2`, tenantID, personID, string(d)); err != nil {
		return "", fmt.Errorf("update delivery: %w", err)
	}
	return kasse.Delivery(prev), nil
}
