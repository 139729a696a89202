package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/hkdf"

	"postbox/audit"
	"postbox/kasse"
)

// Options configure the auth service. Key and ClientAddrKey are required.
type Options struct {
	// Argon2 are the cost parameters for passwords and security answers.
	Argon2 Argon2Params
	// Key (32 bytes, from the master key) derives the keys for code hashes
	// and for sealing TOTP secrets.
	Key []byte
	// ClientAddrKey hashes full client addresses for rate limit buckets.
	ClientAddrKey []byte
	// AuditHasher pseudonymises client addresses in audit events and
	// sessions (network-truncated, keyed; the audit package's scheme).
	// Default: audit.NewClientHasher(ClientAddrKey).
	AuditHasher *audit.ClientHasher

	// SessionIdle ends a session after this long without a request (30 min).
	SessionIdle time.Duration
	// SessionAbsolute ends a session this long after login at the latest (12 h).
	SessionAbsolute time.Duration
	// LoginStepLifetime is how long an unfinished login may wait for its
	// next step (second factor, security question, consent): 10 min.
	LoginStepLifetime time.Duration
	// StepUpWindow is how fresh a security code must be for changes of
	// personal data, contact data or devices (seed 000): 5 min.
	StepUpWindow time.Duration

	// RateLimits default to DefaultRateLimits.
	RateLimits RateLimits

	SMS     SMSGateway
	Letters LetterSink
	// BaseURL is the public portal address used in links of mails.
	BaseURL string
	// Issuer is shown in authenticator apps.
	Issuer string
	Logger *slog.Logger
}

// Service implements accounts, login, sessions and second factors on a Store.
type Service struct {
	store Store
	opts  Options
	// derived keys, each for one purpose
	codeKey, tokenKey, sealKey []byte
	dummyHash                  string
}

// NewService checks the options and fills defaults.
func NewService(store Store, opts Options) (*Service, error) {
	if len(opts.Key) < 32 || len(opts.ClientAddrKey) < 32 {
		return nil, errors.New("auth: Key and ClientAddrKey must be 32 bytes")
	}
	if opts.Argon2.MemoryKiB == 0 {
		opts.Argon2 = DefaultArgon2
	}
	if opts.SessionIdle <= 0 {
		opts.SessionIdle = 30 * time.Minute
	}
	if opts.SessionAbsolute <= 0 {
		opts.SessionAbsolute = 12 * time.Hour
	}
	if opts.LoginStepLifetime <= 0 {
		opts.LoginStepLifetime = 10 * time.Minute
	}
	if opts.StepUpWindow <= 0 {
		opts.StepUpWindow = 5 * time.Minute
	}
	if opts.RateLimits == (RateLimits{}) {
		opts.RateLimits = DefaultRateLimits
	}
	if opts.Issuer == "" {
		opts.Issuer = "Postfach"
	}
	if opts.AuditHasher == nil {
		opts.AuditHasher = audit.NewClientHasher(opts.ClientAddrKey)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Service{store: store, opts: opts,
		codeKey: derive(opts.Key, "auth/code-hash"), tokenKey: derive(opts.Key, "auth/token-hash"), sealKey: derive(opts.Key, "auth/totp-seal")}
	// Unknown usernames are checked against this hash, so they cost the same
	// time as known ones and the answer does not tell which it was.
	h, err := HashSecret("postbox-dummy-password", opts.Argon2)
	if err != nil {
		return nil, err
	}
	s.dummyHash = h
	return s, nil
}

// Options returns the effective options (defaults filled in).
func (s *Service) Options() Options { return s.opts }

func derive(master []byte, purpose string) []byte {
	k := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, master, nil, []byte("postbox/"+purpose)), k); err != nil {
		panic(err) // cannot fail for 32 bytes
	}
	return k
}

// ClientHash is the pseudonym of a client address in audit events and
// sessions; the address itself is never stored.
func (s *Service) ClientHash(addr string) string { return s.opts.AuditHasher.Hash(addr) }

// keyed returns hex HMAC-SHA256 of the parts under key, separated so that
// ("ab","c") and ("a","bc") differ.
func keyed(key []byte, parts ...string) string {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return hex.EncodeToString(m.Sum(nil))
}

func newID() string { return uuid.NewString() }

// errCommit makes inTx commit the transaction and still return err: failed
// attempts must be counted even though the attempt fails.
type errCommit struct{ err error }

func (e errCommit) Error() string { return e.err.Error() }
func (e errCommit) Unwrap() error { return e.err }

func (s *Service) inTx(ctx context.Context, fn func(tx Tx) error) error {
	var deferred error
	err := s.store.InTx(ctx, func(tx Tx) error {
		err := fn(tx)
		var ec errCommit
		if errors.As(err, &ec) {
			deferred = ec.err
			return nil
		}
		return err
	})
	if err != nil {
		return err
	}
	return deferred
}

// sessionAccount loads the active account of a finished login and its Kasse.
func (s *Service) sessionAccount(ctx context.Context, tx Tx, sess Session) (Account, kasse.Kasse, error) {
	if sess.Stage != StageDone || sess.AccountID == "" {
		return Account{}, kasse.Kasse{}, ErrNoSession
	}
	a, err := tx.AccountByID(ctx, sess.TenantID, sess.AccountID)
	if errors.Is(err, ErrAccountNotFound) {
		return Account{}, kasse.Kasse{}, ErrNoSession
	}
	if err != nil {
		return Account{}, kasse.Kasse{}, err
	}
	if a.Status != StatusActive {
		return Account{}, kasse.Kasse{}, ErrNoSession
	}
	k, err := s.store.Kasse(ctx, a.TenantID)
	if err != nil {
		return Account{}, kasse.Kasse{}, err
	}
	return a, k, nil
}
