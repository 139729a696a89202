package auth

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"postbox/audit"
	"postbox/kasse"
)

// StageRegistration is the unfinished session right after a registration,
// waiting for the mTAN that confirms the mobile number.
const StageRegistration Stage = "registration"

// Registration is the form of seed 002: Versichertennummer, Kasse,
// username, password, e-mail, mobile number, and the confirmation of the
// data protection notes and terms of use (seed 004 lists its absence as an
// error).
type Registration struct {
	TenantID    string
	KVNR        string
	Username    string
	Password    string
	Email       string
	Mobile      string
	AcceptTerms bool
}

// RegistrationResult: the account waits for the e-mail link; Token is an
// unfinished session in which the mTAN confirms the mobile number.
type RegistrationResult struct {
	AccountID  string
	Token      string
	MTANSent   bool
	SMSFailed  bool
	MobileHint string
}

// NormalizeKVNR upper-cases and drops spaces, as people type it from the card.
func NormalizeKVNR(s string) string {
	return strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(s), " ", ""))
}

// NormalizeEmail checks an address and returns it in lower case.
func NormalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Address != s || len(s) > 254 || !strings.Contains(s[strings.LastIndex(s, "@"):], ".") {
		return "", &FieldError{Field: "email", Message: "Bitte geben Sie eine gültige E-Mail-Adresse an, z. B. name@beispiel.de."}
	}
	return strings.ToLower(s), nil
}

// ageOn is a person's age in whole years on now's date in Germany.
func ageOn(birth string, now time.Time) (int, bool) {
	b, err := time.Parse("2006-01-02", birth)
	if err != nil {
		return 0, false
	}
	n := now.In(berlin)
	age := n.Year() - b.Year()
	if n.Month() < b.Month() || (n.Month() == b.Month() && n.Day() < b.Day()) {
		age--
	}
	return age, true
}

// Register creates a pending account for a known insured person of the
// Kasse who is at least Settings.MinRegistrationAgeYears old (seed 004: 15),
// sends the e-mail confirmation link (valid Settings.ActivationLinkLifetime,
// seed 002: 4 weeks) and an mTAN to confirm the mobile number.
func (s *Service) Register(ctx context.Context, m Meta, r Registration) (RegistrationResult, error) {
	var errs FieldErrors
	r.KVNR = NormalizeKVNR(r.KVNR)
	if err := kasse.ValidateKVNR(r.KVNR); err != nil {
		errs = append(errs, &FieldError{Field: "kvnr", Message: "Die Krankenversichertennummer ist nicht korrekt: ein Großbuchstabe und 9 Ziffern, wie auf Ihrer Gesundheitskarte (die letzte Ziffer ist eine Prüfziffer)."})
	}
	r.Username = strings.TrimSpace(r.Username)
	var fe FieldErrors
	if err := CheckUsername(r.Username); errors.As(err, &fe) {
		errs = append(errs, fe...)
	}
	if err := CheckPasswordRules(r.Password, r.Username); errors.As(err, &fe) {
		errs = append(errs, fe...)
	}
	email, err := NormalizeEmail(r.Email)
	if err != nil {
		errs = append(errs, err.(*FieldError))
	}
	mobile, err := NormalizeMobile(r.Mobile)
	if err != nil {
		errs = append(errs, err.(*FieldError))
	}
	if !r.AcceptTerms {
		errs = append(errs, &FieldError{Field: "accept_terms", Message: "Bitte bestätigen Sie die Hinweise zum Datenschutz sowie die Nutzungs- und Teilnahmebedingungen."})
	}
	k, kerr := s.store.Kasse(ctx, r.TenantID)
	if errors.Is(kerr, kasse.ErrNotFound) {
		errs = append(errs, &FieldError{Field: "kasse", Message: "Bitte wählen Sie Ihre Krankenkasse aus."})
	} else if kerr != nil {
		return RegistrationResult{}, kerr
	}
	if len(errs) > 0 {
		return RegistrationResult{}, errs
	}
	if m.ClientAddr != "" {
		if err := s.hit(ctx, "register-addr", s.opts.RateLimits.LoginPerAddress, m.ClientAddr); err != nil {
			return RegistrationResult{}, err
		}
	}
	person, err := s.store.PersonByKVNR(ctx, k.ID, r.KVNR)
	if errors.Is(err, kasse.ErrNotFound) {
		return RegistrationResult{}, fmt.Errorf("%w: unknown person", ErrNotEligible)
	}
	if err != nil {
		return RegistrationResult{}, err
	}
	age, ok := ageOn(person.BirthDate, s.store.Now())
	if !ok || age < k.Settings.MinRegistrationAgeYears {
		return RegistrationResult{}, &TooYoungError{MinAge: k.Settings.MinRegistrationAgeYears}
	}
	hash, err := HashSecret(r.Password, s.opts.Argon2)
	if err != nil {
		return RegistrationResult{}, err
	}
	var res RegistrationResult
	var sms []pendingSMS
	err = s.inTx(ctx, func(tx Tx) error {
		if _, err := tx.LiveAccountOfPerson(ctx, k.ID, person.ID); err == nil {
			return ErrAlreadyRegistered
		} else if !errors.Is(err, ErrAccountNotFound) {
			return err
		}
		if _, err := tx.AccountByLogin(ctx, k.ID, r.Username); err == nil {
			return FieldErrors{{Field: "username", Message: "Dieser Benutzername ist bereits vergeben. Bitte wählen Sie einen anderen."}}
		} else if !errors.Is(err, ErrAccountNotFound) {
			return err
		}
		now := tx.Now()
		a := Account{ID: newID(), TenantID: k.ID, Role: RoleInsured, Username: strings.ToLower(r.Username), Email: email,
			DisplayName: strings.TrimSpace(person.GivenName + " " + person.FamilyName), PersonID: person.ID, PasswordHash: hash,
			Status: StatusPending, Mobile: mobile, GivenName: person.GivenName, FamilyName: person.FamilyName, CreatedAt: now}
		if err := tx.CreateAccount(ctx, a); err != nil {
			if errors.Is(err, ErrAccountExists) {
				return FieldErrors{{Field: "username", Message: "Dieser Benutzername ist bereits vergeben. Bitte wählen Sie einen anderen."}}
			}
			return err
		}
		if err := tx.AddPasswordHistory(ctx, a.TenantID, a.ID, hash, now); err != nil {
			return err
		}
		link, err := newLinkToken()
		if err != nil {
			return err
		}
		if err := tx.CreateToken(ctx, Token{ID: newID(), TenantID: a.TenantID, AccountID: a.ID, Purpose: PurposeEmailConfirm,
			Hash: s.linkHash(PurposeEmailConfirm, link), CreatedAt: now, ExpiresAt: now.Add(k.Settings.ActivationLinkLifetime)}); err != nil {
			return err
		}
		if err := s.enqueueMail(ctx, tx, k, a, TemplateEmailConfirm, s.link(k, PathEmailConfirm, link)); err != nil {
			return err
		}
		code, err := s.issueMTAN(ctx, tx, a, CodeMobileConfirm)
		if err != nil {
			return err
		}
		sms = append(sms, pendingSMS{mobile, smsText(k.Name, CodeMobileConfirm, code)})
		token, _, err := s.StartSessionTx(ctx, tx, principalOf(a), StageRegistration, "", s.ClientHash(m.ClientAddr))
		if err != nil {
			return err
		}
		res = RegistrationResult{AccountID: a.ID, Token: token, MobileHint: MaskMobile(mobile)}
		return s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: a.ID, ActorRole: string(a.Role),
			Type: "auth.registered", SubjectType: "account", SubjectID: a.ID, Details: `{"terms_accepted":true}`})
	})
	if err != nil {
		return RegistrationResult{}, err
	}
	if err := s.sendSMS(ctx, sms...); err != nil {
		s.opts.Logger.Warn("registration mTAN not sent", "err", err)
		res.SMSFailed = true
	} else {
		res.MTANSent = true
	}
	return res, nil
}

// TooYoungError: persons under the minimum age cannot register (seed 004).
type TooYoungError struct{ MinAge int }

func (e *TooYoungError) Error() string { return fmt.Sprintf("registration from age %d", e.MinAge) }
func (e *TooYoungError) Unwrap() error { return ErrNotEligible }

// ConfirmRegistrationMobile confirms the mobile number with the mTAN sent
// at registration. A number not confirmed here is confirmed by the mTAN of
// the first login.
func (s *Service) ConfirmRegistrationMobile(ctx context.Context, m Meta, token, code string) error {
	sess, err := s.pendingLogin(ctx, token, StageRegistration)
	if err != nil {
		return err
	}
	if err := s.hit(ctx, "code-acct", s.opts.RateLimits.CodePerAccount, sess.TenantID, sess.AccountID); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx Tx) error {
		a, err := tx.AccountByID(ctx, sess.TenantID, sess.AccountID)
		if err != nil {
			return err
		}
		ok, err := s.checkMTAN(ctx, tx, a, CodeMobileConfirm, code)
		if err != nil {
			return err
		}
		if !ok {
			return errCommit{ErrCodeInvalid}
		}
		a.MobileConfirmedAt = tx.Now()
		if err := tx.UpdateAccount(ctx, a); err != nil {
			return err
		}
		if err := tx.DeleteSession(ctx, sess.ID); err != nil {
			return err
		}
		return s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: a.ID, ActorRole: string(a.Role),
			Type: "auth.mobile.confirmed", SubjectType: "account", SubjectID: a.ID})
	})
}

// ConfirmEmail redeems the e-mail link: the Freischaltcode goes by letter
// to the address the Kasse has stored (valid Settings.UnlockCodeLifetime)
// and an e-mail says so (seed 002).
func (s *Service) ConfirmEmail(ctx context.Context, m Meta, link string) error {
	var letter Letter
	err := s.inTx(ctx, func(tx Tx) error {
		tk, a, k, now, err := s.redeemLink(ctx, tx, PurposeEmailConfirm, link, StatusPending)
		if err != nil {
			return err
		}
		tk.UsedAt = now
		if err := tx.UpdateToken(ctx, tk); err != nil {
			return err
		}
		a.EmailConfirmedAt = now
		if err := tx.UpdateAccount(ctx, a); err != nil {
			return err
		}
		if err := s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: a.ID, ActorRole: string(a.Role),
			Type: "auth.email.confirmed", SubjectType: "account", SubjectID: a.ID}); err != nil {
			return err
		}
		if letter, err = s.issueLetterCode(ctx, tx, m, k, a, PurposeUnlockCode); err != nil {
			return err
		}
		return s.enqueueMail(ctx, tx, k, a, TemplateUnlockLetterSent, s.link(k, "/anmelden", ""))
	})
	if err != nil {
		return err
	}
	return s.sendLetter(ctx, letter)
}

// Cleanup deletes registrations whose e-mail link expired unconfirmed
// (seed 002: "wird Ihre Registrierung gelöscht"), sessions past their end
// and old rate limit windows. Run it periodically; it is idempotent.
func (s *Service) Cleanup(ctx context.Context) (deleted int, err error) {
	kassen, err := s.store.Kassen(ctx)
	if err != nil {
		return 0, err
	}
	for _, k := range kassen {
		err := s.inTx(ctx, func(tx Tx) error {
			list, err := tx.ExpiredRegistrations(ctx, k.ID, tx.Now().Add(-k.Settings.ActivationLinkLifetime))
			if err != nil {
				return err
			}
			for _, a := range list {
				if err := tx.DeleteAccount(ctx, a.TenantID, a.ID); err != nil {
					return err
				}
				if err := s.record(ctx, tx, Meta{}, audit.Event{TenantID: a.TenantID, ActorRole: "system",
					Type: "auth.registration.expired", SubjectType: "account", SubjectID: a.ID}); err != nil {
					return err
				}
				deleted++
			}
			return nil
		})
		if err != nil {
			return deleted, err
		}
	}
	if _, err := s.CleanupSessions(ctx); err != nil {
		return deleted, err
	}
	err = s.store.InTx(ctx, func(tx Tx) error { return tx.DeleteRateLimitsBefore(ctx, tx.Now().Add(-24*time.Hour)) })
	return deleted, err
}
