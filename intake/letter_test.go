package intake

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"postbox/kasse"
)

func testLetter(t *testing.T) (Letter, string) {
	t.Helper()
	pin, err := NewPIN()
	if err != nil {
		t.Fatal(err)
	}
	k := kasse.Kasse{ID: "aok-test", Name: "AOK Testland – Die Gesundheitskasse", PortalURL: "https://postfach.example/", Settings: kasse.DefaultSettings()}
	now := time.Date(2026, 11, 23, 14, 38, 0, 0, time.UTC)
	l := Letter{
		Kasse: k,
		Person: kasse.Person{KVNR: kasse.CompleteKVNR("A12345678"), GivenName: "Jürgen", FamilyName: "Groß-Łukasiewicz",
			Street: "Königsallee 7", PostalCode: "40212", City: "Düsseldorf"},
		PIN: pin, CaseType: "krankengeld",
		RequestText: "Bitte senden Sie uns Ihre Arbeitsunfähigkeitsbescheinigung ab dem 20.11.2026 und die Entgeltbescheinigung Ihres Arbeitgebers.",
		Date:        now, ExpiresAt: pinExpiry(now, k.Settings.PINLifetime), UploadURL: UploadPageURL(k, "http://ignored"),
	}
	return l, pin
}

// pdfText extracts the text with poppler's pdftotext, a real PDF reader
// (Debian package poppler-utils, installed by deploy/install).
func pdfText(t *testing.T, pdf []byte) string {
	t.Helper()
	bin, err := exec.LookPath("pdftotext")
	if err != nil {
		t.Fatal("pdftotext not found: install the Debian package poppler-utils (deploy/install does)")
	}
	path := filepath.Join(t.TempDir(), "letter.pdf")
	if err := os.WriteFile(path, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-layout", "-enc", "UTF-8", path, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v\n%s", err, out)
	}
	return string(out)
}

func TestLetterIsAValidPDFWithPINDatesAndAddress(t *testing.T) {
	l, pin := testLetter(t)
	var buf bytes.Buffer
	if err := RenderLetter(&buf, l); err != nil {
		t.Fatal(err)
	}
	pdf := buf.Bytes()
	if !bytes.HasPrefix(pdf, []byte("%PDF-1.")) {
		t.Fatalf("does not start with %%PDF: %q", pdf[:16])
	}
	// startxref points at the cross-reference table.
	m := regexp.MustCompile(`startxref\s+(\d+)\s+%%EOF\s*$`).FindSubmatch(pdf)
	if m == nil {
		t.Fatal("no startxref trailer ending the file")
	}
	off, _ := strconv.Atoi(string(m[1]))
	if off <= 0 || off >= len(pdf) || !bytes.HasPrefix(pdf[off:], []byte("xref")) {
		t.Fatalf("startxref %d does not point at an xref table", off)
	}
	if bytes.Contains(pdf, []byte(pin)) && !bytes.Contains(pdf, []byte("FlateDecode")) {
		t.Fatal("expected compressed content streams")
	}

	text := pdfText(t, pdf)
	norm := strings.Join(strings.Fields(text), " ")
	for _, want := range []string{
		FormatPIN(pin),
		"gültig bis einschließlich 21.01.2027", // 60 days from 23.11.2026 15:38 Berlin, cut back to midnight
		"Datum", "23.11.2026",
		"Jürgen Groß-Lukasiewicz", // Ł is outside the core fonts: printed without the stroke
		"Königsallee 7", "40212 Düsseldorf",
		"AOK Testland – Die Gesundheitskasse",
		"https://postfach.example/einmal-pin/aok-test",
		l.Person.KVNR,
		"Arbeitsunfähigkeitsbescheinigung ab dem 20.11.2026",
		"Krankengeld",
		"höchstens jedoch 60 Tage",
		"Mit der Übermittlung verliert sie ihre Gültigkeit",
		"Nach 5 falschen Eingaben",
	} {
		if !strings.Contains(norm, want) {
			t.Errorf("letter text lacks %q:\n%s", want, text)
		}
	}
}

func TestLetterMetadataDoesNotCarryThePIN(t *testing.T) {
	l, pin := testLetter(t)
	var buf bytes.Buffer
	if err := RenderLetter(&buf, l); err != nil {
		t.Fatal(err)
	}
	info := regexp.MustCompile(`(?s)/Title.{0,80}`).Find(buf.Bytes())
	if bytes.Contains(info, []byte(pin)) || bytes.Contains(info, []byte("Jürgen")) {
		t.Fatalf("PDF info dictionary carries personal data: %q", info)
	}
}

func TestPINExpiryIsCutBackToMidnightBerlin(t *testing.T) {
	for _, tc := range []struct {
		now      time.Time
		lifetime time.Duration
		lastDay  string
	}{
		// 23.11. 15:38 Berlin + 60 days = 22.01. 15:38, cut to 22.01. 00:00: the last whole day is 21.01.
		{time.Date(2026, 11, 23, 14, 38, 0, 0, time.UTC), 60 * 24 * time.Hour, "21.01.2027"},
		// 23:30 UTC on 23.11. is already 24.11. in Berlin.
		{time.Date(2026, 11, 23, 23, 30, 0, 0, time.UTC), 60 * 24 * time.Hour, "22.01.2027"},
		// Summer time: 23:30 UTC on 30.06. is 01:30 on 01.07. in Berlin.
		{time.Date(2026, 6, 30, 23, 30, 0, 0, time.UTC), 30 * 24 * time.Hour, "30.07.2026"},
	} {
		exp := pinExpiry(tc.now, tc.lifetime)
		if exp.Sub(tc.now) > tc.lifetime || tc.lifetime-exp.Sub(tc.now) >= 24*time.Hour {
			t.Errorf("expiry %v is not within the last day of the lifetime from %v", exp, tc.now)
		}
		if got := LastValidDay(exp); got != tc.lastDay {
			t.Errorf("from %v: last valid day %s, want %s", tc.now, got, tc.lastDay)
		}
	}
	short := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	if exp := pinExpiry(short, time.Hour); !exp.Equal(short.Add(time.Hour)) {
		t.Errorf("a lifetime under a day is not cut: %v", exp)
	}
}
