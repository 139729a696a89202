package audit

import (
	"errors"
	"strings"
	"testing"
)

func TestTransitionErrorInGerman(t *testing.T) {
	for _, tc := range []struct {
		from, to Status
		want     string
	}{
		{StatusEingegangen, StatusEntschieden, "Der Status kann nicht von „Eingegangen“ nach „Entschieden“ wechseln. Erlaubt ist: „In Bearbeitung“."},
		{StatusInBearbeitung, StatusAbgeschlossen, "Erlaubt ist: „Rückfrage“ oder „Entschieden“."},
		{StatusAbgeschlossen, StatusInBearbeitung, "Ein Vorgang im Status „Abgeschlossen“ kann nicht mehr geändert werden."},
		{StatusEingegangen, "erfunden", "Der Status „erfunden“ ist unbekannt."},
	} {
		err := CheckTransition(tc.from, tc.to)
		var te *TransitionError
		if !errors.Is(err, ErrTransition) || !errors.As(err, &te) {
			t.Fatalf("%s -> %s: %v", tc.from, tc.to, err)
		}
		if !strings.Contains(te.German(), tc.want) {
			t.Errorf("%s -> %s: %q, want %q", tc.from, tc.to, te.German(), tc.want)
		}
	}
}

func TestCleanReason(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"  Unterlagen vollständig \r\n", "Unterlagen vollständig", true},
		{"Zeile 1\r\nZeile 2", "Zeile 1\nZeile 2", true},
		{strings.Repeat("ß", MaxReasonRunes), strings.Repeat("ß", MaxReasonRunes), true},
		{strings.Repeat("ß", MaxReasonRunes+1), "", false},
		{" \t\n", "", false},
		{"mit \x07 Steuerzeichen", "", false},
		{"kaputt \xff", "", false},
	} {
		got, err := CleanReason(tc.in)
		var ie *InputError
		if tc.ok != (err == nil) || (!tc.ok && (!errors.As(err, &ie) || ie.Field != "reason" || ie.Detail == "")) || got != tc.want {
			t.Errorf("CleanReason(%.20q) = %q, %v", tc.in, got, err)
		}
	}
}
