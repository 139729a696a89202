package web

// "Gerät aktivieren" and "Gerät einrichten": the browser side of adding an
// authenticator app (seed 000/001). "Gerät hinzufügen" on Mein Konto hands
// out the activation code; here the user enters it with the username or
// e-mail and a self-chosen 6-digit PIN, scans the QR code (or types the
// secret) and confirms with the first code of the app.
//
// The pending setup lives in the database, not in this process (every
// replica is stateless): the TOTP secret sealed on the device row, the
// session bound to the device on activation. Any replica renders the setup
// page for that session; another session or account gets 404 for it.

import (
	"errors"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"postbox/auth"
)

func (u *UI) mountDevices(app *fiber.App, me fiber.Handler) {
	app.Get("/konto/geraete/aktivieren", me, u.deviceActivateForm)
	app.Post("/konto/geraete/aktivieren", me, u.deviceActivate)
	app.Get("/konto/geraete/:id/einrichten", me, u.deviceSetupPage)
	app.Get("/konto/geraete/:id/qr.png", me, u.deviceQR)
	app.Post("/konto/geraete/:id/einrichten", me, u.deviceConfirm)
}

type deviceActivateData struct {
	Login string
	Code  string
}

func (u *UI) deviceActivateForm(c *fiber.Ctx) error {
	sess, _, _ := SessionOf(c)
	me, err := u.o.Auth.Me(c.UserContext(), sess)
	if err != nil {
		return err
	}
	v := u.baseView(c, "Gerät aktivieren")
	v.Data = &deviceActivateData{Login: me.Username}
	return u.render(c, fiber.StatusOK, "geraet_aktivieren", v)
}

var errActivation = fieldError{"activation_code", "Der Aktivierungscode passt nicht zum Benutzernamen oder zur E-Mail-Adresse, wurde schon verwendet oder ist abgelaufen " +
	"(er gilt 1 Stunde). Bitte prüfen Sie Ihre Eingabe oder fordern Sie unter „Gerät hinzufügen“ einen neuen Code an."}

func isSixDigits(s string) bool {
	return len(s) == 6 && strings.Trim(s, "0123456789") == ""
}

func (u *UI) deviceActivate(c *fiber.Ctx) error {
	sess, _, _ := SessionOf(c)
	login := strings.TrimSpace(c.FormValue("login"))
	code := strings.Join(strings.Fields(c.FormValue("activation_code")), "")
	pin, pinRepeat := strings.TrimSpace(c.FormValue("pin")), strings.TrimSpace(c.FormValue("pin_repeat"))
	again := func(status int, errs formErrors) error {
		v := u.baseView(c, "Gerät aktivieren")
		v.Data = &deviceActivateData{Login: login, Code: c.FormValue("activation_code")}
		v.Errors = errs
		return u.render(c, status, "geraet_aktivieren", v)
	}
	var errs formErrors
	if login == "" {
		errs = append(errs, fieldError{"login", "Bitte geben Sie Ihren Benutzernamen oder Ihre E-Mail-Adresse ein."})
	}
	if code == "" {
		errs = append(errs, fieldError{"activation_code", "Bitte geben Sie den Aktivierungscode ein, den Sie unter „Gerät hinzufügen“ erhalten haben."})
	}
	switch {
	case !isSixDigits(pin):
		errs = append(errs, fieldError{"pin", "Die PIN muss aus genau 6 Ziffern bestehen (keine Buchstaben, Leer- oder Sonderzeichen)."})
	case pin != pinRepeat:
		errs = append(errs, fieldError{"pin_repeat", "Die beiden PIN-Eingaben stimmen nicht überein. Bitte geben Sie dieselbe 6-stellige PIN zweimal ein."})
	}
	if len(errs) > 0 {
		return again(fiber.StatusUnprocessableEntity, errs)
	}
	me, err := u.o.Auth.Me(c.UserContext(), sess)
	if err != nil {
		return err
	}
	// Only the own account's devices are activated here; another login gets
	// the same answer as a wrong code, so this page tells nothing about it.
	if !strings.EqualFold(login, me.Username) && (me.Email == "" || !strings.EqualFold(login, me.Email)) {
		return again(fiber.StatusBadRequest, formErrors{errActivation})
	}
	act, err := u.o.Auth.ActivateDeviceInSession(c.UserContext(), uiMeta(c), sess, login, code, pin, pinRepeat)
	if errors.Is(err, auth.ErrTokenInvalid) {
		return again(fiber.StatusBadRequest, formErrors{errActivation})
	}
	if err != nil {
		errs, status, ok := authErrors(err, "activation_code")
		if !ok {
			return err
		}
		return again(status, errs)
	}
	return c.Redirect("/konto/geraete/"+url.PathEscape(act.DeviceID)+"/einrichten", fiber.StatusSeeOther)
}

type deviceSetupData struct {
	ID     string
	Name   string
	Secret string // in groups of four for typing
	Login  string
}

func groupsOfFour(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// setupOf reads the session's pending setup of the device in the URL from
// the database; another session's, an unknown or a finished one is 404.
func (u *UI) setupOf(c *fiber.Ctx) (auth.DeviceSetup, error) {
	sess, _, _ := SessionOf(c)
	d, err := u.o.Auth.DeviceSetup(c.UserContext(), sess, c.Params("id"))
	if errors.Is(err, auth.ErrNotAllowed) || errors.Is(err, auth.ErrTokenInvalid) || errors.Is(err, auth.ErrNoSession) {
		return auth.DeviceSetup{}, fiber.ErrNotFound
	}
	return d, err
}

func (u *UI) renderSetup(c *fiber.Ctx, status int, d auth.DeviceSetup, errs formErrors) error {
	v := u.baseView(c, "Gerät einrichten")
	v.Errors = errs
	v.Data = &deviceSetupData{ID: d.DeviceID, Name: d.Name, Secret: groupsOfFour(d.Secret), Login: d.Login}
	return u.render(c, status, "geraet_einrichten", v)
}

func (u *UI) deviceSetupPage(c *fiber.Ctx) error {
	d, err := u.setupOf(c)
	if err != nil {
		return err
	}
	return u.renderSetup(c, fiber.StatusOK, d, nil)
}

// deviceQR serves the QR code of the session's pending setup; it holds the
// secret, so no cache may keep it.
func (u *UI) deviceQR(c *fiber.Ctx) error {
	d, err := u.setupOf(c)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderContentType, "image/png")
	return c.Send(d.QRPNG)
}

func (u *UI) deviceConfirm(c *fiber.Ctx) error {
	sess, _, _ := SessionOf(c)
	d, err := u.o.Auth.DeviceSetup(c.UserContext(), sess, c.Params("id"))
	if errors.Is(err, auth.ErrTokenInvalid) {
		return u.setupOver(c)
	}
	if errors.Is(err, auth.ErrNotAllowed) || errors.Is(err, auth.ErrNoSession) {
		return fiber.ErrNotFound
	}
	if err != nil {
		return err
	}
	code := strings.Join(strings.Fields(c.FormValue("code")), "")
	if !isSixDigits(code) {
		return u.renderSetup(c, fiber.StatusUnprocessableEntity, d, formErrors{{"code",
			"Bitte geben Sie den 6-stelligen Code ein, den Ihre Authenticator-App gerade anzeigt (nur Ziffern)."}})
	}
	err = u.o.Auth.ConfirmDeviceSetup(c.UserContext(), uiMeta(c), sess, d.DeviceID, code)
	switch {
	case err == nil:
		return c.Redirect("/konto?hinweis=geraet-aktiviert#geraete", fiber.StatusSeeOther)
	case errors.Is(err, auth.ErrCodeInvalid):
		return u.renderSetup(c, fiber.StatusBadRequest, d, formErrors{{"code",
			"Der Code ist nicht richtig oder wurde schon verwendet. Bitte prüfen Sie, ob Uhrzeit und Datum Ihres Smartphones stimmen, " +
				"und geben Sie den Code ein, den die App jetzt anzeigt."}})
	case errors.Is(err, auth.ErrTokenInvalid):
		return u.setupOver(c)
	case errors.Is(err, auth.ErrNotAllowed), errors.Is(err, auth.ErrNoSession):
		return fiber.ErrNotFound // finished meanwhile, e.g. by a second request
	}
	errs, status, ok := authErrors(err, "code")
	if !ok {
		return err
	}
	return u.renderSetup(c, status, d, errs)
}

// setupOver answers a setup whose activation code expired or was ended
// after too many wrong codes: it cannot finish any more.
func (u *UI) setupOver(c *fiber.Ctx) error {
	sess, _, _ := SessionOf(c)
	me, err := u.o.Auth.Me(c.UserContext(), sess)
	if err != nil {
		return err
	}
	v := u.baseView(c, "Gerät aktivieren")
	v.Data = &deviceActivateData{Login: me.Username}
	v.Errors = formErrors{{"activation_code", "Die Einrichtung ist abgelaufen oder wurde nach zu vielen falschen Codes beendet. " +
		"Bitte fordern Sie unter „Gerät hinzufügen“ einen neuen Aktivierungscode an."}}
	return u.render(c, fiber.StatusBadRequest, "geraet_aktivieren", v)
}
