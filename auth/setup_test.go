package auth_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/url"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"postbox/audit"
	"postbox/auth"
	"postbox/kasse"
	"postbox/notifier"
	"postbox/storage/sqldb"
	"postbox/storage/sqlite"
)

// fastArgon keeps tests quick; the benchmark uses the real parameters.
var fastArgon = auth.Argon2Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// clock is a settable test clock shared by the store and the service.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type env struct {
	t     *testing.T
	db    *sqldb.Store
	svc   *auth.Service
	clock *clock
	kasse kasse.Kasse
	sms   *smsRecorder
}

type smsRecorder struct {
	mu   sync.Mutex
	msgs []sms
}

type sms struct{ to, text string }

func (r *smsRecorder) SendSMS(_ context.Context, to, text string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, sms{to, text})
	return nil
}

// backend opens an empty, migrated store of one database kind. The list
// of backends is in backends_test.go (SQLite) and, with the integration
// tag, backends_integration_test.go (SQLite and PostgreSQL).
type backend struct {
	name string
	open func(t *testing.T) *sqldb.Store
}

func openSQLite(t *testing.T) *sqldb.Store {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "postbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// forEachBackend runs fn once per backend as a subtest named after it, each
// on its own empty database with its own clock, Kasse and service.
func forEachBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { fn(t, newEnv(t, b.open(t))) })
	}
}

func newEnv(t *testing.T, db *sqldb.Store) *env {
	t.Helper()
	var err error
	clk := &clock{now: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	db.SetClock(clk.Now)
	e := &env{t: t, db: db, clock: clk, sms: &smsRecorder{}}
	e.svc, err = auth.NewService(db.Auth(), auth.Options{
		Argon2: fastArgon, Key: make([]byte, 32), ClientAddrKey: make([]byte, 32), SMS: e.sms,
		BaseURL: "https://portal.example",
	})
	if err != nil {
		t.Fatal(err)
	}
	e.kasse = kasse.Kasse{ID: "k-" + uuid.NewString()[:8], Name: "Testkasse", PortalURL: "https://portal.example", Settings: kasse.DefaultSettings()}
	e.tx(func(tx *sqldb.Tx) error { return tx.CreateKasse(context.Background(), e.kasse) })
	return e
}

func (e *env) tx(fn func(tx *sqldb.Tx) error) {
	e.t.Helper()
	if err := e.db.InTx(context.Background(), fn); err != nil {
		e.t.Fatal(err)
	}
}

var dollarParam = regexp.MustCompile(`\$(\d+)`)

// rebound runs a query written with $N placeholders on either database
// (SQLite binds ?N by number, as sqldb does it).
func (e *env) rebound(q string, args ...any) *sql.Row {
	if e.db.Dialect() == sqldb.SQLite {
		q = dollarParam.ReplaceAllString(q, "?$1")
	}
	return e.db.DB().QueryRow(q, args...)
}

// scan reads one row; a failed read fails the test instead of leaving zero
// values behind for the assertion to compare.
func (e *env) scan(q string, args []any, dest ...any) {
	e.t.Helper()
	if err := e.rebound(q, args...).Scan(dest...); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
}

// exec runs a statement written with $N placeholders on either database.
func (e *env) exec(q string, args ...any) {
	e.t.Helper()
	if e.db.Dialect() == sqldb.SQLite {
		q = dollarParam.ReplaceAllString(q, "?$1")
	}
	if _, err := e.db.DB().Exec(q, args...); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
}

// events returns the audit events of the test tenant of one type.
func (e *env) events(typ string) []audit.Event {
	e.t.Helper()
	all, err := e.db.PendingEvents(context.Background(), 100000)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []audit.Event
	for _, ev := range all {
		if ev.TenantID == e.kasse.ID && ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// account creates an active account with a password.
func (e *env) account(role auth.Role, username, password string) auth.Account {
	e.t.Helper()
	hash, err := auth.HashSecret(password, fastArgon)
	if err != nil {
		e.t.Fatal(err)
	}
	a := auth.Account{ID: uuid.NewString(), TenantID: e.kasse.ID, Role: role, Username: username, PasswordHash: hash, Status: auth.StatusActive}
	e.tx(func(tx *sqldb.Tx) error { return tx.CreateAccount(context.Background(), a) })
	return a
}

var codeInSMS = regexp.MustCompile(`: ([0-9]{6})\. Gültig`)

// lastCode returns the code of the last SMS to a number.
func (e *env) lastCode(to string) string {
	e.t.Helper()
	e.sms.mu.Lock()
	defer e.sms.mu.Unlock()
	for i := len(e.sms.msgs) - 1; i >= 0; i-- {
		if e.sms.msgs[i].to == to {
			m := codeInSMS.FindStringSubmatch(e.sms.msgs[i].text)
			if m == nil {
				e.t.Fatalf("SMS without code: %q", e.sms.msgs[i].text)
			}
			return m[1]
		}
	}
	e.t.Fatalf("no SMS to %s", to)
	return ""
}

func (e *env) smsCount() int {
	e.sms.mu.Lock()
	defer e.sms.mu.Unlock()
	return len(e.sms.msgs)
}

// mailLink returns the link of the last queued mail of a template to a recipient.
func (e *env) mailLink(template notifier.Template, to string) string {
	e.t.Helper()
	var data string
	err := e.rebound(`SELECT data FROM mail_outbox WHERE tenant_id = $1 AND template = $2 AND recipient = $3 ORDER BY created_at DESC LIMIT 1`,
		e.kasse.ID, string(template), to).Scan(&data)
	if err != nil {
		e.t.Fatalf("no %s mail to %s: %v", template, to, err)
	}
	var d map[string]string
	json.Unmarshal([]byte(data), &d)
	u, err := url.Parse(d[notifier.DataLoginURL])
	if err != nil {
		e.t.Fatal(err)
	}
	return u.Query().Get("token")
}

// person creates an insured person with a birth date.
func (e *env) person(prefix, birth string) kasse.Person {
	e.t.Helper()
	p := kasse.Person{ID: uuid.NewString(), TenantID: e.kasse.ID, KVNR: kasse.CompleteKVNR(prefix), GivenName: "Erika", FamilyName: "Mustermann",
		Street: "Musterstraße 1", PostalCode: "12345", City: "Musterstadt", BirthDate: birth}
	e.tx(func(tx *sqldb.Tx) error { return tx.CreatePerson(context.Background(), p) })
	return p
}

// activeInsured creates an active insured account with a confirmed mobile
// number and a security question, as after a finished registration.
func (e *env) activeInsured(username, password, mobile string) auth.Account {
	e.t.Helper()
	ctx := context.Background()
	a := e.account(auth.RoleInsured, username, password)
	err := e.db.Auth().InTx(ctx, func(tx auth.Tx) error {
		acc, err := tx.AccountByID(ctx, a.TenantID, a.ID)
		if err != nil {
			return err
		}
		acc.Mobile, acc.MobileConfirmedAt, acc.ActivatedAt = mobile, tx.Now(), tx.Now()
		acc.SecurityQuestion = auth.SecurityQuestions[0]
		acc.SecurityAnswerHash, _ = auth.HashSecret("bello", fastArgon)
		acc.Email = username + "@example.org"
		a = acc
		return tx.UpdateAccount(ctx, acc)
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// loginMTAN runs a full login with password and mTAN.
func (e *env) loginMTAN(username, password, mobile string) auth.LoginResult {
	e.t.Helper()
	ctx := context.Background()
	r, err := e.svc.Login(ctx, meta, e.kasse.ID, username, password, "")
	if err != nil {
		e.t.Fatalf("login: %v", err)
	}
	if r.Stage != auth.StageSecondFactor {
		e.t.Fatalf("stage %q after password", r.Stage)
	}
	if !r.MTANSent {
		if r, err = e.svc.ResendLoginMTAN(ctx, meta, r.Token); err != nil {
			e.t.Fatal(err)
		}
	}
	done, err := e.svc.LoginSecondFactor(ctx, meta, r.Token, "mtan", e.lastCode(mobile), "")
	if err != nil {
		e.t.Fatalf("second factor: %v", err)
	}
	return done
}

var meta = auth.Meta{ClientAddr: "192.0.2.10", RequestID: "req-test"}
