package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"postbox/audit"
)

// Step-up (seed 000): changing personal data, contact data or devices needs
// a security code (mTAN or app) entered in this session within
// Options.StepUpWindow.

// RequestStepUpMTAN sends a security code by SMS for a step-up.
func (s *Service) RequestStepUpMTAN(ctx context.Context, m Meta, sess Session) (string, error) {
	var sms []pendingSMS
	var hint string
	err := s.inTx(ctx, func(tx Tx) error {
		a, k, err := s.sessionAccount(ctx, tx, sess)
		if err != nil {
			return err
		}
		if a.Mobile == "" || a.MobileConfirmedAt.IsZero() {
			return ErrNoSecondFactor
		}
		code, err := s.issueMTAN(ctx, tx, a, CodeStepUp)
		if err != nil {
			return err
		}
		sms, hint = append(sms, pendingSMS{a.Mobile, smsText(k.Name, CodeStepUp, code)}), MaskMobile(a.Mobile)
		return nil
	})
	if err != nil {
		return "", err
	}
	return hint, s.sendSMS(ctx, sms...)
}

// StepUp checks a security code ("mtan" or "totp") and marks the session
// fresh for sensitive changes.
func (s *Service) StepUp(ctx context.Context, m Meta, sess Session, method, code string) error {
	if err := s.hit(ctx, "code-acct", s.opts.RateLimits.CodePerAccount, sess.TenantID, sess.AccountID); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx Tx) error {
		a, _, err := s.sessionAccount(ctx, tx, sess)
		if err != nil {
			return err
		}
		var ok bool
		switch method {
		case "mtan":
			ok, err = s.checkMTAN(ctx, tx, a, CodeStepUp, code)
		case "totp":
			ok, err = s.verifyTOTP(ctx, tx, a, code)
		default:
			return FieldErrors{{Field: "method", Message: "Bitte wählen Sie mTAN oder Authenticator-App."}}
		}
		if err != nil {
			return err
		}
		outcome := audit.OutcomeSuccess
		if !ok {
			outcome = audit.OutcomeFailure
		}
		if err := s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: a.ID, ActorRole: string(a.Role),
			Type: "auth.stepup", SubjectType: "session", SubjectID: sess.ID, Outcome: outcome, Details: fmt.Sprintf(`{"method":%q}`, method)}); err != nil {
			return err
		}
		if !ok {
			return errCommit{ErrCodeInvalid}
		}
		sess.StepUpAt = tx.Now()
		return tx.UpdateSession(ctx, sess)
	})
}

// RequestMobileChange starts a change of the mTAN number (seed 004: the
// mTAN cannot be switched off, the number can be changed): a code goes to
// the old and one to the new number; ConfirmMobileChange needs both.
func (s *Service) RequestMobileChange(ctx context.Context, m Meta, sess Session, newMobile string) error {
	mobile, err := NormalizeMobile(newMobile)
	if err != nil {
		return FieldErrors{err.(*FieldError)}
	}
	var sms []pendingSMS
	err = s.inTx(ctx, func(tx Tx) error {
		a, k, err := s.sessionAccount(ctx, tx, sess)
		if err != nil {
			return err
		}
		if !s.stepUpFresh(sess, tx.Now()) {
			return ErrStepUpRequired
		}
		if mobile == a.Mobile {
			return FieldErrors{{Field: "mobile", Message: "Das ist bereits Ihre hinterlegte Mobilnummer."}}
		}
		a.MobilePending = mobile
		if err := tx.UpdateAccount(ctx, a); err != nil {
			return err
		}
		if a.Mobile != "" && !a.MobileConfirmedAt.IsZero() {
			code, err := s.issueMTAN(ctx, tx, a, CodeMobileOld)
			if err != nil {
				return err
			}
			sms = append(sms, pendingSMS{a.Mobile, smsText(k.Name, CodeMobileOld, code)})
		}
		code, err := s.issueMTAN(ctx, tx, a, CodeMobileNew)
		if err != nil {
			return err
		}
		sms = append(sms, pendingSMS{mobile, smsText(k.Name, CodeMobileNew, code)})
		return nil
	})
	if err != nil {
		return err
	}
	return s.sendSMS(ctx, sms...)
}

// ConfirmMobileChange switches to the new number when both codes are right.
func (s *Service) ConfirmMobileChange(ctx context.Context, m Meta, sess Session, codeOld, codeNew string) error {
	if err := s.hit(ctx, "code-acct", s.opts.RateLimits.CodePerAccount, sess.TenantID, sess.AccountID); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx Tx) error {
		a, _, err := s.sessionAccount(ctx, tx, sess)
		if err != nil {
			return err
		}
		if a.MobilePending == "" {
			return ErrCodeInvalid
		}
		// Both codes are checked before either is used up, so one typo does
		// not force the person to start over.
		needOld := a.Mobile != "" && !a.MobileConfirmedAt.IsZero()
		okOld := true
		if needOld {
			if okOld, err = s.matchMTAN(ctx, tx, a, CodeMobileOld, codeOld, false); err != nil {
				return err
			}
		}
		okNew, err := s.matchMTAN(ctx, tx, a, CodeMobileNew, codeNew, false)
		if err != nil {
			return err
		}
		if !okOld || !okNew {
			return errCommit{ErrCodeInvalid}
		}
		if needOld {
			if _, err := s.checkMTAN(ctx, tx, a, CodeMobileOld, codeOld); err != nil {
				return err
			}
		}
		if _, err := s.checkMTAN(ctx, tx, a, CodeMobileNew, codeNew); err != nil {
			return err
		}
		now := tx.Now()
		a.Mobile, a.MobilePending, a.MobileConfirmedAt = a.MobilePending, "", now
		if err := tx.UpdateAccount(ctx, a); err != nil {
			return err
		}
		return s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: a.ID, ActorRole: string(a.Role),
			Type: "auth.mobile.changed", SubjectType: "account", SubjectID: a.ID})
	})
}

// ProfileUpdate changes contact and personal data; empty fields stay. A
// new e-mail address takes effect only when the link sent to it is opened.
type ProfileUpdate struct {
	Email string
	// ResendEmailLink sends the link again when Email is the address that
	// already waits for confirmation.
	ResendEmailLink bool
	Salutation      string
	GivenName       string
	FamilyName      string
}

// UpdateProfile changes personal or contact data (fresh security code
// needed). Insured persons' names come from the Kasse's master data and
// are not changed here (seed 004: name changes need a certificate).
func (s *Service) UpdateProfile(ctx context.Context, m Meta, sess Session, u ProfileUpdate) error {
	return s.inTx(ctx, func(tx Tx) error {
		a, _, err := s.sessionAccount(ctx, tx, sess)
		if err != nil {
			return err
		}
		if !s.stepUpFresh(sess, tx.Now()) {
			return ErrStepUpRequired
		}
		var changed []string
		newEmail := ""
		if u.Email != "" {
			email, err := NormalizeEmail(u.Email)
			if err != nil {
				return FieldErrors{err.(*FieldError)}
			}
			switch {
			case email == a.Email && a.EmailPending != "":
				// Back to the confirmed address: the waiting change is void.
				a.EmailPending, changed = "", append(changed, "email_pending")
				if err := tx.RevokeTokens(ctx, a.TenantID, a.ID, PurposeEmailChange, tx.Now()); err != nil {
					return err
				}
			case email != a.Email && (email != a.EmailPending || u.ResendEmailLink):
				newEmail = email
			}
		}
		if a.IsProvider() {
			if u.Salutation != "" && u.Salutation != a.Salutation {
				if !salutations[u.Salutation] {
					return FieldErrors{{Field: "salutation", Message: "Bitte wählen Sie als Anrede Frau, Herr oder Divers."}}
				}
				a.Salutation, changed = u.Salutation, append(changed, "salutation")
			}
			if g := strings.TrimSpace(u.GivenName); g != "" && g != a.GivenName {
				a.GivenName, changed = g, append(changed, "given_name")
			}
			if f := strings.TrimSpace(u.FamilyName); f != "" && f != a.FamilyName {
				a.FamilyName, changed = f, append(changed, "family_name")
			}
			a.DisplayName = a.GivenName + " " + a.FamilyName
		} else if u.GivenName != "" || u.FamilyName != "" || u.Salutation != "" {
			return FieldErrors{{Field: "name", Message: "Namensänderungen nehmen wir mit einem amtlichen Nachweis entgegen (z. B. Heiratsurkunde). Bitte senden Sie ihn uns über Ihr Postfach."}}
		}
		if newEmail != "" {
			if err := s.requestEmailChange(ctx, tx, m, &a, newEmail); err != nil {
				return err
			}
		}
		if len(changed) == 0 {
			return nil
		}
		if err := tx.UpdateAccount(ctx, a); err != nil {
			return err
		}
		fields, _ := json.Marshal(changed)
		return s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: a.ID, ActorRole: string(a.Role),
			Type: "auth.profile.changed", SubjectType: "account", SubjectID: a.ID, Details: `{"fields":` + string(fields) + `}`})
	})
}

// requestEmailChange parks the new address, sends it the confirmation link
// and tells the confirmed address (if any) that a change was asked for, so
// a taken-over session cannot quietly redirect password reset mails.
func (s *Service) requestEmailChange(ctx context.Context, tx Tx, m Meta, a *Account, email string) error {
	k, err := s.store.Kasse(ctx, a.TenantID)
	if err != nil {
		return err
	}
	now := tx.Now()
	link, err := newLinkToken()
	if err != nil {
		return err
	}
	if err := tx.RevokeTokens(ctx, a.TenantID, a.ID, PurposeEmailChange, now); err != nil {
		return err
	}
	if err := tx.CreateToken(ctx, Token{ID: newID(), TenantID: a.TenantID, AccountID: a.ID, Purpose: PurposeEmailChange,
		Hash: s.linkHash(PurposeEmailChange, link), CreatedAt: now, ExpiresAt: now.Add(EmailChangeLinkLifetime)}); err != nil {
		return err
	}
	if err := s.enqueueMailTo(ctx, tx, k, *a, email, TemplateEmailChange, s.link(k, PathEmailChange, link)); err != nil {
		return err
	}
	if a.Email != "" && a.EmailPending != email {
		if err := s.enqueueMailTo(ctx, tx, k, *a, a.Email, TemplateEmailChangeNotice, s.link(k, "/anmelden", "")); err != nil {
			return err
		}
	}
	a.EmailPending = email
	if err := tx.UpdateAccount(ctx, *a); err != nil {
		return err
	}
	return s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: a.ID, ActorRole: string(a.Role),
		Type: "auth.email.change_requested", SubjectType: "account", SubjectID: a.ID})
}

// ConfirmEmailChange redeems the link sent to a new address: it becomes
// the account's address. The link is the proof; no session is needed, as
// the link may be opened on another device.
func (s *Service) ConfirmEmailChange(ctx context.Context, m Meta, link string) error {
	return s.inTx(ctx, func(tx Tx) error {
		tk, a, _, now, err := s.redeemLink(ctx, tx, PurposeEmailChange, link, StatusActive)
		if err != nil {
			return err
		}
		if a.EmailPending == "" {
			return ErrTokenInvalid
		}
		tk.UsedAt = now
		if err := tx.UpdateToken(ctx, tk); err != nil {
			return err
		}
		a.Email, a.EmailPending, a.EmailConfirmedAt = a.EmailPending, "", now
		if err := tx.UpdateAccount(ctx, a); err != nil {
			return err
		}
		return s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: a.ID, ActorRole: string(a.Role),
			Type: "auth.email.changed", SubjectType: "account", SubjectID: a.ID})
	})
}

// ChangeSecurityQuestion replaces the security question (fresh code needed).
func (s *Service) ChangeSecurityQuestion(ctx context.Context, m Meta, sess Session, question, answer string) error {
	hash, err := s.securityAnswerHash(question, answer)
	if err != nil {
		return err
	}
	return s.inTx(ctx, func(tx Tx) error {
		a, _, err := s.sessionAccount(ctx, tx, sess)
		if err != nil {
			return err
		}
		if !s.stepUpFresh(sess, tx.Now()) {
			return ErrStepUpRequired
		}
		a.SecurityQuestion, a.SecurityAnswerHash = question, hash
		if err := tx.UpdateAccount(ctx, a); err != nil {
			return err
		}
		return s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: a.ID, ActorRole: string(a.Role),
			Type: "auth.security_question.set", SubjectType: "account", SubjectID: a.ID})
	})
}

// AccountView is "Mein Konto".
type AccountView struct {
	ID               string
	Username         string
	Role             Role
	DisplayName      string
	Email            string
	MobileHint       string
	MobilePending    bool
	EmailPending     string // new address waiting for its link
	SecurityQuestion string
	ConsentVersion   string
	ConsentAt        time.Time
	PasswordChanged  time.Time
	StepUpValidUntil time.Time // zero: a security code is needed for changes
}

// Me returns the session's own account.
func (s *Service) Me(ctx context.Context, sess Session) (AccountView, error) {
	var v AccountView
	err := s.store.InTx(ctx, func(tx Tx) error {
		a, _, err := s.sessionAccount(ctx, tx, sess)
		if err != nil {
			return err
		}
		v = AccountView{ID: a.ID, Username: a.Username, Role: a.Role, DisplayName: a.DisplayName, Email: a.Email,
			MobilePending: a.MobilePending != "", EmailPending: a.EmailPending, SecurityQuestion: a.SecurityQuestion, ConsentVersion: a.ConsentVersion,
			ConsentAt: a.ConsentAt, PasswordChanged: a.PasswordChangedAt}
		if a.Mobile != "" {
			v.MobileHint = MaskMobile(a.Mobile)
		}
		if s.stepUpFresh(sess, tx.Now()) {
			v.StepUpValidUntil = sess.StepUpAt.Add(s.opts.StepUpWindow)
		}
		return nil
	})
	if errors.Is(err, ErrAccountNotFound) {
		return v, ErrNoSession
	}
	return v, err
}
