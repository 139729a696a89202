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
}

// ErrAccountNotFound is returned for an unknown account (in that tenant).
var ErrAccountNotFound = errors.New("account not found")

// ErrAccountExists is returned when the username is taken in the tenant.
var ErrAccountExists = errors.New("account exists")

func (r Role) String() string { return string(r) }
