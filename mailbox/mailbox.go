// Package mailbox is the Postfach: threads between an insured person (or a
// provider organisation) and a team of the Kasse, immutable messages with
// attachments, read state and retention.
package mailbox

import (
	"errors"
	"time"
)

// OwnerKind says whose Postfach a thread is in.
type OwnerKind string

const (
	OwnerPerson   OwnerKind = "person"
	OwnerProvider OwnerKind = "provider"
)

// Direction of a message, seen from the Kasse.
type Direction string

const (
	Inbound  Direction = "in"  // from the owner to the Kasse
	Outbound Direction = "out" // from the Kasse to the owner
)

// Kind of message.
type Kind string

const (
	KindMessage  Kind = "message"  // written by a person
	KindDocument Kind = "document" // a letter of the Kasse delivered online
	KindReceipt  Kind = "receipt"  // confirmation of an upload submission
)

// Team is a team inbox of a Kasse for one topic.
type Team struct {
	ID        string
	TenantID  string
	Name      string
	Topic     string
	CreatedAt time.Time
}

// Thread states.
const (
	StateOpen   = "open"
	StateClosed = "closed"
)

// Channel says how a thread reaches its owner.
type Channel string

const (
	// ChannelPostfach: shown in the owner's Postfach.
	ChannelPostfach Channel = "postfach"
	// ChannelPaper: a letter of the Kasse for a person whose preferred
	// delivery is post. The Kasse keeps it and marks it for print; the
	// owner does not see it online.
	ChannelPaper Channel = "paper"
)

// PaperToPrint is the paper status of a letter waiting to be printed.
const PaperToPrint = "to_print"

// Thread is a conversation in a Postfach.
type Thread struct {
	ID            string
	TenantID      string
	OwnerKind     OwnerKind
	OwnerID       string
	TeamID        string
	Subject       string
	VorgangID     string
	State         string // "open" or "closed"
	AssignedTo    string
	LegalHold     bool
	Channel       Channel   // empty means ChannelPostfach
	PaperStatus   string    // PaperToPrint for paper letters
	ArchivedAt    time.Time // the owner moved it to the archive; zero: in the inbox
	CreatedAt     time.Time
	LastMessageAt time.Time

	// Filled by reads, not stored on the thread.
	Topic    string // the team's topic
	TeamName string
	Unread   int // messages towards the viewer that the viewer has not read
	Messages int
}

// Message is immutable once stored.
type Message struct {
	ID              string
	TenantID        string
	ThreadID        string
	Direction       Direction
	Kind            Kind
	SenderAccountID string
	Body            string
	CreatedAt       time.Time
	Attachments     []Attachment
	Read            bool // filled by reads: the viewer has read it (own messages count as read)
}

// Attachment is a stored file of a message or a Vorgang.
type Attachment struct {
	ID          string
	TenantID    string
	MessageID   string
	VorgangID   string
	BlobKey     string
	FileName    string
	ContentType string
	Size        int64
	SHA256      string // hex
	CreatedAt   time.Time
}

// ErrNotFound is returned for a thread, message or attachment that does not
// exist or that the asking person may not see; both answer the same.
var ErrNotFound = errors.New("not found")
