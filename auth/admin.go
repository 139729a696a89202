package auth

import (
	"context"
	"fmt"
	"time"

	"postbox/audit"
)

// staffMay reports whether actor may manage accounts of tenant: caseworkers,
// team leads and Kasse admins of the same Kasse (seed 004: "Wir sperren dann
// den Zugang"), never across tenants.
func staffMay(actor Principal, tenantID string) bool {
	return actor.TenantID == tenantID && actor.Has(RoleCaseworker, RoleTeamLead, RoleKasseAdmin)
}

// staffTarget loads an account a staff member may manage; any other answers
// ErrNotAllowed, shown as 404 like an unknown account.
func (s *Service) staffTarget(ctx context.Context, tx Tx, actor Principal, accountID string) (Account, error) {
	if !staffMay(actor, actor.TenantID) {
		return Account{}, ErrNotAllowed
	}
	a, err := tx.AccountByID(ctx, actor.TenantID, accountID)
	if err != nil {
		return Account{}, ErrNotAllowed
	}
	// Staff manage insured persons' and providers' logins; Kasse admins
	// also staff logins.
	if a.Role != RoleInsured && !a.IsProvider() && !actor.Has(RoleKasseAdmin) {
		return Account{}, ErrNotAllowed
	}
	return a, nil
}

// LockOnSuspicion locks an account "bei Verdacht" on unauthorised use
// (seed 004); every session ends. Only Unlock (staff) lifts it, not a
// password reset.
func (s *Service) LockOnSuspicion(ctx context.Context, m Meta, actor Principal, accountID string) error {
	return s.inTx(ctx, func(tx Tx) error {
		a, err := s.staffTarget(ctx, tx, actor, accountID)
		if err != nil {
			return err
		}
		if a.Status == StatusEnded {
			return ErrNotAllowed
		}
		return s.lock(ctx, tx, m, a, 0, LockSuspicion, actor.AccountID, string(actor.Role))
	})
}

// Unlock lifts a lock (on suspicion or after wrong passwords); the failure
// count starts again at zero.
func (s *Service) Unlock(ctx context.Context, m Meta, actor Principal, accountID string) error {
	return s.inTx(ctx, func(tx Tx) error {
		a, err := s.staffTarget(ctx, tx, actor, accountID)
		if err != nil {
			return err
		}
		if a.Status != StatusLocked {
			return FieldErrors{{Field: "status", Message: "Der Zugang ist nicht gesperrt."}}
		}
		reason := a.LockReason
		a.Status, a.LockReason, a.LockedAt, a.FailedLogins = StatusActive, "", time.Time{}, 0
		if err := tx.UpdateAccount(ctx, a); err != nil {
			return err
		}
		return s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: actor.AccountID, ActorRole: string(actor.Role),
			Type: "auth.unlocked", SubjectType: "account", SubjectID: a.ID, Details: fmt.Sprintf(`{"lock_reason":%q}`, reason)})
	})
}

// AccountStatusView is what staff see of an account.
type AccountStatusView struct {
	ID           string
	Role         Role
	Status       AccountStatus
	LockReason   string
	FailedLogins int
	LockedAt     time.Time
}

// AccountStatusOf lets staff look at an account's status before locking or
// unlocking it.
func (s *Service) AccountStatusOf(ctx context.Context, actor Principal, accountID string) (AccountStatusView, error) {
	var v AccountStatusView
	err := s.store.InTx(ctx, func(tx Tx) error {
		a, err := s.staffTarget(ctx, tx, actor, accountID)
		if err != nil {
			return err
		}
		v = AccountStatusView{ID: a.ID, Role: a.Role, Status: a.Status, LockReason: a.LockReason, FailedLogins: a.FailedLogins, LockedAt: a.LockedAt}
		return nil
	})
	return v, err
}

// EndOwnAccount is "Konto beenden" by the person (seed 004: "jederzeit mit
// Wirkung für die Zukunft kündigen"). Like every change in Mein Konto it
// needs a fresh security code, so a session left open on a shared computer
// cannot end the account.
func (s *Service) EndOwnAccount(ctx context.Context, m Meta, sess Session) error {
	if sess.AccountID == "" || sess.Stage != StageDone {
		return ErrNoSession
	}
	return s.endAccount(ctx, m, sess.Principal(), sess.AccountID, func(now time.Time) error {
		if !s.stepUpFresh(sess, now) {
			return ErrStepUpRequired
		}
		return nil
	})
}

// EndAccount terminates a portal account by staff of the Kasse: access
// ends now, every session and device goes; the data stays until the
// retention rules delete it. The person ends their own with EndOwnAccount.
func (s *Service) EndAccount(ctx context.Context, m Meta, actor Principal, accountID string) error {
	if actor.AccountID == accountID {
		return ErrNotAllowed
	}
	return s.endAccount(ctx, m, actor, accountID, nil)
}

func (s *Service) endAccount(ctx context.Context, m Meta, actor Principal, accountID string, check func(now time.Time) error) error {
	return s.inTx(ctx, func(tx Tx) error {
		if check != nil {
			if err := check(tx.Now()); err != nil {
				return err
			}
		}
		var a Account
		var err error
		if actor.AccountID == accountID {
			a, err = tx.AccountByID(ctx, actor.TenantID, accountID)
		} else {
			a, err = s.staffTarget(ctx, tx, actor, accountID)
		}
		if err != nil {
			return ErrNotAllowed
		}
		if a.Status == StatusEnded {
			return nil
		}
		now := tx.Now()
		a.Status, a.EndedAt = StatusEnded, now
		if err := tx.UpdateAccount(ctx, a); err != nil {
			return err
		}
		n, err := tx.DeleteAccountSessions(ctx, a.TenantID, a.ID, "")
		if err != nil {
			return err
		}
		devices, err := tx.DevicesOfAccount(ctx, a.TenantID, a.ID)
		if err != nil {
			return err
		}
		for _, d := range devices {
			if d.Status != DeviceRemoved {
				d.Status, d.RemovedAt = DeviceRemoved, now
				if err := tx.UpdateDevice(ctx, d); err != nil {
					return err
				}
			}
		}
		for _, purpose := range []string{PurposeEmailConfirm, PurposeUnlockCode, PurposePasswordReset, PurposeResetLetter, PurposeInvitation, PurposeDeviceActivation, PurposeEmailChange} {
			if err := tx.RevokeTokens(ctx, a.TenantID, a.ID, purpose, now); err != nil {
				return err
			}
		}
		by := "self"
		if actor.AccountID != a.ID {
			by = "staff"
		}
		return s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: actor.AccountID, ActorRole: string(actor.Role),
			Type: "auth.account.ended", SubjectType: "account", SubjectID: a.ID, Details: fmt.Sprintf(`{"by":%q,"sessions":%d}`, by, n)})
	})
}
