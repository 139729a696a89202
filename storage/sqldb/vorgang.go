package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"postbox/audit"
)

// ErrVorgangNotFound is returned for an unknown Vorgang or one of another tenant.
var ErrVorgangNotFound = errors.New("vorgang not found")

// CreateVorgang stores a new Vorgang in status "eingegangen" with the first
// entry of its timeline. With an idempotency key, a second call with the same
// key returns the Vorgang created first (created=false) instead of a copy, so
// a double-clicked submission makes one Vorgang.
func (t *Tx) CreateVorgang(ctx context.Context, v audit.Vorgang, idempotencyKey, actorID string) (_ audit.Vorgang, created bool, err error) {
	if !v.Type.Valid() {
		return v, false, fmt.Errorf("unknown case type %q", v.Type)
	}
	if idempotencyKey != "" {
		existing, err := t.vorgangBy(ctx, `tenant_id = $1 AND idempotency_key = $2`, v.TenantID, idempotencyKey)
		if err == nil {
			return existing, false, nil
		}
		if !errors.Is(err, ErrVorgangNotFound) {
			return v, false, err
		}
	}
	if v.ID == "" {
		v.ID = uuid.NewString()
	}
	now := t.Now()
	v.Status, v.CreatedAt, v.UpdatedAt = audit.StatusEingegangen, now, now
	var key sql.NullString
	if idempotencyKey != "" {
		key = sql.NullString{String: idempotencyKey, Valid: true}
	}
	if _, err := t.exec(ctx, `INSERT INTO vorgaenge (id, tenant_id, person_id, case_type, status, title, idempotency_key, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		v.ID, v.TenantID, v.PersonID, string(v.Type), string(v.Status), v.Title, key, micros(now), micros(now)); err != nil {
		return v, false, fmt.Errorf("insert vorgang: %w", err)
	}
	if err := t.addStatusHistory(ctx, audit.StatusChange{TenantID: v.TenantID, VorgangID: v.ID, To: v.Status, ActorID: actorID, At: now}); err != nil {
		return v, false, err
	}
	return v, true, nil
}

// ChangeVorgangStatus moves a Vorgang along the status model and records the
// step with its reason. A forbidden step returns audit.ErrTransition.
func (t *Tx) ChangeVorgangStatus(ctx context.Context, tenantID, vorgangID string, to audit.Status, reason, actorID string) (audit.StatusChange, error) {
	lock := ""
	if t.s.dialect == Postgres {
		lock = " FOR UPDATE"
	}
	v, err := t.vorgangBy(ctx, `tenant_id = $1 AND id = $2`+lock, tenantID, vorgangID)
	if err != nil {
		return audit.StatusChange{}, err
	}
	if err := audit.CheckTransition(v.Status, to); err != nil {
		return audit.StatusChange{}, err
	}
	now := t.Now()
	if _, err := t.exec(ctx, `UPDATE vorgaenge SET status = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4`,
		string(to), micros(now), tenantID, vorgangID); err != nil {
		return audit.StatusChange{}, fmt.Errorf("update vorgang status: %w", err)
	}
	ch := audit.StatusChange{TenantID: tenantID, VorgangID: vorgangID, From: v.Status, To: to, Reason: reason, ActorID: actorID, At: now}
	return ch, t.addStatusHistory(ctx, ch)
}

func (t *Tx) addStatusHistory(ctx context.Context, ch audit.StatusChange) error {
	if ch.ID == "" {
		ch.ID = uuid.NewString()
	}
	_, err := t.exec(ctx, `INSERT INTO vorgang_status_history (id, tenant_id, vorgang_id, from_status, to_status, reason, actor_id, at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		ch.ID, ch.TenantID, ch.VorgangID, string(ch.From), string(ch.To), ch.Reason, ch.ActorID, micros(ch.At))
	if err != nil {
		return fmt.Errorf("insert status history: %w", err)
	}
	return nil
}

const vorgangColumns = `id, tenant_id, person_id, case_type, status, title, created_at, updated_at`

func scanVorgang(row interface{ Scan(...any) error }) (audit.Vorgang, error) {
	var (
		v                audit.Vorgang
		typ, status      string
		created, updated int64
	)
	err := row.Scan(&v.ID, &v.TenantID, &v.PersonID, &typ, &status, &v.Title, &created, &updated)
	v.Type, v.Status, v.CreatedAt, v.UpdatedAt = audit.CaseType(typ), audit.Status(status), fromMicros(created), fromMicros(updated)
	return v, err
}

func (t *Tx) vorgangBy(ctx context.Context, where string, args ...any) (audit.Vorgang, error) {
	v, err := scanVorgang(t.queryRow(ctx, `SELECT `+vorgangColumns+` FROM vorgaenge WHERE `+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return v, ErrVorgangNotFound
	}
	return v, err
}

// Vorgang returns one Vorgang of a tenant.
func (s *Store) Vorgang(ctx context.Context, tenantID, id string) (audit.Vorgang, error) {
	v, err := scanVorgang(s.db.QueryRowContext(ctx, s.rebind(`SELECT `+vorgangColumns+` FROM vorgaenge WHERE tenant_id = $1 AND id = $2`), tenantID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return v, ErrVorgangNotFound
	}
	return v, err
}

// VorgaengeOfPerson lists a person's Vorgänge, newest first.
func (s *Store) VorgaengeOfPerson(ctx context.Context, tenantID, personID string) ([]audit.Vorgang, error) {
	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT `+vorgangColumns+` FROM vorgaenge WHERE tenant_id = $1 AND person_id = $2 ORDER BY created_at DESC, id`), tenantID, personID)
	if err != nil {
		return nil, fmt.Errorf("list vorgaenge: %w", err)
	}
	return collect(rows, scanVorgang)
}

// VorgangTimeline returns a Vorgang's status steps, oldest first.
func (s *Store) VorgangTimeline(ctx context.Context, tenantID, vorgangID string) ([]audit.StatusChange, error) {
	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT id, tenant_id, vorgang_id, from_status, to_status, reason, actor_id, at
		FROM vorgang_status_history WHERE tenant_id = $1 AND vorgang_id = $2 ORDER BY at, id`), tenantID, vorgangID)
	if err != nil {
		return nil, fmt.Errorf("vorgang timeline: %w", err)
	}
	defer rows.Close()
	var out []audit.StatusChange
	for rows.Next() {
		var (
			ch       audit.StatusChange
			from, to string
			at       int64
		)
		if err := rows.Scan(&ch.ID, &ch.TenantID, &ch.VorgangID, &from, &to, &ch.Reason, &ch.ActorID, &at); err != nil {
			return nil, err
		}
		ch.From, ch.To, ch.At = audit.Status(from), audit.Status(to), fromMicros(at)
		out = append(out, ch)
	}
	return out, rows.Err()
}
