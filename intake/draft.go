package intake

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"postbox/audit"
)

// Draft is the short form of a submission, saved on every change (seed 003:
// "Die Eingaben werden automatisch gespeichert. Beim nächsten Login sind Ihre
// bereits getätigten Eingaben wieder sichtbar"). A person has at most one
// open draft, whichever of their PINs they log in with.
type Draft struct {
	ID          string
	TenantID    string
	PersonID    string
	CaseType    audit.CaseType // Anliegen
	Subject     string         // Betreff
	Message     string         // Nachricht an die Kasse
	Phone       string         // Telefon für Rückfragen (optional)
	CreatedAt   time.Time
	UpdatedAt   time.Time
	SubmittedAt time.Time
	VorgangID   string
}

// Field limits of the form. The hard limits bound what autosave stores of
// a field that is already too long, so a person can shorten their text
// instead of losing it, while nobody can park megabytes in a draft.
const (
	MaxSubject = 120
	MaxMessage = 2000
	MaxPhone   = 30

	hardSubject = 1000
	hardMessage = 20000
	hardPhone   = 100
)

// DraftInput is the form as the page sends it on every change.
type DraftInput struct {
	CaseType string
	Subject  string
	Message  string
	Phone    string
}

// PINRequest is what the Kasse asked for in one of the person's valid letters.
type PINRequest struct {
	CaseType   audit.CaseType
	Text       string
	ValidUntil time.Time // the PIN's expiry
}

// DraftView is the draft page: the form as saved, the uploads, what the
// Kasse asked for, and what is still wrong with the form.
type DraftView struct {
	Draft    Draft
	Files    []DraftFile
	Requests []PINRequest
	Problems map[string]string
}

// Problems checks the draft's fields and returns a German message per wrong
// field; forSubmit also requires the fields a submission needs.
func (d Draft) Problems(forSubmit bool) map[string]string {
	p := map[string]string{}
	switch {
	case d.CaseType == "" && forSubmit:
		p["case_type"] = "Bitte wählen Sie Ihr Anliegen aus der Liste."
	case d.CaseType != "" && !d.CaseType.Valid():
		p["case_type"] = "Bitte wählen Sie Ihr Anliegen aus der Liste."
	}
	if n := utf8.RuneCountInString(d.Subject); n > MaxSubject {
		p["subject"] = fmt.Sprintf("Der Betreff darf höchstens %d Zeichen lang sein (jetzt %d).", MaxSubject, n)
	} else if n == 0 && forSubmit {
		p["subject"] = "Bitte geben Sie einen Betreff ein, zum Beispiel „Arbeitsunfähigkeitsbescheinigung“."
	}
	if n := utf8.RuneCountInString(d.Message); n > MaxMessage {
		p["message"] = fmt.Sprintf("Ihre Nachricht darf höchstens %d Zeichen lang sein (jetzt %d). Bitte kürzen Sie sie.", MaxMessage, n)
	}
	if msg := phoneProblem(d.Phone); msg != "" {
		p["phone"] = msg
	}
	return p
}

func phoneProblem(phone string) string {
	if phone == "" {
		return ""
	}
	if utf8.RuneCountInString(phone) > MaxPhone {
		return fmt.Sprintf("Die Telefonnummer darf höchstens %d Zeichen lang sein.", MaxPhone)
	}
	digits := 0
	for i, r := range phone {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '+' && i == 0, r == ' ', r == '/', r == '-', r == '(', r == ')':
		default:
			return "Bitte geben Sie die Telefonnummer nur mit Ziffern, Leerzeichen und den Zeichen + / - ( ) an, zum Beispiel 0511 1234567."
		}
	}
	if digits < 6 || digits > 20 {
		return "Die Telefonnummer muss zwischen 6 und 20 Ziffern haben."
	}
	return ""
}

// Draft returns the person's open draft (creating an empty one, with the
// Anliegen of the letter they logged in with) and their uploads.
func (s *PINService) Draft(ctx context.Context, a Actor) (DraftView, error) {
	var v DraftView
	err := s.Store.InPINTx(ctx, func(tx PINTx) error {
		d, err := s.openDraft(ctx, tx, a)
		if err != nil {
			return err
		}
		v, err = s.draftView(ctx, tx, d)
		return err
	})
	return v, err
}

// SaveDraft stores the form as typed. Values that break a rule are saved
// too (nothing typed is lost) and reported in Problems; only a field far
// beyond its limit is refused with an *InputError and nothing is saved.
func (s *PINService) SaveDraft(ctx context.Context, a Actor, in DraftInput) (DraftView, error) {
	in.CaseType = cleanText(in.CaseType, false)
	in.Subject = cleanText(in.Subject, false)
	in.Message = cleanText(in.Message, true)
	in.Phone = cleanText(in.Phone, false)
	hard := map[string]string{}
	for _, f := range []struct {
		name, value string
		limit, hard int
	}{
		{"subject", in.Subject, MaxSubject, hardSubject},
		{"message", in.Message, MaxMessage, hardMessage},
		{"phone", in.Phone, MaxPhone, hardPhone},
		{"case_type", in.CaseType, 40, 40},
	} {
		if n := utf8.RuneCountInString(f.value); n > f.hard {
			hard[f.name] = fmt.Sprintf("Dieses Feld darf höchstens %d Zeichen lang sein (jetzt %d); die Änderung wurde nicht gespeichert.", f.limit, n)
		}
	}
	if len(hard) > 0 {
		return DraftView{}, &InputError{Fields: hard}
	}
	var v DraftView
	err := s.Store.InPINTx(ctx, func(tx PINTx) error {
		d, err := s.openDraft(ctx, tx, a)
		if err != nil {
			return err
		}
		d.CaseType, d.Subject, d.Message, d.Phone = audit.CaseType(in.CaseType), in.Subject, in.Message, in.Phone
		d.UpdatedAt = tx.Now()
		if err := tx.SaveDraft(ctx, d); err != nil {
			return err
		}
		v, err = s.draftView(ctx, tx, d)
		return err
	})
	return v, err
}

func (s *PINService) openDraft(ctx context.Context, tx PINTx, a Actor) (Draft, error) {
	if a.PersonID == "" || a.TenantID == "" {
		return Draft{}, ErrDraftNotFound
	}
	d, err := tx.OpenDraft(ctx, a.TenantID, a.PersonID, true)
	if err == nil || !errors.Is(err, ErrDraftNotFound) {
		return d, err
	}
	now := tx.Now()
	d = Draft{ID: uuid.NewString(), TenantID: a.TenantID, PersonID: a.PersonID, CreatedAt: now, UpdatedAt: now}
	// Start with the Anliegen of the letter behind this session, else of the
	// newest valid letter.
	pins, err := tx.PINsOfPerson(ctx, a.TenantID, a.PersonID)
	if err != nil {
		return d, err
	}
	sessionPIN := ""
	if a.SessionID != "" {
		if sess, err := tx.PINSessionByHash(ctx, a.SessionID); err == nil {
			sessionPIN = sess.PINID
		}
	}
	for _, p := range pins {
		if p.ID == sessionPIN {
			d.CaseType = p.CaseType
			break
		}
	}
	if d.CaseType == "" {
		for _, p := range pins {
			if pinOpen(p, now) {
				d.CaseType = p.CaseType
				break
			}
		}
	}
	return tx.CreateDraft(ctx, d)
}

func pinOpen(p EinmalPIN, now time.Time) bool {
	return p.UsedAt.IsZero() && p.RevokedAt.IsZero() && now.Before(p.ExpiresAt)
}

func (s *PINService) draftView(ctx context.Context, tx PINTx, d Draft) (DraftView, error) {
	v := DraftView{Draft: d, Problems: d.Problems(false)}
	files, err := tx.PersonUploads(ctx, d.TenantID, d.PersonID)
	if err != nil {
		return v, err
	}
	v.Files = files
	pins, err := tx.PINsOfPerson(ctx, d.TenantID, d.PersonID)
	if err != nil {
		return v, err
	}
	now := tx.Now()
	for _, p := range pins {
		if pinOpen(p, now) {
			v.Requests = append(v.Requests, PINRequest{CaseType: p.CaseType, Text: p.RequestText, ValidUntil: p.ExpiresAt})
		}
	}
	return v, nil
}
