package storagetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"postbox/audit"
	"postbox/auth"
	"postbox/kasse"
	"postbox/mailbox"
	"postbox/notifier"
	"postbox/storage/sqldb"
)

// mailboxWorld is one tenant with two teams, two caseworkers each in one
// team, a third caseworker in the first team, two persons and a provider
// organisation; plus a second tenant with a caseworker in a team of the
// same topic.
type mailboxWorld struct {
	a, b                 kasse.Kasse
	teamKG, teamHM       mailbox.Team // tenant a: Krankengeld, Hilfsmittel
	teamB                mailbox.Team // tenant b: Krankengeld
	cwKG, cwKG2, cwHM    string       // caseworker accounts of a
	cwB                  string       // caseworker of b
	person1, person2     string       // persons of a
	personB              string       // person of b
	acc1, acc2, accB     string       // their accounts
	org                  string       // provider organisation of a
	orgUser              string
	vP1, vP2, vOrg, vPB  mailbox.Viewer
	vKG, vKG2, vHM, vCwB mailbox.Viewer
}

func newMailboxWorld(t *testing.T, s *sqldb.Store) *mailboxWorld {
	t.Helper()
	ctx := context.Background()
	w := &mailboxWorld{a: newKasse(), b: newKasse()}
	acct := func(tx *sqldb.Tx, tenant string, role auth.Role, person string) string {
		id := uuid.NewString()
		if err := tx.CreateAccount(ctx, auth.Account{ID: id, TenantID: tenant, Role: role, Username: "u" + id[:8], Status: auth.StatusActive, PersonID: person}); err != nil {
			t.Fatal(err)
		}
		return id
	}
	person := func(tx *sqldb.Tx, tenant, base string) string {
		id := uuid.NewString()
		if err := tx.CreatePerson(ctx, kasse.Person{ID: id, TenantID: tenant, KVNR: kasse.CompleteKVNR(base), GivenName: "Test", FamilyName: "Person",
			Email: "p-" + id[:8] + "@example.org", Delivery: kasse.DeliveryOnline}); err != nil {
			t.Fatal(err)
		}
		return id
	}
	mustTx(t, s, func(tx *sqldb.Tx) error {
		for _, k := range []kasse.Kasse{w.a, w.b} {
			if err := tx.CreateKasse(ctx, k); err != nil {
				return err
			}
		}
		var err error
		if w.teamKG, err = tx.CreateTeam(ctx, mailbox.Team{TenantID: w.a.ID, Name: "Team Krankengeld", Topic: "krankengeld"}); err != nil {
			return err
		}
		if w.teamHM, err = tx.CreateTeam(ctx, mailbox.Team{TenantID: w.a.ID, Name: "Team Hilfsmittel", Topic: "hilfsmittel"}); err != nil {
			return err
		}
		if w.teamB, err = tx.CreateTeam(ctx, mailbox.Team{TenantID: w.b.ID, Name: "Team Krankengeld", Topic: "krankengeld"}); err != nil {
			return err
		}
		w.cwKG, w.cwKG2, w.cwHM = acct(tx, w.a.ID, auth.RoleCaseworker, ""), acct(tx, w.a.ID, auth.RoleCaseworker, ""), acct(tx, w.a.ID, auth.RoleCaseworker, "")
		w.cwB = acct(tx, w.b.ID, auth.RoleCaseworker, "")
		for _, m := range [][2]string{{w.teamKG.ID, w.cwKG}, {w.teamKG.ID, w.cwKG2}, {w.teamHM.ID, w.cwHM}} {
			if err := tx.AddTeamMember(ctx, w.a.ID, m[0], m[1]); err != nil {
				return err
			}
		}
		if err := tx.AddTeamMember(ctx, w.b.ID, w.teamB.ID, w.cwB); err != nil {
			return err
		}
		w.person1, w.person2 = person(tx, w.a.ID, "M10000001"), person(tx, w.a.ID, "M10000002")
		w.personB = person(tx, w.b.ID, "M10000001")
		w.acc1 = acct(tx, w.a.ID, auth.RoleInsured, w.person1)
		w.acc2 = acct(tx, w.a.ID, auth.RoleInsured, w.person2)
		w.accB = acct(tx, w.b.ID, auth.RoleInsured, w.personB)
		w.org = "org-" + uuid.NewString()[:8]
		w.orgUser = uuid.NewString()
		// The auth store keeps the organisation of an account.
		return tx.Auth().CreateAccount(ctx, auth.Account{ID: w.orgUser, TenantID: w.a.ID, Role: auth.RoleProviderUser, Username: "u" + w.orgUser[:8], Status: auth.StatusActive, OrgID: w.org})
	})
	w.vP1 = mailbox.ViewerOf(auth.Principal{TenantID: w.a.ID, Role: auth.RoleInsured, AccountID: w.acc1, PersonID: w.person1})
	w.vP2 = mailbox.ViewerOf(auth.Principal{TenantID: w.a.ID, Role: auth.RoleInsured, AccountID: w.acc2, PersonID: w.person2})
	w.vPB = mailbox.ViewerOf(auth.Principal{TenantID: w.b.ID, Role: auth.RoleInsured, AccountID: w.accB, PersonID: w.personB})
	w.vOrg = mailbox.ViewerOf(auth.Principal{TenantID: w.a.ID, Role: auth.RoleProviderUser, AccountID: w.orgUser, OrgID: w.org})
	w.vKG = mailbox.ViewerOf(auth.Principal{TenantID: w.a.ID, Role: auth.RoleCaseworker, AccountID: w.cwKG})
	w.vKG2 = mailbox.ViewerOf(auth.Principal{TenantID: w.a.ID, Role: auth.RoleCaseworker, AccountID: w.cwKG2})
	w.vHM = mailbox.ViewerOf(auth.Principal{TenantID: w.a.ID, Role: auth.RoleCaseworker, AccountID: w.cwHM})
	w.vCwB = mailbox.ViewerOf(auth.Principal{TenantID: w.b.ID, Role: auth.RoleCaseworker, AccountID: w.cwB})
	return w
}

// thread creates a thread with one message (and optionally an attachment)
// directly through the store.
func (w *mailboxWorld) thread(t *testing.T, s *sqldb.Store, th mailbox.Thread, dir mailbox.Direction, att bool) (mailbox.Thread, mailbox.Message) {
	t.Helper()
	ctx := context.Background()
	var msg mailbox.Message
	mustTx(t, s, func(tx *sqldb.Tx) error {
		var err error
		if th, err = tx.CreateThread(ctx, th); err != nil {
			return err
		}
		msg = mailbox.Message{TenantID: th.TenantID, ThreadID: th.ID, Direction: dir, Kind: mailbox.KindMessage, Body: "Text von " + th.Subject}
		if att {
			msg.Attachments = []mailbox.Attachment{{BlobKey: "postfach/" + th.TenantID + "/" + uuid.NewString(), FileName: "Bescheid.pdf",
				ContentType: "application/pdf", Size: 10, SHA256: strings.Repeat("ab", 32)}}
		}
		msg, err = tx.AddMessage(ctx, msg)
		return err
	})
	return th, msg
}

func threadIDs(list []mailbox.Thread) []string {
	out := make([]string, len(list))
	for i, th := range list {
		out[i] = th.ID
	}
	sort.Strings(out)
	return out
}

func sorted(ids ...string) []string {
	out := slices.Clone(ids)
	sort.Strings(out)
	return out
}

func testMailbox(t *testing.T, newStore func(t *testing.T) (*sqldb.Store, []sqldb.Migration)) {
	ctx := context.Background()

	t.Run("each viewer sees only their own Postfach or their teams' inboxes", func(t *testing.T) {
		s, _ := newStore(t)
		mb := s.Mailbox()
		w := newMailboxWorld(t, s)
		th1, m1 := w.thread(t, s, mailbox.Thread{TenantID: w.a.ID, OwnerKind: mailbox.OwnerPerson, OwnerID: w.person1, TeamID: w.teamKG.ID, Subject: "Krankengeld Juni"}, mailbox.Inbound, true)
		th2, _ := w.thread(t, s, mailbox.Thread{TenantID: w.a.ID, OwnerKind: mailbox.OwnerPerson, OwnerID: w.person2, TeamID: w.teamHM.ID, Subject: "Rollstuhl"}, mailbox.Inbound, false)
		paper, _ := w.thread(t, s, mailbox.Thread{TenantID: w.a.ID, OwnerKind: mailbox.OwnerPerson, OwnerID: w.person1, TeamID: w.teamKG.ID, Subject: "Bescheid",
			Channel: mailbox.ChannelPaper, PaperStatus: mailbox.PaperToPrint}, mailbox.Outbound, false)
		orgTh, _ := w.thread(t, s, mailbox.Thread{TenantID: w.a.ID, OwnerKind: mailbox.OwnerProvider, OwnerID: w.org, TeamID: w.teamHM.ID, Subject: "Abrechnung"}, mailbox.Inbound, false)
		thB, _ := w.thread(t, s, mailbox.Thread{TenantID: w.b.ID, OwnerKind: mailbox.OwnerPerson, OwnerID: w.personB, TeamID: w.teamB.ID, Subject: "Krankengeld Juni"}, mailbox.Inbound, false)

		for _, tc := range []struct {
			name string
			v    mailbox.Viewer
			want []string
		}{
			{"person 1: own thread, not the paper letter", w.vP1, sorted(th1.ID)},
			{"person 2", w.vP2, sorted(th2.ID)},
			{"provider organisation", w.vOrg, sorted(orgTh.ID)},
			{"caseworker Krankengeld: team inbox incl. paper letter", w.vKG, sorted(th1.ID, paper.ID)},
			{"second caseworker Krankengeld", w.vKG2, sorted(th1.ID, paper.ID)},
			{"caseworker Hilfsmittel", w.vHM, sorted(th2.ID, orgTh.ID)},
			{"caseworker of the other tenant, same topic", w.vCwB, sorted(thB.ID)},
			{"person of the other tenant", w.vPB, sorted(thB.ID)},
			{"no side (auditor)", mailbox.ViewerOf(auth.Principal{TenantID: w.a.ID, Role: auth.RoleAuditor, AccountID: "x"}), []string{}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				list, err := mb.Threads(ctx, tc.v, mailbox.Filter{Archive: mailbox.ArchiveAll})
				if err != nil {
					t.Fatal(err)
				}
				if got := threadIDs(list); !slices.Equal(got, tc.want) {
					t.Fatalf("threads = %v, want %v", got, tc.want)
				}
			})
		}
		// Single reads answer ErrNotFound to everyone else.
		for _, v := range []mailbox.Viewer{w.vP2, w.vHM, w.vCwB, w.vPB, w.vOrg} {
			if _, err := mb.Thread(ctx, v, th1.ID); !errors.Is(err, mailbox.ErrNotFound) {
				t.Errorf("viewer %+v reads thread of person 1: %v", v, err)
			}
			if msgs, err := mb.ThreadMessages(ctx, v, th1.ID); err != nil || len(msgs) != 0 {
				t.Errorf("viewer %+v reads messages of person 1: %d, %v", v, len(msgs), err)
			}
			if _, err := mb.Attachment(ctx, v, m1.Attachments[0].ID); !errors.Is(err, mailbox.ErrNotFound) {
				t.Errorf("viewer %+v reads attachment of person 1: %v", v, err)
			}
		}
		if _, err := mb.Thread(ctx, w.vP1, paper.ID); !errors.Is(err, mailbox.ErrNotFound) {
			t.Errorf("paper letter visible online: %v", err)
		}
		for _, v := range []mailbox.Viewer{w.vP1, w.vKG} {
			got, err := mb.Thread(ctx, v, th1.ID)
			if err != nil || got.Subject != "Krankengeld Juni" || got.Topic != "krankengeld" || got.Messages != 1 {
				t.Fatalf("thread for %+v = %+v, %v", v, got, err)
			}
			msgs, err := mb.ThreadMessages(ctx, v, th1.ID)
			if err != nil || len(msgs) != 1 || len(msgs[0].Attachments) != 1 || msgs[0].Attachments[0].FileName != "Bescheid.pdf" {
				t.Fatalf("messages for %+v = %+v, %v", v, msgs, err)
			}
			if att, err := mb.Attachment(ctx, v, m1.Attachments[0].ID); err != nil || att.BlobKey != m1.Attachments[0].BlobKey {
				t.Fatalf("attachment for %+v = %+v, %v", v, att, err)
			}
		}
		for _, tc := range []struct {
			tenant, org string
			want        bool
		}{{w.a.ID, w.org, true}, {w.b.ID, w.org, false}, {w.a.ID, "org-unbekannt", false}, {w.a.ID, "", false}} {
			if got, err := mb.ProviderOrgExists(ctx, tc.tenant, tc.org); err != nil || got != tc.want {
				t.Errorf("ProviderOrgExists(%s, %s) = %v, %v", tc.tenant, tc.org, got, err)
			}
		}
		// A caseworker cannot lock (and so not change) another team's thread.
		err := mb.InTx(ctx, func(tx mailbox.Tx) error {
			_, err := tx.LockThread(ctx, w.vHM, th1.ID)
			return err
		})
		if !errors.Is(err, mailbox.ErrNotFound) {
			t.Fatalf("LockThread by another team: %v", err)
		}
	})

	t.Run("subject search escapes wildcards and folds case on both databases", func(t *testing.T) {
		s, _ := newStore(t)
		mb := s.Mailbox()
		w := newMailboxWorld(t, s)
		ids := map[string]string{}
		for _, subj := range []string{"100% Erstattung", "Rechnung_2024", "Rechnungx2024", "Ärztliche Bescheinigung", `Pfad C:\temp`, "Krankengeld"} {
			th, _ := w.thread(t, s, mailbox.Thread{TenantID: w.a.ID, OwnerKind: mailbox.OwnerPerson, OwnerID: w.person1, TeamID: w.teamKG.ID, Subject: subj}, mailbox.Inbound, false)
			ids[subj] = th.ID
		}
		for _, tc := range []struct{ q, want string }{
			{"%", "100% Erstattung"},
			{"_2024", "Rechnung_2024"},
			{"ärztliche", "Ärztliche Bescheinigung"},
			{"ÄRZTLICHE", "Ärztliche Bescheinigung"},
			{"ERSTATTUNG", "100% Erstattung"},
			{`c:\t`, `Pfad C:\temp`},
			{"gibt es nicht", ""},
		} {
			list, err := mb.Threads(ctx, w.vP1, mailbox.Filter{Query: tc.q})
			if err != nil {
				t.Fatalf("search %q: %v", tc.q, err)
			}
			want := []string{}
			if tc.want != "" {
				want = []string{ids[tc.want]}
			}
			if got := threadIDs(list); !slices.Equal(got, want) {
				t.Errorf("search %q = %v, want %v (%s)", tc.q, got, want, tc.want)
			}
		}
	})

	t.Run("filters by topic, state, date, archive, unread, and pages", func(t *testing.T) {
		s, _ := newStore(t)
		mb := s.Mailbox()
		w := newMailboxWorld(t, s)
		base := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
		var threads []mailbox.Thread
		for i := 0; i < 6; i++ {
			s.SetClock(func() time.Time { return base.Add(time.Duration(i) * 24 * time.Hour) })
			team := w.teamKG
			if i%2 == 1 {
				team = w.teamHM
			}
			th, _ := w.thread(t, s, mailbox.Thread{TenantID: w.a.ID, OwnerKind: mailbox.OwnerPerson, OwnerID: w.person1, TeamID: team.ID, Subject: fmt.Sprint("Anfrage ", i)}, mailbox.Outbound, false)
			threads = append(threads, th)
		}
		s.SetClock(func() time.Time { return base.Add(30 * 24 * time.Hour) })
		mustTx(t, s, func(tx *sqldb.Tx) error {
			mtx := mailboxTxOf(s, tx)
			if err := mtx.SetThreadState(ctx, w.a.ID, threads[0].ID, mailbox.StateClosed); err != nil {
				return err
			}
			if err := mtx.SetThreadArchived(ctx, w.a.ID, threads[1].ID, true); err != nil {
				return err
			}
			_, err := mtx.MarkThreadRead(ctx, w.vP1, threads[2].ID, true)
			return err
		})
		get := func(f mailbox.Filter) []string {
			t.Helper()
			list, err := mb.Threads(ctx, w.vP1, f)
			if err != nil {
				t.Fatal(err)
			}
			return threadIDs(list)
		}
		id := func(i ...int) []string {
			var out []string
			for _, n := range i {
				out = append(out, threads[n].ID)
			}
			return sorted(out...)
		}
		for _, tc := range []struct {
			name string
			f    mailbox.Filter
			want []string
		}{
			{"inbox hides the archived thread", mailbox.Filter{}, id(0, 2, 3, 4, 5)},
			{"archive", mailbox.Filter{Archive: mailbox.ArchiveArchived}, id(1)},
			{"topic", mailbox.Filter{Topic: "hilfsmittel", Archive: mailbox.ArchiveAll}, id(1, 3, 5)},
			{"state closed", mailbox.Filter{State: mailbox.StateClosed}, id(0)},
			{"date range", mailbox.Filter{From: base.Add(24 * time.Hour), To: base.Add(3 * 24 * time.Hour), Archive: mailbox.ArchiveAll}, id(1, 2)},
			{"unread only", mailbox.Filter{Unread: true}, id(0, 3, 4, 5)},
		} {
			if got := get(tc.f); !slices.Equal(got, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
			}
		}
		// Pages of two, newest first, cover everything exactly once.
		var seen []string
		f := mailbox.Filter{Archive: mailbox.ArchiveAll, Limit: 2}
		for {
			list, err := mb.Threads(ctx, w.vP1, f)
			if err != nil {
				t.Fatal(err)
			}
			for _, th := range list {
				seen = append(seen, th.ID)
			}
			if len(list) < 2 {
				break
			}
			f.Before = &mailbox.Cursor{LastMessageAt: list[1].LastMessageAt, ID: list[1].ID}
		}
		want := []string{threads[5].ID, threads[4].ID, threads[3].ID, threads[2].ID, threads[1].ID, threads[0].ID}
		if !slices.Equal(seen, want) {
			t.Fatalf("pages = %v, want %v", seen, want)
		}
	})

	t.Run("read state is per reader", func(t *testing.T) {
		s, _ := newStore(t)
		mb := s.Mailbox()
		w := newMailboxWorld(t, s)
		th, _ := w.thread(t, s, mailbox.Thread{TenantID: w.a.ID, OwnerKind: mailbox.OwnerPerson, OwnerID: w.person1, TeamID: w.teamKG.ID, Subject: "Frage"}, mailbox.Inbound, false)
		unread := func(v mailbox.Viewer) int {
			t.Helper()
			got, err := mb.Thread(ctx, v, th.ID)
			if err != nil {
				t.Fatal(err)
			}
			return got.Unread
		}
		if unread(w.vKG) != 1 || unread(w.vKG2) != 1 || unread(w.vP1) != 0 {
			t.Fatalf("before: %d %d %d", unread(w.vKG), unread(w.vKG2), unread(w.vP1))
		}
		mustTx(t, s, func(tx *sqldb.Tx) error {
			_, err := mailboxTxOf(s, tx).MarkThreadRead(ctx, w.vKG, th.ID, true)
			return err
		})
		if unread(w.vKG) != 0 || unread(w.vKG2) != 1 {
			t.Fatalf("after first caseworker read: %d %d", unread(w.vKG), unread(w.vKG2))
		}
		msgs, _ := mb.ThreadMessages(ctx, w.vKG2, th.ID)
		if len(msgs) != 1 || msgs[0].Read {
			t.Fatalf("second caseworker sees message as read: %+v", msgs)
		}
		// Another team's caseworker cannot mark it (nothing changes).
		mustTx(t, s, func(tx *sqldb.Tx) error {
			n, err := mailboxTxOf(s, tx).MarkThreadRead(ctx, w.vHM, th.ID, true)
			if n != 0 {
				return fmt.Errorf("other team marked %d messages", n)
			}
			return err
		})
		mustTx(t, s, func(tx *sqldb.Tx) error {
			_, err := mailboxTxOf(s, tx).MarkThreadRead(ctx, w.vKG, th.ID, false)
			return err
		})
		if unread(w.vKG) != 1 {
			t.Fatal("mark unread did not work")
		}
	})

	t.Run("uploads are taken once and only by their uploader", func(t *testing.T) {
		s, _ := newStore(t)
		w := newMailboxWorld(t, s)
		u := mailbox.Upload{ID: uuid.NewString(), TenantID: w.a.ID, UploaderID: w.acc1, BlobKey: "postfach/x/" + uuid.NewString(), FileName: "a.pdf", ContentType: "application/pdf", Size: 3, SHA256: "00"}
		mustTx(t, s, func(tx *sqldb.Tx) error { return mailboxTxOf(s, tx).AddUpload(ctx, u) })
		for _, tc := range []struct{ tenant, uploader string }{{w.a.ID, w.acc2}, {w.b.ID, w.acc1}} {
			err := s.InTx(ctx, func(tx *sqldb.Tx) error {
				_, err := mailboxTxOf(s, tx).TakeUpload(ctx, tc.tenant, tc.uploader, u.ID)
				return err
			})
			if !errors.Is(err, mailbox.ErrNotFound) {
				t.Fatalf("foreign take (%s/%s): %v", tc.tenant, tc.uploader, err)
			}
		}
		mustTx(t, s, func(tx *sqldb.Tx) error {
			got, err := mailboxTxOf(s, tx).TakeUpload(ctx, w.a.ID, w.acc1, u.ID)
			if err == nil && (got.BlobKey != u.BlobKey || got.SHA256 != u.SHA256 || got.Size != 3) {
				return fmt.Errorf("took %+v", got)
			}
			return err
		})
		err := s.InTx(ctx, func(tx *sqldb.Tx) error {
			_, err := mailboxTxOf(s, tx).TakeUpload(ctx, w.a.ID, w.acc1, u.ID)
			return err
		})
		if !errors.Is(err, mailbox.ErrNotFound) {
			t.Fatalf("second take: %v", err)
		}
	})

	t.Run("retention deletes old messages with attachments except under legal hold", func(t *testing.T) {
		s, _ := newStore(t)
		mb := s.Mailbox()
		w := newMailboxWorld(t, s)
		old := time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)
		s.SetClock(func() time.Time { return old })
		thOld, mOld := w.thread(t, s, mailbox.Thread{TenantID: w.a.ID, OwnerKind: mailbox.OwnerPerson, OwnerID: w.person1, TeamID: w.teamKG.ID, Subject: "Alt"}, mailbox.Inbound, true)
		thHold, mHold := w.thread(t, s, mailbox.Thread{TenantID: w.a.ID, OwnerKind: mailbox.OwnerPerson, OwnerID: w.person1, TeamID: w.teamKG.ID, Subject: "Streitfall", LegalHold: true}, mailbox.Inbound, true)
		thMixed, mMixedOld := w.thread(t, s, mailbox.Thread{TenantID: w.a.ID, OwnerKind: mailbox.OwnerPerson, OwnerID: w.person1, TeamID: w.teamKG.ID, Subject: "Gemischt"}, mailbox.Inbound, false)
		s.SetClock(func() time.Time { return time.Now().UTC() })
		var mNew mailbox.Message
		mustTx(t, s, func(tx *sqldb.Tx) error {
			var err error
			mNew, err = tx.AddMessage(ctx, mailbox.Message{TenantID: w.a.ID, ThreadID: thMixed.ID, Direction: mailbox.Outbound, Kind: mailbox.KindMessage, Body: "neu"})
			return err
		})
		expired, err := mb.ExpiredMessages(ctx, w.a.ID, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), 100)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := sorted(expired...), sorted(mOld.ID, mMixedOld.ID); !slices.Equal(got, want) {
			t.Fatalf("expired = %v, want %v (not the held one %s, not the new one %s)", got, want, mHold.ID, mNew.ID)
		}
		var d1, d2 mailbox.DeletedMessage
		mustTx(t, s, func(tx *sqldb.Tx) error {
			mtx := mailboxTxOf(s, tx)
			var err error
			if d1, err = mtx.DeleteMessage(ctx, w.a.ID, mOld.ID); err != nil {
				return err
			}
			if d2, err = mtx.DeleteMessage(ctx, w.a.ID, mMixedOld.ID); err != nil {
				return err
			}
			if _, err := mtx.DeleteMessage(ctx, w.a.ID, mHold.ID); !errors.Is(err, mailbox.ErrLegalHold) {
				return fmt.Errorf("held message: %v", err)
			}
			if _, err := mtx.DeleteMessage(ctx, w.b.ID, mNew.ID); !errors.Is(err, mailbox.ErrNotFound) {
				return fmt.Errorf("other tenant deleted a message: %v", err)
			}
			return nil
		})
		if !d1.ThreadDeleted || d1.ThreadID != thOld.ID || len(d1.Attachments) != 1 || d2.ThreadDeleted {
			t.Fatalf("deleted: %+v %+v", d1, d2)
		}
		if _, err := mb.Thread(ctx, w.vKG, thOld.ID); !errors.Is(err, mailbox.ErrNotFound) {
			t.Fatalf("thread of the last deleted message still there: %v", err)
		}
		if msgs, _ := mb.ThreadMessages(ctx, w.vKG, thMixed.ID); len(msgs) != 1 || msgs[0].ID != mNew.ID {
			t.Fatalf("mixed thread keeps the new message only: %+v", msgs)
		}
		if msgs, _ := mb.ThreadMessages(ctx, w.vKG, thHold.ID); len(msgs) != 1 {
			t.Fatal("held thread lost its message")
		}
		trash, err := mb.TrashedBlobs(ctx, 100000)
		if err != nil || !slices.Contains(trash, mOld.Attachments[0].BlobKey) || slices.Contains(trash, mHold.Attachments[0].BlobKey) {
			t.Fatalf("trash = %v, %v", len(trash), err)
		}
		if err := mb.ForgetTrashedBlob(ctx, mOld.Attachments[0].BlobKey); err != nil {
			t.Fatal(err)
		}
		trash, _ = mb.TrashedBlobs(ctx, 100000)
		if slices.Contains(trash, mOld.Attachments[0].BlobKey) {
			t.Fatal("forgotten blob still in the trash")
		}
	})

	t.Run("mail outbox: coalescing, exclusive claims, leases, retry, failure", func(t *testing.T) {
		s, _ := newStore(t)
		w := newMailboxWorld(t, s)
		// A fixed clock far ahead makes due times exact; the tenant scope is
		// what a worker dedicated to some Kassen uses.
		clock := time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
		s.SetClock(func() time.Time { return clock })
		tenants := []string{w.a.ID}
		claim := func(token string, lease time.Duration, limit int) []notifier.Job {
			t.Helper()
			jobs, err := s.ClaimMails(ctx, notifier.Claim{Token: token, Lease: lease, Limit: limit, Tenants: tenants})
			if err != nil {
				t.Fatal(err)
			}
			return jobs
		}
		const window = 15 * time.Minute
		enqueue := func(key string) notifier.Job {
			t.Helper()
			var j notifier.Job
			mustTx(t, s, func(tx *sqldb.Tx) error {
				var err error
				j, err = tx.EnqueueMail(ctx, notifier.Job{TenantID: w.a.ID, Recipient: "p@example.org", Template: notifier.TemplateNewMessage,
					Data: map[string]string{notifier.DataKasseName: "K"}, PersonID: w.person1, CoalesceKey: key, CoalesceWindow: window})
				return err
			})
			return j
		}
		key := "person:" + w.a.ID + ":" + w.person1
		first := enqueue(key)
		second := enqueue(key)
		if second.ID != first.ID || second.MessageID != first.MessageID || second.Coalesced != 1 {
			t.Fatalf("second notification not folded: %+v vs %+v", second, first)
		}
		// Concurrent notifications for one person still leave one job.
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- s.InTx(ctx, func(tx *sqldb.Tx) error {
					_, err := tx.EnqueueMail(ctx, notifier.Job{TenantID: w.a.ID, Recipient: "p@example.org", Template: notifier.TemplateNewMessage,
						Data: map[string]string{}, PersonID: w.person1, CoalesceKey: key, CoalesceWindow: window})
					return err
				})
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("concurrent enqueue: %v", err)
			}
		}
		other := enqueue("person:" + w.a.ID + ":" + w.person2)
		// Two workers claim at once: each job goes to exactly one.
		var got1, got2 []notifier.Job
		wg.Add(2)
		go func() {
			defer wg.Done()
			got1, _ = s.ClaimMails(ctx, notifier.Claim{Token: "w1", Lease: time.Minute, Limit: 10, Tenants: tenants})
		}()
		go func() {
			defer wg.Done()
			got2, _ = s.ClaimMails(ctx, notifier.Claim{Token: "w2", Lease: time.Minute, Limit: 10, Tenants: tenants})
		}()
		wg.Wait()
		all := append(append([]notifier.Job{}, got1...), got2...)
		var ids []string
		for _, j := range all {
			ids = append(ids, j.ID)
		}
		if got, want := sorted(ids...), sorted(first.ID, other.ID); !slices.Equal(got, want) {
			t.Fatalf("claimed %v, want each of %v exactly once", got, want)
		}
		for _, j := range all {
			if j.Status != notifier.StatusSending || j.Attempts != 1 || j.Reclaimed {
				t.Fatalf("claimed job %+v", j)
			}
			if j.ID == first.ID && j.Coalesced != 9 {
				t.Fatalf("job stands for %d folded notifications, want 9", j.Coalesced)
			}
		}
		if len(claim("w3", time.Minute, 10)) != 0 {
			t.Fatal("leased jobs claimed again before the lease ended")
		}
		tokenOf := func(id string) string {
			for _, j := range all {
				if j.ID == id {
					return j.ClaimToken
				}
			}
			return ""
		}
		// While the first mail is being sent, a new message waits for the
		// window after it instead of going out at once.
		third := enqueue(key)
		if third.ID == first.ID || !third.NextAttemptAt.Equal(clock.Add(window)) {
			t.Fatalf("notification after a sent one: %+v (want a new job due at %v)", third, clock.Add(window))
		}
		if err := s.MarkMailSent(ctx, first.ID, "wrong-token"); !errors.Is(err, notifier.ErrLeaseLost) {
			t.Fatalf("mark with a wrong token: %v", err)
		}
		// The first send fails: retrying folds the waiting job back into it.
		if err := s.RetryMail(ctx, first.ID, tokenOf(first.ID), 30*time.Second, "421 try later"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.MailJob(ctx, third.ID); !errors.Is(err, sqldb.ErrMailJobNotFound) {
			t.Fatalf("waiting job not folded into the retried one: %v", err)
		}
		j, _ := s.MailJob(ctx, first.ID)
		if j.Status != notifier.StatusPending || j.LastError != "421 try later" || !j.NextAttemptAt.Equal(clock.Add(30*time.Second)) || j.Coalesced != 10 {
			t.Fatalf("after retry: %+v", j)
		}
		if len(claim("w4", time.Minute, 10)) != 0 {
			t.Fatal("retry claimed before its delay")
		}
		clock = clock.Add(31 * time.Second)
		re := claim("w5", time.Minute, 10)
		if len(re) != 1 || re[0].ID != first.ID || re[0].Attempts != 2 || re[0].MessageID != first.MessageID {
			t.Fatalf("claim after delay: %+v", re)
		}
		// The worker dies while sending: after the lease the job is taken
		// again, marked reclaimed, and the old claim cannot mark it any more.
		clock = clock.Add(2 * time.Minute)
		re2 := claim("w6", time.Minute, 10)
		if len(re2) != 2 {
			t.Fatalf("after lease expiry: %+v", re2)
		}
		for _, j := range re2 {
			if !j.Reclaimed || j.ClaimToken != "w6" {
				t.Fatalf("reclaimed job: %+v", j)
			}
		}
		if err := s.MarkMailSent(ctx, first.ID, "w5"); !errors.Is(err, notifier.ErrLeaseLost) {
			t.Fatalf("stale worker marked the job: %v", err)
		}
		if err := s.MarkMailSent(ctx, other.ID, "w6"); err != nil {
			t.Fatal(err)
		}
		if j, _ := s.MailJob(ctx, other.ID); j.Status != notifier.StatusSent || !j.SentAt.Equal(clock) {
			t.Fatalf("sent job: %+v", j)
		} else if len(j.Data) != 0 {
			t.Fatalf("sent job still holds its template data (may be a link token): %v", j.Data)
		}
		// Giving up writes the audit event in the same transaction, and the
		// caseworkers of the person's team see it (masked).
		ev := audit.Event{TenantID: w.a.ID, ActorID: "notifier", ActorRole: "system", Type: "notifier.mail.failed", SubjectType: "mail", SubjectID: first.ID, Outcome: audit.OutcomeFailure}
		if err := s.FailMail(ctx, first.ID, "w6", "550 rejected", ev); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range pendingOf(t, s, w.a.ID) {
			found = found || (e.Type == "notifier.mail.failed" && e.SubjectID == first.ID)
		}
		if !found {
			t.Fatal("no audit event for the failed mail")
		}
		w.thread(t, s, mailbox.Thread{TenantID: w.a.ID, OwnerKind: mailbox.OwnerPerson, OwnerID: w.person1, TeamID: w.teamKG.ID, Subject: "x"}, mailbox.Outbound, false)
		mb := s.Mailbox()
		failed, err := mb.FailedNotifications(ctx, w.vKG, 10)
		if err != nil || len(failed) != 1 || failed[0].ID != first.ID || failed[0].Recipient != "p***@example.org" || failed[0].LastError != "550 rejected" {
			t.Fatalf("failed for the person's team = %+v, %v", failed, err)
		}
		for _, v := range []mailbox.Viewer{w.vHM, w.vCwB, w.vP1} {
			if f, err := mb.FailedNotifications(ctx, v, 10); err != nil || len(f) != 0 {
				t.Fatalf("failed notifications visible to %+v: %+v, %v", v, f, err)
			}
		}
		err = mb.InTx(ctx, func(tx mailbox.Tx) error { _, err := tx.RequeueNotification(ctx, w.vHM, first.ID); return err })
		if !errors.Is(err, mailbox.ErrNotFound) {
			t.Fatalf("other team requeued: %v", err)
		}
		if err := mb.InTx(ctx, func(tx mailbox.Tx) error { _, err := tx.RequeueNotification(ctx, w.vKG, first.ID); return err }); err != nil {
			t.Fatal(err)
		}
		if j, _ := s.MailJob(ctx, first.ID); j.Status != notifier.StatusPending || j.Attempts != 0 || j.Recipient == "p@example.org" {
			t.Fatalf("requeued job: %+v (recipient should be the person's current address)", j)
		}
	})
}

// mailboxTxOf gives the contract the mailbox view of a raw transaction.
func mailboxTxOf(_ *sqldb.Store, tx *sqldb.Tx) mailbox.Tx { return tx.Mailbox() }
