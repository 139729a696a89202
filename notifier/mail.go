// Package notifier sends the content-free e-mail notifications: the outbox
// worker, the German templates and the senders (SMTP in server mode, .eml
// files in the embedded default).
//
// Delivery guarantees. A notification is a row in mail_outbox, written in
// the transaction of the message it announces, with its Message-ID fixed
// there. Nothing is lost: a job leaves the outbox only as "sent" (the server
// answered 250 to DATA) or "failed" (after MaxAttempts, or a permanent 5xx
// rejection; audited and listed for caseworkers). A worker claims a job by
// setting it to "sending" with a lease and a token before it talks to the
// server, and records the 250 right after (group-committed with whatever
// else finished meanwhile).
//
// The residual window: if the process dies after the server's 250 and
// before that record commits, the job stays "sending" until its lease ends
// (2 × SendTimeout, default 1 minute); the next worker then takes it over
// as "reclaimed". Where the server can be asked whether it holds the
// Message-ID (the .eml directory; maildev through its API, see Maildev), the
// worker records the earlier delivery and sends nothing. A real SMTP relay
// cannot be asked, so there the mail is sent a second time, with the same
// Message-ID, which lets mail clients that deduplicate by Message-ID show
// it once. The window is one database write long; it is not zero.
package notifier

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"strings"
	"time"
)

// Mail is one rendered notification. It never carries message text or
// attachments of the Postfach, only the hint that something is waiting.
type Mail struct {
	MessageID string // stable per notification job: "<id@host>"
	From, To  string
	Subject   string
	Text      string
	HTML      string
	Date      time.Time
}

// Sender delivers mail. Send must be safe to call again for the same
// MessageID after an unclear failure.
type Sender interface {
	Send(ctx context.Context, m Mail) error
	Ping(ctx context.Context) error
}

// Bytes renders the mail as RFC 5322 with a text and an HTML alternative,
// UTF-8 and quoted-printable, so German umlauts survive every hop.
func (m Mail) Bytes() ([]byte, error) {
	for _, h := range []string{m.From, m.To, m.Subject, m.MessageID} {
		if strings.ContainsAny(h, "\r\n") {
			return nil, fmt.Errorf("mail header contains a line break")
		}
	}
	var boundary [12]byte
	if _, err := rand.Read(boundary[:]); err != nil {
		return nil, err
	}
	b := "postbox-" + hex.EncodeToString(boundary[:])
	var buf bytes.Buffer
	date := m.Date
	if date.IsZero() {
		date = time.Now()
	}
	fmt.Fprintf(&buf, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: %s\r\nMIME-Version: 1.0\r\n",
		m.From, m.To, mime.QEncoding.Encode("utf-8", m.Subject), date.Format(time.RFC1123Z), m.MessageID)
	fmt.Fprintf(&buf, "Auto-Submitted: auto-generated\r\nContent-Type: multipart/alternative; boundary=%q\r\n\r\n", b)
	for _, part := range []struct{ ctype, body string }{{"text/plain", m.Text}, {"text/html", m.HTML}} {
		if part.body == "" {
			continue
		}
		fmt.Fprintf(&buf, "--%s\r\nContent-Type: %s; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", b, part.ctype)
		qp := quotedprintable.NewWriter(&buf)
		if _, err := qp.Write([]byte(strings.ReplaceAll(part.body, "\n", "\r\n"))); err != nil {
			return nil, err
		}
		if err := qp.Close(); err != nil {
			return nil, err
		}
		buf.WriteString("\r\n")
	}
	fmt.Fprintf(&buf, "--%s--\r\n", b)
	return buf.Bytes(), nil
}
