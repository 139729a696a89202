package auth

import (
	"context"
	"time"

	"postbox/audit"
	"postbox/kasse"
	"postbox/notifier"
)

// Store is what the auth service needs from the transactional database.
// storage/sqldb implements it (Store.Auth()); every change runs in InTx so
// it commits together with its audit event and mail job.
type Store interface {
	InTx(ctx context.Context, fn func(tx Tx) error) error
	Now() time.Time
	Kasse(ctx context.Context, id string) (kasse.Kasse, error)
	Kassen(ctx context.Context) ([]kasse.Kasse, error)
	PersonByKVNR(ctx context.Context, tenantID, kvnr string) (kasse.Person, error)
	Person(ctx context.Context, tenantID, id string) (kasse.Person, error)
	// SessionByTokenHash returns the session with that token hash together
	// with the status of its account ("" for sessions without account).
	SessionByTokenHash(ctx context.Context, tokenHash string) (Session, error)
	// TouchSession moves last_seen_at forward (idle timeout).
	TouchSession(ctx context.Context, id string, at time.Time) error
}

// Tx is one transaction of the auth store. Reads of accounts inside a Tx
// lock the row on PostgreSQL (FOR UPDATE), so concurrent logins of one
// account queue up instead of losing a failure count.
type Tx interface {
	Now() time.Time
	RecordEvent(ctx context.Context, e audit.Event) (audit.Event, error)
	EnqueueMail(ctx context.Context, j notifier.Job) (notifier.Job, error)

	// Accounts. Lookups return ErrAccountNotFound.
	CreateAccount(ctx context.Context, a Account) error
	AccountByID(ctx context.Context, tenantID, id string) (Account, error)
	AccountByLogin(ctx context.Context, tenantID, username string) (Account, error) // case-insensitive
	AccountsByEmail(ctx context.Context, tenantID, email string) ([]Account, error)
	LiveAccountOfPerson(ctx context.Context, tenantID, personID string) (Account, error)
	AccountsOfOrg(ctx context.Context, tenantID, orgID string) ([]Account, error)
	// UpdateAccount stores every mutable field of a.
	UpdateAccount(ctx context.Context, a Account) error
	// AddLoginFailure counts one more wrong password atomically and returns
	// the new count.
	AddLoginFailure(ctx context.Context, tenantID, id string) (int, error)
	// ExpiredRegistrations lists pending accounts whose e-mail was not
	// confirmed and that were created before cutoff.
	ExpiredRegistrations(ctx context.Context, tenantID string, cutoff time.Time) ([]Account, error)
	// DeleteAccount removes an account and everything of it in the auth
	// tables (only for registrations that never became active).
	DeleteAccount(ctx context.Context, tenantID, id string) error

	// Password history, newest first.
	AddPasswordHistory(ctx context.Context, tenantID, accountID, hash string, at time.Time) error
	PasswordHistory(ctx context.Context, tenantID, accountID string, n int) ([]string, error)

	// One-time codes (mTAN).
	CreateCode(ctx context.Context, c Code) error
	// ActiveCodes returns unused, unexpired codes of a purpose, newest first.
	ActiveCodes(ctx context.Context, tenantID, accountID, purpose string, now time.Time) ([]Code, error)
	UpdateCode(ctx context.Context, c Code) error
	InvalidateCodes(ctx context.Context, tenantID, accountID, purpose string, now time.Time) error
	CountCodesSince(ctx context.Context, tenantID, accountID string, since time.Time) (int, error)

	// Links and letter codes.
	CreateToken(ctx context.Context, t Token) error
	TokenByHash(ctx context.Context, purpose, hash string) (Token, error) // ErrTokenInvalid if unknown
	UpdateToken(ctx context.Context, t Token) error
	RevokeTokens(ctx context.Context, tenantID, accountID, purpose string, now time.Time) error
	LatestToken(ctx context.Context, tenantID, accountID, purpose string) (Token, error) // ErrTokenInvalid if none
	// TokenOfRef is the newest token of purpose about refID (locked on
	// PostgreSQL); ErrTokenInvalid if none.
	TokenOfRef(ctx context.Context, tenantID, accountID, purpose, refID string) (Token, error)

	// Authenticator devices.
	CreateDevice(ctx context.Context, d Device) error
	DevicesOfAccount(ctx context.Context, tenantID, accountID string) ([]Device, error)
	UpdateDevice(ctx context.Context, d Device) error
	// UseDeviceStep records that the code of time step was used, only if
	// no later or equal step was used before; false means a replay.
	UseDeviceStep(ctx context.Context, tenantID, deviceID string, step int64, at time.Time) (bool, error)

	// Consents.
	CreateConsent(ctx context.Context, c Consent) error
	RevokeConsents(ctx context.Context, tenantID, accountID string, at time.Time) (int, error)

	// SetPersonDelivery stores a person's preferred delivery (locking the
	// row) and returns the previous one; kasse.ErrNotFound for a person of
	// another tenant.
	SetPersonDelivery(ctx context.Context, tenantID, personID string, d kasse.Delivery) (kasse.Delivery, error)

	// Sessions.
	CreateSession(ctx context.Context, s Session) error
	SessionByTokenHash(ctx context.Context, tokenHash string) (Session, error)
	UpdateSession(ctx context.Context, s Session) error
	DeleteSession(ctx context.Context, id string) error
	// DeleteAccountSessions ends every session of an account except keep
	// ("" ends all) and returns how many ended.
	DeleteAccountSessions(ctx context.Context, tenantID, accountID, keep string) (int, error)
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error)

	// HitRateLimit counts one hit in bucket for the window starting at or
	// after windowStart (an older window restarts at now) and returns the
	// hits in the current window including this one.
	HitRateLimit(ctx context.Context, bucket string, windowStart, now time.Time) (int, error)
	DeleteRateLimitsBefore(ctx context.Context, before time.Time) error
}

// Code is a one-time code sent by SMS (mTAN); only its keyed hash is kept.
type Code struct {
	ID        string
	TenantID  string
	AccountID string
	Purpose   string
	Hash      string
	Attempts  int
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time
}

// Token is a link or a letter code; only its keyed hash is kept.
type Token struct {
	ID        string
	TenantID  string
	AccountID string
	Purpose   string
	Hash      string
	RefID     string
	Attempts  int
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time
	RevokedAt time.Time
}

// Usable reports whether the token may still be redeemed at now.
func (t Token) Usable(now time.Time) bool {
	return t.UsedAt.IsZero() && t.RevokedAt.IsZero() && now.Before(t.ExpiresAt)
}

// DeviceStatus is the state of an authenticator device.
type DeviceStatus string

const (
	DeviceRequested DeviceStatus = "requested" // "beantragt" (seed 001)
	DeviceActive    DeviceStatus = "active"    // "Erfolgreich abgeschlossen"
	DeviceRemoved   DeviceStatus = "removed"
)

// German is the label shown to users (seed 001).
func (s DeviceStatus) German() string {
	switch s {
	case DeviceRequested:
		return "beantragt"
	case DeviceActive:
		return "Erfolgreich abgeschlossen"
	case DeviceRemoved:
		return "entfernt"
	}
	return string(s)
}

// Device is an authenticator app (TOTP, RFC 6238).
type Device struct {
	ID           string
	TenantID     string
	AccountID    string
	Name         string
	Status       DeviceStatus
	SecretSealed string // AES-GCM sealed TOTP secret; "" until activated in the app
	PINHash      string
	LastStep     int64 // last used time step: a code of this or an earlier step is refused
	CreatedAt    time.Time
	ActivatedAt  time.Time
	LastUsedAt   time.Time
	RemovedAt    time.Time
}

// Consent is a given (and maybe revoked) consent to data processing.
type Consent struct {
	ID          string
	TenantID    string
	AccountID   string
	TextVersion string
	TextHash    string
	GivenAt     time.Time
	RevokedAt   time.Time
}
