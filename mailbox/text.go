package mailbox

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits are the Postfach's input rules.
type Limits struct {
	MaxSubjectRunes int // default 120
	MaxBodyRunes    int // default 5000
	// MaxAttachments per message. Seed 004 speaks of "eine Datei als
	// Anlage"; the default allows a few, configurable per installation.
	MaxAttachments int // default 5
}

func (l Limits) withDefaults() Limits {
	if l.MaxSubjectRunes <= 0 {
		l.MaxSubjectRunes = 120
	}
	if l.MaxBodyRunes <= 0 {
		l.MaxBodyRunes = 5000
	}
	if l.MaxAttachments <= 0 {
		l.MaxAttachments = 5
	}
	return l
}

// InvalidError is bad input. Detail is German and shown to the user as is;
// Field names the form field.
type InvalidError struct {
	Field  string
	Detail string
}

func (e *InvalidError) Error() string { return "invalid " + e.Field + ": " + e.Detail }

func invalid(field, detail string, args ...any) error {
	return &InvalidError{Field: field, Detail: fmt.Sprintf(detail, args...)}
}

// IsInvalid reports whether err is bad input and returns it.
func IsInvalid(err error) (*InvalidError, bool) {
	var ie *InvalidError
	ok := errors.As(err, &ie)
	return ie, ok
}

// cleanSubject checks a one-line subject.
func (l Limits) cleanSubject(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", invalid("betreff", "Bitte geben Sie einen Betreff ein.")
	}
	if !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return "", invalid("betreff", "Der Betreff darf keine Zeilenumbrüche oder Steuerzeichen enthalten.")
	}
	if n := utf8.RuneCountInString(s); n > l.MaxSubjectRunes {
		return "", invalid("betreff", "Der Betreff ist zu lang (%d Zeichen, höchstens %d).", n, l.MaxSubjectRunes)
	}
	return s, nil
}

// cleanBody checks a plain-text body: line breaks and tabs are fine, other
// control characters are not; CRLF becomes LF.
func (l Limits) cleanBody(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", invalid("text", "Der Text enthält ungültige Zeichen.")
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	if strings.TrimSpace(s) == "" {
		return "", invalid("text", "Bitte geben Sie einen Text ein.")
	}
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }) >= 0 {
		return "", invalid("text", "Der Text enthält Steuerzeichen, die nicht erlaubt sind.")
	}
	if n := utf8.RuneCountInString(s); n > l.MaxBodyRunes {
		return "", invalid("text", "Der Text ist zu lang (%d Zeichen, höchstens %d).", n, l.MaxBodyRunes)
	}
	return strings.TrimRight(s, " \t\n"), nil
}

// CleanFileName keeps the last path element of a client's file name,
// without control, line separator or bidi characters (an override could
// show "rechnung\u202Efdp.exe" as "rechnungexe.pdf"), at most 150
// characters. The name is only ever shown escaped and never used as a path.
func CleanFileName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r) {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if r := []rune(name); len(r) > 150 {
		name = string(r[len(r)-150:])
	}
	if name == "" || name == "." || name == ".." {
		name = "Anlage"
	}
	return name
}

// SearchFold is how subjects are compared in the search: case-folded in Go,
// so SQLite and PostgreSQL match the same way (SQLite's LOWER only knows
// ASCII).
func SearchFold(s string) string { return strings.ToLower(s) }

// LikePattern turns a search text into a LIKE pattern for "contains",
// escaping the wildcards % and _ and the escape character itself with \.
func LikePattern(q string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(SearchFold(q)) + "%"
}
