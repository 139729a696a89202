package web

// The auditors' pages: event search with filters (time range, type, actor,
// subject, outcome), a results table with cursor paging, and a CSV export
// of the whole result. Auditors are read-only and see only their tenant;
// every search and every export is itself recorded as an audit event (by
// audit.AuditorService, which the export of the audit API uses as well).

import (
	"errors"
	"html/template"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"postbox/audit"
	"postbox/auth"
)

func (u *UI) mountAudit(app *fiber.App) {
	if u.o.Audit == nil {
		return
	}
	app.Get("/pruefung", RequireRole(auth.RoleAuditor), u.auditSearch)
}

const auditPageSize = 50

type auditForm struct {
	Von, Bis, Typ, Akteur, Objektart, Objekt, Ergebnis string
}

type auditData struct {
	Form     auditForm
	Searched bool
	Events   []audit.Event
	// Queries (url.Values.Encode) of the next page, the CSV export of the
	// audit API and the first page.
	Next, Export, Again template.URL
	First               bool
	Types               []string
	Kinds               []string
}

// knownEventTypes are offered as suggestions in the type field.
var knownEventTypes = []string{
	"auth.login", "auth.login.password", "auth.logout", "auth.locked", "auth.unlocked", "auth.stepup", "auth.password.changed",
	"auth.profile.changed", "auth.mobile.changed", "auth.device.added", "auth.device.requested", "auth.device.removed",
	"auth.consent.given", "auth.consent.revoked", "auth.account.ended", "auth.session.revoked", "auth.delivery.changed",
	"auth.invitation.created", "auth.invitation.resent", "auth.invitation.revoked",
	"intake.pin.issued", "intake.pin.login", "intake.pin.logout", "intake.upload.created", "intake.upload.completed",
	"intake.upload.rejected", "intake.upload.infected", "intake.upload.terminated", "intake.submitted", "intake.file.submitted",
	"intake.file.downloaded", "mailbox.thread.created", "mailbox.message.sent", "mailbox.thread.viewed", "mailbox.thread.closed",
	"mailbox.attachment.downloaded", "mailbox.upload.stored", "mailbox.exported", "vorgang.status.changed", "audit.query",
}

var subjectKinds = []string{"vorgang", "person", "account", "message", "thread", "attachment", "upload", "device", "session"}

// filterOf reads the form; field errors are German and name the field.
func auditFilterOf(c *fiber.Ctx, tenantID string) (audit.Filter, auditForm, formErrors) {
	f := audit.Filter{TenantID: tenantID}
	form := auditForm{Von: c.Query("von"), Bis: c.Query("bis"), Typ: strings.TrimSpace(c.Query("typ")), Akteur: strings.TrimSpace(c.Query("akteur")),
		Objektart: c.Query("objektart"), Objekt: strings.TrimSpace(c.Query("objekt")), Ergebnis: c.Query("ergebnis")}
	var errs formErrors
	day := func(field, v string) time.Time {
		if v == "" {
			return time.Time{}
		}
		t, err := time.ParseInLocation("2006-01-02", v, berlin)
		if err != nil {
			errs = append(errs, fieldError{field, "Bitte geben Sie das Datum als TT.MM.JJJJ ein."})
		}
		return t
	}
	f.From = day("von", form.Von)
	if to := day("bis", form.Bis); !to.IsZero() {
		f.To = to.AddDate(0, 0, 1) // "bis" includes that day
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.To.After(f.From) {
		errs = append(errs, fieldError{"bis", "Das Ende des Zeitraums darf nicht vor dem Anfang liegen."})
	}
	for _, fv := range []struct{ field, v string }{{"typ", form.Typ}, {"akteur", form.Akteur}, {"objekt", form.Objekt}} {
		if len(fv.v) > 100 {
			errs = append(errs, fieldError{fv.field, "Die Eingabe ist zu lang (höchstens 100 Zeichen)."})
		}
	}
	f.Type, f.ActorID, f.SubjectID = form.Typ, form.Akteur, form.Objekt
	if form.Objektart != "" {
		ok := false
		for _, k := range subjectKinds {
			ok = ok || k == form.Objektart
		}
		if !ok {
			errs = append(errs, fieldError{"objektart", "Bitte wählen Sie eine Art aus der Liste."})
		}
		f.SubjectType = form.Objektart
	}
	switch audit.Outcome(form.Ergebnis) {
	case "", audit.OutcomeSuccess, audit.OutcomeFailure, audit.OutcomeDenied:
		f.Outcome = audit.Outcome(form.Ergebnis)
	default:
		errs = append(errs, fieldError{"ergebnis", "Bitte wählen Sie ein Ergebnis aus der Liste."})
	}
	return f, form, errs
}

func (f auditForm) values() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"von": f.Von, "bis": f.Bis, "typ": f.Typ, "akteur": f.Akteur, "objektart": f.Objektart, "objekt": f.Objekt, "ergebnis": f.Ergebnis} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

// exportQuery is the query of the auditors' CSV export (the audit API)
// for the same filter: the times as RFC 3339, the rest as typed.
func exportQuery(f audit.Filter) string {
	q := url.Values{}
	if !f.From.IsZero() {
		q.Set("from", f.From.UTC().Format(time.RFC3339))
	}
	if !f.To.IsZero() {
		q.Set("to", f.To.UTC().Format(time.RFC3339))
	}
	for k, v := range map[string]string{"type": f.Type, "actor": f.ActorID, "subject_type": f.SubjectType, "subject_id": f.SubjectID, "outcome": string(f.Outcome)} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q.Encode()
}

// auditFields maps the audit service's filter names to the form's.
var auditFields = map[string]string{"type": "typ", "actor": "akteur", "subject_type": "objektart", "subject_id": "objekt", "outcome": "ergebnis", "to": "bis", "from": "von"}

func (u *UI) auditSearch(c *fiber.Ctx) error {
	p := MustPrincipal(c)
	v := u.baseView(c, "Ereignisse suchen")
	f, form, errs := auditFilterOf(c, p.TenantID)
	d := &auditData{Form: form, Types: knownEventTypes, Kinds: subjectKinds}
	v.Data = d
	if c.Query("suche") == "" {
		return u.render(c, fiber.StatusOK, "audit", v)
	}
	if len(errs) > 0 {
		v.Errors = errs
		return u.render(c, fiber.StatusUnprocessableEntity, "audit", v)
	}
	d.Searched, d.First = true, true
	if cur, err := audit.DecodeCursor(c.Query("nach")); err == nil {
		f.After, d.First = cur, false
	}
	f.Limit = auditPageSize
	// The service records this search as an audit.query event first.
	events, next, err := u.o.Audit.Page(AuditContext(c), f)
	var ie *audit.InputError
	switch {
	case errors.As(err, &ie):
		field := auditFields[ie.Field]
		if field == "" {
			field = "typ"
		}
		v.Errors = formErrors{{field, ie.Detail}}
		return u.render(c, fiber.StatusUnprocessableEntity, "audit", v)
	case errors.Is(err, audit.ErrInvalidFilter):
		v.Errors = formErrors{{"von", "Der Zeitraum ist ungültig. Bitte prüfen Sie Anfang und Ende."}}
		return u.render(c, fiber.StatusUnprocessableEntity, "audit", v)
	case errors.Is(err, audit.ErrNotFound):
		return fiber.ErrNotFound
	case err != nil:
		return err
	}
	d.Events, d.Export, d.Again = events, template.URL(exportQuery(f)), template.URL(form.values().Encode())
	if next != nil {
		q := form.values()
		q.Set("suche", "1")
		q.Set("nach", audit.EncodeCursor(next))
		d.Next = template.URL(q.Encode())
	}
	return u.render(c, fiber.StatusOK, "audit", v)
}
