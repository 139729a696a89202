package auth

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Limit is a fixed-window rate limit: at most Max hits per Window.
type Limit struct {
	Max    int
	Window time.Duration
}

// RateLimits are the limits of the login flows. Counters live in the
// database, so they hold across replicas.
type RateLimits struct {
	LoginPerAddress Limit // password attempts per client address (any username)
	LoginPerAccount Limit // password attempts per username (known or not)
	CodePerAccount  Limit // second-factor and letter-code attempts per account
	ResetPerAccount Limit // "Passwort vergessen" per username
}

// DefaultRateLimits are generous enough for a family behind one address and
// far below what guessing needs; the lockout after 5 wrong passwords in a
// row applies on top.
var DefaultRateLimits = RateLimits{
	LoginPerAddress: Limit{Max: 30, Window: 15 * time.Minute},
	LoginPerAccount: Limit{Max: 10, Window: 15 * time.Minute},
	CodePerAccount:  Limit{Max: 10, Window: 15 * time.Minute},
	ResetPerAccount: Limit{Max: 5, Window: time.Hour},
}

// hit counts one attempt in the bucket of (name, key) and fails with
// ErrRateLimited above the limit. It commits on its own, so attempts count
// even when the attempt itself fails.
func (s *Service) hit(ctx context.Context, name string, l Limit, key ...string) error {
	if l.Max <= 0 {
		return nil
	}
	bucket := name + ":" + keyed(s.opts.ClientAddrKey, append([]string{name}, key...)...)[:40]
	var hits int
	err := s.store.InTx(ctx, func(tx Tx) error {
		now := tx.Now()
		var err error
		hits, err = tx.HitRateLimit(ctx, bucket, now.Add(-l.Window), now)
		return err
	})
	if err != nil {
		return err
	}
	if hits > l.Max {
		return ErrRateLimited
	}
	return nil
}

// hitLogin applies the address and the account limit of a password attempt.
func (s *Service) hitLogin(ctx context.Context, m Meta, tenantID, username string) error {
	errAddr := error(nil)
	if m.ClientAddr != "" {
		errAddr = s.hit(ctx, "login-addr", s.opts.RateLimits.LoginPerAddress, m.ClientAddr)
	}
	errAcct := s.hit(ctx, "login-acct", s.opts.RateLimits.LoginPerAccount, tenantID, strings.ToLower(username))
	return errors.Join(errAddr, errAcct)
}
