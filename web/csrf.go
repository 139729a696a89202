package web

import (
	"net/url"
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

// fromPortal reports whether a login request was sent by the portal's own
// pages. A login has no session to bind a token to, yet login CSRF matters:
// a foreign site that logs the browser into the attacker's Einmal-PIN
// session would collect the victim's documents in the attacker's draft.
// One rule for the JSON API and the HTML form:
//
//  1. Sec-Fetch-Site, which browsers set themselves (scripts cannot), is
//     decisive when present: "same-origin" and "none" (typed address,
//     bookmark) pass, "same-site" and "cross-site" do not.
//  2. Without it (very old browsers, non-browser clients): an Origin naming
//     the portal passes, a missing Origin passes (no browser that omits both
//     headers on a cross-site POST is still in use), and every other Origin
//     is refused, "null" included: a sandboxed frame on a foreign site sends
//     "null" too, so it proves nothing. Browsers that send "null" for their
//     own forms (the portal's Referrer-Policy is no-referrer) all send
//     Sec-Fetch-Site, so rule 1 lets them in.
//
// The portal is baseURL (its configured public address) or the address the
// request was sent to.
func fromPortal(c *fiber.Ctx, baseURL string) bool {
	switch c.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return true
	case "":
	default:
		return false
	}
	o := c.Get(fiber.HeaderOrigin)
	if o == "" {
		return true
	}
	return sameOrigin(o, baseURL) || sameOrigin(o, c.BaseURL())
}

// sameOrigin reports whether an Origin header value names the origin of
// base (scheme and host with port).
func sameOrigin(origin, base string) bool {
	o, err1 := url.Parse(origin)
	b, err2 := url.Parse(base)
	return err1 == nil && err2 == nil && o.Scheme != "" && o.Host != "" && o.Scheme == b.Scheme && strings.EqualFold(o.Host, b.Host)
}
