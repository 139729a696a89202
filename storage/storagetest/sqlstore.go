package storagetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"postbox/audit"
	"postbox/auth"
	"postbox/kasse"
	"postbox/storage/sqldb"
)

// TestSQLStore is the contract both transactional backends (SQLite and
// PostgreSQL) pass. newStore returns a migrated store; tenants get random ids
// so a shared database works.
func TestSQLStore(t *testing.T, newStore func(t *testing.T) (*sqldb.Store, []sqldb.Migration)) {
	ctx := context.Background()

	t.Run("migrations are idempotent", func(t *testing.T) {
		s, ms := newStore(t)
		n, err := s.Migrate(ctx, ms)
		if err != nil || n != 0 {
			t.Fatalf("second Migrate applied %d, err %v; want 0, nil", n, err)
		}
		v, err := s.SchemaVersion(ctx)
		if err != nil || v != ms[len(ms)-1].Version {
			t.Fatalf("schema version %d (%v), want %d", v, err, ms[len(ms)-1].Version)
		}
	})

	t.Run("kasse round trip with settings", func(t *testing.T) {
		s, _ := newStore(t)
		k := newKasse()
		k.Settings.UnlockCodeLifetime = 21 * 24 * time.Hour // seed 004 instead of 002
		mustTx(t, s, func(tx *sqldb.Tx) error { return tx.CreateKasse(ctx, k) })
		got, err := s.Kasse(ctx, k.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != k.Name || got.Settings.UnlockCodeLifetime != 21*24*time.Hour || got.Settings.PINLifetime != 60*24*time.Hour {
			t.Fatalf("got %+v", got)
		}
		err = s.InTx(ctx, func(tx *sqldb.Tx) error { return tx.CreateKasse(ctx, k) })
		if !errors.Is(err, kasse.ErrExists) {
			t.Fatalf("duplicate kasse: err = %v, want ErrExists", err)
		}
		if _, err := s.Kasse(ctx, "no-such-kasse"); !errors.Is(err, kasse.ErrNotFound) {
			t.Fatalf("missing kasse: err = %v, want ErrNotFound", err)
		}
		k.Settings.PINLifetime = 30 * 24 * time.Hour
		mustTx(t, s, func(tx *sqldb.Tx) error { return tx.UpdateKasseSettings(ctx, k.ID, k.Settings) })
		got, _ = s.Kasse(ctx, k.ID)
		if got.Settings.PINLifetime != 30*24*time.Hour {
			t.Fatalf("settings not updated: %v", got.Settings.PINLifetime)
		}
		bad := k.Settings
		bad.PINMaxAttempts = 0
		if err := s.InTx(ctx, func(tx *sqldb.Tx) error { return tx.UpdateKasseSettings(ctx, k.ID, bad) }); !errors.Is(err, kasse.ErrInvalid) {
			t.Fatalf("invalid settings stored: %v", err)
		}
	})

	t.Run("persons are per tenant and need a valid KVNR", func(t *testing.T) {
		s, _ := newStore(t)
		a, b := newKasse(), newKasse()
		mustTx(t, s, func(tx *sqldb.Tx) error {
			if err := tx.CreateKasse(ctx, a); err != nil {
				return err
			}
			return tx.CreateKasse(ctx, b)
		})
		p := kasse.Person{ID: uuid.NewString(), TenantID: a.ID, KVNR: kasse.CompleteKVNR("X12345678"), GivenName: "Erika", FamilyName: "Mustermann"}
		mustTx(t, s, func(tx *sqldb.Tx) error { return tx.CreatePerson(ctx, p) })
		got, err := s.PersonByKVNR(ctx, a.ID, p.KVNR)
		if err != nil || got.ID != p.ID || got.Delivery != kasse.DeliveryPost {
			t.Fatalf("PersonByKVNR = %+v, %v", got, err)
		}
		if _, err := s.PersonByKVNR(ctx, b.ID, p.KVNR); !errors.Is(err, kasse.ErrNotFound) {
			t.Fatalf("person visible in other tenant: %v", err)
		}
		if _, err := s.Person(ctx, b.ID, p.ID); !errors.Is(err, kasse.ErrNotFound) {
			t.Fatalf("person visible by id in other tenant: %v", err)
		}
		bad := p
		good := kasse.CompleteKVNR("X12345679")
		bad.ID, bad.KVNR = uuid.NewString(), good[:9]+string(rune('0'+(good[9]-'0'+1)%10)) // wrong check digit
		if err := s.InTx(ctx, func(tx *sqldb.Tx) error { return tx.CreatePerson(ctx, bad) }); !errors.Is(err, kasse.ErrKVNR) {
			t.Fatalf("invalid KVNR stored: %v", err)
		}
	})

	t.Run("usernames are unique per tenant", func(t *testing.T) {
		s, _ := newStore(t)
		a, b := newKasse(), newKasse()
		mustTx(t, s, func(tx *sqldb.Tx) error {
			if err := tx.CreateKasse(ctx, a); err != nil {
				return err
			}
			return tx.CreateKasse(ctx, b)
		})
		acc := auth.Account{ID: uuid.NewString(), TenantID: a.ID, Role: auth.RoleCaseworker, Username: "sachb1", Status: auth.StatusActive, PasswordHash: "$argon2id$x"}
		mustTx(t, s, func(tx *sqldb.Tx) error { return tx.CreateAccount(ctx, acc) })
		dup := acc
		dup.ID = uuid.NewString()
		if err := s.InTx(ctx, func(tx *sqldb.Tx) error { return tx.CreateAccount(ctx, dup) }); !errors.Is(err, auth.ErrAccountExists) {
			t.Fatalf("duplicate username: err = %v, want ErrAccountExists", err)
		}
		dup.TenantID = b.ID
		mustTx(t, s, func(tx *sqldb.Tx) error { return tx.CreateAccount(ctx, dup) })
		got, err := s.AccountByUsername(ctx, a.ID, "sachb1")
		if err != nil || got.ID != acc.ID || got.Role != auth.RoleCaseworker || got.PasswordHash != acc.PasswordHash {
			t.Fatalf("AccountByUsername = %+v, %v", got, err)
		}
		if _, err := s.AccountByUsername(ctx, a.ID, "nobody"); !errors.Is(err, auth.ErrAccountNotFound) {
			t.Fatalf("missing account: %v", err)
		}
	})

	t.Run("audit events chain per tenant and roll back with their transaction", func(t *testing.T) {
		s, _ := newStore(t)
		tenant := "t-" + uuid.NewString()[:8]
		var events []audit.Event
		for i := 0; i < 3; i++ {
			mustTx(t, s, func(tx *sqldb.Tx) error {
				e, err := tx.RecordEvent(ctx, audit.Event{TenantID: tenant, Type: "test.step", ActorID: "a1", SubjectType: "vorgang", SubjectID: fmt.Sprint(i)})
				events = append(events, e)
				return err
			})
		}
		// A failed action leaves neither its event nor a gap in the chain.
		boom := errors.New("action failed")
		err := s.InTx(ctx, func(tx *sqldb.Tx) error {
			if _, err := tx.RecordEvent(ctx, audit.Event{TenantID: tenant, Type: "test.rolledback"}); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("InTx err = %v", err)
		}
		mustTx(t, s, func(tx *sqldb.Tx) error {
			e, err := tx.RecordEvent(ctx, audit.Event{TenantID: tenant, Type: "test.after"})
			events = append(events, e)
			return err
		})
		for i, e := range events {
			if e.Seq != int64(i+1) {
				t.Fatalf("event %d has seq %d", i, e.Seq)
			}
			if i > 0 && e.PrevHash != events[i-1].Hash {
				t.Fatalf("event %d does not link to its predecessor", i)
			}
			if e.Hash != e.ComputeHash() {
				t.Fatalf("event %d hash mismatch", i)
			}
		}
		pending := pendingOf(t, s, tenant)
		if len(pending) != 4 {
			t.Fatalf("pending events of tenant: %d, want 4 (the rolled-back one must not be there)", len(pending))
		}
		for _, e := range pending {
			if e.Type == "test.rolledback" {
				t.Fatal("rolled-back event is in the outbox")
			}
		}
		if pending[0].Hash != events[0].Hash || !pending[0].Time.Equal(events[0].Time) {
			t.Fatalf("outbox changed the event: %+v vs %+v", pending[0], events[0])
		}
		ids := []string{pending[0].ID, pending[1].ID}
		if err := s.MarkEventsShipped(ctx, ids); err != nil {
			t.Fatal(err)
		}
		if left := pendingOf(t, s, tenant); len(left) != 2 {
			t.Fatalf("after shipping 2 of 4: %d pending", len(left))
		}
		evs, _, err := s.OutboxDepth(ctx)
		if err != nil || evs < 2 {
			t.Fatalf("OutboxDepth = %d, %v", evs, err)
		}
	})

	t.Run("vorgang: one per idempotency key, status model enforced, per tenant", func(t *testing.T) {
		s, _ := newStore(t)
		a, b := newKasse(), newKasse()
		p := kasse.Person{ID: uuid.NewString(), TenantID: a.ID, KVNR: kasse.CompleteKVNR("V12345678"), GivenName: "Max", FamilyName: "Muster"}
		mustTx(t, s, func(tx *sqldb.Tx) error {
			for _, k := range []kasse.Kasse{a, b} {
				if err := tx.CreateKasse(ctx, k); err != nil {
					return err
				}
			}
			return tx.CreatePerson(ctx, p)
		})
		var first, second audit.Vorgang
		var created1, created2 bool
		for i, dst := range []*audit.Vorgang{&first, &second} {
			mustTx(t, s, func(tx *sqldb.Tx) error {
				v, created, err := tx.CreateVorgang(ctx, audit.Vorgang{TenantID: a.ID, PersonID: p.ID, Type: "krankengeld", Title: "AU-Bescheinigung"}, "draft-1", "actor")
				*dst = v
				if i == 0 {
					created1 = created
				} else {
					created2 = created
				}
				return err
			})
		}
		if !created1 || created2 || first.ID != second.ID {
			t.Fatalf("same key made two Vorgänge or none: %v/%v %s %s", created1, created2, first.ID, second.ID)
		}
		list, err := s.VorgaengeOfPerson(ctx, a.ID, p.ID)
		if err != nil || len(list) != 1 || list[0].Status != audit.StatusEingegangen {
			t.Fatalf("VorgaengeOfPerson = %+v, %v", list, err)
		}
		err = s.InTx(ctx, func(tx *sqldb.Tx) error {
			_, err := tx.ChangeVorgangStatus(ctx, a.ID, first.ID, audit.StatusAbgeschlossen, "zu früh", "cw")
			return err
		})
		if !errors.Is(err, audit.ErrTransition) {
			t.Fatalf("forbidden transition: err = %v", err)
		}
		mustTx(t, s, func(tx *sqldb.Tx) error {
			_, err := tx.ChangeVorgangStatus(ctx, a.ID, first.ID, audit.StatusInBearbeitung, "Unterlagen vollständig", "cw")
			return err
		})
		err = s.InTx(ctx, func(tx *sqldb.Tx) error {
			_, err := tx.ChangeVorgangStatus(ctx, b.ID, first.ID, audit.StatusRueckfrage, "fremd", "cw")
			return err
		})
		if !errors.Is(err, sqldb.ErrVorgangNotFound) {
			t.Fatalf("status change across tenants: err = %v", err)
		}
		if _, err := s.Vorgang(ctx, b.ID, first.ID); !errors.Is(err, sqldb.ErrVorgangNotFound) {
			t.Fatalf("vorgang visible to other tenant: %v", err)
		}
		tl, err := s.VorgangTimeline(ctx, a.ID, first.ID)
		if err != nil || len(tl) != 2 || tl[0].To != audit.StatusEingegangen || tl[1].From != audit.StatusEingegangen ||
			tl[1].To != audit.StatusInBearbeitung || tl[1].Reason != "Unterlagen vollständig" {
			t.Fatalf("timeline = %+v, %v", tl, err)
		}
	})

	t.Run("concurrent writers of one tenant do not fork the chain", func(t *testing.T) {
		s, _ := newStore(t)
		tenant := "t-" + uuid.NewString()[:8]
		const n = 20
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- s.InTx(ctx, func(tx *sqldb.Tx) error {
					_, err := tx.RecordEvent(ctx, audit.Event{TenantID: tenant, Type: "test.concurrent"})
					return err
				})
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("concurrent RecordEvent: %v", err)
			}
		}
		pending := pendingOf(t, s, tenant)
		seqs := map[int64]bool{}
		for _, e := range pending {
			seqs[e.Seq] = true
		}
		for i := int64(1); i <= n; i++ {
			if !seqs[i] {
				t.Fatalf("seq %d missing; got %v", i, seqs)
			}
		}
	})
	t.Run("intake", func(t *testing.T) { testIntake(t, newStore) })
	t.Run("mailbox", func(t *testing.T) { testMailbox(t, newStore) })
	t.Run("uploads", func(t *testing.T) { testUploads(t, newStore) })
	t.Run("auth", func(t *testing.T) { testAuth(t, newStore) })
	t.Run("leases", func(t *testing.T) { testLeases(t, newStore) })
}

func pendingOf(t *testing.T, s *sqldb.Store, tenant string) []audit.Event {
	t.Helper()
	all, err := s.PendingEvents(context.Background(), 100000)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Event
	for _, e := range all {
		if e.TenantID == tenant {
			out = append(out, e)
		}
	}
	return out
}

func newKasse() kasse.Kasse {
	id := "k-" + uuid.NewString()[:8]
	return kasse.Kasse{ID: id, Name: "Testkasse " + id, PortalURL: "https://portal.example", Settings: kasse.DefaultSettings()}
}

func mustTx(t *testing.T, s *sqldb.Store, fn func(tx *sqldb.Tx) error) {
	t.Helper()
	if err := s.InTx(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}
