package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"postbox/kasse"
)

// CreatePerson stores an insured person of a tenant.
func (t *Tx) CreatePerson(ctx context.Context, p kasse.Person) error {
	if err := kasse.ValidateKVNR(p.KVNR); err != nil {
		return err
	}
	if p.Delivery == "" {
		p.Delivery = kasse.DeliveryPost
	}
	if p.CreatedAt.IsZero() {
		p.CreatedAt = t.Now()
	}
	_, err := t.exec(ctx, `INSERT INTO persons (id, tenant_id, kvnr, given_name, family_name, street, postal_code, city,
		birth_date, egk_valid_until, email, delivery, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		p.ID, p.TenantID, p.KVNR, p.GivenName, p.FamilyName, p.Street, p.PostalCode, p.City,
		p.BirthDate, micros(p.EGKValidUntil), p.Email, string(p.Delivery), micros(p.CreatedAt))
	if isUniqueViolation(err) {
		return fmt.Errorf("person with this KVNR in %s: %w", p.TenantID, kasse.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("insert person: %w", err)
	}
	return nil
}

const personColumns = `id, tenant_id, kvnr, given_name, family_name, street, postal_code, city,
	birth_date, egk_valid_until, email, delivery, created_at`

func scanPerson(row interface{ Scan(...any) error }) (kasse.Person, error) {
	var (
		p            kasse.Person
		egk, created int64
		delivery     string
	)
	err := row.Scan(&p.ID, &p.TenantID, &p.KVNR, &p.GivenName, &p.FamilyName, &p.Street, &p.PostalCode, &p.City,
		&p.BirthDate, &egk, &p.Email, &delivery, &created)
	p.EGKValidUntil, p.CreatedAt, p.Delivery = fromMicros(egk), fromMicros(created), kasse.Delivery(delivery)
	return p, err
}

// PersonByKVNR finds a person of one tenant.
func (s *Store) PersonByKVNR(ctx context.Context, tenantID, kvnr string) (kasse.Person, error) {
	p, err := scanPerson(s.db.QueryRowContext(ctx, s.rebind(`SELECT `+personColumns+` FROM persons WHERE tenant_id = $1 AND kvnr = $2`), tenantID, kvnr))
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("person: %w", kasse.ErrNotFound)
	}
	return p, err
}

// Person returns a person of one tenant by id; another tenant's id is not found.
func (s *Store) Person(ctx context.Context, tenantID, id string) (kasse.Person, error) {
	p, err := scanPerson(s.db.QueryRowContext(ctx, s.rebind(`SELECT `+personColumns+` FROM persons WHERE tenant_id = $1 AND id = $2`), tenantID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("person: %w", kasse.ErrNotFound)
	}
	return p, err
}
