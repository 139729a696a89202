package mailbox

import (
	"context"
	"time"

	"postbox/audit"
	"postbox/auth"
	"postbox/kasse"
	"postbox/notifier"
)

// Side is which end of a thread a viewer sits at.
type Side int

const (
	SideNone  Side = iota // sees nothing
	SideOwner             // the insured person or provider organisation
	SideTeam              // a caseworker, through the team inboxes they belong to
)

// Viewer is who looks at the Postfach. Every read and every change of a
// thread goes through a Viewer, and the store turns it into the WHERE
// clause, so no query can forget the tenant and owner/team check.
type Viewer struct {
	TenantID  string
	ReaderID  string // account id: read state, team membership, uploads
	Side      Side
	OwnerKind OwnerKind // SideOwner
	OwnerID   string    // SideOwner: person id or organisation id
}

// ViewerOf maps a logged-in principal to the part of the Postfach it may
// see. Auditors, admins and Einmal-PIN sessions see none of it.
func ViewerOf(p auth.Principal) Viewer {
	v := Viewer{TenantID: p.TenantID, ReaderID: p.AccountID}
	if p.TenantID == "" || p.AccountID == "" {
		return Viewer{}
	}
	switch p.Role {
	case auth.RoleInsured:
		if p.PersonID != "" {
			v.Side, v.OwnerKind, v.OwnerID = SideOwner, OwnerPerson, p.PersonID
		}
	case auth.RoleProviderAdmin, auth.RoleProviderUser:
		if p.OrgID != "" {
			v.Side, v.OwnerKind, v.OwnerID = SideOwner, OwnerProvider, p.OrgID
		}
	case auth.RoleCaseworker, auth.RoleTeamLead:
		v.Side = SideTeam
	}
	if v.Side == SideNone {
		return Viewer{}
	}
	return v
}

// Toward is the direction of the messages addressed to this viewer.
func (v Viewer) Toward() Direction {
	if v.Side == SideTeam {
		return Inbound
	}
	return Outbound
}

// Archive selects threads by the owner's archive flag.
type Archive int

const (
	ArchiveInbox    Archive = iota // not archived (default)
	ArchiveArchived                // only archived
	ArchiveAll                     // both
)

// Filter narrows a thread list. Zero values mean "any".
type Filter struct {
	Topic   string
	State   string // StateOpen or StateClosed
	From    time.Time
	To      time.Time // exclusive
	Query   string    // substring of the subject, case-insensitive, no wildcards
	Archive Archive   // owner side only
	Unread  bool      // only threads with unread messages
	TeamID  string    // team side: one of the viewer's teams
	Before  *Cursor   // page after this thread
	Limit   int
}

// Cursor points at the last thread of a page (threads are ordered by last
// activity, newest first).
type Cursor struct {
	LastMessageAt time.Time
	ID            string
}

// Upload is a file stored for a message that is not sent yet.
type Upload struct {
	ID          string
	TenantID    string
	UploaderID  string // account
	BlobKey     string
	FileName    string
	ContentType string
	Size        int64
	SHA256      string
	CreatedAt   time.Time
}

// FailedNotification is a notification mail the notifier gave up on,
// shown to caseworkers so they can reach the person another way.
type FailedNotification struct {
	ID        string
	PersonID  string
	Recipient string // masked
	Template  string
	Attempts  int
	LastError string
	CreatedAt time.Time
	FailedAt  time.Time
}

// DeletedMessage is what retention removed in one step.
type DeletedMessage struct {
	MessageID     string
	ThreadID      string
	Attachments   []string // attachment ids
	ThreadDeleted bool
}

// Store is what the Postfach needs from the transactional database.
// storage/sqldb implements it; every read takes the Viewer.
type Store interface {
	InTx(ctx context.Context, fn func(Tx) error) error

	Kasse(ctx context.Context, id string) (kasse.Kasse, error)
	Kassen(ctx context.Context) ([]kasse.Kasse, error)
	Person(ctx context.Context, tenantID, id string) (kasse.Person, error)
	// ProviderOrgExists tells whether the tenant has accounts of the
	// provider organisation (organisations exist through their accounts).
	ProviderOrgExists(ctx context.Context, tenantID, orgID string) (bool, error)

	Teams(ctx context.Context, tenantID string) ([]Team, error)
	TeamsOf(ctx context.Context, tenantID, accountID string) ([]Team, error)
	Threads(ctx context.Context, v Viewer, f Filter) ([]Thread, error)
	Thread(ctx context.Context, v Viewer, id string) (Thread, error)
	ThreadMessages(ctx context.Context, v Viewer, threadID string) ([]Message, error)
	Attachment(ctx context.Context, v Viewer, id string) (Attachment, error)
	FailedNotifications(ctx context.Context, v Viewer, limit int) ([]FailedNotification, error)

	// Retention.
	ExpiredMessages(ctx context.Context, tenantID string, before time.Time, limit int) ([]string, error)
	StaleUploads(ctx context.Context, before time.Time, limit int) ([]Upload, error)
	TrashedBlobs(ctx context.Context, limit int) ([]string, error)
	ForgetTrashedBlob(ctx context.Context, key string) error
	// PurgeMailJobs deletes notification jobs sent before sentBefore and
	// failed ones given up before failedBefore; it returns how many.
	PurgeMailJobs(ctx context.Context, sentBefore, failedBefore time.Time) (int, error)
}

// Tx is one transaction: a change, its audit event and its notification
// commit together.
type Tx interface {
	Now() time.Time
	RecordEvent(ctx context.Context, e audit.Event) (audit.Event, error)
	EnqueueMail(ctx context.Context, j notifier.Job) (notifier.Job, error)

	TeamByTopic(ctx context.Context, tenantID, topic string) (Team, error)
	IsTeamMember(ctx context.Context, tenantID, teamID, accountID string) (bool, error)
	CreateThread(ctx context.Context, th Thread) (Thread, error)
	// LockThread returns the thread if v may see it (ErrNotFound otherwise)
	// and keeps other writers of it waiting until the commit.
	LockThread(ctx context.Context, v Viewer, id string) (Thread, error)
	AddMessage(ctx context.Context, m Message) (Message, error)
	SetThreadState(ctx context.Context, tenantID, id, state string) error
	AssignThread(ctx context.Context, tenantID, id, accountID string) error
	SetThreadArchived(ctx context.Context, tenantID, id string, archived bool) error
	SetLegalHold(ctx context.Context, tenantID, id string, hold bool) error
	MarkThreadRead(ctx context.Context, v Viewer, threadID string, read bool) (int, error)

	AddUpload(ctx context.Context, u Upload) error
	// TakeUpload removes the uploader's pending upload and returns it.
	TakeUpload(ctx context.Context, tenantID, uploaderID, id string) (Upload, error)
	// FinalizePersonUploads takes complete uploads of the person from the
	// intake upload path (tus) for a message: they become final there and
	// are returned with blob key, size and SHA-256. Another person's or an
	// unknown upload: ErrNotFound; one still uploading, being scanned,
	// infected or expired: ErrUploadNotReady.
	FinalizePersonUploads(ctx context.Context, tenantID, personID string, ids []string) ([]Upload, error)
	DeleteUpload(ctx context.Context, tenantID, id string) error

	// DeleteMessage removes a message, its read marks and attachments, and
	// queues their blobs for deletion; the thread goes with its last
	// message. A thread under legal hold is left alone (ErrLegalHold).
	DeleteMessage(ctx context.Context, tenantID, id string) (DeletedMessage, error)
	TrashBlob(ctx context.Context, tenantID, key string) error
	RequeueNotification(ctx context.Context, v Viewer, id string) (notifier.Job, error)
}
