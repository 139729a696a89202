package web

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"postbox/auth"
	"postbox/intake"
	"postbox/mailbox"
)

// PostfachPath is where the Postfach API is mounted.
const PostfachPath = "/api/postfach"

// PostfachOptions configure MountPostfach.
type PostfachOptions struct {
	// Before run ahead of every Postfach route (tests set the principal
	// here; in the service the session middleware of UseSessions already
	// ran for every route).
	Before []fiber.Handler
	// ClientHash returns the keyed hash of the client address for audit
	// events; nil leaves it empty.
	ClientHash func(c *fiber.Ctx) string
	Logger     *slog.Logger
}

// postfachRoles may use the Postfach at all; what each sees is decided by
// mailbox.ViewerOf. Any other role gets 404 from RequireRole.
var postfachRoles = []auth.Role{auth.RoleInsured, auth.RoleCaseworker, auth.RoleTeamLead, auth.RoleProviderAdmin, auth.RoleProviderUser}

// maxJSONBody caps the JSON bodies of the Postfach (a message text is at
// most a few thousand characters).
const maxJSONBody = 256 << 10

// MountPostfach serves the Postfach API (JSON; attachments stream):
//
//	GET  /api/postfach/topics                    topics (team inboxes) to write to
//	GET  /api/postfach/teams                     caseworker: own team inboxes
//	GET  /api/postfach/threads                   list (?topic, state, from, to, q, archive, unread, team, before, limit)
//	POST /api/postfach/threads                   start a thread
//	GET  /api/postfach/threads/:id               thread with messages (marks them read)
//	POST /api/postfach/threads/:id/messages      reply
//	POST /api/postfach/threads/:id/read          {"read": bool}
//	POST /api/postfach/threads/:id/assign        {"account_id": "..."} caseworkers
//	POST /api/postfach/threads/:id/state         {"state": "open"|"closed"} caseworkers
//	POST /api/postfach/threads/:id/archive       {"archived": bool} owners
//	POST /api/postfach/threads/:id/legal-hold    {"hold": bool} team leads
//	POST /api/postfach/attachments               multipart/form-data, file in field "datei"
//	GET  /api/postfach/attachments/:id           download
//	POST /api/postfach/documents                 caseworker: a letter for a person (online or paper)
//	GET  /api/postfach/export                    owner: the whole Postfach as ZIP
//	GET  /api/postfach/notifications/failed      caseworker: notifications that could not be sent
//	POST /api/postfach/notifications/:id/retry   caseworker: send one again
//
// Another person's, tenant's or team's object answers 404, exactly like an
// object that does not exist.
func MountPostfach(r fiber.Router, svc *mailbox.Service, o PostfachOptions) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	h := &postfach{svc: svc, o: o}
	g := r.Group(PostfachPath, append(append([]fiber.Handler(nil), o.Before...), RequireRole(postfachRoles...))...)
	// Routes of one side answer 404 to the other, like a missing route.
	team := RequireRole(auth.RoleCaseworker, auth.RoleTeamLead)
	owner := RequireRole(auth.RoleInsured, auth.RoleProviderAdmin, auth.RoleProviderUser)
	g.Get("/topics", h.topics)
	g.Get("/teams", team, h.teams)
	g.Get("/threads", h.list)
	g.Post("/threads", h.start)
	g.Get("/threads/:id", h.open)
	g.Post("/threads/:id/messages", h.reply)
	g.Post("/threads/:id/read", h.markRead)
	g.Post("/threads/:id/assign", team, h.assign)
	g.Post("/threads/:id/state", team, h.state)
	g.Post("/threads/:id/archive", owner, h.archive)
	g.Post("/threads/:id/legal-hold", RequireRole(auth.RoleTeamLead), h.legalHold)
	g.Post("/attachments", h.upload)
	g.Get("/attachments/:id", h.download)
	g.Post("/documents", team, h.document)
	g.Get("/export", owner, h.export)
	g.Get("/notifications/failed", team, h.failed)
	g.Post("/notifications/:id/retry", team, h.retry)
}

type postfach struct {
	svc *mailbox.Service
	o   PostfachOptions
}

func (h *postfach) actor(c *fiber.Ctx) mailbox.Actor {
	a := mailbox.Actor{Principal: MustPrincipal(c), RequestID: RequestID(c)}
	if h.o.ClientHash != nil {
		a.ClientHash = h.o.ClientHash(c)
	}
	return a
}

// fail turns a domain error into the answer the user sees.
func (h *postfach) fail(c *fiber.Ctx, err error) error {
	var ce *intake.ContentError
	switch ie, invalid := mailbox.IsInvalid(err); {
	case errors.Is(err, mailbox.ErrNotFound):
		return notFound(c)
	case invalid:
		return SendProblem(c, fiber.StatusUnprocessableEntity, "ungueltige-eingabe", "Ungültige Eingabe", ie.Detail)
	case errors.As(err, &ce):
		return SendProblem(c, fiber.StatusUnsupportedMediaType, "dateityp", "Dateityp nicht erlaubt", ce.Detail)
	case errors.Is(err, mailbox.ErrNotAllowed):
		return SendProblem(c, fiber.StatusForbidden, "nicht-erlaubt", "Nicht erlaubt", "Diese Aktion ist für Ihre Rolle nicht vorgesehen.")
	case errors.Is(err, mailbox.ErrClosed):
		return SendProblem(c, fiber.StatusConflict, "unterhaltung-abgeschlossen", "Unterhaltung abgeschlossen",
			"Diese Unterhaltung ist abgeschlossen. Bitte schreiben Sie eine neue Nachricht.")
	}
	return err
}

// requestBody is the request's body as a stream: the server streams
// bodies (StreamRequestBody); app.Test in tests hands them over whole.
func requestBody(c *fiber.Ctx) io.Reader {
	if s := c.Context().RequestBodyStream(); s != nil {
		return s
	}
	return strings.NewReader(string(c.Body()))
}

// readJSON decodes a small JSON body from the request stream with a cap,
// since streamed bodies are not limited by the server's BodyLimit. When it
// reports false it has answered the request (or err says why not).
func readJSON(c *fiber.Ctx, v any) (bool, error) {
	lr := &io.LimitedReader{R: requestBody(c), N: maxJSONBody + 1}
	dec := json.NewDecoder(lr)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if lr.N <= 0 {
		c.Context().SetConnectionClose()
		return false, SendProblem(c, fiber.StatusRequestEntityTooLarge, "zu-gross", "Anfrage zu groß", "Die Anfrage ist zu groß.")
	}
	if err != nil {
		return false, SendProblem(c, fiber.StatusBadRequest, "ungueltiges-json", "Ungültige Anfrage",
			"Die Anfrage konnte nicht gelesen werden. Erwartet wird ein JSON-Objekt mit den dokumentierten Feldern.")
	}
	return true, nil
}

// --- JSON shapes ---

type teamJSON struct {
	ID    string `json:"id,omitempty"`
	Topic string `json:"topic"`
	Name  string `json:"name"`
}

type threadJSON struct {
	ID            string      `json:"id"`
	Subject       string      `json:"subject"`
	Topic         string      `json:"topic"`
	TeamName      string      `json:"team_name"`
	State         string      `json:"state"`
	Archived      bool        `json:"archived"`
	Unread        int         `json:"unread"`
	Messages      int         `json:"messages"`
	VorgangID     string      `json:"vorgang_id,omitempty"`
	CreatedAt     time.Time   `json:"created_at"`
	LastMessageAt time.Time   `json:"last_message_at"`
	Team          *teamThread `json:"team,omitempty"` // caseworkers only
}

// teamThread is what only the Kasse's side sees of a thread.
type teamThread struct {
	OwnerKind   string `json:"owner_kind"`
	OwnerID     string `json:"owner_id"`
	TeamID      string `json:"team_id"`
	AssignedTo  string `json:"assigned_to,omitempty"`
	LegalHold   bool   `json:"legal_hold"`
	Channel     string `json:"channel"`
	PaperStatus string `json:"paper_status,omitempty"`
}

type attachmentJSON struct {
	ID          string `json:"id"`
	FileName    string `json:"file_name"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	URL         string `json:"url"`
}

type messageJSON struct {
	ID          string           `json:"id"`
	Direction   string           `json:"direction"` // "in": to the Kasse, "out": from the Kasse
	FromMe      bool             `json:"from_me"`
	Kind        string           `json:"kind"`
	Body        string           `json:"body"`
	Read        bool             `json:"read"`
	CreatedAt   time.Time        `json:"created_at"`
	Sender      string           `json:"sender_account_id,omitempty"` // caseworkers only
	Attachments []attachmentJSON `json:"attachments"`
}

func toThreadJSON(v mailbox.Viewer, th mailbox.Thread) threadJSON {
	j := threadJSON{
		ID: th.ID, Subject: th.Subject, Topic: th.Topic, TeamName: th.TeamName, State: th.State, Archived: !th.ArchivedAt.IsZero(),
		Unread: th.Unread, Messages: th.Messages, VorgangID: th.VorgangID, CreatedAt: th.CreatedAt, LastMessageAt: th.LastMessageAt,
	}
	if v.Side == mailbox.SideTeam {
		j.Archived = false // the owner's archive is the owner's business
		j.Team = &teamThread{OwnerKind: string(th.OwnerKind), OwnerID: th.OwnerID, TeamID: th.TeamID, AssignedTo: th.AssignedTo,
			LegalHold: th.LegalHold, Channel: string(th.Channel), PaperStatus: th.PaperStatus}
	}
	return j
}

func toAttachmentJSON(a mailbox.Attachment) attachmentJSON {
	return attachmentJSON{ID: a.ID, FileName: a.FileName, ContentType: a.ContentType, Size: a.Size, SHA256: a.SHA256,
		URL: PostfachPath + "/attachments/" + url.PathEscape(a.ID)}
}

func toMessageJSON(v mailbox.Viewer, m mailbox.Message) messageJSON {
	j := messageJSON{ID: m.ID, Direction: string(m.Direction), FromMe: m.Direction != v.Toward(), Kind: string(m.Kind), Body: m.Body,
		Read: m.Read, CreatedAt: m.CreatedAt, Attachments: []attachmentJSON{}}
	if v.Side == mailbox.SideTeam {
		j.Sender = m.SenderAccountID
	}
	for _, a := range m.Attachments {
		j.Attachments = append(j.Attachments, toAttachmentJSON(a))
	}
	return j
}

// --- handlers ---

func (h *postfach) topics(c *fiber.Ctx) error {
	teams, err := h.svc.Topics(c.UserContext(), h.actor(c))
	if err != nil {
		return h.fail(c, err)
	}
	out := make([]teamJSON, 0, len(teams))
	for _, t := range teams {
		out = append(out, teamJSON{Topic: t.Topic, Name: t.Name})
	}
	return c.JSON(fiber.Map{"topics": out})
}

func (h *postfach) teams(c *fiber.Ctx) error {
	teams, err := h.svc.MyTeams(c.UserContext(), h.actor(c))
	if err != nil {
		return h.fail(c, err)
	}
	out := make([]teamJSON, 0, len(teams))
	for _, t := range teams {
		out = append(out, teamJSON{ID: t.ID, Topic: t.Topic, Name: t.Name})
	}
	return c.JSON(fiber.Map{"teams": out})
}

// parseFilter reads the list filter from the query string.
func parseFilter(c *fiber.Ctx) (mailbox.Filter, error) {
	f := mailbox.Filter{Topic: c.Query("topic"), State: c.Query("state"), Query: c.Query("q"), TeamID: c.Query("team"), Unread: c.QueryBool("unread")}
	bad := func(field, detail string) (mailbox.Filter, error) {
		return f, &mailbox.InvalidError{Field: field, Detail: detail}
	}
	for _, d := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		v := c.Query(d.name)
		if v == "" {
			continue
		}
		t, err := time.Parse("2006-01-02", v)
		if err != nil {
			if t, err = time.Parse(time.RFC3339, v); err != nil {
				return bad(d.name, "Bitte geben Sie ein Datum im Format JJJJ-MM-TT an.")
			}
		}
		*d.dst = t
	}
	switch c.Query("archive") {
	case "", "inbox":
	case "archived":
		f.Archive = mailbox.ArchiveArchived
	case "all":
		f.Archive = mailbox.ArchiveAll
	default:
		return bad("archive", "„archive“ muss inbox, archived oder all sein.")
	}
	if v := c.Query("limit"); v != "" {
		n := c.QueryInt("limit", -1)
		if n < 1 || n > 200 {
			return bad("limit", "„limit“ muss zwischen 1 und 200 liegen.")
		}
		f.Limit = n
	}
	if v := c.Query("before"); v != "" {
		cur, err := decodeCursor(v)
		if err != nil {
			return bad("before", "Der Seitenverweis ist ungültig.")
		}
		f.Before = &cur
	}
	return f, nil
}

// The page cursor is opaque to clients: base64 of "micros:id".
func encodeCursor(th mailbox.Thread) string {
	return base64.RawURLEncoding.EncodeToString([]byte(th.LastMessageAt.Format(time.RFC3339Nano) + "|" + th.ID))
}

func decodeCursor(s string) (mailbox.Cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return mailbox.Cursor{}, err
	}
	at, id, ok := strings.Cut(string(raw), "|")
	if !ok {
		return mailbox.Cursor{}, errors.New("cursor")
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return mailbox.Cursor{}, err
	}
	return mailbox.Cursor{LastMessageAt: t, ID: id}, nil
}

func (h *postfach) list(c *fiber.Ctx) error {
	f, err := parseFilter(c)
	if err != nil {
		return h.fail(c, err)
	}
	a := h.actor(c)
	threads, err := h.svc.List(c.UserContext(), a, f)
	if err != nil {
		return h.fail(c, err)
	}
	v := mailbox.ViewerOf(a.Principal)
	out := make([]threadJSON, 0, len(threads))
	for _, th := range threads {
		out = append(out, toThreadJSON(v, th))
	}
	resp := fiber.Map{"threads": out}
	limit := f.Limit
	if limit == 0 {
		limit = 50
	}
	if len(threads) == limit {
		resp["next"] = encodeCursor(threads[len(threads)-1])
	}
	return c.JSON(resp)
}

type startRequest struct {
	Topic       string   `json:"topic"`
	Subject     string   `json:"subject"`
	Body        string   `json:"body"`
	Attachments []string `json:"attachments"`
	PersonID    string   `json:"person_id"` // caseworkers: whose Postfach
	OrgID       string   `json:"org_id"`    // caseworkers: a provider organisation instead
}

func (h *postfach) start(c *fiber.Ctx) error {
	var req startRequest
	if ok, err := readJSON(c, &req); !ok {
		return err
	}
	in := mailbox.NewThread{Topic: req.Topic, Subject: req.Subject, Body: req.Body, Uploads: req.Attachments, OwnerID: req.PersonID, OwnerKind: mailbox.OwnerPerson}
	if req.OrgID != "" {
		in.OwnerKind, in.OwnerID = mailbox.OwnerProvider, req.OrgID
	}
	a := h.actor(c)
	th, msg, err := h.svc.StartThread(c.UserContext(), a, in)
	if err != nil {
		return h.fail(c, err)
	}
	v := mailbox.ViewerOf(a.Principal)
	th.Messages = 1
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"thread": toThreadJSON(v, th), "message": toMessageJSON(v, msg)})
}

func (h *postfach) open(c *fiber.Ctx) error {
	a := h.actor(c)
	th, msgs, err := h.svc.Open(c.UserContext(), a, c.Params("id"))
	if err != nil {
		return h.fail(c, err)
	}
	v := mailbox.ViewerOf(a.Principal)
	out := make([]messageJSON, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, toMessageJSON(v, m))
	}
	return c.JSON(fiber.Map{"thread": toThreadJSON(v, th), "messages": out})
}

type replyRequest struct {
	Body        string   `json:"body"`
	Attachments []string `json:"attachments"`
}

func (h *postfach) reply(c *fiber.Ctx) error {
	var req replyRequest
	if ok, err := readJSON(c, &req); !ok {
		return err
	}
	a := h.actor(c)
	msg, err := h.svc.Reply(c.UserContext(), a, c.Params("id"), req.Body, req.Attachments)
	if err != nil {
		return h.fail(c, err)
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"message": toMessageJSON(mailbox.ViewerOf(a.Principal), msg)})
}

func (h *postfach) markRead(c *fiber.Ctx) error {
	var req struct {
		Read *bool `json:"read"`
	}
	if ok, err := readJSON(c, &req); !ok {
		return err
	}
	if req.Read == nil {
		return h.fail(c, &mailbox.InvalidError{Field: "read", Detail: "Bitte geben Sie „read“ (true oder false) an."})
	}
	if err := h.svc.MarkRead(c.UserContext(), h.actor(c), c.Params("id"), *req.Read); err != nil {
		return h.fail(c, err)
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (h *postfach) assign(c *fiber.Ctx) error {
	var req struct {
		AccountID string `json:"account_id"`
	}
	if ok, err := readJSON(c, &req); !ok {
		return err
	}
	if err := h.svc.Assign(c.UserContext(), h.actor(c), c.Params("id"), req.AccountID); err != nil {
		return h.fail(c, err)
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (h *postfach) state(c *fiber.Ctx) error {
	var req struct {
		State string `json:"state"`
	}
	if ok, err := readJSON(c, &req); !ok {
		return err
	}
	if err := h.svc.SetState(c.UserContext(), h.actor(c), c.Params("id"), req.State); err != nil {
		return h.fail(c, err)
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (h *postfach) archive(c *fiber.Ctx) error {
	var req struct {
		Archived *bool `json:"archived"`
	}
	if ok, err := readJSON(c, &req); !ok {
		return err
	}
	if req.Archived == nil {
		return h.fail(c, &mailbox.InvalidError{Field: "archived", Detail: "Bitte geben Sie „archived“ (true oder false) an."})
	}
	if err := h.svc.Archive(c.UserContext(), h.actor(c), c.Params("id"), *req.Archived); err != nil {
		return h.fail(c, err)
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (h *postfach) legalHold(c *fiber.Ctx) error {
	var req struct {
		Hold *bool `json:"hold"`
	}
	if ok, err := readJSON(c, &req); !ok {
		return err
	}
	if req.Hold == nil {
		return h.fail(c, &mailbox.InvalidError{Field: "hold", Detail: "Bitte geben Sie „hold“ (true oder false) an."})
	}
	if err := h.svc.SetLegalHold(c.UserContext(), h.actor(c), c.Params("id"), *req.Hold); err != nil {
		return h.fail(c, err)
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// upload streams the file part "datei" of a multipart/form-data body into
// the blob store; nothing is buffered beyond the multipart reader's chunk
// (the server does not pre-parse multipart bodies).
func (h *postfach) upload(c *fiber.Ctx) error {
	mt, params, err := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
	if err != nil || mt != fiber.MIMEMultipartForm || params["boundary"] == "" {
		c.Context().SetConnectionClose()
		return SendProblem(c, fiber.StatusUnsupportedMediaType, "multipart-erwartet", "Falsches Format",
			"Bitte senden Sie die Datei als multipart/form-data im Feld „datei“.")
	}
	mr := multipart.NewReader(requestBody(c), params["boundary"])
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return SendProblem(c, fiber.StatusUnprocessableEntity, "keine-datei", "Keine Datei",
				"Die Anfrage enthielt keine Datei im Feld „datei“.")
		}
		if err != nil {
			c.Context().SetConnectionClose()
			return SendProblem(c, fiber.StatusBadRequest, "multipart-fehler", "Ungültige Anfrage", "Die Datei konnte nicht gelesen werden.")
		}
		if part.FormName() != "datei" || part.FileName() == "" {
			// Other fields (e.g. _csrf) are small; skip them.
			if _, err := io.Copy(io.Discard, io.LimitReader(part, 64<<10)); err != nil {
				c.Context().SetConnectionClose()
				return err
			}
			part.Close()
			continue
		}
		u, err := h.svc.Upload(c.UserContext(), h.actor(c), part.FileName(), part)
		part.Close()
		if err != nil {
			// The rest of the body is not read: do not reuse the connection.
			c.Context().SetConnectionClose()
			return h.fail(c, err)
		}
		return c.Status(fiber.StatusCreated).JSON(fiber.Map{"attachment": fiber.Map{
			"id": u.ID, "file_name": u.FileName, "content_type": u.ContentType, "size": u.Size, "sha256": u.SHA256,
		}})
	}
}

// contentDisposition offers a download under its name, ASCII-safe in the
// plain parameter and exact in the RFC 5987 one.
func contentDisposition(name string) string {
	ascii := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune(" ._-()", r):
			return r
		}
		return '_'
	}, name)
	return `attachment; filename="` + ascii + `"; filename*=UTF-8''` + url.PathEscape(name)
}

func (h *postfach) download(c *fiber.Ctx) error {
	att, rc, err := h.svc.OpenAttachment(c.UserContext(), h.actor(c), c.Params("id"))
	if err != nil {
		return h.fail(c, err)
	}
	c.Set(fiber.HeaderContentType, att.ContentType)
	c.Set(fiber.HeaderContentDisposition, contentDisposition(att.FileName))
	c.Set(fiber.HeaderCacheControl, "no-store")
	if sum, err := hex.DecodeString(att.SHA256); err == nil {
		c.Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(sum)+":")
	}
	// fasthttp closes rc after sending.
	return c.SendStream(rc, int(att.Size))
}

type documentRequest struct {
	PersonID    string   `json:"person_id"`
	Topic       string   `json:"topic"`
	Subject     string   `json:"subject"`
	Body        string   `json:"body"`
	Attachments []string `json:"attachments"`
	VorgangID   string   `json:"vorgang_id"`
}

func (h *postfach) document(c *fiber.Ctx) error {
	var req documentRequest
	if ok, err := readJSON(c, &req); !ok {
		return err
	}
	a := h.actor(c)
	th, msg, err := h.svc.DeliverDocument(c.UserContext(), a, mailbox.Document{
		PersonID: req.PersonID, Topic: req.Topic, Subject: req.Subject, Body: req.Body, Uploads: req.Attachments, VorgangID: req.VorgangID,
	})
	if err != nil {
		return h.fail(c, err)
	}
	v := mailbox.ViewerOf(a.Principal)
	th.Messages = 1
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"thread": toThreadJSON(v, th), "message": toMessageJSON(v, msg)})
}

// export streams the ZIP. Access and the audit event are settled before
// the first byte; a failure later (a blob store outage) can only cut the
// stream, which leaves a ZIP the client reports as damaged.
func (h *postfach) export(c *fiber.Ctx) error {
	a := h.actor(c)
	write, err := h.svc.Export(c.UserContext(), a)
	if err != nil {
		return h.fail(c, err)
	}
	ctx := context.WithoutCancel(c.UserContext())
	reqID, log := RequestID(c), h.o.Logger
	c.Set(fiber.HeaderContentType, "application/zip")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="Postfach-Export-`+time.Now().Format("2006-01-02")+`.zip"`)
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		if err := write(ctx, w); err != nil {
			log.Error("postfach export cut off", "request_id", reqID, "err", err)
		}
		_ = w.Flush()
	})
	return nil
}

type failedJSON struct {
	ID        string    `json:"id"`
	PersonID  string    `json:"person_id"`
	Recipient string    `json:"recipient"` // masked
	Template  string    `json:"template"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error"`
	CreatedAt time.Time `json:"created_at"`
	FailedAt  time.Time `json:"failed_at"`
}

func (h *postfach) failed(c *fiber.Ctx) error {
	list, err := h.svc.FailedNotifications(c.UserContext(), h.actor(c))
	if err != nil {
		return h.fail(c, err)
	}
	out := make([]failedJSON, 0, len(list))
	for _, f := range list {
		out = append(out, failedJSON(f))
	}
	return c.JSON(fiber.Map{"notifications": out})
}

func (h *postfach) retry(c *fiber.Ctx) error {
	if err := h.svc.RequeueNotification(c.UserContext(), h.actor(c), c.Params("id")); err != nil {
		return h.fail(c, err)
	}
	return c.SendStatus(fiber.StatusAccepted)
}
