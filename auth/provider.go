package auth

import (
	"context"
	"errors"
	"strings"
	"time"

	"postbox/audit"
	"postbox/kasse"
)

// Provider user management (seed 001): a provider admin invites users of
// the organisation; they complete their data, register a device and log in.

// Invitation is the admin's form "Nutzer einladen".
type Invitation struct {
	Salutation string // Anrede
	GivenName  string
	FamilyName string
	Email      string
}

// ProviderUser is one row of the admin's user list.
type ProviderUser struct {
	AccountID  string
	Salutation string
	GivenName  string
	FamilyName string
	Email      string
	Username   string
	Status     string // "Eingeladen", "beantragt", "Erfolgreich abgeschlossen", "Einladung abgelaufen", "Gesperrt", "Beendet"
	Role       Role
	InvitedAt  time.Time
	ExpiresAt  time.Time // of the invitation, while it is open
	Consent    bool
}

var salutations = map[string]bool{"Frau": true, "Herr": true, "Divers": true, "": true}

func (inv Invitation) check() (Invitation, error) {
	var errs FieldErrors
	inv.Salutation, inv.GivenName, inv.FamilyName = strings.TrimSpace(inv.Salutation), strings.TrimSpace(inv.GivenName), strings.TrimSpace(inv.FamilyName)
	if !salutations[inv.Salutation] {
		errs = append(errs, &FieldError{Field: "salutation", Message: "Bitte wählen Sie als Anrede Frau, Herr oder Divers."})
	}
	if inv.GivenName == "" || len([]rune(inv.GivenName)) > 100 {
		errs = append(errs, &FieldError{Field: "given_name", Message: "Bitte geben Sie den Vornamen an (höchstens 100 Zeichen)."})
	}
	if inv.FamilyName == "" || len([]rune(inv.FamilyName)) > 100 {
		errs = append(errs, &FieldError{Field: "family_name", Message: "Bitte geben Sie den Nachnamen an (höchstens 100 Zeichen)."})
	}
	email, err := NormalizeEmail(inv.Email)
	if err != nil {
		errs = append(errs, err.(*FieldError))
	}
	inv.Email = email
	return inv, errs.asErr()
}

func (s *Service) requireProviderAdmin(p Principal) error {
	if !p.Has(RoleProviderAdmin) || p.OrgID == "" {
		return ErrNotAllowed
	}
	return nil
}

// InviteUser creates a provider user in status "Eingeladen" and mails the
// invitation link, valid Settings.InvitationLifetime (seed 001: 720 hours).
func (s *Service) InviteUser(ctx context.Context, m Meta, admin Principal, inv Invitation) (string, error) {
	if err := s.requireProviderAdmin(admin); err != nil {
		return "", err
	}
	inv, err := inv.check()
	if err != nil {
		return "", err
	}
	k, err := s.store.Kasse(ctx, admin.TenantID)
	if err != nil {
		return "", err
	}
	var id string
	err = s.inTx(ctx, func(tx Tx) error {
		others, err := tx.AccountsByEmail(ctx, admin.TenantID, inv.Email)
		if err != nil {
			return err
		}
		for _, o := range others {
			if o.OrgID == admin.OrgID && o.Status != StatusEnded {
				return FieldErrors{{Field: "email", Message: "Zu dieser E-Mail-Adresse gibt es in Ihrer Organisation bereits einen Nutzer."}}
			}
		}
		now := tx.Now()
		a := Account{ID: newID(), TenantID: admin.TenantID, Role: RoleProviderUser, Email: inv.Email, Status: StatusInvited,
			OrgID: admin.OrgID, Salutation: inv.Salutation, GivenName: inv.GivenName, FamilyName: inv.FamilyName,
			DisplayName: inv.GivenName + " " + inv.FamilyName, InvitedBy: admin.AccountID, CreatedAt: now}
		// The username is chosen when the invitation is accepted; until then a
		// placeholder that no login can ever match (it breaks the username rules).
		a.Username = "~" + strings.ReplaceAll(a.ID, "-", "")[:11]
		if err := tx.CreateAccount(ctx, a); err != nil {
			return err
		}
		if err := s.sendInvitation(ctx, tx, k, a); err != nil {
			return err
		}
		id = a.ID
		return s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: admin.AccountID, ActorRole: string(admin.Role),
			Type: "auth.invitation.created", SubjectType: "account", SubjectID: a.ID})
	})
	return id, err
}

func (s *Service) sendInvitation(ctx context.Context, tx Tx, k kasse.Kasse, a Account) error {
	now := tx.Now()
	if err := tx.RevokeTokens(ctx, a.TenantID, a.ID, PurposeInvitation, now); err != nil {
		return err
	}
	link, err := newLinkToken()
	if err != nil {
		return err
	}
	if err := tx.CreateToken(ctx, Token{ID: newID(), TenantID: a.TenantID, AccountID: a.ID, Purpose: PurposeInvitation,
		Hash: s.linkHash(PurposeInvitation, link), CreatedAt: now, ExpiresAt: now.Add(k.Settings.InvitationLifetime)}); err != nil {
		return err
	}
	return s.enqueueMail(ctx, tx, k, a, TemplateInvitation, s.link(k, PathInvitation, link))
}

// orgTarget loads a user of the admin's organisation; anything else is
// ErrNotAllowed (404).
func (s *Service) orgTarget(ctx context.Context, tx Tx, admin Principal, accountID string) (Account, error) {
	if err := s.requireProviderAdmin(admin); err != nil {
		return Account{}, err
	}
	a, err := tx.AccountByID(ctx, admin.TenantID, accountID)
	if err != nil || a.OrgID != admin.OrgID || !a.IsProvider() {
		return Account{}, ErrNotAllowed
	}
	return a, nil
}

// ResendInvitation sends a new invitation link; the old one stops working.
func (s *Service) ResendInvitation(ctx context.Context, m Meta, admin Principal, accountID string) error {
	k, err := s.store.Kasse(ctx, admin.TenantID)
	if err != nil {
		return err
	}
	return s.inTx(ctx, func(tx Tx) error {
		a, err := s.orgTarget(ctx, tx, admin, accountID)
		if err != nil {
			return err
		}
		if a.Status != StatusInvited {
			return FieldErrors{{Field: "status", Message: "Die Registrierung dieses Nutzers ist bereits abgeschlossen oder beendet."}}
		}
		if err := s.sendInvitation(ctx, tx, k, a); err != nil {
			return err
		}
		return s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: admin.AccountID, ActorRole: string(admin.Role),
			Type: "auth.invitation.resent", SubjectType: "account", SubjectID: a.ID})
	})
}

// RevokeInvitation withdraws an open invitation: the user is ended, links
// and activation codes stop working.
func (s *Service) RevokeInvitation(ctx context.Context, m Meta, admin Principal, accountID string) error {
	return s.inTx(ctx, func(tx Tx) error {
		a, err := s.orgTarget(ctx, tx, admin, accountID)
		if err != nil {
			return err
		}
		if a.Status != StatusInvited {
			return FieldErrors{{Field: "status", Message: "Nur offene Einladungen können zurückgezogen werden."}}
		}
		now := tx.Now()
		a.Status, a.EndedAt = StatusEnded, now
		if err := tx.UpdateAccount(ctx, a); err != nil {
			return err
		}
		for _, p := range []string{PurposeInvitation, PurposeDeviceActivation} {
			if err := tx.RevokeTokens(ctx, a.TenantID, a.ID, p, now); err != nil {
				return err
			}
		}
		return s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: admin.AccountID, ActorRole: string(admin.Role),
			Type: "auth.invitation.revoked", SubjectType: "account", SubjectID: a.ID})
	})
}

// ListOrgUsers is the admin's "Nutzerverwaltung" with the seed's statuses.
func (s *Service) ListOrgUsers(ctx context.Context, admin Principal) ([]ProviderUser, error) {
	if err := s.requireProviderAdmin(admin); err != nil {
		return nil, err
	}
	var out []ProviderUser
	err := s.store.InTx(ctx, func(tx Tx) error {
		list, err := tx.AccountsOfOrg(ctx, admin.TenantID, admin.OrgID)
		if err != nil {
			return err
		}
		now := tx.Now()
		for _, a := range list {
			if !a.IsProvider() {
				continue
			}
			u := ProviderUser{AccountID: a.ID, Salutation: a.Salutation, GivenName: a.GivenName, FamilyName: a.FamilyName,
				Email: a.Email, Role: a.Role, InvitedAt: a.CreatedAt, Consent: a.ConsentVersion != ""}
			if !strings.HasPrefix(a.Username, "~") {
				u.Username = a.Username
			}
			devices, err := tx.DevicesOfAccount(ctx, a.TenantID, a.ID)
			if err != nil {
				return err
			}
			requested, active := false, false
			for _, d := range devices {
				requested = requested || d.Status == DeviceRequested
				active = active || d.Status == DeviceActive
			}
			switch {
			case a.Status == StatusEnded:
				u.Status = "Beendet"
			case a.Status == StatusLocked:
				u.Status = "Gesperrt"
			case a.Status == StatusActive && active:
				u.Status = DeviceActive.German()
			case requested:
				u.Status = DeviceRequested.German()
			case a.Status == StatusInvited:
				u.Status = "Eingeladen"
				tk, err := tx.LatestToken(ctx, a.TenantID, a.ID, PurposeInvitation)
				if err != nil && !errors.Is(err, ErrTokenInvalid) {
					return err
				}
				if err == nil && tk.Usable(now) {
					u.ExpiresAt = tk.ExpiresAt
				} else if err == nil && tk.UsedAt.IsZero() {
					u.Status = "Einladung abgelaufen"
				}
			default:
				u.Status = "Aktiv"
			}
			out = append(out, u)
		}
		return nil
	})
	return out, err
}

// InvitationCompletion is the invited user's form: personal data,
// username and password.
type InvitationCompletion struct {
	Salutation string
	GivenName  string
	FamilyName string
	Username   string
	Password   string
	DeviceName string
}

// CompleteInvitation redeems the invitation link (valid until the device is
// registered; the user may come back to it): it stores the personal data,
// username and password and returns the device activation code for the
// app (seed 001: "Geräteregistrierung"). Calling it again with the same
// link gives a new activation code.
func (s *Service) CompleteInvitation(ctx context.Context, m Meta, link string, c InvitationCompletion) (DeviceEnrollment, error) {
	var out DeviceEnrollment
	err := s.inTx(ctx, func(tx Tx) error {
		_, a, k, now, err := s.redeemLink(ctx, tx, PurposeInvitation, link, StatusInvited)
		if err != nil {
			return err
		}
		if a.PasswordHash == "" { // first visit: data, username and password
			inv, err := Invitation{Salutation: c.Salutation, GivenName: c.GivenName, FamilyName: c.FamilyName, Email: a.Email}.check()
			var errs FieldErrors
			var fe FieldErrors
			if errors.As(err, &fe) {
				errs = append(errs, fe...)
			}
			username := strings.TrimSpace(c.Username)
			if err := CheckUsername(username); errors.As(err, &fe) {
				errs = append(errs, fe...)
			}
			if err := CheckPasswordRules(c.Password, username); errors.As(err, &fe) {
				errs = append(errs, fe...)
			}
			if len(errs) > 0 {
				return errs
			}
			if _, err := tx.AccountByLogin(ctx, a.TenantID, username); err == nil {
				return FieldErrors{{Field: "username", Message: "Dieser Benutzername ist bereits vergeben. Bitte wählen Sie einen anderen."}}
			}
			hash, err := HashSecret(c.Password, s.opts.Argon2)
			if err != nil {
				return err
			}
			a.Salutation, a.GivenName, a.FamilyName = inv.Salutation, inv.GivenName, inv.FamilyName
			a.DisplayName, a.Username, a.PasswordHash, a.PasswordChangedAt = inv.GivenName+" "+inv.FamilyName, strings.ToLower(username), hash, now
			a.EmailConfirmedAt = now // the link came by e-mail
			if err := tx.UpdateAccount(ctx, a); err != nil {
				if errors.Is(err, ErrAccountExists) {
					return FieldErrors{{Field: "username", Message: "Dieser Benutzername ist bereits vergeben. Bitte wählen Sie einen anderen."}}
				}
				return err
			}
			if err := tx.AddPasswordHistory(ctx, a.TenantID, a.ID, hash, now); err != nil {
				return err
			}
			if err := s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: a.ID, ActorRole: string(a.Role),
				Type: "auth.invitation.accepted", SubjectType: "account", SubjectID: a.ID}); err != nil {
				return err
			}
		}
		// A new activation code replaces an unused earlier one.
		devices, err := tx.DevicesOfAccount(ctx, a.TenantID, a.ID)
		if err != nil {
			return err
		}
		for _, d := range devices {
			if d.Status == DeviceRequested {
				d.Status, d.RemovedAt = DeviceRemoved, now
				if err := tx.UpdateDevice(ctx, d); err != nil {
					return err
				}
			}
		}
		if err := tx.RevokeTokens(ctx, a.TenantID, a.ID, PurposeDeviceActivation, now); err != nil {
			return err
		}
		out, err = s.enrollDevice(ctx, tx, a, c.DeviceName, k.Settings.DeviceActivationLifetime)
		if err != nil {
			return err
		}
		return s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: a.ID, ActorRole: string(a.Role),
			Type: "auth.device.requested", SubjectType: "device", SubjectID: out.DeviceID})
	})
	return out, err
}

// SetOrg assigns a provider admin to an organisation (used by seeding and
// Kasse admins).
func (s *Service) SetOrg(ctx context.Context, tenantID, accountID, orgID string) error {
	return s.store.InTx(ctx, func(tx Tx) error {
		a, err := tx.AccountByID(ctx, tenantID, accountID)
		if err != nil {
			return err
		}
		a.OrgID = orgID
		return tx.UpdateAccount(ctx, a)
	})
}
