package web

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"postbox/audit"
	"postbox/auth"
	"postbox/intake"
	"postbox/kasse"
	"postbox/mailbox"
	"postbox/storage/fsblob"
	"postbox/storage/sqldb"
	"postbox/storage/sqlite"
)

// uiWorld is the whole service behind the pages on SQLite and blobs on
// disk, with real sessions and CSRF: one Kasse with a team "Krankengeld",
// an insured person with an account, a caseworker in that team, another
// caseworker outside it, and an auditor.
type uiWorld struct {
	t      *testing.T
	srv    *Server
	db     *sqldb.Store
	auth   *auth.Service
	mail   *mailbox.Service
	pin    *intake.PINService
	vg     *audit.VorgangService
	kasse  kasse.Kasse
	erika  kasse.Person
	team   mailbox.Team
	people map[string]auth.Principal
	sms    *smsCapture
	key    []byte // the one key of auth, blobs and PIN hasher; a replica needs it
	// letters is the directory the auth service posts its letters to (PDF).
	letters string
}

// smsCapture keeps the SMS the auth service sends (the mTAN).
type smsCapture struct {
	mu   sync.Mutex
	last map[string]string
}

func (s *smsCapture) SendSMS(_ context.Context, to, text string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last[to] = text
	return nil
}

func (s *smsCapture) to(number string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last[number]
}

type uiBlobs struct{ intake.BlobStore }

func (b uiBlobs) PutStream(ctx context.Context, key string, r io.Reader) error {
	_, err := b.Put(ctx, key, r, -1)
	return err
}

func (b uiBlobs) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, _, err := b.Get(ctx, key)
	return rc, err
}

func newUIWorld(t *testing.T) *uiWorld {
	t.Helper()
	return newUIWorldWith(t, Options{})
}

// newUIWorldWith builds the world on a server with these options (the
// logger is always quiet).
func newUIWorldWith(t *testing.T, o Options) *uiWorld {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "postbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key := make([]byte, 32)
	rand.Read(key)
	blobs, err := fsblob.New(filepath.Join(dir, "blobs"), key)
	if err != nil {
		t.Fatal(err)
	}
	w := &uiWorld{t: t, db: db, people: map[string]auth.Principal{}, sms: &smsCapture{last: map[string]string{}}, key: key}
	w.letters = filepath.Join(dir, "letters")
	letters, err := auth.NewLetterDir(w.letters)
	if err != nil {
		t.Fatal(err)
	}
	w.auth, err = auth.NewService(db.Auth(), auth.Options{Argon2: auth.Argon2Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		Key: key, ClientAddrKey: key, SMS: w.sms, Letters: letters})
	if err != nil {
		t.Fatal(err)
	}
	w.mail = &mailbox.Service{Store: db.Mailbox(), Blobs: uiBlobs{blobs}, Check: intake.CheckContent, Limits: mailbox.Limits{MaxAttachments: 3}}
	w.pin = &intake.PINService{Store: db.PINIntake(), Hasher: intake.NewPINHasher(key), Blobs: blobs}
	w.kasse = kasse.Kasse{ID: "k-" + uuid.NewString()[:8], Name: "Testkasse Süd", Settings: kasse.DefaultSettings()}
	w.erika = kasse.Person{ID: uuid.NewString(), TenantID: w.kasse.ID, KVNR: kasse.CompleteKVNR("E12345678"), GivenName: "Erika", FamilyName: "Mustermann",
		Street: "Musterweg 1", PostalCode: "30159", City: "Hannover", EGKValidUntil: time.Now().AddDate(2, 0, 0), Delivery: kasse.DeliveryPost}
	err = db.InTx(ctx, func(tx *sqldb.Tx) error {
		if err := tx.CreateKasse(ctx, w.kasse); err != nil {
			return err
		}
		if err := tx.CreatePerson(ctx, w.erika); err != nil {
			return err
		}
		if w.team, err = tx.CreateTeam(ctx, mailbox.Team{TenantID: w.kasse.ID, Name: "Krankengeld", Topic: "krankengeld"}); err != nil {
			return err
		}
		other, err := tx.CreateTeam(ctx, mailbox.Team{TenantID: w.kasse.ID, Name: "Hilfsmittel", Topic: "hilfsmittel"})
		if err != nil {
			return err
		}
		for _, a := range []struct {
			name string
			role auth.Role
			team string
		}{{"erika", auth.RoleInsured, ""}, {"sachb", auth.RoleCaseworker, w.team.ID}, {"hilfe", auth.RoleCaseworker, other.ID}, {"pruefer", auth.RoleAuditor, ""},
			{"lebadmin", auth.RoleProviderAdmin, ""}} {
			acc := auth.Account{ID: uuid.NewString(), TenantID: w.kasse.ID, Role: a.role, Username: a.name, DisplayName: a.name, Status: auth.StatusActive}
			if a.role == auth.RoleProviderAdmin {
				acc.OrgID, acc.GivenName, acc.FamilyName = "org-"+w.kasse.ID, "Bernd", "Apoll"
			}
			if a.role == auth.RoleInsured {
				acc.PersonID = w.erika.ID
			}
			if err := tx.CreateAccount(ctx, acc); err != nil {
				return err
			}
			if a.team != "" {
				if err := tx.AddTeamMember(ctx, w.kasse.ID, a.team, acc.ID); err != nil {
					return err
				}
			}
			w.people[a.name] = auth.Principal{TenantID: w.kasse.ID, AccountID: acc.ID, Role: a.role, PersonID: acc.PersonID, OrgID: acc.OrgID}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	w.srv = New(o)
	w.srv.UseSessions(w.auth, SessionOptions{})
	desk := NewPINIntake(PINIntakeOptions{Service: w.pin, BaseURL: "http://example.com", ClientKey: key})
	desk.Mount(w.srv.App())
	MountPostfach(w.srv.App(), w.mail, PostfachOptions{})
	w.vg = &audit.VorgangService{Store: db.Vorgaenge()}
	if _, err := MountUI(w.srv, UIOptions{Kassen: db, Auth: w.auth, PIN: desk, Mailbox: w.mail, Vorgaenge: w.vg, People: db}); err != nil {
		t.Fatal(err)
	}
	return w
}

// as returns a browser logged in as one of the world's people.
func (w *uiWorld) as(name string) *browser {
	w.t.Helper()
	token, _, err := w.auth.StartSession(context.Background(), w.people[name], auth.StageDone, "")
	if err != nil {
		w.t.Fatal(err)
	}
	b := newBrowser(w.t, w.srv)
	b.cookies[SessionCookieName(false)] = token
	return b
}

// thread starts a thread from Erika to the Krankengeld team.
func (w *uiWorld) thread(subject, body string) mailbox.Thread {
	w.t.Helper()
	th, _, err := w.mail.StartThread(context.Background(), mailbox.Actor{Principal: w.people["erika"]},
		mailbox.NewThread{Topic: "krankengeld", Subject: subject, Body: body})
	if err != nil {
		w.t.Fatal(err)
	}
	return th
}

// vorgang creates a Vorgang of Erika as a submission would.
func (w *uiWorld) vorgang(title string) audit.Vorgang {
	w.t.Helper()
	var v audit.Vorgang
	err := w.db.InTx(context.Background(), func(tx *sqldb.Tx) error {
		var err error
		v, _, err = tx.CreateVorgang(context.Background(), audit.Vorgang{TenantID: w.kasse.ID, PersonID: w.erika.ID, Type: "krankengeld", Title: title},
			uuid.NewString(), w.erika.ID)
		return err
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return v
}
