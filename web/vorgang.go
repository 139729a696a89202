package web

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"postbox/audit"
	"postbox/auth"
)

// VorgaengePath is where the Vorgang API is mounted.
const VorgaengePath = "/api/vorgaenge"

// VorgangOptions configure MountVorgaenge.
type VorgangOptions struct {
	// Before run ahead of every route (tests set the principal here; in the
	// service the session middleware already ran).
	Before []fiber.Handler
}

// MountVorgaenge serves "Meine Vorgänge" (seed 004) and the caseworkers'
// status changes:
//
//	GET  /api/vorgaenge             insured: own Vorgänge; caseworker/team lead: the
//	                                tenant's (?status, type, limit, cursor)
//	GET  /api/vorgaenge/:id         with its status timeline (caseworkers also see
//	                                reasons and who changed it)
//	POST /api/vorgaenge/:id/status  caseworker/team lead: {"status", "reason", "from"?}
//
// Another person's or tenant's Vorgang answers 404 like a missing one.
func MountVorgaenge(r fiber.Router, svc *audit.VorgangService, o VorgangOptions) {
	h := &vorgaenge{svc: svc}
	g := r.Group(VorgaengePath, append(append([]fiber.Handler(nil), o.Before...),
		RequireRole(auth.RoleInsured, auth.RoleCaseworker, auth.RoleTeamLead))...)
	g.Get("/", h.list)
	g.Get("/:id", h.show)
	g.Post("/:id/status", RequireRole(auth.RoleCaseworker, auth.RoleTeamLead), h.changeStatus)
}

type vorgaenge struct{ svc *audit.VorgangService }

type vorgangJSON struct {
	ID          string       `json:"id"`
	Type        string       `json:"type"`
	TypeLabel   string       `json:"type_label"`
	Status      string       `json:"status"`
	StatusLabel string       `json:"status_label"`
	Title       string       `json:"title"`
	CreatedAt   time.Time    `json:"created_at"`
	UpdatedAt   time.Time    `json:"updated_at"`
	PersonID    string       `json:"person_id,omitempty"` // caseworkers only
	Next        []statusJSON `json:"next,omitempty"`      // caseworkers: allowed next statuses
}

type statusJSON struct {
	Status string `json:"status"`
	Label  string `json:"label"`
}

type stepJSON struct {
	From      string    `json:"from"`
	FromLabel string    `json:"from_label"`
	To        string    `json:"to"`
	ToLabel   string    `json:"to_label"`
	At        time.Time `json:"at"`
	Reason    string    `json:"reason,omitempty"`   // caseworkers only
	ActorID   string    `json:"actor_id,omitempty"` // caseworkers only
}

func isTeam(p auth.Principal) bool { return p.Has(auth.RoleCaseworker, auth.RoleTeamLead) }

func toJSON(v audit.Vorgang, team bool) vorgangJSON {
	j := vorgangJSON{ID: v.ID, Type: string(v.Type), TypeLabel: v.Type.Label(), Status: string(v.Status),
		StatusLabel: v.Status.Label(), Title: v.Title, CreatedAt: v.CreatedAt, UpdatedAt: v.UpdatedAt}
	if team {
		j.PersonID = v.PersonID
		for _, s := range v.Status.Next() {
			j.Next = append(j.Next, statusJSON{string(s), s.Label()})
		}
	}
	return j
}

func (h *vorgaenge) list(c *fiber.Ctx) error {
	p := MustPrincipal(c)
	ctx := c.UserContext()
	var (
		list []audit.Vorgang
		err  error
		next string
	)
	if isTeam(p) {
		f := audit.VorgangFilter{Status: audit.Status(c.Query("status")), Type: audit.CaseType(c.Query("type")), Limit: 50}
		if s := c.Query("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 200 {
				return SendProblem(c, fiber.StatusBadRequest, "ungueltige-eingabe", "Ungültige Eingabe", "limit muss eine Zahl von 1 bis 200 sein.")
			}
			f.Limit = n
		}
		if s := c.Query("cursor"); s != "" {
			cur, ok := decodeVorgangCursor(s)
			if !ok {
				return SendProblem(c, fiber.StatusBadRequest, "ungueltige-eingabe", "Ungültige Eingabe", "Der Blätter-Verweis (cursor) ist ungültig.")
			}
			f.Before = &cur
		}
		list, err = h.svc.List(ctx, p.TenantID, f)
		if err == nil && len(list) == f.Limit {
			last := list[len(list)-1]
			next = encodeVorgangCursor(audit.VorgangCursor{CreatedAt: last.CreatedAt, ID: last.ID})
		}
	} else {
		list, err = h.svc.OfPerson(ctx, p.TenantID, p.PersonID)
	}
	if err != nil {
		return h.fail(c, err)
	}
	out := make([]vorgangJSON, len(list))
	for i, v := range list {
		out[i] = toJSON(v, isTeam(p))
	}
	resp := fiber.Map{"vorgaenge": out}
	if next != "" {
		resp["next_cursor"] = next
	}
	return c.JSON(resp)
}

func (h *vorgaenge) show(c *fiber.Ctx) error {
	p := MustPrincipal(c)
	id := c.Params("id")
	var (
		v     audit.Vorgang
		steps []stepJSON
	)
	if isTeam(p) {
		vg, tl, err := h.svc.WithTimeline(c.UserContext(), p.TenantID, id)
		if err != nil {
			return h.fail(c, err)
		}
		v = vg
		for _, ch := range tl {
			steps = append(steps, stepJSON{From: string(ch.From), FromLabel: ch.From.Label(), To: string(ch.To), ToLabel: ch.To.Label(),
				At: ch.At, Reason: ch.Reason, ActorID: ch.ActorID})
		}
	} else {
		vg, tl, err := h.svc.OfPersonWithTimeline(c.UserContext(), p.TenantID, p.PersonID, id)
		if err != nil {
			return h.fail(c, err)
		}
		v = vg
		for _, ch := range tl {
			steps = append(steps, stepJSON{From: string(ch.From), FromLabel: ch.From.Label(), To: string(ch.To), ToLabel: ch.To.Label(), At: ch.At})
		}
	}
	if steps == nil {
		steps = []stepJSON{}
	}
	return c.JSON(fiber.Map{"vorgang": toJSON(v, isTeam(p)), "timeline": steps})
}

type statusRequest struct {
	Status string `json:"status"`
	Reason string `json:"reason"`
	From   string `json:"from"`
}

func (h *vorgaenge) changeStatus(c *fiber.Ctx) error {
	var req statusRequest
	if !strings.HasPrefix(strings.ToLower(c.Get(fiber.HeaderContentType)), fiber.MIMEApplicationJSON) {
		return SendProblem(c, fiber.StatusUnsupportedMediaType, "json-erwartet", "JSON erwartet",
			"Bitte senden Sie die Statusänderung als JSON (Content-Type: application/json).")
	}
	if len(c.Body()) > 16<<10 {
		return SendProblem(c, fiber.StatusRequestEntityTooLarge, "anfrage-zu-gross", "Anfrage zu groß", "Die Anfrage ist zu groß.")
	}
	if err := json.Unmarshal(c.Body(), &req); err != nil {
		return SendProblem(c, fiber.StatusBadRequest, "ungueltiges-json", "Ungültige Anfrage", "Die Anfrage ist kein gültiges JSON.")
	}
	ch, err := h.svc.ChangeStatus(AuditContext(c), audit.StatusChangeRequest{
		VorgangID: c.Params("id"), To: audit.Status(req.Status), Reason: req.Reason, From: audit.Status(req.From),
	})
	if err != nil {
		return h.fail(c, err)
	}
	return c.JSON(fiber.Map{"change": stepJSON{From: string(ch.From), FromLabel: ch.From.Label(), To: string(ch.To),
		ToLabel: ch.To.Label(), At: ch.At, Reason: ch.Reason, ActorID: ch.ActorID}})
}

func (h *vorgaenge) fail(c *fiber.Ctx, err error) error {
	var (
		te *audit.TransitionError
		se *audit.StaleError
		ie *audit.InputError
	)
	switch {
	case errors.Is(err, audit.ErrNotFound):
		return notFound(c)
	case errors.As(err, &te):
		return SendProblem(c, fiber.StatusConflict, "statuswechsel-nicht-erlaubt", "Statuswechsel nicht erlaubt", te.German())
	case errors.As(err, &se):
		return SendProblem(c, fiber.StatusConflict, "vorgang-geaendert", "Vorgang wurde zwischenzeitlich geändert",
			"Der Vorgang steht inzwischen auf „"+se.Current.Label()+"“. Bitte laden Sie ihn neu und prüfen Sie, ob Ihre Änderung noch nötig ist.")
	case errors.As(err, &ie):
		return SendProblem(c, fiber.StatusUnprocessableEntity, "ungueltige-eingabe", "Ungültige Eingabe", ie.Detail)
	}
	return err
}

// The cursor is opaque to clients: base64 of "micros.id".
func encodeVorgangCursor(c audit.VorgangCursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.CreatedAt.UnixMicro(), 10) + "." + c.ID))
}

func decodeVorgangCursor(s string) (audit.VorgangCursor, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return audit.VorgangCursor{}, false
	}
	us, id, ok := strings.Cut(string(raw), ".")
	n, err := strconv.ParseInt(us, 10, 64)
	if !ok || err != nil || id == "" || len(id) > 64 {
		return audit.VorgangCursor{}, false
	}
	return audit.VorgangCursor{CreatedAt: time.UnixMicro(n).UTC(), ID: id}, true
}
