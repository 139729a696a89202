package sqldb

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"postbox/audit"
	"postbox/notifier"
)

// Vorgaenge returns the store as the Vorgang service sees it.
func (s *Store) Vorgaenge() audit.VorgangStore { return vorgangStore{s} }

// vorgangStore adapts Store to audit.VorgangStore: it maps this package's
// not-found error to the domain's.
type vorgangStore struct{ *Store }

// vorgangTx adapts Tx to audit.VorgangTx.
type vorgangTx struct{ *Tx }

func (v vorgangStore) InTx(ctx context.Context, fn func(audit.VorgangTx) error) error {
	return v.Store.InTx(ctx, func(tx *Tx) error { return fn(vorgangTx{tx}) })
}

func domainErr(err error) error {
	if errors.Is(err, ErrVorgangNotFound) {
		return audit.ErrNotFound
	}
	return err
}

func (v vorgangStore) Vorgang(ctx context.Context, tenantID, id string) (audit.Vorgang, error) {
	vg, err := v.Store.Vorgang(ctx, tenantID, id)
	return vg, domainErr(err)
}

func (v vorgangStore) VorgangTimeline(ctx context.Context, tenantID, vorgangID string) ([]audit.StatusChange, error) {
	return v.Store.VorgangTimeline(ctx, tenantID, vorgangID)
}

// VorgaengeOfTenant lists a tenant's Vorgänge newest first, by (created_at,
// id) descending so the cursor is exact.
func (v vorgangStore) VorgaengeOfTenant(ctx context.Context, tenantID string, f audit.VorgangFilter) ([]audit.Vorgang, error) {
	conds, args := []string{"tenant_id = $1"}, []any{tenantID}
	add := func(cond string, a ...any) {
		for _, x := range a {
			args = append(args, x)
			cond = strings.Replace(cond, "?", fmt.Sprintf("$%d", len(args)), 1)
		}
		conds = append(conds, cond)
	}
	if f.Status != "" {
		add("status = ?", string(f.Status))
	}
	if f.Type != "" {
		add("case_type = ?", string(f.Type))
	}
	if c := f.Before; c != nil {
		us := micros(c.CreatedAt)
		add("(created_at < ? OR (created_at = ? AND id < ?))", us, us, c.ID)
	}
	q := `SELECT ` + vorgangColumns + ` FROM vorgaenge WHERE ` + strings.Join(conds, " AND ") + ` ORDER BY created_at DESC, id DESC`
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := v.db.QueryContext(ctx, v.rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("list vorgaenge of tenant: %w", err)
	}
	defer rows.Close()
	var out []audit.Vorgang
	for rows.Next() {
		vg, err := scanVorgang(rows)
		if err != nil {
			return nil, fmt.Errorf("list vorgaenge of tenant: %w", err)
		}
		out = append(out, vg)
	}
	return out, rows.Err()
}

// ChangeVorgangStatus locks the Vorgang, refuses a change based on a stale
// view (from differs from the current status) and then moves it.
func (t vorgangTx) ChangeVorgangStatus(ctx context.Context, tenantID, vorgangID string, from *audit.Status, to audit.Status, reason, actorID string) (audit.StatusChange, audit.Vorgang, error) {
	lock := ""
	if t.s.dialect == Postgres {
		lock = " FOR UPDATE"
	}
	v, err := t.vorgangBy(ctx, `tenant_id = $1 AND id = $2`+lock, tenantID, vorgangID)
	if err != nil {
		return audit.StatusChange{}, v, domainErr(err)
	}
	if from != nil && *from != v.Status {
		return audit.StatusChange{}, v, &audit.StaleError{Current: v.Status}
	}
	ch, err := t.Tx.ChangeVorgangStatus(ctx, tenantID, vorgangID, to, reason, actorID)
	if err != nil {
		return ch, v, domainErr(err)
	}
	v.Status, v.UpdatedAt = ch.To, ch.At
	return ch, v, nil
}

// EnqueueStatusNotice queues the content-free "Neuigkeiten zu Ihrem
// Vorgang" mail: the Kasse's name and portal address are all it carries.
func (t vorgangTx) EnqueueStatusNotice(ctx context.Context, n audit.StatusNotice) error {
	_, err := t.EnqueueMail(ctx, notifier.Job{
		TenantID:  n.TenantID,
		Recipient: n.Recipient,
		Template:  notifier.TemplateStatusChanged,
		Data: map[string]string{
			notifier.DataKasseName: n.KasseName,
			notifier.DataPortalURL: n.PortalURL,
		},
		PersonID:       n.PersonID,
		CoalesceKey:    "vorgang-status:" + n.TenantID + ":" + n.PersonID,
		CoalesceWindow: n.Window,
	})
	return err
}
