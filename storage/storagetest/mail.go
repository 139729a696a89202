package storagetest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"
	"time"

	"postbox/notifier"
)

// MailFetcher returns the raw RFC 5322 mails the server holds for one
// recipient, as a mail client would download them.
type MailFetcher func(t *testing.T, recipient string) [][]byte

// TestMailSender is the contract both mail paths pass: the .eml directory
// of the embedded default and SMTP into a real server (maildev).
func TestMailSender(t *testing.T, s notifier.Sender, fetch MailFetcher) {
	ctx := t.Context()
	newRecipient := func() string {
		var b [6]byte
		rand.Read(b[:])
		return "empfaenger-" + hex.EncodeToString(b[:]) + "@example.org"
	}

	t.Run("Ping", func(t *testing.T) {
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})

	t.Run("delivers German text and HTML with a stable Message-ID", func(t *testing.T) {
		to := newRecipient()
		m := notifier.Mail{
			MessageID: "<" + strings.TrimSuffix(to, "@example.org") + "@postbox>",
			From:      "postfach@kasse.example", To: to,
			Subject: "Neue Nachricht in Ihrem Postfach – Grüße",
			Text:    "Guten Tag,\nüber Ihr Postfach: Bitte melden Sie sich an.\n" + strings.Repeat("lange Zeile ", 20),
			HTML:    "<p>Guten Tag, <b>Größe</b> &amp; Maß</p>",
			Date:    time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC),
		}
		if err := s.Send(ctx, m); err != nil {
			t.Fatalf("Send: %v", err)
		}
		var got [][]byte
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if got = fetch(t, to); len(got) > 0 {
				break
			}
		}
		if len(got) != 1 {
			t.Fatalf("server holds %d mails for the recipient, want 1", len(got))
		}
		msg, err := mail.ReadMessage(bytes.NewReader(got[0]))
		if err != nil {
			t.Fatalf("delivered mail does not parse: %v", err)
		}
		subj, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
		if err != nil || subj != m.Subject {
			t.Errorf("subject %q (%v), want %q", subj, err, m.Subject)
		}
		if msg.Header.Get("Message-Id") != m.MessageID {
			t.Errorf("Message-ID %q, want %q", msg.Header.Get("Message-Id"), m.MessageID)
		}
		text, html := alternativeParts(t, msg)
		if strings.ReplaceAll(text, "\r\n", "\n") != m.Text {
			t.Errorf("text part differs:\n%q\nwant\n%q", text, m.Text)
		}
		if !strings.Contains(html, "<b>Größe</b> &amp; Maß") {
			t.Errorf("html part differs: %q", html)
		}
	})

	t.Run("refuses header injection and delivers nothing", func(t *testing.T) {
		to := newRecipient()
		m := notifier.Mail{MessageID: "<inj@postbox>", From: "postfach@kasse.example", To: to,
			Subject: "Hallo\r\nBcc: opfer@example.org", Text: "x"}
		if err := s.Send(ctx, m); err == nil {
			t.Fatal("a subject with a line break was sent")
		}
		if got := fetch(t, to); len(got) != 0 {
			t.Fatalf("%d mails delivered for a refused send", len(got))
		}
	})
}

func alternativeParts(t *testing.T, msg *mail.Message) (text, html string) {
	t.Helper()
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("content type: %v", err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return text, html
		}
		if err != nil {
			t.Fatalf("multipart: %v", err)
		}
		var r io.Reader = p
		if p.Header.Get("Content-Transfer-Encoding") == "quoted-printable" {
			r = quotedprintable.NewReader(p)
		}
		body, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("part: %v", err)
		}
		switch ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); ct {
		case "text/plain":
			text = string(body)
		case "text/html":
			html = string(body)
		}
	}
}
