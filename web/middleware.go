package web

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
)

type ctxKey int

const (
	requestIDKey ctxKey = iota
	serverKey
)

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{8,64}$`)

// requestID takes a well-formed X-Request-ID from a proxy or makes one, and
// echoes it, so a user's report can be matched to logs and audit events.
func (s *Server) requestID(c *fiber.Ctx) error {
	id := c.Get(fiber.HeaderXRequestID)
	if !validRequestID.MatchString(id) {
		var b [12]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	c.Locals(requestIDKey, id)
	c.Locals(serverKey, s)
	c.Set(fiber.HeaderXRequestID, id)
	return c.Next()
}

// RequestID returns the id of the current request.
func RequestID(c *fiber.Ctx) string {
	id, _ := c.Locals(requestIDKey).(string)
	return id
}

// accessLog writes one JSON line per request. It logs the route pattern, not
// the path or query, so ids, KVNRs or tokens in URLs never reach the logs;
// no client address either (personal data).
func (s *Server) accessLog(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	if err != nil {
		// Let the error handler write the response now, so status is final.
		if herr := s.handleError(c, err); herr != nil {
			s.opts.Logger.Error("error handler failed", "err", herr)
		}
	}
	finishUnread(c)
	route := c.Route().Path
	status := c.Response().StatusCode()
	d := time.Since(start)
	s.metrics.observe(c.Method(), route, status, d)
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	// Body() of a streamed response would drain the whole stream into
	// memory before it is sent; a stream logs its declared length (-1).
	bytesOut := c.Response().Header.ContentLength()
	if !c.Response().IsBodyStream() {
		bytesOut = len(c.Response().Body())
	}
	s.opts.Logger.LogAttrs(c.UserContext(), level, "request",
		slog.String("request_id", RequestID(c)),
		slog.String("method", c.Method()),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000),
		slog.Int("bytes_out", bytesOut),
	)
	return nil
}

// securityHeaders are sent on every response: no inline script, no framing,
// no referrer leaks, no MIME sniffing.
func securityHeaders(hsts bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		setSecurityHeaders(c, hsts)
		return c.Next()
	}
}

// setSecurityHeaders sets them on one answer. The error handler calls it
// too: fasthttp answers a request it cannot parse (431, 400) through the
// error handler without running any middleware.
func setSecurityHeaders(c *fiber.Ctx, hsts bool) {
	c.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("X-Frame-Options", "DENY")
	c.Set("Referrer-Policy", "no-referrer")
	c.Set("Cross-Origin-Opener-Policy", "same-origin")
	c.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
	if hsts {
		c.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
	}
}

// Problem is an RFC 9457 problem+json body. Detail is German: it is shown to
// the user as is.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// SendProblem writes a problem+json response.
func SendProblem(c *fiber.Ctx, status int, typ, title, detail string) error {
	// A browser navigating to a page gets the same answer as a German page.
	if s, ok := c.Locals(serverKey).(*Server); ok && s.problemPage != nil && wantsHTML(c) {
		return s.problemPage(c, Problem{Title: title, Status: status, Detail: detail, RequestID: RequestID(c)})
	}
	c.Status(status)
	c.Set(fiber.HeaderContentType, "application/problem+json")
	return c.JSON(Problem{Type: "https://postbox.invalid/probleme/" + typ, Title: title, Status: status, Detail: detail, RequestID: RequestID(c)},
		"application/problem+json")
}

// finishUnread lets the client read an answer given before its streamed
// body was read (a 401/403/404/413/503 ... from a middleware or handler that
// never looked at the body): unread bytes would otherwise be parsed as the
// next request, and closing at once makes the kernel reset the connection
// under a client still sending, which then never sees the answer. A small
// rest is drained (the connection stays usable); a large one is closed the
// lingering way (see finishBody). accessLog calls it once the answer is
// final, so it covers every route in one place; a body read whole (forms,
// JSON) or to its end leaves nothing to do, and tus finishes its own.
func finishUnread(c *fiber.Ctx) {
	fctx := c.Context()
	cl := int64(c.Request().Header.ContentLength())
	if cl == 0 || cl == -2 || fctx.Hijacked() {
		return
	}
	stream := fctx.RequestBodyStream()
	if stream == nil {
		return
	}
	// Drain a small rest, each read bounded: a client that waits for the
	// answer before it sends more must not hold the connection long.
	var n int64
	buf := make([]byte, 32<<10)
	for {
		_ = fctx.Conn().SetReadDeadline(time.Now().Add(lingerIdle))
		m, err := stream.Read(buf)
		n += int64(m)
		if err == io.EOF {
			return // the body ended: all of it is read now
		}
		if err != nil {
			fctx.Response.SetConnectionClose() // the client stalled or went away
			return
		}
		if n > maxDrain || cl < 0 {
			break
		}
	}
	left := int64(maxLinger)
	if cl > 0 {
		left = cl - n
	}
	// A large rest, or one of unknown length (chunked): close lingering.
	closeLingering(fctx, left)
}

// RetryAfterUnavailable is the Retry-After (seconds) of a 503 answered while
// a dependency is down.
const RetryAfterUnavailable = "5"

// handleError turns any returned error into a problem+json answer without
// leaking internals.
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	setSecurityHeaders(c, s.opts.HSTS)
	var fe *fiber.Error
	if errors.As(err, &fe) {
		title, detail := germanStatus(fe.Code), ""
		switch fe.Code {
		case fiber.StatusRequestHeaderFieldsTooLarge: // from the server, before any handler
			detail = "Die Anfrage enthält zu viele oder zu lange Kopfzeilen (z. B. Cookies). Bitte löschen Sie die Cookies dieser Seite und versuchen Sie es erneut."
		case fiber.StatusRequestTimeout:
			detail = "Die Anfrage kam zu langsam an. Bitte prüfen Sie Ihre Verbindung und versuchen Sie es erneut."
		}
		return SendProblem(c, fe.Code, "http-"+strconv.Itoa(fe.Code), title, detail)
	}
	// Before the timeout check below: a database or blob store that does not
	// answer in time is a 503, not the client's slow connection.
	if s.opts.Full != nil && s.opts.Full(err) {
		s.opts.Logger.WarnContext(c.UserContext(), "request failed: storage full", "request_id", RequestID(c), "err", err)
		return SendProblem(c, fiber.StatusInsufficientStorage, "speicher-voll", "Speicher voll",
			"Der Speicher des Dienstes ist fast voll, deshalb kann Ihre Eingabe gerade nicht gespeichert werden. Bitte versuchen Sie es später erneut. Vorgangsnummer: "+RequestID(c)+".")
	}
	if s.opts.Unavailable != nil && s.opts.Unavailable(err) {
		s.opts.Logger.WarnContext(c.UserContext(), "request failed: dependency unavailable", "request_id", RequestID(c), "err", err)
		c.Set(fiber.HeaderRetryAfter, RetryAfterUnavailable)
		return SendProblem(c, fiber.StatusServiceUnavailable, "dienst-nicht-verfuegbar", "Dienst vorübergehend nicht verfügbar",
			"Ein benötigter Dienst ist gerade nicht erreichbar. Es ist nichts verloren gegangen. Bitte versuchen Sie es in einigen Sekunden erneut. Vorgangsnummer: "+RequestID(c)+".")
	}
	if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		// The client's body stopped before BodyTimeout ran out.
		c.Context().SetConnectionClose()
		return SendProblem(c, fiber.StatusRequestTimeout, "http-408", germanStatus(fiber.StatusRequestTimeout),
			"Die Anfrage kam zu langsam an. Bitte prüfen Sie Ihre Verbindung und versuchen Sie es erneut.")
	}
	s.opts.Logger.ErrorContext(c.UserContext(), "request failed", "request_id", RequestID(c), "err", err)
	return SendProblem(c, fiber.StatusInternalServerError, "interner-fehler", "Interner Fehler",
		"Bei der Verarbeitung ist ein Fehler aufgetreten. Bitte versuchen Sie es später erneut und nennen Sie bei Rückfragen die Vorgangsnummer "+RequestID(c)+".")
}

func germanStatus(code int) string {
	switch code {
	case fiber.StatusNotFound:
		return "Nicht gefunden"
	case fiber.StatusMethodNotAllowed:
		return "Methode nicht erlaubt"
	case fiber.StatusRequestEntityTooLarge:
		return "Anfrage zu groß"
	case fiber.StatusBadRequest:
		return "Ungültige Anfrage"
	case fiber.StatusForbidden:
		return "Keine Berechtigung"
	case fiber.StatusUnauthorized:
		return "Anmeldung erforderlich"
	case fiber.StatusTooManyRequests:
		return "Zu viele Anfragen"
	case fiber.StatusRequestHeaderFieldsTooLarge:
		return "Kopfzeilen zu groß"
	case fiber.StatusRequestTimeout:
		return "Zeitüberschreitung"
	case fiber.StatusUnsupportedMediaType:
		return "Format nicht unterstützt"
	}
	return "Fehler"
}

// limitWholeBodies refuses form and JSON bodies above BodyLimit before any
// handler reads them. With StreamRequestBody the server no longer rejects
// large bodies itself, and reading a form or JSON body (also for the CSRF
// check) takes it whole into memory. Uploads (tus, multipart) stream and are
// limited by the tenant's file size rules instead.
func (s *Server) limitWholeBodies(c *fiber.Ctx) error {
	ct := strings.ToLower(c.Get(fiber.HeaderContentType))
	if !strings.HasPrefix(ct, fiber.MIMEApplicationForm) && !strings.HasPrefix(ct, fiber.MIMEApplicationJSON) {
		return c.Next()
	}
	n := c.Request().Header.ContentLength()
	if n > s.opts.BodyLimit || n == -1 { // -1: chunked, length unknown
		c.Set(fiber.HeaderConnection, "close")
		return SendProblem(c, fiber.StatusRequestEntityTooLarge, "anfrage-zu-gross", "Anfrage zu groß",
			fmt.Sprintf("Formulardaten dürfen höchstens %d KB groß sein.", s.opts.BodyLimit>>10))
	}
	return c.Next()
}
