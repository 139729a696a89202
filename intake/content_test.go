package intake

import (
	"errors"
	"strings"
	"testing"
)

var defaultAllowed = []string{"application/pdf", "image/jpeg", "image/png", "image/tiff", "image/heif"}

func head(prefix string) []byte {
	b := make([]byte, SniffLen)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	copy(b, prefix)
	return b
}

func TestCheckContent(t *testing.T) {
	heic := append([]byte{0, 0, 0, 0x18}, "ftypheic\x00\x00\x00\x00mif1heic"...)
	for _, tc := range []struct {
		name     string
		head     []byte
		filename string
		wantType string
		wantErr  string // substring of the German detail; "" = accepted
	}{
		{"pdf", head("%PDF-1.4\n"), "befund.pdf", "application/pdf", ""},
		{"pdf without extension", head("%PDF-1.4\n"), "befund", "application/pdf", ""},
		{"pdf upper-case extension", head("%PDF-1.4\n"), "BEFUND.PDF", "application/pdf", ""},
		{"jpeg as .jpeg", head("\xff\xd8\xff\xe0"), "foto.jpeg", "image/jpeg", ""},
		{"png", head("\x89PNG\r\n\x1a\n"), "scan.png", "image/png", ""},
		{"tiff little endian", head("II*\x00\x08\x00\x00\x00\x00\x00"), "scan.tif", "image/tiff", ""},
		{"heic from an iPhone", append(heic, head("")...), "IMG_0001.HEIC", "image/heif", ""},
		{"png named .pdf", head("\x89PNG\r\n\x1a\n"), "rechnung.pdf", "image/png", "Die Dateiendung „.pdf“ passt nicht zum Inhalt der Datei (erkannt: PNG)"},
		{"pdf named .jpg", head("%PDF-1.4\n"), "foto.jpg", "application/pdf", "(erkannt: PDF)"},
		{"windows executable", head("MZ\x90\x00"), "bild.jpg", "application/vnd.microsoft.portable-executable", "Der Dateityp „application/vnd.microsoft.portable-executable“ ist nicht erlaubt. Erlaubt sind PDF, JPEG, PNG, TIFF und HEIC."},
		{"linux executable", head("\x7fELF\x02\x01"), "a.pdf", "application/x-executable", "„application/x-executable“"},
		{"zip archive", head("PK\x03\x04"), "a.pdf", "application/zip", "„application/zip“"},
		{"7z archive", head("7z\xbc\xaf\x27\x1c"), "a.pdf", "application/x-7z-compressed", "„application/x-7z-compressed“"},
		{"html", []byte("<!DOCTYPE html><html><body>hallo</body></html>"), "a.pdf", "text/html", "„text/html“"},
		{"html after whitespace", []byte("\n\n  <html><script>x</script>"), "a.pdf", "text/html", "„text/html“"},
		{"shell script", []byte("#!/bin/bash\necho hi\n"), "a.pdf", "text/x-shellscript", "„text/x-shellscript“"},
		{"php", []byte("<?php system($_GET['c']); ?>"), "a.pdf", "application/x-php", "„application/x-php“"},
		{"svg", []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script/></svg>`), "a.png", "image/svg+xml", "„image/svg+xml“"},
		{"plain text", []byte("Sehr geehrte Damen und Herren, anbei"), "a.pdf", "text/plain", "„text/plain“"},
		{"unknown binary", head("\x00\x01\x02\x03\x04"), "a.pdf", "application/octet-stream", "„application/octet-stream“"},
		{"empty", nil, "a.pdf", "", "Die Datei ist leer."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CheckContent(tc.head, tc.filename, defaultAllowed)
			if got != tc.wantType {
				t.Errorf("type %q, want %q", got, tc.wantType)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ce *ContentError
			if !errors.As(err, &ce) || !strings.Contains(ce.Detail, tc.wantErr) {
				t.Fatalf("err %v, want a ContentError containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestCheckContentFollowsTenantSetting(t *testing.T) {
	onlyPDF := []string{"application/pdf"}
	_, err := CheckContent(head("\x89PNG\r\n\x1a\n"), "scan.png", onlyPDF)
	var ce *ContentError
	if !errors.As(err, &ce) || ce.Detail != "Der Dateityp „PNG“ ist nicht erlaubt. Erlaubt sind PDF." {
		t.Fatalf("png at a PDF-only Kasse: %v", err)
	}
	if _, err := CheckContent(head("%PDF-1.7"), "a.pdf", onlyPDF); err != nil {
		t.Fatal(err)
	}
}

func TestCheckDeclared(t *testing.T) {
	for _, tc := range []struct {
		filename, declared, wantErr string
	}{
		{"befund.pdf", "application/pdf", ""},
		{"IMG_1.HEIC", "image/heic", ""}, // browsers say heic; the detection says heif
		{"foto.jpg", "image/pjpeg", ""},
		{"scan", "", ""},
		{"scan.tiff", "application/octet-stream", ""},
		{"setup", "application/x-msdownload", "Der Dateityp „application/x-msdownload“ ist nicht erlaubt. Erlaubt sind PDF, JPEG, PNG, TIFF und HEIC."},
		{"rechnung.exe", "", "Dateien mit der Endung „.exe“ sind nicht erlaubt. Erlaubt sind PDF, JPEG, PNG, TIFF und HEIC."},
		{"brief.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "„.docx“"},
		{"seite.html", "text/html", "„.html“"},
	} {
		err := CheckDeclared(tc.filename, tc.declared, defaultAllowed)
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("%s (%s): refused: %v", tc.filename, tc.declared, err)
			}
			continue
		}
		var ce *ContentError
		if !errors.As(err, &ce) || !strings.Contains(ce.Detail, tc.wantErr) {
			t.Errorf("%s (%s): %v, want %q", tc.filename, tc.declared, err, tc.wantErr)
		}
	}
}

func TestCleanFilename(t *testing.T) {
	long := strings.Repeat("ä", 300) + ".pdf"
	for _, tc := range []struct{ in, want string }{
		{"Befund März 2024.pdf", "Befund März 2024.pdf"},
		{`C:\Users\erika\Desktop\scan.pdf`, "scan.pdf"},
		{"../../etc/passwd", "passwd"},
		{"a\x00b\r\nc.pdf", "abc.pdf"},
		{"evil\u202egpj.pdf", "evilgpj.pdf"}, // right-to-left override hides the real extension
		{"\xff\xfe.pdf", "\uFFFD.pdf"},
		{"..", ""},
		{long, strings.Repeat("ä", 251) + ".pdf"},
	} {
		if got := CleanFilename(tc.in); got != tc.want {
			t.Errorf("CleanFilename(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{2 << 30: "2 GB", 8 << 30: "8 GB", 1536 << 20: "1,5 GB", 10 << 20: "10 MB", 512: "512 Bytes", 1536: "1,5 KB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestParseMetadata(t *testing.T) {
	m, err := ParseMetadata("filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential, filetype YXBwbGljYXRpb24vcGRm")
	if err != nil {
		t.Fatal(err)
	}
	if m["filename"] != "world_domination_plan.pdf" || m["filetype"] != "application/pdf" {
		t.Fatalf("%v", m)
	}
	if v, ok := m["is_confidential"]; !ok || v != "" {
		t.Fatalf("key without value: %q %v", v, ok)
	}
	for _, bad := range []string{"filename !!!", "a YQ==,a Yg==", "a YQ==,,b", "a\tb YQ=="} {
		if _, err := ParseMetadata(bad); err == nil {
			t.Errorf("ParseMetadata(%q) accepted", bad)
		}
	}
}
