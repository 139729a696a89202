// Package auth holds accounts, password rules, lockout, sessions, second
// factors, invitations and consent.
package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are the Argon2id cost parameters. The defaults are the OWASP
// recommendation for Argon2id (19 MiB, 2 passes, 1 lane): on a 2-core machine
// one hash takes a few tens of milliseconds, which keeps online guessing
// expensive while a burst of logins does not exhaust memory.
type Argon2Params struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
	SaltLen   int
	KeyLen    uint32
}

// DefaultArgon2 is used for passwords and other user-chosen secrets.
var DefaultArgon2 = Argon2Params{MemoryKiB: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// ErrMalformedHash is returned for a stored hash that cannot be parsed.
var ErrMalformedHash = errors.New("malformed password hash")

// HashSecret hashes a user-chosen secret with Argon2id into a PHC string
// ($argon2id$v=19$m=...,t=...,p=...$salt$key), so parameters can be raised
// later without breaking stored hashes.
func HashSecret(secret string, p Argon2Params) (string, error) {
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	key := argon2.IDKey([]byte(secret), salt, p.Time, p.MemoryKiB, p.Threads, p.KeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.MemoryKiB, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// VerifySecret compares secret with a PHC hash in constant time.
func VerifySecret(secret, encoded string) (bool, error) {
	p, salt, want, err := parsePHC(encoded)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(secret), salt, p.Time, p.MemoryKiB, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// NeedsRehash reports whether encoded was made with other cost parameters
// than p (or cannot be read), so that a successful login can store a hash
// with today's parameters: raising DefaultArgon2 then reaches every active
// account without a password reset.
func NeedsRehash(encoded string, p Argon2Params) bool {
	got, salt, key, err := parsePHC(encoded)
	return err != nil || got.MemoryKiB != p.MemoryKiB || got.Time != p.Time || got.Threads != p.Threads ||
		len(salt) != p.SaltLen || uint32(len(key)) != p.KeyLen
}

// parsePHC reads $argon2id$v=19$m=..,t=..,p=..$salt$key.
func parsePHC(encoded string) (p Argon2Params, salt, key []byte, err error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return p, nil, nil, ErrMalformedHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, ErrMalformedHash
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &p.Threads); err != nil {
		return p, nil, nil, ErrMalformedHash
	}
	b64 := base64.RawStdEncoding
	if salt, err = b64.DecodeString(parts[4]); err != nil {
		return p, nil, nil, ErrMalformedHash
	}
	if key, err = b64.DecodeString(parts[5]); err != nil || len(key) == 0 {
		return p, nil, nil, ErrMalformedHash
	}
	return p, salt, key, nil
}
