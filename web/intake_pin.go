package web

// The Einmal-PIN desk over HTTP: caseworkers issue PIN letters, insured
// persons log in with KVNR and PIN, keep a draft, and submit; caseworkers
// download the submitted files.
//
// Wiring (cmd/postbox): after UseSessions and BEFORE MountTus, so the PIN
// session middleware runs ahead of the upload routes:
//
//	desk := web.NewPINIntake(web.PINIntakeOptions{...})
//	desk.Mount(srv.App())
//
// PIN session: POST /api/pin-login sets the cookie __Host-postbox_pin
// (postbox_pin over plain http, where browsers refuse the __Host- prefix):
// HttpOnly, SameSite=Strict, Path=/, Secure when the portal is https. The
// server keeps the session (30 min idle, 12 h at most); the cookie holds a
// random 256-bit token whose SHA-256 is the database key.
//
// Which session acts: on the desk's routes (the pages under /einmal-pin/
// and /api/pin-login, pin-session, pin-logout, draft, submit) only the PIN
// session does, even when the browser also holds an account login; on the
// upload routes both kinds may, and the upload's owner decides; everywhere
// else only the account session (see sessionKindOf in principal.go).
//
// CSRF: every POST/PUT/PATCH/DELETE on the desk must send the PIN
// session's token in X-CSRF-Token (the pages: the form field _csrf), from
// the login answer or GET /api/pin-session; an account's token is refused.
// Upload requests may send the header Tus-Resumable instead (see
// uploadSession). The login itself follows fromPortal (csrf.go), the same
// rule for the JSON API and the form.

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"postbox/audit"
	"postbox/auth"
	"postbox/intake"
)

// PINIntakeOptions configure the Einmal-PIN routes.
type PINIntakeOptions struct {
	Service *intake.PINService
	// BaseURL is the portal's public address: the upload page address on
	// letters of a Kasse without its own, and the only Origin the PIN
	// login accepts.
	BaseURL string
	// SecureCookies marks the PIN cookie Secure and gives it the __Host-
	// prefix.
	SecureCookies bool
	// ClientKey keys the hash of client addresses (rate limit, audit).
	ClientKey []byte
}

// PINIntake serves the Einmal-PIN desk.
type PINIntake struct {
	o PINIntakeOptions
}

// NewPINIntake builds the handlers.
func NewPINIntake(o PINIntakeOptions) *PINIntake { return &PINIntake{o: o} }

// PINCookieName is the cookie of a PIN session.
func PINCookieName(secure bool) string {
	if secure {
		return "__Host-postbox_pin"
	}
	return "postbox_pin"
}

const (
	pinTokenKey ctxKey = iota + 400
	pinEndedTokenKey
)

// Mount registers the desk's routes and puts the PIN session in front of
// the upload routes (mount before MountTus). Which session authorises which
// route is decided in one place, sessionKindOf: the routes below marked
// with desk answer only to the PIN session; /api/pins and the file
// download are caseworker (account) routes.
func (h *PINIntake) Mount(r fiber.Router) {
	desk := h.Session()
	r.Use(TusPath, h.uploadSession())
	r.Post(pinLoginPath, h.login)
	r.Get(pinSessionPath, desk, h.session)
	r.Post(pinLogoutPath, desk, h.logout)
	r.Get(pinDraftPath, desk, h.getDraft)
	r.Put(pinDraftPath, desk, h.putDraft)
	r.Post(pinSubmitPath, desk, h.submit)
	r.Post("/api/pins", h.issue)
	r.Get("/api/vorgaenge/:id/files/:fileId", h.download)
}

// ClientHash is the keyed hash of the request's client address; the
// address itself is never stored or logged.
func (h *PINIntake) ClientHash(c *fiber.Ctx) string {
	m := hmac.New(sha256.New, h.o.ClientKey)
	m.Write([]byte(c.IP()))
	return hex.EncodeToString(m.Sum(nil))[:32]
}

func (h *PINIntake) actor(c *fiber.Ctx, p auth.Principal) intake.Actor {
	return intake.Actor{Principal: p, ClientHash: h.ClientHash(c), RequestID: RequestID(c)}
}

// resolve turns the PIN cookie into its open session. An ended or unknown
// session clears the cookie (and remembers its token for a repeated
// submission); ok is false then and without a cookie.
func (h *PINIntake) resolve(c *fiber.Ctx) (token string, sess intake.PINSession, ok bool, err error) {
	token = c.Cookies(PINCookieName(h.o.SecureCookies))
	if token == "" {
		return "", sess, false, nil
	}
	sess, err = h.o.Service.Session(c.UserContext(), token)
	if errors.Is(err, intake.ErrPINSessionNotFound) {
		c.Locals(pinEndedTokenKey, token)
		h.clearCookie(c)
		return token, sess, false, nil
	}
	if err != nil {
		return token, sess, false, err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return token, sess, true, nil
}

// Session guards the desk's API routes: the PIN session is the only one
// that acts there (an account login in the same browser has no say, see
// sessionKindOf), and a state-changing request must carry the PIN
// session's CSRF token in X-CSRF-Token, else 403. The insured person of
// the session is then the request's principal (pinPrincipal).
func (h *PINIntake) Session() fiber.Handler {
	return func(c *fiber.Ctx) error {
		SetPrincipal(c, auth.Principal{}) // whatever ran before does not act here
		token, sess, ok, err := h.resolve(c)
		if err != nil {
			return err
		}
		if !ok {
			return c.Next()
		}
		if pinUnsafe(c.Method()) && !intake.CheckCSRF(token, c.Get("X-CSRF-Token")) {
			return csrfRefused(c)
		}
		c.Locals(pinTokenKey, token)
		SetPrincipal(c, sess.Principal())
		return c.Next()
	}
}

// uploadSession offers the PIN session to the upload routes, which serve
// both session kinds (chooseUploadSession decides). A state-changing
// upload request proves it comes from the portal with the PIN session's
// X-CSRF-Token or with the header Tus-Resumable: a cross-site form cannot
// set a header, and a cross-site script cannot send one without a CORS
// preflight, which postbox never grants.
func (h *PINIntake) uploadSession() fiber.Handler {
	return func(c *fiber.Ctx) error {
		token, sess, ok, err := h.resolve(c)
		if err != nil {
			return err
		}
		if !ok {
			return c.Next()
		}
		named := intake.CheckCSRF(token, c.Get("X-CSRF-Token"))
		offerUploadSession(c, sessionOffer{principal: sess.Principal(), pin: true, named: named,
			allowed: named || !pinUnsafe(c.Method()) || c.Get("Tus-Resumable") != ""})
		return c.Next()
	}
}

func pinUnsafe(method string) bool {
	switch method {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions:
		return false
	}
	return true
}

func (h *PINIntake) setCookie(c *fiber.Ctx, token string) {
	c.Cookie(&fiber.Cookie{Name: PINCookieName(h.o.SecureCookies), Value: token, Path: "/", HTTPOnly: true,
		Secure: h.o.SecureCookies, SameSite: fiber.CookieSameSiteStrictMode})
}

func (h *PINIntake) clearCookie(c *fiber.Ctx) {
	c.Cookie(&fiber.Cookie{Name: PINCookieName(h.o.SecureCookies), Value: "", Path: "/", HTTPOnly: true,
		Secure: h.o.SecureCookies, SameSite: fiber.CookieSameSiteStrictMode, MaxAge: -1, Expires: time.Unix(1, 0)})
}

// sendPINProblem writes problem+json like SendProblem, with extension
// members (e.g. the German message per form field).
func sendPINProblem(c *fiber.Ctx, status int, typ, title, detail string, ext fiber.Map) error {
	body := fiber.Map{"type": "https://postbox.invalid/probleme/" + typ, "title": title, "status": status, "request_id": RequestID(c)}
	if detail != "" {
		body["detail"] = detail
	}
	for k, v := range ext {
		body[k] = v
	}
	c.Status(status)
	return c.JSON(body, "application/problem+json")
}

func pinInputProblem(c *fiber.Ctx, ie *intake.InputError) error {
	return sendPINProblem(c, fiber.StatusUnprocessableEntity, "eingaben-pruefen", "Bitte prüfen Sie Ihre Eingaben", ie.Detail(),
		fiber.Map{"errors": ie.Fields})
}

func pinBadBody(c *fiber.Ctx) error {
	return sendPINProblem(c, fiber.StatusBadRequest, "ungueltige-anfrage", "Ungültige Anfrage",
		"Die Anfrage konnte nicht gelesen werden. Bitte senden Sie das Formular erneut.", nil)
}

// pinForeignLogin refuses a login that was not sent by the portal's pages.
const pinForeignLogin = "Die Anmeldung ist nur über die Seite Ihrer Krankenkasse möglich. Bitte öffnen Sie die Internetadresse aus Ihrem Brief. " +
	"Wenn Sie diese Seite verwendet haben, aktualisieren Sie bitte Ihren Browser."

type pinLoginReq struct {
	Kasse string `json:"kasse" form:"kasse"`
	KVNR  string `json:"kvnr" form:"kvnr"`
	PIN   string `json:"pin" form:"pin"`
}

func (h *PINIntake) login(c *fiber.Ctx) error {
	if !fromPortal(c, h.o.BaseURL) {
		return sendPINProblem(c, fiber.StatusForbidden, "fremde-herkunft", "Anfrage abgelehnt", pinForeignLogin, nil)
	}
	var in pinLoginReq
	if err := c.BodyParser(&in); err != nil {
		return pinBadBody(c)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	res, err := h.o.Service.Login(c.UserContext(), intake.LoginRequest{TenantID: strings.TrimSpace(in.Kasse), KVNR: in.KVNR, PIN: in.PIN,
		ClientHash: h.ClientHash(c), RequestID: RequestID(c)})
	var (
		ie *intake.InputError
		le *intake.LoginError
	)
	switch {
	case errors.Is(err, intake.ErrUnknownKasse):
		return sendPINProblem(c, fiber.StatusNotFound, "kasse-unbekannt", "Krankenkasse nicht gefunden",
			"Bitte öffnen Sie die Seite über die Internetadresse in Ihrem Brief.", nil)
	case errors.As(err, &ie):
		return pinInputProblem(c, ie)
	case errors.As(err, &le):
		status, ext := fiber.StatusUnauthorized, fiber.Map{"reason": le.Reason}
		switch le.Reason {
		case intake.RefusedWrongPIN:
			ext["tries_left"] = le.TriesLeft
		case intake.RefusedLocked:
			status = fiber.StatusLocked
		case intake.RefusedRateLimited:
			status = fiber.StatusTooManyRequests
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int((le.RetryAfter+time.Second-1)/time.Second)))
		}
		return sendPINProblem(c, status, "pin-"+strings.ReplaceAll(string(le.Reason), "_", "-"), le.Title(), le.Detail(), ext)
	case err != nil:
		return err
	}
	// A PIN cookie from before is replaced; end its session too.
	if old := c.Cookies(PINCookieName(h.o.SecureCookies)); old != "" {
		_ = h.o.Service.Logout(c.UserContext(), h.actor(c, auth.Principal{}), old)
	}
	h.setCookie(c, res.Token)
	return c.JSON(fiber.Map{
		"csrf_token":           res.CSRF,
		"kasse":                fiber.Map{"id": res.Kasse.ID, "name": res.Kasse.Name},
		"idle_timeout_seconds": int(intake.SessionIdle / time.Second),
		"request":              pinRequestJSON(intake.PINRequest{CaseType: res.PIN.CaseType, Text: res.PIN.RequestText, ValidUntil: res.PIN.ExpiresAt}),
	})
}

func pinRequestJSON(r intake.PINRequest) fiber.Map {
	return fiber.Map{"case_type": r.CaseType, "label": r.CaseType.Label(), "text": r.Text, "valid_until": intake.LastValidDay(r.ValidUntil)}
}

// insured returns the principal of the request's PIN session or answers
// 401: the desk's routes know no other login.
func (h *PINIntake) insured(c *fiber.Ctx) (auth.Principal, bool, error) {
	p, ok := PrincipalOf(c)
	if token, _ := c.Locals(pinTokenKey).(string); ok && token != "" && p.Role == auth.RoleInsured && p.PersonID != "" {
		return p, true, nil
	}
	return p, false, sendPINProblem(c, fiber.StatusUnauthorized, "anmeldung-erforderlich", "Anmeldung erforderlich",
		"Bitte melden Sie sich mit Ihrer Krankenversichertennummer und Ihrer Einmal-PIN an. Ihre Sitzung ist abgelaufen oder Sie sind nicht angemeldet.", nil)
}

func (h *PINIntake) session(c *fiber.Ctx) error {
	p, ok, err := h.insured(c)
	if !ok {
		return err
	}
	token, _ := c.Locals(pinTokenKey).(string)
	return c.JSON(fiber.Map{"csrf_token": intake.CSRFToken(token), "kasse": fiber.Map{"id": p.TenantID},
		"idle_timeout_seconds": int(intake.SessionIdle / time.Second)})
}

func (h *PINIntake) logout(c *fiber.Ctx) error {
	token, _ := c.Locals(pinTokenKey).(string)
	if p, ok := PrincipalOf(c); ok && token != "" {
		if err := h.o.Service.Logout(c.UserContext(), h.actor(c, p), token); err != nil {
			return err
		}
	}
	h.clearCookie(c)
	return c.SendStatus(fiber.StatusNoContent)
}

func pinDraftJSON(v intake.DraftView) fiber.Map {
	d := v.Draft
	files := v.Files
	if files == nil {
		files = []intake.DraftFile{}
	}
	reqs := make([]fiber.Map, len(v.Requests))
	for i, r := range v.Requests {
		reqs[i] = pinRequestJSON(r)
	}
	types := make([]fiber.Map, len(audit.CaseTypes))
	for i, ct := range audit.CaseTypes {
		types[i] = fiber.Map{"type": ct.Type, "label": ct.Label}
	}
	errs := v.Problems
	if errs == nil {
		errs = map[string]string{}
	}
	return fiber.Map{
		"draft": fiber.Map{"id": d.ID, "case_type": d.CaseType, "case_type_label": d.CaseType.Label(), "subject": d.Subject,
			"message": d.Message, "phone": d.Phone, "updated_at": d.UpdatedAt},
		"files":      files,
		"requests":   reqs,
		"errors":     errs,
		"case_types": types,
		"limits":     fiber.Map{"subject": intake.MaxSubject, "message": intake.MaxMessage, "phone": intake.MaxPhone},
	}
}

func (h *PINIntake) getDraft(c *fiber.Ctx) error {
	p, ok, err := h.insured(c)
	if !ok {
		return err
	}
	v, err := h.o.Service.Draft(c.UserContext(), h.actor(c, p))
	if err != nil {
		return err
	}
	return c.JSON(pinDraftJSON(v))
}

type pinDraftReq struct {
	CaseType string `json:"case_type" form:"case_type"`
	Subject  string `json:"subject" form:"subject"`
	Message  string `json:"message" form:"message"`
	Phone    string `json:"phone" form:"phone"`
}

// putDraft autosaves the form. The save succeeds (200) also when fields
// break a rule: what was typed is kept and "errors" names each problem in
// German; only a field far beyond its limit is refused (422, not saved).
func (h *PINIntake) putDraft(c *fiber.Ctx) error {
	p, ok, err := h.insured(c)
	if !ok {
		return err
	}
	var in pinDraftReq
	if err := c.BodyParser(&in); err != nil {
		return pinBadBody(c)
	}
	v, err := h.o.Service.SaveDraft(c.UserContext(), h.actor(c, p), intake.DraftInput(in))
	var ie *intake.InputError
	if errors.As(err, &ie) {
		return pinInputProblem(c, ie)
	}
	if err != nil {
		return err
	}
	return c.JSON(pinDraftJSON(v))
}

type pinSubmitReq struct {
	DraftID string `json:"draft_id" form:"draft_id"`
}

func pinReceiptJSON(r intake.Receipt) fiber.Map {
	files := make([]fiber.Map, len(r.Files))
	for i, f := range r.Files {
		files[i] = fiber.Map{"id": f.ID, "file_name": f.FileName, "content_type": f.ContentType, "size": f.Size,
			"size_text": intake.GermanSize(f.Size), "sha256": f.SHA256}
	}
	v := r.Vorgang
	return fiber.Map{
		"vorgang": fiber.Map{"id": v.ID, "status": v.Status, "status_label": v.Status.Label(), "case_type": v.Type,
			"case_type_label": v.Type.Label(), "title": v.Title, "created_at": v.CreatedAt},
		"files":     files,
		"thread_id": r.ThreadID,
		"message": "Vielen Dank. Ihre Unterlagen sind eingegangen. Eine Eingangsbestätigung mit den Prüfsummen (SHA-256) Ihrer Dateien " +
			"liegt in Ihrem Postfach. Ihre Einmal-PIN ist damit nicht mehr gültig.",
	}
}

func (h *PINIntake) submit(c *fiber.Ctx) error {
	var in pinSubmitReq
	if len(c.Body()) > 0 {
		if err := c.BodyParser(&in); err != nil {
			return pinBadBody(c)
		}
	}
	if token, _ := c.Locals(pinTokenKey).(string); token == "" {
		// The first submission ended this session; a retry whose answer got
		// lost gets the same answer.
		if token, _ := c.Locals(pinEndedTokenKey).(string); token != "" && intake.CheckCSRF(token, c.Get("X-CSRF-Token")) {
			if rec, err := h.o.Service.SubmittedReceipt(c.UserContext(), token); err == nil {
				return c.JSON(pinReceiptJSON(rec))
			}
		}
	}
	p, ok, err := h.insured(c)
	if !ok {
		return err
	}
	rec, err := h.o.Service.Submit(c.UserContext(), h.actor(c, p), strings.TrimSpace(in.DraftID))
	var (
		ie *intake.InputError
		se *intake.SubmitError
	)
	switch {
	case errors.As(err, &ie):
		return pinInputProblem(c, ie)
	case errors.As(err, &se):
		status := map[intake.SubmitRefusal]int{intake.SubmitNoFiles: fiber.StatusUnprocessableEntity, intake.SubmitNotReady: fiber.StatusConflict,
			intake.SubmitTooMany: fiber.StatusUnprocessableEntity, intake.SubmitTooLarge: fiber.StatusRequestEntityTooLarge}[se.Reason]
		return sendPINProblem(c, status, "absenden-"+strings.ReplaceAll(string(se.Reason), "_", "-"), "Absenden nicht möglich", se.Detail,
			fiber.Map{"reason": se.Reason})
	case errors.Is(err, intake.ErrDraftNotFound):
		return sendPINProblem(c, fiber.StatusNotFound, "entwurf-unbekannt", "Nicht gefunden",
			"Zu dieser Anfrage gibt es keine Eingaben. Bitte laden Sie die Seite neu.", nil)
	case err != nil:
		return err
	}
	h.clearCookie(c) // the PIN session ended with the submission
	return c.JSON(pinReceiptJSON(rec))
}

type pinIssueReq struct {
	KVNR        string `json:"kvnr" form:"kvnr"`
	CaseType    string `json:"case_type" form:"case_type"`
	RequestText string `json:"request_text" form:"request_text"`
}

// pinStaff returns the principal of a caseworker or team lead; anyone else
// gets 401 (no login) or 404 (another role) and ok is false.
func pinStaff(c *fiber.Ctx) (p auth.Principal, ok bool, err error) {
	p, ok = PrincipalOf(c)
	if !ok {
		return p, false, sendPINProblem(c, fiber.StatusUnauthorized, "anmeldung-erforderlich", "Anmeldung erforderlich",
			"Bitte melden Sie sich an.", nil)
	}
	if !p.Has(auth.RoleCaseworker, auth.RoleTeamLead) {
		return p, false, sendPINProblem(c, fiber.StatusNotFound, "http-404", "Nicht gefunden", "", nil)
	}
	return p, true, nil
}

// issue creates a PIN and answers with the letter as PDF. The PIN exists
// only in that answer (and on paper), so the answer is never cached.
func (h *PINIntake) issue(c *fiber.Ctx) error {
	p, ok, err := pinStaff(c)
	if !ok {
		return err
	}
	var in pinIssueReq
	if err := c.BodyParser(&in); err != nil {
		return pinBadBody(c)
	}
	issued, err := h.o.Service.Issue(c.UserContext(), h.actor(c, p), intake.IssueRequest{KVNR: in.KVNR,
		CaseType: audit.CaseType(strings.TrimSpace(in.CaseType)), RequestText: in.RequestText})
	var ie *intake.InputError
	switch {
	case errors.As(err, &ie):
		return pinInputProblem(c, ie)
	case errors.Is(err, intake.ErrUnknownPerson):
		return sendPINProblem(c, fiber.StatusNotFound, "person-unbekannt", "Versicherte Person nicht gefunden",
			"Zu dieser Krankenversichertennummer gibt es bei Ihrer Krankenkasse keine versicherte Person.", nil)
	case err != nil:
		return err
	}
	var pdf bytes.Buffer
	if err := intake.RenderLetter(&pdf, issued.Letter(h.o.BaseURL)); err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderContentType, "application/pdf")
	c.Set(fiber.HeaderContentDisposition, PINContentDisposition("Einmal-PIN-Brief "+issued.Record.CreatedAt.Format("2006-01-02")+".pdf"))
	c.Set("X-PIN-Valid-Until", intake.LastValidDay(issued.Record.ExpiresAt))
	c.Set("X-PIN-Expires-At", issued.Record.ExpiresAt.UTC().Format(time.RFC3339))
	return c.Status(fiber.StatusCreated).Send(pdf.Bytes())
}

func (h *PINIntake) download(c *fiber.Ctx) error {
	p, ok, err := pinStaff(c)
	if !ok {
		return err
	}
	rc, f, err := h.o.Service.OpenVorgangFile(c.UserContext(), h.actor(c, p), c.Params("id"), c.Params("fileId"))
	if errors.Is(err, intake.ErrFileNotFound) {
		return sendPINProblem(c, fiber.StatusNotFound, "http-404", "Nicht gefunden", "", nil)
	}
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, pinSafeType(f.ContentType))
	c.Set(fiber.HeaderContentDisposition, PINContentDisposition(f.FileName))
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderCacheControl, "private, no-store")
	// Should a browser still render it, it runs nothing and loads nothing.
	c.Set(fiber.HeaderContentSecurityPolicy, "sandbox; default-src 'none'; frame-ancestors 'none'")
	if f.SHA256 != "" {
		c.Set("X-Content-SHA256", f.SHA256)
	}
	return c.SendStream(rc, int(f.Size)) // fasthttp closes rc when done
}

// pinSafeType passes a stored MIME type through only when it is a plain
// type/subtype; anything else is served as bytes.
func pinSafeType(t string) string {
	t = strings.ToLower(strings.TrimSpace(t))
	slash := strings.IndexByte(t, '/')
	if slash <= 0 || slash == len(t)-1 || len(t) > 100 {
		return "application/octet-stream"
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("/.+-", r)) {
			return "application/octet-stream"
		}
	}
	return t
}

// PINContentDisposition offers a download under its file name, safe for any
// name: directories are dropped, control and bidi characters removed; filename= is
// a quoted ASCII fallback (umlauts spelled out, anything else "_", no quote,
// backslash or percent sign), filename*= the exact UTF-8 name percent-encoded
// per RFC 5987/8187 (only attr-chars stay literal).
func PINContentDisposition(name string) string {
	name = strings.ToValidUTF8(name, "_")
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		switch {
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0), r == 0x2028, r == 0x2029:
			return -1
		case r == 0x200e || r == 0x200f || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069):
			return -1 // bidi controls would let "rechnung\u202Efdp.exe" pass for "rechnungexe.pdf"
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if name == "" || name == "." || name == ".." {
		name = "dokument"
	}
	if utf8.RuneCountInString(name) > 200 {
		name = string([]rune(name)[:200])
	}
	var ascii strings.Builder
	for _, r := range name {
		switch {
		case r == 'ä':
			ascii.WriteString("ae")
		case r == 'ö':
			ascii.WriteString("oe")
		case r == 'ü':
			ascii.WriteString("ue")
		case r == 'Ä':
			ascii.WriteString("Ae")
		case r == 'Ö':
			ascii.WriteString("Oe")
		case r == 'Ü':
			ascii.WriteString("Ue")
		case r == 'ß':
			ascii.WriteString("ss")
		case r < 0x20 || r > 0x7e || r == '"' || r == '\\' || r == '%' || r == ';':
			ascii.WriteByte('_')
		default:
			ascii.WriteRune(r)
		}
	}
	var enc strings.Builder
	for _, b := range []byte(name) {
		if b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || strings.IndexByte("!#$&+-.^_`|~", b) >= 0 {
			enc.WriteByte(b)
		} else {
			fmt.Fprintf(&enc, "%%%02X", b)
		}
	}
	return `attachment; filename="` + ascii.String() + `"; filename*=UTF-8''` + enc.String()
}
