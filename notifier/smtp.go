package notifier

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
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
	// MaxIdle sessions are kept open between mails (default 8): opening a
	// session costs several round trips and, at many servers, a reverse DNS
	// lookup, which dominates the time per mail. 0 uses the default; a
	// negative value opens a session per mail.
	MaxIdle int
	// IdleTimeout closes a kept session that has not been used for this
	// long (default 30s), before the server gives up on it.
	IdleTimeout time.Duration
}

// SMTP sends over a real SMTP server with emersion/go-smtp. The package-level
// smtp.SendMail insists on STARTTLS, so the session is driven step by step.
// Sessions are reused for further mails (MAIL FROM starts the next
// transaction in the same session) and safe for concurrent use.
type SMTP struct {
	cfg  SMTPConfig
	idle chan *session
}

// session is an open, authenticated SMTP session between two mails.
type session struct {
	c        *smtp.Client
	conn     net.Conn
	lastUsed time.Time
}

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
	if cfg.MaxIdle == 0 {
		cfg.MaxIdle = 8
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Second
	}
	s := &SMTP{cfg: cfg}
	if cfg.MaxIdle > 0 {
		s.idle = make(chan *session, cfg.MaxIdle)
	}
	return s, nil
}

func (s *SMTP) dial(ctx context.Context) (*smtp.Client, error) {
	c, _, err := s.dialConn(ctx)
	return c, err
}

func (s *SMTP) dialConn(ctx context.Context) (*smtp.Client, net.Conn, error) {
	d := net.Dialer{Timeout: s.cfg.Timeout}
	conn, err := d.DialContext(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return nil, nil, fmt.Errorf("smtp connect: %w", err)
	}
	setDeadline(ctx, conn, s.cfg.Timeout)
	var c *smtp.Client
	if s.cfg.StartTLS {
		host, _, _ := net.SplitHostPort(s.cfg.Addr)
		c, err = smtp.NewClientStartTLS(conn, &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12})
		if err != nil {
			conn.Close()
			return nil, nil, fmt.Errorf("smtp starttls: %w", err)
		}
	} else {
		c = smtp.NewClient(conn)
	}
	if err := c.Hello(s.cfg.HeloName); err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("smtp hello: %w", err)
	}
	if s.cfg.Username != "" {
		if err := c.Auth(sasl.NewPlainClient("", s.cfg.Username, s.cfg.Password)); err != nil {
			c.Close()
			return nil, nil, fmt.Errorf("smtp auth: %w", err)
		}
	}
	return c, conn, nil
}

func setDeadline(ctx context.Context, conn net.Conn, timeout time.Duration) {
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	} else {
		_ = conn.SetDeadline(time.Now().Add(timeout))
	}
}

// take returns a kept session that is still fresh, or nil.
func (s *SMTP) take() *session {
	for {
		select {
		case ss := <-s.idle:
			if time.Since(ss.lastUsed) < s.cfg.IdleTimeout {
				return ss
			}
			ss.c.Close()
		default:
			return nil
		}
	}
}

// keep puts a session back for the next mail, or closes it when enough
// are kept.
func (s *SMTP) keep(ss *session) {
	ss.lastUsed = time.Now()
	select {
	case s.idle <- ss:
	default:
		_ = ss.c.Quit()
		ss.c.Close()
	}
}

// Send delivers one mail, in a kept session when one is open. A kept
// session the server has closed meanwhile fails at MAIL FROM, before any
// content went out, so the mail is then sent in a new session; a failure
// from DATA on is returned (the server may have the mail: the worker's
// retry decides, with the same Message-ID).
func (s *SMTP) Send(ctx context.Context, m Mail) error {
	raw, err := m.Bytes()
	if err != nil {
		return err
	}
	if s.idle != nil {
		if ss := s.take(); ss != nil {
			setDeadline(ctx, ss.conn, s.cfg.Timeout)
			if err := ss.c.Mail(m.From, nil); err == nil {
				return s.finish(ss, m, raw)
			}
			ss.c.Close() // stale: start over in a new session
		}
	}
	c, conn, err := s.dialConn(ctx)
	if err != nil {
		return err
	}
	ss := &session{c: c, conn: conn}
	if err := c.Mail(m.From, nil); err != nil {
		c.Close()
		return fmt.Errorf("smtp send: %w", err)
	}
	return s.finish(ss, m, raw)
}

// finish sends RCPT and DATA of a transaction whose MAIL FROM succeeded.
func (s *SMTP) finish(ss *session, m Mail, raw []byte) error {
	err := ss.c.Rcpt(m.To, nil)
	if err == nil {
		var w io.WriteCloser
		if w, err = ss.c.Data(); err == nil {
			if _, err = w.Write(raw); err == nil {
				err = w.Close()
			} else {
				w.Close()
			}
		}
	}
	if err != nil {
		ss.c.Close()
		return fmt.Errorf("smtp send: %w", err)
	}
	if s.idle == nil {
		_ = ss.c.Quit()
		ss.c.Close()
		return nil
	}
	s.keep(ss)
	return nil
}

// Close ends the kept sessions.
func (s *SMTP) Close() error {
	if s.idle == nil {
		return nil
	}
	for {
		select {
		case ss := <-s.idle:
			_ = ss.c.Quit()
			ss.c.Close()
		default:
			return nil
		}
	}
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
