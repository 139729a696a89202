package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"path"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// The page assets (CSS, the upload page's JS, the bundled tus-js-client)
// are compiled into the binary. Each is served under a name that carries
// a hash of its content, so browsers may cache it for a year and still get
// a new file the moment it changes.

//go:embed static
var staticFS embed.FS

// StaticPath is where the assets are served.
const StaticPath = "/static/"

// asset is one embedded file, read once at start.
type asset struct {
	name        string // path inside static/, e.g. "css/site.css"
	hashed      string // e.g. "css/site.3f2a1b9c0d.css"
	contentType string
	body        []byte
	etag        string
}

// assetSet maps both the plain and the hashed name to the file.
type assetSet struct {
	byName   map[string]*asset
	byHashed map[string]*asset
}

func loadAssets(fsys fs.FS) (*assetSet, error) {
	set := &assetSet{byName: map[string]*asset{}, byHashed: map[string]*asset{}}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		h := hex.EncodeToString(sum[:])[:12]
		ext := path.Ext(p)
		a := &asset{name: p, hashed: strings.TrimSuffix(p, ext) + "." + h + ext, contentType: assetType(ext), body: body, etag: `"` + h + `"`}
		set.byName[p] = a
		set.byHashed[a.hashed] = a
		return nil
	})
	return set, err
}

func assetType(ext string) string {
	switch ext {
	case ".css":
		return "text/css; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".txt", ".sh":
		return "text/plain; charset=utf-8"
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

// URL is the cache-busting address of an asset; templates call it as
// {{asset "css/site.css"}}. An unknown name is a programming error that the
// template tests catch, so it panics rather than linking to nothing.
func (s *assetSet) URL(name string) string {
	a, ok := s.byName[name]
	if !ok {
		panic("web: unknown asset " + name)
	}
	return StaticPath + a.hashed
}

// handler serves an asset: hashed names are immutable for a year, plain
// names (scripts that are not linked from a page, e.g. by hand) must be
// revalidated.
func (s *assetSet) handler(c *fiber.Ctx) error {
	name := strings.TrimPrefix(c.Path(), StaticPath)
	cache := "public, max-age=31536000, immutable"
	a, ok := s.byHashed[name]
	if !ok {
		a, ok = s.byName[name]
		cache = "no-cache"
	}
	if !ok || strings.HasSuffix(name, ".sh") {
		return fiber.ErrNotFound
	}
	c.Set(fiber.HeaderCacheControl, cache)
	c.Set(fiber.HeaderETag, a.etag)
	c.Set(fiber.HeaderContentType, a.contentType)
	if c.Get(fiber.HeaderIfNoneMatch) == a.etag {
		return c.SendStatus(fiber.StatusNotModified)
	}
	return c.Send(a.body)
}
