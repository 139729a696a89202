package audit

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"postbox/kasse"
)

// ErrNotFound is returned for a Vorgang that does not exist or that the
// caller may not see (another tenant's, another person's): the two are
// indistinguishable on purpose.
var ErrNotFound = errors.New("vorgang not found")

// ErrStale is returned when a status change names the status the caller
// saw and the Vorgang has moved on since (someone else changed it).
var ErrStale = errors.New("vorgang status changed meanwhile")

// StaleError is ErrStale with the status the Vorgang has now.
type StaleError struct{ Current Status }

func (e *StaleError) Error() string { return fmt.Sprintf("%s: now %s", ErrStale, e.Current) }

func (e *StaleError) Is(target error) bool { return target == ErrStale }

// MaxReasonRunes bounds the reason of a status change.
const MaxReasonRunes = 500

// StatusChangerRoles may change a Vorgang's status: auth.RoleCaseworker and
// auth.RoleTeamLead (audit cannot import auth, which imports audit; a test
// in web keeps the two in step).
var StatusChangerRoles = []string{"caseworker", "teamlead"}

// InputError is a request the caller must correct; Detail is German.
type InputError struct {
	Field  string
	Detail string
}

func (e *InputError) Error() string { return "invalid " + e.Field + ": " + e.Detail }

// VorgangFilter narrows the caseworkers' list. Zero values mean "any".
type VorgangFilter struct {
	Status Status
	Type   CaseType
	// Before is the cursor: Vorgänge are listed newest first by
	// (CreatedAt, ID); a page continues after the last one of the previous.
	Before *VorgangCursor
	Limit  int
}

// VorgangCursor points at the last Vorgang of a page.
type VorgangCursor struct {
	CreatedAt time.Time
	ID        string
}

// StatusNotice is the content-free notification of a status change: it says
// only that something changed and where to log in. The storage adapter
// turns it into a mail job (notifier.TemplateStatusChanged) in the same
// transaction.
type StatusNotice struct {
	TenantID  string
	PersonID  string
	Recipient string
	KasseName string
	PortalURL string
	// Window folds further status notices to the person into one mail
	// while one is waiting, and spaces mails by at least this much.
	Window time.Duration
}

// VorgangStore is what the Vorgang service needs from the transactional
// database; storage/sqldb implements it. Reads of another tenant's Vorgang
// return ErrNotFound.
type VorgangStore interface {
	InTx(ctx context.Context, fn func(VorgangTx) error) error
	Kasse(ctx context.Context, id string) (kasse.Kasse, error)
	Person(ctx context.Context, tenantID, id string) (kasse.Person, error)
	Vorgang(ctx context.Context, tenantID, id string) (Vorgang, error)
	VorgaengeOfPerson(ctx context.Context, tenantID, personID string) ([]Vorgang, error)
	VorgaengeOfTenant(ctx context.Context, tenantID string, f VorgangFilter) ([]Vorgang, error)
	VorgangTimeline(ctx context.Context, tenantID, vorgangID string) ([]StatusChange, error)
}

// VorgangTx is one transaction of a status change: the change, its audit
// event and its notice commit together or not at all.
type VorgangTx interface {
	// ChangeVorgangStatus locks the Vorgang, checks the transition and
	// records the step (ErrNotFound, ErrTransition).
	ChangeVorgangStatus(ctx context.Context, tenantID, vorgangID string, from *Status, to Status, reason, actorID string) (StatusChange, Vorgang, error)
	RecordEvent(ctx context.Context, e Event) (Event, error)
	EnqueueStatusNotice(ctx context.Context, n StatusNotice) error
}

// VorgangService is the Vorgang tracking of seed 004 ("Meine Vorgänge"):
// insured persons follow their Vorgänge, caseworkers move them along the
// status model.
type VorgangService struct {
	Store VorgangStore
	// NotifyWindow: status notices to one person within this window become
	// one mail (default 15 minutes).
	NotifyWindow time.Duration
}

func (s *VorgangService) window() time.Duration {
	if s.NotifyWindow > 0 {
		return s.NotifyWindow
	}
	return 15 * time.Minute
}

// OfPerson lists the person's Vorgänge, newest first.
func (s *VorgangService) OfPerson(ctx context.Context, tenantID, personID string) ([]Vorgang, error) {
	if tenantID == "" || personID == "" {
		return nil, ErrNotFound
	}
	return s.Store.VorgaengeOfPerson(ctx, tenantID, personID)
}

// PersonTimelineStep is one step as the insured person sees it: when and
// which status, not who or why (the reason is the caseworkers' working note).
type PersonTimelineStep struct {
	From, To Status
	At       time.Time
}

// OfPersonWithTimeline returns one of the person's Vorgänge with its status
// steps, oldest first. Another person's or tenant's Vorgang is ErrNotFound.
func (s *VorgangService) OfPersonWithTimeline(ctx context.Context, tenantID, personID, id string) (Vorgang, []PersonTimelineStep, error) {
	if tenantID == "" || personID == "" {
		return Vorgang{}, nil, ErrNotFound
	}
	v, err := s.Store.Vorgang(ctx, tenantID, id)
	if err != nil {
		return Vorgang{}, nil, err
	}
	if v.PersonID != personID {
		return Vorgang{}, nil, ErrNotFound
	}
	tl, err := s.Store.VorgangTimeline(ctx, tenantID, id)
	if err != nil {
		return Vorgang{}, nil, err
	}
	steps := make([]PersonTimelineStep, len(tl))
	for i, ch := range tl {
		steps[i] = PersonTimelineStep{From: ch.From, To: ch.To, At: ch.At}
	}
	return v, steps, nil
}

// List is the caseworkers' view of the tenant's Vorgänge.
func (s *VorgangService) List(ctx context.Context, tenantID string, f VorgangFilter) ([]Vorgang, error) {
	if f.Status != "" && f.Status.Label() == "" {
		return nil, &InputError{"status", fmt.Sprintf("Unbekannter Status „%s“.", f.Status)}
	}
	if f.Type != "" && !f.Type.Valid() {
		return nil, &InputError{"type", fmt.Sprintf("Unbekannte Vorgangsart „%s“.", f.Type)}
	}
	if f.Limit <= 0 || f.Limit > 200 {
		f.Limit = 50
	}
	return s.Store.VorgaengeOfTenant(ctx, tenantID, f)
}

// WithTimeline returns a Vorgang of the tenant with its full timeline
// (reasons and actors included), for caseworkers.
func (s *VorgangService) WithTimeline(ctx context.Context, tenantID, id string) (Vorgang, []StatusChange, error) {
	v, err := s.Store.Vorgang(ctx, tenantID, id)
	if err != nil {
		return v, nil, err
	}
	tl, err := s.Store.VorgangTimeline(ctx, tenantID, id)
	return v, tl, err
}

// StatusChangeRequest is a caseworker's status change.
type StatusChangeRequest struct {
	VorgangID string
	To        Status
	Reason    string
	// From, when set, is the status the caseworker saw; if the Vorgang has
	// moved on meanwhile the change is refused with ErrStale.
	From Status
}

// CleanReason trims the reason and checks it: required, at most
// MaxReasonRunes characters, no control characters except line breaks.
func CleanReason(reason string) (string, error) {
	r := strings.TrimSpace(strings.ReplaceAll(reason, "\r\n", "\n"))
	switch {
	case r == "":
		return "", &InputError{"reason", "Bitte geben Sie eine Begründung für die Statusänderung an."}
	case !utf8.ValidString(r):
		return "", &InputError{"reason", "Die Begründung enthält ungültige Zeichen."}
	case utf8.RuneCountInString(r) > MaxReasonRunes:
		return "", &InputError{"reason", fmt.Sprintf("Die Begründung darf höchstens %d Zeichen lang sein (jetzt %d).", MaxReasonRunes, utf8.RuneCountInString(r))}
	}
	for _, c := range r {
		if unicode.IsControl(c) && c != '\n' && c != '\t' {
			return "", &InputError{"reason", "Die Begründung enthält Steuerzeichen."}
		}
	}
	return r, nil
}

// ChangeStatus moves a Vorgang of the caller's tenant to another status. The
// caller is the Origin in ctx (WithOrigin); only StatusChangerRoles may.
// In ONE transaction: the status and its timeline entry, the audit event
// vorgang.status.changed and, for a person who chose online delivery and
// has an e-mail address, a content-free notice. A refused change (forbidden
// transition, stale view) writes a vorgang.status.changed event with
// outcome denied in a transaction of its own, so attempts are traceable.
//
// The reason stays in the transactional timeline only; the audit event
// holds {from, to} because a caseworker's free text may name health data
// or third persons, and events are kept longer and seen by auditors.
func (s *VorgangService) ChangeStatus(ctx context.Context, req StatusChangeRequest) (StatusChange, error) {
	o := OriginFrom(ctx)
	if o.TenantID == "" || !roleIn(o.ActorRole, StatusChangerRoles) {
		return StatusChange{}, ErrNotFound
	}
	if req.To.Label() == "" {
		return StatusChange{}, &InputError{"status", fmt.Sprintf("Unbekannter Status „%s“.", req.To)}
	}
	if req.From != "" && req.From.Label() == "" {
		return StatusChange{}, &InputError{"from", fmt.Sprintf("Unbekannter Status „%s“.", req.From)}
	}
	reason, err := CleanReason(req.Reason)
	if err != nil {
		return StatusChange{}, err
	}
	var from *Status
	if req.From != "" {
		from = &req.From
	}
	// The person a Vorgang belongs to never changes, so who gets a notice
	// is decided before the transaction, which then only writes.
	v, err := s.Store.Vorgang(ctx, o.TenantID, req.VorgangID)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			s.recordRefusal(ctx, o, req, err)
		}
		return StatusChange{}, err
	}
	notice, err := s.notice(ctx, v)
	if err != nil {
		return StatusChange{}, err
	}
	var ch StatusChange
	err = s.Store.InTx(ctx, func(tx VorgangTx) error {
		var err error
		ch, _, err = tx.ChangeVorgangStatus(ctx, o.TenantID, v.ID, from, req.To, reason, o.ActorID)
		if err != nil {
			return err
		}
		if _, err := tx.RecordEvent(ctx, o.Event("vorgang.status.changed", "vorgang", v.ID, OutcomeSuccess,
			Details{"from": string(ch.From), "to": string(ch.To)})); err != nil {
			return err
		}
		if notice == nil {
			return nil
		}
		return tx.EnqueueStatusNotice(ctx, *notice)
	})
	if errors.Is(err, ErrTransition) || errors.Is(err, ErrStale) || errors.Is(err, ErrNotFound) {
		s.recordRefusal(ctx, o, req, err)
	}
	if err != nil {
		return StatusChange{}, err
	}
	return ch, nil
}

// notice decides whether the person gets a mail: only with online delivery
// and an address. The mail carries the Kasse's name and portal address,
// nothing about the Vorgang.
func (s *VorgangService) notice(ctx context.Context, v Vorgang) (*StatusNotice, error) {
	p, err := s.Store.Person(ctx, v.TenantID, v.PersonID)
	if err != nil {
		return nil, fmt.Errorf("person of vorgang %s: %w", v.ID, err)
	}
	if p.Delivery != kasse.DeliveryOnline || strings.TrimSpace(p.Email) == "" {
		return nil, nil
	}
	k, err := s.Store.Kasse(ctx, v.TenantID)
	if err != nil {
		return nil, fmt.Errorf("kasse %s: %w", v.TenantID, err)
	}
	return &StatusNotice{TenantID: v.TenantID, PersonID: p.ID, Recipient: p.Email, KasseName: k.Name,
		PortalURL: k.PortalURL, Window: s.window()}, nil
}

func (s *VorgangService) recordRefusal(ctx context.Context, o Origin, req StatusChangeRequest, cause error) {
	d := Details{"to": string(req.To), "reason": "transition"}
	switch {
	case errors.Is(cause, ErrStale):
		d["reason"] = "stale"
	case errors.Is(cause, ErrNotFound):
		d["reason"] = "not_found"
	}
	subject := req.VorgangID
	if !plainID.MatchString(subject) {
		subject = "" // whatever the caller typed is not an id worth keeping
	}
	ev := o.Event("vorgang.status.changed", "vorgang", subject, OutcomeDenied, d)
	// Best effort: the refusal itself is the answer, and a failure to record
	// it must not turn a 409 into a 500.
	wctx := context.WithoutCancel(ctx)
	_ = s.Store.InTx(wctx, func(tx VorgangTx) error {
		_, err := tx.RecordEvent(wctx, ev)
		return err
	})
}

var plainID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func roleIn(role string, roles []string) bool {
	for _, r := range roles {
		if r == role {
			return true
		}
	}
	return false
}
