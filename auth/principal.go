package auth

// Principal is who is acting in a request: set by the session middleware
// (or, for an Einmal-PIN upload, by the PIN login) and checked by every
// handler together with the tenant of the object it touches.
type Principal struct {
	AccountID string // empty for an Einmal-PIN session
	TenantID  string
	Role      Role
	PersonID  string // insured persons (also set for Einmal-PIN sessions)
	OrgID     string // provider organisation of provider admins/users
	SessionID string
}

// Has reports whether the principal has one of the roles.
func (p Principal) Has(roles ...Role) bool {
	for _, r := range roles {
		if p.Role == r {
			return true
		}
	}
	return false
}
