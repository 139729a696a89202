package web

// JSON API of accounts and login. Every handler is a thin translation to
// an auth.Service call, so the server-rendered pages can call the same
// service functions with form values.
//
// Login (cookie = unfinished session until the last step):
//
//	POST /api/auth/login                    {kasse, username, password}
//	POST /api/auth/login/mtan               send the mTAN again
//	POST /api/auth/login/second-factor      {method: "mtan"|"totp", code, freischaltcode}
//	POST /api/auth/login/security-question  {question, answer}
//	POST /api/auth/login/consent            {version}
//	GET  /api/auth/session                  stage, role, csrf_token
//	POST /api/auth/logout
//
// Registration, reset, devices, invitations (no login needed):
//
//	POST /api/auth/register, /api/auth/register/mobile, /api/auth/register/confirm-email
//	POST /api/auth/password/forgot, /api/auth/password/forgot/answer, /api/auth/password/reset
//	POST /api/auth/devices/activate, /api/auth/devices/confirm
//	POST /api/auth/invitation/complete
//	GET  /api/auth/security-questions, /api/auth/consent
//
// Own account (login): /api/account/... ; staff: /api/auth/accounts/:id/... ;
// provider admins: /api/account/users/...

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"postbox/auth"
)

// AuthAPI serves the account and login routes.
type AuthAPI struct{ svc *auth.Service }

// MountAuth registers the routes; call it after UseSessions.
func MountAuth(r fiber.Router, svc *auth.Service) *AuthAPI {
	h := &AuthAPI{svc: svc}
	a := r.Group("/api/auth")
	a.Post("/login", h.login)
	a.Post("/login/mtan", h.loginResend)
	a.Post("/login/second-factor", h.loginSecondFactor)
	a.Post("/login/security-question", h.loginSecurityQuestion)
	a.Post("/login/consent", h.loginConsent)
	a.Get("/session", h.session)
	a.Post("/logout", h.logout)
	a.Get("/security-questions", h.securityQuestions)
	a.Get("/consent", h.consentText)
	a.Post("/register", h.register)
	a.Post("/register/mobile", h.registerMobile)
	a.Post("/register/confirm-email", h.confirmEmail)
	a.Post("/email/confirm", h.confirmEmailChange)
	a.Post("/password/forgot", h.forgot)
	a.Post("/password/forgot/answer", h.forgotAnswer)
	a.Post("/password/reset", h.reset)
	a.Post("/devices/activate", h.activateDevice)
	a.Post("/devices/confirm", h.confirmDevice)
	a.Post("/invitation/complete", h.completeInvitation)

	staff := RequireRole(auth.RoleCaseworker, auth.RoleTeamLead, auth.RoleKasseAdmin)
	a.Get("/accounts/:id", staff, h.accountStatus)
	a.Post("/accounts/:id/lock", staff, h.lockAccount)
	a.Post("/accounts/:id/unlock", staff, h.unlockAccount)
	a.Post("/accounts/:id/end", staff, h.endAccountStaff)

	me := r.Group("/api/account", RequireLogin())
	me.Get("", h.me)
	me.Post("/logout-everywhere", h.logoutEverywhere)
	me.Post("/password", h.changePassword)
	me.Post("/step-up/mtan", h.stepUpMTAN)
	me.Post("/step-up", h.stepUp)
	me.Get("/devices", h.devices)
	me.Post("/devices", h.addDevice)
	me.Delete("/devices/:id", h.removeDevice)
	me.Post("/mobile", h.changeMobile)
	me.Post("/mobile/confirm", h.confirmMobile)
	me.Patch("/profile", h.updateProfile)
	me.Post("/security-question", h.changeSecurityQuestion)
	me.Post("/consent/revoke", h.revokeConsent)
	me.Post("/end", h.endOwnAccount)

	admin := r.Group("/api/account/users", RequireRole(auth.RoleProviderAdmin))
	admin.Get("", h.orgUsers)
	admin.Post("", h.invite)
	admin.Post("/:id/resend", h.resendInvitation)
	admin.Post("/:id/revoke", h.revokeInvitation)
	return h
}

func authMeta(c *fiber.Ctx) auth.Meta { return auth.Meta{ClientAddr: c.IP(), RequestID: RequestID(c)} }

// authFieldProblem is a problem+json with one German message per field.
type authFieldProblem struct {
	Problem
	Errors []authFieldMessage `json:"errors"`
}

type authFieldMessage struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// AuthProblem answers an error of the auth service in German; errors it
// does not know go to the error handler (500 without details).
func AuthProblem(c *fiber.Ctx, err error) error {
	var fes auth.FieldErrors
	var fe *auth.FieldError
	var young *auth.TooYoungError
	switch {
	case errors.As(err, &fes), errors.As(err, &fe):
		if fe != nil && fes == nil {
			fes = auth.FieldErrors{fe}
		}
		p := authFieldProblem{Problem: Problem{Type: "https://postbox.invalid/probleme/eingabe-ungueltig", Title: "Bitte prüfen Sie Ihre Eingaben",
			Status: fiber.StatusUnprocessableEntity, Detail: strings.Join(fes.Messages(), " "), RequestID: RequestID(c)}}
		for _, f := range fes {
			p.Errors = append(p.Errors, authFieldMessage{f.Field, f.Message})
		}
		c.Status(fiber.StatusUnprocessableEntity)
		return c.JSON(p, "application/problem+json")
	case errors.Is(err, auth.ErrLoginFailed):
		return SendProblem(c, fiber.StatusUnauthorized, "anmeldung-fehlgeschlagen", "Anmeldung fehlgeschlagen",
			"Benutzername oder Passwort sind nicht richtig, oder der Zugang ist gesperrt. Nach fünf falschen Passwörtern in Folge wird der Zugang gesperrt; nutzen Sie dann „Passwort vergessen“ oder wenden Sie sich an Ihre Krankenkasse.")
	case errors.Is(err, auth.ErrRateLimited):
		return SendProblem(c, fiber.StatusTooManyRequests, "zu-viele-versuche", "Zu viele Versuche",
			"Aus Sicherheitsgründen sind gerade keine weiteren Versuche möglich. Bitte warten Sie 15 Minuten und versuchen Sie es dann erneut.")
	case errors.Is(err, auth.ErrUnlockCodeInvalid):
		_, msg, status, _ := authMessage(err) // wrong (tries left), expired or voided: the same words as the page
		return SendProblem(c, status, "freischaltcode-ungueltig", "Freischaltcode ungültig", msg)
	case errors.Is(err, auth.ErrCodeInvalid):
		return SendProblem(c, fiber.StatusBadRequest, "code-ungueltig", "Sicherheitscode ungültig",
			"Der Sicherheitscode ist nicht richtig, abgelaufen oder wurde schon verwendet. Bitte fordern Sie bei Bedarf einen neuen Code an.")
	case errors.Is(err, auth.ErrStepUpRequired):
		return SendProblem(c, fiber.StatusForbidden, "sicherheitscode-erforderlich", "Bestätigung erforderlich",
			"Bitte bestätigen Sie diese Änderung zuerst mit einem aktuellen Sicherheitscode (mTAN oder Authenticator-App).")
	case errors.Is(err, auth.ErrNoSession), errors.Is(err, auth.ErrWrongStage):
		ClearSessionCookie(c)
		return SendProblem(c, fiber.StatusUnauthorized, "anmeldung-erforderlich", "Anmeldung erforderlich",
			"Ihre Anmeldung ist abgelaufen oder wurde beendet. Bitte melden Sie sich erneut an.")
	case errors.Is(err, auth.ErrNotAllowed):
		return notFound(c)
	case errors.Is(err, auth.ErrTokenInvalid):
		return SendProblem(c, fiber.StatusBadRequest, "link-ungueltig", "Link oder Code ungültig",
			"Der Link oder Code ist nicht richtig, wurde schon verwendet oder ist abgelaufen.")
	case errors.Is(err, auth.ErrEmailUnconfirmed):
		return SendProblem(c, fiber.StatusForbidden, "email-unbestaetigt", "E-Mail-Adresse nicht bestätigt",
			"Bitte bestätigen Sie zuerst Ihre E-Mail-Adresse über den Link in unserer E-Mail. Danach erhalten Sie Ihren Freischaltcode per Post.")
	case errors.As(err, &young):
		return SendProblem(c, fiber.StatusUnprocessableEntity, "registrierung-nicht-moeglich", "Registrierung nicht möglich",
			"Eine Registrierung ist erst ab "+strconv.Itoa(young.MinAge)+" Jahren möglich.")
	case errors.Is(err, auth.ErrNotEligible):
		return SendProblem(c, fiber.StatusUnprocessableEntity, "registrierung-nicht-moeglich", "Registrierung nicht möglich",
			"Zu dieser Krankenversichertennummer ist bei der gewählten Krankenkasse keine versicherte Person bekannt. Bitte prüfen Sie die Nummer und ob Sie die richtige Krankenkasse gewählt haben.")
	case errors.Is(err, auth.ErrAlreadyRegistered):
		return SendProblem(c, fiber.StatusConflict, "bereits-registriert", "Bereits registriert",
			"Sie sind bereits registriert. Haben Sie Ihr Passwort vergessen? Dann nutzen Sie bitte „Passwort vergessen“.")
	case errors.Is(err, auth.ErrNoSecondFactor):
		return SendProblem(c, fiber.StatusForbidden, "kein-zweiter-faktor", "Kein Sicherheitsverfahren eingerichtet",
			"Für Ihren Zugang ist weder eine bestätigte Mobilnummer noch eine Authenticator-App eingerichtet. Bitte wenden Sie sich an Ihre Krankenkasse.")
	case errors.Is(err, auth.ErrLastFactor):
		return SendProblem(c, fiber.StatusConflict, "letztes-geraet", "Letztes Gerät",
			"Das letzte Gerät kann nicht entfernt werden, solange keine bestätigte Mobilnummer für die mTAN hinterlegt ist.")
	case errors.Is(err, auth.ErrSMSFailed):
		return SendProblem(c, fiber.StatusBadGateway, "sms-nicht-gesendet", "SMS nicht gesendet",
			"Die SMS konnte gerade nicht gesendet werden. Bitte fordern Sie den Code in einigen Minuten erneut an.")
	}
	return err
}

func authBadBody(c *fiber.Ctx) error {
	return SendProblem(c, fiber.StatusBadRequest, "anfrage-ungueltig", "Ungültige Anfrage",
		"Die Anfrage konnte nicht gelesen werden. Bitte senden Sie die Felder als JSON oder Formular.")
}

// parse reads a JSON or form body into v.
func authParse(c *fiber.Ctx, v any) error {
	if len(c.Body()) == 0 {
		return nil
	}
	return c.BodyParser(v)
}

func (h *AuthAPI) loginJSON(c *fiber.Ctx, r auth.LoginResult) error {
	if r.Token != "" {
		SetSessionCookie(c, r.Token)
	}
	out := fiber.Map{"stage": authStageName(r.Stage), "csrf_token": CSRFTokenOf(c)}
	if len(r.Methods) > 0 {
		out["methods"] = r.Methods
	}
	if r.MobileHint != "" && r.MobileHint != "…" {
		out["mobile_hint"] = r.MobileHint
	}
	out["mtan_sent"] = r.MTANSent
	if r.SMSFailed {
		out["hinweis"] = "Die SMS mit der mTAN konnte gerade nicht gesendet werden. Bitte fordern Sie sie erneut an."
	}
	switch r.Stage {
	case auth.StageSecurityQuestion:
		out["questions"] = auth.SecurityQuestions
	case auth.StageConsent:
		out["consent"] = fiber.Map{"version": auth.ConsentVersion, "text": auth.ConsentText}
	case auth.StageDone:
		out["role"] = r.Principal.Role
		out["kasse"] = r.Principal.TenantID
	}
	return c.JSON(out)
}

func authStageName(s auth.Stage) string {
	if s == auth.StageDone {
		return "done"
	}
	return string(s)
}

func (h *AuthAPI) login(c *fiber.Ctx) error {
	var in struct {
		Kasse    string `json:"kasse" form:"kasse"`
		Username string `json:"username" form:"username"`
		Password string `json:"password" form:"password"`
	}
	if err := authParse(c, &in); err != nil {
		return authBadBody(c)
	}
	_, old, _ := SessionOf(c)
	r, err := h.svc.Login(c.UserContext(), authMeta(c), in.Kasse, in.Username, in.Password, old)
	if err != nil {
		return AuthProblem(c, err)
	}
	return h.loginJSON(c, r)
}

func authSessionToken(c *fiber.Ctx) string {
	_, token, _ := SessionOf(c)
	return token
}

func (h *AuthAPI) loginResend(c *fiber.Ctx) error {
	r, err := h.svc.ResendLoginMTAN(c.UserContext(), authMeta(c), authSessionToken(c))
	if err != nil {
		return AuthProblem(c, err)
	}
	return h.loginJSON(c, r)
}

func (h *AuthAPI) loginSecondFactor(c *fiber.Ctx) error {
	var in struct {
		Method         string `json:"method" form:"method"`
		Code           string `json:"code" form:"code"`
		Freischaltcode string `json:"freischaltcode" form:"freischaltcode"`
	}
	if err := authParse(c, &in); err != nil {
		return authBadBody(c)
	}
	r, err := h.svc.LoginSecondFactor(c.UserContext(), authMeta(c), authSessionToken(c), in.Method, in.Code, in.Freischaltcode)
	if err != nil {
		return AuthProblem(c, err)
	}
	return h.loginJSON(c, r)
}

func (h *AuthAPI) loginSecurityQuestion(c *fiber.Ctx) error {
	var in struct {
		Question string `json:"question" form:"question"`
		Answer   string `json:"answer" form:"answer"`
	}
	if err := authParse(c, &in); err != nil {
		return authBadBody(c)
	}
	r, err := h.svc.LoginSecurityQuestion(c.UserContext(), authMeta(c), authSessionToken(c), in.Question, in.Answer)
	if err != nil {
		return AuthProblem(c, err)
	}
	return h.loginJSON(c, r)
}

func (h *AuthAPI) loginConsent(c *fiber.Ctx) error {
	var in struct {
		Version string `json:"version" form:"version"`
	}
	if err := authParse(c, &in); err != nil {
		return authBadBody(c)
	}
	r, err := h.svc.LoginConsent(c.UserContext(), authMeta(c), authSessionToken(c), in.Version)
	if err != nil {
		return AuthProblem(c, err)
	}
	return h.loginJSON(c, r)
}

func (h *AuthAPI) session(c *fiber.Ctx) error {
	sess, _, ok := SessionOf(c)
	if !ok {
		return c.JSON(fiber.Map{"logged_in": false})
	}
	out := fiber.Map{"logged_in": sess.Stage == auth.StageDone, "stage": authStageName(sess.Stage), "csrf_token": CSRFTokenOf(c)}
	if sess.Stage == auth.StageDone {
		out["role"], out["kasse"], out["expires_at"] = sess.Role, sess.TenantID, sess.ExpiresAt
	}
	return c.JSON(out)
}

func (h *AuthAPI) logout(c *fiber.Ctx) error {
	if token := authSessionToken(c); token != "" {
		if err := h.svc.EndSession(c.UserContext(), token); err != nil {
			return err
		}
	}
	ClearSessionCookie(c)
	return c.JSON(fiber.Map{"logged_in": false})
}

func (h *AuthAPI) securityQuestions(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"questions": auth.SecurityQuestions})
}

func (h *AuthAPI) consentText(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"version": auth.ConsentVersion, "text": auth.ConsentText})
}

func (h *AuthAPI) register(c *fiber.Ctx) error {
	var in struct {
		Kasse       string `json:"kasse" form:"kasse"`
		KVNR        string `json:"kvnr" form:"kvnr"`
		Username    string `json:"username" form:"username"`
		Password    string `json:"password" form:"password"`
		Email       string `json:"email" form:"email"`
		Mobile      string `json:"mobile" form:"mobile"`
		AcceptTerms bool   `json:"accept_terms" form:"accept_terms"`
	}
	if err := authParse(c, &in); err != nil {
		return authBadBody(c)
	}
	r, err := h.svc.Register(c.UserContext(), authMeta(c), auth.Registration{TenantID: in.Kasse, KVNR: in.KVNR, Username: in.Username,
		Password: in.Password, Email: in.Email, Mobile: in.Mobile, AcceptTerms: in.AcceptTerms})
	if err != nil {
		return AuthProblem(c, err)
	}
	SetSessionCookie(c, r.Token)
	out := fiber.Map{"stage": string(auth.StageRegistration), "mtan_sent": r.MTANSent, "mobile_hint": r.MobileHint, "csrf_token": CSRFTokenOf(c),
		"hinweis": "Wir haben Ihnen einen Bestätigungslink per E-Mail geschickt (4 Wochen gültig) und eine mTAN per SMS zur Bestätigung Ihrer Mobilnummer."}
	return c.Status(fiber.StatusCreated).JSON(out)
}

func (h *AuthAPI) registerMobile(c *fiber.Ctx) error {
	var in struct {
		Code string `json:"code" form:"code"`
	}
	if err := authParse(c, &in); err != nil {
		return authBadBody(c)
	}
	if err := h.svc.ConfirmRegistrationMobile(c.UserContext(), authMeta(c), authSessionToken(c), in.Code); err != nil {
		return AuthProblem(c, err)
	}
	ClearSessionCookie(c)
	return c.JSON(fiber.Map{"mobile_confirmed": true})
}

func (h *AuthAPI) confirmEmail(c *fiber.Ctx) error {
	var in struct {
		Token string `json:"token" form:"token"`
	}
	if err := authParse(c, &in); err != nil {
		return authBadBody(c)
	}
	if err := h.svc.ConfirmEmail(c.UserContext(), authMeta(c), in.Token); err != nil {
		return AuthProblem(c, err)
	}
	return c.JSON(fiber.Map{"email_confirmed": true,
		"hinweis": "Vielen Dank. Ihr Freischaltcode kommt in den nächsten Tagen per Post an die bei uns gespeicherte Adresse."})
}

// confirmEmailChange redeems the link sent to a new e-mail address; the
// link is the proof, so no session is needed.
func (h *AuthAPI) confirmEmailChange(c *fiber.Ctx) error {
	var in struct {
		Token string `json:"token" form:"token"`
	}
	if err := authParse(c, &in); err != nil {
		return authBadBody(c)
	}
	if err := h.svc.ConfirmEmailChange(c.UserContext(), authMeta(c), in.Token); err != nil {
		return AuthProblem(c, err)
	}
	return c.JSON(fiber.Map{"email_changed": true})
}

func (h *AuthAPI) forgot(c *fiber.Ctx) error {
	var in struct {
		Kasse    string `json:"kasse" form:"kasse"`
		Username string `json:"username" form:"username"`
	}
	if err := authParse(c, &in); err != nil {
		return authBadBody(c)
	}
	q, err := h.svc.ForgotPassword(c.UserContext(), in.Kasse, in.Username)
	if err != nil {
		return AuthProblem(c, err)
	}
	return c.JSON(fiber.Map{"question": q})
}

func (h *AuthAPI) forgotAnswer(c *fiber.Ctx) error {
	var in struct {
		Kasse    string `json:"kasse" form:"kasse"`
		Username string `json:"username" form:"username"`
		Answer   string `json:"answer" form:"answer"`
	}
	if err := authParse(c, &in); err != nil {
		return authBadBody(c)
	}
	ch, err := h.svc.AnswerSecurityQuestion(c.UserContext(), authMeta(c), in.Kasse, in.Username, in.Answer)
	if err != nil {
		return AuthProblem(c, err)
	}
	msg := "Falls zu diesem Benutzernamen ein Zugang besteht, senden wir Ihnen einen Code für ein neues Passwort per Post an die bei uns gespeicherte Adresse."
	if ch == auth.ResetByEmail {
		msg = "Wir haben Ihnen einen Link für ein neues Passwort per E-Mail geschickt. Er ist 24 Stunden gültig."
	}
	return c.JSON(fiber.Map{"channel": ch, "hinweis": msg})
}

func (h *AuthAPI) reset(c *fiber.Ctx) error {
	var in struct {
		Kasse    string `json:"kasse" form:"kasse"`
		Username string `json:"username" form:"username"`
		Token    string `json:"token" form:"token"`
		Code     string `json:"code" form:"code"`
		Password string `json:"password" form:"password"`
	}
	if err := authParse(c, &in); err != nil {
		return authBadBody(c)
	}
	if in.Token == "" && in.Code == "" {
		return AuthProblem(c, auth.ErrTokenInvalid)
	}
	if err := h.svc.ResetPassword(c.UserContext(), authMeta(c), in.Kasse, in.Username, in.Token, in.Code, in.Password); err != nil {
		return AuthProblem(c, err)
	}
	return c.JSON(fiber.Map{"password_changed": true})
}

func (h *AuthAPI) activateDevice(c *fiber.Ctx) error {
	var in struct {
		Kasse          string `json:"kasse" form:"kasse"`
		Login          string `json:"login" form:"login"`
		ActivationCode string `json:"activation_code" form:"activation_code"`
		PIN            string `json:"pin" form:"pin"`
		PINRepeat      string `json:"pin_repeat" form:"pin_repeat"`
	}
	if err := authParse(c, &in); err != nil {
		return authBadBody(c)
	}
	a, err := h.svc.ActivateDevice(c.UserContext(), authMeta(c), in.Kasse, in.Login, in.ActivationCode, in.PIN, in.PINRepeat)
	if err != nil {
		return AuthProblem(c, err)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(fiber.Map{"device_id": a.DeviceID, "otpauth_uri": a.URI, "qr_png": base64.StdEncoding.EncodeToString(a.QRPNG)})
}

func (h *AuthAPI) confirmDevice(c *fiber.Ctx) error {
	var in struct {
		Kasse          string `json:"kasse" form:"kasse"`
		Login          string `json:"login" form:"login"`
		ActivationCode string `json:"activation_code" form:"activation_code"`
		Code           string `json:"code" form:"code"`
	}
	if err := authParse(c, &in); err != nil {
		return authBadBody(c)
	}
	if err := h.svc.ConfirmDevice(c.UserContext(), authMeta(c), in.Kasse, in.Login, in.ActivationCode, in.Code); err != nil {
		return AuthProblem(c, err)
	}
	return c.JSON(fiber.Map{"status": auth.DeviceActive.German()})
}

func authEnrollmentJSON(e auth.DeviceEnrollment) fiber.Map {
	return fiber.Map{"device_id": e.DeviceID, "activation_code": e.ActivationCode, "login": e.Login, "expires_at": e.ExpiresAt.Format(time.RFC3339),
		"status": auth.DeviceRequested.German()}
}

func (h *AuthAPI) completeInvitation(c *fiber.Ctx) error {
	var in struct {
		Token      string `json:"token" form:"token"`
		Salutation string `json:"salutation" form:"salutation"`
		GivenName  string `json:"given_name" form:"given_name"`
		FamilyName string `json:"family_name" form:"family_name"`
		Username   string `json:"username" form:"username"`
		Password   string `json:"password" form:"password"`
		DeviceName string `json:"device_name" form:"device_name"`
	}
	if err := authParse(c, &in); err != nil {
		return authBadBody(c)
	}
	e, err := h.svc.CompleteInvitation(c.UserContext(), authMeta(c), in.Token, auth.InvitationCompletion{Salutation: in.Salutation,
		GivenName: in.GivenName, FamilyName: in.FamilyName, Username: in.Username, Password: in.Password, DeviceName: in.DeviceName})
	if err != nil {
		return AuthProblem(c, err)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(authEnrollmentJSON(e))
}
