package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/hkdf"

	"postbox/audit"
	"postbox/auth"
	"postbox/intake"
	"postbox/notifier"
	"postbox/storage/clickhouse"
	"postbox/storage/fsblob"
	"postbox/storage/minio"
	"postbox/storage/postgres"
	"postbox/storage/sqldb"
	"postbox/storage/sqlite"
	"postbox/web"
)

// app is the wired service: one backend per role, chosen by configuration.
type app struct {
	cfg     *Config
	log     *slog.Logger
	db      *sqldb.Store
	blobs   intake.BlobStore
	events  audit.EventStore
	mail    notifier.Sender
	keys    keys
	auth    *auth.Service // set by serve (newAuthService)
	checks  []web.Check
	closers []func() error
}

// keys are derived from the one master key, each for one purpose, so a leak
// of one derived key does not expose the others.
type keys struct {
	blob, pin, clientAddr []byte
	auth                  []byte // auth: code/token hashes, TOTP secret sealing
}

func deriveKeys(master []byte) keys {
	derive := func(purpose string) []byte {
		k := make([]byte, 32)
		if _, err := io.ReadFull(hkdf.New(sha256.New, master, nil, []byte("postbox/"+purpose)), k); err != nil {
			panic(err) // hkdf cannot fail for 32 bytes
		}
		return k
	}
	return keys{blob: derive("blob-encryption"), pin: derive("einmal-pin"), clientAddr: derive("client-address"), auth: derive("auth")}
}

// masterKey returns the configured key, or the one generated into the data
// dir on first start. Replicas in server mode must share it: set
// POSTBOX_SECRET_KEY there.
func masterKey(cfg *Config, log *slog.Logger) ([]byte, error) {
	if len(cfg.SecretKey) == 32 {
		return cfg.SecretKey, nil
	}
	path := filepath.Join(cfg.DataDir, "secret.key")
	if raw, err := os.ReadFile(path); err == nil {
		k, err := hex.DecodeString(strings.TrimSpace(string(raw)))
		if err != nil || len(k) != 32 {
			return nil, fmt.Errorf("%s is damaged: want 64 hex characters", path)
		}
		return k, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(k)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	if cfg.DatabaseURL != "" || cfg.S3Endpoint != "" {
		log.Warn("POSTBOX_SECRET_KEY is not set; generated a key in the data dir. Every replica needs the same key: set POSTBOX_SECRET_KEY.")
	}
	return k, nil
}

// openApp connects every backend. The SQL database and the blob store are
// needed to serve at all, so start-up waits for them (bounded) and fails
// with a clear message. Events and mail wait in the outbox, so ClickHouse
// and SMTP may be down at start: /readyz reports them until they are back.
func openApp(ctx context.Context, cfg *Config, log *slog.Logger) (_ *app, err error) {
	a := &app{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	master, err := masterKey(cfg, log)
	if err != nil {
		return nil, err
	}
	a.keys = deriveKeys(master)

	// Transactional database.
	if cfg.DatabaseURL != "" {
		err = retry(ctx, 30*time.Second, func() error {
			a.db, err = postgres.Open(ctx, cfg.DatabaseURL)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("postgres (POSTBOX_DATABASE_URL): %w", err)
		}
		a.checks = append(a.checks, web.Check{Name: "postgres", Ping: a.db.Ping})
	} else {
		a.db, err = sqlite.Open(ctx, filepath.Join(cfg.DataDir, "postbox.db"))
		if err != nil {
			return nil, fmt.Errorf("sqlite: %w", err)
		}
		a.checks = append(a.checks, web.Check{Name: "sqlite", Ping: a.db.Ping})
	}
	a.closers = append(a.closers, a.db.Close)

	// Blobs.
	if cfg.S3Endpoint != "" {
		m, err := minio.New(cfg.S3Endpoint, cfg.S3AccessKey, cfg.S3SecretKey, cfg.S3Bucket, cfg.S3UseTLS)
		if err != nil {
			return nil, &ConfigError{Env: "POSTBOX_S3_ENDPOINT", Flag: "s3-endpoint", Value: cfg.S3Endpoint, Problem: err.Error()}
		}
		m.KeepDeleted(cfg.S3KeepDeletedDays)
		if err := retry(ctx, 30*time.Second, func() error { return m.EnsureBucket(ctx) }); err != nil {
			return nil, fmt.Errorf("minio (POSTBOX_S3_ENDPOINT %s): %w", cfg.S3Endpoint, err)
		}
		a.blobs = m
		a.checks = append(a.checks, web.Check{Name: "minio", Ping: m.Ping})
	} else {
		fs, err := fsblob.New(filepath.Join(cfg.DataDir, "blobs"), a.keys.blob)
		if err != nil {
			return nil, fmt.Errorf("blob dir: %w", err)
		}
		a.blobs = fs
		a.checks = append(a.checks, web.Check{Name: "blobs", Ping: fs.Ping})
	}

	// Audit event store.
	if cfg.ClickHouseAddr != "" {
		ch, err := clickhouse.Open(ctx, cfg.ClickHouseAddr, cfg.ClickHouseDatabase, clickhouse.Lazy())
		if err != nil {
			return nil, fmt.Errorf("clickhouse (POSTBOX_CLICKHOUSE_ADDR %s): %w", cfg.ClickHouseAddr, err)
		}
		a.closers = append(a.closers, ch.Close)
		if _, err := ch.Migrate(ctx); err != nil {
			log.Warn("clickhouse not reachable at start; events wait in the outbox", "err", err)
			go migrateLater(ctx, ch, log)
		}
		a.events = ch
		a.checks = append(a.checks, web.Check{Name: "clickhouse", Ping: ch.Ping})
	} else {
		evdb := a.db
		if a.db.Dialect() != sqldb.SQLite {
			// PostgreSQL without ClickHouse: events go to a SQLite file beside.
			evdb, err = sqlite.Open(ctx, filepath.Join(cfg.DataDir, "events.db"))
			if err != nil {
				return nil, fmt.Errorf("sqlite events: %w", err)
			}
			a.closers = append(a.closers, evdb.Close)
		}
		ev := sqlite.NewEventStore(evdb.DB())
		a.events = ev
		a.checks = append(a.checks, web.Check{Name: "events", Ping: ev.Ping})
	}

	// Mail.
	if cfg.SMTPAddr != "" {
		s, err := notifier.NewSMTP(notifier.SMTPConfig{Addr: cfg.SMTPAddr, Username: cfg.SMTPUsername, Password: cfg.SMTPPassword, StartTLS: cfg.SMTPStartTLS})
		if err != nil {
			return nil, &ConfigError{Env: "POSTBOX_SMTP_ADDR", Flag: "smtp-addr", Value: cfg.SMTPAddr, Problem: err.Error()}
		}
		a.mail = s
		a.checks = append(a.checks, web.Check{Name: "smtp", Ping: s.Ping})
	} else {
		d, err := notifier.NewEMLDir(filepath.Join(cfg.DataDir, "mail"))
		if err != nil {
			return nil, err
		}
		a.mail = d
		a.checks = append(a.checks, web.Check{Name: "mail", Ping: d.Ping})
	}
	if space := a.uploadSpace(); space != nil {
		// Below the reserve uploads are refused (507); /readyz says why.
		a.checks = append(a.checks, web.Check{Name: "disk", Ping: func(context.Context) error { return space(0) }})
	}
	if cfg.ClamdAddr != "" {
		// Uploads wait in quarantine while clamd is down; /readyz names it.
		a.checks = append(a.checks, web.Check{Name: "clamd", Ping: (&intake.Clamd{Addr: cfg.ClamdAddr}).Ping})
	}
	return a, nil
}

// migrateLater keeps trying the ClickHouse schema until it succeeds.
func migrateLater(ctx context.Context, ch *clickhouse.Store, log *slog.Logger) {
	_ = retry(ctx, 0, func() error {
		_, err := ch.Migrate(ctx)
		if err == nil {
			log.Info("clickhouse schema ready")
		}
		return err
	})
}

// retry calls fn until it succeeds, ctx ends or limit passes (0: no limit),
// pausing 250 ms growing to 5 s.
func retry(ctx context.Context, limit time.Duration, fn func() error) error {
	deadline := time.Now().Add(limit)
	wait := 250 * time.Millisecond
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if limit > 0 && time.Now().Add(wait).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Second)
	}
}

func (a *app) Close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		if err := a.closers[i](); err != nil {
			a.log.Warn("close", "err", err)
		}
	}
	a.closers = nil
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}
