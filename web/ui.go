package web

// The German server-rendered pages. Every page but the upload page works
// without JavaScript: plain forms POST to the handlers in web/ui_*.go, which
// call the same domain services as the JSON API and answer with a redirect
// (success) or the page again with the errors (failure). Templates are
// html/template, embedded, so every value is escaped for its context; no
// inline script or style exists, matching the CSP.

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"postbox/audit"
	"postbox/auth"
	"postbox/kasse"
	"postbox/mailbox"
)

//go:embed all:templates
var templateFS embed.FS

// Kassen is what the pages need to know about tenants: the name in the
// header and the list on the start page.
type Kassen interface {
	Kasse(ctx context.Context, id string) (kasse.Kasse, error)
	Kassen(ctx context.Context) ([]kasse.Kasse, error)
}

// UIOptions are the services behind the pages. A nil service leaves its
// pages out (they answer 404), so the UI grows with the backends.
type UIOptions struct {
	Kassen Kassen
	// Auth is the account service: login pages, "Abmelden", Mein Konto,
	// account locks and provider user management.
	Auth *auth.Service
	// PIN is the Einmal-PIN desk (web/intake_pin.go): its service, cookie
	// and client hash serve the PIN pages.
	PIN *PINIntake
	// Mailbox is the Postfach (threads, replies, attachments).
	Mailbox *mailbox.Service
	// MailboxMaxFiles is how many files a message may carry (shown on
	// the forms; the Postfach enforces its own limit).
	MailboxMaxFiles int
	// Vorgaenge is the Vorgang tracking (lists, timeline, status changes).
	Vorgaenge *audit.VorgangService
	// Audit answers the auditors' searches (and records each one).
	Audit *audit.AuditorService
	// People names insured persons on the caseworkers' pages.
	People People
	// ClientHash is the keyed hash of the client address for audit events.
	ClientHash func(c *fiber.Ctx) string
	Logger     *slog.Logger
}

// UI renders the pages.
type UI struct {
	o      UIOptions
	assets *assetSet
	pages  map[string]*template.Template
}

// MountUI serves the assets and the pages on the server and makes browser
// requests get German error pages instead of problem+json.
func MountUI(s *Server, o UIOptions) (*UI, error) {
	u, err := newUI(o)
	if err != nil {
		return nil, err
	}
	s.problemPage = u.problemPage
	app := s.App()
	app.Get(StaticPath+"*", u.assets.handler)
	app.Get("/", u.home)
	app.Get("/barrierefreiheit", u.accessibility)
	app.Post("/abmelden", u.logout)
	u.mountPIN(app)
	u.mountAuth(app)
	u.mountPostfach(app)
	u.mountTeamMail(app)
	u.mountTeam(app)
	u.mountAccount(app)
	u.mountProvider(app)
	u.mountAudit(app)
	u.mountRegister(app)
	return u, nil
}

func newUI(o UIOptions) (*UI, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MailboxMaxFiles <= 0 {
		o.MailboxMaxFiles = 5
	}
	if o.ClientHash == nil {
		// The keyed hash of UseAuditOrigin, when the server has one.
		o.ClientHash = func(c *fiber.Ctx) string { return AuditOrigin(c).ClientHash }
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	assets, err := loadAssets(sub)
	if err != nil {
		return nil, fmt.Errorf("ui assets: %w", err)
	}
	u := &UI{o: o, assets: assets}
	if u.pages, err = parsePages(assets); err != nil {
		return nil, fmt.Errorf("ui templates: %w", err)
	}
	return u, nil
}

// parsePages parses every page template together with the layout and the
// partials (templates/_*.html), one template set per page.
func parsePages(assets *assetSet) (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"asset":      assets.URL,
		"date":       germanDate,
		"datetime":   germanDateTime,
		"size":       germanSize,
		"describe":   describedBy,
		"add":        func(a, b int) int { return a + b },
		"pathescape": url.PathEscape,
		"short":      shortDate,
		"list":       func(s ...string) []string { return s },
		// fld describes a text input for the "text-field" partial:
		// fld view name label type value hint autocomplete.
		"fld": func(v *view, name, label, typ, value, hint, autocomplete string) textField {
			return textField{V: v, Name: name, Label: label, Type: typ, Value: value, Hint: hint, Autocomplete: autocomplete}
		},
		"attach": func(v *view, pending []mailbox.Upload, max int) attachField {
			return attachField{V: v, Pending: pending, Max: max}
		},
		"fe": func(e formErrors, f string) fieldRef { return fieldRef{E: e, F: f} },
	}
	base, err := template.New("layout").Funcs(funcs).ParseFS(templateFS, "templates/_*.html")
	if err != nil {
		return nil, err
	}
	files, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(f, "templates/"), ".html")
		if strings.HasPrefix(name, "_") {
			continue
		}
		t, err := base.Clone()
		if err != nil {
			return nil, err
		}
		if _, err := t.ParseFS(templateFS, f); err != nil {
			return nil, err
		}
		pages[name] = t
	}
	return pages, nil
}

// fieldError is one wrong form field with its German message.
type fieldError struct {
	Field   string // the input's name; its id is "f-"+Field
	Message string
}

// formErrors keeps the order in which the fields appear on the page, so the
// error summary at the top reads in the same order as the form.
type formErrors []fieldError

// For returns the message of a field ("" when it is fine).
func (e formErrors) For(field string) string {
	for _, fe := range e {
		if fe.Field == field {
			return fe.Message
		}
	}
	return ""
}

// errorsFrom turns a field → message map into errors in form order; fields
// not in order follow alphabetically.
func errorsFrom(m map[string]string, order ...string) formErrors {
	var out formErrors
	seen := map[string]bool{}
	for _, f := range order {
		if msg, ok := m[f]; ok && msg != "" {
			out, seen[f] = append(out, fieldError{f, msg}), true
		}
	}
	rest := make([]string, 0, len(m))
	for f := range m {
		if !seen[f] {
			rest = append(rest, f)
		}
	}
	sort.Strings(rest)
	for _, f := range rest {
		out = append(out, fieldError{f, m[f]})
	}
	return out
}

// attachField is the argument of the "attachments-field" partial.
type attachField struct {
	V       *view
	Pending []mailbox.Upload
	Max     int
}

// textField is the argument of the "text-field" partial.
type textField struct {
	V                                            *view
	Name, Label, Type, Value, Hint, Autocomplete string
}

// fieldRef is the argument of the "field-error" partial.
type fieldRef struct {
	E formErrors
	F string
}

// describedBy builds aria-describedby for a field: its hint (if any) and
// its error message (if any).
func describedBy(errs formErrors, field string, hint bool) string {
	var ids []string
	if hint {
		ids = append(ids, "f-"+field+"-hinweis")
	}
	if errs.For(field) != "" {
		ids = append(ids, "f-"+field+"-fehler")
	}
	return strings.Join(ids, " ")
}

// navLink is one entry of the main navigation.
type navLink struct {
	Href, Label string
	Current     bool
}

// view is what every page template gets.
type view struct {
	Title     string // page heading and <title>
	KasseName string
	KasseID   string
	Nav       []navLink
	Who       string // "Angemeldet als …"
	CSRF      string
	Logout    string // action of the logout form; "" hides it
	Errors    formErrors
	Notice    string // a success message after a redirect
	Scripts   []string
	Data      any
}

func (u *UI) baseView(c *fiber.Ctx, title string) *view {
	v := &view{Title: title, KasseName: "Sicheres Postfach", CSRF: CSRFTokenOf(c)}
	if p, ok := PrincipalOf(c); ok {
		u.setTenant(c, v, p.TenantID)
		v.Nav = navFor(p.Role, c.Path())
		v.Who = roleLabel(p.Role)
		if _, _, hasSession := SessionOf(c); hasSession {
			v.Logout = "/abmelden"
		}
	}
	if n := notices[c.Query("hinweis")]; n != "" {
		v.Notice = n
	}
	return v
}

// setTenant shows the Kasse's name in the header.
func (u *UI) setTenant(c *fiber.Ctx, v *view, tenantID string) {
	if u.o.Kassen == nil || tenantID == "" {
		return
	}
	k, err := u.o.Kassen.Kasse(c.UserContext(), tenantID)
	if err == nil {
		v.KasseName, v.KasseID = k.Name, k.ID
	}
}

// notices are the fixed success messages a redirect may ask for; the query
// carries only the key, never user text.
var notices = map[string]string{
	"abgemeldet":           "Sie haben sich abgemeldet. Schließen Sie zum Schutz Ihrer Daten auch das Browserfenster, wenn Sie ein fremdes Gerät benutzen.",
	"anmeldung-abgelaufen": "Ihre Anmeldung ist abgelaufen oder wurde beendet. Bitte melden Sie sich erneut an.",
	"gesendet":             "Ihre Nachricht wurde gesendet.",
	"abgeschlossen":        "Die Unterhaltung ist abgeschlossen.",
	"wieder-geoeffnet":     "Die Unterhaltung ist wieder offen.",
	"uebernommen":          "Sie bearbeiten diese Unterhaltung jetzt.",
	"nicht-moeglich":       "Diese Aktion ist hier nicht möglich.",
	"status-geaendert":     "Der Status ist geändert. Die versicherte Person sieht den neuen Stand in „Meine Vorgänge“.",
	"konto-gesperrt":       "Der Zugang ist gesperrt; alle Sitzungen der Person sind beendet.",
	"konto-entsperrt":      "Der Zugang ist entsperrt.",
	"bestaetigt":           "Danke, bestätigt. Sie können jetzt 5 Minuten lang Ihre Daten, die Mobilnummer und Geräte ändern oder Ihr Konto beenden.",
	"daten-gespeichert":    "Ihre Daten sind gespeichert.",
	"email-link":           "Wir haben einen Link an die neue E-Mail-Adresse geschickt. Bitte öffnen Sie ihn innerhalb von 24 Stunden; bis dahin bleibt die bisherige Adresse gültig.",
	"mobil-codes":          "Wir haben Ihnen die Codes geschickt. Bitte geben Sie sie unten ein.",
	"mobil-geaendert":      "Ihre neue Mobilnummer ist bestätigt; die mTAN kommt ab jetzt dorthin.",
	"geraet-entfernt":      "Das Gerät ist entfernt.",
	"geraet-aktiviert":     "Das Gerät ist eingerichtet. Ab jetzt können Sie sich mit dem Code Ihrer Authenticator-App anmelden.",
	"passwort-geaendert":   "Ihr Passwort ist geändert. Ihre anderen Sitzungen wurden beendet.",
	"andere-abgemeldet":    "Alle anderen Sitzungen sind beendet.",
	"keine-anderen":        "Es gab keine anderen Sitzungen.",
	"konto-beendet":        "Ihr Konto ist beendet. Vielen Dank, dass Sie das Postfach genutzt haben.",
	"eingeladen":           "Die Einladung ist verschickt. Sie gilt 720 Stunden (30 Tage).",
	"erneut-eingeladen":    "Die Einladung ist erneut verschickt; die vorherige gilt nicht mehr.",
	"widerrufen":           "Die Einladung ist widerrufen.",
	"archiviert":           "Die Unterhaltung liegt jetzt im Archiv (Auswahl „Ablage: Archiv“).",
	"zurueckgelegt":        "Die Unterhaltung liegt wieder im Posteingang.",
	"passwort-neu":         "Ihr neues Passwort ist gespeichert. Bitte melden Sie sich damit an.",
	"pin-abgemeldet":       "Sie haben sich abgemeldet. Ihre Eingaben und fertig hochgeladenen Dateien bleiben gespeichert; mit einer gültigen Einmal-PIN machen Sie später weiter.",
	"pin-sitzung":          "Bitte melden Sie sich mit Ihrer Krankenversichertennummer und Ihrer Einmal-PIN an. Ihre Sitzung ist abgelaufen oder beendet.",
	"entwurf-gespeichert":  "Ihre Eingaben sind gespeichert. Sie können jederzeit weitermachen, auch nach einer erneuten Anmeldung mit einer gültigen PIN.",
}

func roleLabel(r auth.Role) string {
	switch r {
	case auth.RoleInsured:
		return "Versicherte Person"
	case auth.RoleCaseworker:
		return "Sachbearbeitung"
	case auth.RoleTeamLead:
		return "Teamleitung"
	case auth.RoleAuditor:
		return "Prüfung (Audit)"
	case auth.RoleKasseAdmin:
		return "Verwaltung der Kasse"
	case auth.RoleProviderAdmin:
		return "Leistungserbringer – Verwaltung"
	case auth.RoleProviderUser:
		return "Leistungserbringer"
	}
	return ""
}

// navFor lists the pages of a role; the entry whose path starts the current
// path is marked as the current page.
func navFor(r auth.Role, current string) []navLink {
	var links []navLink
	switch r {
	case auth.RoleInsured:
		links = []navLink{{Href: "/postfach", Label: "Postfach"}, {Href: "/vorgaenge", Label: "Vorgänge"}, {Href: "/konto", Label: "Mein Konto"}}
	case auth.RoleCaseworker, auth.RoleTeamLead:
		links = []navLink{{Href: "/team", Label: "Team-Postfach"}, {Href: "/team/vorgaenge", Label: "Vorgänge"},
			{Href: "/team/einmal-pin", Label: "Einmal-PIN"}, {Href: "/team/konten", Label: "Konten"}}
	case auth.RoleAuditor:
		links = []navLink{{Href: "/pruefung", Label: "Ereignisse"}}
	case auth.RoleProviderAdmin:
		links = []navLink{{Href: "/verwaltung/benutzer", Label: "Benutzer"}}
	}
	if len(links) > 0 && r != auth.RoleInsured {
		links = append(links, navLink{Href: "/konto", Label: "Mein Konto"})
	}
	best := -1
	for i, l := range links {
		if current == l.Href || strings.HasPrefix(current, l.Href+"/") {
			if best < 0 || len(l.Href) > len(links[best].Href) {
				best = i
			}
		}
	}
	if best >= 0 {
		links[best].Current = true
	}
	return links
}

// render writes a page. A template error is a bug: it becomes a 500 and is
// logged (the page is rendered into a buffer first, so no half page leaves).
func (u *UI) render(c *fiber.Ctx, status int, page string, v *view) error {
	t, ok := u.pages[page]
	if !ok {
		return fmt.Errorf("ui: no page template %q", page)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		return fmt.Errorf("ui: render %s: %w", page, err)
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(status).Send(buf.Bytes())
}

// problemPage is the HTML form of a problem: a German error page with the
// same title and detail, and the request id for a support call.
func (u *UI) problemPage(c *fiber.Ctx, p Problem) error {
	v := u.baseView(c, p.Title)
	switch p.Status {
	case fiber.StatusNotFound:
		v.Title = "Seite nicht gefunden"
	case fiber.StatusInternalServerError:
		v.Title = "Ein Fehler ist aufgetreten"
	}
	v.Data = p
	return u.render(c, p.Status, "error", v)
}

// wantsHTML reports whether the request comes from a browser page rather
// than a script or API client.
func wantsHTML(c *fiber.Ctx) bool {
	if strings.HasPrefix(c.Path(), "/api/") || strings.HasPrefix(c.Path(), StaticPath) {
		return false
	}
	return strings.Contains(c.Get(fiber.HeaderAccept), "text/html")
}

func (u *UI) home(c *fiber.Ctx) error {
	if p, ok := PrincipalOf(c); ok {
		if links := navFor(p.Role, ""); len(links) > 0 {
			return c.Redirect(links[0].Href, fiber.StatusSeeOther)
		}
	}
	v := u.baseView(c, "Sicheres Postfach Ihrer Krankenkasse")
	var ks []kasse.Kasse
	if u.o.Kassen != nil {
		var err error
		if ks, err = u.o.Kassen.Kassen(c.UserContext()); err != nil {
			return err
		}
	}
	if len(ks) == 1 {
		v.KasseName, v.KasseID = ks[0].Name, ks[0].ID
	}
	v.Data = struct{ Kassen []kasse.Kasse }{ks}
	return u.render(c, fiber.StatusOK, "home", v)
}

func (u *UI) accessibility(c *fiber.Ctx) error {
	return u.render(c, fiber.StatusOK, "barrierefreiheit", u.baseView(c, "Erklärung zur Barrierefreiheit"))
}

// logout ends the account session (the CSRF check of the session
// middleware has already run for this POST).
func (u *UI) logout(c *fiber.Ctx) error {
	if _, token, ok := SessionOf(c); ok && token != "" && u.o.Auth != nil {
		if err := u.o.Auth.EndSession(c.UserContext(), token); err != nil {
			return err
		}
	}
	ClearSessionCookie(c)
	return c.Redirect("/?hinweis=abgemeldet", fiber.StatusSeeOther)
}

// German formats for what people read.

var berlin = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		return time.FixedZone("MEZ", 3600)
	}
	return loc
}()

func germanDate(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return t.In(berlin).Format("02.01.2006")
}

func germanDateTime(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return t.In(berlin).Format("02.01.2006, 15:04") + " Uhr"
}

// germanSize is a file size as people read it: "1,5 MB", "820 KB", "12 Bytes".
func germanSize(n int64) string {
	switch {
	case n < 0:
		return "unbekannt"
	case n < 1000:
		return fmt.Sprintf("%d Bytes", n)
	case n < 1000*1000:
		return strings.Replace(fmt.Sprintf("%.0f KB", float64(n)/1000), ".", ",", 1)
	case n < 1000*1000*1000:
		return strings.Replace(fmt.Sprintf("%.1f MB", float64(n)/1e6), ".", ",", 1)
	}
	return strings.Replace(fmt.Sprintf("%.2f GB", float64(n)/1e9), ".", ",", 1)
}

// errNoService marks a page whose backend is not wired.
var errNoService = errors.New("ui: service not configured")
