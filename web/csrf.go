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
	switch {
	case strings.HasPrefix(ct, fiber.MIMEApplicationForm):
		return string(c.Request().PostArgs().Peek("_csrf"))
	case strings.HasPrefix(ct, fiber.MIMEMultipartForm):
		// Multipart bodies are streamed by their handler (the server does
		// not pre-parse them), so a plain HTML upload form carries the token
		// in its action URL: <form action="/x?_csrf=..." enctype="multipart/form-data">.
		return c.Query("_csrf")
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
