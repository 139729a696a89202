package auth

import (
	"context"
	"errors"
	"fmt"

	"postbox/audit"
	"postbox/kasse"
)

// The delivery preference (seed 004: "bevorzugte Versandart … Option
// „Online“"): with "online" letters the Kasse used to post arrive in the
// Postfach with an e-mail hint, with "post" they come by post. It is
// neither personal nor contact data, so unlike UpdateProfile it needs no
// fresh security code (step-up); it is audited like every own-account
// change.

// Delivery returns the insured principal's current delivery preference.
func (s *Service) Delivery(ctx context.Context, p Principal) (kasse.Delivery, error) {
	var d kasse.Delivery
	err := s.store.InTx(ctx, func(tx Tx) error {
		a, err := s.deliveryAccount(ctx, tx, p)
		if err != nil {
			return err
		}
		person, err := s.store.Person(ctx, a.TenantID, a.PersonID)
		if errors.Is(err, kasse.ErrNotFound) {
			return ErrNotAllowed
		}
		if err != nil {
			return err
		}
		d = person.Delivery
		return nil
	})
	return d, err
}

// SetDelivery changes the insured principal's delivery preference and
// records auth.delivery.changed with {from,to} in the same
// transaction. Other roles and persons of another tenant get
// ErrNotAllowed (answered as 404); an unknown value a German FieldError.
// Choosing the current value again changes nothing and records nothing.
func (s *Service) SetDelivery(ctx context.Context, m Meta, p Principal, d kasse.Delivery) error {
	return s.inTx(ctx, func(tx Tx) error {
		a, err := s.deliveryAccount(ctx, tx, p)
		if err != nil {
			return err
		}
		if d != kasse.DeliveryOnline && d != kasse.DeliveryPost {
			return FieldErrors{{Field: "delivery", Message: "Bitte wählen Sie als Versandart „Online“ (Briefe ins Postfach) oder „Post“ (Briefe per Post)."}}
		}
		prev, err := tx.SetPersonDelivery(ctx, a.TenantID, a.PersonID, d)
		if errors.Is(err, kasse.ErrNotFound) {
			return ErrNotAllowed
		}
		if err != nil {
			return err
		}
		if prev == d {
			return nil
		}
		return s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: a.ID, ActorRole: string(a.Role),
			Type: "auth.delivery.changed", SubjectType: "person", SubjectID: a.PersonID,
			Details: fmt.Sprintf(`{"from":%q,"to":%q}`, prev, d)})
	})
}

// deliveryAccount checks that p is an insured person acting on their own
// active account of p's tenant, linked to p's person.
func (s *Service) deliveryAccount(ctx context.Context, tx Tx, p Principal) (Account, error) {
	if p.Role != RoleInsured || p.AccountID == "" || p.TenantID == "" || p.PersonID == "" {
		return Account{}, ErrNotAllowed
	}
	a, err := tx.AccountByID(ctx, p.TenantID, p.AccountID)
	if errors.Is(err, ErrAccountNotFound) {
		return Account{}, ErrNotAllowed
	}
	if err != nil {
		return Account{}, err
	}
	if a.Role != RoleInsured || a.Status != StatusActive || a.PersonID != p.PersonID {
		return Account{}, ErrNotAllowed
	}
	return a, nil
}
