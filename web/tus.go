package web

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"postbox/intake"
)

// TusPath is where the tus upload endpoint is mounted.
const TusPath = "/api/uploads"

// maxDrain is how much of an unread request body is read and dropped so
// the connection can serve the next request; beyond it the connection is
// closed instead (an early refusal of a large chunk).
const maxDrain = 8 << 20

// TusOptions configure MountTus.
type TusOptions struct {
	// Before run ahead of the handler on every upload route (e.g. a
	// middleware that sets the principal; the session middleware of
	// UseSessions already runs for every route).
	Before []fiber.Handler
	// ClientHash returns the keyed hash of the client address for audit
	// events; nil leaves it empty.
	ClientHash func(c *fiber.Ctx) string
}

// MountTus serves tus 1.0.0 uploads at TusPath (collection) and
// TusPath/:id, and GET TusPath as the caller's upload list (JSON).
//
// Every request needs a principal with a person (the Einmal-PIN login or
// an insured person's session); otherwise 401. tus requests other than
// OPTIONS must carry "Tus-Resumable: 1.0.0", a header a cross-site form or
// a no-CORS fetch cannot send. Both session kinds may act here: each one
// whose proof the request carries (its X-CSRF-Token; for the PIN session
// also Tus-Resumable) is offered, and the upload's owner decides which one
// acts (chooseUploadSession).
func MountTus(r fiber.Router, h *intake.TusHandler, o TusOptions) {
	handler := tusHandler(h, o)
	for _, path := range []string{TusPath, TusPath + "/", TusPath + "/:id"} {
		r.All(path, append(append([]fiber.Handler(nil), o.Before...), chooseUploadSession(h.UploadOwner), handler)...)
	}
}

// uploadJSON is an upload as the upload page sees it.
type uploadJSON struct {
	ID         string    `json:"id"`
	Filename   string    `json:"filename"`
	Size       int64     `json:"size"` // -1 while the length is deferred
	Offset     int64     `json:"offset"`
	Type       string    `json:"type,omitempty"`
	Status     string    `json:"status"`
	ScanStatus string    `json:"scan_status,omitempty"`
	SHA256     string    `json:"sha256,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
}

// countingReader counts what the handler read of the request body.
type countingReader struct {
	r   io.Reader
	n   int64
	eof bool
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.r == nil {
		c.eof = true
		return 0, io.EOF
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err == io.EOF {
		c.eof = true
	}
	return n, err
}

func tusHandler(h *intake.TusHandler, o TusOptions) fiber.Handler {
	return func(c *fiber.Ctx) error {
		method := c.Method()
		if method == fiber.MethodPost {
			// tus: clients that cannot send PATCH or DELETE say so here.
			if m := strings.ToUpper(strings.TrimSpace(c.Get("X-HTTP-Method-Override"))); m != "" {
				method = m
			}
		}
		p, authenticated := PrincipalOf(c)
		if method == fiber.MethodGet && c.Params("id") == "" {
			if !authenticated || p.PersonID == "" {
				return SendProblem(c, fiber.StatusUnauthorized, "anmeldung-erforderlich", "Anmeldung erforderlich",
					"Bitte melden Sie sich mit Ihrer Krankenversichertennummer und Ihrer Einmal-PIN an.")
			}
			return listUploads(c, h)
		}
		cl := int64(c.Request().Header.ContentLength())
		if cl == -2 { // no body at all (no Content-Length, not chunked)
			cl = 0
		}
		body := &countingReader{r: c.Context().RequestBodyStream()}
		req := &intake.TusRequest{
			Method:        method,
			ID:            c.Params("id"),
			Header:        func(name string) string { return strings.Clone(c.Get(name)) },
			Body:          body,
			ContentLength: cl,
			Principal:     p,
			Authenticated: authenticated,
			RequestID:     RequestID(c),
		}
		if o.ClientHash != nil {
			req.ClientHash = o.ClientHash(c)
		}
		resp := h.Serve(c.UserContext(), req)
		for _, kv := range resp.Header {
			c.Set(kv[0], kv[1])
		}
		var err error
		if resp.Problem != nil {
			err = SendProblem(c, resp.Status, resp.Problem.Type, resp.Problem.Title, resp.Problem.Detail)
		} else {
			c.Status(resp.Status)
		}
		finishBody(c, body, cl)
		return err
	}
}

// finishBody makes sure the connection can go on and the answer reaches
// the client: with streamed bodies, unread bytes would be parsed as the
// next request. A small rest is drained. A large one (an early refusal of a
// big chunk: 409, 423, 413, ...) is not worth keeping the connection for,
// but closing at once would make the kernel reset the connection, and the
// client, still sending, might never read the answer. So the connection is
// closed the lingering way: the answer (with "Connection: close") is
// written, the sending side shut, and what the client still sends is read
// and dropped for a while.
func finishBody(c *fiber.Ctx, body *countingReader, cl int64) {
	if body.eof || (cl >= 0 && body.n >= cl) {
		return
	}
	if rest := cl - body.n; cl >= 0 && rest <= maxDrain {
		n, err := io.Copy(io.Discard, io.LimitReader(body, rest))
		if err == nil && n == rest {
			return
		}
	}
	left := int64(maxLinger)
	if cl >= 0 {
		left = cl - body.n
	}
	closeLingering(c.Context(), left)
}

// closeLingering sends the answer with "Connection: close", then reads and
// drops up to left bytes the client still sends (linger) before closing,
// so the kernel does not reset the connection under the answer. fasthttp
// writes no answer of its own for a hijacked request told so, and keeps the
// request context valid until the hijack handler returns; the fiber.Ctx
// must not be used there.
func closeLingering(fctx *fasthttp.RequestCtx, left int64) {
	fctx.Response.SetConnectionClose()
	fctx.HijackSetNoResponse(true)
	fctx.Hijack(func(conn net.Conn) {
		w := bufio.NewWriter(conn)
		if err := fctx.Response.Write(w); err != nil || w.Flush() != nil {
			return
		}
		linger(conn, left)
	})
}

// maxLinger bounds what a lingering close reads of a body of unknown length.
const maxLinger = 4 << 30

// linger half-closes conn after the answer and drops up to left bytes the
// client still sends, giving up after lingerIdle without data.
func linger(conn net.Conn, left int64) {
	raw := conn
	if u, ok := conn.(interface{ UnsafeConn() net.Conn }); ok {
		raw = u.UnsafeConn()
	}
	if hc, ok := raw.(interface{ CloseWrite() error }); ok {
		_ = hc.CloseWrite()
	}
	buf := make([]byte, 32<<10)
	for left > 0 {
		_ = conn.SetReadDeadline(time.Now().Add(lingerIdle))
		n, err := conn.Read(buf[:min(int64(len(buf)), left)])
		left -= int64(n)
		if err != nil {
			return
		}
	}
}

const lingerIdle = 5 * time.Second

func listUploads(c *fiber.Ctx, h *intake.TusHandler) error {
	p, _ := PrincipalOf(c)
	list, err := h.ListUploads(c.UserContext(), p)
	if err != nil {
		return err
	}
	out := make([]uploadJSON, 0, len(list))
	for _, u := range list {
		j := uploadJSON{ID: u.ID, Filename: u.Filename, Size: u.Length, Offset: u.Offset, Type: u.DetectedType,
			Status: string(u.Status), ScanStatus: string(u.ScanStatus), SHA256: u.SHA256, CreatedAt: u.CreatedAt}
		if u.Status != intake.StatusFinal {
			j.ExpiresAt = u.ExpiresAt
		}
		out = append(out, j)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(http.StatusOK).JSON(fiber.Map{"uploads": out})
}
