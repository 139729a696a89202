package notifier

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Maildev talks to the web API of maildev, the SMTP sink the deploy scripts
// start for tests and demos. It is a DeliveryChecker: unlike a real relay,
// maildev can be asked whether it already holds a Message-ID.
type Maildev struct {
	URL  string // e.g. http://127.0.0.1:51080
	HTTP *http.Client
}

// MaildevEmail is the part of maildev's JSON that callers look at.
type MaildevEmail struct {
	ID      string                     `json:"id"`
	Time    time.Time                  `json:"time"`
	Subject string                     `json:"subject"`
	Text    string                     `json:"text"`
	HTML    string                     `json:"html"`
	Headers map[string]json.RawMessage `json:"headers"`
	To      []struct {
		Address string `json:"address"`
	} `json:"to"`
	Attachments []json.RawMessage `json:"attachments"`
}

func (m *Maildev) client() *http.Client {
	if m.HTTP != nil {
		return m.HTTP
	}
	return &http.Client{Timeout: 30 * time.Second}
}

func (m *Maildev) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(m.URL, "/")+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := m.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("maildev: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("maildev: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("maildev %s: HTTP %d", path, resp.StatusCode)
	}
	return body, nil
}

// EmailsTo lists the mails maildev holds for one recipient (maildev filters
// on the server, so a shared instance with many mails stays cheap to ask).
func (m *Maildev) EmailsTo(ctx context.Context, recipient string) ([]MaildevEmail, error) {
	body, err := m.get(ctx, "/api/email?"+url.Values{"to.address": {recipient}}.Encode())
	if err != nil {
		return nil, err
	}
	var out []MaildevEmail
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("maildev: %w", err)
	}
	return out, nil
}

// Source returns the raw RFC 5322 text of one mail.
func (m *Maildev) Source(ctx context.Context, id string) ([]byte, error) {
	return m.get(ctx, "/api/email/"+url.PathEscape(id)+"/source")
}

// Count returns how many mails maildev holds in total.
func (m *Maildev) Count(ctx context.Context) (int, error) {
	body, err := m.get(ctx, "/api/email/summary?limit=1")
	if err != nil {
		return 0, err
	}
	var s struct {
		Total int `json:"total"`
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return 0, fmt.Errorf("maildev: %w", err)
	}
	return s.Total, nil
}

// MessageID is the mail's Message-ID header ("" if it has none).
func (e MaildevEmail) MessageID() string {
	var id string
	if raw, ok := e.Headers["message-id"]; ok {
		_ = json.Unmarshal(raw, &id)
	}
	return id
}

// Delivered reports whether maildev holds a mail with m's Message-ID.
func (m *Maildev) Delivered(ctx context.Context, mail Mail) (bool, error) {
	list, err := m.EmailsTo(ctx, mail.To)
	if err != nil {
		return false, err
	}
	want := strings.Trim(mail.MessageID, "<>")
	for _, e := range list {
		if strings.Trim(e.MessageID(), "<>") == want {
			return true, nil
		}
	}
	return false, nil
}
