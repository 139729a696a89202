package intake

import (
	"context"
	"errors"
	"time"

	"postbox/audit"
	"postbox/kasse"
	"postbox/notifier"
)

// PINStore is what the Einmal-PIN desk (issuing, login, sessions, drafts,
// submission, downloads) needs from the database. Everything runs in a
// transaction, so a state change, its audit events and its mail job commit
// together. storage/sqldb implements it (Store.PINIntake).
type PINStore interface {
	InPINTx(ctx context.Context, fn func(tx PINTx) error) error
	// ReadPINSession reads a session outside a transaction: every request
	// of a PIN session (each upload chunk too) resolves it, and most of
	// them change nothing. ErrPINSessionNotFound for an unknown id.
	ReadPINSession(ctx context.Context, idHash string) (PINSession, error)
	// Now is the store's clock, the same that transactions see.
	Now() time.Time
}

// PINTx is one transaction of the PIN desk. Reads take the tenant first and
// answer "not found" for another tenant's object.
type PINTx interface {
	// Now is the store's clock (tests move it).
	Now() time.Time

	Kasse(ctx context.Context, id string) (kasse.Kasse, error)
	PersonByKVNR(ctx context.Context, tenantID, kvnr string) (kasse.Person, error)
	Person(ctx context.Context, tenantID, id string) (kasse.Person, error)
	RecordEvent(ctx context.Context, e audit.Event) (audit.Event, error)

	// InsertPIN stores a PIN's keyed hash with what the letter asked for.
	InsertPIN(ctx context.Context, p EinmalPIN) error
	// PINsOfPerson lists all PINs of a person, newest first.
	PINsOfPerson(ctx context.Context, tenantID, personID string) ([]EinmalPIN, error)
	// RevokeOpenPINs revokes the person's PINs that are neither used nor revoked.
	RevokeOpenPINs(ctx context.Context, tenantID, personID string, at time.Time) (int, error)
	// UsePINs marks every PIN of the person that is not used yet as used.
	UsePINs(ctx context.Context, tenantID, personID string, at time.Time) (int, error)

	// LockLoginCounter returns the failure counter of a typed KVNR, creating
	// it at zero, and locks it until the transaction ends.
	LockLoginCounter(ctx context.Context, tenantID, subjectHash string) (LoginCounter, error)
	SaveLoginCounter(ctx context.Context, c LoginCounter, at time.Time) error
	// HitRateLimit counts one hit of key in a fixed window and returns the
	// hits so far in the current window and when that window started.
	HitRateLimit(ctx context.Context, bucket, keyHash string, window time.Duration, now time.Time) (hits int, windowStart time.Time, err error)

	// PurgeStale deletes rate-limit windows started before windowsBefore,
	// failure counters at zero last touched before zeroBefore, any counter
	// last touched before countersBefore, and sessions created before
	// sessionsBefore.
	PurgeStale(ctx context.Context, windowsBefore, zeroBefore, countersBefore, sessionsBefore time.Time) (int64, error)

	CreatePINSession(ctx context.Context, s PINSession) error
	// PINSessionByHash returns ErrPINSessionNotFound for an unknown id.
	PINSessionByHash(ctx context.Context, idHash string) (PINSession, error)
	TouchPINSession(ctx context.Context, idHash string, at time.Time) error
	// EndPINSessions ends every open session of the person (idHash "") or
	// one session, with a reason and the Vorgang a submission created.
	EndPINSessions(ctx context.Context, tenantID, personID, idHash string, at time.Time, reason, vorgangID string) error
	// PurgePINSessions deletes the person's sessions created before a time.
	PurgePINSessions(ctx context.Context, tenantID, personID string, before time.Time) error

	// OpenDraft returns the person's open draft (ErrDraftNotFound if none);
	// lock holds it until the transaction ends.
	OpenDraft(ctx context.Context, tenantID, personID string, lock bool) (Draft, error)
	// DraftByID returns one of the person's drafts, open or submitted.
	DraftByID(ctx context.Context, tenantID, personID, id string, lock bool) (Draft, error)
	// CreateDraft stores a new open draft; if the person already has one
	// (a concurrent first request), it returns that one instead.
	CreateDraft(ctx context.Context, d Draft) (Draft, error)
	SaveDraft(ctx context.Context, d Draft) error
	MarkDraftSubmitted(ctx context.Context, tenantID, draftID, vorgangID string, at time.Time) error

	CreateVorgang(ctx context.Context, v audit.Vorgang, idempotencyKey, actorID string) (audit.Vorgang, bool, error)
	VorgangByID(ctx context.Context, tenantID, id string) (audit.Vorgang, error)
	// PostReceipt puts a submission into the person's Postfach: a thread to
	// the team inbox of the topic (created when the Kasse has none yet),
	// the person's message if any, and the receipt with one attachment row
	// per file linking the stored object to the Vorgang and the receipt.
	PostReceipt(ctx context.Context, p ReceiptPost) (threadID string, files []SubmittedFile, err error)
	EnqueueMail(ctx context.Context, j notifier.Job) (notifier.Job, error)
	// VorgangFiles lists the files of a Vorgang, oldest first.
	VorgangFiles(ctx context.Context, tenantID, vorgangID string) ([]SubmittedFile, error)
	// ReceiptThreadOf returns the thread a submission's receipt went to.
	ReceiptThreadOf(ctx context.Context, tenantID, vorgangID string) (string, error)

	// PersonUploads lists the person's uploads that are not final yet
	// (from the tus upload engine).
	PersonUploads(ctx context.Context, tenantID, personID string) ([]DraftFile, error)
	// FinalizeUploads marks complete uploads final and returns their stored
	// objects (from the tus upload engine).
	FinalizeUploads(ctx context.Context, tenantID, personID string, uploadIDs []string) ([]FinalFile, error)
}

// LoginCounter counts failed PIN logins for one typed KVNR.
type LoginCounter struct {
	TenantID    string
	SubjectHash string
	Failures    int
	LockedAt    time.Time
}

// PINSessionKind is the kind of every session the PIN login opens.
const PINSessionKind = "einmal-pin"

// PINSession is a server-side session opened by an Einmal-PIN login. Only
// the SHA-256 of its cookie value is stored.
type PINSession struct {
	IDHash     string
	TenantID   string
	PersonID   string
	PINID      string
	Kind       string
	CreatedAt  time.Time
	LastSeenAt time.Time
	EndedAt    time.Time
	EndReason  string // "logout", "timeout", "submitted"
	VorgangID  string // set when the session ended with a submission
}

// FileState is where an upload stands, as far as a submission cares.
type FileState string

const (
	FileUploading FileState = "uploading" // bytes still missing or being assembled
	FileChecking  FileState = "checking"  // stored, in quarantine until the virus scan is done
	FileInfected  FileState = "infected"  // the scan found malware; deleted, never submitted
	FileComplete  FileState = "complete"  // ready to submit
)

// DraftFile is an upload as the draft page and the submission see it.
type DraftFile struct {
	ID          string    `json:"id"`
	FileName    string    `json:"file_name"`
	ContentType string    `json:"content_type"`
	Size        int64     `json:"size"`   // declared length, -1 while unknown
	Offset      int64     `json:"offset"` // bytes received
	State       FileState `json:"state"`
}

// ReceiptPost is the Postfach side of a submission.
type ReceiptPost struct {
	TenantID      string
	PersonID      string
	VorgangID     string
	Topic         string // team inbox: the Anliegen
	TeamName      string // name of the team if it must be created
	Subject       string
	PersonMessage string // what the person wrote ("" for none)
	// Caseworker is the account that issued the PIN of this session (""
	// for a batch): the thread is assigned to them when they are in the
	// team, and a team created for this submission gets them as its
	// first member, so somebody sees it.
	Caseworker  string
	ReceiptBody string
	Files       []FinalFile
}

// SubmittedFile is a file of a Vorgang: the attachment row that links the
// stored object to the Vorgang and the receipt.
type SubmittedFile struct {
	ID          string
	VorgangID   string
	MessageID   string
	BlobKey     string
	FileName    string
	ContentType string
	Size        int64
	SHA256      string // hex
	CreatedAt   time.Time
}

// FinalFile is a submitted upload's stored object.
type FinalFile struct {
	UploadID    string
	BlobKey     string
	FileName    string
	ContentType string
	Size        int64
	SHA256      string // hex
}

var (
	// ErrPINSessionNotFound: no such session, or it ended or timed out.
	ErrPINSessionNotFound = errors.New("pin session not found")
	// ErrDraftNotFound: the person has no such draft.
	ErrDraftNotFound = errors.New("draft not found")
	// ErrFileNotFound: no such file in that Vorgang of the tenant.
	ErrFileNotFound = errors.New("file not found")
)
