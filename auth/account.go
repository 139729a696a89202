package auth

import (
	"errors"
	"time"
)

// Role says what an account may do. Every check also checks the tenant.
type Role string

const (
	RoleInsured       Role = "insured"
	RoleCaseworker    Role = "caseworker"
	RoleTeamLead      Role = "teamlead"
	RoleAuditor       Role = "auditor"
	RoleKasseAdmin    Role = "kasse_admin"
	RoleProviderAdmin Role = "provider_admin"
	RoleProviderUser  Role = "provider_user"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	switch r {
	case RoleInsured, RoleCaseworker, RoleTeamLead, RoleAuditor, RoleKasseAdmin, RoleProviderAdmin, RoleProviderUser:
		return true
	}
	return false
}

// AccountStatus is the life cycle of an account.
type AccountStatus string

const (
	StatusInvited AccountStatus = "invited" // "Eingeladen" (seed 001)
	StatusActive  AccountStatus = "active"
	StatusLocked  AccountStatus = "locked"
	StatusEnded   AccountStatus = "ended"
	// StatusPending: registered, waiting for the e-mail confirmation and
	// the first login with the Freischaltcode (seed 002).
	StatusPending AccountStatus = "pending"
)

// Lock reasons.
const (
	LockPassword  = "password"  // too many wrong passwords in a row (seed 004)
	LockSuspicion = "suspicion" // set by a caseworker "bei Verdacht" (seed 004)
)

// Account is a login of any role.
type Account struct {
	ID           string
	TenantID     string
	Role         Role
	Username     string
	Email        string
	DisplayName  string
	PersonID     string // insured persons only
	PasswordHash string
	Status       AccountStatus
	CreatedAt    time.Time

	// Added by the auth schema (0005); zero times mean "never".
	Mobile             string // E.164; the mTAN goes here
	MobilePending      string // new number while a change waits for its codes
	EmailPending       string // new address while a change waits for its link
	OrgID              string // provider organisation
	Salutation         string
	GivenName          string
	FamilyName         string
	Profile            string // JSON of further profile fields
	FailedLogins       int    // wrong passwords in a row
	LockReason         string
	LockedAt           time.Time
	PasswordChangedAt  time.Time
	EmailConfirmedAt   time.Time
	MobileConfirmedAt  time.Time
	ActivatedAt        time.Time // first login with Freischaltcode done (insured)
	SecurityQuestion   string
	SecurityAnswerHash string
	ConsentVersion     string // consent given to this text version; "" none
	ConsentAt          time.Time
	InvitedBy          string
	EndedAt            time.Time
	UpdatedAt          time.Time
}

// IsProvider reports whether the account belongs to a care provider.
func (a Account) IsProvider() bool {
	return a.Role == RoleProviderAdmin || a.Role == RoleProviderUser
}

// ErrAccountNotFound is returned for an unknown account (in that tenant).
var ErrAccountNotFound = errors.New("account not found")

// ErrAccountExists is returned when the username is taken in the tenant.
var ErrAccountExists = errors.New("account exists")

func (r Role) String() string { return string(r) }
