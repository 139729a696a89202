package auth

import (
	"errors"
	"strings"
)

// FieldError is a rule violation of one input field, with a German message
// that names what is wrong. The web layer shows Message as is.
type FieldError struct {
	Field   string // e.g. "password", "username", "kvnr"
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// FieldErrors collects every violation of an input, so a form shows them
// all at once.
type FieldErrors []*FieldError

func (es FieldErrors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// Messages returns the German messages.
func (es FieldErrors) Messages() []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Message
	}
	return out
}

// asErr returns nil for no violations (a nil slice in an error interface is
// not nil).
func (es FieldErrors) asErr() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// Errors of the login and account flows. The web layer maps each to a
// German problem; messages never tell whether a username exists.
var (
	ErrLoginFailed       = errors.New("login failed")          // wrong username/password, locked or ended: one answer
	ErrRateLimited       = errors.New("too many attempts")     // per account or per client address
	ErrCodeInvalid       = errors.New("security code invalid") // wrong, expired or used mTAN/TOTP/Freischaltcode
	ErrStepUpRequired    = errors.New("fresh security code required")
	ErrWrongStage        = errors.New("login step not expected")
	ErrNotAllowed        = errors.New("not allowed")          // role or tenant mismatch: answer 404
	ErrTokenInvalid      = errors.New("link or code invalid") // expired, used or unknown link/activation code
	ErrPasswordTooSoon   = errors.New("password changed too recently")
	ErrEmailUnconfirmed  = errors.New("e-mail address not confirmed")
	ErrNotEligible       = errors.New("registration not possible")
	ErrAlreadyRegistered = errors.New("already registered")
)

// ErrSMSFailed: the SMS gateway did not take the message; the code stays
// valid and can be requested again.
var ErrSMSFailed = errors.New("sms not sent")
