package web

// Caseworker pages around the team inbox: writing a new thread into an
// insured person's Postfach (found by KVNR), the notifications the
// notifier gave up on with "send again", and the legal hold toggle on a
// thread (team leads only).

import (
	"context"
	"errors"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"postbox/auth"
	"postbox/kasse"
	"postbox/mailbox"
	"postbox/notifier"
)

// personFinder finds an insured person of one tenant by KVNR; the store
// behind UIOptions.People implements it.
type personFinder interface {
	PersonByKVNR(ctx context.Context, tenantID, kvnr string) (kasse.Person, error)
}

func init() {
	notices["erneut-gesendet"] = "Die Benachrichtigung wird erneut gesendet (an die aktuell hinterlegte E-Mail-Adresse)."
	notices["aufbewahrung-an"] = "Die Unterhaltung wird wegen rechtlicher Gründe aufbewahrt und nicht automatisch gelöscht."
	notices["aufbewahrung-aus"] = "Die Aufbewahrung wegen rechtlicher Gründe ist beendet; es gelten wieder die normalen Löschfristen."
}

func (u *UI) mountTeamMail(app *fiber.App) {
	if u.o.Mailbox == nil {
		return
	}
	team := RequireRole(teamRoles...)
	if _, ok := u.o.People.(personFinder); ok {
		app.Get("/team/neue-nachricht", team, u.teamComposePage)
		app.Post("/team/neue-nachricht", team, u.teamComposePost)
	}
	app.Get("/team/benachrichtigungen", team, u.failedPage)
	app.Post("/team/benachrichtigungen/:id/erneut", team, u.failedRequeue)
	app.Post("/team/nachrichten/:id/aufbewahrung", RequireRole(auth.RoleTeamLead), u.legalHoldPost)
}

type teamComposeData struct {
	Teams    []mailbox.Team
	KVNR     string
	Topic    string
	Subject  string
	Text     string
	Pending  []mailbox.Upload
	Action   string
	MaxFiles int
}

func (u *UI) teamComposeView(c *fiber.Ctx) (*view, *teamComposeData, error) {
	v := u.baseView(c, "Neue Nachricht an eine versicherte Person")
	teams, err := u.o.Mailbox.MyTeams(c.UserContext(), u.mailActor(c))
	if err != nil {
		return nil, nil, err
	}
	d := &teamComposeData{Teams: teams, Action: "/team/neue-nachricht?_csrf=" + url.QueryEscape(CSRFTokenOf(c)), MaxFiles: u.o.MailboxMaxFiles}
	if len(teams) == 1 {
		d.Topic = teams[0].Topic
	}
	v.Data = d
	return v, d, nil
}

func (u *UI) teamComposePage(c *fiber.Ctx) error {
	v, _, err := u.teamComposeView(c)
	if err != nil {
		return err
	}
	return u.render(c, fiber.StatusOK, "team_compose", v)
}

func (u *UI) teamComposePost(c *fiber.Ctx) error {
	pm := u.readMessageForm(c)
	v, d, err := u.teamComposeView(c)
	if err != nil {
		return err
	}
	d.KVNR = strings.ToUpper(strings.Join(strings.Fields(first(pm.fields, "kvnr")), ""))
	d.Topic, d.Subject, d.Text, d.Pending = first(pm.fields, "thema"), first(pm.fields, "betreff"), first(pm.fields, "text"), pm.uploads
	err = pm.err
	if err == nil {
		var errs formErrors
		if d.KVNR == "" {
			errs = append(errs, fieldError{"kvnr", "Bitte geben Sie die Krankenversichertennummer der Person ein (ein Buchstabe und neun Ziffern)."})
		} else if kasse.ValidateKVNR(d.KVNR) != nil {
			errs = append(errs, fieldError{"kvnr", "Die Krankenversichertennummer ist nicht gültig. Sie besteht aus einem Buchstaben und neun Ziffern; bitte prüfen Sie die Eingabe."})
		}
		if d.Topic == "" {
			errs = append(errs, fieldError{"thema", "Bitte wählen Sie, aus welchem Ihrer Teams die Nachricht kommt."})
		}
		if len(errs) > 0 {
			v.Errors = errs
			return u.render(c, fiber.StatusUnprocessableEntity, "team_compose", v)
		}
	}
	p := MustPrincipal(c)
	var person kasse.Person
	if err == nil {
		person, err = u.o.People.(personFinder).PersonByKVNR(c.UserContext(), p.TenantID, d.KVNR)
		if errors.Is(err, kasse.ErrNotFound) {
			v.Errors = formErrors{{"kvnr", "Zu dieser Krankenversichertennummer gibt es bei Ihrer Krankenkasse keine versicherte Person. Bitte prüfen Sie die Nummer."}}
			return u.render(c, fiber.StatusUnprocessableEntity, "team_compose", v)
		}
	}
	var th mailbox.Thread
	if err == nil {
		th, _, err = u.o.Mailbox.StartThread(c.UserContext(), u.mailActor(c), mailbox.NewThread{Topic: d.Topic, Subject: d.Subject, Body: d.Text,
			Uploads: uploadIDs(pm.uploads), OwnerKind: mailbox.OwnerPerson, OwnerID: person.ID})
	}
	if err == nil {
		return c.Redirect("/team/nachrichten/"+url.PathEscape(th.ID)+"?hinweis=gesendet", fiber.StatusSeeOther)
	}
	errs, status, ok := mailErrors(err)
	if errors.Is(err, errBadForm) {
		errs, status, ok = formErrors{{"text", "Das Formular konnte nicht gelesen werden. Bitte senden Sie es erneut."}}, fiber.StatusBadRequest, true
	}
	if errors.Is(err, mailbox.ErrNotFound) { // the person vanished meanwhile
		errs, status, ok = formErrors{{"kvnr", "Zu dieser Krankenversichertennummer gibt es bei Ihrer Krankenkasse keine versicherte Person. Bitte prüfen Sie die Nummer."}}, fiber.StatusUnprocessableEntity, true
	}
	if !ok {
		return err
	}
	v.Errors = errs
	return u.render(c, status, "team_compose", v)
}

type failedRow struct {
	mailbox.FailedNotification
	Person   string
	Kind     string
	FailedOn string
	Action   string
}

type failedData struct {
	Rows []failedRow
}

func mailKindLabel(t string) string {
	switch notifier.Template(t) {
	case notifier.TemplateNewMessage:
		return "Hinweis auf neue Nachricht"
	case notifier.TemplateStatusChanged:
		return "Hinweis auf geänderten Vorgangsstatus"
	}
	return "Benachrichtigung"
}

func (u *UI) failedPage(c *fiber.Ctx) error {
	a := u.mailActor(c)
	list, err := u.o.Mailbox.FailedNotifications(c.UserContext(), a)
	if errors.Is(err, mailbox.ErrNotAllowed) {
		return fiber.ErrNotFound
	}
	if err != nil {
		return err
	}
	v := u.baseView(c, "Nicht zugestellte Benachrichtigungen")
	d := &failedData{}
	for _, f := range list {
		at := f.FailedAt
		if at.IsZero() {
			at = f.CreatedAt
		}
		d.Rows = append(d.Rows, failedRow{FailedNotification: f, Person: u.personName(c, a.TenantID, f.PersonID), Kind: mailKindLabel(f.Template),
			FailedOn: at.In(berlin).Format("02.01.2006, 15:04") + " Uhr", Action: "/team/benachrichtigungen/" + url.PathEscape(f.ID) + "/erneut"})
	}
	v.Data = d
	return u.render(c, fiber.StatusOK, "team_failed", v)
}

func (u *UI) failedRequeue(c *fiber.Ctx) error {
	err := u.o.Mailbox.RequeueNotification(c.UserContext(), u.mailActor(c), c.Params("id"))
	if errors.Is(err, mailbox.ErrNotFound) || errors.Is(err, mailbox.ErrNotAllowed) {
		return fiber.ErrNotFound
	}
	if err != nil {
		return err
	}
	return c.Redirect("/team/benachrichtigungen?hinweis=erneut-gesendet", fiber.StatusSeeOther)
}

// legalHoldPost sets or ends the legal hold; the route admits team leads
// only, and the service checks the thread is in one of their teams.
func (u *UI) legalHoldPost(c *fiber.Ctx) error {
	id := c.Params("id")
	hold := c.FormValue("aufbewahren") == "ja"
	err := u.o.Mailbox.SetLegalHold(c.UserContext(), u.mailActor(c), id, hold)
	if errors.Is(err, mailbox.ErrNotFound) || errors.Is(err, mailbox.ErrNotAllowed) {
		return fiber.ErrNotFound
	}
	if err != nil {
		return err
	}
	notice := "aufbewahrung-aus"
	if hold {
		notice = "aufbewahrung-an"
	}
	return c.Redirect("/team/nachrichten/"+url.PathEscape(id)+"?hinweis="+notice, fiber.StatusSeeOther)
}
