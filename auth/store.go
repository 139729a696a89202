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
	// SessionByTokenHash returns the session with that token hash together
	// with the status of its account ("" for sessions without account).
	SessionByTokenHash(ctx context.Context, tokenHash string) (Session, error)
	// TouchSession moves last_seen_at forward (idle timeout).
	TouchSession(ctx context.Context, id string, at time.Time) error
}

// Tx is one transaction of the auth store.
type Tx interface {
	Now() time.Time
	RecordEvent(ctx context.Context, e audit.Event) (audit.Event, error)
	EnqueueMail(ctx context.Context, j notifier.Job) (notifier.Job, error)

	// Sessions.
	CreateSession(ctx context.Context, s Session) error
	SessionByTokenHash(ctx context.Context, tokenHash string) (Session, error)
	UpdateSession(ctx context.Context, s Session) error
	DeleteSession(ctx context.Context, id string) error
	// DeleteAccountSessions ends every session of an account except keep
	// ("" ends all) and returns how many ended.
	DeleteAccountSessions(ctx context.Context, tenantID, accountID, keep string) (int, error)
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error)
}
