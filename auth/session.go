package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"postbox/audit"
)

// Stage is how far a login has come. A session with a stage other than
// StageDone is an unfinished login: it authorises nothing but the next step.
type Stage string

const (
	StageDone             Stage = ""
	StageSecondFactor     Stage = "second_factor"     // password ok, waiting for mTAN or TOTP code
	StageFirstLogin       Stage = "first_login"       // password ok, waiting for Freischaltcode + mTAN (seed 002)
	StageSecurityQuestion Stage = "security_question" // first login done, security question not yet set
	StageConsent          Stage = "consent"           // provider user must consent (seed 001)
)

// Session is a login (or an unfinished one) stored in the database, so any
// replica can serve it. Only the SHA-256 of its token is stored.
type Session struct {
	ID         string // public id, safe for logs and audit events
	TokenHash  string
	TenantID   string
	AccountID  string // "" for an Einmal-PIN session
	Role       Role
	PersonID   string
	OrgID      string
	Stage      Stage
	Data       string // JSON state of an unfinished login
	ClientHash string
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time
	StepUpAt   time.Time // last fresh security code entered in this session

	// AccountStatus is read with the session: a session of an account that
	// is no longer active is not honoured even if it was not deleted.
	AccountStatus AccountStatus
}

// Principal is who acts with this session.
func (s Session) Principal() Principal {
	return Principal{AccountID: s.AccountID, TenantID: s.TenantID, Role: s.Role, PersonID: s.PersonID, OrgID: s.OrgID, SessionID: s.ID}
}

// ErrNoSession is returned for a missing, expired or revoked session.
var ErrNoSession = errors.New("no valid session")

// ErrSessionNotFound is returned by stores for an unknown token hash or id.
var ErrSessionNotFound = errors.New("session not found")

// touchEvery limits the writes the idle timeout costs: last_seen_at moves at
// most once a minute per session.
const touchEvery = time.Minute

// NewSessionToken returns a random 32-byte token (base64url, for the cookie)
// and the hash that is stored.
func NewSessionToken() (token, hash string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("session token: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(b[:])
	return token, HashSessionToken(token), nil
}

// HashSessionToken is the stored form of a session token.
func HashSessionToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// CSRFToken is the synchronizer token of a session: an HMAC of the session
// token, so it is bound to this session, changes with every new login and
// does not reveal the session token.
func CSRFToken(sessionToken string) string {
	m := hmac.New(sha256.New, []byte(sessionToken))
	m.Write([]byte("postbox/csrf/v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// CheckCSRF compares a presented token with the session's in constant time.
func CheckCSRF(sessionToken, presented string) bool {
	if sessionToken == "" || presented == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(CSRFToken(sessionToken)), []byte(presented)) == 1
}

// StartSessionTx creates a session for p in tx and returns its token. A
// stage other than StageDone makes an unfinished login that expires after
// LoginStepLifetime. Other packages (e.g. the Einmal-PIN login) use it with
// their own transaction; data is small JSON state or "".
func (s *Service) StartSessionTx(ctx context.Context, tx Tx, p Principal, stage Stage, data, clientHash string) (string, Session, error) {
	token, hash, err := NewSessionToken()
	if err != nil {
		return "", Session{}, err
	}
	now := tx.Now()
	life := s.opts.SessionAbsolute
	if stage != StageDone {
		life = s.opts.LoginStepLifetime
	}
	if data == "" {
		data = "{}"
	}
	sess := Session{ID: uuid.NewString(), TokenHash: hash, TenantID: p.TenantID, AccountID: p.AccountID, Role: p.Role,
		PersonID: p.PersonID, OrgID: p.OrgID, Stage: stage, Data: data, ClientHash: clientHash,
		CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(life)}
	if err := tx.CreateSession(ctx, sess); err != nil {
		return "", Session{}, err
	}
	return token, sess, nil
}

// StartSession is StartSessionTx in a transaction of its own.
func (s *Service) StartSession(ctx context.Context, p Principal, stage Stage, clientHash string) (token string, sess Session, err error) {
	err = s.store.InTx(ctx, func(tx Tx) error {
		token, sess, err = s.StartSessionTx(ctx, tx, p, stage, "", clientHash)
		return err
	})
	return token, sess, err
}

// ResolveSession returns the session of a cookie token if it is still valid:
// not past its absolute end, not idle too long (finished logins only) and
// its account still active. It moves the idle clock forward.
func (s *Service) ResolveSession(ctx context.Context, token string) (Session, error) {
	if token == "" || len(token) > 128 {
		return Session{}, ErrNoSession
	}
	sess, err := s.store.SessionByTokenHash(ctx, HashSessionToken(token))
	if errors.Is(err, ErrSessionNotFound) {
		return Session{}, ErrNoSession
	}
	if err != nil {
		return Session{}, err
	}
	now := s.store.Now()
	if !s.sessionValid(sess, now) {
		// Best effort: a stale row is also removed by the cleanup.
		_ = s.store.InTx(ctx, func(tx Tx) error { return tx.DeleteSession(ctx, sess.ID) })
		return Session{}, ErrNoSession
	}
	if now.Sub(sess.LastSeenAt) >= touchEvery {
		if err := s.store.TouchSession(ctx, sess.ID, now); err != nil {
			return Session{}, err
		}
		sess.LastSeenAt = now
	}
	return sess, nil
}

func (s *Service) sessionValid(sess Session, now time.Time) bool {
	if !now.Before(sess.ExpiresAt) {
		return false
	}
	if sess.Stage == StageDone && now.Sub(sess.LastSeenAt) >= s.opts.SessionIdle {
		return false
	}
	if sess.AccountID != "" && sess.AccountStatus != StatusActive {
		// A registration's own steps (mobile confirmation, first login with
		// the Freischaltcode) run before the account is active.
		if !(sess.Stage != StageDone && sess.AccountStatus == StatusPending) {
			return false
		}
	}
	return true
}

// EndSession logs out one session (by cookie token). Unknown tokens are fine.
func (s *Service) EndSession(ctx context.Context, token string) error {
	sess, err := s.store.SessionByTokenHash(ctx, HashSessionToken(token))
	if errors.Is(err, ErrSessionNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.store.InTx(ctx, func(tx Tx) error {
		if err := tx.DeleteSession(ctx, sess.ID); err != nil {
			return err
		}
		if sess.AccountID == "" || sess.Stage != StageDone {
			return nil
		}
		_, err := tx.RecordEvent(ctx, audit.Event{TenantID: sess.TenantID, ActorID: sess.AccountID, ActorRole: string(sess.Role),
			Type: "auth.logout", SubjectType: "session", SubjectID: sess.ID})
		return err
	})
}

// EndAllSessions is "log out everywhere": every session of the actor's
// account ends, including the current one (keepCurrent=false) or all others.
func (s *Service) EndAllSessions(ctx context.Context, actor Principal, keepCurrent bool, requestID string) (int, error) {
	if actor.AccountID == "" {
		return 0, ErrNoSession
	}
	var n int
	err := s.store.InTx(ctx, func(tx Tx) error {
		keep := ""
		if keepCurrent {
			keep = actor.SessionID
		}
		var err error
		if n, err = tx.DeleteAccountSessions(ctx, actor.TenantID, actor.AccountID, keep); err != nil {
			return err
		}
		_, err = tx.RecordEvent(ctx, audit.Event{TenantID: actor.TenantID, ActorID: actor.AccountID, ActorRole: string(actor.Role),
			Type: "auth.session.revoked", SubjectType: "account", SubjectID: actor.AccountID, RequestID: requestID,
			Details: fmt.Sprintf(`{"sessions":%d,"scope":"all"}`, n)})
		return err
	})
	return n, err
}

// stepUpFresh reports whether the session saw a security code recently
// enough for a sensitive change.
func (s *Service) stepUpFresh(sess Session, now time.Time) bool {
	return !sess.StepUpAt.IsZero() && now.Sub(sess.StepUpAt) <= s.opts.StepUpWindow
}

// CleanupSessions removes sessions past their absolute end.
func (s *Service) CleanupSessions(ctx context.Context) (int, error) {
	var n int
	err := s.store.InTx(ctx, func(tx Tx) error {
		var err error
		n, err = tx.DeleteExpiredSessions(ctx, tx.Now())
		return err
	})
	return n, err
}
