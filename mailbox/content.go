package mailbox

import (
	"bytes"
	"context"
	"io"
	"slices"
)

// Blobs is the part of the blob store the Postfach uses. An
// intake.BlobStore has it through a two-method adapter made where the
// service is wired (intake imports mailbox, so mailbox cannot name intake's
// types). Implementations stream and encrypt at rest.
type Blobs interface {
	// PutStream stores r under key; the length is not known in advance.
	PutStream(ctx context.Context, key string, r io.Reader) error
	// Open streams the object; the caller closes it.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// Delete removes the object; a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// ContentCheck decides from a file's first bytes (at least SniffLen of
// them, or the whole file), its name and the tenant's allowed MIME types
// whether it may be stored, and returns the detected type. The wiring
// passes intake.CheckContent, so the Postfach refuses exactly what the
// upload path refuses; its errors carry a German detail for the user.
type ContentCheck func(head []byte, fileName string, allowed []string) (string, error)

// SniffLen is how many leading bytes a ContentCheck is given.
const SniffLen = 512

// MagicCheck is the fallback ContentCheck when none is wired: it knows the
// default document types (PDF, JPEG, PNG, TIFF, HEIF) by their signatures.
func MagicCheck(head []byte, _ string, allowed []string) (string, error) {
	if len(head) == 0 {
		return "", invalid("datei", "Die Datei ist leer.")
	}
	t := magicType(head)
	if t == "" || !slices.Contains(allowed, t) {
		return t, invalid("datei", "Dieser Dateityp ist nicht erlaubt. Erlaubt sind: %s.", typeNames(allowed))
	}
	return t, nil
}

func magicType(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte("%PDF-")):
		return "application/pdf"
	case bytes.HasPrefix(head, []byte{0xFF, 0xD8, 0xFF}):
		return "image/jpeg"
	case bytes.HasPrefix(head, []byte("\x89PNG\r\n\x1a\n")):
		return "image/png"
	case bytes.HasPrefix(head, []byte("II*\x00")), bytes.HasPrefix(head, []byte("MM\x00*")):
		return "image/tiff"
	case len(head) >= 12 && bytes.Equal(head[4:8], []byte("ftyp")):
		switch string(head[8:12]) {
		case "heic", "heix", "hevc", "hevx", "heim", "heis", "mif1", "msf1":
			return "image/heif"
		}
	}
	return ""
}
