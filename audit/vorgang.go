package audit

import (
	"errors"
	"fmt"
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

// CheckTransition says whether a Vorgang may move from one status to another.
func CheckTransition(from, to Status) error {
	if to.Label() == "" {
		return fmt.Errorf("%w: unknown status %q", ErrTransition, to)
	}
	for _, allowed := range transitions[from] {
		if allowed == to {
			return nil
		}
	}
	return fmt.Errorf("%w: von „%s“ nach „%s“", ErrTransition, from.Label(), to.Label())
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
