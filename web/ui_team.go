package web

// Caseworker pages besides the team inbox: issuing an Einmal-PIN with its
// letter, the Vorgänge with the status change form, and locking or
// unlocking an insured person's account. Insured persons' "Meine
// Vorgänge" are here too: the same service, a narrower view.

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"html/template"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"postbox/audit"
	"postbox/auth"
	"postbox/intake"
	"postbox/kasse"
)

// People finds insured persons for the caseworkers' pages.
type People interface {
	Person(ctx context.Context, tenantID, id string) (kasse.Person, error)
}

func (u *UI) mountTeam(app *fiber.App) {
	team := RequireRole(teamRoles...)
	if u.o.PIN != nil {
		app.Get("/team/einmal-pin", team, u.pinIssuePage)
		app.Post("/team/einmal-pin", team, u.pinIssuePost)
	}
	if u.o.Vorgaenge != nil {
		app.Get("/team/vorgaenge", team, u.teamVorgaenge)
		app.Get("/team/vorgaenge/:id", team, u.teamVorgang)
		app.Post("/team/vorgaenge/:id/status", team, u.teamVorgangStatus)
		insured := RequireRole(auth.RoleInsured)
		app.Get("/vorgaenge", insured, u.myVorgaenge)
		app.Get("/vorgaenge/:id", insured, u.myVorgang)
	}
	if u.o.Auth != nil {
		app.Get("/team/konten", team, u.accountLookup)
		app.Get("/team/konten/:id", team, u.accountPage)
		app.Post("/team/konten/:id/sperren", team, u.accountLock)
		app.Post("/team/konten/:id/entsperren", team, u.accountUnlock)
	}
}

type pinIssueData struct {
	KVNR, CaseType, Text string
	CaseTypes            []caseTypeOption
	MaxText              int
	// After a successful issue: the letter, offered as a download.
	Issued     bool
	LetterURL  template.URL
	LetterName string
	ValidUntil string
	Person     string
}

func (u *UI) pinIssueView(c *fiber.Ctx) (*view, *pinIssueData) {
	v := u.baseView(c, "Einmal-PIN ausstellen")
	d := &pinIssueData{CaseTypes: caseTypeOptions(""), MaxText: intake.MaxRequestText}
	v.Data = d
	return v, d
}

func (u *UI) pinIssuePage(c *fiber.Ctx) error {
	v, _ := u.pinIssueView(c)
	return u.render(c, fiber.StatusOK, "team_pin", v)
}

// pinIssuePost creates the PIN and shows its letter as a download on the
// answer page. The PIN exists only in that answer (it is stored as a keyed
// hash), so the letter is handed over right here and nowhere kept.
func (u *UI) pinIssuePost(c *fiber.Ctx) error {
	v, d := u.pinIssueView(c)
	d.KVNR, d.CaseType, d.Text = c.FormValue("kvnr"), c.FormValue("case_type"), c.FormValue("request_text")
	d.CaseTypes = caseTypeOptions(audit.CaseType(d.CaseType))
	p := MustPrincipal(c)
	issued, err := u.o.PIN.o.Service.Issue(c.UserContext(), intake.Actor{Principal: p, ClientHash: u.o.PIN.ClientHash(c), RequestID: RequestID(c)},
		intake.IssueRequest{KVNR: d.KVNR, CaseType: audit.CaseType(strings.TrimSpace(d.CaseType)), RequestText: d.Text})
	var ie *intake.InputError
	switch {
	case errors.As(err, &ie):
		v.Errors = errorsFrom(ie.Fields, "kvnr", "case_type", "request_text")
		return u.render(c, fiber.StatusUnprocessableEntity, "team_pin", v)
	case errors.Is(err, intake.ErrUnknownPerson):
		v.Errors = formErrors{{"kvnr", "Zu dieser Krankenversichertennummer gibt es bei Ihrer Krankenkasse keine versicherte Person. Bitte prüfen Sie die Nummer."}}
		return u.render(c, fiber.StatusUnprocessableEntity, "team_pin", v)
	case err != nil:
		return err
	}
	var pdf bytes.Buffer
	if err := intake.RenderLetter(&pdf, issued.Letter(u.o.PIN.o.BaseURL)); err != nil {
		return err
	}
	d.Issued = true
	// A data: address of our own PDF; html/template would refuse it as an
	// untrusted URL, which this one is not.
	d.LetterURL = template.URL("data:application/pdf;base64," + base64.StdEncoding.EncodeToString(pdf.Bytes()))
	d.LetterName = "Einmal-PIN-Brief " + issued.Record.CreatedAt.In(berlin).Format("2006-01-02") + ".pdf"
	d.ValidUntil = intake.LastValidDay(issued.Record.ExpiresAt)
	d.Person = issued.Person.GivenName + " " + issued.Person.FamilyName
	d.KVNR, d.Text = "", ""
	d.CaseTypes = caseTypeOptions("")
	v.Notice = "Die Einmal-PIN ist erstellt. Laden Sie jetzt den Brief herunter: Die PIN steht nur in diesem Brief und wird nirgends gespeichert."
	return u.render(c, fiber.StatusCreated, "team_pin", v)
}

// vorgangRow is a Vorgang in a list.
type vorgangRow struct {
	audit.Vorgang
	Href   string
	Person string
}

type vorgangListData struct {
	Rows     []vorgangRow
	Status   string
	Type     string
	Statuses []audit.Status
	Types    []caseTypeOption
	Next     template.URL // query of the next page (url.Values.Encode)
}

var allStatuses = []audit.Status{audit.StatusEingegangen, audit.StatusInBearbeitung, audit.StatusRueckfrage, audit.StatusEntschieden, audit.StatusAbgeschlossen}

func (u *UI) personName(c *fiber.Ctx, tenantID, id string) string {
	if u.o.People == nil || id == "" {
		return ""
	}
	p, err := u.o.People.Person(c.UserContext(), tenantID, id)
	if err != nil {
		return ""
	}
	return p.GivenName + " " + p.FamilyName + " (" + p.KVNR + ")"
}

func (u *UI) teamVorgaenge(c *fiber.Ctx) error {
	p := MustPrincipal(c)
	v := u.baseView(c, "Vorgänge")
	d := &vorgangListData{Status: c.Query("status"), Type: c.Query("art"), Statuses: allStatuses, Types: caseTypeOptions(audit.CaseType(c.Query("art")))}
	v.Data = d
	f := audit.VorgangFilter{Status: audit.Status(d.Status), Type: audit.CaseType(d.Type), Limit: 25}
	if cur, ok := decodeVorgangCursor(c.Query("nach")); ok {
		f.Before = &cur
	}
	list, err := u.o.Vorgaenge.List(c.UserContext(), p.TenantID, f)
	var ie *audit.InputError
	if errors.As(err, &ie) {
		field := map[string]string{"status": "status", "type": "art"}[ie.Field]
		v.Errors = formErrors{{field, ie.Detail}}
		return u.render(c, fiber.StatusUnprocessableEntity, "team_vorgaenge", v)
	}
	if err != nil {
		return err
	}
	for _, vg := range list {
		d.Rows = append(d.Rows, vorgangRow{Vorgang: vg, Href: "/team/vorgaenge/" + url.PathEscape(vg.ID), Person: u.personName(c, p.TenantID, vg.PersonID)})
	}
	if len(list) == f.Limit {
		q := url.Values{}
		if d.Status != "" {
			q.Set("status", d.Status)
		}
		if d.Type != "" {
			q.Set("art", d.Type)
		}
		last := list[len(list)-1]
		q.Set("nach", encodeVorgangCursor(audit.VorgangCursor{CreatedAt: last.CreatedAt, ID: last.ID}))
		d.Next = template.URL(q.Encode())
	}
	return u.render(c, fiber.StatusOK, "team_vorgaenge", v)
}

type vorgangData struct {
	Vorgang  audit.Vorgang
	Person   string
	Steps    []audit.StatusChange
	Next     []audit.Status
	To       string
	Reason   string
	TeamSide bool
}

func (u *UI) teamVorgangView(c *fiber.Ctx) (*view, *vorgangData, error) {
	p := MustPrincipal(c)
	vg, steps, err := u.o.Vorgaenge.WithTimeline(c.UserContext(), p.TenantID, c.Params("id"))
	if errors.Is(err, audit.ErrNotFound) {
		return nil, nil, fiber.ErrNotFound
	}
	if err != nil {
		return nil, nil, err
	}
	v := u.baseView(c, "Vorgang: "+vg.Title)
	d := &vorgangData{Vorgang: vg, Person: u.personName(c, p.TenantID, vg.PersonID), Steps: steps, Next: vg.Status.Next(), TeamSide: true}
	v.Data = d
	return v, d, nil
}

func (u *UI) teamVorgang(c *fiber.Ctx) error {
	v, _, err := u.teamVorgangView(c)
	if err != nil {
		return err
	}
	return u.render(c, fiber.StatusOK, "vorgang", v)
}

// teamVorgangStatus changes the status; the form names the status the
// caseworker saw, so a change made meanwhile by someone else is not
// overwritten unseen.
func (u *UI) teamVorgangStatus(c *fiber.Ctx) error {
	id := c.Params("id")
	_, err := u.o.Vorgaenge.ChangeStatus(AuditContext(c), audit.StatusChangeRequest{VorgangID: id,
		To: audit.Status(c.FormValue("status")), Reason: c.FormValue("reason"), From: audit.Status(c.FormValue("from"))})
	if err == nil {
		return c.Redirect("/team/vorgaenge/"+url.PathEscape(id)+"?hinweis=status-geaendert", fiber.StatusSeeOther)
	}
	if errors.Is(err, audit.ErrNotFound) {
		return fiber.ErrNotFound
	}
	var (
		ie *audit.InputError
		te *audit.TransitionError
		se *audit.StaleError
	)
	var errs formErrors
	status := fiber.StatusUnprocessableEntity
	switch {
	case errors.As(err, &ie):
		field := ie.Field
		if field == "from" {
			field = "status"
		}
		errs = formErrors{{field, ie.Detail}}
	case errors.As(err, &te):
		errs, status = formErrors{{"status", te.German()}}, fiber.StatusConflict
	case errors.As(err, &se):
		errs, status = formErrors{{"status", "Der Vorgang wurde inzwischen von jemand anderem auf „" + se.Current.Label() +
			"“ gesetzt. Bitte prüfen Sie den neuen Stand und wählen Sie dann erneut."}}, fiber.StatusConflict
	default:
		return err
	}
	v, d, verr := u.teamVorgangView(c)
	if verr != nil {
		return verr
	}
	d.To, d.Reason = c.FormValue("status"), c.FormValue("reason")
	v.Errors = errs
	return u.render(c, status, "vorgang", v)
}

func (u *UI) myVorgaenge(c *fiber.Ctx) error {
	p := MustPrincipal(c)
	list, err := u.o.Vorgaenge.OfPerson(c.UserContext(), p.TenantID, p.PersonID)
	if err != nil && !errors.Is(err, audit.ErrNotFound) {
		return err
	}
	v := u.baseView(c, "Meine Vorgänge")
	d := &vorgangListData{}
	for _, vg := range list {
		d.Rows = append(d.Rows, vorgangRow{Vorgang: vg, Href: "/vorgaenge/" + url.PathEscape(vg.ID)})
	}
	v.Data = d
	return u.render(c, fiber.StatusOK, "vorgaenge", v)
}

func (u *UI) myVorgang(c *fiber.Ctx) error {
	p := MustPrincipal(c)
	vg, steps, err := u.o.Vorgaenge.OfPersonWithTimeline(c.UserContext(), p.TenantID, p.PersonID, c.Params("id"))
	if errors.Is(err, audit.ErrNotFound) {
		return fiber.ErrNotFound
	}
	if err != nil {
		return err
	}
	v := u.baseView(c, "Vorgang: "+vg.Title)
	d := &vorgangData{Vorgang: vg}
	for _, s := range steps {
		d.Steps = append(d.Steps, audit.StatusChange{From: s.From, To: s.To, At: s.At})
	}
	v.Data = d
	return u.render(c, fiber.StatusOK, "vorgang", v)
}

type accountData struct {
	ID     string
	View   auth.AccountStatusView
	Status string
	Lookup string
}

func accountStatusLabel(s auth.AccountStatus, reason string) string {
	switch s {
	case auth.StatusActive:
		return "Aktiv"
	case auth.StatusLocked:
		if reason == auth.LockSuspicion {
			return "Gesperrt (Verdacht auf unbefugte Nutzung)"
		}
		return "Gesperrt (zu viele falsche Passwörter)"
	case auth.StatusPending:
		return "Registrierung nicht abgeschlossen"
	case auth.StatusInvited:
		return "Eingeladen"
	case auth.StatusEnded:
		return "Beendet"
	}
	return string(s)
}

// accountLookup asks for the account's id (the thread view links it).
func (u *UI) accountLookup(c *fiber.Ctx) error {
	if id := strings.TrimSpace(c.Query("konto")); id != "" {
		return c.Redirect("/team/konten/"+url.PathEscape(id), fiber.StatusSeeOther)
	}
	v := u.baseView(c, "Konten sperren und entsperren")
	v.Data = &accountData{}
	return u.render(c, fiber.StatusOK, "team_account", v)
}

func (u *UI) accountPage(c *fiber.Ctx) error {
	av, err := u.o.Auth.AccountStatusOf(c.UserContext(), MustPrincipal(c), c.Params("id"))
	if errors.Is(err, auth.ErrNotAllowed) {
		return fiber.ErrNotFound
	}
	if err != nil {
		return err
	}
	v := u.baseView(c, "Konto sperren oder entsperren")
	v.Data = &accountData{ID: av.ID, View: av, Status: accountStatusLabel(av.Status, av.LockReason)}
	return u.render(c, fiber.StatusOK, "team_account", v)
}

func (u *UI) accountLock(c *fiber.Ctx) error {
	return u.accountChange(c, u.o.Auth.LockOnSuspicion, "konto-gesperrt")
}

func (u *UI) accountUnlock(c *fiber.Ctx) error {
	return u.accountChange(c, u.o.Auth.Unlock, "konto-entsperrt")
}

func (u *UI) accountChange(c *fiber.Ctx, fn func(context.Context, auth.Meta, auth.Principal, string) error, notice string) error {
	id := c.Params("id")
	err := fn(c.UserContext(), uiMeta(c), MustPrincipal(c), id)
	if errors.Is(err, auth.ErrNotAllowed) {
		return fiber.ErrNotFound
	}
	if err != nil {
		errs, status, ok := authErrors(err, "status")
		if !ok {
			return err
		}
		av, aerr := u.o.Auth.AccountStatusOf(c.UserContext(), MustPrincipal(c), id)
		if aerr != nil {
			return aerr
		}
		v := u.baseView(c, "Konto sperren oder entsperren")
		v.Data = &accountData{ID: av.ID, View: av, Status: accountStatusLabel(av.Status, av.LockReason)}
		v.Errors = errs
		return u.render(c, status, "team_account", v)
	}
	return c.Redirect("/team/konten/"+url.PathEscape(id)+"?hinweis="+notice, fiber.StatusSeeOther)
}
