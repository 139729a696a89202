package web

// Login pages: username and password, then the second factor (mTAN or
// authenticator app; at the first login also the Freischaltcode), the
// security question of a first login and a provider's consent. Each step is
// a plain form calling the auth service; the session cookie carries the
// unfinished login from step to step.

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"postbox/auth"
	"postbox/kasse"
)

func (u *UI) mountAuth(app *fiber.App) {
	if u.o.Auth == nil {
		return
	}
	app.Get("/anmelden", u.loginPage)
	app.Post("/anmelden", u.loginPost)
	app.Get("/anmelden/sicherheitscode", u.secondFactorPage)
	app.Post("/anmelden/sicherheitscode", u.secondFactorPost)
	app.Post("/anmelden/mtan", u.resendMTAN)
	app.Get("/anmelden/sicherheitsfrage", u.questionPage)
	app.Post("/anmelden/sicherheitsfrage", u.questionPost)
	app.Get("/anmelden/einwilligung", u.consentPage)
	app.Post("/anmelden/einwilligung", u.consentPost)
}

func uiMeta(c *fiber.Ctx) auth.Meta { return auth.Meta{ClientAddr: c.IP(), RequestID: RequestID(c)} }

// authMessage is the German message of an auth service error for a form,
// with the field it belongs to and the status of the page. ok is false for
// errors that are not the user's (they become the 500 page).
func authMessage(err error) (field, msg string, status int, ok bool) {
	var (
		young  *auth.TooYoungError
		unlock *auth.UnlockCodeError
	)
	switch {
	case errors.As(err, &unlock) && unlock.Voided:
		return "freischaltcode", "Der Freischaltcode wurde fünfmal falsch eingegeben und ist deshalb gesperrt. Bitte wenden Sie sich an Ihre Krankenkasse; " +
			"Sie erhalten dann einen Brief mit einem neuen Freischaltcode.", fiber.StatusLocked, true
	case errors.As(err, &unlock) && unlock.Expired:
		return "freischaltcode", "Ihr Freischaltcode ist abgelaufen: Er gilt nur eine begrenzte Zeit nach dem Versand des Briefes. " +
			"Bitte wenden Sie sich an Ihre Krankenkasse; Sie erhalten dann einen Brief mit einem neuen Freischaltcode.", fiber.StatusGone, true
	case errors.As(err, &unlock):
		return "freischaltcode", fmt.Sprintf("Der Freischaltcode ist nicht richtig. Bitte übernehmen Sie die 12 Zeichen genau aus dem Brief "+
			"(Bindestriche und Leerzeichen dürfen Sie mit eingeben). Noch %s, danach wird der Freischaltcode gesperrt.", tries(unlock.TriesLeft)), fiber.StatusBadRequest, true
	case errors.Is(err, auth.ErrLoginFailed):
		return "password", "Benutzername oder Passwort sind nicht richtig, oder der Zugang ist gesperrt. Bitte prüfen Sie Ihre Eingaben. " +
			"Nach fünf falschen Passwörtern in Folge wird der Zugang gesperrt; wenden Sie sich dann an Ihre Krankenkasse.", fiber.StatusUnauthorized, true
	case errors.Is(err, auth.ErrRateLimited):
		return "", "Aus Sicherheitsgründen sind gerade keine weiteren Versuche möglich. Bitte warten Sie 15 Minuten und versuchen Sie es dann erneut.",
			fiber.StatusTooManyRequests, true
	case errors.Is(err, auth.ErrUnlockCodeInvalid):
		return "freischaltcode", "Der Freischaltcode ist nicht richtig oder nicht mehr gültig. Bitte übernehmen Sie ihn genau aus dem Brief; " +
			"einen neuen erhalten Sie über Ihre Krankenkasse.", fiber.StatusBadRequest, true
	case errors.Is(err, auth.ErrCodeInvalid):
		return "code", "Der Sicherheitscode ist nicht richtig, abgelaufen oder wurde schon verwendet. Bitte geben Sie den aktuellen Code ein " +
			"oder fordern Sie eine neue mTAN an.", fiber.StatusBadRequest, true
	case errors.Is(err, auth.ErrStepUpRequired):
		return "code", "Bitte bestätigen Sie diese Änderung zuerst mit einem aktuellen Sicherheitscode (mTAN oder Authenticator-App).", fiber.StatusForbidden, true
	case errors.Is(err, auth.ErrEmailUnconfirmed):
		return "", "Bitte bestätigen Sie zuerst Ihre E-Mail-Adresse über den Link in unserer E-Mail. Danach erhalten Sie Ihren Freischaltcode per Post.",
			fiber.StatusForbidden, true
	case errors.Is(err, auth.ErrNoSecondFactor):
		return "", "Für Ihren Zugang ist weder eine bestätigte Mobilnummer noch eine Authenticator-App eingerichtet. Bitte wenden Sie sich an Ihre Krankenkasse.",
			fiber.StatusForbidden, true
	case errors.Is(err, auth.ErrSMSFailed):
		return "code", "Die SMS konnte gerade nicht gesendet werden. Bitte fordern Sie die mTAN in einigen Minuten erneut an.", fiber.StatusBadGateway, true
	case errors.Is(err, auth.ErrPasswordTooSoon):
		return "new_password", "Sie haben Ihr Passwort heute schon geändert. Eine weitere Änderung ist erst morgen möglich.", fiber.StatusConflict, true
	case errors.Is(err, auth.ErrLastFactor):
		return "", "Das letzte Gerät kann nicht entfernt werden, solange keine bestätigte Mobilnummer für die mTAN hinterlegt ist.", fiber.StatusConflict, true
	case errors.Is(err, auth.ErrTokenInvalid):
		return "", "Der Link oder Code ist nicht richtig, wurde schon verwendet oder ist abgelaufen.", fiber.StatusBadRequest, true
	case errors.As(err, &young):
		return "", "Eine Registrierung ist erst ab dem vollendeten 15. Lebensjahr möglich.", fiber.StatusUnprocessableEntity, true
	}
	return "", "", 0, false
}

// authErrors turns an auth error into form errors (field errors keep their
// field); ok is false for errors that are not the user's.
func authErrors(err error, fallbackField string) (formErrors, int, bool) {
	var fes auth.FieldErrors
	var fe *auth.FieldError
	if errors.As(err, &fes) {
		out := make(formErrors, 0, len(fes))
		for _, f := range fes {
			out = append(out, fieldError{f.Field, f.Message})
		}
		return out, fiber.StatusUnprocessableEntity, true
	}
	if errors.As(err, &fe) {
		return formErrors{{fe.Field, fe.Message}}, fiber.StatusUnprocessableEntity, true
	}
	field, msg, status, ok := authMessage(err)
	if !ok {
		return nil, 0, false
	}
	if field == "" {
		field = fallbackField
	}
	return formErrors{{field, msg}}, status, true
}

// tries is "1 Versuch" or "n Versuche".
func tries(n int) string {
	if n == 1 {
		return "1 Versuch"
	}
	return fmt.Sprintf("%d Versuche", n)
}

type loginData struct {
	Kassen   []kasse.Kasse
	Kasse    string
	Fixed    bool // the Kasse is known; no select
	Username string
	Weiter   string
}

func (u *UI) loginView(c *fiber.Ctx) (*view, *loginData, error) {
	v := u.baseView(c, "Anmelden")
	d := &loginData{Weiter: localPath(c.Query("weiter", c.FormValue("weiter")))}
	if d.Weiter == "/" {
		d.Weiter = ""
	}
	ks, err := u.o.Kassen.Kassen(c.UserContext())
	if err != nil {
		return nil, nil, err
	}
	d.Kassen = ks
	want := c.Query("kasse", c.FormValue("kasse"))
	for _, k := range ks {
		// One Kasse, or the one the link names (the Kasse's own portal
		// links to /anmelden?kasse=ID): no choice to make.
		if len(ks) == 1 || k.ID == want {
			d.Kasse, d.Fixed = k.ID, true
			v.KasseName, v.KasseID = k.Name, k.ID
		}
	}
	v.Data = d
	return v, d, nil
}

func (u *UI) loginPage(c *fiber.Ctx) error {
	if p, ok := PrincipalOf(c); ok {
		return c.Redirect(homeOf(p.Role), fiber.StatusSeeOther)
	}
	v, _, err := u.loginView(c)
	if err != nil {
		return err
	}
	return u.render(c, fiber.StatusOK, "login", v)
}

func (u *UI) loginPost(c *fiber.Ctx) error {
	v, d, err := u.loginView(c)
	if err != nil {
		return err
	}
	if k := c.FormValue("kasse"); k != "" {
		d.Kasse = k
	}
	d.Username = c.FormValue("username")
	var errs formErrors
	if len(d.Kassen) > 1 && d.Kasse == "" {
		errs = append(errs, fieldError{"kasse", "Bitte wählen Sie Ihre Krankenkasse."})
	}
	if strings.TrimSpace(d.Username) == "" {
		errs = append(errs, fieldError{"username", "Bitte geben Sie Ihren Benutzernamen ein."})
	}
	if c.FormValue("password") == "" {
		errs = append(errs, fieldError{"password", "Bitte geben Sie Ihr Passwort ein."})
	}
	if len(errs) > 0 {
		v.Errors = errs
		return u.render(c, fiber.StatusUnprocessableEntity, "login", v)
	}
	_, old, _ := SessionOf(c)
	res, err := u.o.Auth.Login(c.UserContext(), uiMeta(c), d.Kasse, d.Username, c.FormValue("password"), old)
	if err != nil {
		errs, status, ok := authErrors(err, "password")
		if !ok {
			return err
		}
		v.Errors = errs
		return u.render(c, status, "login", v)
	}
	return u.afterStep(c, res, d.Weiter)
}

// afterStep sets the cookie of the (new) session and sends the browser to
// the next step, or to the page it wanted.
func (u *UI) afterStep(c *fiber.Ctx, res auth.LoginResult, weiter string) error {
	if res.Token != "" {
		SetSessionCookie(c, res.Token)
	}
	q := url.Values{}
	if weiter != "" {
		q.Set("weiter", weiter)
	}
	switch res.Stage {
	case auth.StageSecondFactor, auth.StageFirstLogin:
		q.Set("verfahren", strings.Join(res.Methods, ","))
		if res.MTANSent {
			q.Set("sms", "1")
		}
		if res.SMSFailed {
			q.Set("sms", "0")
		}
		return c.Redirect("/anmelden/sicherheitscode?"+q.Encode(), fiber.StatusSeeOther)
	case auth.StageSecurityQuestion:
		return c.Redirect("/anmelden/sicherheitsfrage?"+q.Encode(), fiber.StatusSeeOther)
	case auth.StageConsent:
		return c.Redirect("/anmelden/einwilligung?"+q.Encode(), fiber.StatusSeeOther)
	}
	if weiter != "" {
		return c.Redirect(weiter, fiber.StatusSeeOther)
	}
	return c.Redirect(homeOf(res.Principal.Role), fiber.StatusSeeOther)
}

// homeOf is the first page of a role.
func homeOf(r auth.Role) string {
	if links := navFor(r, ""); len(links) > 0 {
		return links[0].Href
	}
	return "/"
}

// pendingStep returns the unfinished login of the request if it is in one
// of the stages; otherwise it has answered with a redirect to the login.
func (u *UI) pendingStep(c *fiber.Ctx, stages ...auth.Stage) (auth.Session, string, bool, error) {
	sess, token, ok := SessionOf(c)
	if ok {
		for _, st := range stages {
			if sess.Stage == st {
				return sess, token, true, nil
			}
		}
		if sess.Stage == auth.StageDone {
			return sess, token, false, c.Redirect(homeOf(sess.Role), fiber.StatusSeeOther)
		}
	}
	return sess, token, false, c.Redirect("/anmelden?hinweis=anmeldung-abgelaufen", fiber.StatusSeeOther)
}

type secondFactorData struct {
	First     bool
	MTAN      bool
	TOTP      bool
	Method    string
	SMS       string // "1" sent, "0" failed
	Weiter    string
	Resend    bool
	Verfahren string
}

func (u *UI) secondFactorView(c *fiber.Ctx, sess auth.Session) (*view, *secondFactorData) {
	v := u.baseView(c, "Sicherheitscode eingeben")
	u.setTenant(c, v, sess.TenantID)
	d := &secondFactorData{First: sess.Stage == auth.StageFirstLogin, Weiter: localPath(c.Query("weiter", c.FormValue("weiter"))),
		SMS: c.Query("sms"), Verfahren: c.Query("verfahren", c.FormValue("verfahren"))}
	if d.Weiter == "/" {
		d.Weiter = ""
	}
	for _, m := range strings.Split(d.Verfahren, ",") {
		switch m {
		case "mtan":
			d.MTAN = true
		case "totp":
			d.TOTP = true
		}
	}
	if !d.MTAN && !d.TOTP { // unknown (e.g. bookmarked): offer both, the service decides
		d.MTAN, d.TOTP = true, !d.First
	}
	d.Method = c.FormValue("method")
	if d.Method == "" {
		d.Method = "totp"
		if !d.TOTP {
			d.Method = "mtan"
		}
	}
	if d.First {
		v.Title = "Erstanmeldung: Freischaltcode und mTAN"
	}
	v.Data = d
	return v, d
}

func (u *UI) secondFactorPage(c *fiber.Ctx) error {
	sess, _, ok, err := u.pendingStep(c, auth.StageSecondFactor, auth.StageFirstLogin)
	if !ok {
		return err
	}
	v, _ := u.secondFactorView(c, sess)
	return u.render(c, fiber.StatusOK, "login_code", v)
}

func (u *UI) secondFactorPost(c *fiber.Ctx) error {
	sess, token, ok, err := u.pendingStep(c, auth.StageSecondFactor, auth.StageFirstLogin)
	if !ok {
		return err
	}
	v, d := u.secondFactorView(c, sess)
	code := strings.Join(strings.Fields(c.FormValue("code")), "")
	var errs formErrors
	if d.First && strings.TrimSpace(c.FormValue("freischaltcode")) == "" {
		errs = append(errs, fieldError{"freischaltcode", "Bitte geben Sie den Freischaltcode aus unserem Brief ein."})
	}
	if code == "" {
		errs = append(errs, fieldError{"code", "Bitte geben Sie den Sicherheitscode ein: die mTAN aus der SMS oder den 6-stelligen Code Ihrer Authenticator-App."})
	}
	if len(errs) > 0 {
		v.Errors = errs
		return u.render(c, fiber.StatusUnprocessableEntity, "login_code", v)
	}
	res, err := u.o.Auth.LoginSecondFactor(c.UserContext(), uiMeta(c), token, d.Method, code, c.FormValue("freischaltcode"))
	if errors.Is(err, auth.ErrNoSession) || errors.Is(err, auth.ErrWrongStage) {
		ClearSessionCookie(c)
		return c.Redirect("/anmelden?hinweis=anmeldung-abgelaufen", fiber.StatusSeeOther)
	}
	if err != nil {
		errs, status, ok := authErrors(err, "code")
		if !ok {
			return err
		}
		v.Errors = errs
		return u.render(c, status, "login_code", v)
	}
	return u.afterStep(c, res, d.Weiter)
}

func (u *UI) resendMTAN(c *fiber.Ctx) error {
	_, token, ok, err := u.pendingStep(c, auth.StageSecondFactor, auth.StageFirstLogin)
	if !ok {
		return err
	}
	q := url.Values{"verfahren": {c.FormValue("verfahren")}, "sms": {"1"}}
	if w := localPath(c.FormValue("weiter")); w != "/" {
		q.Set("weiter", w)
	}
	if _, err := u.o.Auth.ResendLoginMTAN(c.UserContext(), uiMeta(c), token); err != nil {
		if _, _, _, ok := authMessage(err); !ok && !errors.Is(err, auth.ErrNoSession) {
			return err
		}
		q.Set("sms", "0")
	}
	return c.Redirect("/anmelden/sicherheitscode?"+q.Encode(), fiber.StatusSeeOther)
}

type questionData struct {
	Questions []string
	Question  string
	Weiter    string
}

func (u *UI) questionPage(c *fiber.Ctx) error {
	sess, _, ok, err := u.pendingStep(c, auth.StageSecurityQuestion)
	if !ok {
		return err
	}
	v := u.baseView(c, "Sicherheitsfrage festlegen")
	u.setTenant(c, v, sess.TenantID)
	v.Data = questionData{Questions: auth.SecurityQuestions, Weiter: c.Query("weiter")}
	return u.render(c, fiber.StatusOK, "login_question", v)
}

func (u *UI) questionPost(c *fiber.Ctx) error {
	sess, token, ok, err := u.pendingStep(c, auth.StageSecurityQuestion)
	if !ok {
		return err
	}
	v := u.baseView(c, "Sicherheitsfrage festlegen")
	u.setTenant(c, v, sess.TenantID)
	d := questionData{Questions: auth.SecurityQuestions, Question: c.FormValue("question"), Weiter: localPath(c.FormValue("weiter"))}
	v.Data = d
	res, err := u.o.Auth.LoginSecurityQuestion(c.UserContext(), uiMeta(c), token, d.Question, c.FormValue("answer"))
	if err != nil {
		errs, status, ok := authErrors(err, "answer")
		if !ok {
			return err
		}
		v.Errors = errs
		return u.render(c, status, "login_question", v)
	}
	if d.Weiter == "/" {
		d.Weiter = ""
	}
	return u.afterStep(c, res, d.Weiter)
}

type consentData struct {
	Text    string
	Version string
	Weiter  string
}

func (u *UI) consentPage(c *fiber.Ctx) error {
	sess, _, ok, err := u.pendingStep(c, auth.StageConsent)
	if !ok {
		return err
	}
	v := u.baseView(c, "Einwilligung in die Datenverarbeitung")
	u.setTenant(c, v, sess.TenantID)
	v.Data = consentData{Text: auth.ConsentText, Version: auth.ConsentVersion, Weiter: c.Query("weiter")}
	return u.render(c, fiber.StatusOK, "login_consent", v)
}

func (u *UI) consentPost(c *fiber.Ctx) error {
	sess, token, ok, err := u.pendingStep(c, auth.StageConsent)
	if !ok {
		return err
	}
	v := u.baseView(c, "Einwilligung in die Datenverarbeitung")
	u.setTenant(c, v, sess.TenantID)
	d := consentData{Text: auth.ConsentText, Version: auth.ConsentVersion, Weiter: localPath(c.FormValue("weiter"))}
	v.Data = d
	if c.FormValue("zustimmung") != "ja" {
		v.Errors = formErrors{{"zustimmung", "Ohne Ihre Einwilligung können Sie das Portal nicht nutzen. Bitte setzen Sie das Häkchen, wenn Sie einwilligen."}}
		return u.render(c, fiber.StatusUnprocessableEntity, "login_consent", v)
	}
	res, err := u.o.Auth.LoginConsent(c.UserContext(), uiMeta(c), token, c.FormValue("version"))
	if err != nil {
		errs, status, ok := authErrors(err, "zustimmung")
		if !ok {
			return err
		}
		v.Errors = errs
		return u.render(c, status, "login_consent", v)
	}
	if d.Weiter == "/" {
		d.Weiter = ""
	}
	return u.afterStep(c, res, d.Weiter)
}
