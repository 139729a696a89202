package web

// Pages without a login besides the login itself: registration (seed 002)
// with the mTAN for the mobile number and the e-mail link, "Passwort
// vergessen" (security question, then a link by e-mail or a code by
// letter), and the provider user's invitation link. The mail links point
// here (auth.PathEmailConfirm, auth.PathPasswordReset, auth.PathInvitation);
// a link only shows a form, the POST acts, so a mail scanner that opens
// links changes nothing.

import (
	"errors"
	"strings"

	"github.com/gofiber/fiber/v2"

	"postbox/auth"
	"postbox/kasse"
)

func (u *UI) mountRegister(app *fiber.App) {
	if u.o.Auth == nil {
		return
	}
	app.Get("/registrierung", u.registerPage)
	app.Post("/registrierung", u.registerPost)
	app.Get("/registrierung/mobil", u.registerMobilePage)
	app.Post("/registrierung/mobil", u.registerMobilePost)
	app.Get(auth.PathEmailConfirm, u.confirmEmailPage)
	app.Post(auth.PathEmailConfirm, u.confirmEmailPost)
	app.Get("/passwort/vergessen", u.forgotPage)
	app.Post("/passwort/vergessen", u.forgotPost)
	app.Post("/passwort/vergessen/antwort", u.forgotAnswer)
	app.Get(auth.PathPasswordReset, u.resetPage)
	app.Post(auth.PathPasswordReset, u.resetPost)
	app.Get(auth.PathInvitation, u.invitationPage)
	app.Post(auth.PathInvitation, u.invitationPost)
}

// regData is every form of these pages; each page uses its part.
type regData struct {
	Kassen    []kasse.Kasse
	Kasse     string
	Fixed     bool
	KVNR      string
	Username  string
	Email     string
	Mobile    string
	Token     string // link token (e-mail confirmation, reset, invitation)
	Question  string
	Step      string // what the page shows: "form", "done", "email", "letter", …
	Given     string
	Family    string
	Salut     string
	Device    string
	Enrolment *auth.DeviceEnrollment
}

func (u *UI) regView(c *fiber.Ctx, title string) (*view, *regData, error) {
	v := u.baseView(c, title)
	d := &regData{Step: "form", Token: c.Query("token", c.FormValue("token"))}
	ks, err := u.o.Kassen.Kassen(c.UserContext())
	if err != nil {
		return nil, nil, err
	}
	d.Kassen = ks
	want := c.Query("kasse", c.FormValue("kasse"))
	for _, k := range ks {
		if len(ks) == 1 || k.ID == want {
			d.Kasse, d.Fixed = k.ID, true
			v.KasseName, v.KasseID = k.Name, k.ID
		}
	}
	if d.Kasse == "" {
		d.Kasse = want
	}
	v.Data = d
	return v, d, nil
}

// formError shows the auth service's message at its field (or at
// fallback), or reports an error that is not the user's.
func (u *UI) formError(c *fiber.Ctx, v *view, page string, err error, fallback string) error {
	errs, status, ok := authErrors(err, fallback)
	if !ok {
		if errors.Is(err, auth.ErrNotEligible) {
			errs, status = formErrors{{"kvnr", "Zu dieser Krankenversichertennummer ist bei der gewählten Krankenkasse keine versicherte Person bekannt. " +
				"Bitte prüfen Sie die Nummer und die Krankenkasse."}}, fiber.StatusUnprocessableEntity
		} else if errors.Is(err, auth.ErrAlreadyRegistered) {
			errs, status = formErrors{{"username", "Sie sind bereits registriert. Haben Sie Ihr Passwort vergessen? Dann nutzen Sie bitte „Passwort vergessen“."}}, fiber.StatusConflict
		} else {
			return err
		}
	}
	v.Errors = errs
	return u.render(c, status, page, v)
}

func (u *UI) registerPage(c *fiber.Ctx) error {
	v, _, err := u.regView(c, "Registrieren")
	if err != nil {
		return err
	}
	return u.render(c, fiber.StatusOK, "register", v)
}

func (u *UI) registerPost(c *fiber.Ctx) error {
	v, d, err := u.regView(c, "Registrieren")
	if err != nil {
		return err
	}
	d.KVNR, d.Username, d.Email, d.Mobile = c.FormValue("kvnr"), c.FormValue("username"), c.FormValue("email"), c.FormValue("mobile")
	if d.Kasse == "" {
		v.Errors = formErrors{{"kasse", "Bitte wählen Sie Ihre Krankenkasse."}}
		return u.render(c, fiber.StatusUnprocessableEntity, "register", v)
	}
	if c.FormValue("password") != c.FormValue("password_repeat") {
		v.Errors = formErrors{{"password_repeat", "Die beiden Passwörter stimmen nicht überein. Bitte geben Sie das Passwort zweimal gleich ein."}}
		return u.render(c, fiber.StatusUnprocessableEntity, "register", v)
	}
	res, err := u.o.Auth.Register(c.UserContext(), uiMeta(c), auth.Registration{TenantID: d.Kasse, KVNR: d.KVNR, Username: d.Username,
		Password: c.FormValue("password"), Email: d.Email, Mobile: d.Mobile, AcceptTerms: c.FormValue("accept_terms") == "ja"})
	if err != nil {
		return u.formError(c, v, "register", err, "username")
	}
	if res.Token != "" {
		SetSessionCookie(c, res.Token)
	}
	sms := "1"
	if res.SMSFailed {
		sms = "0"
	}
	return c.Redirect("/registrierung/mobil?sms="+sms, fiber.StatusSeeOther)
}

func (u *UI) registerMobilePage(c *fiber.Ctx) error {
	if _, _, ok, err := u.pendingStep(c, auth.StageRegistration); !ok {
		return err
	}
	v, d, err := u.regView(c, "Mobilnummer bestätigen")
	if err != nil {
		return err
	}
	d.Step = c.Query("sms")
	return u.render(c, fiber.StatusOK, "register_mobile", v)
}

func (u *UI) registerMobilePost(c *fiber.Ctx) error {
	_, token, ok, err := u.pendingStep(c, auth.StageRegistration)
	if !ok {
		return err
	}
	v, d, err := u.regView(c, "Mobilnummer bestätigen")
	if err != nil {
		return err
	}
	if err := u.o.Auth.ConfirmRegistrationMobile(c.UserContext(), uiMeta(c), token, strings.TrimSpace(c.FormValue("code"))); err != nil {
		return u.formError(c, v, "register_mobile", err, "code")
	}
	ClearSessionCookie(c)
	d.Step = "done"
	v.Title = "Fast geschafft"
	return u.render(c, fiber.StatusOK, "register_mobile", v)
}

func (u *UI) confirmEmailPage(c *fiber.Ctx) error {
	v, _, err := u.regView(c, "E-Mail-Adresse bestätigen")
	if err != nil {
		return err
	}
	return u.render(c, fiber.StatusOK, "register_email", v)
}

func (u *UI) confirmEmailPost(c *fiber.Ctx) error {
	v, d, err := u.regView(c, "E-Mail-Adresse bestätigen")
	if err != nil {
		return err
	}
	if err := u.o.Auth.ConfirmEmail(c.UserContext(), uiMeta(c), d.Token); err != nil {
		return u.formError(c, v, "register_email", err, "token")
	}
	d.Step = "done"
	return u.render(c, fiber.StatusOK, "register_email", v)
}

func (u *UI) forgotPage(c *fiber.Ctx) error {
	v, _, err := u.regView(c, "Passwort vergessen")
	if err != nil {
		return err
	}
	return u.render(c, fiber.StatusOK, "password_forgot", v)
}

// forgotPost asks the security question (unknown users get one too, so the
// page never tells whether a username exists).
func (u *UI) forgotPost(c *fiber.Ctx) error {
	v, d, err := u.regView(c, "Passwort vergessen")
	if err != nil {
		return err
	}
	d.Username = strings.TrimSpace(c.FormValue("username"))
	if d.Kasse == "" || d.Username == "" {
		var errs formErrors
		if d.Kasse == "" {
			errs = append(errs, fieldError{"kasse", "Bitte wählen Sie Ihre Krankenkasse."})
		}
		if d.Username == "" {
			errs = append(errs, fieldError{"username", "Bitte geben Sie Ihren Benutzernamen ein."})
		}
		v.Errors = errs
		return u.render(c, fiber.StatusUnprocessableEntity, "password_forgot", v)
	}
	q, err := u.o.Auth.ForgotPassword(c.UserContext(), d.Kasse, d.Username)
	if err != nil {
		return u.formError(c, v, "password_forgot", err, "username")
	}
	d.Question, d.Step = q, "question"
	return u.render(c, fiber.StatusOK, "password_forgot", v)
}

func (u *UI) forgotAnswer(c *fiber.Ctx) error {
	v, d, err := u.regView(c, "Passwort vergessen")
	if err != nil {
		return err
	}
	d.Username, d.Question, d.Step = c.FormValue("username"), c.FormValue("question"), "question"
	ch, err := u.o.Auth.AnswerSecurityQuestion(c.UserContext(), uiMeta(c), d.Kasse, d.Username, c.FormValue("answer"))
	if err != nil {
		return u.formError(c, v, "password_forgot", err, "answer")
	}
	d.Step = string(ch) // "email" or "letter"
	return u.render(c, fiber.StatusOK, "password_forgot", v)
}

func (u *UI) resetPage(c *fiber.Ctx) error {
	v, _, err := u.regView(c, "Neues Passwort festlegen")
	if err != nil {
		return err
	}
	return u.render(c, fiber.StatusOK, "password_reset", v)
}

func (u *UI) resetPost(c *fiber.Ctx) error {
	v, d, err := u.regView(c, "Neues Passwort festlegen")
	if err != nil {
		return err
	}
	d.Username = c.FormValue("username")
	if c.FormValue("password") != c.FormValue("password_repeat") {
		v.Errors = formErrors{{"password_repeat", "Die beiden Passwörter stimmen nicht überein. Bitte geben Sie das Passwort zweimal gleich ein."}}
		return u.render(c, fiber.StatusUnprocessableEntity, "password_reset", v)
	}
	err = u.o.Auth.ResetPassword(c.UserContext(), uiMeta(c), d.Kasse, d.Username, d.Token, strings.TrimSpace(c.FormValue("code")), c.FormValue("password"))
	if err != nil {
		field := "code"
		if d.Token != "" {
			field = "password"
		}
		return u.formError(c, v, "password_reset", err, field)
	}
	return c.Redirect("/anmelden?hinweis=passwort-neu&kasse="+d.Kasse, fiber.StatusSeeOther)
}

func (u *UI) invitationPage(c *fiber.Ctx) error {
	v, _, err := u.regView(c, "Einladung annehmen")
	if err != nil {
		return err
	}
	return u.render(c, fiber.StatusOK, "invitation", v)
}

// invitationPost stores the invited user's data and shows the activation
// code for the authenticator app (seed 001: Geräteregistrierung).
func (u *UI) invitationPost(c *fiber.Ctx) error {
	v, d, err := u.regView(c, "Einladung annehmen")
	if err != nil {
		return err
	}
	d.Salut, d.Given, d.Family, d.Username, d.Device = c.FormValue("salutation"), c.FormValue("given_name"), c.FormValue("family_name"),
		c.FormValue("username"), c.FormValue("device_name")
	if c.FormValue("password") != c.FormValue("password_repeat") {
		v.Errors = formErrors{{"password_repeat", "Die beiden Passwörter stimmen nicht überein. Bitte geben Sie das Passwort zweimal gleich ein."}}
		return u.render(c, fiber.StatusUnprocessableEntity, "invitation", v)
	}
	enr, err := u.o.Auth.CompleteInvitation(c.UserContext(), uiMeta(c), d.Token, auth.InvitationCompletion{Salutation: d.Salut, GivenName: d.Given,
		FamilyName: d.Family, Username: d.Username, Password: c.FormValue("password"), DeviceName: d.Device})
	if err != nil {
		return u.formError(c, v, "invitation", err, "username")
	}
	d.Enrolment, d.Step = &enr, "done"
	return u.render(c, fiber.StatusOK, "invitation", v)
}
