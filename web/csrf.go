package web

import (
	"strings"

	"github.com/gofiber/fiber/v2"

	"postbox/auth"
)

// CSRF protection is a synchronizer token bound to the session
// (auth.CSRFToken), checked in constant time by the session middleware for
// every state-changing request that carries a valid session cookie.

func unsafeMethod(m string) bool {
	switch m {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions, fiber.MethodTrace:
		return false
	}
	return true
}

func presentedCSRF(c *fiber.Ctx) string {
	if h := c.Get("X-CSRF-Token"); h != "" {
		return h
	}
	ct := strings.ToLower(c.Get(fiber.HeaderContentType))
	if strings.HasPrefix(ct, fiber.MIMEApplicationForm) || strings.HasPrefix(ct, fiber.MIMEMultipartForm) {
		return c.FormValue("_csrf")
	}
	return ""
}

// CSRFTokenOf returns the token forms of this session must send as _csrf
// ("" without a session).
func CSRFTokenOf(c *fiber.Ctx) string {
	token, _ := c.Locals(sessionTokenKey).(string)
	if token == "" {
		return ""
	}
	return auth.CSRFToken(token)
}
