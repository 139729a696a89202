package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"postbox/audit"
	"postbox/kasse"
)

// Login is a sequence of steps, each answered with a LoginResult:
//
//	Login (username + password)            → StageSecondFactor or StageFirstLogin
//	LoginSecondFactor (mTAN or TOTP code,   → StageSecurityQuestion (first login of an insured person),
//	  plus the Freischaltcode at first login)  StageConsent (provider without consent) or StageDone
//	LoginSecurityQuestion                   → StageConsent or StageDone
//	LoginConsent                            → StageDone
//
// Every step before StageDone lives in an unfinished session (10 minutes);
// StageDone creates a new session with a new token (no fixation).

// LoginResult tells the client what comes next.
type LoginResult struct {
	Token      string // session cookie value (changes when the login completes)
	Stage      Stage
	Methods    []string // second factors offered: "mtan", "totp"
	MTANSent   bool
	SMSFailed  bool   // the mTAN could not be sent; request it again
	MobileHint string // "…6789"
	Principal  Principal
}

// ErrNoSecondFactor: the account has neither a confirmed mobile number nor
// an authenticator device.
var ErrNoSecondFactor = errors.New("no second factor")

// ErrUnlockCodeInvalid: the Freischaltcode is wrong, used or expired. The
// login answers it as an *UnlockCodeError, which says which.
var ErrUnlockCodeInvalid = errors.New("unlock code invalid")

// UnlockCodeError is ErrUnlockCodeInvalid with what the person can do
// about it. Only someone who already typed the right password learns it.
type UnlockCodeError struct {
	// Expired: the letter's code is past its lifetime; only a new letter helps.
	Expired bool
	// Voided: it was entered wrongly MTANMaxAttempts times (now or before).
	Voided bool
	// TriesLeft: wrong entries left before the code is voided (a wrong code).
	TriesLeft int
}

func (e *UnlockCodeError) Error() string { return ErrUnlockCodeInvalid.Error() }
func (e *UnlockCodeError) Unwrap() error { return ErrUnlockCodeInvalid }

// SecurityQuestions are the questions to choose from at the first login
// (seed 002: "Auswahl der Sicherheitsfrage").
var SecurityQuestions = []string{
	"Wie hieß Ihr erstes Haustier?",
	"In welcher Stadt haben sich Ihre Eltern kennengelernt?",
	"Wie lautet der Mädchenname Ihrer Mutter?",
	"Wie hieß Ihre erste Grundschullehrerin oder Ihr erster Grundschullehrer?",
	"Wie hieß die Straße, in der Sie als Kind gewohnt haben?",
	"Was war Ihr erstes Auto (Marke und Modell)?",
}

func principalOf(a Account) Principal {
	return Principal{AccountID: a.ID, TenantID: a.TenantID, Role: a.Role, PersonID: a.PersonID, OrgID: a.OrgID}
}

func loginEvent(a Account, outcome audit.Outcome, details string) audit.Event {
	return audit.Event{TenantID: a.TenantID, ActorID: a.ID, ActorRole: string(a.Role), Type: "auth.login",
		SubjectType: "account", SubjectID: a.ID, Outcome: outcome, Details: details}
}

// Login checks username and password. Whatever is wrong — unknown user,
// wrong password, locked or ended account — the answer is ErrLoginFailed
// after the same Argon2 work. Five wrong passwords in a row
// (Settings.PasswordMaxAttempts) lock the account; after that even the
// right password is refused. oldToken (the request's session cookie, if
// any) is ended, so a login never continues an earlier session.
func (s *Service) Login(ctx context.Context, m Meta, tenantID, username, password, oldToken string) (LoginResult, error) {
	if err := s.hitLogin(ctx, m, tenantID, username); err != nil {
		return LoginResult{}, ErrRateLimited
	}
	k, kerr := s.store.Kasse(ctx, tenantID)
	var a Account
	found := false
	if kerr == nil && len(username) <= 64 {
		err := s.store.InTx(ctx, func(tx Tx) error {
			var err error
			a, err = tx.AccountByLogin(ctx, tenantID, strings.TrimSpace(username))
			return err
		})
		switch {
		case err == nil:
			found = true
		case !errors.Is(err, ErrAccountNotFound):
			return LoginResult{}, err
		}
	} else if kerr != nil && !errors.Is(kerr, kasse.ErrNotFound) {
		return LoginResult{}, kerr
	}
	// The expensive check runs outside the transaction and for unknown
	// users too, so timing does not tell whether a username exists.
	hash := s.dummyHash
	if found && a.PasswordHash != "" {
		hash = a.PasswordHash
	}
	ok, err := VerifySecret(password, hash)
	if err != nil {
		return LoginResult{}, err
	}
	ok = ok && found && a.PasswordHash != ""
	// A hash made with older cost parameters is replaced while the
	// password is at hand (only after it proved right).
	var rehash string
	if ok && NeedsRehash(a.PasswordHash, s.opts.Argon2) {
		if rehash, err = HashSecret(password, s.opts.Argon2); err != nil {
			return LoginResult{}, err
		}
	}
	if !found {
		if kerr == nil {
			err := s.inTx(ctx, func(tx Tx) error {
				return s.record(ctx, tx, m, audit.Event{TenantID: tenantID, Type: "auth.login", SubjectType: "login",
					Outcome: audit.OutcomeFailure, Details: `{"reason":"unknown_user"}`})
			})
			if err != nil {
				return LoginResult{}, err
			}
		}
		return LoginResult{}, ErrLoginFailed
	}

	var res LoginResult
	var sms []pendingSMS
	checked := a.PasswordHash
	err = s.inTx(ctx, func(tx Tx) error {
		a, err := tx.AccountByID(ctx, a.TenantID, a.ID) // locked for the rest of the transaction
		if err != nil {
			return err
		}
		switch a.Status {
		case StatusLocked, StatusEnded, StatusInvited:
			if err := s.record(ctx, tx, m, loginEvent(a, audit.OutcomeFailure, fmt.Sprintf(`{"reason":%q,"password_ok":%v}`, a.Status, ok))); err != nil {
				return err
			}
			return errCommit{ErrLoginFailed}
		}
		if !ok {
			n, err := tx.AddLoginFailure(ctx, a.TenantID, a.ID)
			if err != nil {
				return err
			}
			if err := s.record(ctx, tx, m, loginEvent(a, audit.OutcomeFailure, fmt.Sprintf(`{"reason":"password","failures":%d}`, n))); err != nil {
				return err
			}
			if n >= k.Settings.PasswordMaxAttempts {
				if err := s.lock(ctx, tx, m, a, n, LockPassword, "", ""); err != nil {
					return err
				}
			}
			return errCommit{ErrLoginFailed}
		}
		// The rehash applies only if the password did not change since
		// it was checked outside this transaction.
		rehashed := rehash != "" && a.PasswordHash == checked
		if a.FailedLogins != 0 || rehashed {
			a.FailedLogins = 0
			if rehashed {
				a.PasswordHash = rehash
			}
			if err := tx.UpdateAccount(ctx, a); err != nil {
				return err
			}
		}
		if a.Status == StatusPending && a.EmailConfirmedAt.IsZero() {
			return errCommit{ErrEmailUnconfirmed}
		}
		stage := StageSecondFactor
		if a.Role == RoleInsured && a.Status == StatusPending {
			stage = StageFirstLogin
		}
		methods, err := s.methods(ctx, tx, a, stage)
		if err != nil {
			return err
		}
		if len(methods) == 0 {
			return errCommit{ErrNoSecondFactor}
		}
		if oldToken != "" {
			if old, err := tx.SessionByTokenHash(ctx, HashSessionToken(oldToken)); err == nil {
				if err := tx.DeleteSession(ctx, old.ID); err != nil {
					return err
				}
			}
		}
		token, _, err := s.StartSessionTx(ctx, tx, principalOf(a), stage, "", s.ClientHash(m.ClientAddr))
		if err != nil {
			return err
		}
		res = LoginResult{Token: token, Stage: stage, Methods: methods, MobileHint: MaskMobile(a.Mobile)}
		if methods[0] == "mtan" && len(methods) == 1 {
			code, err := s.issueMTAN(ctx, tx, a, CodeLogin)
			if err != nil && !errors.Is(err, ErrRateLimited) {
				return err
			}
			if err == nil {
				sms = append(sms, pendingSMS{a.Mobile, smsText(k.Name, CodeLogin, code)})
			}
		}
		return s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: a.ID, ActorRole: string(a.Role),
			Type: "auth.login.password", SubjectType: "account", SubjectID: a.ID, Details: fmt.Sprintf(`{"next":%q}`, stage)})
	})
	if err != nil {
		return LoginResult{}, err
	}
	if len(sms) > 0 {
		if err := s.sendSMS(ctx, sms...); err != nil {
			s.opts.Logger.Warn("mTAN not sent", "err", err)
			res.SMSFailed = true
		} else {
			res.MTANSent = true
		}
	}
	return res, nil
}

// methods lists the second factors of an account: mTAN to a confirmed
// number (or, at the first login, the registered one) and TOTP devices.
func (s *Service) methods(ctx context.Context, tx Tx, a Account, stage Stage) ([]string, error) {
	var out []string
	if a.Mobile != "" && (!a.MobileConfirmedAt.IsZero() || stage == StageFirstLogin) {
		out = append(out, "mtan")
	}
	if stage == StageFirstLogin {
		return out, nil // the first login proves the number with the mTAN
	}
	devices, err := tx.DevicesOfAccount(ctx, a.TenantID, a.ID)
	if err != nil {
		return nil, err
	}
	for _, d := range devices {
		if d.Status == DeviceActive {
			return append(out, "totp"), nil
		}
	}
	return out, nil
}

// lock locks an account and ends its sessions; actor "" is the system
// (password attempts).
func (s *Service) lock(ctx context.Context, tx Tx, m Meta, a Account, failures int, reason, actorID, actorRole string) error {
	now := tx.Now()
	a.Status, a.LockReason, a.LockedAt = StatusLocked, reason, now
	if failures > 0 {
		a.FailedLogins = failures
	}
	if err := tx.UpdateAccount(ctx, a); err != nil {
		return err
	}
	if _, err := tx.DeleteAccountSessions(ctx, a.TenantID, a.ID, ""); err != nil {
		return err
	}
	details := fmt.Sprintf(`{"reason":%q}`, reason)
	if failures > 0 {
		details = fmt.Sprintf(`{"reason":%q,"failures":%d}`, reason, failures)
	}
	if actorRole == "" {
		actorRole = "system"
	}
	return s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: actorID, ActorRole: actorRole,
		Type: "auth.locked", SubjectType: "account", SubjectID: a.ID, Details: details})
}

// pendingLogin returns the unfinished login of token in one of the stages.
func (s *Service) pendingLogin(ctx context.Context, token string, stages ...Stage) (Session, error) {
	sess, err := s.ResolveSession(ctx, token)
	if err != nil {
		return Session{}, err
	}
	for _, st := range stages {
		if sess.Stage == st {
			return sess, nil
		}
	}
	return Session{}, ErrWrongStage
}

// ResendLoginMTAN sends a new mTAN for an unfinished login.
func (s *Service) ResendLoginMTAN(ctx context.Context, m Meta, token string) (LoginResult, error) {
	sess, err := s.pendingLogin(ctx, token, StageSecondFactor, StageFirstLogin)
	if err != nil {
		return LoginResult{}, err
	}
	var sms []pendingSMS
	var a Account
	err = s.inTx(ctx, func(tx Tx) error {
		var err error
		if a, err = tx.AccountByID(ctx, sess.TenantID, sess.AccountID); err != nil {
			return err
		}
		methods, err := s.methods(ctx, tx, a, sess.Stage)
		if err != nil {
			return err
		}
		if len(methods) == 0 || methods[0] != "mtan" {
			return ErrNoSecondFactor
		}
		k, err := s.store.Kasse(ctx, a.TenantID)
		if err != nil {
			return err
		}
		code, err := s.issueMTAN(ctx, tx, a, CodeLogin)
		if err != nil {
			return err
		}
		sms = append(sms, pendingSMS{a.Mobile, smsText(k.Name, CodeLogin, code)})
		return nil
	})
	if err != nil {
		return LoginResult{}, err
	}
	res := LoginResult{Token: token, Stage: sess.Stage, MobileHint: MaskMobile(a.Mobile)}
	if err := s.sendSMS(ctx, sms...); err != nil {
		res.SMSFailed = true
		return res, err
	}
	res.MTANSent = true
	return res, nil
}

// LoginSecondFactor checks the mTAN or a TOTP code ("mtan" or "totp"); at
// the first login of an insured person also the Freischaltcode from the
// letter (seed 002).
func (s *Service) LoginSecondFactor(ctx context.Context, m Meta, token, method, code, unlockCode string) (LoginResult, error) {
	sess, err := s.pendingLogin(ctx, token, StageSecondFactor, StageFirstLogin)
	if err != nil {
		return LoginResult{}, err
	}
	if err := s.hit(ctx, "code-acct", s.opts.RateLimits.CodePerAccount, sess.TenantID, sess.AccountID); err != nil {
		return LoginResult{}, err
	}
	var res LoginResult
	err = s.inTx(ctx, func(tx Tx) error {
		a, err := tx.AccountByID(ctx, sess.TenantID, sess.AccountID)
		if err != nil {
			return err
		}
		if a.Status != StatusActive && a.Status != StatusPending {
			return ErrNoSession
		}
		now := tx.Now()
		first := sess.Stage == StageFirstLogin
		var unlock Token
		if first {
			if method != "mtan" {
				return ErrWrongStage
			}
			unlock, err = tx.TokenByHash(ctx, PurposeUnlockCode, s.accountTokenHash(PurposeUnlockCode, a.ID, unlockCode))
			if err != nil && !errors.Is(err, ErrTokenInvalid) {
				return err
			}
			if err != nil || unlock.AccountID != a.ID || unlock.TenantID != a.TenantID || !unlock.Usable(now) {
				refused, err := s.countUnlockFailure(ctx, tx, a)
				if err != nil {
					return err
				}
				if err := s.record(ctx, tx, m, loginEvent(a, audit.OutcomeFailure, `{"step":"unlock_code"}`)); err != nil {
					return err
				}
				return errCommit{refused}
			}
		}
		var ok bool
		switch method {
		case "mtan":
			ok, err = s.checkMTAN(ctx, tx, a, CodeLogin, code)
		case "totp":
			ok, err = s.verifyTOTP(ctx, tx, a, code)
		default:
			return FieldErrors{{Field: "method", Message: "Bitte wählen Sie mTAN oder Authenticator-App."}}
		}
		if err != nil {
			return err
		}
		if !ok {
			if err := s.record(ctx, tx, m, loginEvent(a, audit.OutcomeFailure, fmt.Sprintf(`{"step":"second_factor","method":%q}`, method))); err != nil {
				return err
			}
			return errCommit{ErrCodeInvalid}
		}
		if method == "mtan" && a.MobileConfirmedAt.IsZero() {
			a.MobileConfirmedAt = now
		}
		if first {
			unlock.UsedAt = now
			if err := tx.UpdateToken(ctx, unlock); err != nil {
				return err
			}
			a.ActivatedAt, a.Status = now, StatusActive
			if err := s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: a.ID, ActorRole: string(a.Role),
				Type: "auth.account.activated", SubjectType: "account", SubjectID: a.ID}); err != nil {
				return err
			}
		}
		if err := tx.UpdateAccount(ctx, a); err != nil {
			return err
		}
		sess.Data = fmt.Sprintf(`{"method":%q}`, method)
		res, err = s.advance(ctx, tx, m, sess, token, a)
		return err
	})
	return res, err
}

// countUnlockFailure voids the account's Freischaltcode after 5 wrong
// entries (a new letter comes from the Kasse) and says why the entry was
// refused.
func (s *Service) countUnlockFailure(ctx context.Context, tx Tx, a Account) (*UnlockCodeError, error) {
	tk, err := tx.LatestToken(ctx, a.TenantID, a.ID, PurposeUnlockCode)
	if errors.Is(err, ErrTokenInvalid) {
		return &UnlockCodeError{Expired: true}, nil
	}
	if err != nil {
		return nil, err
	}
	now := tx.Now()
	switch {
	case !tk.RevokedAt.IsZero():
		return &UnlockCodeError{Voided: true}, nil
	case !tk.Usable(now):
		return &UnlockCodeError{Expired: true}, nil
	}
	tk.Attempts++
	if tk.Attempts >= MTANMaxAttempts {
		tk.RevokedAt = now
	}
	if err := tx.UpdateToken(ctx, tk); err != nil {
		return nil, err
	}
	return &UnlockCodeError{Voided: tk.Attempts >= MTANMaxAttempts, TriesLeft: max(MTANMaxAttempts-tk.Attempts, 0)}, nil
}

// advance moves an unfinished login to its next stage, or finishes it.
func (s *Service) advance(ctx context.Context, tx Tx, m Meta, sess Session, token string, a Account) (LoginResult, error) {
	next := StageDone
	switch {
	case a.Role == RoleInsured && a.SecurityQuestion == "":
		next = StageSecurityQuestion
	case needsConsent(a):
		next = StageConsent
	}
	if next != StageDone {
		sess.Stage = next
		if err := tx.UpdateSession(ctx, sess); err != nil {
			return LoginResult{}, err
		}
		return LoginResult{Token: token, Stage: next}, nil
	}
	// Finished: the unfinished session goes, a new one with a new token
	// comes, so no identifier from before the login stays valid.
	if err := tx.DeleteSession(ctx, sess.ID); err != nil {
		return LoginResult{}, err
	}
	p := principalOf(a)
	newToken, done, err := s.StartSessionTx(ctx, tx, p, StageDone, "", s.ClientHash(m.ClientAddr))
	if err != nil {
		return LoginResult{}, err
	}
	p.SessionID = done.ID
	details := sess.Data
	if details == "" {
		details = "{}"
	}
	if err := s.record(ctx, tx, m, loginEvent(a, audit.OutcomeSuccess, details)); err != nil {
		return LoginResult{}, err
	}
	return LoginResult{Token: newToken, Stage: StageDone, Principal: p}, nil
}

// LoginSecurityQuestion sets the security question at the first login.
func (s *Service) LoginSecurityQuestion(ctx context.Context, m Meta, token, question, answer string) (LoginResult, error) {
	sess, err := s.pendingLogin(ctx, token, StageSecurityQuestion)
	if err != nil {
		return LoginResult{}, err
	}
	hash, err := s.securityAnswerHash(question, answer)
	if err != nil {
		return LoginResult{}, err
	}
	var res LoginResult
	err = s.inTx(ctx, func(tx Tx) error {
		a, err := tx.AccountByID(ctx, sess.TenantID, sess.AccountID)
		if err != nil {
			return err
		}
		a.SecurityQuestion, a.SecurityAnswerHash = question, hash
		if err := tx.UpdateAccount(ctx, a); err != nil {
			return err
		}
		if err := s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: a.ID, ActorRole: string(a.Role),
			Type: "auth.security_question.set", SubjectType: "account", SubjectID: a.ID}); err != nil {
			return err
		}
		res, err = s.advance(ctx, tx, m, sess, token, a)
		return err
	})
	return res, err
}

// LoginConsent records the consent asked at a provider user's first login.
func (s *Service) LoginConsent(ctx context.Context, m Meta, token, version string) (LoginResult, error) {
	sess, err := s.pendingLogin(ctx, token, StageConsent)
	if err != nil {
		return LoginResult{}, err
	}
	var res LoginResult
	err = s.inTx(ctx, func(tx Tx) error {
		a, err := tx.AccountByID(ctx, sess.TenantID, sess.AccountID)
		if err != nil {
			return err
		}
		if err := s.giveConsent(ctx, tx, m, &a, version); err != nil {
			return err
		}
		res, err = s.advance(ctx, tx, m, sess, token, a)
		return err
	})
	return res, err
}

// normalizeAnswer makes "  Bello " and "bello" the same answer.
func normalizeAnswer(s string) string { return strings.ToLower(strings.Join(strings.Fields(s), " ")) }

func (s *Service) securityAnswerHash(question, answer string) (string, error) {
	known := false
	for _, q := range SecurityQuestions {
		known = known || q == question
	}
	var errs FieldErrors
	if !known {
		errs = append(errs, &FieldError{Field: "question", Message: "Bitte wählen Sie eine der angebotenen Sicherheitsfragen."})
	}
	if len([]rune(normalizeAnswer(answer))) < 3 {
		errs = append(errs, &FieldError{Field: "answer", Message: "Die Antwort auf die Sicherheitsfrage muss mindestens 3 Zeichen lang sein."})
	}
	if err := errs.asErr(); err != nil {
		return "", err
	}
	return HashSecret(normalizeAnswer(answer), s.opts.Argon2)
}
