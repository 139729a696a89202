// Package kasse holds the tenant of postbox: a Kasse (statutory health insurer)
// and the rule values that differ between Kassen. Every record in postbox
// belongs to exactly one Kasse.
package kasse

import (
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Kasse is a tenant.
type Kasse struct {
	ID        string // stable slug, e.g. "aok-nds"
	Name      string // shown to users, e.g. "AOK Niedersachsen"
	PortalURL string // link used in letters and notification mails
	Settings  Settings
	CreatedAt time.Time
}

// Settings are the per-tenant rule values. Defaults come from the seed
// documents; where two seeds differ, the comment names both.
type Settings struct {
	// Einmal-PIN (seed 003): valid at most 60 days, 5 wrong entries lock.
	PINLifetime    time.Duration `json:"pin_lifetime"`
	PINMaxAttempts int           `json:"pin_max_attempts"`

	// Freischaltcode by letter: 30 days (seed 002) or 21 days (seed 004).
	UnlockCodeLifetime time.Duration `json:"unlock_code_lifetime"`
	// E-mail activation link: 4 weeks (seed 002).
	ActivationLinkLifetime time.Duration `json:"activation_link_lifetime"`
	// Provider user invitation: 720 hours (seed 001).
	InvitationLifetime time.Duration `json:"invitation_lifetime"`
	// 2FA device activation code: 1 hour (seed 000).
	DeviceActivationLifetime time.Duration `json:"device_activation_lifetime"`

	// Login lockout after this many wrong passwords in a row (seed 004).
	PasswordMaxAttempts int `json:"password_max_attempts"`
	// Password history: none of the last N passwords again (seed 004).
	PasswordHistory int `json:"password_history"`
	// At most one password change per this interval (seed 004: one per day).
	PasswordChangeInterval time.Duration `json:"password_change_interval"`
	// Access is closed at the latest this long after the account ends (seed 004: 3 months).
	AccountCloseAfter time.Duration `json:"account_close_after"`
	// Persons younger than this cannot register (seed 004: 15 years).
	MinRegistrationAgeYears int `json:"min_registration_age_years"`

	// Retention of Postfach messages and uploaded documents. The seeds only say
	// "gesetzliche Aufbewahrungsfristen"; the defaults follow the common
	// 6 years (§ 257 HGB business letters) and 10 years for audit events.
	MessageRetention time.Duration `json:"message_retention"`
	AuditRetention   time.Duration `json:"audit_retention"`

	// Upload limits (intake).
	MaxFileBytes       int64    `json:"max_file_bytes"`
	MaxSubmissionBytes int64    `json:"max_submission_bytes"`
	MaxFilesPerUpload  int      `json:"max_files_per_submission"`
	AllowedFileTypes   []string `json:"allowed_file_types"` // MIME types
}

const day = 24 * time.Hour

// DefaultSettings returns the seed values.
func DefaultSettings() Settings {
	return Settings{
		PINLifetime:              60 * day,
		PINMaxAttempts:           5,
		UnlockCodeLifetime:       30 * day,
		ActivationLinkLifetime:   28 * day,
		InvitationLifetime:       720 * time.Hour,
		DeviceActivationLifetime: time.Hour,
		PasswordMaxAttempts:      5,
		PasswordHistory:          5,
		PasswordChangeInterval:   day,
		AccountCloseAfter:        91 * day,
		MinRegistrationAgeYears:  15,
		MessageRetention:         6 * 365 * day,
		AuditRetention:           10 * 365 * day,
		MaxFileBytes:             2 << 30,
		MaxSubmissionBytes:       8 << 30,
		MaxFilesPerUpload:        20,
		AllowedFileTypes:         []string{"application/pdf", "image/jpeg", "image/png", "image/tiff", "image/heif"},
	}
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,39}$`)

// ErrInvalid marks a Kasse or setting that breaks a rule.
var ErrInvalid = errors.New("invalid kasse")

// Validate checks a Kasse before it is stored.
func (k Kasse) Validate() error {
	if !idPattern.MatchString(k.ID) {
		return fmt.Errorf("%w: id %q must be 2-40 lowercase letters, digits or dashes", ErrInvalid, k.ID)
	}
	if k.Name == "" {
		return fmt.Errorf("%w: name is empty", ErrInvalid)
	}
	return k.Settings.Validate()
}

// Validate checks that every setting is usable.
func (s Settings) Validate() error {
	type check struct {
		name string
		ok   bool
	}
	for _, c := range []check{
		{"pin_lifetime", s.PINLifetime > 0},
		{"pin_max_attempts", s.PINMaxAttempts > 0},
		{"unlock_code_lifetime", s.UnlockCodeLifetime > 0},
		{"activation_link_lifetime", s.ActivationLinkLifetime > 0},
		{"invitation_lifetime", s.InvitationLifetime > 0},
		{"device_activation_lifetime", s.DeviceActivationLifetime > 0},
		{"password_max_attempts", s.PasswordMaxAttempts > 0},
		{"password_history", s.PasswordHistory >= 0},
		{"password_change_interval", s.PasswordChangeInterval >= 0},
		{"message_retention", s.MessageRetention > 0},
		{"audit_retention", s.AuditRetention > 0},
		{"max_file_bytes", s.MaxFileBytes > 0},
		{"max_submission_bytes", s.MaxSubmissionBytes >= s.MaxFileBytes},
		{"max_files_per_submission", s.MaxFilesPerUpload > 0},
		{"allowed_file_types", len(s.AllowedFileTypes) > 0},
	} {
		if !c.ok {
			return fmt.Errorf("%w: setting %s is out of range", ErrInvalid, c.name)
		}
	}
	return nil
}

// Delivery is how a person wants letters from the Kasse (seed 004:
// "bevorzugte Versandart").
type Delivery string

const (
	DeliveryPost   Delivery = "post"
	DeliveryOnline Delivery = "online"
)

// Person is an insured person as the Kasse knows them, with or without a
// portal account. Einmal-PIN letters go to this address.
type Person struct {
	ID            string
	TenantID      string
	KVNR          string
	GivenName     string
	FamilyName    string
	Street        string
	PostalCode    string
	City          string
	BirthDate     string    // YYYY-MM-DD
	EGKValidUntil time.Time // zero: unknown
	Email         string
	Delivery      Delivery
	CreatedAt     time.Time
}

// ErrNotFound is returned for a Kasse or person that does not exist (or
// belongs to another tenant).
var ErrNotFound = errors.New("not found")

// ErrExists is returned when a record with the same key already exists.
var ErrExists = errors.New("already exists")
