package web

import (
	"context"

	"github.com/gofiber/fiber/v2"

	"postbox/audit"
)

const clientHasherKey ctxKey = iota + 300

// UseAuditOrigin lets AuditContext hash client addresses with h. Call it
// once after New; without it events carry no client hash.
func (s *Server) UseAuditOrigin(h *audit.ClientHasher) {
	s.app.Use(func(c *fiber.Ctx) error {
		c.Locals(clientHasherKey, h)
		return c.Next()
	})
}

// AuditOrigin is who acts in this request, as audit events record it: the
// principal's tenant, account (the person for an Einmal-PIN session) and
// role, the request id and the keyed hash of the client's network.
func AuditOrigin(c *fiber.Ctx) audit.Origin {
	p, _ := PrincipalOf(c)
	actor := p.AccountID
	if actor == "" {
		actor = p.PersonID
	}
	o := audit.Origin{TenantID: p.TenantID, ActorID: actor, ActorRole: string(p.Role), RequestID: RequestID(c)}
	if h, ok := c.Locals(clientHasherKey).(*audit.ClientHasher); ok {
		o.ClientHash = h.Hash(c.IP())
	}
	return o
}

// AuditContext is the request's context carrying AuditOrigin, for
// audit.NewEvent and the domain services that record events.
func AuditContext(c *fiber.Ctx) context.Context {
	return audit.WithOrigin(c.UserContext(), AuditOrigin(c))
}
