package storagetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"postbox/audit"
	"postbox/intake"
	"postbox/kasse"
	"postbox/storage/sqldb"
)

// testUploads is the upload state contract (intake.UploadStore plus
// MarkUploadsFinal) both SQL backends pass.
func testUploads(t *testing.T, newStore func(t *testing.T) (*sqldb.Store, []sqldb.Migration)) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)

	setup := func(t *testing.T) (*sqldb.Store, kasse.Kasse, kasse.Person, kasse.Person) {
		s, _ := newStore(t)
		k := newKasse()
		p := kasse.Person{ID: uuid.NewString(), TenantID: k.ID, KVNR: kasse.CompleteKVNR("U12345678"), GivenName: "Erika", FamilyName: "Mustermann"}
		q := kasse.Person{ID: uuid.NewString(), TenantID: k.ID, KVNR: kasse.CompleteKVNR("U87654321"), GivenName: "Max", FamilyName: "Mustermann"}
		mustTx(t, s, func(tx *sqldb.Tx) error {
			if err := tx.CreateKasse(ctx, k); err != nil {
				return err
			}
			if err := tx.CreatePerson(ctx, p); err != nil {
				return err
			}
			return tx.CreatePerson(ctx, q)
		})
		return s, k, p, q
	}
	newUpload := func(p kasse.Person, length int64) intake.Upload {
		id := uuid.NewString()
		return intake.Upload{ID: id, TenantID: p.TenantID, PersonID: p.ID, Kind: intake.KindSingle, Status: intake.StatusUploading,
			Length: length, Filename: "befund.pdf", BlobKey: intake.BlobKey(p.TenantID, id), MultipartID: "mp",
			CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(time.Hour)}
	}
	noQuota := intake.UploadQuota{}

	t.Run("round trip of the whole state, with its audit event", func(t *testing.T) {
		s, k, p, _ := setup(t)
		u := newUpload(p, 12345)
		ev := audit.Event{TenantID: k.ID, Type: "intake.upload.created", SubjectType: "upload", SubjectID: u.ID}
		if err := s.CreateUpload(ctx, u, noQuota, ev); err != nil {
			t.Fatal(err)
		}
		got, err := s.LockUpload(ctx, k.ID, p.ID, u.ID, "me", now.Add(time.Minute), now)
		if err != nil {
			t.Fatal(err)
		}
		got.Offset = 7 << 20
		got.Parts = []intake.StoredPart{{Number: 1, ETag: "e1", Size: 5 << 20}}
		got.Staging = []intake.StagingSegment{{Key: "k/staging-3", Size: 2 << 20}}
		got.StagingSeq = 3
		got.HashState = []byte{1, 2, 3, 0, 255}
		got.DetectedType = "application/pdf"
		if err := s.SaveUpload(ctx, got, "me"); err != nil {
			t.Fatal(err)
		}
		back, err := s.UploadByID(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if back.Offset != 7<<20 || len(back.Parts) != 1 || back.Parts[0].ETag != "e1" || back.Staging[0].Key != "k/staging-3" ||
			back.StagingSeq != 3 || string(back.HashState) != string([]byte{1, 2, 3, 0, 255}) || back.DetectedType != "application/pdf" ||
			back.Filename != "befund.pdf" || !back.ExpiresAt.Equal(u.ExpiresAt) || back.LockOwner != "me" {
			t.Fatalf("round trip: %+v", back)
		}
		if len(pendingOf(t, s, k.ID)) != 1 {
			t.Fatal("creation event not recorded")
		}
		if _, err := s.UploadByID(ctx, uuid.NewString()); !errors.Is(err, intake.ErrUploadNotFound) {
			t.Fatalf("unknown id: %v", err)
		}
	})

	t.Run("lease: one winner among concurrent lockers, expiry, fencing", func(t *testing.T) {
		s, k, p, q := setup(t)
		u := newUpload(p, 100)
		if err := s.CreateUpload(ctx, u, noQuota); err != nil {
			t.Fatal(err)
		}
		const n = 8
		var wg sync.WaitGroup
		wins := make(chan string, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(owner string) {
				defer wg.Done()
				_, err := s.LockUpload(ctx, k.ID, p.ID, u.ID, owner, now.Add(time.Minute), now)
				if err == nil {
					wins <- owner
				} else if !errors.Is(err, intake.ErrUploadLocked) {
					t.Errorf("lock: %v", err)
				}
			}(uuid.NewString())
		}
		wg.Wait()
		close(wins)
		var winners []string
		for w := range wins {
			winners = append(winners, w)
		}
		if len(winners) != 1 {
			t.Fatalf("%d winners, want exactly 1", len(winners))
		}
		holder := winners[0]
		if _, err := s.LockUpload(ctx, k.ID, q.ID, u.ID, "other-person", now.Add(time.Minute), now.Add(2*time.Minute)); !errors.Is(err, intake.ErrUploadNotFound) {
			t.Fatalf("another person's lock attempt: %v, want not found", err)
		}
		if err := s.RenewUploadLock(ctx, u.ID, holder, now.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		// After the lease ran out, another request takes over; the old
		// holder can neither renew nor write any more.
		later := now.Add(3 * time.Minute)
		taken, err := s.LockUpload(ctx, k.ID, p.ID, u.ID, "successor", later.Add(time.Minute), later)
		if err != nil {
			t.Fatalf("take over expired lease: %v", err)
		}
		if err := s.RenewUploadLock(ctx, u.ID, holder, later.Add(time.Hour)); !errors.Is(err, intake.ErrLockLost) {
			t.Fatalf("renew by the old holder: %v", err)
		}
		taken.Offset = 50
		if err := s.SaveUpload(ctx, taken, holder); !errors.Is(err, intake.ErrLockLost) {
			t.Fatalf("save by the old holder: %v", err)
		}
		if err := s.DeleteUpload(ctx, u.ID, holder); !errors.Is(err, intake.ErrLockLost) {
			t.Fatalf("delete by the old holder: %v", err)
		}
		if err := s.SaveUpload(ctx, taken, "successor"); err != nil {
			t.Fatal(err)
		}
		if err := s.UnlockUpload(ctx, u.ID, "successor"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.UploadByID(ctx, u.ID); got.LockOwner != "" || got.Offset != 50 {
			t.Fatalf("after unlock: owner %q offset %d", got.LockOwner, got.Offset)
		}
	})

	t.Run("quota: bytes and files per person, atomic under concurrency", func(t *testing.T) {
		s, _, p, q := setup(t)
		quota := intake.UploadQuota{MaxSubmissionBytes: 1000, MaxFiles: 3}
		var wg sync.WaitGroup
		results := make(chan error, 10)
		for i := 0; i < 10; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results <- s.CreateUpload(ctx, newUpload(p, 300), quota)
			}()
		}
		wg.Wait()
		close(results)
		ok, refused := 0, 0
		for err := range results {
			var qe *intake.QuotaError
			switch {
			case err == nil:
				ok++
			case errors.As(err, &qe):
				refused++
			default:
				t.Fatalf("create: %v", err)
			}
		}
		if ok != 3 || refused != 7 {
			t.Fatalf("%d created, %d refused; want 3 and 7 (900 of 1000 bytes)", ok, refused)
		}
		var qe *intake.QuotaError
		if err := s.CreateUpload(ctx, newUpload(p, 50), quota); !errors.As(err, &qe) || !qe.Files || qe.Limit != 3 {
			t.Fatalf("fourth file: %v", err)
		}
		if err := s.CreateUpload(ctx, newUpload(q, 1000), quota); err != nil {
			t.Fatalf("another person's quota is their own: %v", err)
		}
		// A deferred length counts what arrived; fixing it is checked too.
		d := newUpload(q, -1)
		quota2 := intake.UploadQuota{MaxSubmissionBytes: 2000, MaxFiles: 5}
		d.LockOwner, d.LockUntil = "w", now.Add(time.Minute)
		if err := s.CreateUpload(ctx, d, quota2); err != nil {
			t.Fatal(err)
		}
		d.Length = 1001
		if err := s.SetUploadLength(ctx, d, "w", quota2); !errors.As(err, &qe) || qe.Used != 1000 {
			t.Fatalf("length beyond the quota: %v", err)
		}
		d.Length = 1000
		if err := s.SetUploadLength(ctx, d, "w", quota2); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("lists, expiry and stalled uploads", func(t *testing.T) {
		s, k, p, q := setup(t)
		a, b, partial, gone := newUpload(p, 10), newUpload(p, 20), newUpload(p, 30), newUpload(p, 40)
		partial.Kind = intake.KindPartial
		gone.Status = intake.StatusTerminated
		b.CreatedAt = now.Add(time.Second)
		b.Status = intake.StatusCompleting
		for _, u := range []intake.Upload{a, b, partial, gone, newUpload(q, 5)} {
			if err := s.CreateUpload(ctx, u, noQuota); err != nil {
				t.Fatal(err)
			}
		}
		list, err := s.UploadsOfPerson(ctx, k.ID, p.ID)
		if err != nil || len(list) != 2 || list[0].ID != b.ID || list[1].ID != a.ID {
			t.Fatalf("list: %d %v (want b, a: no partial, no terminated, newest first)", len(list), err)
		}
		var txList []intake.Upload
		mustTx(t, s, func(tx *sqldb.Tx) error { txList, err = tx.UploadsOfPerson(ctx, k.ID, p.ID); return err })
		if len(txList) != 2 {
			t.Fatalf("tx list: %d", len(txList))
		}
		stalled, err := s.StalledUploads(ctx, now, 100)
		if err != nil || !containsUpload(stalled, b.ID) || containsUpload(stalled, a.ID) {
			t.Fatalf("stalled: %v %v", uploadIDs(stalled), err)
		}
		expired, err := s.ExpiredUploads(ctx, now.Add(2*time.Hour), 1000)
		if err != nil || !containsUpload(expired, a.ID) || !containsUpload(expired, gone.ID) {
			t.Fatalf("expired: %v %v", uploadIDs(expired), err)
		}
		if expired, _ := s.ExpiredUploads(ctx, now, 1000); containsUpload(expired, a.ID) {
			t.Fatal("upload expired before its time")
		}
	})

	t.Run("MarkUploadsFinal takes only the person's complete uploads", func(t *testing.T) {
		s, k, p, q := setup(t)
		complete := func(u intake.Upload, scan intake.ScanStatus) intake.Upload {
			u.Status, u.ScanStatus, u.SHA256, u.Offset = intake.StatusComplete, scan, "ab12", u.Length
			return u
		}
		clean, unscanned := complete(newUpload(p, 10), intake.ScanClean), complete(newUpload(p, 20), intake.ScanNotScanned)
		uploading := newUpload(p, 30)
		quarantined := complete(newUpload(p, 40), intake.ScanPending)
		quarantined.Status = intake.StatusQuarantined
		infected := complete(newUpload(p, 50), intake.ScanInfected)
		infected.Status = intake.StatusInfected
		partial := complete(newUpload(p, 60), intake.ScanNone)
		partial.Kind = intake.KindPartial
		expired := complete(newUpload(p, 70), intake.ScanClean)
		expired.ExpiresAt = now.Add(-time.Minute)
		locked := complete(newUpload(p, 80), intake.ScanClean)
		locked.LockOwner, locked.LockUntil = "deleting", now.Add(time.Hour)
		foreign := complete(newUpload(q, 90), intake.ScanClean)
		for _, u := range []intake.Upload{clean, unscanned, uploading, quarantined, infected, partial, expired, locked, foreign} {
			if err := s.CreateUpload(ctx, u, noQuota); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			name string
			id   string
			want error
		}{
			{"still uploading", uploading.ID, intake.ErrUploadNotReady},
			{"quarantined", quarantined.ID, intake.ErrUploadNotReady},
			{"infected", infected.ID, intake.ErrUploadNotReady},
			{"partial", partial.ID, intake.ErrUploadNotReady},
			{"expired", expired.ID, intake.ErrUploadNotReady},
			{"held by a request", locked.ID, intake.ErrUploadNotReady},
			{"another person's", foreign.ID, intake.ErrUploadNotFound},
			{"unknown", uuid.NewString(), intake.ErrUploadNotFound},
		} {
			err := s.InTx(ctx, func(tx *sqldb.Tx) error {
				_, err := tx.MarkUploadsFinal(ctx, k.ID, p.ID, []string{clean.ID, tc.id})
				return err
			})
			if !errors.Is(err, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			}
		}
		// A refused call changed nothing, not even the good upload.
		if u, _ := s.UploadByID(ctx, clean.ID); u.Status != intake.StatusComplete {
			t.Fatalf("refused MarkUploadsFinal left %s", u.Status)
		}
		var final []intake.Upload
		mustTx(t, s, func(tx *sqldb.Tx) error {
			var err error
			final, err = tx.MarkUploadsFinal(ctx, k.ID, p.ID, []string{clean.ID, unscanned.ID})
			return err
		})
		if len(final) != 2 || final[0].BlobKey != clean.BlobKey || final[0].Size() != 10 || final[0].SHA256 != "ab12" || final[1].Status != intake.StatusFinal {
			t.Fatalf("final: %+v", final)
		}
		err := s.InTx(ctx, func(tx *sqldb.Tx) error {
			_, err := tx.MarkUploadsFinal(ctx, k.ID, p.ID, []string{clean.ID})
			return err
		})
		if !errors.Is(err, intake.ErrUploadAlreadyFinal) {
			t.Fatalf("second submission of the same upload: %v", err)
		}
		if exp, _ := s.ExpiredUploads(ctx, now.Add(1000*time.Hour), 1000); containsUpload(exp, clean.ID) {
			t.Fatal("a final upload expires")
		}
	})
}

func containsUpload(list []intake.Upload, id string) bool {
	for _, u := range list {
		if u.ID == id {
			return true
		}
	}
	return false
}

func uploadIDs(list []intake.Upload) []string {
	out := make([]string, len(list))
	for i, u := range list {
		out[i] = u.ID
	}
	return out
}
