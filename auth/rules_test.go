package auth

import (
	"errors"
	"strings"
	"testing"
)

func TestPasswordRules(t *testing.T) {
	for _, tc := range []struct {
		name, pw, user string
		want           []string // substrings of the expected messages, one per violation; none: valid
	}{
		{"valid", "Kx7#mPq2vR", "erika", nil},
		{"valid with every kind of special", "Ab1!#$%&@/()=?`*+~_.;:{[]}\\<>", "erika", nil},
		{"exactly 8", "Kx7#mPq2", "erika", nil},
		{"exactly 40", "Kx7#" + strings.Repeat("mPq2", 9), "erika", nil},
		{"7 characters", "Kx7#mPq", "erika", []string{"zwischen 8 und 40 Zeichen lang sein (es hat 7)"}},
		{"41 characters", "Kx7#" + strings.Repeat("mPq2", 9) + "Z", "erika", []string{"(es hat 41)"}},
		{"no digit", "Kxz#mPqvR", "erika", []string{"mindestens eine Ziffer"}},
		{"no special", "Kx7wmPq2vR", "erika", []string{"mindestens ein Sonderzeichen"}},
		{"no letter", "1234#5678%9", "erika", []string{"Buchstaben enthalten"}},
		{"umlaut", "Kx7#mPqävR", "erika", []string{"nicht erlaubte Zeichen: „ä“"}},
		{"space and ß", "Kx7# mPßvR", "erika", []string{"nicht erlaubte Zeichen: Leerzeichen, „ß“"}},
		{"special outside the set", "Kx7#mPq2v-R", "erika", []string{"nicht erlaubte Zeichen: „-“"}},
		{"starts with ?", "?Kx7mPq2vR", "erika", []string{"darf kein ? oder ! sein"}},
		{"starts with !", "!Kx7mPq2vR", "erika", []string{"darf kein ? oder ! sein"}},
		{"! later is fine", "Kx7!mPq2vR", "erika", nil},
		{"trivial as is", "passwort1!", "erika", []string{"Trivialpasswort"}},
		{"trivial ignoring case", "PassWort1!", "erika", []string{"Trivialpasswort"}},
		{"trivial with digits and specials stripped", "Hallo#2026", "erika", []string{"Trivialpasswort"}},
		{"trivial season and year", "Sommer2026!", "erika", []string{"Trivialpasswort"}},
		{"trivial keyboard walk", "Qwertz#123", "erika", []string{"Trivialpasswort"}},
		{"contains the username", "Erika#2026x", "erika", []string{"Bestandteile des Benutzernamens enthalten (enthält „eri“)"}},
		{"contains a 3-letter part of the username, other case", "xyRIK#7abc", "erika", []string{"„rik“"}},
		{"2 letters of the username are fine", "Kx7#erPq2v", "erika", nil},
		{"several violations at once", "?ä", "erika", []string{"(es hat 2)", "Ziffer", "Sonderzeichen", "nicht erlaubte Zeichen", "darf kein ? oder !"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckPasswordRules(tc.pw, tc.user)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("valid password refused: %v", err)
				}
				return
			}
			var fes FieldErrors
			if !errors.As(err, &fes) {
				t.Fatalf("err = %v, want FieldErrors", err)
			}
			if len(fes) != len(tc.want) {
				t.Fatalf("got %d messages %q, want %d", len(fes), fes.Messages(), len(tc.want))
			}
			all := strings.Join(fes.Messages(), "\n")
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("messages %q lack %q", all, w)
				}
			}
			for _, fe := range fes {
				if fe.Field != "password" {
					t.Errorf("field %q", fe.Field)
				}
			}
		})
	}
}

func TestUsernameRules(t *testing.T) {
	for _, tc := range []struct {
		user string
		want string // "" valid
	}{
		{"erika", ""},
		{"E", ""},
		{"Erika1980ab", ""},
		{"abcdefghijkl", ""},
		{"abcdefghijklm", "höchstens 12 Zeichen lang sein (er hat 13)"},
		{"", "Bitte geben Sie einen Benutzernamen ein"},
		{"jürgen", "Umlaute („ü“)"},
		{"strauß", "ß"},
		{"erika m", "Leerzeichen"},
		{"erika.m", "Punkt"},
		{"erika_m", "Unterstrich"},
		{"erika-m", "„-“"},
		{"erika@m", "„@“"},
	} {
		t.Run(tc.user, func(t *testing.T) {
			err := CheckUsername(tc.user)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid username refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestBlocklistIsLoaded(t *testing.T) {
	n := 0
	for _, line := range strings.Split(blocklistFile, "\n") {
		if line != "" && !strings.HasPrefix(line, "# ") {
			n++
			if line != strings.ToLower(line) {
				t.Fatalf("blocklist entry %q is not lower case", line)
			}
		}
	}
	if n < 1000 {
		t.Fatalf("blocklist has only %d entries", n)
	}
	for _, pw := range []string{"123456", "password", "passwort", "hallo123", "qwertz", "schatz", "fussball", "bayern"} {
		if !trivial(pw) {
			t.Errorf("%q is not blocked", pw)
		}
	}
}
