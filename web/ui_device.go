package web

// "Gerät aktivieren" and "Gerät einrichten": the browser side of adding an
// authenticator app (seed 000/001). "Gerät hinzufügen" on Mein Konto hands
// out the activation code; here the user enters it with the username or
// e-mail and a self-chosen 6-digit PIN, scans the QR code (or types the
// secret) and confirms with the first code of the app.
//
// The secret exists in clear only between activation and confirmation; it
// is kept in memory, bound to the tenant, account and session that
// activated the device, and dropped on success or after an hour. Another
// session or account gets 404 for it.

import (
	"errors"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"postbox/auth"
)

// deviceSetupLife bounds how long a scanned-but-unconfirmed secret stays in
// memory; it matches the activation code's lifetime (seed 000: 1 hour).
const deviceSetupLife = time.Hour

// deviceSetupMax caps the pending setups held in memory.
const deviceSetupMax = 10000

type deviceSetup struct {
	tenantID, accountID, sessionID string
	login, activationCode          string
	deviceName                     string
	secret                         string
	qrPNG                          []byte
	expires                        time.Time
}

type deviceSetups struct {
	mu sync.Mutex
	m  map[string]deviceSetup // by device id
}

func (s *deviceSetups) put(id string, d deviceSetup) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for k, v := range s.m {
		if now.After(v.expires) {
			delete(s.m, k)
		}
	}
	if _, ok := s.m[id]; !ok && len(s.m) >= deviceSetupMax {
		return false
	}
	s.m[id] = d
	return true
}

// get returns the setup of id only for the session that made it.
func (s *deviceSetups) get(id string, sess auth.Session) (deviceSetup, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.m[id]
	if !ok || time.Now().After(d.expires) || d.tenantID != sess.TenantID || d.accountID != sess.AccountID || d.sessionID != sess.ID {
		return deviceSetup{}, false
	}
	return d, true
}

func (s *deviceSetups) drop(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

func (u *UI) mountDevices(app *fiber.App, me fiber.Handler) {
	u.setups = &deviceSetups{m: map[string]deviceSetup{}}
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
	act, err := u.o.Auth.ActivateDevice(c.UserContext(), uiMeta(c), sess.TenantID, login, code, pin, pinRepeat)
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
	devices, err := u.o.Auth.ListDevices(c.UserContext(), MustPrincipal(c))
	if err != nil {
		return err
	}
	name := ""
	for _, d := range devices {
		if d.ID == act.DeviceID {
			name = d.Name
		}
	}
	if name == "" {
		return again(fiber.StatusBadRequest, formErrors{errActivation})
	}
	uri, err := url.Parse(act.URI)
	if err != nil {
		return err
	}
	ok := u.setups.put(act.DeviceID, deviceSetup{tenantID: sess.TenantID, accountID: sess.AccountID, sessionID: sess.ID, login: login,
		activationCode: code, deviceName: name, secret: uri.Query().Get("secret"), qrPNG: act.QRPNG, expires: time.Now().Add(deviceSetupLife)})
	if !ok {
		return again(fiber.StatusServiceUnavailable, formErrors{{"activation_code", "Gerade werden sehr viele Geräte eingerichtet. Bitte versuchen Sie es in einigen Minuten erneut."}})
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

func (u *UI) setupOf(c *fiber.Ctx) (deviceSetup, error) {
	sess, _, _ := SessionOf(c)
	d, ok := u.setups.get(c.Params("id"), sess)
	if !ok {
		return deviceSetup{}, fiber.ErrNotFound
	}
	return d, nil
}

func (u *UI) renderSetup(c *fiber.Ctx, status int, d deviceSetup, errs formErrors) error {
	v := u.baseView(c, "Gerät einrichten")
	v.Errors = errs
	v.Data = &deviceSetupData{ID: c.Params("id"), Name: d.deviceName, Secret: groupsOfFour(d.secret), Login: d.login}
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
	return c.Send(d.qrPNG)
}

func (u *UI) deviceConfirm(c *fiber.Ctx) error {
	d, err := u.setupOf(c)
	if err != nil {
		return err
	}
	code := strings.Join(strings.Fields(c.FormValue("code")), "")
	if !isSixDigits(code) {
		return u.renderSetup(c, fiber.StatusUnprocessableEntity, d, formErrors{{"code",
			"Bitte geben Sie den 6-stelligen Code ein, den Ihre Authenticator-App gerade anzeigt (nur Ziffern)."}})
	}
	sess, _, _ := SessionOf(c)
	err = u.o.Auth.ConfirmDevice(c.UserContext(), uiMeta(c), sess.TenantID, d.login, d.activationCode, code)
	switch {
	case err == nil:
		u.setups.drop(c.Params("id"))
		return c.Redirect("/konto?hinweis=geraet-aktiviert#geraete", fiber.StatusSeeOther)
	case errors.Is(err, auth.ErrCodeInvalid):
		return u.renderSetup(c, fiber.StatusBadRequest, d, formErrors{{"code",
			"Der Code ist nicht richtig oder wurde schon verwendet. Bitte prüfen Sie, ob Uhrzeit und Datum Ihres Smartphones stimmen, " +
				"und geben Sie den Code ein, den die App jetzt anzeigt."}})
	case errors.Is(err, auth.ErrTokenInvalid):
		// Expired or too many wrong codes: this setup cannot finish any more.
		u.setups.drop(c.Params("id"))
		v := u.baseView(c, "Gerät aktivieren")
		v.Data = &deviceActivateData{Login: d.login}
		v.Errors = formErrors{{"activation_code", "Die Einrichtung ist abgelaufen oder wurde nach zu vielen falschen Codes beendet. " +
			"Bitte fordern Sie unter „Gerät hinzufügen“ einen neuen Aktivierungscode an."}}
		return u.render(c, fiber.StatusBadRequest, "geraet_aktivieren", v)
	}
	errs, status, ok := authErrors(err, "code")
	if !ok {
		return err
	}
	return u.renderSetup(c, status, d, errs)
}
