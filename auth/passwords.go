package auth

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"postbox/audit"
	"postbox/kasse"
)

// checkNewPassword applies every password rule: the rules of seed 004 and
// the history (none of the last Settings.PasswordHistory passwords).
func (s *Service) checkNewPassword(ctx context.Context, tx Tx, a Account, k kasse.Kasse, pw string) error {
	if err := CheckPasswordRules(pw, a.Username); err != nil {
		return err
	}
	n := k.Settings.PasswordHistory
	if n <= 0 {
		return nil
	}
	hist, err := tx.PasswordHistory(ctx, a.TenantID, a.ID, n)
	if err != nil {
		return err
	}
	if len(hist) < n && a.PasswordHash != "" {
		hist = append(hist, a.PasswordHash) // the current one, if the history does not hold it yet
	}
	for _, h := range hist {
		same, err := VerifySecret(pw, h)
		if err != nil {
			continue // an unreadable old hash cannot match
		}
		if same {
			return FieldErrors{{Field: "password", Message: fmt.Sprintf(
				"Dieses Passwort haben Sie bereits verwendet. Die letzten %d Passwörter können nicht erneut gewählt werden.", n)}}
		}
	}
	return nil
}

// setPassword stores a new hash, remembers it in the history and ends the
// account's other sessions.
func (s *Service) setPassword(ctx context.Context, tx Tx, a *Account, pw, keepSession string) error {
	hash, err := HashSecret(pw, s.opts.Argon2)
	if err != nil {
		return err
	}
	now := tx.Now()
	// Accounts created without the history (seeding, staff tools) get their
	// current password remembered first, so it counts as one of the last.
	if hist, err := tx.PasswordHistory(ctx, a.TenantID, a.ID, 1); err != nil {
		return err
	} else if len(hist) == 0 && a.PasswordHash != "" {
		if err := tx.AddPasswordHistory(ctx, a.TenantID, a.ID, a.PasswordHash, now.Add(-time.Microsecond)); err != nil {
			return err
		}
	}
	a.PasswordHash, a.PasswordChangedAt = hash, now
	if err := tx.UpdateAccount(ctx, *a); err != nil {
		return err
	}
	if err := tx.AddPasswordHistory(ctx, a.TenantID, a.ID, hash, now); err != nil {
		return err
	}
	_, err = tx.DeleteAccountSessions(ctx, a.TenantID, a.ID, keepSession)
	return err
}

// ChangePassword is "Passwort ändern": the current password, then the new
// one against every rule; at most one change per
// Settings.PasswordChangeInterval (seed 004: one per day).
func (s *Service) ChangePassword(ctx context.Context, m Meta, p Principal, current, next string) error {
	return s.inTx(ctx, func(tx Tx) error {
		a, err := tx.AccountByID(ctx, p.TenantID, p.AccountID)
		if err != nil {
			return err
		}
		k, err := s.store.Kasse(ctx, a.TenantID)
		if err != nil {
			return err
		}
		ok, err := VerifySecret(current, a.PasswordHash)
		if err != nil || !ok {
			if err := s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: a.ID, ActorRole: string(a.Role),
				Type: "auth.password.changed", SubjectType: "account", SubjectID: a.ID, Outcome: audit.OutcomeFailure, Details: `{"reason":"current_password"}`}); err != nil {
				return err
			}
			return errCommit{FieldErrors{{Field: "current_password", Message: "Das aktuelle Passwort ist nicht richtig."}}}
		}
		now := tx.Now()
		if iv := k.Settings.PasswordChangeInterval; iv > 0 && !a.PasswordChangedAt.IsZero() && now.Sub(a.PasswordChangedAt) < iv {
			hours := int(math.Ceil(iv.Hours()))
			return FieldErrors{{Field: "password", Message: fmt.Sprintf(
				"Aus Sicherheitsgründen ist nur eine Passwortänderung innerhalb von %d Stunden möglich. Ihre letzte Änderung war am %s Uhr.",
				hours, a.PasswordChangedAt.In(berlin).Format("02.01.2006 um 15:04"))}}
		}
		if err := s.checkNewPassword(ctx, tx, a, k, next); err != nil {
			return err
		}
		if err := s.setPassword(ctx, tx, &a, next, p.SessionID); err != nil {
			return err
		}
		return s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: a.ID, ActorRole: string(a.Role),
			Type: "auth.password.changed", SubjectType: "account", SubjectID: a.ID, Details: `{"via":"change"}`})
	})
}

// ForgotPassword starts "Passwort vergessen" (seed 004). It returns the
// security question to ask. Unknown usernames get a question too (picked
// by a keyed hash of the name, the same every time), and accounts without a
// question get one they cannot answer, which leads to the letter — so the
// answer never tells whether a username exists.
func (s *Service) ForgotPassword(ctx context.Context, tenantID, username string) (string, error) {
	if err := s.hit(ctx, "reset-acct", s.opts.RateLimits.ResetPerAccount, tenantID, strings.ToLower(username)); err != nil {
		return "", err
	}
	var q string
	err := s.store.InTx(ctx, func(tx Tx) error {
		a, err := tx.AccountByLogin(ctx, tenantID, strings.TrimSpace(username))
		if err != nil && !errors.Is(err, ErrAccountNotFound) {
			return err
		}
		if err == nil && a.SecurityQuestion != "" {
			q = a.SecurityQuestion
		}
		return nil
	})
	if q == "" {
		h := keyed(s.tokenKey, "fake-question", tenantID, strings.ToLower(username))
		q = SecurityQuestions[int(h[0])%len(SecurityQuestions)]
	}
	return q, err
}

// ResetChannel says how the reset reached the person.
type ResetChannel string

const (
	ResetByEmail  ResetChannel = "email"  // link to the e-mail address
	ResetByLetter ResetChannel = "letter" // code by post to the stored address
)

// AnswerSecurityQuestion: the right answer sends a reset link by e-mail;
// a wrong answer (or no question, or no e-mail) sends a code by letter
// (seed 004: "nur per Post"), at most one letter a day. Unknown usernames
// answer ResetByLetter like a wrong answer.
func (s *Service) AnswerSecurityQuestion(ctx context.Context, m Meta, tenantID, username, answer string) (ResetChannel, error) {
	if err := s.hit(ctx, "reset-acct", s.opts.RateLimits.ResetPerAccount, tenantID, strings.ToLower(username)); err != nil {
		return "", err
	}
	var a Account
	found := false
	err := s.store.InTx(ctx, func(tx Tx) error {
		var err error
		a, err = tx.AccountByLogin(ctx, tenantID, strings.TrimSpace(username))
		if err == nil {
			found = true
			return nil
		}
		if errors.Is(err, ErrAccountNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return "", err
	}
	hash := s.dummyHash
	if found && a.SecurityAnswerHash != "" {
		hash = a.SecurityAnswerHash
	}
	ok, err := VerifySecret(normalizeAnswer(answer), hash)
	if err != nil {
		return "", err
	}
	if !found {
		return ResetByLetter, nil
	}
	ok = ok && a.SecurityAnswerHash != "" && a.Email != "" && a.Status != StatusEnded && a.Status != StatusInvited
	k, err := s.store.Kasse(ctx, tenantID)
	if err != nil {
		return "", err
	}
	var letter *Letter
	err = s.inTx(ctx, func(tx Tx) error {
		now := tx.Now()
		if a.Status == StatusEnded || a.Status == StatusInvited {
			return nil
		}
		if ok {
			link, err := newLinkToken()
			if err != nil {
				return err
			}
			if err := tx.RevokeTokens(ctx, a.TenantID, a.ID, PurposePasswordReset, now); err != nil {
				return err
			}
			if err := tx.CreateToken(ctx, Token{ID: newID(), TenantID: a.TenantID, AccountID: a.ID, Purpose: PurposePasswordReset,
				Hash: s.linkHash(PurposePasswordReset, link), CreatedAt: now, ExpiresAt: now.Add(ResetLinkLifetime)}); err != nil {
				return err
			}
			if err := s.enqueueMail(ctx, tx, k, a, TemplatePasswordReset, s.link(k, PathPasswordReset, link)); err != nil {
				return err
			}
			return s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: a.ID, ActorRole: string(a.Role),
				Type: "auth.password.reset_requested", SubjectType: "account", SubjectID: a.ID, Details: `{"channel":"email"}`})
		}
		if err := s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: a.ID, ActorRole: string(a.Role),
			Type: "auth.password.reset_requested", SubjectType: "account", SubjectID: a.ID, Details: `{"channel":"letter"}`}); err != nil {
			return err
		}
		if a.PersonID == "" {
			return nil // staff have no postal address here; the Kasse's admins help
		}
		last, err := tx.LatestToken(ctx, a.TenantID, a.ID, PurposeResetLetter)
		if err == nil && now.Sub(last.CreatedAt) < 24*time.Hour {
			return nil // one letter a day is enough
		}
		if err != nil && !errors.Is(err, ErrTokenInvalid) {
			return err
		}
		l, err := s.issueLetterCode(ctx, tx, m, k, a, PurposeResetLetter)
		if err != nil {
			return err
		}
		letter = &l
		return nil
	})
	if err != nil {
		return "", err
	}
	if letter != nil {
		if err := s.sendLetter(ctx, *letter); err != nil {
			return "", err
		}
	}
	if ok {
		return ResetByEmail, nil
	}
	return ResetByLetter, nil
}

// ResetPassword sets a new password with a reset link token (e-mail) or,
// with username, a code from the letter. It lifts a lock caused by wrong
// passwords (seed 004: after the lock, "beantragen Sie die Vergabe eines
// neuen Passwortes"), not a lock on suspicion. Every session ends.
func (s *Service) ResetPassword(ctx context.Context, m Meta, tenantID, username, linkToken, letterCode, next string) error {
	if letterCode != "" {
		if err := s.hit(ctx, "code-acct", s.opts.RateLimits.CodePerAccount, tenantID, strings.ToLower(username)); err != nil {
			return err
		}
	}
	return s.inTx(ctx, func(tx Tx) error {
		now := tx.Now()
		var tk Token
		var a Account
		var err error
		if linkToken != "" {
			tk, err = tx.TokenByHash(ctx, PurposePasswordReset, s.linkHash(PurposePasswordReset, linkToken))
			if err != nil {
				return err
			}
			if (tenantID != "" && tk.TenantID != tenantID) || !tk.Usable(now) {
				return ErrTokenInvalid
			}
			if a, err = tx.AccountByID(ctx, tk.TenantID, tk.AccountID); err != nil {
				return ErrTokenInvalid
			}
		} else {
			if a, err = tx.AccountByLogin(ctx, tenantID, strings.TrimSpace(username)); err != nil {
				return ErrTokenInvalid
			}
			tk, err = tx.TokenByHash(ctx, PurposeResetLetter, s.accountTokenHash(PurposeResetLetter, a.ID, letterCode))
			if err != nil || !tk.Usable(now) || tk.AccountID != a.ID {
				return ErrTokenInvalid
			}
		}
		if a.Status == StatusEnded || a.Status == StatusInvited || (a.Status == StatusLocked && a.LockReason != LockPassword) {
			return ErrTokenInvalid
		}
		k, err := s.store.Kasse(ctx, a.TenantID)
		if err != nil {
			return err
		}
		if err := s.checkNewPassword(ctx, tx, a, k, next); err != nil {
			return err
		}
		tk.UsedAt = now
		if err := tx.UpdateToken(ctx, tk); err != nil {
			return err
		}
		unlocked := a.Status == StatusLocked
		if unlocked {
			a.Status, a.LockReason, a.LockedAt = StatusActive, "", time.Time{}
		}
		a.FailedLogins = 0
		if err := s.setPassword(ctx, tx, &a, next, ""); err != nil {
			return err
		}
		via := "reset_link"
		if tk.Purpose == PurposeResetLetter {
			via = "reset_letter"
		}
		if err := s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: a.ID, ActorRole: string(a.Role),
			Type: "auth.password.changed", SubjectType: "account", SubjectID: a.ID, Details: fmt.Sprintf(`{"via":%q}`, via)}); err != nil {
			return err
		}
		if unlocked {
			return s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: a.ID, ActorRole: string(a.Role),
				Type: "auth.unlocked", SubjectType: "account", SubjectID: a.ID, Details: `{"via":"password_reset"}`})
		}
		return nil
	})
}
