package intake

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"postbox/audit"
)

// pinAlphabet has no look-alikes: no 0/O, no 1/I/L. 31 symbols.
const pinAlphabet = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"

// PINLength symbols of the alphabet: 15 * log2(31) ≈ 74 bits, above the
// required 60, printed as three blocks of five.
const PINLength = 15

// pinBlock is the block size on the letter.
const pinBlock = 5

// EinmalPIN is a one-time PIN sent by letter. Only Hash is stored.
type EinmalPIN struct {
	ID          string
	TenantID    string
	PersonID    string
	Hash        string
	RequestText string         // what the Kasse asks for, printed on the letter
	CaseType    audit.CaseType // the Anliegen the letter is about
	IssuedBy    string         // account id of the caseworker, "" for a batch
	CreatedAt   time.Time
	ExpiresAt   time.Time
	UsedAt      time.Time
	RevokedAt   time.Time
}

// NewPIN draws a PIN from crypto/rand, uniformly over the alphabet.
func NewPIN() (string, error) {
	buf := make([]byte, PINLength)
	out := make([]byte, 0, PINLength)
	for len(out) < PINLength {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("pin: %w", err)
		}
		for _, b := range buf {
			// Reject values that would bias the modulo (248 = 8*31).
			if b < 248 && len(out) < PINLength {
				out = append(out, pinAlphabet[int(b)%len(pinAlphabet)])
			}
		}
	}
	return string(out), nil
}

// FormatPIN groups a PIN in blocks for the letter.
func FormatPIN(pin string) string {
	var b strings.Builder
	for i, r := range pin {
		if i > 0 && i%pinBlock == 0 {
			b.WriteByte('-')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// NormalizePIN accepts what a person types from the letter: any case, with
// spaces or dashes between the blocks.
func NormalizePIN(typed string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(typed) {
		if r == ' ' || r == '-' || r == '\t' {
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// PINHasher derives the stored form of a PIN: HMAC-SHA256 under a server key,
// bound to the tenant, so a database dump alone does not allow guessing.
type PINHasher struct{ key []byte }

// NewPINHasher takes the server's PIN key (32 bytes).
func NewPINHasher(key []byte) PINHasher { return PINHasher{key: key} }

// Hash returns the hex HMAC of the normalised PIN.
func (h PINHasher) Hash(tenantID, pin string) string {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte(tenantID))
	m.Write([]byte{0})
	m.Write([]byte(NormalizePIN(pin)))
	return hex.EncodeToString(m.Sum(nil))
}

// SubjectHash is the keyed hash under which failed logins for a typed KVNR
// are counted, whether or not a person with that KVNR exists; the domain
// tag keeps it apart from PIN hashes.
func (h PINHasher) SubjectHash(tenantID, kvnr string) string {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte("kvnr-login\x00"))
	m.Write([]byte(tenantID))
	m.Write([]byte{0})
	m.Write([]byte(strings.ToUpper(strings.TrimSpace(kvnr))))
	return hex.EncodeToString(m.Sum(nil))
}

// WellFormedPIN reports whether a normalised PIN has the length and the
// alphabet of a PIN this service issues. A malformed entry is a typo that
// any reader of the letter could see, so it is refused without costing a try.
func WellFormedPIN(normalized string) bool {
	if len(normalized) != PINLength {
		return false
	}
	for i := 0; i < len(normalized); i++ {
		if strings.IndexByte(pinAlphabet, normalized[i]) < 0 {
			return false
		}
	}
	return true
}

// Equal compares a typed PIN with a stored hash in constant time.
func (h PINHasher) Equal(tenantID, typed, stored string) bool {
	got, err1 := hex.DecodeString(h.Hash(tenantID, typed))
	want, err2 := hex.DecodeString(stored)
	if err1 != nil || err2 != nil {
		return false
	}
	return hmac.Equal(got, want)
}
