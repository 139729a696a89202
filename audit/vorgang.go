package audit

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// CaseType is the kind of a Vorgang. The trackable kinds are those of seed
// 004 ("Meine Vorgänge"); "sonstiges" takes documents that fit none.
type CaseType string

// CaseTypes lists every kind with its German label, in the order of seed 004.
var CaseTypes = []struct {
	Type  CaseType
	Label string
}{
	{"egk", "Elektronische Gesundheitskarte (eGK)"},
	{"fahrkosten", "Fahrkostenerstattung"},
	{"hilfsmittel", "Hilfsmittel"},
	{"haushaltshilfe", "Haushaltshilfe"},
	{"haeusliche_krankenpflege", "Häusliche Krankenpflege"},
	{"kfo", "Kieferorthopädische Behandlung"},
	{"kinderkrankengeld", "Kinderkrankengeld"},
	{"krankengeld", "Krankengeld"},
	{"mutterschaftsgeld", "Mutterschaftsgeld"},
	{"pflege", "Pflege (Erstantrag, Höherstufungsantrag, Umstellungsantrag)"},
	{"unfallfragebogen", "Unfallfragebogen"},
	{"zahnersatz", "Zahnersatz"},
	{"zuzahlungsbefreiung", "Zuzahlungsbefreiung"},
	{"sonstiges", "Sonstiges Anliegen"},
}

// Valid reports whether t is a known case type.
func (t CaseType) Valid() bool { return t.Label() != "" }

// Label is the German name shown to users.
func (t CaseType) Label() string {
	for _, c := range CaseTypes {
		if c.Type == t {
			return c.Label
		}
	}
	return ""
}

// Status of a Vorgang.
type Status string

const (
	StatusEingegangen   Status = "eingegangen"
	StatusInBearbeitung Status = "in_bearbeitung"
	StatusRueckfrage    Status = "rueckfrage"
	StatusEntschieden   Status = "entschieden"
	StatusAbgeschlossen Status = "abgeschlossen"
)

// Label is the German name shown to users.
func (s Status) Label() string {
	switch s {
	case StatusEingegangen:
		return "Eingegangen"
	case StatusInBearbeitung:
		return "In Bearbeitung"
	case StatusRueckfrage:
		return "Rückfrage"
	case StatusEntschieden:
		return "Entschieden"
	case StatusAbgeschlossen:
		return "Abgeschlossen"
	}
	return ""
}

// transitions are the allowed status changes. A Rückfrage goes back to
// "in Bearbeitung" once answered; "abgeschlossen" is final.
var transitions = map[Status][]Status{
	StatusEingegangen:   {StatusInBearbeitung},
	StatusInBearbeitung: {StatusRueckfrage, StatusEntschieden},
	StatusRueckfrage:    {StatusInBearbeitung},
	StatusEntschieden:   {StatusAbgeschlossen},
}

// ErrTransition is returned for a status change the model forbids.
var ErrTransition = errors.New("status change not allowed")

// TransitionError is a status change the model forbids. It matches
// ErrTransition with errors.Is; German is the message for the user.
type TransitionError struct {
	From, To Status
}

func (e *TransitionError) Error() string {
	if e.To.Label() == "" {
		return fmt.Sprintf("%s: unknown status %q", ErrTransition, e.To)
	}
	return fmt.Sprintf("%s: von „%s“ nach „%s“", ErrTransition, e.From.Label(), e.To.Label())
}

func (e *TransitionError) Is(target error) bool { return target == ErrTransition }

// German explains the refusal to a caseworker, naming the allowed steps.
func (e *TransitionError) German() string {
	if e.To.Label() == "" {
		return fmt.Sprintf("Der Status „%s“ ist unbekannt.", e.To)
	}
	next := e.From.Next()
	if len(next) == 0 {
		return fmt.Sprintf("Ein Vorgang im Status „%s“ kann nicht mehr geändert werden.", e.From.Label())
	}
	labels := make([]string, len(next))
	for i, s := range next {
		labels[i] = "„" + s.Label() + "“"
	}
	return fmt.Sprintf("Der Status kann nicht von „%s“ nach „%s“ wechseln. Erlaubt ist: %s.",
		e.From.Label(), e.To.Label(), strings.Join(labels, " oder "))
}

// CheckTransition says whether a Vorgang may move from one status to
// another; a refusal is a *TransitionError.
func CheckTransition(from, to Status) error {
	if to.Label() == "" {
		return &TransitionError{From: from, To: to}
	}
	for _, allowed := range transitions[from] {
		if allowed == to {
			return nil
		}
	}
	return &TransitionError{From: from, To: to}
}

// Next lists the statuses a Vorgang in status s may move to.
func (s Status) Next() []Status { return transitions[s] }

// Vorgang is a case of an insured person with a status they can follow.
type Vorgang struct {
	ID        string
	TenantID  string
	PersonID  string
	Type      CaseType
	Status    Status
	Title     string // short, e.g. what the PIN letter asked for
	CreatedAt time.Time
	UpdatedAt time.Time
}

// StatusChange is one step of a Vorgang's timeline.
type StatusChange struct {
	ID        string
	TenantID  string
	VorgangID string
	From, To  Status
	Reason    string
	ActorID   string
	At        time.Time
}
