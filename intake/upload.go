package intake

import (
	"context"
	"errors"
	"time"

	"postbox/audit"
	"postbox/kasse"
)

// UploadKind tells a plain upload from the pieces of a parallel one (tus
// concatenation): partial uploads are joined into a final upload.
type UploadKind string

const (
	KindSingle  UploadKind = "single"
	KindPartial UploadKind = "partial"
	KindFinal   UploadKind = "final"
)

// UploadStatus is the life cycle of an upload. Only a "complete" upload may
// become part of a submission, which turns it "final".
type UploadStatus string

const (
	StatusUploading UploadStatus = "uploading" // bytes still arriving
	// StatusCompleting: every byte is stored and recorded, the object is
	// being assembled. A crash here is finished by RecoverStalled.
	StatusCompleting  UploadStatus = "completing"
	StatusQuarantined UploadStatus = "quarantined" // stored, waiting for the virus scan
	StatusComplete    UploadStatus = "complete"    // stored and clean (or not scanned)
	StatusInfected    UploadStatus = "infected"    // the scanner found malware; object deleted
	StatusFinal       UploadStatus = "final"       // part of a submission (MarkUploadsFinal)
	StatusTerminated  UploadStatus = "terminated"  // DELETE by the person
	StatusRejected    UploadStatus = "rejected"    // content type not allowed; object deleted
	StatusConsumed    UploadStatus = "consumed"    // partial joined into a final upload; object deleted
)

// Gone reports whether the upload can no longer be used: requests for it
// answer 410.
func (s UploadStatus) Gone() bool {
	switch s {
	case StatusInfected, StatusTerminated, StatusRejected, StatusConsumed:
		return true
	}
	return false
}

// ScanStatus is the result of the virus scan of a completed upload.
type ScanStatus string

const (
	ScanNone       ScanStatus = ""            // not completed yet
	ScanPending    ScanStatus = "pending"     // waiting for the scanner (or it was unreachable)
	ScanClean      ScanStatus = "clean"       // scanner found nothing
	ScanInfected   ScanStatus = "infected"    // scanner found malware
	ScanNotScanned ScanStatus = "not_scanned" // no scanner configured: the file was NOT checked
)

// StoredPart is a multipart part the upload has durably written. Number 0
// is the whole file written as the object itself (wholeObject).
type StoredPart struct {
	Number int    `json:"n"`
	ETag   string `json:"etag"`
	Size   int64  `json:"size"`
}

// wholeObject tells whether u's bytes were written in one piece straight
// as its object, without a multipart upload (a file of at most a part's
// size sent in one request): then there is nothing to assemble.
func (u *Upload) wholeObject() bool {
	return u.MultipartID == "" && len(u.Parts) == 1 && u.Parts[0].Number == 0
}

// StagingSegment is a blob holding bytes that do not yet fill a multipart
// part (S3 parts other than the last must have at least MinPartSize bytes,
// tus chunks may be smaller). Segments are kept in the blob store, not in
// memory, so they survive a restart and any replica can continue.
type StagingSegment struct {
	Key  string `json:"key"`
	Size int64  `json:"size"`
}

// Upload is one tus upload of an insured person. The row is the whole
// state, so every request may reach another replica.
type Upload struct {
	ID       string
	TenantID string
	PersonID string
	Kind     UploadKind
	Status   UploadStatus

	// Length is the declared size; -1 while deferred (creation-defer-length).
	Length int64
	// Offset counts the bytes durably stored (parts plus staging).
	Offset int64

	Metadata     string // Upload-Metadata as the client sent it (echoed by HEAD)
	Filename     string // from the metadata, cleaned; personal data, never logged
	DeclaredType string // "filetype" from the metadata, as the browser claims
	DetectedType string // MIME type sniffed from the first bytes
	Concat       []string

	// BlobKey is where the complete object lives (and the multipart key).
	BlobKey     string
	MultipartID string
	Parts       []StoredPart
	Staging     []StagingSegment
	StagingSeq  int64
	// HashState is the marshalled SHA-256 state over the first Offset
	// bytes, so any replica can continue the hash.
	HashState []byte
	// SHA256 (hex) of the whole file, set once complete.
	SHA256 string

	ScanStatus    ScanStatus
	ScanSignature string // name of the malware found, if any

	LockOwner string
	LockUntil time.Time

	// IdempotencyKey is the creation's Idempotency-Key ("" without one),
	// unique per tenant and person; IdempotencyDigest fingerprints what the
	// creation declared (see creationDigest).
	IdempotencyKey    string
	IdempotencyDigest string

	CreatedAt   time.Time
	UpdatedAt   time.Time
	CompletedAt time.Time
	ExpiresAt   time.Time
}

// Deferred reports whether the length is not known yet.
func (u *Upload) Deferred() bool { return u.Length < 0 }

// Size is the size of a completed upload.
func (u *Upload) Size() int64 { return u.Length }

func (u *Upload) stagingSize() int64 {
	var n int64
	for _, s := range u.Staging {
		n += s.Size
	}
	return n
}

// UploadQuota is the per-person limit checked when an upload is created or
// its length becomes known: the sum over the person's unfinished and
// unsubmitted uploads, and their number, stay within the tenant's rules.
type UploadQuota struct {
	MaxSubmissionBytes int64
	MaxFiles           int
	// Exclude names uploads not to count (the partials a final upload replaces).
	Exclude []string
}

// QuotaError says which per-person limit an upload would break.
type QuotaError struct {
	Files     bool  // true: too many files; false: too many bytes
	Used      int64 // bytes (or files) already in use
	Limit     int64
	Requested int64
}

func (e *QuotaError) Error() string {
	if e.Files {
		return "upload quota: too many files"
	}
	return "upload quota: too many bytes"
}

var (
	// ErrUploadNotFound is returned for an unknown upload and for one of
	// another person or tenant.
	ErrUploadNotFound = errors.New("upload not found")
	// ErrUploadLocked is returned when another request holds the upload.
	ErrUploadLocked = errors.New("upload locked by another request")
	// ErrLockLost is returned when a write finds its lock taken over: the
	// writer must stop without touching the upload further.
	ErrLockLost = errors.New("upload lock lost")
	// ErrUploadNotReady is returned by MarkUploadsFinal for an upload that
	// is not complete and clean (still uploading, quarantined, infected,
	// terminated, or a partial upload).
	ErrUploadNotReady = errors.New("upload not complete")
	// ErrUploadAlreadyFinal is returned by MarkUploadsFinal for an upload
	// that already belongs to a submission.
	ErrUploadAlreadyFinal = errors.New("upload already submitted")
)

// UploadStore keeps upload state. storage/sqldb implements it for SQLite
// and PostgreSQL. Every write that changes an upload someone holds is
// fenced by the lock owner: it fails with ErrLockLost when the lock moved.
type UploadStore interface {
	// Kasse returns the tenant with its upload rules.
	Kasse(ctx context.Context, id string) (kasse.Kasse, error)

	// CreateUpload inserts u (locked by u.LockOwner if set) after checking
	// the quota in the same transaction; it returns *QuotaError when the
	// person's uploads would exceed it. events are recorded with it.
	CreateUpload(ctx context.Context, u Upload, q UploadQuota, events ...audit.Event) error
	// UploadByID returns an upload whatever its owner; callers check the
	// owner. ErrUploadNotFound when there is none.
	UploadByID(ctx context.Context, id string) (Upload, error)
	// UploadByIdempotencyKey returns the person's upload created with key
	// (ErrUploadNotFound when there is none). CreateUpload of an upload
	// whose key the person used already returns *IdempotencyKeyTaken.
	UploadByIdempotencyKey(ctx context.Context, tenantID, personID, key string) (Upload, error)
	// ReleaseIdempotencyKey clears the key of upload id if it still has it,
	// so a gone upload's key can name a new one.
	ReleaseIdempotencyKey(ctx context.Context, id, key string) error
	// LockUpload takes the lease of the person's upload when it is free or
	// expired (now is the caller's clock) and returns the state under it.
	LockUpload(ctx context.Context, tenantID, personID, id, owner string, until, now time.Time) (Upload, error)
	// RenewUploadLock extends a held lease.
	RenewUploadLock(ctx context.Context, id, owner string, until time.Time) error
	// SaveUpload writes the mutable state of u if owner still holds it.
	SaveUpload(ctx context.Context, u Upload, owner string, events ...audit.Event) error
	// SetUploadLength fixes a deferred length after checking the quota.
	SetUploadLength(ctx context.Context, u Upload, owner string, q UploadQuota) error
	// UnlockUpload releases the lease (no error when already released).
	UnlockUpload(ctx context.Context, id, owner string) error
	// RecordUploadEvent records an audit event on its own.
	RecordUploadEvent(ctx context.Context, e audit.Event) error

	// UploadsOfPerson lists a person's uploads, newest first, without
	// partial, terminated or consumed ones.
	UploadsOfPerson(ctx context.Context, tenantID, personID string) ([]Upload, error)
	// ExpiredUploads returns up to limit uploads whose expiry passed and
	// that are not final.
	ExpiredUploads(ctx context.Context, now time.Time, limit int) ([]Upload, error)
	// StalledUploads returns up to limit uploads left completing or
	// waiting for a scan whose lock is free or expired.
	StalledUploads(ctx context.Context, now time.Time, limit int) ([]Upload, error)
	// DeleteUpload removes the row if owner holds it.
	DeleteUpload(ctx context.Context, id, owner string, events ...audit.Event) error
}
