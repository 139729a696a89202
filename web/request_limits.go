package web

import (
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// Defaults of Options.HeaderTimeout and Options.BodyTimeout.
const (
	DefaultHeaderTimeout = 20 * time.Second
	DefaultBodyTimeout   = 5 * time.Minute
)

// refuseEncodedBodies answers 415 to a request whose body carries a
// Content-Encoding. Fiber's Body() (and BodyParser) inflate gzip, deflate
// and brotli bodies without any limit, once per listed coding, so a few
// kilobytes of "Content-Encoding: gzip, gzip" would become gigabytes in
// memory before any handler looks at them. Browsers and tus clients never
// compress request bodies.
func refuseEncodedBodies(c *fiber.Ctx) error {
	if ce := strings.TrimSpace(c.Get(fiber.HeaderContentEncoding)); ce != "" && !strings.EqualFold(ce, "identity") {
		c.Set(fiber.HeaderConnection, "close") // the body is not read
		return SendProblem(c, fiber.StatusUnsupportedMediaType, "kodierung-nicht-erlaubt", "Kodierung nicht unterstützt",
			"Komprimierte Anfragen werden nicht angenommen. Bitte senden Sie die Daten unkomprimiert.")
	}
	return c.Next()
}

// bodyDeadline gives a request, once its headers are in, the body
// timeout: the server's ReadTimeout covers only the request line and the
// headers, so a client that drips its headers (slowloris) is cut after
// HeaderTimeout while an upload has BodyTimeout for its body.
func bodyDeadline(d time.Duration) func(*fasthttp.RequestHeader) fasthttp.RequestConfig {
	return func(*fasthttp.RequestHeader) fasthttp.RequestConfig {
		return fasthttp.RequestConfig{ReadTimeout: d}
	}
}
