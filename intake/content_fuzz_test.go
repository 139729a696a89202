package intake

import (
	"bytes"
	"path"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"postbox/kasse"
	"postbox/mailbox"
)

// magicOf is an independent reading of the leading bytes of the document
// types the Kassen accept.
func magicOf(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte("%PDF")):
		return "application/pdf"
	case bytes.HasPrefix(head, []byte("\x89PNG\r\n\x1a\n")):
		return "image/png"
	case bytes.HasPrefix(head, []byte{0xff, 0xd8, 0xff}):
		return "image/jpeg"
	case bytes.HasPrefix(head, []byte("II*\x00")), bytes.HasPrefix(head, []byte("MM\x00*")):
		return "image/tiff"
	case len(head) >= 12 && string(head[4:8]) == "ftyp":
		return "image/heif"
	}
	return ""
}

// File type detection: whatever the bytes and the name, an accepted file
// is of an allowed type, carries that type's magic number at its start, and
// its name's extension (if any) belongs to the type. HTML, SVG and scripts
// are never accepted, whatever they are called.
func FuzzCheckContent(f *testing.F) {
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
	for _, s := range []struct {
		head []byte
		name string
	}{
		{[]byte("%PDF-1.7\n%âãÏÓ\n1 0 obj"), "befund.pdf"},
		{[]byte("%PDF-1.4\nPK\x03\x04"), "polyglott.pdf"},       // PDF with a ZIP inside
		{[]byte("PK\x03\x04\x14\x00\x00\x00%PDF-1.4"), "a.pdf"}, // ZIP first
		{[]byte("<html><script>alert(1)</script>"), "bild.png"},
		{append([]byte("<!DOCTYPE html>"), png...), "x.png"},
		{append(png, []byte("<html><script>alert(1)</script>")...), "bild.png"},
		{[]byte("<svg onload=alert(1)>"), "b.svg"},
		{[]byte("#!/bin/sh\nrm -rf /"), "a.pdf"},
		{[]byte("\xff\xd8\xff\xe0\x00\x10JFIF"), "foto.JPG"},
		{[]byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"), "IMG_0001.HEIC"},
		{[]byte("II*\x00\x08\x00\x00\x00"), "scan.tif"},
		{[]byte{}, "leer.pdf"},
	} {
		f.Add(s.head, s.name)
	}
	allowed := kasse.DefaultSettings().AllowedFileTypes
	f.Fuzz(func(t *testing.T, head []byte, name string) {
		mime, err := CheckContent(head, name, allowed)
		if err != nil {
			var ce *ContentError
			if !asContentError(err, &ce) || ce.Detail == "" || !utf8.ValidString(ce.Detail) {
				t.Fatalf("refusal without a German detail: %v", err)
			}
			return
		}
		if !isAllowed(mime, allowed) {
			t.Fatalf("accepted %q as %s, which is not allowed", name, mime)
		}
		if m := magicOf(head); m != mime {
			t.Fatalf("accepted %q as %s, but its first bytes %q say %q", name, mime, head[:min(len(head), 16)], m)
		}
		if ext := strings.ToLower(strings.TrimPrefix(path.Ext(name), ".")); ext != "" {
			ok := false
			for _, e := range docTypes[mime].exts {
				ok = ok || e == ext
			}
			if !ok {
				t.Fatalf("accepted %q as %s with a foreign extension", name, mime)
			}
		}
	})
}

func asContentError(err error, target **ContentError) bool {
	ce, ok := err.(*ContentError)
	if ok {
		*target = ce
	}
	return ok
}

// checkCleanName is what both cleaners promise of a file name: no
// directory part, no control, line or bidi characters (which could hide the
// real extension: "rechnung\u202Efdp.exe"), valid UTF-8, never "." or "..".
func checkCleanName(t *testing.T, fn, in, out string, maxRunes int) {
	t.Helper()
	if strings.ContainsAny(out, `/\`) {
		t.Fatalf("%s(%q) = %q keeps a path separator", fn, in, out)
	}
	if out == "." || out == ".." {
		t.Fatalf("%s(%q) = %q", fn, in, out)
	}
	if !utf8.ValidString(out) {
		t.Fatalf("%s(%q) = %q is not valid UTF-8", fn, in, out)
	}
	for _, r := range out {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r) {
			t.Fatalf("%s(%q) = %q keeps %U", fn, in, out, r)
		}
	}
	if n := utf8.RuneCountInString(out); n > maxRunes {
		t.Fatalf("%s(%q) has %d characters, at most %d", fn, in, n, maxRunes)
	}
}

// File names of uploads (intake) and Postfach attachments (mailbox).
func FuzzCleanFileName(f *testing.F) {
	for _, s := range []string{"AU März.pdf", "../../../etc/passwd", `..\..\windows\system32\cmd.exe`, "..", ".", " .. ", "a/..", "rechnung\u202Efdp.exe",
		"a\x00b\r\nc.pdf", "\xff\xfe.pdf", strings.Repeat("ä", 300) + ".pdf", "x." + strings.Repeat("p", 40), "\u2028.pdf", "C:\\Users\\x\\befund.pdf",
		"con.pdf", "\u200f\u2066evil\u2069.pdf"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		checkCleanName(t, "intake.CleanFilename", name, CleanFilename(name), 255)
		checkCleanName(t, "mailbox.CleanFileName", name, mailbox.CleanFileName(name), 150)
	})
}
