package intake

import (
	"bytes"
	"fmt"
	"net/http"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/h2non/filetype"
)

// SniffLen is how many leading bytes the type detection looks at; every
// magic number h2non/filetype knows lies within them.
const SniffLen = 262

// docType is a document type the Kassen accept, with the file name
// extensions that may go with it.
type docType struct {
	label string
	exts  []string
}

// docTypes are keyed by the MIME type h2non/filetype reports. HEIC photos
// (iPhone) are detected as image/heif.
var docTypes = map[string]docType{
	"application/pdf": {"PDF", []string{"pdf"}},
	"image/jpeg":      {"JPEG", []string{"jpg", "jpeg", "jpe", "jfif"}},
	"image/png":       {"PNG", []string{"png"}},
	"image/tiff":      {"TIFF", []string{"tif", "tiff"}},
	"image/heif":      {"HEIC", []string{"heic", "heif", "hif"}},
}

// declaredAliases maps what browsers send as a file's type to the MIME
// type the detection uses.
var declaredAliases = map[string]string{
	"image/heic":          "image/heif",
	"image/heic-sequence": "image/heif",
	"image/heif-sequence": "image/heif",
	"image/jpg":           "image/jpeg",
	"image/pjpeg":         "image/jpeg",
	"image/x-png":         "image/png",
	"application/x-pdf":   "application/pdf",
	"image/tif":           "image/tiff",
	"image/x-tiff":        "image/tiff",
}

// ContentError refuses a file because of its type (HTTP 415). Detail is
// German and shown to the user as is.
type ContentError struct {
	Detected string // MIME type found in the content, if any
	Detail   string
}

func (e *ContentError) Error() string { return "file type refused: " + e.Detected }

// allowedLabels renders the tenant's allowed types for a message:
// "PDF, JPEG, PNG, TIFF und HEIC".
func allowedLabels(allowed []string) string {
	labels := make([]string, 0, len(allowed))
	for _, m := range allowed {
		if d, ok := docTypes[m]; ok {
			labels = append(labels, d.label)
		} else {
			labels = append(labels, m)
		}
	}
	switch len(labels) {
	case 0:
		return ""
	case 1:
		return labels[0]
	}
	return strings.Join(labels[:len(labels)-1], ", ") + " und " + labels[len(labels)-1]
}

func isAllowed(mime string, allowed []string) bool {
	for _, a := range allowed {
		if a == mime {
			return true
		}
	}
	return false
}

// pngSignature starts every PNG file (RFC 2083, 3.1).
var pngSignature = []byte("\x89PNG\r\n\x1a\n")

// DetectType names the type of a file from its first bytes: the magic
// numbers of h2non/filetype first, then the few text formats that must be
// named in a refusal (scripts, HTML), then net/http's sniffer.
func DetectType(head []byte) string {
	if len(head) == 0 {
		return ""
	}
	if len(head) > SniffLen {
		head = head[:SniffLen]
	}
	if t, err := filetype.Match(head); err == nil && t != filetype.Unknown {
		// h2non/filetype takes "\x89PNG" for PNG; the format's signature
		// is eight bytes, and anything shorter is not a PNG.
		if t.MIME.Value != "image/png" || bytes.HasPrefix(head, pngSignature) {
			return t.MIME.Value
		}
	}
	trimmed := bytes.TrimLeft(head, " \t\r\n\xef\xbb\xbf")
	lower := bytes.ToLower(trimmed)
	switch {
	case bytes.HasPrefix(trimmed, []byte("#!")):
		return "text/x-shellscript"
	case bytes.HasPrefix(lower, []byte("<?php")):
		return "application/x-php"
	case bytes.HasPrefix(lower, []byte("<svg")) || (bytes.HasPrefix(lower, []byte("<?xml")) && bytes.Contains(lower, []byte("<svg"))):
		return "image/svg+xml"
	}
	ct := http.DetectContentType(head)
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return ct
}

// typeName is how a refusal names a type: the short label for document
// types, the MIME type otherwise.
func typeName(mime string) string {
	if d, ok := docTypes[mime]; ok {
		return d.label
	}
	if mime == "" {
		return "unbekannt"
	}
	return mime
}

// fileExt is the lower-case extension of a file name without the dot.
func fileExt(name string) string {
	return strings.ToLower(strings.TrimPrefix(path.Ext(name), "."))
}

// CheckDeclared refuses an upload at creation when the file name's
// extension or the type the browser declared is not allowed, before any
// byte is sent. The content check later decides for good.
func CheckDeclared(filename, declaredType string, allowed []string) error {
	if ext := fileExt(filename); ext != "" {
		ok := false
		for _, m := range allowed {
			for _, e := range docTypes[m].exts {
				ok = ok || e == ext
			}
		}
		if !ok {
			return &ContentError{Detail: fmt.Sprintf("Dateien mit der Endung „.%s“ sind nicht erlaubt. Erlaubt sind %s.", ext, allowedLabels(allowed))}
		}
	}
	dt := strings.ToLower(strings.TrimSpace(declaredType))
	if i := strings.IndexByte(dt, ';'); i >= 0 {
		dt = strings.TrimSpace(dt[:i])
	}
	if a, ok := declaredAliases[dt]; ok {
		dt = a
	}
	switch dt {
	case "", "application/octet-stream", "binary/octet-stream":
		return nil // the browser did not know; the content decides
	}
	if !isAllowed(dt, allowed) {
		return &ContentError{Detected: dt, Detail: fmt.Sprintf("Der Dateityp „%s“ ist nicht erlaubt. Erlaubt sind %s.", dt, allowedLabels(allowed))}
	}
	return nil
}

// CheckContent detects the type of a file from its first bytes (at least
// SniffLen of them, or the whole file if shorter) and refuses it unless the
// tenant allows the type and the file name's extension fits the content.
func CheckContent(head []byte, filename string, allowed []string) (string, error) {
	if len(head) == 0 {
		return "", &ContentError{Detail: "Die Datei ist leer."}
	}
	mime := DetectType(head)
	if !isAllowed(mime, allowed) {
		return mime, &ContentError{Detected: mime, Detail: fmt.Sprintf("Der Dateityp „%s“ ist nicht erlaubt. Erlaubt sind %s.", typeName(mime), allowedLabels(allowed))}
	}
	if ext := fileExt(filename); ext != "" {
		for _, e := range docTypes[mime].exts {
			if e == ext {
				return mime, nil
			}
		}
		return mime, &ContentError{Detected: mime, Detail: fmt.Sprintf(
			"Die Dateiendung „.%s“ passt nicht zum Inhalt der Datei (erkannt: %s). Bitte prüfen Sie, ob Sie die richtige Datei ausgewählt haben.",
			ext, typeName(mime))}
	}
	return mime, nil
}

// CleanFilename keeps a display name from what the client declared: no
// directories, no control characters, valid UTF-8, at most 255 characters.
func CleanFilename(name string) string {
	name = strings.ToValidUTF8(name, "\uFFFD")
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r) {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if name == "." || name == ".." {
		return ""
	}
	// Shorten the stem, not the extension: the type check needs it.
	ext := path.Ext(name)
	if utf8.RuneCountInString(ext) > 16 {
		ext = ""
	}
	stem := strings.TrimSuffix(name, ext)
	for utf8.RuneCountInString(stem)+utf8.RuneCountInString(ext) > 255 {
		_, size := utf8.DecodeLastRuneInString(stem)
		stem = stem[:len(stem)-size]
	}
	return stem + ext
}
