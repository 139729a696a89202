// Package clickhouse stores audit events in ClickHouse (server mode) over the
// native protocol. It targets ClickHouse 18.16: no DateTime64, no
// transactions, no server-side query parameters; inserts go through
// PrepareBatch with named columns because an INSERT ... VALUES sent with
// Exec hangs on that server.
package clickhouse

import (
	"context"
	"crypto/tls"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Store is a ClickHouse database holding postbox's tables. All table names
// are qualified with the database, so Migrate can create the database over
// the same connection.
type Store struct {
	conn driver.Conn
	db   string // validated identifier
	addr string
}

type options struct {
	user, password string
	tls            *tls.Config
	dialTimeout    time.Duration
	readTimeout    time.Duration
	lazy           bool
}

// Option configures Open.
type Option func(*options)

// WithAuth sets user and password (default: user "default", no password).
func WithAuth(user, password string) Option {
	return func(o *options) { o.user, o.password = user, password }
}

// WithTLS connects over TLS.
func WithTLS(c *tls.Config) Option { return func(o *options) { o.tls = c } }

// Lazy skips the ping in Open, so a service can start while ClickHouse is
// down; the connection is made on first use (events wait in the outbox).
func Lazy() Option { return func(o *options) { o.lazy = true } }

// WithDialTimeout bounds connecting (default 5 s).
func WithDialTimeout(d time.Duration) Option { return func(o *options) { o.dialTimeout = d } }

// WithReadTimeout bounds each wait for the server's next packet (default
// 30 s; clickhouse-go's own is 5 min). A server that accepts connections
// but never answers then fails an append within this time, and the events
// wait in the outbox for the next try instead of holding the shipper.
// Long queries are not cut: the server sends progress while it works.
func WithReadTimeout(d time.Duration) Option { return func(o *options) { o.readTimeout = d } }

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Open connects to the server at addr (host:port of the native TCP port) and
// pings it. database is created by Migrate if missing.
func Open(ctx context.Context, addr, database string, opts ...Option) (*Store, error) {
	if err := validateAddr(addr); err != nil {
		return nil, err
	}
	// The name is spliced into statements, so only plain identifiers pass.
	if !identRE.MatchString(database) {
		return nil, fmt.Errorf("clickhouse: database name %q: want letters, digits and _", database)
	}
	o := options{user: "default", dialTimeout: 5 * time.Second, readTimeout: 30 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	conn, err := ch.Open(&ch.Options{
		Addr:            []string{addr},
		Auth:            ch.Auth{Username: o.user, Password: o.password}, // no Database: it may not exist yet
		TLS:             o.tls,
		DialTimeout:     o.dialTimeout,
		ReadTimeout:     o.readTimeout,
		MaxOpenConns:    8,
		MaxIdleConns:    4,
		ConnMaxLifetime: time.Hour,
		ClientInfo: ch.ClientInfo{Products: []struct{ Name, Version string }{
			{Name: "postbox", Version: "1"},
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("clickhouse %s: %w", addr, err)
	}
	if o.lazy {
		return &Store{conn: conn, db: database, addr: addr}, nil
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("clickhouse %s: ping: %w", addr, err)
	}
	return &Store{conn: conn, db: database, addr: addr}, nil
}

func validateAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("clickhouse: address %q: want host:port: %w", addr, err)
	}
	if host == "" {
		return fmt.Errorf("clickhouse: address %q: missing host", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("clickhouse: address %q: port %q is not a number in 1..65535", addr, port)
	}
	return nil
}

// Close closes the connections.
func (s *Store) Close() error { return s.conn.Close() }

// Ping checks that the server answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.conn.Ping(ctx); err != nil {
		return fmt.Errorf("clickhouse %s: ping: %w", s.addr, err)
	}
	return nil
}

// Database is the database the store works in.
func (s *Store) Database() string { return s.db }

//go:embed migrations/*.sql
var migrationsFS embed.FS

type migration struct {
	version int
	name    string
	stmts   []statement
}

// statement is one query of a migration. A statement preceded by the
// comment line "-- if-exists: db.table" runs only while that table exists,
// so a step that copies from a table a later statement drops stays
// idempotent (18.16 has no conditional statements).
type statement struct {
	sql      string
	ifExists string
}

var migrationName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

func loadMigrations(fsys fs.FS, db string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, "migrations")
	if err != nil {
		return nil, fmt.Errorf("clickhouse migrations: %w", err)
	}
	var out []migration
	seen := map[int]string{}
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("clickhouse migration %q: name must be NNNN_name.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		if prev, ok := seen[v]; ok {
			return nil, fmt.Errorf("clickhouse migration version %d used twice (%s, %s)", v, prev, e.Name())
		}
		seen[v] = e.Name()
		body, err := fs.ReadFile(fsys, "migrations/"+e.Name())
		if err != nil {
			return nil, fmt.Errorf("clickhouse migration %s: %w", e.Name(), err)
		}
		stmts := splitStatements(strings.ReplaceAll(string(body), "{db}", db))
		if len(stmts) == 0 {
			return nil, fmt.Errorf("clickhouse migration %s: no statements", e.Name())
		}
		out = append(out, migration{version: v, name: m[2], stmts: stmts})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// splitStatements splits on ";" at the end of a line, because the native
// protocol runs one statement per query. Whole-line "--" comments are
// dropped, except the if-exists directive (see statement).
func splitStatements(sql string) []statement {
	var out []statement
	var cur strings.Builder
	cond := ""
	for _, line := range strings.Split(sql, "\n") {
		t := strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(t, "-- if-exists:"); ok {
			cond = strings.TrimSpace(rest)
			continue
		}
		if t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(t, ";") {
			out = append(out, statement{sql: strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"), ifExists: cond})
			cur.Reset()
			cond = ""
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, statement{sql: s, ifExists: cond})
	}
	return out
}

// exec runs one migration statement, honouring its if-exists condition.
func (s *Store) exec(ctx context.Context, st statement) error {
	if st.ifExists != "" {
		if !qualifiedIdent.MatchString(st.ifExists) {
			return fmt.Errorf("if-exists %q: want database.table", st.ifExists)
		}
		var exists uint8
		if err := s.conn.QueryRow(ctx, "EXISTS TABLE "+st.ifExists).Scan(&exists); err != nil {
			return fmt.Errorf("if-exists %s: %w", st.ifExists, err)
		}
		if exists == 0 {
			return nil
		}
	}
	return s.conn.Exec(ctx, st.sql)
}

var qualifiedIdent = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$`)

// Migrate creates the database if needed and applies the embedded migrations
// not yet recorded in schema_migrations, in version order. Without
// transactions, a version is recorded only after all its statements ran, and
// every statement is idempotent, so a crash or a concurrent Migrate at worst
// runs a statement twice. ReplacingMergeTree collapses a version recorded
// twice. It returns how many migrations it applied.
func (s *Store) Migrate(ctx context.Context) (int, error) {
	ms, err := loadMigrations(migrationsFS, s.db)
	if err != nil {
		return 0, err
	}
	for _, q := range []string{
		`CREATE DATABASE IF NOT EXISTS ` + s.db,
		`CREATE TABLE IF NOT EXISTS ` + s.db + `.schema_migrations (
			version UInt32, name String, applied_at DateTime('UTC')
		) ENGINE = ReplacingMergeTree ORDER BY version`,
	} {
		if err := s.conn.Exec(ctx, q); err != nil {
			return 0, fmt.Errorf("clickhouse %s: prepare migrations: %w", s.addr, err)
		}
	}
	applied, err := s.appliedVersions(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		for i, q := range m.stmts {
			if err := s.exec(ctx, q); err != nil {
				return n, fmt.Errorf("clickhouse migration %04d_%s, statement %d: %w", m.version, m.name, i+1, err)
			}
		}
		if err := s.recordVersion(ctx, m); err != nil {
			return n, err
		}
		n++
		slog.InfoContext(ctx, "migration applied", "backend", "clickhouse", "database", s.db, "version", m.version, "name", m.name)
	}
	return n, nil
}

func (s *Store) appliedVersions(ctx context.Context) (map[int]bool, error) {
	rows, err := s.conn.Query(ctx, `SELECT DISTINCT version FROM `+s.db+`.schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("clickhouse %s: read schema_migrations: %w", s.addr, err)
	}
	defer rows.Close()
	out := map[int]bool{}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("clickhouse %s: read schema_migrations: %w", s.addr, err)
		}
		out[int(v)] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse %s: read schema_migrations: %w", s.addr, err)
	}
	return out, nil
}

func (s *Store) recordVersion(ctx context.Context, m migration) error {
	batch, err := s.conn.PrepareBatch(ctx, `INSERT INTO `+s.db+`.schema_migrations (version, name, applied_at)`)
	if err != nil {
		return fmt.Errorf("clickhouse: record migration %04d: %w", m.version, err)
	}
	defer batch.Close()
	if err := batch.Append(uint32(m.version), m.name, time.Now().UTC()); err != nil {
		return fmt.Errorf("clickhouse: record migration %04d: %w", m.version, err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("clickhouse: record migration %04d: %w", m.version, err)
	}
	return nil
}
