package kasse

import (
	"errors"
	"testing"
)

func TestValidateKVNR(t *testing.T) {
	// A123456780 is the example KVNR used in public gematik material; its
	// check digit 0 follows from the algorithm.
	for _, tc := range []struct {
		kvnr string
		ok   bool
	}{
		{"A123456780", true},
		{"A123456781", false}, // wrong check digit
		{"a123456780", false}, // lower-case letter
		{"A12345678", false},  // too short
		{"A12345678X", false}, // letter as check digit
		{"1123456780", false}, // no letter
		{CompleteKVNR("T55500012"), true},
	} {
		err := ValidateKVNR(tc.kvnr)
		if tc.ok && err != nil {
			t.Errorf("ValidateKVNR(%q) = %v, want ok", tc.kvnr, err)
		}
		if !tc.ok && !errors.Is(err, ErrKVNR) {
			t.Errorf("ValidateKVNR(%q) = %v, want ErrKVNR", tc.kvnr, err)
		}
	}
}

func TestSettingsValidate(t *testing.T) {
	if err := DefaultSettings().Validate(); err != nil {
		t.Fatalf("default settings invalid: %v", err)
	}
	s := DefaultSettings()
	s.PINLifetime = 0
	if err := s.Validate(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("zero PIN lifetime accepted: %v", err)
	}
	k := Kasse{ID: "Bad ID", Name: "x", Settings: DefaultSettings()}
	if err := k.Validate(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad id accepted: %v", err)
	}
}

func TestDefaultsFollowSeeds(t *testing.T) {
	s := DefaultSettings()
	for _, tc := range []struct {
		name      string
		got, want int64
	}{
		{"PIN 60 Tage (003)", int64(s.PINLifetime.Hours()), 60 * 24},
		{"PIN 5 Versuche (003)", int64(s.PINMaxAttempts), 5},
		{"Freischaltcode 30 Tage (002)", int64(s.UnlockCodeLifetime.Hours()), 30 * 24},
		{"Aktivierungslink 4 Wochen (002)", int64(s.ActivationLinkLifetime.Hours()), 28 * 24},
		{"Einladung 720 h (001)", int64(s.InvitationLifetime.Hours()), 720},
		{"Aktivierungscode 1 h (000)", int64(s.DeviceActivationLifetime.Hours()), 1},
		{"Sperre nach 5 Passwörtern (004)", int64(s.PasswordMaxAttempts), 5},
		{"Passworthistorie 5 (004)", int64(s.PasswordHistory), 5},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, tc.got, tc.want)
		}
	}
}
