package main

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"postbox/storage/minio"
	"postbox/storage/postgres"
)

// Config is everything the binary can be told. Each backend is chosen by
// whether its setting is present: no settings at all is the embedded default.
type Config struct {
	Listen          string
	BaseURL         string
	DataDir         string
	SecretKey       []byte // 32 bytes; empty: generated once into DataDir
	LogLevel        slog.Level
	ShutdownTimeout time.Duration
	SecureCookies   bool

	DatabaseURL string // postgres://...; empty: SQLite in DataDir

	S3Endpoint  string // host:port; empty: blobs on disk in DataDir
	S3AccessKey string
	S3SecretKey string
	S3Bucket    string
	S3UseTLS    bool
	// S3KeepDeletedDays is how long MinIO keeps the data of deleted or
	// replaced objects before its lifecycle rule removes it.
	S3KeepDeletedDays int

	ClickHouseAddr     string // host:port (native protocol); empty: events in SQLite
	ClickHouseDatabase string

	SMTPAddr     string // host:port; empty: mail as .eml files in DataDir
	SMTPUsername string
	SMTPPassword string
	SMTPStartTLS bool
	MailFrom     string

	// Notifier and Postfach rules.
	MailMaxAttempts        int
	MailRetryBase          time.Duration
	MailRetryMax           time.Duration
	MailCoalesceWindow     time.Duration
	PostfachMaxAttachments int
	PostfachMaxText        int

	EventShipInterval time.Duration

	SMSGatewayURL string // http(s) URL the mTAN SMS are POSTed to; empty: files in DataDir/sms

	ClamdAddr string // clamd host:port or Unix socket path; empty: uploads are not virus-scanned

	DiskReserve int64 // bytes kept free on DataDir's volume; uploads are refused (507) below it
}

// setting is one row of the configuration table: a flag, its environment
// variable, a default and a parser that says precisely what is wrong.
type setting struct {
	flag, env, def, help string
	set                  func(c *Config, v string) error
}

func settings() []setting {
	return []setting{
		{"listen", "POSTBOX_LISTEN", "127.0.0.1:8080", "address the HTTP server listens on", func(c *Config, v string) error {
			c.Listen = v
			return hostPort(v)
		}},
		{"base-url", "POSTBOX_BASE_URL", "", "public address of the portal, used in letters and mails (default http://LISTEN)", func(c *Config, v string) error {
			c.BaseURL = v
			if v == "" {
				return nil
			}
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return errors.New("must be an absolute http(s) URL such as https://postfach.example.de")
			}
			return nil
		}},
		{"data-dir", "POSTBOX_DATA_DIR", "./data", "directory of the embedded default (SQLite, blobs, .eml mails, generated key)", func(c *Config, v string) error {
			c.DataDir = v
			if v == "" {
				return errors.New("must not be empty")
			}
			return nil
		}},
		{"secret-key", "POSTBOX_SECRET_KEY", "", "32-byte master key (hex or base64) for blob encryption, PIN and address hashes; default: generated into DATA_DIR/secret.key", func(c *Config, v string) error {
			if v == "" {
				return nil
			}
			k, err := decodeKey(v)
			c.SecretKey = k
			return err
		}},
		{"log-level", "POSTBOX_LOG_LEVEL", "info", "debug, info, warn or error", func(c *Config, v string) error {
			return c.LogLevel.UnmarshalText([]byte(v))
		}},
		{"shutdown-timeout", "POSTBOX_SHUTDOWN_TIMEOUT", "30s", "how long a graceful shutdown waits for in-flight requests", func(c *Config, v string) error {
			d, err := positiveDuration(v)
			c.ShutdownTimeout = d
			return err
		}},
		{"secure-cookies", "POSTBOX_SECURE_COOKIES", "auto", "mark cookies Secure: true, false, or auto (true when BASE_URL is https)", func(c *Config, v string) error {
			switch v {
			case "auto":
				c.SecureCookies = strings.HasPrefix(c.BaseURL, "https://")
			case "true", "false":
				c.SecureCookies = v == "true"
			default:
				return errors.New("must be true, false or auto")
			}
			return nil
		}},
		{"database-url", "POSTBOX_DATABASE_URL", "", "PostgreSQL connection URL (postgres://user:pass@host:port/db); empty: SQLite in DATA_DIR", func(c *Config, v string) error {
			c.DatabaseURL = v
			if v == "" {
				return nil
			}
			if !strings.HasPrefix(v, "postgres://") && !strings.HasPrefix(v, "postgresql://") {
				return errors.New("must start with postgres:// (only PostgreSQL is supported in server mode)")
			}
			if err := postgres.ParseDSN(v); err != nil {
				return fmt.Errorf("cannot be parsed: %s", redact(err.Error(), v))
			}
			return nil
		}},
		{"s3-endpoint", "POSTBOX_S3_ENDPOINT", "", "MinIO/S3 endpoint as host:port; empty: blobs on disk in DATA_DIR", func(c *Config, v string) error {
			c.S3Endpoint = v
			if v == "" {
				return nil
			}
			if strings.Contains(v, "/") {
				return errors.New("must be host:port without scheme or path (use --s3-tls for https)")
			}
			return hostPort(v)
		}},
		{"s3-access-key", "POSTBOX_S3_ACCESS_KEY", "", "S3 access key", func(c *Config, v string) error { c.S3AccessKey = v; return nil }},
		{"s3-secret-key", "POSTBOX_S3_SECRET_KEY", "", "S3 secret key", func(c *Config, v string) error { c.S3SecretKey = v; return nil }},
		{"s3-bucket", "POSTBOX_S3_BUCKET", "postbox", "S3 bucket (created with versioning and default encryption)", func(c *Config, v string) error {
			c.S3Bucket = v
			if len(v) < 3 || len(v) > 63 || strings.ToLower(v) != v || strings.ContainsAny(v, "_ /") {
				return errors.New("must be a valid bucket name: 3-63 lowercase letters, digits, dots or dashes")
			}
			return nil
		}},
		{"s3-tls", "POSTBOX_S3_TLS", "false", "talk https to the S3 endpoint", func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			c.S3UseTLS = b
			return boolErr(err)
		}},
		{"s3-keep-deleted-days", "POSTBOX_S3_KEEP_DELETED_DAYS", strconv.Itoa(minio.DefaultKeepDeletedDays),
			"days the bucket keeps the data of deleted or replaced objects (versioning) before a lifecycle rule removes it for good; deletions by retention or on request are final after this", func(c *Config, v string) error {
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 || n > 3650 {
					return errors.New("must be a whole number of days from 1 to 3650")
				}
				c.S3KeepDeletedDays = n
				return nil
			}},
		{"clickhouse-addr", "POSTBOX_CLICKHOUSE_ADDR", "", "ClickHouse native protocol address host:port; empty: events in SQLite", func(c *Config, v string) error {
			c.ClickHouseAddr = v
			if v == "" {
				return nil
			}
			return hostPort(v)
		}},
		{"clickhouse-database", "POSTBOX_CLICKHOUSE_DATABASE", "postbox", "ClickHouse database (created if missing)", func(c *Config, v string) error {
			c.ClickHouseDatabase = v
			if !identifier.MatchString(v) {
				return errors.New("must be a plain identifier: letters, digits and _")
			}
			return nil
		}},
		{"smtp-addr", "POSTBOX_SMTP_ADDR", "", "SMTP server host:port; empty: mails written as .eml files to DATA_DIR/mail", func(c *Config, v string) error {
			c.SMTPAddr = v
			if v == "" {
				return nil
			}
			return hostPort(v)
		}},
		{"smtp-username", "POSTBOX_SMTP_USERNAME", "", "SMTP AUTH user (AUTH PLAIN, only over STARTTLS or loopback)", func(c *Config, v string) error { c.SMTPUsername = v; return nil }},
		{"smtp-password", "POSTBOX_SMTP_PASSWORD", "", "SMTP AUTH password", func(c *Config, v string) error { c.SMTPPassword = v; return nil }},
		{"smtp-starttls", "POSTBOX_SMTP_STARTTLS", "false", "require STARTTLS", func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			c.SMTPStartTLS = b
			return boolErr(err)
		}},
		{"mail-from", "POSTBOX_MAIL_FROM", "postfach@postbox.invalid", "sender address of notification mails", func(c *Config, v string) error {
			c.MailFrom = v
			if !strings.Contains(v, "@") || strings.ContainsAny(v, " <>\r\n") {
				return errors.New("must be a plain address like postfach@kasse.de")
			}
			return nil
		}},
		{"mail-max-attempts", "POSTBOX_MAIL_MAX_ATTEMPTS", "10", "attempts per notification mail; then it is marked failed, audited and shown to caseworkers", func(c *Config, v string) error {
			n, err := intIn(v, 1, 100)
			c.MailMaxAttempts = n
			return err
		}},
		{"mail-retry-base", "POSTBOX_MAIL_RETRY_BASE", "30s", "delay before the first retry of a notification mail; doubles per attempt, with jitter", func(c *Config, v string) error {
			d, err := positiveDuration(v)
			c.MailRetryBase = d
			return err
		}},
		{"mail-retry-max", "POSTBOX_MAIL_RETRY_MAX", "1h", "longest delay between two attempts of a notification mail", func(c *Config, v string) error {
			d, err := positiveDuration(v)
			c.MailRetryMax = d
			return err
		}},
		{"mail-coalesce-window", "POSTBOX_MAIL_COALESCE_WINDOW", "15m", "new messages for one person within this window produce one notification mail", func(c *Config, v string) error {
			d, err := positiveDuration(v)
			c.MailCoalesceWindow = d
			return err
		}},
		{"postfach-max-attachments", "POSTBOX_POSTFACH_MAX_ATTACHMENTS", "5", "attachments per Postfach message", func(c *Config, v string) error {
			n, err := intIn(v, 1, 50)
			c.PostfachMaxAttachments = n
			return err
		}},
		{"postfach-max-text", "POSTBOX_POSTFACH_MAX_TEXT", "5000", "characters per Postfach message text", func(c *Config, v string) error {
			n, err := intIn(v, 100, 100000)
			c.PostfachMaxText = n
			return err
		}},
		{"event-ship-interval", "POSTBOX_EVENT_SHIP_INTERVAL", "1s", "how often audit events are shipped from the outbox to the event store", func(c *Config, v string) error {
			d, err := positiveDuration(v)
			c.EventShipInterval = d
			return err
		}},
		{"sms-gateway-url", "POSTBOX_SMS_GATEWAY_URL", "", "URL the mTAN SMS are POSTed to as JSON {to, text}; empty: written as files to DATA_DIR/sms", func(c *Config, v string) error {
			c.SMSGatewayURL = v
			if v == "" {
				return nil
			}
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return errors.New("must be an absolute http(s) URL such as https://sms.example.de/send")
			}
			return nil
		}},
		{"clamd-addr", "POSTBOX_CLAMD_ADDR", "", "ClamAV clamd (INSTREAM) as host:port or /path/to/clamd.sock; uploads stay quarantined until it finds them clean. Empty: uploads are released unscanned (scan status not_scanned)", func(c *Config, v string) error {
			c.ClamdAddr = v
			if v == "" || strings.HasPrefix(v, "/") {
				return nil
			}
			return hostPort(v)
		}},
		{"disk-reserve", "POSTBOX_DISK_RESERVE", "512MiB", "free space kept on the volume of DATA_DIR when SQLite or the blob directory live there; uploads are refused with 507 below it (0: no check)", func(c *Config, v string) error {
			n, err := parseBytes(v)
			c.DiskReserve = n
			return err
		}},
	}
}

// ConfigError names the setting and says what is wrong, in one line.
type ConfigError struct {
	Env, Flag, Value, Problem string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("invalid configuration: %s (--%s) %q: %s", e.Env, e.Flag, e.Value, e.Problem)
}

// parseConfig reads flags from args, then fills each setting from the flag if
// given, else from its environment variable, else from the default.
func parseConfig(name string, args []string, getenv func(string) string, extra func(fs *flag.FlagSet)) (*Config, []string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	vals := map[string]*string{}
	all := settings()
	for _, s := range all {
		vals[s.flag] = fs.String(s.flag, "", s.help+" (env "+s.env+", default "+quoteDefault(s.def)+")")
	}
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	c := &Config{}
	for _, s := range all {
		v := s.def
		if env := getenv(s.env); env != "" {
			v = env
		}
		if given[s.flag] {
			v = *vals[s.flag]
		}
		if err := s.set(c, v); err != nil {
			shown := v
			if strings.Contains(s.env, "SECRET") || strings.Contains(s.env, "PASSWORD") || s.env == "POSTBOX_DATABASE_URL" {
				shown = redact(v, v)
			}
			return nil, nil, &ConfigError{Env: s.env, Flag: s.flag, Value: shown, Problem: err.Error()}
		}
	}
	if c.BaseURL == "" {
		c.BaseURL = "http://" + c.Listen
	}
	if c.S3Endpoint != "" && (c.S3AccessKey == "" || c.S3SecretKey == "") {
		return nil, nil, &ConfigError{Env: "POSTBOX_S3_ACCESS_KEY", Flag: "s3-access-key", Problem: "access and secret key are required when POSTBOX_S3_ENDPOINT is set"}
	}
	return c, fs.Args(), nil
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func quoteDefault(d string) string {
	if d == "" {
		return "empty"
	}
	return d
}

func hostPort(v string) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return errors.New("must be host:port, e.g. 127.0.0.1:9000")
	}
	if host == "" && port == "" {
		return errors.New("must be host:port")
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return errors.New("port must be a number from 1 to 65535")
	}
	return nil
}

func positiveDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, errors.New("must be a positive duration like 30s or 5m")
	}
	return d, nil
}

func intIn(v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("must be a whole number from %d to %d", lo, hi)
	}
	return n, nil
}

// parseBytes reads a size like 512MiB, 2GiB, 100MB or a plain byte count.
func parseBytes(v string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	num, mult := strings.TrimSpace(v), int64(1)
	for _, u := range units {
		if s, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(s), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, errors.New("must be a size like 512MiB, 2GiB or a number of bytes (0 turns it off)")
	}
	return n * mult, nil
}

func boolErr(err error) error {
	if err != nil {
		return errors.New("must be true or false")
	}
	return nil
}

func decodeKey(v string) ([]byte, error) {
	if k, err := hex.DecodeString(v); err == nil && len(k) == 32 {
		return k, nil
	}
	if k, err := base64.StdEncoding.DecodeString(v); err == nil && len(k) == 32 {
		return k, nil
	}
	return nil, errors.New("must be 32 bytes, hex (64 characters) or base64 encoded")
}

// redact hides the password of a URL-like value ("scheme://user:pass@host")
// and any other secret entirely.
func redact(s, secretish string) string {
	if m := urlPassword.FindStringSubmatch(secretish); m != nil && m[1] != "" {
		return strings.ReplaceAll(s, m[1], "***")
	}
	if strings.Contains(secretish, "://") {
		return s
	}
	return "***"
}

var urlPassword = regexp.MustCompile(`://[^:/@]*:([^@]*)@`)

// configTable renders the settings as the README's Markdown table, so the
// documentation is generated from the code that parses it.
func configTable() string {
	var b strings.Builder
	b.WriteString("| flag | environment | default | meaning |\n| --- | --- | --- | --- |\n")
	for _, s := range settings() {
		fmt.Fprintf(&b, "| `--%s` | `%s` | %s | %s |\n", s.flag, s.env, mdDefault(s.def), s.help)
	}
	return b.String()
}

func mdDefault(d string) string {
	if d == "" {
		return "—"
	}
	return "`" + d + "`"
}
