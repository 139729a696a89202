package web

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"regexp"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"postbox/audit"
	"postbox/auth"
)

// AuditPath is where the auditors' API is mounted.
const AuditPath = "/api/audit"

// AuditOptions configure MountAudit.
type AuditOptions struct {
	// Before run ahead of every route (tests set the principal here).
	Before []fiber.Handler
	Logger *slog.Logger
	// ExportTimeout bounds one export (default 1 hour).
	ExportTimeout time.Duration
}

// MountAudit serves the auditors' read-only API for their own Kasse:
//
//	GET /api/audit/events        one page (?from, to, type, actor, subject_type,
//	                             subject_id, outcome, limit ≤ 1000, cursor)
//	GET /api/audit/export.csv    every matching event, streamed as CSV
//	GET /api/audit/export.ndjson every matching event, streamed as JSON lines
//	GET /api/audit/counts        events per UTC day and type
//
// from and to are RFC 3339 times or dates (YYYY-MM-DD, UTC); from is
// inclusive, to exclusive, and a date as to includes that whole day. Every
// request is recorded as an audit.query event before it is answered.
func MountAudit(r fiber.Router, svc *audit.AuditorService, o AuditOptions) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ExportTimeout <= 0 {
		o.ExportTimeout = time.Hour
	}
	h := &auditAPI{svc: svc, o: o}
	g := r.Group(AuditPath, append(append([]fiber.Handler(nil), o.Before...), RequireRole(auth.RoleAuditor))...)
	g.Get("/events", h.events)
	g.Get("/export.csv", func(c *fiber.Ctx) error { return h.export(c, "csv") })
	g.Get("/export.ndjson", func(c *fiber.Ctx) error { return h.export(c, "ndjson") })
	g.Get("/counts", h.counts)
}

var fileSafe = regexp.MustCompile(`[^A-Za-z0-9_-]`)

type auditAPI struct {
	svc *audit.AuditorService
	o   AuditOptions
}

// filterOf reads the query parameters; the tenant comes from the principal.
func filterOf(c *fiber.Ctx) (audit.Filter, error) {
	f := audit.Filter{
		Type: c.Query("type"), ActorID: c.Query("actor"), SubjectType: c.Query("subject_type"),
		SubjectID: c.Query("subject_id"), Outcome: audit.Outcome(c.Query("outcome")),
	}
	var err error
	if f.From, err = parseWhen(c.Query("from"), false); err != nil {
		return f, &audit.InputError{Field: "from", Detail: "from muss ein Datum (JJJJ-MM-TT) oder ein Zeitpunkt nach RFC 3339 sein."}
	}
	if f.To, err = parseWhen(c.Query("to"), true); err != nil {
		return f, &audit.InputError{Field: "to", Detail: "to muss ein Datum (JJJJ-MM-TT) oder ein Zeitpunkt nach RFC 3339 sein."}
	}
	return f, nil
}

// parseWhen reads a time bound; a date as an upper bound means the end of
// that day.
func parseWhen(s string, upper bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.Parse(time.DateOnly, s); err == nil {
		if upper {
			d = d.AddDate(0, 0, 1)
		}
		return d, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

func (h *auditAPI) events(c *fiber.Ctx) error {
	f, err := filterOf(c)
	if err != nil {
		return h.fail(c, err)
	}
	if s := c.Query("limit"); s != "" {
		if f.Limit, err = strconv.Atoi(s); err != nil || f.Limit < 1 {
			return h.fail(c, &audit.InputError{Field: "limit", Detail: "limit muss eine Zahl zwischen 1 und 1000 sein."})
		}
	}
	if s := c.Query("cursor"); s != "" {
		if f.After, err = audit.DecodeCursor(s); err != nil {
			return h.fail(c, &audit.InputError{Field: "cursor", Detail: "Der Blätter-Verweis (cursor) ist ungültig."})
		}
	}
	evs, next, err := h.svc.Page(AuditContext(c), f)
	if err != nil {
		return h.fail(c, err)
	}
	out := make([]audit.EventJSON, len(evs))
	for i, e := range evs {
		out[i] = e.JSON()
	}
	resp := fiber.Map{"events": out}
	if next != nil {
		resp["next_cursor"] = audit.EncodeCursor(next)
	}
	return c.JSON(resp)
}

func (h *auditAPI) counts(c *fiber.Ctx) error {
	f, err := filterOf(c)
	if err != nil {
		return h.fail(c, err)
	}
	counts, err := h.svc.Counts(AuditContext(c), f)
	if err != nil {
		return h.fail(c, err)
	}
	type row struct {
		Day   string `json:"day"`
		Type  string `json:"type"`
		Count int64  `json:"count"`
	}
	out := make([]row, len(counts))
	for i, dc := range counts {
		out[i] = row{dc.Day.UTC().Format(time.DateOnly), dc.Type, dc.Count}
	}
	return c.JSON(fiber.Map{"counts": out})
}

// export streams the events: rows are written to the connection as the
// store delivers them (chunked), the whole result is never in memory. The
// query is checked and recorded first, so a bad filter still gets a
// problem+json answer.
func (h *auditAPI) export(c *fiber.Ctx, format string) error {
	f, err := filterOf(c)
	if err != nil {
		return h.fail(c, err)
	}
	octx := AuditContext(c)
	scan, err := h.svc.Export(octx, format, f)
	if err != nil {
		return h.fail(c, err)
	}
	name := "audit-" + fileSafe.ReplaceAllString(audit.OriginFrom(octx).TenantID, "_") + "-" + time.Now().UTC().Format("20060102-150405")
	if format == "csv" {
		c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
		name += ".csv"
	} else {
		c.Set(fiber.HeaderContentType, "application/x-ndjson; charset=utf-8")
		name += ".ndjson"
	}
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+name+`"`)
	c.Set(fiber.HeaderCacheControl, "no-store")
	reqID, log, timeout := RequestID(c), h.o.Logger, h.o.ExportTimeout
	c.Context().SetBodyStreamWriter(func(bw *bufio.Writer) {
		// The request's own context ends with the handler; the stream runs
		// after it, bounded by the timeout and by the client reading on.
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		xw, err := audit.NewExportWriter(bw, format)
		if err != nil {
			return
		}
		n := 0
		err = scan(ctx, func(e audit.Event) error {
			if err := xw.Write(e); err != nil {
				return err
			}
			n++
			if n%500 == 0 { // a chunk every few hundred rows keeps both sides' buffers small
				if err := xw.Flush(); err != nil {
					return err
				}
				return bw.Flush()
			}
			return nil
		})
		if err != nil {
			log.Warn("audit export broke off", "request_id", reqID, "rows", n, "err", err)
			_ = xw.Fail(err)
		} else {
			_ = xw.Flush()
		}
		_ = bw.Flush()
	})
	return nil
}

func (h *auditAPI) fail(c *fiber.Ctx, err error) error {
	var ie *audit.InputError
	switch {
	case errors.Is(err, audit.ErrNotFound):
		return notFound(c)
	case errors.As(err, &ie):
		return SendProblem(c, fiber.StatusBadRequest, "ungueltiger-filter", "Ungültiger Filter", ie.Detail)
	case errors.Is(err, audit.ErrInvalidFilter):
		return SendProblem(c, fiber.StatusBadRequest, "ungueltiger-filter", "Ungültiger Filter", "Der Filter ist ungültig.")
	}
	return err
}
