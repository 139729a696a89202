package intake

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"postbox/audit"
	"postbox/auth"
	"postbox/kasse"
)

// PINService is the Einmal-PIN desk: it issues PINs, logs insured persons
// in with KVNR and PIN, keeps their drafts and turns a submission into a
// Vorgang. It never logs a PIN, a KVNR or a session token.
type PINService struct {
	Store  PINStore
	Hasher PINHasher
	Blobs  BlobStore // caseworker downloads
	// BaseURL is the portal address for mails about a Kasse without its
	// own PortalURL.
	BaseURL string

	// LoginLimit attempts per client address within LoginWindow; zero
	// values take DefaultLoginLimit and DefaultLoginWindow.
	LoginLimit  int
	LoginWindow time.Duration

	// NotifyWindow folds "new message" mails to one person into one, as the
	// Postfach does (POSTBOX_MAIL_COALESCE_WINDOW); zero takes 15 minutes.
	NotifyWindow time.Duration
}

const (
	// DefaultLoginLimit and DefaultLoginWindow bound PIN logins per client
	// address: enough for a family behind one router, far too few to guess.
	DefaultLoginLimit  = 20
	DefaultLoginWindow = 15 * time.Minute

	// SessionIdle and SessionAbsolute end a PIN session after 30 minutes
	// without a request or 12 hours after the login.
	SessionIdle     = 30 * time.Minute
	SessionAbsolute = 12 * time.Hour
	// sessionTouchEvery limits the writes of "last seen" to one a minute.
	sessionTouchEvery = time.Minute

	// MaxRequestText is the longest request text a letter can carry.
	MaxRequestText = 600
)

// Actor is who acts, with what the audit trail needs about the request.
type Actor struct {
	auth.Principal
	ClientHash string // keyed hash of the client address
	RequestID  string
}

func (a Actor) event(typ, subjectType, subjectID string, outcome audit.Outcome, details map[string]any) audit.Event {
	e := audit.Event{TenantID: a.TenantID, ActorID: a.AccountID, ActorRole: string(a.Role), Type: typ,
		SubjectType: subjectType, SubjectID: subjectID, Outcome: outcome, ClientHash: a.ClientHash, RequestID: a.RequestID}
	if e.ActorID == "" {
		e.ActorID = a.PersonID
	}
	if e.ActorRole == "" {
		e.ActorRole = "system"
	}
	if len(details) > 0 {
		raw, _ := json.Marshal(details)
		e.Details = string(raw)
	}
	return e
}

// InputError names each field that is wrong with a German message; the
// keys are the JSON field names of the request.
type InputError struct {
	Fields map[string]string
}

func (e *InputError) Error() string {
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return "invalid input: " + strings.Join(keys, ", ")
}

// Detail joins the messages for a problem+json detail, in form order.
func (e *InputError) Detail() string {
	order := []string{"kasse", "kvnr", "pin", "draft_id", "case_type", "request_text", "subject", "message", "phone", "files"}
	var parts []string
	seen := map[string]bool{}
	for _, k := range order {
		if m, ok := e.Fields[k]; ok {
			parts, seen[k] = append(parts, m), true
		}
	}
	rest := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		parts = append(parts, e.Fields[k])
	}
	return strings.Join(parts, " ")
}

func fieldError(field, msg string) *InputError {
	return &InputError{Fields: map[string]string{field: msg}}
}

// NormalizeKVNR accepts a KVNR typed with spaces or in lower case.
func NormalizeKVNR(typed string) string {
	return strings.ToUpper(strings.Join(strings.Fields(typed), ""))
}

const msgKVNR = "Die Krankenversichertennummer ist nicht gültig. Sie steht auf Ihrer Gesundheitskarte und besteht aus einem Großbuchstaben und neun Ziffern."

// IssueRequest asks for a PIN letter for one person of the tenant.
type IssueRequest struct {
	KVNR        string
	CaseType    audit.CaseType
	RequestText string
}

// IssuedPIN is a new PIN with what its letter needs. PIN is the only copy of
// the plain PIN: print it, never store or log it.
type IssuedPIN struct {
	PIN    string
	Record EinmalPIN
	Person kasse.Person
	Kasse  kasse.Kasse
}

// Letter assembles the printable letter of an issued PIN.
func (p IssuedPIN) Letter(baseURL string) Letter {
	return Letter{Kasse: p.Kasse, Person: p.Person, PIN: p.PIN, CaseType: p.Record.CaseType,
		RequestText: p.Record.RequestText, Date: p.Record.CreatedAt, ExpiresAt: p.Record.ExpiresAt,
		UploadURL: UploadPageURL(p.Kasse, baseURL)}
}

// ErrUnknownPerson is returned when the tenant has no person with the KVNR.
var ErrUnknownPerson = errors.New("no person with this KVNR")

// ErrNotAllowed is returned when the actor's role may not do this.
var ErrNotAllowed = errors.New("not allowed for this role")

// RoleBatch is the actor role of PINs issued by a batch (postbox pin issue).
const RoleBatch auth.Role = "batch"

// Issue creates a PIN for a person of the actor's tenant. Other PINs of the
// person stay valid; a new letter also clears the failed-login counter of
// the KVNR, since the lock message asks the person to get one.
func (s *PINService) Issue(ctx context.Context, a Actor, req IssueRequest) (IssuedPIN, error) {
	if !a.Has(auth.RoleCaseworker, auth.RoleTeamLead, RoleBatch) || a.TenantID == "" {
		return IssuedPIN{}, ErrNotAllowed
	}
	kvnr := NormalizeKVNR(req.KVNR)
	problems := map[string]string{}
	if kasse.ValidateKVNR(kvnr) != nil {
		problems["kvnr"] = msgKVNR
	}
	if !req.CaseType.Valid() {
		problems["case_type"] = "Bitte wählen Sie ein Anliegen aus der Liste."
	}
	text := cleanText(req.RequestText, true)
	switch n := utf8.RuneCountInString(text); {
	case n == 0:
		problems["request_text"] = "Bitte geben Sie an, welche Unterlagen Sie benötigen."
	case n > MaxRequestText:
		problems["request_text"] = fmt.Sprintf("Der Text für den Brief darf höchstens %d Zeichen lang sein (jetzt %d).", MaxRequestText, n)
	}
	if len(problems) > 0 {
		return IssuedPIN{}, &InputError{Fields: problems}
	}
	pin, err := NewPIN()
	if err != nil {
		return IssuedPIN{}, err
	}
	var out IssuedPIN
	err = s.Store.InPINTx(ctx, func(tx PINTx) error {
		k, err := tx.Kasse(ctx, a.TenantID)
		if err != nil {
			return err
		}
		person, err := tx.PersonByKVNR(ctx, a.TenantID, kvnr)
		if errors.Is(err, kasse.ErrNotFound) {
			return ErrUnknownPerson
		}
		if err != nil {
			return err
		}
		now := tx.Now()
		rec := EinmalPIN{ID: uuid.NewString(), TenantID: a.TenantID, PersonID: person.ID, Hash: s.Hasher.Hash(a.TenantID, pin),
			RequestText: text, CaseType: req.CaseType, IssuedBy: a.AccountID, CreatedAt: now, ExpiresAt: pinExpiry(now, k.Settings.PINLifetime)}
		if err := tx.InsertPIN(ctx, rec); err != nil {
			return err
		}
		if err := tx.SaveLoginCounter(ctx, LoginCounter{TenantID: a.TenantID, SubjectHash: s.Hasher.SubjectHash(a.TenantID, kvnr)}, now); err != nil {
			return err
		}
		if _, err := tx.RecordEvent(ctx, a.event("intake.pin.issued", "person", person.ID, audit.OutcomeSuccess,
			map[string]any{"pin_id": rec.ID, "case_type": rec.CaseType, "expires_at": rec.ExpiresAt.Format(time.RFC3339)})); err != nil {
			return err
		}
		out = IssuedPIN{PIN: pin, Record: rec, Person: person, Kasse: k}
		return nil
	})
	return out, err
}

// LoginRequest is what the person types on the upload page.
type LoginRequest struct {
	TenantID   string
	KVNR       string
	PIN        string
	ClientHash string // keyed hash of the client address (rate limit, audit)
	RequestID  string
}

// LoginResult is a started PIN session. Token goes into the cookie, CSRF to
// the page; neither is stored.
type LoginResult struct {
	Token   string
	CSRF    string
	Session PINSession
	PIN     EinmalPIN
	Kasse   kasse.Kasse
}

// Refusal is why a PIN login was refused.
type Refusal string

const (
	RefusedWrongPIN    Refusal = "wrong_pin"
	RefusedLocked      Refusal = "locked"
	RefusedExpired     Refusal = "expired"
	RefusedUsed        Refusal = "used"
	RefusedEGK         Refusal = "egk_invalid"
	RefusedRateLimited Refusal = "rate_limited"
)

// LoginError is a refused PIN login with what the person is told.
type LoginError struct {
	Reason     Refusal
	TriesLeft  int           // RefusedWrongPIN
	RetryAfter time.Duration // RefusedRateLimited
	MaxTries   int
	Lifetime   time.Duration
}

func (e *LoginError) Error() string { return "pin login refused: " + string(e.Reason) }

// Title is the short German headline of the refusal.
func (e *LoginError) Title() string {
	switch e.Reason {
	case RefusedWrongPIN:
		return "PIN nicht korrekt"
	case RefusedLocked:
		return "PIN gesperrt"
	case RefusedExpired:
		return "PIN abgelaufen"
	case RefusedUsed:
		return "PIN bereits verwendet"
	case RefusedEGK:
		return "Gesundheitskarte nicht mehr gültig"
	case RefusedRateLimited:
		return "Zu viele Anmeldeversuche"
	}
	return "Anmeldung nicht möglich"
}

// Detail is the German explanation, following the checklist of the seed
// ("Ist die PIN korrekt erfasst? … Ist das Anschreiben älter als 60 Tage? …").
func (e *LoginError) Detail() string {
	const call = " Sollten Sie sich immer noch nicht anmelden können, wenden Sie sich bitte an Ihre Krankenkasse."
	switch e.Reason {
	case RefusedWrongPIN:
		tries := "noch 1 Versuch"
		if e.TriesLeft != 1 {
			tries = fmt.Sprintf("noch %d Versuche", e.TriesLeft)
		}
		return "Die PIN ist nicht korrekt. Sie haben " + tries + ". Bitte prüfen Sie die PIN und Ihre Krankenversichertennummer."
	case RefusedLocked:
		return fmt.Sprintf("Die PIN wurde %d-mal falsch eingegeben und ist deshalb gesperrt. Sie benötigen einen neuen Brief mit einer neuen PIN. "+
			"Rufen Sie hierfür einfach Ihre Krankenkasse an; dort hilft man Ihnen gern weiter.", e.MaxTries)
	case RefusedExpired:
		days := int(e.Lifetime / (24 * time.Hour))
		return fmt.Sprintf("Die PIN ist abgelaufen: Das Anschreiben ist älter als %d Tage. Eine PIN gilt höchstens %d Tage. "+
			"Bitte fordern Sie bei Ihrer Krankenkasse eine neue PIN an.", days, days)
	case RefusedUsed:
		return "Diese PIN wurde bereits verwendet: Mit der Übermittlung Ihrer Unterlagen hat sie ihre Gültigkeit verloren. " +
			"Für weitere Unterlagen benötigen Sie eine neue PIN." + call
	case RefusedEGK:
		return "Ihre elektronische Gesundheitskarte (eGK) ist nicht mehr gültig, deshalb ist eine Anmeldung mit der PIN nicht möglich. " +
			"Bitte wenden Sie sich an Ihre Krankenkasse."
	case RefusedRateLimited:
		mins := int((e.RetryAfter + time.Minute - 1) / time.Minute)
		return fmt.Sprintf("Von Ihrem Gerät kamen zu viele Anmeldeversuche. Bitte warten Sie %d Minuten und versuchen Sie es dann erneut.", max(mins, 1))
	}
	return "Die Anmeldung ist nicht möglich." + call
}

// ErrUnknownKasse is returned by Login for a tenant id that does not exist.
var ErrUnknownKasse = errors.New("unknown kasse")

// Login checks KVNR and PIN and opens a session. A refusal is a
// *LoginError; malformed input an *InputError (it costs no try: the format
// is printed on every letter, so refusing it tells an attacker nothing).
//
// Enumeration: failed tries are counted per typed KVNR whether a person has
// it or not, and a wrong PIN is answered the same in both cases, with the
// real count of tries left and, after the limit, the same lock message. The
// answers that reveal something about a person (expired, used, eGK) are only
// given to whoever typed a PIN that matches one of that person's PINs, that
// is, to the holder of the letter.
//
// The attempt, its counters and its audit event commit together, also when
// the login is refused.
func (s *PINService) Login(ctx context.Context, req LoginRequest) (LoginResult, error) {
	kvnr := NormalizeKVNR(req.KVNR)
	pin := NormalizePIN(req.PIN)
	problems := map[string]string{}
	if kasse.ValidateKVNR(kvnr) != nil {
		problems["kvnr"] = msgKVNR
	}
	if !WellFormedPIN(pin) {
		problems["pin"] = fmt.Sprintf("Die PIN besteht aus %d Zeichen (Buchstaben und Ziffern). Bitte übernehmen Sie sie genau aus Ihrem Brief; "+
			"die Ziffern 0 und 1 und die Buchstaben O, I und L kommen darin nicht vor.", PINLength)
	}
	if len(problems) > 0 {
		// Costs no try, but is an attempt: audit it (when the Kasse exists).
		err := s.Store.InPINTx(ctx, func(tx PINTx) error {
			if _, err := tx.Kasse(ctx, req.TenantID); err != nil {
				return err
			}
			actor := Actor{Principal: auth.Principal{TenantID: req.TenantID, Role: "anonymous"}, ClientHash: req.ClientHash, RequestID: req.RequestID}
			fields := make([]string, 0, len(problems))
			for f := range problems {
				fields = append(fields, f)
			}
			sort.Strings(fields)
			_, err := tx.RecordEvent(ctx, actor.event("intake.pin.login", "kvnr", "", audit.OutcomeFailure,
				map[string]any{"reason": "malformed", "fields": fields}))
			return err
		})
		if errors.Is(err, kasse.ErrNotFound) {
			return LoginResult{}, ErrUnknownKasse
		}
		if err != nil {
			return LoginResult{}, err
		}
		return LoginResult{}, &InputError{Fields: problems}
	}
	var (
		res     LoginResult
		refusal *LoginError
	)
	err := s.Store.InPINTx(ctx, func(tx PINTx) error {
		res, refusal = LoginResult{}, nil
		k, err := tx.Kasse(ctx, req.TenantID)
		if errors.Is(err, kasse.ErrNotFound) {
			return ErrUnknownKasse
		}
		if err != nil {
			return err
		}
		now := tx.Now()
		actor := Actor{Principal: auth.Principal{TenantID: k.ID}, ClientHash: req.ClientHash, RequestID: req.RequestID}
		actor.Role = "anonymous"
		maxTries := k.Settings.PINMaxAttempts
		refuse := func(r *LoginError, outcome audit.Outcome, subjectType, subjectID string, details map[string]any) error {
			r.MaxTries, r.Lifetime = maxTries, k.Settings.PINLifetime
			refusal = r
			if details == nil {
				details = map[string]any{}
			}
			details["reason"] = r.Reason
			_, err := tx.RecordEvent(ctx, actor.event("intake.pin.login", subjectType, subjectID, outcome, details))
			return err
		}

		subjectHash := s.Hasher.SubjectHash(k.ID, kvnr)
		if req.ClientHash != "" {
			hits, start, err := tx.HitRateLimit(ctx, "pin-login", req.ClientHash, s.window(), now)
			if err != nil {
				return err
			}
			if hits > s.limit() {
				return refuse(&LoginError{Reason: RefusedRateLimited, RetryAfter: start.Add(s.window()).Sub(now)},
					audit.OutcomeDenied, "kvnr", subjectHash[:16], nil)
			}
		}
		ctr, err := tx.LockLoginCounter(ctx, k.ID, subjectHash)
		if err != nil {
			return err
		}
		person, err := tx.PersonByKVNR(ctx, k.ID, kvnr)
		known := err == nil
		if err != nil && !errors.Is(err, kasse.ErrNotFound) {
			return err
		}
		subjectType, subjectID := "person", person.ID
		if !known {
			subjectType, subjectID = "kvnr", subjectHash[:16]
		}
		// Both branches read the PIN table, so an unknown KVNR costs about
		// the same time as a known one.
		pins, err := tx.PINsOfPerson(ctx, k.ID, person.ID)
		if err != nil {
			return err
		}
		if ctr.Failures >= maxTries {
			return refuse(&LoginError{Reason: RefusedLocked}, audit.OutcomeDenied, subjectType, subjectID, nil)
		}
		// Compare with every PIN in constant time, without stopping early.
		var match *EinmalPIN
		if len(pins) == 0 {
			s.Hasher.Equal(k.ID, pin, strings.Repeat("0", 64))
		}
		for i := range pins {
			if s.Hasher.Equal(k.ID, pin, pins[i].Hash) && match == nil {
				match = &pins[i]
			}
		}
		if match == nil {
			ctr.Failures++
			r := &LoginError{Reason: RefusedWrongPIN, TriesLeft: maxTries - ctr.Failures}
			if ctr.Failures >= maxTries {
				ctr.LockedAt = now
				r = &LoginError{Reason: RefusedLocked}
				if known {
					if _, err := tx.RevokeOpenPINs(ctx, k.ID, person.ID, now); err != nil {
						return err
					}
				}
			}
			if err := tx.SaveLoginCounter(ctx, ctr, now); err != nil {
				return err
			}
			return refuse(r, audit.OutcomeFailure, subjectType, subjectID, map[string]any{"failures": ctr.Failures})
		}
		details := map[string]any{"pin_id": match.ID}
		switch {
		case !match.UsedAt.IsZero():
			return refuse(&LoginError{Reason: RefusedUsed}, audit.OutcomeDenied, subjectType, subjectID, details)
		case !match.RevokedAt.IsZero():
			return refuse(&LoginError{Reason: RefusedLocked}, audit.OutcomeDenied, subjectType, subjectID, details)
		case !now.Before(match.ExpiresAt):
			return refuse(&LoginError{Reason: RefusedExpired}, audit.OutcomeDenied, subjectType, subjectID, details)
		case !person.EGKValidUntil.IsZero() && !now.Before(person.EGKValidUntil):
			return refuse(&LoginError{Reason: RefusedEGK}, audit.OutcomeDenied, subjectType, subjectID, details)
		}

		ctr.Failures, ctr.LockedAt = 0, time.Time{}
		if err := tx.SaveLoginCounter(ctx, ctr, now); err != nil {
			return err
		}
		token, err := newToken()
		if err != nil {
			return err
		}
		sess := PINSession{IDHash: HashSessionToken(token), TenantID: k.ID, PersonID: person.ID, PINID: match.ID,
			Kind: PINSessionKind, CreatedAt: now, LastSeenAt: now}
		if err := tx.PurgePINSessions(ctx, k.ID, person.ID, now.Add(-SessionAbsolute-time.Hour)); err != nil {
			return err
		}
		if err := tx.CreatePINSession(ctx, sess); err != nil {
			return err
		}
		actor.PersonID, actor.Role = person.ID, auth.RoleInsured
		if _, err := tx.RecordEvent(ctx, actor.event("intake.pin.login", "person", person.ID, audit.OutcomeSuccess, details)); err != nil {
			return err
		}
		res = LoginResult{Token: token, CSRF: CSRFToken(token), Session: sess, PIN: *match, Kasse: k}
		return nil
	})
	if err != nil {
		return LoginResult{}, err
	}
	if sometimes(purgeEvery) {
		_, _ = s.PurgeStale(ctx) // housekeeping; a failure is retried by a later login
	}
	if refusal != nil {
		return LoginResult{}, refusal
	}
	return res, nil
}

// PurgeStale removes what login attempts leave behind once it cannot matter
// any more: rate-limit windows older than a day, zero counters older than a
// day, any failure counter untouched for 400 days (longer than a PIN can
// live, so every PIN it locked has expired), and sessions past their
// absolute limit (plus the window in which a submission retry is answered).
// Login calls it now and then, so every replica helps and none is needed.
func (s *PINService) PurgeStale(ctx context.Context) (int64, error) {
	var n int64
	err := s.Store.InPINTx(ctx, func(tx PINTx) error {
		now := tx.Now()
		var err error
		n, err = tx.PurgeStale(ctx, now.Add(-24*time.Hour), now.Add(-24*time.Hour), now.Add(-400*24*time.Hour), now.Add(-SessionAbsolute-time.Hour))
		return err
	})
	return n, err
}

// purgeEvery is how many logins on average run PurgeStale.
const purgeEvery = 64

// sometimes reports true for about one call in n (n divides 256).
func sometimes(n int) bool {
	var b [1]byte
	_, err := rand.Read(b[:])
	return err == nil && int(b[0])%n == 0
}

func (s *PINService) limit() int {
	if s.LoginLimit > 0 {
		return s.LoginLimit
	}
	return DefaultLoginLimit
}

func (s *PINService) window() time.Duration {
	if s.LoginWindow > 0 {
		return s.LoginWindow
	}
	return DefaultLoginWindow
}

// newToken returns 32 random bytes, base64url without padding.
func newToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("session token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// HashSessionToken is the stored form of a session token. The token has 256
// random bits, so a plain SHA-256 cannot be reversed by guessing.
func HashSessionToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// CSRFToken is the session's anti-CSRF token: derived from the secret
// cookie value, so the server stores nothing and can hand it out again, and
// another site, which cannot read the cookie, cannot compute it.
func CSRFToken(sessionToken string) string {
	m := hmac.New(sha256.New, []byte(sessionToken))
	m.Write([]byte("postbox/einmal-pin/csrf"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// CheckCSRF compares a presented token with the session's in constant time.
func CheckCSRF(sessionToken, presented string) bool {
	if sessionToken == "" || presented == "" {
		return false
	}
	return hmac.Equal([]byte(CSRFToken(sessionToken)), []byte(presented))
}

// Session resolves a cookie token to its open session, ending it when it
// has been idle too long or reached its absolute limit. Only the rare
// request that must write (end it, or move "last seen", at most once a
// minute) opens a transaction.
func (s *PINService) Session(ctx context.Context, token string) (PINSession, error) {
	if token == "" || len(token) > 100 {
		return PINSession{}, ErrPINSessionNotFound
	}
	idHash := HashSessionToken(token)
	sess, err := s.Store.ReadPINSession(ctx, idHash)
	if err != nil {
		return PINSession{}, err
	}
	if !sess.EndedAt.IsZero() {
		return PINSession{}, ErrPINSessionNotFound
	}
	if now := s.Store.Now(); now.Sub(sess.LastSeenAt) < sessionTouchEvery && now.Sub(sess.CreatedAt) < SessionAbsolute {
		return sess, nil
	}
	var out PINSession
	err = s.Store.InPINTx(ctx, func(tx PINTx) error {
		out = PINSession{}
		now := tx.Now()
		sess, err := tx.PINSessionByHash(ctx, idHash) // again, inside the transaction
		if err != nil {
			return err
		}
		if !sess.EndedAt.IsZero() {
			return nil
		}
		if now.Sub(sess.LastSeenAt) >= SessionIdle || now.Sub(sess.CreatedAt) >= SessionAbsolute {
			return tx.EndPINSessions(ctx, sess.TenantID, sess.PersonID, sess.IDHash, now, "timeout", "")
		}
		if err := tx.TouchPINSession(ctx, sess.IDHash, now); err != nil {
			return err
		}
		sess.LastSeenAt = now
		out = sess
		return nil
	})
	if err != nil {
		return PINSession{}, err
	}
	if out.IDHash == "" {
		return PINSession{}, ErrPINSessionNotFound
	}
	return out, nil
}

// Logout ends a session; an unknown or ended one is not an error.
func (s *PINService) Logout(ctx context.Context, a Actor, token string) error {
	return s.Store.InPINTx(ctx, func(tx PINTx) error {
		sess, err := tx.PINSessionByHash(ctx, HashSessionToken(token))
		if errors.Is(err, ErrPINSessionNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if !sess.EndedAt.IsZero() {
			return nil
		}
		if err := tx.EndPINSessions(ctx, sess.TenantID, sess.PersonID, sess.IDHash, tx.Now(), "logout", ""); err != nil {
			return err
		}
		a.TenantID, a.PersonID, a.Role = sess.TenantID, sess.PersonID, auth.RoleInsured
		_, err = tx.RecordEvent(ctx, a.event("intake.pin.logout", "person", sess.PersonID, audit.OutcomeSuccess, nil))
		return err
	})
}

// Principal is who acts in a request of this session.
func (s PINSession) Principal() auth.Principal {
	return auth.Principal{TenantID: s.TenantID, PersonID: s.PersonID, Role: auth.RoleInsured, SessionID: s.IDHash}
}

// cleanText makes user text safe to store in both databases: valid UTF-8,
// no NUL or other control characters (line breaks stay where allowed),
// trimmed.
func cleanText(s string, multiline bool) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\n' && multiline:
			return r
		case r == '\n' || r == '\t' || r == '\r':
			return ' '
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return -1
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}
