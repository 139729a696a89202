package sqldb

import (
	"context"
	"fmt"
	"time"
)

// TryLease takes or renews the lease on a periodic job for holder until
// ttl from now and reports whether holder has it: it has when nobody held
// it, when holder held it already, or when the lease of another holder has
// expired (that replica died or stopped). One statement, so two replicas
// asking at once cannot both win.
func (s *Store) TryLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	now := s.now()
	res, err := s.db.ExecContext(ctx, s.rebind(`INSERT INTO job_leases (name, holder, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE job_leases.holder = excluded.holder OR job_leases.expires_at <= $4`),
		name, holder, micros(now.Add(ttl)), micros(now))
	if err != nil {
		return false, fmt.Errorf("lease %s: %w", name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("lease %s: %w", name, err)
	}
	return n == 1, nil
}

// ReleaseLease gives up holder's lease on a job (a clean stop), so another
// replica takes it over at its next period instead of after the expiry.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := s.db.ExecContext(ctx, s.rebind(`DELETE FROM job_leases WHERE name = $1 AND holder = $2`), name, holder); err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}
