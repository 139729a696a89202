package web

import (
	"github.com/gofiber/fiber/v2"

	"postbox/auth"
)

const principalKey ctxKey = iota + 100

// SetPrincipal records who is acting; only the session middleware (and the
// Einmal-PIN login) call it.
func SetPrincipal(c *fiber.Ctx, p auth.Principal) { c.Locals(principalKey, p) }

// PrincipalOf returns who is acting, if anyone is logged in.
func PrincipalOf(c *fiber.Ctx) (auth.Principal, bool) {
	p, ok := c.Locals(principalKey).(auth.Principal)
	return p, ok && p.TenantID != ""
}
