package web

// Postfach pages for both sides of a thread: insured persons (and provider
// users) see their Postfach, caseworkers their team inboxes. Replies and
// new messages are multipart forms whose files stream part by part into
// the Postfach's upload (nothing is held whole in memory); the CSRF token
// travels in the form action's query as well, so the session middleware
// does not have to parse the body to find it.

import (
	"errors"
	"html/template"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"postbox/auth"
	"postbox/intake"
	"postbox/mailbox"
)

var ownerRoles = []auth.Role{auth.RoleInsured, auth.RoleProviderAdmin, auth.RoleProviderUser}
var teamRoles = []auth.Role{auth.RoleCaseworker, auth.RoleTeamLead}

func (u *UI) mountPostfach(app *fiber.App) {
	if u.o.Mailbox == nil {
		return
	}
	owner := RequireRole(ownerRoles...)
	app.Get("/postfach", owner, u.postfachList)
	app.Get("/postfach/neu", owner, u.composePage)
	app.Post("/postfach/neu", owner, u.composePost)
	app.Get("/postfach/:id", owner, u.threadPage)
	app.Post("/postfach/:id/antwort", owner, u.replyPost)
	app.Post("/postfach/:id/ablage", owner, u.threadArchive)

	team := RequireRole(teamRoles...)
	app.Get("/team", team, u.teamInbox)
	app.Get("/team/nachrichten/:id", team, u.threadPage)
	app.Post("/team/nachrichten/:id/antwort", team, u.replyPost)
	app.Post("/team/nachrichten/:id/status", team, u.threadState)
	app.Post("/team/nachrichten/:id/uebernehmen", team, u.threadAssign)
}

func (u *UI) mailActor(c *fiber.Ctx) mailbox.Actor {
	return mailbox.Actor{Principal: MustPrincipal(c), RequestID: RequestID(c), ClientHash: u.o.ClientHash(c)}
}

// threadBase is where a thread of this viewer lives.
func threadBase(p auth.Principal) string {
	if p.Has(teamRoles...) {
		return "/team/nachrichten/"
	}
	return "/postfach/"
}

// mailErrors turns a Postfach error into form errors; ok is false for
// errors that are not the user's.
func mailErrors(err error) (formErrors, int, bool) {
	var ce *intake.ContentError
	if ie, ok := mailbox.IsInvalid(err); ok {
		field := ie.Field
		if field == "datei" {
			field = "anhaenge"
		}
		return formErrors{{field, ie.Detail}}, fiber.StatusUnprocessableEntity, true
	}
	switch {
	case errors.As(err, &ce):
		return formErrors{{"anhaenge", ce.Detail}}, fiber.StatusUnsupportedMediaType, true
	case errors.Is(err, mailbox.ErrClosed):
		return formErrors{{"text", "Diese Unterhaltung ist abgeschlossen. Bitte schreiben Sie eine neue Nachricht."}}, fiber.StatusConflict, true
	case errors.Is(err, mailbox.ErrNotAllowed):
		return formErrors{{"text", "Diese Aktion ist für Ihre Rolle nicht vorgesehen."}}, fiber.StatusForbidden, true
	}
	return nil, 0, false
}

type threadRow struct {
	mailbox.Thread
	Href string
}

type postfachListData struct {
	Threads  []threadRow
	Teams    []mailbox.Team
	TeamID   string
	State    string
	Query    string
	Archive  string
	Next     template.URL // query of the next page (url.Values.Encode); "" on the last
	TeamSide bool
}

func (u *UI) listThreads(c *fiber.Ctx, teamSide bool) (*postfachListData, error) {
	a := u.mailActor(c)
	d := &postfachListData{TeamSide: teamSide, State: c.Query("status"), Query: strings.TrimSpace(c.Query("suche")),
		TeamID: c.Query("team"), Archive: c.Query("ablage")}
	f := mailbox.Filter{State: d.State, Query: d.Query, TeamID: d.TeamID, Limit: 25}
	if d.State != mailbox.StateOpen && d.State != mailbox.StateClosed {
		f.State, d.State = "", ""
	}
	if d.Archive == "archiv" {
		f.Archive = mailbox.ArchiveArchived
	}
	if cur := c.Query("nach"); cur != "" {
		if cc, err := decodeCursor(cur); err == nil {
			f.Before = &cc
		}
	}
	if teamSide {
		teams, err := u.o.Mailbox.MyTeams(c.UserContext(), a)
		if err != nil {
			return nil, err
		}
		d.Teams = teams
	}
	threads, err := u.o.Mailbox.List(c.UserContext(), a, f)
	if err != nil {
		return d, err
	}
	base := threadBase(a.Principal)
	for _, th := range threads {
		d.Threads = append(d.Threads, threadRow{Thread: th, Href: base + url.PathEscape(th.ID)})
	}
	if len(threads) == f.Limit {
		q := url.Values{}
		for k, v := range map[string]string{"status": d.State, "suche": d.Query, "team": d.TeamID, "ablage": d.Archive} {
			if v != "" {
				q.Set(k, v)
			}
		}
		q.Set("nach", encodeCursor(threads[len(threads)-1]))
		d.Next = template.URL(q.Encode())
	}
	return d, nil
}

func (u *UI) renderList(c *fiber.Ctx, teamSide bool, title string) error {
	v := u.baseView(c, title)
	d, err := u.listThreads(c, teamSide)
	if errs, status, ok := mailErrors(err); ok {
		v.Errors, v.Data = errs, d
		return u.render(c, status, "postfach_list", v)
	}
	if err != nil {
		return err
	}
	v.Data = d
	return u.render(c, fiber.StatusOK, "postfach_list", v)
}

func (u *UI) postfachList(c *fiber.Ctx) error { return u.renderList(c, false, "Postfach") }
func (u *UI) teamInbox(c *fiber.Ctx) error    { return u.renderList(c, true, "Team-Postfach") }

type messageView struct {
	mailbox.Message
	Mine   bool   // written by the viewer's side
	Sender string // "Sie", "Ihre Krankenkasse", …
}

type threadData struct {
	Thread    mailbox.Thread
	Messages  []messageView
	Action    string // reply form action (with the CSRF token in the query)
	StateURL  string
	AssignURL string
	TeamSide  bool
	Text      string
	Pending   []mailbox.Upload // files already stored for the reply that failed
	MaxFiles  int
	OwnerAcct string // an inbound message's sender: the owner's account (staff link)
	Kinds     map[mailbox.Kind]string
	// LegalHoldURL is the legal hold toggle's action; team leads only.
	LegalHoldURL string
}

func (u *UI) threadData(c *fiber.Ctx, th mailbox.Thread, msgs []mailbox.Message) *threadData {
	p := MustPrincipal(c)
	team := p.Has(teamRoles...)
	base := threadBase(p) + url.PathEscape(th.ID)
	csrf := url.QueryEscape(CSRFTokenOf(c))
	d := &threadData{Thread: th, TeamSide: team, Action: base + "/antwort?_csrf=" + csrf, StateURL: base + "/status", AssignURL: base + "/uebernehmen",
		MaxFiles: u.o.MailboxMaxFiles}
	if team && p.Has(auth.RoleTeamLead) {
		d.LegalHoldURL = base + "/aufbewahrung"
	}
	for _, m := range msgs {
		mv := messageView{Message: m, Mine: (m.Direction == mailbox.Inbound) != team}
		switch {
		case m.Kind == mailbox.KindReceipt:
			mv.Sender = "Eingangsbestätigung"
		case m.Direction == mailbox.Outbound && team:
			mv.Sender = "Team " + th.TeamName
		case m.Direction == mailbox.Outbound:
			mv.Sender = "Ihre Krankenkasse (" + th.TeamName + ")"
		case team:
			mv.Sender = "Versicherte Person"
			if d.OwnerAcct == "" && m.SenderAccountID != "" {
				d.OwnerAcct = m.SenderAccountID
			}
		default:
			mv.Sender = "Sie"
		}
		d.Messages = append(d.Messages, mv)
	}
	return d
}

func (u *UI) threadPage(c *fiber.Ctx) error {
	th, msgs, err := u.o.Mailbox.Open(c.UserContext(), u.mailActor(c), c.Params("id"))
	if errors.Is(err, mailbox.ErrNotFound) {
		return fiber.ErrNotFound
	}
	if err != nil {
		return err
	}
	v := u.baseView(c, th.Subject)
	v.Data = u.threadData(c, th, msgs)
	return u.render(c, fiber.StatusOK, "postfach_thread", v)
}

// multipartForm reads a multipart form as a stream: text fields (at most
// maxField bytes each) into the map, every non-empty file part to onFile
// in the order the browser sent them.
func multipartForm(c *fiber.Ctx, maxField int64, onFile func(name, fileName string, r io.Reader) error) (map[string][]string, error) {
	mt, params, err := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
	if err != nil || mt != fiber.MIMEMultipartForm || params["boundary"] == "" {
		// A plain urlencoded form (no files chosen, or an old client).
		fields := map[string][]string{}
		c.Request().PostArgs().VisitAll(func(k, v []byte) { fields[string(k)] = append(fields[string(k)], string(v)) })
		return fields, nil
	}
	mr := multipart.NewReader(requestBody(c), params["boundary"])
	fields := map[string][]string{}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return fields, nil
		}
		if err != nil {
			c.Context().SetConnectionClose()
			return fields, errBadForm
		}
		if part.FileName() == "" && part.FormName() != "" {
			raw, err := io.ReadAll(io.LimitReader(part, maxField+1))
			part.Close()
			if err != nil || int64(len(raw)) > maxField {
				c.Context().SetConnectionClose()
				return fields, errBadForm
			}
			fields[part.FormName()] = append(fields[part.FormName()], string(raw))
			continue
		}
		if part.FileName() != "" {
			err := onFile(part.FormName(), part.FileName(), part)
			part.Close()
			if err != nil {
				c.Context().SetConnectionClose() // the rest of the body is not read
				return fields, err
			}
			continue
		}
		part.Close()
	}
}

var errBadForm = errors.New("ui: form could not be read")

func first(fields map[string][]string, name string) string {
	if v := fields[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// postedMessage is a message form as sent: text fields, the uploads stored
// on the way (new files and the ones kept from a failed try).
type postedMessage struct {
	fields  map[string][]string
	uploads []mailbox.Upload
	err     error // an upload refused (type, size) or the form unreadable
}

// readMessageForm stores every chosen file as a Postfach upload while the
// form streams in. Files kept from an earlier, failed try come back as
// hidden "anhang" fields with their upload ids (they belong to the same
// account, which the Postfach checks when they are attached).
func (u *UI) readMessageForm(c *fiber.Ctx) postedMessage {
	a := u.mailActor(c)
	var pm postedMessage
	fields, err := multipartForm(c, 64<<10, func(name, fileName string, r io.Reader) error {
		if name != "anhaenge" {
			_, err := io.Copy(io.Discard, r)
			return err
		}
		up, err := u.o.Mailbox.Upload(c.UserContext(), a, fileName, r)
		if err != nil {
			return err
		}
		pm.uploads = append(pm.uploads, up)
		return nil
	})
	pm.fields, pm.err = fields, err
	for _, id := range fields["anhang"] {
		if id != "" {
			pm.uploads = append(pm.uploads, mailbox.Upload{ID: id, FileName: keptName(fields, id)})
		}
	}
	return pm
}

// keptName is the shown name of a kept upload ("anhang-name-<id>").
func keptName(fields map[string][]string, id string) string {
	n := first(fields, "anhang-name-"+id)
	if n == "" || utf8.RuneCountInString(n) > 200 {
		return "Anlage"
	}
	return n
}

func uploadIDs(ups []mailbox.Upload) []string {
	ids := make([]string, len(ups))
	for i, up := range ups {
		ids[i] = up.ID
	}
	return ids
}

func (u *UI) replyPost(c *fiber.Ctx) error {
	pm := u.readMessageForm(c)
	a := u.mailActor(c)
	id := c.Params("id")
	text := first(pm.fields, "text")
	err := pm.err
	if err == nil {
		_, err = u.o.Mailbox.Reply(c.UserContext(), a, id, text, uploadIDs(pm.uploads))
	}
	if err == nil {
		return c.Redirect(threadBase(a.Principal)+url.PathEscape(id)+"?hinweis=gesendet#nachrichten", fiber.StatusSeeOther)
	}
	if errors.Is(err, mailbox.ErrNotFound) {
		return fiber.ErrNotFound
	}
	errs, status, ok := mailErrors(err)
	if errors.Is(err, errBadForm) {
		errs, status, ok = formErrors{{"text", "Das Formular konnte nicht gelesen werden. Bitte senden Sie es erneut."}}, fiber.StatusBadRequest, true
	}
	if !ok {
		return err
	}
	// Show the thread again with what was typed and the files kept.
	th, msgs, oerr := u.o.Mailbox.Open(c.UserContext(), a, id)
	if errors.Is(oerr, mailbox.ErrNotFound) {
		return fiber.ErrNotFound
	}
	if oerr != nil {
		return oerr
	}
	v := u.baseView(c, th.Subject)
	d := u.threadData(c, th, msgs)
	d.Text, d.Pending = text, pm.uploads
	v.Data, v.Errors = d, errs
	return u.render(c, status, "postfach_thread", v)
}

func (u *UI) threadState(c *fiber.Ctx) error {
	a := u.mailActor(c)
	id := c.Params("id")
	state := c.FormValue("status")
	err := u.o.Mailbox.SetState(c.UserContext(), a, id, state)
	if errors.Is(err, mailbox.ErrNotFound) {
		return fiber.ErrNotFound
	}
	if err != nil {
		if _, _, ok := mailErrors(err); !ok {
			return err
		}
		return c.Redirect(threadBase(a.Principal)+url.PathEscape(id)+"?hinweis=nicht-moeglich", fiber.StatusSeeOther)
	}
	notice := "abgeschlossen"
	if state == mailbox.StateOpen {
		notice = "wieder-geoeffnet"
	}
	return c.Redirect(threadBase(a.Principal)+url.PathEscape(id)+"?hinweis="+notice, fiber.StatusSeeOther)
}

// threadArchive moves a thread into the owner's archive or back.
func (u *UI) threadArchive(c *fiber.Ctx) error {
	a := u.mailActor(c)
	id := c.Params("id")
	archive := c.FormValue("archiv") == "ja"
	err := u.o.Mailbox.Archive(c.UserContext(), a, id, archive)
	if errors.Is(err, mailbox.ErrNotFound) {
		return fiber.ErrNotFound
	}
	if err != nil {
		return err
	}
	if archive {
		return c.Redirect("/postfach?hinweis=archiviert", fiber.StatusSeeOther)
	}
	return c.Redirect("/postfach/"+url.PathEscape(id)+"?hinweis=zurueckgelegt", fiber.StatusSeeOther)
}

func (u *UI) threadAssign(c *fiber.Ctx) error {
	a := u.mailActor(c)
	id := c.Params("id")
	err := u.o.Mailbox.Assign(c.UserContext(), a, id, a.AccountID)
	if errors.Is(err, mailbox.ErrNotFound) {
		return fiber.ErrNotFound
	}
	if err != nil {
		if _, _, ok := mailErrors(err); !ok {
			return err
		}
		return c.Redirect(threadBase(a.Principal)+url.PathEscape(id)+"?hinweis=nicht-moeglich", fiber.StatusSeeOther)
	}
	return c.Redirect(threadBase(a.Principal)+url.PathEscape(id)+"?hinweis=uebernommen", fiber.StatusSeeOther)
}

type composeData struct {
	Topics   []mailbox.Team
	Topic    string
	Subject  string
	Text     string
	Pending  []mailbox.Upload
	Action   string
	MaxFiles int
}

func (u *UI) composeView(c *fiber.Ctx) (*view, *composeData, error) {
	v := u.baseView(c, "Neue Nachricht")
	topics, err := u.o.Mailbox.Topics(c.UserContext(), u.mailActor(c))
	if err != nil {
		return nil, nil, err
	}
	d := &composeData{Topics: topics, Action: "/postfach/neu?_csrf=" + url.QueryEscape(CSRFTokenOf(c)), MaxFiles: u.o.MailboxMaxFiles}
	v.Data = d
	return v, d, nil
}

func (u *UI) composePage(c *fiber.Ctx) error {
	v, d, err := u.composeView(c)
	if err != nil {
		return err
	}
	d.Topic = c.Query("thema")
	return u.render(c, fiber.StatusOK, "postfach_compose", v)
}

func (u *UI) composePost(c *fiber.Ctx) error {
	pm := u.readMessageForm(c)
	v, d, err := u.composeView(c)
	if err != nil {
		return err
	}
	d.Topic, d.Subject, d.Text, d.Pending = first(pm.fields, "thema"), first(pm.fields, "betreff"), first(pm.fields, "text"), pm.uploads
	err = pm.err
	if err == nil && d.Topic == "" {
		v.Errors = formErrors{{"thema", "Bitte wählen Sie ein Thema, damit Ihre Nachricht beim richtigen Team ankommt."}}
		return u.render(c, fiber.StatusUnprocessableEntity, "postfach_compose", v)
	}
	var th mailbox.Thread
	if err == nil {
		th, _, err = u.o.Mailbox.StartThread(c.UserContext(), u.mailActor(c), mailbox.NewThread{Topic: d.Topic, Subject: d.Subject, Body: d.Text, Uploads: uploadIDs(pm.uploads)})
	}
	if err == nil {
		return c.Redirect("/postfach/"+url.PathEscape(th.ID)+"?hinweis=gesendet", fiber.StatusSeeOther)
	}
	errs, status, ok := mailErrors(err)
	if errors.Is(err, errBadForm) {
		errs, status, ok = formErrors{{"text", "Das Formular konnte nicht gelesen werden. Bitte senden Sie es erneut."}}, fiber.StatusBadRequest, true
	}
	if errors.Is(err, mailbox.ErrNotFound) { // unknown topic
		errs, status, ok = formErrors{{"thema", "Bitte wählen Sie ein Thema aus der Liste."}}, fiber.StatusUnprocessableEntity, true
	}
	if !ok {
		return err
	}
	v.Errors = errs
	return u.render(c, status, "postfach_compose", v)
}

// shortDate is the list's date: the time for today, else the date.
func shortDate(t time.Time) string {
	now := time.Now().In(berlin)
	lt := t.In(berlin)
	if lt.Year() == now.Year() && lt.YearDay() == now.YearDay() {
		return lt.Format("15:04") + " Uhr"
	}
	return lt.Format("02.01.2006")
}
