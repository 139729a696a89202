package auth_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"postbox/audit"
	"postbox/auth"
	"postbox/kasse"
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

func newEnv(t *testing.T) *env {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "postbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
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
