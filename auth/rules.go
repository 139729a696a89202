package auth

import (
	"bufio"
	_ "embed"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// Password and username rules of seed 004 ("Meine AOK" FAQ).

// PasswordSpecials are the allowed special characters (seed 004).
const PasswordSpecials = "!#$%&@/()=?`*+~_.;:{[]}\\<>"

const (
	PasswordMinLen = 8
	PasswordMaxLen = 40
	UsernameMaxLen = 12
)

//go:embed blocklist.txt
var blocklistFile string

var (
	blocklistOnce sync.Once
	blocklist     map[string]bool
)

// trivial reports whether a password is on the blocklist: compared in lower
// case, and with digits and special characters stripped, so "Sommer#2026"
// is as trivial as "sommer".
func trivial(pw string) bool {
	blocklistOnce.Do(func() {
		blocklist = map[string]bool{}
		sc := bufio.NewScanner(strings.NewReader(blocklistFile))
		for sc.Scan() {
			w := strings.TrimSpace(sc.Text())
			if w == "" || strings.HasPrefix(w, "# ") {
				continue
			}
			blocklist[w] = true
			if s := lettersOnly(w); len(s) >= 4 {
				blocklist[s] = true
			}
		}
	})
	lower := strings.ToLower(pw)
	if blocklist[lower] {
		return true
	}
	s := lettersOnly(lower)
	return len(s) >= 4 && blocklist[s]
}

func lettersOnly(s string) string {
	return strings.Map(func(r rune) rune {
		if isASCIILetter(r) {
			return r
		}
		return -1
	}, s)
}

func isASCIILetter(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }
func isDigit(r rune) bool       { return r >= '0' && r <= '9' }

// CheckPasswordRules checks a new password against every rule of seed 004
// that needs no history: length, character classes, allowed characters,
// first character, trivial passwords and parts of the username. Each
// violation is its own German message.
func CheckPasswordRules(pw, username string) error {
	var errs FieldErrors
	add := func(msg string) { errs = append(errs, &FieldError{Field: "password", Message: msg}) }
	n := utf8.RuneCountInString(pw)
	if n < PasswordMinLen || n > PasswordMaxLen {
		add(fmt.Sprintf("Das Passwort muss zwischen %d und %d Zeichen lang sein (es hat %d).", PasswordMinLen, PasswordMaxLen, n))
	}
	var letter, digit, special bool
	var bad []string
	seen := map[rune]bool{}
	for _, r := range pw {
		switch {
		case isASCIILetter(r):
			letter = true
		case isDigit(r):
			digit = true
		case strings.ContainsRune(PasswordSpecials, r):
			special = true
		default:
			if !seen[r] {
				seen[r] = true
				bad = append(bad, describeRune(r))
			}
		}
	}
	if !letter {
		add("Das Passwort muss Buchstaben enthalten.")
	}
	if !digit {
		add("Das Passwort muss mindestens eine Ziffer enthalten.")
	}
	if !special {
		add("Das Passwort muss mindestens ein Sonderzeichen enthalten. Erlaubt sind: " + spacedSpecials() + ".")
	}
	if len(bad) > 0 {
		add("Das Passwort enthält nicht erlaubte Zeichen: " + strings.Join(bad, ", ") +
			". Erlaubt sind Buchstaben ohne Umlaute und ß, Ziffern und die Sonderzeichen " + spacedSpecials() + ".")
	}
	if strings.HasPrefix(pw, "?") || strings.HasPrefix(pw, "!") {
		add("Das erste Zeichen des Passworts darf kein ? oder ! sein.")
	}
	if pw != "" && trivial(pw) {
		add("Das Passwort ist zu leicht zu erraten (Trivialpasswort). Bitte wählen Sie ein anderes.")
	}
	if part := usernamePart(pw, username); part != "" {
		add(fmt.Sprintf("Das Passwort darf keine Bestandteile des Benutzernamens enthalten (enthält „%s“).", part))
	}
	return errs.asErr()
}

// usernamePart returns the first part of the username (3 characters or the
// whole name if shorter, at least 2) found in the password, ignoring case.
func usernamePart(pw, username string) string {
	u := []rune(strings.ToLower(username))
	p := strings.ToLower(pw)
	size := min(3, len(u))
	if size < 2 {
		return ""
	}
	for i := 0; i+size <= len(u); i++ {
		if part := string(u[i : i+size]); strings.Contains(p, part) {
			return part
		}
	}
	return ""
}

func spacedSpecials() string {
	parts := make([]string, 0, len(PasswordSpecials))
	for _, r := range PasswordSpecials {
		parts = append(parts, string(r))
	}
	return strings.Join(parts, " ")
}

func describeRune(r rune) string {
	switch r {
	case ' ':
		return "Leerzeichen"
	case '\t':
		return "Tabulator"
	}
	if r < ' ' || r == 0x7f {
		return "Steuerzeichen"
	}
	return "„" + string(r) + "“"
}

// CheckUsername checks a new username (seed 004): 1 to 12 characters, only
// letters and digits; no umlauts, ß, special characters, spaces, dots or
// underscores.
func CheckUsername(u string) error {
	var errs FieldErrors
	add := func(msg string) { errs = append(errs, &FieldError{Field: "username", Message: msg}) }
	n := utf8.RuneCountInString(u)
	if n == 0 {
		add("Bitte geben Sie einen Benutzernamen ein.")
	} else if n > UsernameMaxLen {
		add(fmt.Sprintf("Der Benutzername darf höchstens %d Zeichen lang sein (er hat %d).", UsernameMaxLen, n))
	}
	var bad []string
	seen := map[rune]bool{}
	for _, r := range u {
		if isASCIILetter(r) || isDigit(r) || seen[r] {
			continue
		}
		seen[r] = true
		switch r {
		case 'ä', 'ö', 'ü', 'Ä', 'Ö', 'Ü':
			bad = append(bad, "Umlaute („"+string(r)+"“)")
		case 'ß':
			bad = append(bad, "ß")
		case '.':
			bad = append(bad, "Punkt")
		case '_':
			bad = append(bad, "Unterstrich")
		default:
			bad = append(bad, describeRune(r))
		}
	}
	if len(bad) > 0 {
		add("Der Benutzername darf nur Buchstaben und Ziffern enthalten. Nicht erlaubt: " + strings.Join(bad, ", ") + ".")
	}
	return errs.asErr()
}
