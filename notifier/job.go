package notifier

import "time"

// Template names a German mail template. Templates never include the
// content of the thing they announce.
type Template string

const (
	// TemplateNewMessage: "Neue Nachricht in Ihrem Postfach".
	TemplateNewMessage Template = "new_message"
	// TemplateStatusChanged: the status of a Vorgang changed.
	TemplateStatusChanged Template = "status_changed"
)

// Job is one queued notification in the mail outbox. It is written in the
// same transaction as the change it announces.
type Job struct {
	ID            string
	TenantID      string
	Recipient     string // e-mail address
	Template      Template
	Data          map[string]string // template values, never message content
	MessageID     string            // stable Message-ID of the mail
	Status        string            // pending, sent, failed
	Attempts      int
	NextAttemptAt time.Time
	CreatedAt     time.Time
	SentAt        time.Time
	LastError     string
}
