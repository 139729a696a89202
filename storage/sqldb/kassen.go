package sqldb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"postbox/kasse"
)

// CreateKasse stores a new tenant.
func (t *Tx) CreateKasse(ctx context.Context, k kasse.Kasse) error {
	if err := k.Validate(); err != nil {
		return err
	}
	settings, err := json.Marshal(k.Settings)
	if err != nil {
		return fmt.Errorf("encode settings: %w", err)
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = t.Now()
	}
	_, err = t.exec(ctx, `INSERT INTO kassen (id, name, portal_url, settings, created_at) VALUES ($1, $2, $3, $4, $5)`,
		k.ID, k.Name, k.PortalURL, string(settings), micros(k.CreatedAt))
	if isUniqueViolation(err) {
		return fmt.Errorf("kasse %s: %w", k.ID, kasse.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("insert kasse: %w", err)
	}
	return nil
}

// UpdateKasseSettings replaces a tenant's rule values.
func (t *Tx) UpdateKasseSettings(ctx context.Context, id string, s kasse.Settings) error {
	if err := s.Validate(); err != nil {
		return err
	}
	raw, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode settings: %w", err)
	}
	res, err := t.exec(ctx, `UPDATE kassen SET settings = $1 WHERE id = $2`, string(raw), id)
	if err != nil {
		return fmt.Errorf("update kasse settings: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("kasse %s: %w", id, kasse.ErrNotFound)
	}
	return nil
}

const kasseColumns = `id, name, portal_url, settings, created_at`

func scanKasse(row interface{ Scan(...any) error }) (kasse.Kasse, error) {
	var (
		k        kasse.Kasse
		settings string
		created  int64
	)
	if err := row.Scan(&k.ID, &k.Name, &k.PortalURL, &settings, &created); err != nil {
		return k, err
	}
	// Start from the defaults so a setting added later has its seed value
	// for Kassen stored before it existed.
	k.Settings = kasse.DefaultSettings()
	if err := json.Unmarshal([]byte(settings), &k.Settings); err != nil {
		return k, fmt.Errorf("decode settings of kasse %s: %w", k.ID, err)
	}
	k.CreatedAt = fromMicros(created)
	return k, nil
}

// Kasse returns one tenant.
func (s *Store) Kasse(ctx context.Context, id string) (kasse.Kasse, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	k, err := scanKasse(s.db.QueryRowContext(ctx, s.rebind(`SELECT `+kasseColumns+` FROM kassen WHERE id = $1`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return k, fmt.Errorf("kasse %s: %w", id, kasse.ErrNotFound)
	}
	return k, err
}

// Kassen lists all tenants ordered by id.
func (s *Store) Kassen(ctx context.Context) ([]kasse.Kasse, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+kasseColumns+` FROM kassen ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list kassen: %w", err)
	}
	return collect(rows, scanKasse)
}
