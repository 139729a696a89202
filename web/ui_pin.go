package web

// Pages of the Einmal-PIN flow: PIN entry, the upload page (the one page
// that needs JavaScript: tus uploads with progress, pause and resume), and
// the receipt. The form of the upload page also works as a plain form: it
// saves the draft and submits without JavaScript.

import (
	"errors"
	"strings"

	"github.com/gofiber/fiber/v2"

	"postbox/audit"
	"postbox/intake"
	"postbox/kasse"
)

func (u *UI) mountPIN(app *fiber.App) {
	if u.o.PIN == nil {
		return
	}
	app.Get("/einmal-pin/:kasse", u.pinEntry)
	app.Post("/einmal-pin/:kasse", u.pinLogin)
	app.Get("/einmal-pin/:kasse/hochladen", u.pinUpload)
	app.Post("/einmal-pin/:kasse/hochladen", u.pinSave)
	app.Get("/einmal-pin/:kasse/eingangsbestaetigung", u.pinReceipt)
	app.Post("/einmal-pin/:kasse/abmelden", u.pinLogout)
}

// pinSession is the open PIN session of the request for the Kasse in the
// path, if any.
type pinSession struct {
	token string
	sess  intake.PINSession
}

func (u *UI) pinCookie() string { return PINCookieName(u.o.PIN.o.SecureCookies) }

func (u *UI) pinSessionOf(c *fiber.Ctx) (pinSession, bool, error) {
	token := c.Cookies(u.pinCookie())
	if token == "" {
		return pinSession{}, false, nil
	}
	sess, err := u.o.PIN.o.Service.Session(c.UserContext(), token)
	if errors.Is(err, intake.ErrPINSessionNotFound) {
		return pinSession{token: token}, false, nil
	}
	if err != nil {
		return pinSession{}, false, err
	}
	if sess.TenantID != c.Params("kasse") {
		return pinSession{}, false, nil
	}
	return pinSession{token: token, sess: sess}, true, nil
}

func (u *UI) pinActor(c *fiber.Ctx, ps pinSession) intake.Actor {
	return intake.Actor{Principal: ps.sess.Principal(), ClientHash: u.o.PIN.ClientHash(c), RequestID: RequestID(c)}
}

// pinView is a page of the PIN flow: the Kasse from the path, the PIN
// session's CSRF token and its logout button.
func (u *UI) pinView(c *fiber.Ctx, title string, ps *pinSession) (*view, kasse.Kasse, error) {
	v := u.baseView(c, title)
	k, err := u.o.Kassen.Kasse(c.UserContext(), c.Params("kasse"))
	if errors.Is(err, kasse.ErrNotFound) {
		return nil, k, fiber.ErrNotFound
	}
	if err != nil {
		return nil, k, err
	}
	v.KasseName, v.KasseID = k.Name, k.ID
	if ps != nil && ps.sess.IDHash != "" {
		v.CSRF = intake.CSRFToken(ps.token)
		v.Logout = "/einmal-pin/" + k.ID + "/abmelden"
		v.Who = "mit Einmal-PIN"
		v.Nav = nil
	}
	return v, k, nil
}

type pinEntryData struct {
	KVNR string
}

func (u *UI) pinEntry(c *fiber.Ctx) error {
	ps, ok, err := u.pinSessionOf(c)
	if err != nil {
		return err
	}
	if ok {
		return c.Redirect("/einmal-pin/"+ps.sess.TenantID+"/hochladen", fiber.StatusSeeOther)
	}
	v, _, err := u.pinView(c, "Unterlagen mit Einmal-PIN senden", nil)
	if err != nil {
		return err
	}
	v.Data = pinEntryData{}
	return u.render(c, fiber.StatusOK, "pin_entry", v)
}

// pinLogin checks KVNR and PIN. The refusals are the PIN service's German
// messages, shown as they are (wrong PIN with the tries left, locked,
// expired, used, eGK no longer valid, too many attempts).
func (u *UI) pinLogin(c *fiber.Ctx) error {
	v, k, err := u.pinView(c, "Unterlagen mit Einmal-PIN senden", nil)
	if err != nil {
		return err
	}
	kvnr := c.FormValue("kvnr")
	v.Data = pinEntryData{KVNR: kvnr}
	// A login posted from another site would plant the attacker's session
	// (the same rule as the JSON login).
	if !fromPortal(c, u.o.PIN.o.BaseURL) {
		v.Errors = formErrors{{Field: "kvnr", Message: pinForeignLogin}}
		return u.render(c, fiber.StatusForbidden, "pin_entry", v)
	}
	svc := u.o.PIN.o.Service
	res, err := svc.Login(c.UserContext(), intake.LoginRequest{TenantID: k.ID, KVNR: kvnr, PIN: c.FormValue("pin"),
		ClientHash: u.o.PIN.ClientHash(c), RequestID: RequestID(c)})
	var (
		ie *intake.InputError
		le *intake.LoginError
	)
	switch {
	case errors.As(err, &ie):
		v.Errors = errorsFrom(ie.Fields, "kvnr", "pin")
		return u.render(c, fiber.StatusUnprocessableEntity, "pin_entry", v)
	case errors.As(err, &le):
		status := fiber.StatusUnauthorized
		switch le.Reason {
		case intake.RefusedLocked:
			status = fiber.StatusLocked
		case intake.RefusedRateLimited:
			status = fiber.StatusTooManyRequests
		}
		v.Errors = formErrors{{Field: "pin", Message: le.Title() + ": " + le.Detail()}}
		return u.render(c, status, "pin_entry", v)
	case errors.Is(err, intake.ErrUnknownKasse):
		return fiber.ErrNotFound
	case err != nil:
		return err
	}
	if old := c.Cookies(u.pinCookie()); old != "" {
		_ = svc.Logout(c.UserContext(), intake.Actor{ClientHash: u.o.PIN.ClientHash(c), RequestID: RequestID(c)}, old)
	}
	u.o.PIN.setCookie(c, res.Token)
	return c.Redirect("/einmal-pin/"+k.ID+"/hochladen", fiber.StatusSeeOther)
}

// uploadData is the upload page: the draft as saved, the files so far and
// the Kasse's rules for files.
type uploadData struct {
	Draft     intake.Draft
	Files     []intake.DraftFile
	Requests  []intake.PINRequest
	CaseTypes []caseTypeOption
	Accept    string
	Types     string // "PDF, JPEG, …"
	MaxFile   int64
	MaxTotal  int64
	MaxFiles  int
	Limits    struct{ Subject, Message, Phone int }
}

type caseTypeOption struct {
	Value, Label string
	Selected     bool
}

func caseTypeOptions(selected audit.CaseType) []caseTypeOption {
	out := make([]caseTypeOption, 0, len(audit.CaseTypes))
	for _, ct := range audit.CaseTypes {
		out = append(out, caseTypeOption{Value: string(ct.Type), Label: ct.Label, Selected: ct.Type == selected})
	}
	return out
}

// fileTypes turns the Kasse's MIME types into the file input's accept list
// and a German enumeration.
func fileTypes(mimes []string) (accept, names string) {
	known := map[string]struct{ ext, name string }{
		"application/pdf": {".pdf", "PDF"},
		"image/jpeg":      {".jpg,.jpeg", "JPEG"},
		"image/png":       {".png", "PNG"},
		"image/tiff":      {".tif,.tiff", "TIFF"},
		"image/heif":      {".heic,.heif", "HEIC"}, // iPhone photos; detected as HEIF
	}
	var acc, nm []string
	for _, m := range mimes {
		if k, ok := known[m]; ok {
			acc, nm = append(acc, m, k.ext), append(nm, k.name)
		}
	}
	return strings.Join(acc, ","), strings.Join(nm, ", ")
}

func (u *UI) uploadData(k kasse.Kasse, dv intake.DraftView) uploadData {
	d := uploadData{Draft: dv.Draft, Files: dv.Files, Requests: dv.Requests, CaseTypes: caseTypeOptions(dv.Draft.CaseType),
		MaxFile: k.Settings.MaxFileBytes, MaxTotal: k.Settings.MaxSubmissionBytes, MaxFiles: k.Settings.MaxFilesPerUpload}
	d.Accept, d.Types = fileTypes(k.Settings.AllowedFileTypes)
	d.Limits.Subject, d.Limits.Message, d.Limits.Phone = intake.MaxSubject, intake.MaxMessage, intake.MaxPhone
	return d
}

var draftFieldOrder = []string{"dateien", "case_type", "subject", "message", "phone"}

func (u *UI) pinUpload(c *fiber.Ctx) error {
	ps, ok, err := u.pinSessionOf(c)
	if err != nil {
		return err
	}
	if !ok {
		return c.Redirect("/einmal-pin/"+c.Params("kasse")+"?hinweis=pin-sitzung", fiber.StatusSeeOther)
	}
	v, k, err := u.pinView(c, "Unterlagen hochladen", &ps)
	if err != nil {
		return err
	}
	dv, err := u.o.PIN.o.Service.Draft(c.UserContext(), u.pinActor(c, ps))
	if err != nil {
		return err
	}
	v.Data = u.uploadData(k, dv)
	v.Scripts = []string{"vendor/tus.min.js", "js/upload.js"}
	return u.render(c, fiber.StatusOK, "pin_upload", v)
}

// pinSave stores the form (the page without JavaScript, or the submit
// button with it) and, for "absenden", submits the draft.
func (u *UI) pinSave(c *fiber.Ctx) error {
	ps, ok, err := u.pinSessionOf(c)
	if err != nil {
		return err
	}
	if !ok {
		// A second click after a successful submission finds the session
		// ended: show the receipt of the first.
		if ps.token != "" && intake.CheckCSRF(ps.token, c.FormValue("_csrf")) {
			if _, err := u.o.PIN.o.Service.SubmittedReceipt(c.UserContext(), ps.token); err == nil {
				return c.Redirect("/einmal-pin/"+c.Params("kasse")+"/eingangsbestaetigung", fiber.StatusSeeOther)
			}
		}
		return c.Redirect("/einmal-pin/"+c.Params("kasse")+"?hinweis=pin-sitzung", fiber.StatusSeeOther)
	}
	if !intake.CheckCSRF(ps.token, c.FormValue("_csrf")) {
		return SendProblem(c, fiber.StatusForbidden, "csrf", "Anfrage abgelehnt",
			"Die Anfrage enthielt kein gültiges Sicherheitsmerkmal. Bitte laden Sie die Seite neu und versuchen Sie es erneut.")
	}
	v, k, err := u.pinView(c, "Unterlagen hochladen", &ps)
	if err != nil {
		return err
	}
	v.Scripts = []string{"vendor/tus.min.js", "js/upload.js"}
	svc, a := u.o.PIN.o.Service, u.pinActor(c, ps)
	in := intake.DraftInput{CaseType: c.FormValue("case_type"), Subject: c.FormValue("subject"), Message: c.FormValue("message"), Phone: c.FormValue("phone")}
	dv, err := svc.SaveDraft(c.UserContext(), a, in)
	var ie *intake.InputError
	if errors.As(err, &ie) {
		// Nothing was saved: show what was typed with the problems.
		dv, err = svc.Draft(c.UserContext(), a)
		if err != nil {
			return err
		}
		dv.Draft.CaseType, dv.Draft.Subject, dv.Draft.Message, dv.Draft.Phone = audit.CaseType(in.CaseType), in.Subject, in.Message, in.Phone
		v.Data = u.uploadData(k, dv)
		v.Errors = errorsFrom(ie.Fields, draftFieldOrder...)
		return u.render(c, fiber.StatusUnprocessableEntity, "pin_upload", v)
	}
	if err != nil {
		return err
	}
	if c.FormValue("aktion") != "absenden" {
		return c.Redirect("/einmal-pin/"+k.ID+"/hochladen?hinweis=entwurf-gespeichert", fiber.StatusSeeOther)
	}
	_, err = svc.Submit(c.UserContext(), a, dv.Draft.ID)
	var se *intake.SubmitError
	switch {
	case errors.As(err, &ie):
		v.Data = u.uploadData(k, dv)
		v.Errors = errorsFrom(ie.Fields, draftFieldOrder...)
		return u.render(c, fiber.StatusUnprocessableEntity, "pin_upload", v)
	case errors.As(err, &se):
		v.Data = u.uploadData(k, dv)
		v.Errors = append(formErrors{{Field: "dateien", Message: se.Detail}}, errorsFrom(dv.Problems, draftFieldOrder...)...)
		return u.render(c, fiber.StatusUnprocessableEntity, "pin_upload", v)
	case err != nil:
		return err
	}
	return c.Redirect("/einmal-pin/"+k.ID+"/eingangsbestaetigung", fiber.StatusSeeOther)
}

type receiptData struct {
	Receipt    intake.Receipt
	CaseType   string
	Status     string
	HasAccount bool
}

// pinReceipt shows the receipt of the submission that ended the session:
// the Vorgang number and each file with size and SHA-256.
func (u *UI) pinReceipt(c *fiber.Ctx) error {
	token := c.Cookies(u.pinCookie())
	if token == "" {
		return c.Redirect("/einmal-pin/"+c.Params("kasse")+"?hinweis=pin-sitzung", fiber.StatusSeeOther)
	}
	rec, err := u.o.PIN.o.Service.SubmittedReceipt(c.UserContext(), token)
	if errors.Is(err, intake.ErrPINSessionNotFound) {
		return c.Redirect("/einmal-pin/"+c.Params("kasse")+"/hochladen", fiber.StatusSeeOther)
	}
	if err != nil {
		return err
	}
	if rec.Vorgang.TenantID != c.Params("kasse") {
		return fiber.ErrNotFound
	}
	v, _, err := u.pinView(c, "Vielen Dank – Ihre Unterlagen sind eingegangen", nil)
	if err != nil {
		return err
	}
	v.Data = receiptData{Receipt: rec, CaseType: rec.Vorgang.Type.Label(), Status: rec.Vorgang.Status.Label()}
	return u.render(c, fiber.StatusOK, "pin_receipt", v)
}

func (u *UI) pinLogout(c *fiber.Ctx) error {
	ps, ok, err := u.pinSessionOf(c)
	if err != nil {
		return err
	}
	if ok {
		if !intake.CheckCSRF(ps.token, c.FormValue("_csrf")) {
			return SendProblem(c, fiber.StatusForbidden, "csrf", "Anfrage abgelehnt",
				"Die Anfrage enthielt kein gültiges Sicherheitsmerkmal. Bitte laden Sie die Seite neu und versuchen Sie es erneut.")
		}
		if err := u.o.PIN.o.Service.Logout(c.UserContext(), u.pinActor(c, ps), ps.token); err != nil {
			return err
		}
	}
	u.o.PIN.clearCookie(c)
	return c.Redirect("/einmal-pin/"+c.Params("kasse")+"?hinweis=pin-abgemeldet", fiber.StatusSeeOther)
}
