package auth

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"

	"postbox/kasse"
)

func TestUnlockLetterShowsCodeDatesAndAddress(t *testing.T) {
	bin, err := exec.LookPath("pdftotext")
	if err != nil {
		t.Fatal("pdftotext not found: install the Debian package poppler-utils (deploy/install does)")
	}
	k := kasse.Kasse{ID: "aok-test", Name: "AOK Testland – Die Gesundheitskasse"}
	p := kasse.Person{GivenName: "Jürgen", FamilyName: "Groß-Łukasiewicz", Street: "Königsallee 7", PostalCode: "40212", City: "Düsseldorf"}
	now := time.Date(2026, 11, 23, 23, 30, 0, 0, time.UTC) // already 24.11. in Berlin
	for _, tc := range []struct{ purpose, subject string }{
		{PurposeUnlockCode, "Ihr Freischaltcode für den Online-Zugang"},
		{PurposeResetLetter, "Ihr Code für ein neues Passwort"},
	} {
		pdf, err := renderUnlockLetter(unlockLetter{Kasse: k, Person: p, Username: "jgross", Code: "ABCDEFGHJKLM", Purpose: tc.purpose,
			Date: now, ExpiresAt: now.Add(14 * 24 * time.Hour), PortalURL: "https://postfach.example/"})
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-layout", "-enc", "UTF-8", "-", "-")
		cmd.Stdin = bytes.NewReader(pdf)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("pdftotext: %v", err)
		}
		text := strings.Join(strings.Fields(string(out)), " ")
		for _, want := range []string{tc.subject, "ABCD-EFGH-JKLM", "Datum 24.11.2026", "gültig bis einschließlich 08.12.2026",
			"Jürgen Groß-Lukasiewicz", "Königsallee 7", "40212 Düsseldorf", "Ihr Benutzername: jgross", "https://postfach.example/"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s letter lacks %q:\n%s", tc.purpose, want, text)
			}
		}
	}
}
