package web

// "Mein Konto": personal and contact data behind a fresh security code
// (step-up, seed 000), the mTAN number, authenticator devices, password,
// "log out everywhere", and ending the account with the Postfach export
// offered first. Every form is a plain POST that redirects back with a
// notice, or shows the page again with the errors at their fields.

import (
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"postbox/auth"
	"postbox/kasse"
)

func (u *UI) mountAccount(app *fiber.App) {
	if u.o.Auth == nil {
		return
	}
	me := RequireLogin()
	app.Get("/konto", me, u.accountHome)
	app.Post("/konto/bestaetigen", me, u.accountStepUp)
	app.Post("/konto/bestaetigen/mtan", me, u.accountStepUpMTAN)
	app.Post("/konto/daten", me, u.accountProfile)
	app.Get(auth.PathEmailChange, u.emailChangePage)
	app.Post(auth.PathEmailChange, u.emailChangePost)
	app.Post("/konto/mobilnummer", me, u.accountMobile)
	app.Post("/konto/mobilnummer/bestaetigen", me, u.accountMobileConfirm)
	app.Post("/konto/geraete", me, u.accountAddDevice)
	app.Post("/konto/geraete/:id/entfernen", me, u.accountRemoveDevice)
	u.mountDevices(app, me)
	app.Post("/konto/versandart", RequireRole(auth.RoleInsured), u.accountDelivery)
	app.Post("/konto/passwort", me, u.accountPassword)
	app.Post("/konto/abmelden-ueberall", me, u.accountLogoutEverywhere)
	app.Post("/konto/beenden", me, u.accountEnd)
}

type accountHomeData struct {
	Me         auth.AccountView
	Devices    []auth.DeviceInfo
	StepUp     bool   // a fresh security code was entered
	StepUpTill string // "14:35 Uhr"
	HasMTAN    bool
	HasTOTP    bool
	Insured    bool
	Email      string // typed value after an error
	Mobile     string
	Enrollment *auth.DeviceEnrollment
	SMSSent    bool
	Delivery   kasse.Delivery // insured only: "online" or "post"
}

func (u *UI) accountView(c *fiber.Ctx) (*view, *accountHomeData, error) {
	sess, _, _ := SessionOf(c)
	me, err := u.o.Auth.Me(c.UserContext(), sess)
	if err != nil {
		return nil, nil, err
	}
	devices, err := u.o.Auth.ListDevices(c.UserContext(), MustPrincipal(c))
	if err != nil {
		return nil, nil, err
	}
	v := u.baseView(c, "Mein Konto")
	d := &accountHomeData{Me: me, Devices: devices, HasMTAN: me.MobileHint != "", Insured: me.Role == auth.RoleInsured, Email: me.Email,
		SMSSent: c.Query("sms") == "1"}
	for _, dv := range devices {
		d.HasTOTP = d.HasTOTP || dv.Status == auth.DeviceActive
	}
	if d.Insured {
		if d.Delivery, err = u.o.Auth.Delivery(c.UserContext(), MustPrincipal(c)); err != nil {
			return nil, nil, err
		}
	}
	if !me.StepUpValidUntil.IsZero() && time.Now().Before(me.StepUpValidUntil) {
		d.StepUp, d.StepUpTill = true, me.StepUpValidUntil.In(berlin).Format("15:04")+" Uhr"
	}
	if n := deliveryNotices[c.Query("hinweis")]; n != "" {
		v.Notice = n
	}
	v.Data = d
	return v, d, nil
}

func (u *UI) accountHome(c *fiber.Ctx) error {
	v, _, err := u.accountView(c)
	if err != nil {
		return err
	}
	return u.render(c, fiber.StatusOK, "konto", v)
}

// accountDone redirects back to the page with a notice, or shows it again
// with the service's German message at the field.
func (u *UI) accountDone(c *fiber.Ctx, err error, fallbackField, notice string, keep func(*accountHomeData)) error {
	if err == nil {
		return c.Redirect("/konto?hinweis="+notice+"#"+anchorOf(fallbackField), fiber.StatusSeeOther)
	}
	if errors.Is(err, auth.ErrNoSession) {
		ClearSessionCookie(c)
		return c.Redirect("/anmelden?hinweis=anmeldung-abgelaufen", fiber.StatusSeeOther)
	}
	errs, status, ok := authErrors(err, fallbackField)
	if !ok {
		return err
	}
	v, d, verr := u.accountView(c)
	if verr != nil {
		return verr
	}
	if keep != nil {
		keep(d)
	}
	v.Errors = errs
	return u.render(c, status, "konto", v)
}

// anchorOf is the section a form belongs to, so the browser returns there.
func anchorOf(field string) string {
	switch field {
	case "code", "method":
		return "bestaetigen"
	case "email":
		return "daten"
	case "mobile", "code_old", "code_new":
		return "mobil"
	case "device_name", "device":
		return "geraete"
	case "delivery":
		return "versandart"
	case "current_password", "password", "password_repeat":
		return "passwort"
	}
	return "inhalt"
}

func (u *UI) accountStepUp(c *fiber.Ctx) error {
	sess, _, _ := SessionOf(c)
	code := strings.Join(strings.Fields(c.FormValue("code")), "")
	var err error
	if code == "" {
		err = auth.FieldErrors{{Field: "code", Message: "Bitte geben Sie den Sicherheitscode ein: die mTAN aus der SMS oder den Code Ihrer Authenticator-App."}}
	} else {
		err = u.o.Auth.StepUp(c.UserContext(), uiMeta(c), sess, c.FormValue("method"), code)
	}
	return u.accountDone(c, err, "code", "bestaetigt", nil)
}

func (u *UI) accountStepUpMTAN(c *fiber.Ctx) error {
	sess, _, _ := SessionOf(c)
	if _, err := u.o.Auth.RequestStepUpMTAN(c.UserContext(), uiMeta(c), sess); err != nil {
		return u.accountDone(c, err, "code", "", nil)
	}
	return c.Redirect("/konto?sms=1#bestaetigen", fiber.StatusSeeOther)
}

func (u *UI) accountProfile(c *fiber.Ctx) error {
	sess, _, _ := SessionOf(c)
	email := c.FormValue("email")
	var err error
	if strings.TrimSpace(email) == "" {
		err = auth.FieldErrors{{Field: "email", Message: "Bitte geben Sie Ihre E-Mail-Adresse ein, zum Beispiel name@beispiel.de."}}
	} else {
		err = u.o.Auth.UpdateProfile(c.UserContext(), uiMeta(c), sess, auth.ProfileUpdate{Email: email, ResendEmailLink: c.FormValue("resend") == "1"})
	}
	notice := "daten-gespeichert"
	if err == nil {
		// A new address waits for its link; say so instead of "saved".
		if me, merr := u.o.Auth.Me(c.UserContext(), sess); merr == nil && me.EmailPending != "" {
			notice = "email-link"
		}
	}
	return u.accountDone(c, err, "email", notice, func(d *accountHomeData) { d.Email = email })
}

func (u *UI) accountMobile(c *fiber.Ctx) error {
	sess, _, _ := SessionOf(c)
	mobile := c.FormValue("mobile")
	err := u.o.Auth.RequestMobileChange(c.UserContext(), uiMeta(c), sess, mobile)
	return u.accountDone(c, err, "mobile", "mobil-codes", func(d *accountHomeData) { d.Mobile = mobile })
}

func (u *UI) accountMobileConfirm(c *fiber.Ctx) error {
	sess, _, _ := SessionOf(c)
	err := u.o.Auth.ConfirmMobileChange(c.UserContext(), uiMeta(c), sess, strings.TrimSpace(c.FormValue("code_old")), strings.TrimSpace(c.FormValue("code_new")))
	return u.accountDone(c, err, "code_new", "mobil-geaendert", nil)
}

// accountAddDevice shows the activation code right in its answer: it is
// valid for an hour and shown only once.
func (u *UI) accountAddDevice(c *fiber.Ctx) error {
	sess, _, _ := SessionOf(c)
	name := strings.TrimSpace(c.FormValue("device_name"))
	var (
		enr auth.DeviceEnrollment
		err error
	)
	if name == "" {
		err = auth.FieldErrors{{Field: "device_name", Message: "Bitte geben Sie dem Gerät einen Namen, zum Beispiel „Mein Smartphone“."}}
	} else {
		enr, err = u.o.Auth.AddDevice(c.UserContext(), uiMeta(c), sess, name)
	}
	if err != nil {
		return u.accountDone(c, err, "device_name", "", nil)
	}
	v, d, err := u.accountView(c)
	if err != nil {
		return err
	}
	d.Enrollment = &enr
	v.Notice = "Das Gerät ist beantragt. Geben Sie in der Authenticator-App den Aktivierungscode und Ihren Benutzernamen ein."
	return u.render(c, fiber.StatusCreated, "konto", v)
}

func (u *UI) accountRemoveDevice(c *fiber.Ctx) error {
	sess, _, _ := SessionOf(c)
	err := u.o.Auth.RemoveDevice(c.UserContext(), uiMeta(c), sess, c.Params("id"))
	if errors.Is(err, auth.ErrNotAllowed) {
		return fiber.ErrNotFound
	}
	return u.accountDone(c, err, "device", "geraet-entfernt", nil)
}

// deliveryNotices confirm the chosen delivery; they live here rather than
// in the shared notices map because only this page uses them.
var deliveryNotices = map[string]string{
	"versand-online": "Gespeichert: Ihre Briefe kommen ab jetzt ins Postfach; wir schicken Ihnen dazu einen E-Mail-Hinweis. Manche Dokumente senden wir weiterhin per Post.",
	"versand-post":   "Gespeichert: Ihre Briefe kommen ab jetzt per Post.",
}

// accountDelivery sets the delivery preference (seed 004). No fresh
// security code is asked for: the preference is neither personal nor
// contact data, and the letters still reach the same person either way.
func (u *UI) accountDelivery(c *fiber.Ctx) error {
	d := kasse.Delivery(c.FormValue("delivery"))
	var err error
	if d == "" {
		err = auth.FieldErrors{{Field: "delivery", Message: "Bitte wählen Sie eine Versandart: „Online“ oder „Post“."}}
	} else {
		err = u.o.Auth.SetDelivery(c.UserContext(), uiMeta(c), MustPrincipal(c), d)
	}
	if errors.Is(err, auth.ErrNotAllowed) {
		return fiber.ErrNotFound
	}
	return u.accountDone(c, err, "delivery", "versand-"+string(d), nil)
}

func (u *UI) accountPassword(c *fiber.Ctx) error {
	next := c.FormValue("password")
	var err error
	switch {
	case c.FormValue("current_password") == "":
		err = auth.FieldErrors{{Field: "current_password", Message: "Bitte geben Sie Ihr aktuelles Passwort ein."}}
	case next != c.FormValue("password_repeat"):
		err = auth.FieldErrors{{Field: "password_repeat", Message: "Die beiden neuen Passwörter stimmen nicht überein. Bitte geben Sie das neue Passwort zweimal gleich ein."}}
	default:
		err = u.o.Auth.ChangePassword(c.UserContext(), uiMeta(c), MustPrincipal(c), c.FormValue("current_password"), next)
	}
	return u.accountDone(c, err, "password", "passwort-geaendert", nil)
}

func (u *UI) accountLogoutEverywhere(c *fiber.Ctx) error {
	n, err := u.o.Auth.EndAllSessions(c.UserContext(), MustPrincipal(c), true, RequestID(c))
	if err != nil {
		return err
	}
	notice := "andere-abgemeldet"
	if n == 0 {
		notice = "keine-anderen"
	}
	return c.Redirect("/konto?hinweis="+url.QueryEscape(notice), fiber.StatusSeeOther)
}

func (u *UI) accountEnd(c *fiber.Ctx) error {
	if c.FormValue("bestaetigung") != "ja" {
		return u.accountDone(c, auth.FieldErrors{{Field: "bestaetigung",
			Message: "Bitte bestätigen Sie mit dem Häkchen, dass Sie Ihr Konto beenden möchten."}}, "bestaetigung", "", nil)
	}
	sess, _, _ := SessionOf(c)
	if err := u.o.Auth.EndOwnAccount(c.UserContext(), uiMeta(c), sess); err != nil {
		return u.accountDone(c, err, "bestaetigung", "", nil)
	}
	ClearSessionCookie(c)
	return c.Redirect("/?hinweis=konto-beendet", fiber.StatusSeeOther)
}

// emailChangePage is where the link to a new e-mail address leads. The
// change happens only on the button's POST, so a mail scanner that opens
// links does not confirm anything.
func (u *UI) emailChangePage(c *fiber.Ctx) error {
	v, _, err := u.regView(c, "Neue E-Mail-Adresse bestätigen")
	if err != nil {
		return err
	}
	return u.render(c, fiber.StatusOK, "email_change", v)
}

func (u *UI) emailChangePost(c *fiber.Ctx) error {
	v, d, err := u.regView(c, "Neue E-Mail-Adresse bestätigen")
	if err != nil {
		return err
	}
	if err := u.o.Auth.ConfirmEmailChange(c.UserContext(), uiMeta(c), d.Token); err != nil {
		return u.formError(c, v, "email_change", err, "token")
	}
	d.Step = "done"
	return u.render(c, fiber.StatusOK, "email_change", v)
}
