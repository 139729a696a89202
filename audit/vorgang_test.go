package audit

import (
	"errors"
	"testing"
)

func TestStatusTransitions(t *testing.T) {
	for _, tc := range []struct {
		from, to Status
		ok       bool
	}{
		{StatusEingegangen, StatusInBearbeitung, true},
		{StatusInBearbeitung, StatusRueckfrage, true},
		{StatusRueckfrage, StatusInBearbeitung, true},
		{StatusInBearbeitung, StatusEntschieden, true},
		{StatusEntschieden, StatusAbgeschlossen, true},
		{StatusEingegangen, StatusEntschieden, false},     // skips the work
		{StatusAbgeschlossen, StatusInBearbeitung, false}, // final
		{StatusEntschieden, StatusEingegangen, false},
		{StatusEingegangen, "erfunden", false},
	} {
		err := CheckTransition(tc.from, tc.to)
		if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, ErrTransition)) {
			t.Errorf("%s -> %s: err = %v, want ok=%v", tc.from, tc.to, err, tc.ok)
		}
	}
}

func TestCaseTypesOfSeed004(t *testing.T) {
	if len(CaseTypes) != 14 {
		t.Fatalf("%d case types, want the 13 of seed 004 plus sonstiges", len(CaseTypes))
	}
	if CaseType("krankengeld").Label() != "Krankengeld" || CaseType("x").Valid() {
		t.Fatal("labels wrong")
	}
}
