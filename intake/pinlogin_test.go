package intake

import (
	"strings"
	"testing"
	"time"
)

func TestLoginRefusalsSayWhatToDoInGerman(t *testing.T) {
	for _, tc := range []struct {
		err  LoginError
		want []string
	}{
		{LoginError{Reason: RefusedWrongPIN, TriesLeft: 3}, []string{"Die PIN ist nicht korrekt. Sie haben noch 3 Versuche."}},
		{LoginError{Reason: RefusedWrongPIN, TriesLeft: 1}, []string{"Sie haben noch 1 Versuch."}},
		{LoginError{Reason: RefusedLocked, MaxTries: 5}, []string{"5-mal falsch eingegeben", "neuen Brief", "Ihre Krankenkasse"}},
		{LoginError{Reason: RefusedExpired, Lifetime: 60 * 24 * time.Hour}, []string{"abgelaufen", "älter als 60 Tage", "neue PIN"}},
		{LoginError{Reason: RefusedUsed}, []string{"bereits verwendet", "Übermittlung", "neue PIN"}},
		{LoginError{Reason: RefusedEGK}, []string{"Gesundheitskarte (eGK) ist nicht mehr gültig", "Krankenkasse"}},
		{LoginError{Reason: RefusedRateLimited, RetryAfter: 4*time.Minute + time.Second}, []string{"zu viele Anmeldeversuche", "5 Minuten"}},
	} {
		d := tc.err.Detail()
		for _, w := range tc.want {
			if !strings.Contains(d, w) {
				t.Errorf("%s: %q lacks %q", tc.err.Reason, d, w)
			}
		}
		if tc.err.Title() == "" || tc.err.Title() == "Anmeldung nicht möglich" {
			t.Errorf("%s has no own title", tc.err.Reason)
		}
	}
}

func TestCSRFTokenIsBoundToItsSession(t *testing.T) {
	a, _ := newToken()
	b, _ := newToken()
	if !CheckCSRF(a, CSRFToken(a)) {
		t.Fatal("own token refused")
	}
	for _, presented := range []string{CSRFToken(b), "", a, strings.ToUpper(CSRFToken(a))} {
		if CheckCSRF(a, presented) {
			t.Fatalf("accepted %q", presented)
		}
	}
	if CheckCSRF("", CSRFToken("")) {
		t.Fatal("accepted a token without a session")
	}
	if HashSessionToken(a) == a || len(HashSessionToken(a)) != 64 {
		t.Fatal("session hash")
	}
}

func TestSubjectHashIsPerTenantAndApartFromPINHashes(t *testing.T) {
	h := NewPINHasher([]byte("0123456789abcdef0123456789abcdef"))
	kvnr := "A123456780"
	if h.SubjectHash("k1", kvnr) != h.SubjectHash("k1", " a123456780 ") {
		t.Error("same KVNR typed differently hashes differently")
	}
	if h.SubjectHash("k1", kvnr) == h.SubjectHash("k2", kvnr) {
		t.Error("counter shared across tenants")
	}
	if h.SubjectHash("k1", kvnr) == h.Hash("k1", kvnr) {
		t.Error("KVNR counter key equals a PIN hash")
	}
	if other := NewPINHasher([]byte("fedcba9876543210fedcba9876543210")); other.SubjectHash("k1", kvnr) == h.SubjectHash("k1", kvnr) {
		t.Error("hash does not depend on the key")
	}
}

func TestWellFormedPIN(t *testing.T) {
	pin, _ := NewPIN()
	for in, want := range map[string]bool{
		pin: true,
		NormalizePIN(FormatPIN(strings.ToLower(pin))): true,
		pin[:14]:       false,
		pin + "A":      false,
		pin[:14] + "0": false, // no zero in the alphabet
		pin[:14] + "O": false,
		pin[:14] + "I": false,
		pin[:14] + "Ä": false,
		"":             false,
	} {
		if got := WellFormedPIN(in); got != want {
			t.Errorf("WellFormedPIN(%q) = %v", in, got)
		}
	}
}

func TestCleanTextKeepsTextStorableEverywhere(t *testing.T) {
	for _, tc := range []struct {
		in        string
		multiline bool
		want      string
	}{
		{"  Grüße\r\naus Köln\t ", true, "Grüße\naus Köln"},
		{"eine\nZeile", false, "eine Zeile"},
		{"NUL\x00weg\x1b[31m", true, "NULweg[31m"},
		{"kaputt\xff\xfe", false, "kaputt\uFFFD"},
		{"\u0085C1", false, "C1"},
	} {
		if got := cleanText(tc.in, tc.multiline); got != tc.want {
			t.Errorf("cleanText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestGermanSize(t *testing.T) {
	for n, want := range map[int64]string{
		0:          "0 Bytes",
		999:        "999 Bytes",
		1000:       "1,0 kB (1.000 Bytes)",
		123456:     "123,5 kB (123.456 Bytes)",
		52428800:   "52,4 MB (52.428.800 Bytes)",
		2147483648: "2,1 GB (2.147.483.648 Bytes)",
	} {
		if got := GermanSize(n); got != want {
			t.Errorf("GermanSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestNormalizeKVNR(t *testing.T) {
	for in, want := range map[string]string{"a123456780": "A123456780", " A 1234 56780 ": "A123456780", "A123456780": "A123456780"} {
		if got := NormalizeKVNR(in); got != want {
			t.Errorf("NormalizeKVNR(%q) = %q", in, got)
		}
	}
}
