package notifier

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// SMTPConfig describes the outgoing mail server.
type SMTPConfig struct {
	Addr     string // host:port
	Username string // AUTH PLAIN when set
	Password string
	StartTLS bool // require STARTTLS (plain is only for loopback test sinks)
	HeloName string
	Timeout  time.Duration
}

// SMTP sends over a real SMTP server with emersion/go-smtp. The package-level
// smtp.SendMail insists on STARTTLS, so the session is driven step by step.
type SMTP struct{ cfg SMTPConfig }

// NewSMTP validates the configuration.
func NewSMTP(cfg SMTPConfig) (*SMTP, error) {
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("smtp address %q: %w", cfg.Addr, err)
	}
	if cfg.HeloName == "" {
		cfg.HeloName = "localhost"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 15 * time.Second
	}
	return &SMTP{cfg: cfg}, nil
}

func (s *SMTP) dial(ctx context.Context) (*smtp.Client, error) {
	d := net.Dialer{Timeout: s.cfg.Timeout}
	conn, err := d.DialContext(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("smtp connect: %w", err)
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	} else {
		_ = conn.SetDeadline(time.Now().Add(s.cfg.Timeout))
	}
	var c *smtp.Client
	if s.cfg.StartTLS {
		host, _, _ := net.SplitHostPort(s.cfg.Addr)
		c, err = smtp.NewClientStartTLS(conn, &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12})
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("smtp starttls: %w", err)
		}
	} else {
		c = smtp.NewClient(conn)
	}
	if err := c.Hello(s.cfg.HeloName); err != nil {
		c.Close()
		return nil, fmt.Errorf("smtp hello: %w", err)
	}
	if s.cfg.Username != "" {
		if err := c.Auth(sasl.NewPlainClient("", s.cfg.Username, s.cfg.Password)); err != nil {
			c.Close()
			return nil, fmt.Errorf("smtp auth: %w", err)
		}
	}
	return c, nil
}

// Send delivers one mail in its own session.
func (s *SMTP) Send(ctx context.Context, m Mail) error {
	raw, err := m.Bytes()
	if err != nil {
		return err
	}
	c, err := s.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SendMail(m.From, []string{m.To}, bytes.NewReader(raw)); err != nil {
		return fmt.Errorf("smtp send: %w", err)
	}
	return c.Quit()
}

// Ping opens a session and says goodbye (for /readyz).
func (s *SMTP) Ping(ctx context.Context) error {
	c, err := s.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Quit()
}
