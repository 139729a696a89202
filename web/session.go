package web

// Sessions, roles and CSRF for every route.
//
// How to use (other feature files):
//
//	srv := web.New(...)
//	srv.UseSessions(authService, web.SessionOptions{Secure: cfg.SecureCookies}) // before mounting routes
//	app := srv.App()
//	app.Get("/api/postfach", web.RequireRole(auth.RoleInsured), handler)
//	app.Post("/api/team/:kasse/threads", web.RequireRole(auth.RoleCaseworker, auth.RoleTeamLead), handler)
//
// In the handler, p := web.MustPrincipal(c) is who acts; query with
// p.TenantID (and p.PersonID / p.AccountID for owner checks) and answer 404
// for an object of another tenant or person — never 403.
//
// RequireRole answers: no finished login → 401 problem+json under /api/,
// otherwise a 303 redirect to LoginPath?weiter=<path>; wrong role, or a route
// parameter :kasse that is not the principal's tenant → 404.
//
// The account session acts on every route except the Einmal-PIN desk's
// (there only the PIN session does) and offers itself on the upload routes,
// where the upload's owner decides (sessionKindOf, chooseUploadSession).
//
// CSRF: every POST/PUT/PATCH/DELETE that carries a valid session cookie must
// send the session's token in the header X-CSRF-Token or, for HTML forms, in
// the hidden field _csrf (form-urlencoded; multipart forms put ?_csrf=… in
// their action URL, because their body is streamed, not pre-parsed). Get it with
// web.CSRFTokenOf(c) when rendering a form; JSON clients get it from
// GET /api/auth/session and from every login step's answer. Uploads should
// send the header: reading a form field parses the body.
//
// Tests of other packages can log someone in without the login flow:
// token, _, _ := authService.StartSession(ctx, principal, auth.StageDone, "")
// and send Cookie: <web.SessionCookieName(false)>=token plus
// X-CSRF-Token: auth.CSRFToken(token).

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"postbox/auth"
)

// SessionResolver turns a cookie token into a valid session; *auth.Service
// implements it.
type SessionResolver interface {
	ResolveSession(ctx context.Context, token string) (auth.Session, error)
}

// SessionOptions configure the session cookie.
type SessionOptions struct {
	// Secure marks the cookie Secure and gives it the __Host- prefix
	// (browsers accept that prefix only on Secure cookies, so plain-http
	// development uses the unprefixed name).
	Secure bool
	// MaxAge of the cookie; 0 makes it a browser-session cookie. The server
	// side timeouts apply either way.
	MaxAge time.Duration
}

// LoginPath is where HTML requests without a login are sent.
var LoginPath = "/anmelden"

const (
	sessionKey ctxKey = iota + 200
	sessionTokenKey
	sessionOptsKey
)

// SessionCookieName is the cookie that carries the session token.
func SessionCookieName(secure bool) string {
	if secure {
		return "__Host-postbox_session"
	}
	return "postbox_session"
}

// UseSessions installs the session and CSRF middleware. Call it right after
// New, before any route that needs a principal is mounted.
func (s *Server) UseSessions(r SessionResolver, o SessionOptions) {
	s.app.Use(sessionMiddleware(r, o))
}

func sessionMiddleware(r SessionResolver, o SessionOptions) fiber.Handler {
	name := SessionCookieName(o.Secure)
	return func(c *fiber.Ctx) error {
		c.Locals(sessionOptsKey, o)
		kind := sessionKindOf(c.Path())
		if kind == pinRoute {
			// The Einmal-PIN desk acts only as the PIN session: the account
			// session neither acts there nor is its token asked for.
			return c.Next()
		}
		token := c.Cookies(name)
		if token == "" {
			return c.Next()
		}
		sess, err := r.ResolveSession(c.UserContext(), token)
		if errors.Is(err, auth.ErrNoSession) {
			// Expired or revoked: forget the cookie and go on as anonymous.
			ClearSessionCookie(c)
			return c.Next()
		}
		if err != nil {
			return err
		}
		c.Locals(sessionKey, sess)
		c.Locals(sessionTokenKey, token)
		// Pages of a logged-in person must not land in shared caches.
		c.Set(fiber.HeaderCacheControl, "no-store")
		named := auth.CheckCSRF(token, presentedCSRF(c))
		if kind == uploadRoute {
			// Uploads serve both session kinds: offer this one, the upload
			// route decides (chooseUploadSession).
			if sess.Stage == auth.StageDone {
				offerUploadSession(c, sessionOffer{principal: sess.Principal(), allowed: named || !unsafeMethod(c.Method()), named: named})
			}
			return c.Next()
		}
		if sess.Stage == auth.StageDone {
			SetPrincipal(c, sess.Principal())
		}
		if unsafeMethod(c.Method()) && !named {
			return csrfRefused(c)
		}
		return c.Next()
	}
}

// SessionOf returns the session of the request, finished or not, with its
// cookie token. Login steps use it; everything else uses PrincipalOf.
func SessionOf(c *fiber.Ctx) (auth.Session, string, bool) {
	sess, ok := c.Locals(sessionKey).(auth.Session)
	token, _ := c.Locals(sessionTokenKey).(string)
	return sess, token, ok
}

// SetSessionCookie sends a new session token (after every login step that
// creates a session) and makes it the request's token, so CSRFTokenOf
// already answers for the new session.
func SetSessionCookie(c *fiber.Ctx, token string) {
	o, _ := c.Locals(sessionOptsKey).(SessionOptions)
	ck := &fiber.Cookie{Name: SessionCookieName(o.Secure), Value: token, Path: "/", HTTPOnly: true, Secure: o.Secure, SameSite: fiber.CookieSameSiteLaxMode}
	if o.MaxAge > 0 {
		ck.MaxAge = int(o.MaxAge.Seconds())
	}
	c.Cookie(ck)
	c.Locals(sessionTokenKey, token)
}

// ClearSessionCookie removes the session cookie from the browser.
func ClearSessionCookie(c *fiber.Ctx) {
	o, _ := c.Locals(sessionOptsKey).(SessionOptions)
	c.Cookie(&fiber.Cookie{Name: SessionCookieName(o.Secure), Value: "", Path: "/", HTTPOnly: true, Secure: o.Secure,
		SameSite: fiber.CookieSameSiteLaxMode, MaxAge: -1, Expires: time.Unix(1, 0)})
	c.Locals(sessionTokenKey, "")
}

// RequireLogin lets any finished login through (every role).
func RequireLogin() fiber.Handler { return RequireRole() }

// RequireRole lets a finished login with one of the roles through (no roles:
// any). It also checks a :kasse route parameter against the tenant.
func RequireRole(roles ...auth.Role) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p, ok := PrincipalOf(c)
		if !ok {
			return unauthenticated(c)
		}
		if len(roles) > 0 && !p.Has(roles...) {
			return notFound(c)
		}
		if k := c.Params("kasse"); k != "" && k != p.TenantID {
			return notFound(c)
		}
		return c.Next()
	}
}

// MustPrincipal returns the principal behind RequireRole; it panics when a
// route forgot the guard, which the error handler turns into a 500 rather
// than serving data to nobody.
func MustPrincipal(c *fiber.Ctx) auth.Principal {
	p, ok := PrincipalOf(c)
	if !ok {
		panic("web: route without RequireRole/RequireLogin uses MustPrincipal")
	}
	return p
}

func unauthenticated(c *fiber.Ctx) error {
	if isAPI(c) {
		return SendProblem(c, fiber.StatusUnauthorized, "anmeldung-erforderlich", "Anmeldung erforderlich",
			"Bitte melden Sie sich an. Ihre Sitzung ist abgelaufen oder Sie sind nicht angemeldet.")
	}
	return c.Redirect(LoginPath+"?weiter="+url.QueryEscape(localPath(c.OriginalURL())), fiber.StatusSeeOther)
}

// notFound is the answer for another tenant's or person's object and for a
// role that may not see a route: the same as for a path that does not exist.
func notFound(c *fiber.Ctx) error {
	return SendProblem(c, fiber.StatusNotFound, "http-404", "Nicht gefunden", "")
}

func isAPI(c *fiber.Ctx) bool {
	return strings.HasPrefix(c.Path(), "/api/") || strings.Contains(c.Get(fiber.HeaderAccept), "json")
}

// localPath keeps a redirect target on this site: a path, never //host.
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
		return "/"
	}
	return p
}
