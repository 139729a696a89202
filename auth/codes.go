package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"math/big"
	"strings"
	"time"

	"postbox/audit"
	"postbox/kasse"
)

// Meta is the request context the auth flows record: a keyed hash of the
// client address (never the address) and the request id.
type Meta struct {
	ClientAddr string
	RequestID  string
}

// randomFrom returns n characters drawn uniformly from alphabet.
func randomFrom(alphabet string, n int) (string, error) {
	var b strings.Builder
	max := big.NewInt(int64(len(alphabet)))
	for i := 0; i < n; i++ {
		k, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", fmt.Errorf("random: %w", err)
		}
		b.WriteByte(alphabet[k.Int64()])
	}
	return b.String(), nil
}

func randomDigits(n int) (string, error) { return randomFrom("0123456789", n) }

// unlockAlphabet avoids characters that are confused on paper (0/O, 1/I/L).
const unlockAlphabet = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"

// newUnlockCode is a Freischaltcode for a letter: 12 characters, shown as
// XXXX-XXXX-XXXX (about 59 bits).
func newUnlockCode() (string, error) { return randomFrom(unlockAlphabet, 12) }

// FormatUnlockCode groups a Freischaltcode for print.
func FormatUnlockCode(c string) string {
	if len(c) != 12 {
		return c
	}
	return c[:4] + "-" + c[4:8] + "-" + c[8:]
}

// normalizeCode drops spaces and dashes and upper-cases, so a code typed
// as printed or as one word matches.
func normalizeCode(c string) string {
	return strings.ToUpper(strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' || r == '\t' {
			return -1
		}
		return r
	}, strings.TrimSpace(c)))
}

// newLinkToken is the secret of an e-mail link: 32 random bytes.
func newLinkToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("link token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Token and code purposes.
const (
	PurposeEmailConfirm     = "email_confirm"
	PurposeUnlockCode       = "unlock_code"    // Freischaltcode by letter
	PurposePasswordReset    = "password_reset" // link by e-mail
	PurposeResetLetter      = "reset_letter"   // code by letter after "Passwort vergessen"
	PurposeInvitation       = "invitation"
	PurposeDeviceActivation = "device_activation"
	PurposeEmailChange      = "email_change" // link to a new e-mail address

	CodeLogin         = "login"
	CodeStepUp        = "stepup"
	CodeMobileConfirm = "mobile_confirm"
	CodeMobileOld     = "mobile_old"
	CodeMobileNew     = "mobile_new"
)

// mTAN rules.
const (
	MTANLength      = 6
	MTANLifetime    = 5 * time.Minute
	MTANMaxAttempts = 5 // wrong entries before a code is void
	// ResetLinkLifetime is how long a password reset link by e-mail works.
	ResetLinkLifetime = 24 * time.Hour
	// EmailChangeLinkLifetime is how long the link to a new e-mail address
	// works; the change was asked for in a logged-in session, so a day is
	// enough and keeps a mistyped address from waiting for weeks.
	EmailChangeLinkLifetime = 24 * time.Hour
)

func (s *Service) codeHash(tenantID, accountID, purpose, code string) string {
	return keyed(s.codeKey, tenantID, accountID, purpose, code)
}

// linkHash is for random link tokens, found by their hash alone.
func (s *Service) linkHash(purpose, token string) string {
	return keyed(s.tokenKey, purpose, token)
}

// redeemLink finds the usable token of a mailed link and its account, which
// must be in status want; anything else is ErrTokenInvalid. It returns the
// account's Kasse and the transaction's time too, which every link flow needs.
func (s *Service) redeemLink(ctx context.Context, tx Tx, purpose, link string, want AccountStatus) (Token, Account, kasse.Kasse, time.Time, error) {
	tk, err := tx.TokenByHash(ctx, purpose, s.linkHash(purpose, link))
	if err != nil {
		return Token{}, Account{}, kasse.Kasse{}, time.Time{}, err
	}
	now := tx.Now()
	if !tk.Usable(now) {
		return Token{}, Account{}, kasse.Kasse{}, time.Time{}, ErrTokenInvalid
	}
	a, err := tx.AccountByID(ctx, tk.TenantID, tk.AccountID)
	if err != nil || a.Status != want {
		return Token{}, Account{}, kasse.Kasse{}, time.Time{}, ErrTokenInvalid
	}
	k, err := s.store.Kasse(ctx, a.TenantID)
	if err != nil {
		return Token{}, Account{}, kasse.Kasse{}, time.Time{}, err
	}
	return tk, a, k, now, nil
}

// accountTokenHash is for short codes (Freischaltcode, activation code),
// which are always looked up together with their account.
func (s *Service) accountTokenHash(purpose, accountID, code string) string {
	return keyed(s.tokenKey, purpose, accountID, normalizeCode(code))
}

func equalHash(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// record writes an audit event with the request's client hash and id.
func (s *Service) record(ctx context.Context, tx Tx, m Meta, e audit.Event) error {
	e.ClientHash = s.ClientHash(m.ClientAddr)
	e.RequestID = m.RequestID
	_, err := tx.RecordEvent(ctx, e)
	return err
}

// issueMTAN stores a new code of a purpose (voiding older ones of the same
// purpose) and returns it for sending after commit.
func (s *Service) issueMTAN(ctx context.Context, tx Tx, a Account, purpose string) (string, error) {
	now := tx.Now()
	// At most 5 SMS per account in 15 minutes: SMS cost money and can be
	// used to pester someone.
	n, err := tx.CountCodesSince(ctx, a.TenantID, a.ID, now.Add(-15*time.Minute))
	if err != nil {
		return "", err
	}
	if n >= 5 {
		return "", ErrRateLimited
	}
	code, err := randomDigits(MTANLength)
	if err != nil {
		return "", err
	}
	if err := tx.InvalidateCodes(ctx, a.TenantID, a.ID, purpose, now); err != nil {
		return "", err
	}
	c := Code{ID: newID(), TenantID: a.TenantID, AccountID: a.ID, Purpose: purpose,
		Hash: s.codeHash(a.TenantID, a.ID, purpose, code), CreatedAt: now, ExpiresAt: now.Add(MTANLifetime)}
	if err := tx.CreateCode(ctx, c); err != nil {
		return "", err
	}
	return code, nil
}

// checkMTAN redeems a code: single use, 5 minutes, 5 wrong entries void it.
func (s *Service) checkMTAN(ctx context.Context, tx Tx, a Account, purpose, code string) (bool, error) {
	return s.matchMTAN(ctx, tx, a, purpose, code, true)
}

// matchMTAN checks a code; a wrong one counts as a failed attempt, a right
// one is used up only if consume (so two codes can be checked together).
func (s *Service) matchMTAN(ctx context.Context, tx Tx, a Account, purpose, code string, consume bool) (bool, error) {
	now := tx.Now()
	codes, err := tx.ActiveCodes(ctx, a.TenantID, a.ID, purpose, now)
	if err != nil || len(codes) == 0 {
		return false, err
	}
	c := codes[0] // older ones were voided when this one was issued
	code = normalizeCode(code)
	if len(code) == MTANLength && equalHash(c.Hash, s.codeHash(a.TenantID, a.ID, purpose, code)) {
		if !consume {
			return true, nil
		}
		c.UsedAt = now
		return true, tx.UpdateCode(ctx, c)
	}
	c.Attempts++
	if c.Attempts >= MTANMaxAttempts {
		c.ExpiresAt = now
	}
	return false, tx.UpdateCode(ctx, c)
}

// smsText is the German SMS for a code.
func smsText(kasseName, purpose, code string) string {
	what := "Ihre mTAN für die Anmeldung"
	switch purpose {
	case CodeStepUp:
		what = "Ihr Sicherheitscode zur Bestätigung einer Änderung"
	case CodeMobileConfirm, CodeMobileNew:
		what = "Ihr Code zur Bestätigung dieser Mobilnummer"
	case CodeMobileOld:
		what = "Ihr Code zur Änderung Ihrer Mobilnummer"
	}
	return fmt.Sprintf("%s im Postfach der %s: %s. Gültig 5 Minuten. Geben Sie den Code niemals weiter.", what, kasseName, code)
}

// MaskMobile shows only the last digits of a number, e.g. "…6789".
func MaskMobile(m string) string {
	if len(m) < 4 {
		return "…"
	}
	return "…" + m[len(m)-4:]
}

// pendingSMS is an SMS to send after the transaction committed.
type pendingSMS struct{ to, text string }

func (s *Service) sendSMS(ctx context.Context, msgs ...pendingSMS) error {
	if s.opts.SMS == nil {
		return fmt.Errorf("no SMS gateway configured")
	}
	for _, m := range msgs {
		if err := s.opts.SMS.SendSMS(ctx, m.to, m.text); err != nil {
			return fmt.Errorf("%w: %v", ErrSMSFailed, err)
		}
	}
	return nil
}
