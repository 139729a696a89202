package web

import (
	"context"
	"errors"
	"strings"

	"github.com/gofiber/fiber/v2"

	"postbox/auth"
	"postbox/intake"
)

const (
	principalKey ctxKey = iota + 100
	uploadOffersKey
)

// SetPrincipal records who is acting; only the session middlewares (the
// account session, the Einmal-PIN session, the upload routes' choice
// between them) call it.
func SetPrincipal(c *fiber.Ctx, p auth.Principal) { c.Locals(principalKey, p) }

// PrincipalOf returns who is acting, if anyone is logged in.
func PrincipalOf(c *fiber.Ctx) (auth.Principal, bool) {
	p, ok := c.Locals(principalKey).(auth.Principal)
	return p, ok && p.TenantID != ""
}

// A browser may hold two sessions at once: an account login and an
// Einmal-PIN session (a person with an account who got a PIN letter, or a
// relative's PIN on the same computer). Which of them authorises a request
// is a property of the route, never of which middleware ran first:
//
//   - the Einmal-PIN desk (its pages under /einmal-pin/ and its API) acts
//     only as the PIN session and accepts only the PIN session's CSRF token;
//     the account session is not even looked at there;
//   - the upload routes (tus, TusPath) serve both kinds: each session whose
//     proof the request carries offers itself, and the upload row's owner
//     decides which one acts (chooseUploadSession);
//   - every other route is an account route: only the account session and
//     its CSRF token count; the PIN cookie is ignored.
type sessionKind int

const (
	accountRoute sessionKind = iota
	pinRoute
	uploadRoute
)

// The Einmal-PIN desk's routes. PINIntake.Mount and UI.mountPIN register
// exactly these; sessionKindOf is what the account middleware consults.
const (
	pinLoginPath   = "/api/pin-login"
	pinSessionPath = "/api/pin-session"
	pinLogoutPath  = "/api/pin-logout"
	pinDraftPath   = "/api/draft"
	pinSubmitPath  = "/api/submit"
	pinPagesPrefix = "/einmal-pin/"
)

var pinAPIPaths = map[string]bool{pinLoginPath: true, pinSessionPath: true, pinLogoutPath: true, pinDraftPath: true, pinSubmitPath: true}

// sessionKindOf classifies a request path. Fiber matches routes without
// regard to case or a trailing slash, so the classification does the same:
// "/API/Draft/" reaches the draft handler and must count as a PIN route.
func sessionKindOf(path string) sessionKind {
	p := strings.ToLower(path)
	if t := strings.TrimRight(p, "/"); t != "" {
		p = t
	}
	switch {
	case p == TusPath || strings.HasPrefix(p, TusPath+"/"):
		return uploadRoute
	case pinAPIPaths[p], strings.HasPrefix(p+"/", pinPagesPrefix):
		return pinRoute
	}
	return accountRoute
}

// sessionOffer is a session that may act on an upload route.
type sessionOffer struct {
	principal auth.Principal
	pin       bool // an Einmal-PIN session (else an account session)
	// allowed: the request may act as this session (a safe method, or the
	// session's CSRF proof is present).
	allowed bool
	// named: the request carries this session's CSRF token, so the page
	// that sent it belongs to this session.
	named bool
}

// offerUploadSession adds a session to the ones an upload route chooses from.
func offerUploadSession(c *fiber.Ctx, o sessionOffer) {
	offers, _ := c.Locals(uploadOffersKey).([]sessionOffer)
	c.Locals(uploadOffersKey, append(offers, o))
}

// chooseUploadSession decides who acts on an upload route among the
// sessions offered by the account and the PIN middleware. Only sessions
// whose proof the request carries take part. For a request on one upload
// (":id"), the session whose person owns the upload acts; otherwise (new
// upload, list) the session whose CSRF token was sent, else the PIN
// session (the upload page belongs to it). An unknown upload, or one of
// neither session, is left to the upload engine: it answers 404 and audits
// the attempt. owner may be nil (no lookup: the preference decides).
//
// Without any offer (no session cookie, or a test that sets the principal
// itself) the request goes on unchanged.
func chooseUploadSession(owner func(ctx context.Context, id string) (tenantID, personID string, err error)) fiber.Handler {
	return func(c *fiber.Ctx) error {
		offers, _ := c.Locals(uploadOffersKey).([]sessionOffer)
		if len(offers) == 0 {
			return c.Next()
		}
		var allowed []sessionOffer
		for _, o := range offers {
			if o.allowed {
				allowed = append(allowed, o)
			}
		}
		if len(allowed) == 0 {
			return csrfRefused(c)
		}
		pick := allowed[0]
		for _, o := range allowed[1:] {
			if o.named && !pick.named || o.named == pick.named && o.pin && !pick.pin {
				pick = o
			}
		}
		if id := c.Params("id"); id != "" && len(allowed) > 1 && owner != nil {
			tenantID, personID, err := owner(c.UserContext(), id)
			if err != nil && !errors.Is(err, intake.ErrUploadNotFound) {
				return err
			}
			for _, o := range allowed {
				if err == nil && o.principal.TenantID == tenantID && o.principal.PersonID == personID {
					pick = o
					break
				}
			}
		}
		SetPrincipal(c, pick.principal)
		return c.Next()
	}
}

// csrfRefused is the answer to a state-changing request of a session
// without that session's CSRF proof.
func csrfRefused(c *fiber.Ctx) error {
	return SendProblem(c, fiber.StatusForbidden, "csrf", "Anfrage abgelehnt",
		"Die Anfrage enthielt kein gültiges Sicherheitsmerkmal (CSRF-Token). Bitte laden Sie die Seite neu und versuchen Sie es erneut.")
}
