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

	// Account mails (auth). Each carries only the Kasse's name, the portal
	// and one link (DataLoginURL), never personal data.
	TemplateEmailConfirm     Template = "auth_email_confirm"      // seed 002: link valid 4 weeks
	TemplateUnlockLetterSent Template = "auth_unlock_letter_sent" // seed 002: Freischaltcode letter announced
	TemplatePasswordReset    Template = "auth_password_reset"
	TemplateInvitation       Template = "auth_invitation" // seed 001: 720 hours
	// TemplateEmailChange goes to a new address with the link that makes
	// it the account's address (24 hours).
	TemplateEmailChange Template = "auth_email_change"
	// TemplateEmailChangeNotice tells the old address that a change was
	// asked for (NIST SP 800-63B: notify the subscriber of changes).
	TemplateEmailChangeNotice Template = "auth_email_change_notice"
)

// Job states in the mail outbox.
const (
	StatusPending = "pending" // waiting for its next attempt
	StatusSending = "sending" // claimed by a worker; the lease says until when
	StatusSent    = "sent"    // the mail server accepted it
	StatusFailed  = "failed"  // gave up after MaxAttempts or a permanent rejection
)

// Job is one queued notification in the mail outbox. It is written in the
// same transaction as the change it announces.
type Job struct {
	ID            string
	TenantID      string
	Recipient     string // e-mail address
	Template      Template
	Data          map[string]string // template values, never message content
	MessageID     string            // stable Message-ID of the mail, fixed at enqueue
	Status        string            // pending, sending, sent, failed
	Attempts      int
	NextAttemptAt time.Time
	CreatedAt     time.Time
	SentAt        time.Time
	LastError     string

	// PersonID links a notification to the insured person it is for, so
	// caseworkers can see failed notifications of their team's persons.
	PersonID string

	// CoalesceKey groups notifications that must not flood one recipient
	// (e.g. "person:<id>"). While a job with the key is pending, a new one
	// is folded into it; after one was sent, the next waits until
	// CoalesceWindow has passed since. Empty: every job is its own mail.
	CoalesceKey    string
	CoalesceWindow time.Duration // not stored; read at enqueue
	Coalesced      int           // how many later notifications were folded into this job

	// Set by a claim: the token proves the claim when marking the job, the
	// lease says when another worker may take it over, and Reclaimed says
	// the previous claim ended without a result (a crash between send and
	// commit, or a send that outlived its lease).
	ClaimToken string
	LeaseUntil time.Time
	Reclaimed  bool
}
