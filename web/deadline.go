package web

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
)

// DefaultRequestTimeout bounds an ordinary request (no streamed body) when
// Options.RequestTimeout is 0.
const DefaultRequestTimeout = 15 * time.Second

// requestDeadline gives a request's handler a deadline, so a database that
// hangs (a frozen host that neither answers nor refuses) ends in the German
// 503 instead of a request that waits forever: the expired context makes
// the driver give up with context.DeadlineExceeded, which Options.Unavailable
// classifies. A request whose body streams (uploads) gets none, its body may
// legitimately take long; the storage layer bounds its database calls. A
// streamed answer (download, export) keeps its context alive once the
// handler returned: the deadline only covers the handler.
func (s *Server) requestDeadline(c *fiber.Ctx) error {
	if streamsBody(c) {
		return c.Next()
	}
	ctx := newExpiringCtx(c.UserContext())
	timer := time.AfterFunc(s.opts.RequestTimeout, ctx.expire)
	c.SetUserContext(ctx)
	err := c.Next()
	timer.Stop()
	return err
}

// streamsBody reports whether the handler reads a body that may take long
// to arrive: anything but no body, a form or JSON (those are capped by
// limitWholeBodies).
func streamsBody(c *fiber.Ctx) bool {
	if cl := c.Request().Header.ContentLength(); cl == 0 || cl == -2 { // -2: no body at all
		return false
	}
	ct := strings.ToLower(c.Get(fiber.HeaderContentType))
	return !strings.HasPrefix(ct, fiber.MIMEApplicationForm) && !strings.HasPrefix(ct, fiber.MIMEApplicationJSON)
}

// expiringCtx is a context that ends with context.DeadlineExceeded when
// expire is called; unlike context.WithTimeout its timer can be stopped
// without ending it, so a stream opened by the handler goes on.
type expiringCtx struct {
	context.Context
	done chan struct{}
	mu   sync.Mutex
	err  error
}

func newExpiringCtx(parent context.Context) *expiringCtx {
	ctx := &expiringCtx{Context: parent, done: make(chan struct{})}
	if pd := parent.Done(); pd != nil {
		go func() {
			select {
			case <-pd:
				ctx.end(parent.Err())
			case <-ctx.done:
			}
		}()
	}
	return ctx
}

func (e *expiringCtx) expire() { e.end(context.DeadlineExceeded) }

func (e *expiringCtx) end(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err == nil {
		e.err = err
		close(e.done)
	}
}

func (e *expiringCtx) Done() <-chan struct{} { return e.done }

func (e *expiringCtx) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// Deadline reports none: the timer may be stopped.
func (e *expiringCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
