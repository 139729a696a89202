// Package web is the Fiber application: routes, middleware, the German pages
// and the JSON API. It translates HTTP to calls of the domain packages and
// knows no storage driver.
package web

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	fiberrecover "github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/prometheus/client_golang/prometheus"
)

// Check is one dependency probed by /readyz.
type Check struct {
	Name string // e.g. "postgres", "minio", "clickhouse", "smtp"
	Ping func(ctx context.Context) error
}

// Options configure the server.
type Options struct {
	Checks   []Check
	Registry *prometheus.Registry // /metrics serves this registry
	Logger   *slog.Logger
	// BodyLimit caps request bodies that are read whole (forms, JSON).
	// Upload bodies stream and are limited by the tenant's file size rule.
	BodyLimit int
	HSTS      bool // only sent when the portal is served over https
	// Unavailable reports whether an error means a dependency (database,
	// blob store) cannot be reached right now; such errors answer 503 with
	// Retry-After instead of 500. nil: never.
	Unavailable func(error) bool
	// Full reports whether an error means the local volume is full; such
	// errors answer 507. nil: never.
	Full func(error) bool
	// HeaderTimeout is how long a client may take to send the request
	// line and headers (slowloris); BodyTimeout how long then for the
	// body. 0: DefaultHeaderTimeout, DefaultBodyTimeout.
	HeaderTimeout, BodyTimeout time.Duration
	// RequestTimeout bounds the handler of a request without a streamed
	// body; 0: DefaultRequestTimeout. See requestDeadline.
	RequestTimeout time.Duration
}

// Server is the HTTP side of postbox.
type Server struct {
	app     *fiber.App
	opts    Options
	metrics *httpMetrics
	// problemPage renders a problem as an HTML page for browsers (set by
	// MountUI); nil: problem+json for everyone.
	problemPage func(c *fiber.Ctx, p Problem) error
}

// New builds the Fiber app with middleware and the operational routes.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.BodyLimit == 0 {
		opts.BodyLimit = 1 << 20
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.HeaderTimeout <= 0 {
		opts.HeaderTimeout = DefaultHeaderTimeout
	}
	if opts.BodyTimeout <= 0 {
		opts.BodyTimeout = DefaultBodyTimeout
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	s := &Server{opts: opts, metrics: newHTTPMetrics(opts.Registry)}
	s.app = fiber.New(fiber.Config{
		AppName:               "postbox",
		DisableStartupMessage: true,
		// Uploads arrive as streams; nothing reads a whole upload into memory.
		StreamRequestBody: true,
		BodyLimit:         opts.BodyLimit,
		ReadTimeout:       opts.HeaderTimeout, // the body's is set per request, bodyDeadline
		WriteTimeout:      5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorHandler:      s.handleError,

		// Multipart bodies (Postfach attachments) are read part by part by
		// their handler; fasthttp's pre-parse would buffer them whole.
		DisablePreParseMultipartForm: true,

		// The portal sits behind a reverse proxy in production; the client
		// address is only ever stored as a keyed hash.
		ProxyHeader: "",
	})
	s.app.Server().HeaderReceived = bodyDeadline(opts.BodyTimeout)
	s.app.Use(s.requestID, s.accessLog, securityHeaders(opts.HSTS), s.recoverPanics(), refuseEncodedBodies, s.limitWholeBodies, s.requestDeadline)
	s.app.Get("/healthz", s.healthz)
	s.app.Get("/readyz", s.readyz)
	s.app.Get("/metrics", s.metricsHandler())
	return s
}

// recoverPanics turns a panicking handler into an error, which the error
// handler answers with a 500 (with the security headers); without it one
// bug in a handler would end the whole process.
func (s *Server) recoverPanics() fiber.Handler {
	return fiberrecover.New(fiberrecover.Config{EnableStackTrace: true, StackTraceHandler: func(c *fiber.Ctx, _ any) {
		s.opts.Logger.ErrorContext(c.UserContext(), "handler panicked", "request_id", RequestID(c), "stack", string(debug.Stack()))
	}})
}

// App exposes the Fiber app so feature packages can mount their routes and
// tests can call app.Test.
func (s *Server) App() *fiber.App { return s.app }

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.app.Listener(ln) }

// Shutdown stops accepting connections and waits for in-flight requests
// until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.app.ShutdownWithContext(ctx)
}

func (s *Server) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

// readyz probes every dependency in parallel with a short timeout and names
// each one that is down. "?require=postgres,minio" answers 503 only when one
// of the named checks is down (the body still reports all): a Kubernetes
// readiness probe must not take every replica out of the Service because
// ClickHouse or SMTP is away, whose work waits in the outboxes.
func (s *Server) readyz(c *fiber.Ctx) error {
	var required map[string]bool
	if q := c.Query("require"); q != "" {
		required = map[string]bool{}
		known := map[string]bool{}
		for _, chk := range s.opts.Checks {
			known[chk.Name] = true
		}
		for _, name := range strings.Split(q, ",") {
			if !known[name] {
				return SendProblem(c, fiber.StatusBadRequest, "unbekannte-pruefung", "Ungültige Anfrage",
					"Die Prüfung „"+name+"“ gibt es hier nicht. Bekannt sind: "+strings.Join(slices.Sorted(maps.Keys(known)), ", ")+".")
			}
			required[name] = true
		}
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 3*time.Second)
	defer cancel()
	type result struct {
		Name   string `json:"name"`
		Status string `json:"status"`
		Error  string `json:"error,omitempty"`
	}
	results := make([]result, len(s.opts.Checks))
	var wg sync.WaitGroup
	for i, chk := range s.opts.Checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := result{Name: chk.Name, Status: "up"}
			if err := chk.Ping(ctx); err != nil {
				r.Status, r.Error = "down", errorSummary(err)
			}
			results[i] = r
		}()
	}
	wg.Wait()
	down := []string{}
	for _, r := range results {
		if r.Status != "up" {
			down = append(down, r.Name)
		}
	}
	sort.Strings(down)
	status, code := "ready", fiber.StatusOK
	for _, name := range down {
		if required == nil || required[name] {
			status, code = "not ready", fiber.StatusServiceUnavailable
		}
	}
	return c.Status(code).JSON(fiber.Map{"status": status, "down": down, "checks": results})
}

// errorSummary keeps a dependency error short; it never contains request data.
func errorSummary(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return msg
}
