package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// SMSGateway sends a text message to a mobile number (mTAN).
type SMSGateway interface {
	SendSMS(ctx context.Context, to, text string) error
}

// SMSDir is the embedded default gateway: every SMS becomes a file in Dir
// (DATA_DIR/sms), so the demo and tests can read the mTAN.
type SMSDir struct{ Dir string }

// NewSMSDir creates the directory (readable by the service only: the
// files hold phone numbers and codes).
func NewSMSDir(dir string) (*SMSDir, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sms dir: %w", err)
	}
	return &SMSDir{Dir: dir}, nil
}

// SendSMS writes "An: <number>\n\n<text>\n" atomically to a new file.
func (d *SMSDir) SendSMS(_ context.Context, to, text string) error {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	name := time.Now().UTC().Format("20060102T150405.000000") + "-" + hex.EncodeToString(b[:]) + ".txt"
	tmp := filepath.Join(d.Dir, "."+name)
	if err := os.WriteFile(tmp, []byte("An: "+to+"\n\n"+text+"\n"), 0o600); err != nil {
		return fmt.Errorf("write sms: %w", err)
	}
	return os.Rename(tmp, filepath.Join(d.Dir, name))
}

// Ping tells whether the directory is writable (for /readyz).
func (d *SMSDir) Ping(context.Context) error {
	f, err := os.CreateTemp(d.Dir, ".ping-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

// SMSHTTP posts each SMS as JSON {"to": "...", "text": "..."} to URL (an
// SMS provider's or an in-house gateway's endpoint). Any 2xx is accepted.
type SMSHTTP struct {
	URL    string
	Client *http.Client
}

// NewSMSHTTP checks the URL.
func NewSMSHTTP(url string) (*SMSHTTP, error) {
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return nil, errors.New("SMS gateway URL must start with http:// or https://")
	}
	return &SMSHTTP{URL: url, Client: &http.Client{Timeout: 10 * time.Second}}, nil
}

// SendSMS posts the message.
func (g *SMSHTTP) SendSMS(ctx context.Context, to, text string) error {
	body, err := json.Marshal(map[string]string{"to": to, "text": text})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := g.Client.Do(req)
	if err != nil {
		// The error may quote the URL, never the number or the text.
		return fmt.Errorf("sms gateway: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("sms gateway answered %d", resp.StatusCode)
	}
	return nil
}

var mobilePattern = regexp.MustCompile(`^\+[1-9][0-9]{7,14}$`)

// NormalizeMobile turns a German or international mobile number into E.164
// (+49151…): spaces, dashes, slashes and brackets are dropped, a leading 0
// becomes +49, 00 becomes +.
func NormalizeMobile(s string) (string, error) {
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '/', '(', ')', '.':
			return -1
		}
		return r
	}, strings.TrimSpace(s))
	switch {
	case strings.HasPrefix(s, "00"):
		s = "+" + s[2:]
	case strings.HasPrefix(s, "0"):
		s = "+49" + s[1:]
	}
	if !mobilePattern.MatchString(s) {
		return "", &FieldError{Field: "mobile", Message: "Bitte geben Sie eine gültige Mobilnummer an, z. B. 0151 23456789 oder +49 151 23456789."}
	}
	return s, nil
}
