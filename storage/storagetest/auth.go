package storagetest

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"postbox/auth"
	"postbox/kasse"
	"postbox/storage/sqldb"
)

// testAuth is the auth store contract, plus the login rules that depend on
// the database (lockout counting, code replay, rate limits) run through the
// real auth.Service on this backend.
func testAuth(t *testing.T, newStore func(t *testing.T) (*sqldb.Store, []sqldb.Migration)) {
	ctx := context.Background()
	fast := auth.Argon2Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	setup := func(t *testing.T) (*sqldb.Store, auth.Store, kasse.Kasse) {
		s, _ := newStore(t)
		k := newKasse()
		mustTx(t, s, func(tx *sqldb.Tx) error { return tx.CreateKasse(ctx, k) })
		return s, s.Auth(), k
	}
	inTx := func(t *testing.T, st auth.Store, fn func(tx auth.Tx) error) {
		t.Helper()
		if err := st.InTx(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("account round trip, lower-case logins, tenant isolation", func(t *testing.T) {
		s, st, k := setup(t)
		other := newKasse()
		mustTx(t, s, func(tx *sqldb.Tx) error { return tx.CreateKasse(ctx, other) })
		now := time.Now().UTC().Truncate(time.Microsecond)
		a := auth.Account{ID: uuid.NewString(), TenantID: k.ID, Role: auth.RoleProviderUser, Username: "BTester", Email: "B.Tester@ABC.de",
			Status: auth.StatusInvited, Mobile: "+4915112345678", OrgID: "praxis-1", Salutation: "Herr", GivenName: "Bernhard", FamilyName: "Tester",
			SecurityQuestion: "q", SecurityAnswerHash: "h", ConsentVersion: "2025-01", ConsentAt: now, InvitedBy: "admin-1", ActivatedAt: now}
		inTx(t, st, func(tx auth.Tx) error { return tx.CreateAccount(ctx, a) })
		inTx(t, st, func(tx auth.Tx) error {
			got, err := tx.AccountByLogin(ctx, k.ID, "btester")
			if err != nil {
				return err
			}
			if got.Username != "btester" || got.Email != "b.tester@abc.de" || got.Mobile != a.Mobile || got.OrgID != "praxis-1" ||
				got.GivenName != "Bernhard" || !got.ConsentAt.Equal(now) || !got.ActivatedAt.Equal(now) || got.Status != auth.StatusInvited {
				return fmt.Errorf("round trip: %+v", got)
			}
			if _, err := tx.AccountByLogin(ctx, k.ID, "BTESTER"); err != nil {
				return fmt.Errorf("login is case-sensitive: %w", err)
			}
			if _, err := tx.AccountByID(ctx, other.ID, a.ID); !errors.Is(err, auth.ErrAccountNotFound) {
				return fmt.Errorf("account visible in another tenant: %v", err)
			}
			byMail, err := tx.AccountsByEmail(ctx, k.ID, "b.tester@abc.de")
			if err != nil || len(byMail) != 1 {
				return fmt.Errorf("by e-mail: %v %v", byMail, err)
			}
			org, err := tx.AccountsOfOrg(ctx, k.ID, "praxis-1")
			if err != nil || len(org) != 1 {
				return fmt.Errorf("of org: %v %v", org, err)
			}
			got.Status, got.FailedLogins, got.LockReason = auth.StatusLocked, 3, auth.LockSuspicion
			return tx.UpdateAccount(ctx, got)
		})
		inTx(t, st, func(tx auth.Tx) error {
			got, err := tx.AccountByID(ctx, k.ID, a.ID)
			if err != nil || got.Status != auth.StatusLocked || got.FailedLogins != 3 || got.LockReason != auth.LockSuspicion {
				return fmt.Errorf("update: %+v %v", got, err)
			}
			return nil
		})
		dup := a
		dup.ID = uuid.NewString()
		err := st.InTx(ctx, func(tx auth.Tx) error { return tx.CreateAccount(ctx, dup) })
		if !errors.Is(err, auth.ErrAccountExists) {
			t.Fatalf("duplicate username: %v", err)
		}
	})

	t.Run("one live account per person", func(t *testing.T) {
		s, st, k := setup(t)
		p := kasse.Person{ID: uuid.NewString(), TenantID: k.ID, KVNR: kasse.CompleteKVNR("A12345678"), GivenName: "E", FamilyName: "M"}
		mustTx(t, s, func(tx *sqldb.Tx) error { return tx.CreatePerson(ctx, p) })
		a := auth.Account{ID: uuid.NewString(), TenantID: k.ID, Role: auth.RoleInsured, Username: "erika", PersonID: p.ID, Status: auth.StatusPending}
		inTx(t, st, func(tx auth.Tx) error { return tx.CreateAccount(ctx, a) })
		b := a
		b.ID, b.Username = uuid.NewString(), "erika2"
		if err := st.InTx(ctx, func(tx auth.Tx) error { return tx.CreateAccount(ctx, b) }); !errors.Is(err, auth.ErrAlreadyRegistered) {
			t.Fatalf("second live account for a person: %v", err)
		}
		inTx(t, st, func(tx auth.Tx) error {
			got, err := tx.AccountByID(ctx, k.ID, a.ID)
			if err != nil {
				return err
			}
			got.Status = auth.StatusEnded
			return tx.UpdateAccount(ctx, got)
		})
		inTx(t, st, func(tx auth.Tx) error { return tx.CreateAccount(ctx, b) }) // after the end a new registration is possible
	})

	t.Run("login failures count atomically", func(t *testing.T) {
		_, st, k := setup(t)
		a := auth.Account{ID: uuid.NewString(), TenantID: k.ID, Role: auth.RoleInsured, Username: "erika", Status: auth.StatusActive}
		inTx(t, st, func(tx auth.Tx) error { return tx.CreateAccount(ctx, a) })
		var wg sync.WaitGroup
		for i := 0; i < 10; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := st.InTx(ctx, func(tx auth.Tx) error { _, err := tx.AddLoginFailure(ctx, k.ID, a.ID); return err }); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		inTx(t, st, func(tx auth.Tx) error {
			got, err := tx.AccountByID(ctx, k.ID, a.ID)
			if err != nil || got.FailedLogins != 10 {
				return fmt.Errorf("10 concurrent failures counted as %d (%v)", got.FailedLogins, err)
			}
			return nil
		})
	})

	t.Run("sessions: by token hash with account status, keep one, PIN sessions untouched, expiry", func(t *testing.T) {
		_, st, k := setup(t)
		a := auth.Account{ID: uuid.NewString(), TenantID: k.ID, Role: auth.RoleInsured, Username: "erika", Status: auth.StatusActive}
		inTx(t, st, func(tx auth.Tx) error { return tx.CreateAccount(ctx, a) })
		now := time.Now().UTC().Truncate(time.Microsecond)
		mk := func(account string, expires time.Time) auth.Session {
			return auth.Session{ID: uuid.NewString(), TokenHash: uuid.NewString(), TenantID: k.ID, AccountID: account, Role: auth.RoleInsured,
				Data: "{}", CreatedAt: now, LastSeenAt: now, ExpiresAt: expires}
		}
		s1, s2, pin, old := mk(a.ID, now.Add(time.Hour)), mk(a.ID, now.Add(time.Hour)), mk("", now.Add(time.Hour)), mk(a.ID, now.Add(-time.Second))
		inTx(t, st, func(tx auth.Tx) error {
			for _, s := range []auth.Session{s1, s2, pin, old} {
				if err := tx.CreateSession(ctx, s); err != nil {
					return err
				}
			}
			return nil
		})
		got, err := st.SessionByTokenHash(ctx, s1.TokenHash)
		if err != nil || got.ID != s1.ID || got.AccountStatus != auth.StatusActive || !got.ExpiresAt.Equal(s1.ExpiresAt) {
			t.Fatalf("SessionByTokenHash = %+v, %v", got, err)
		}
		if got, _ := st.SessionByTokenHash(ctx, pin.TokenHash); got.AccountStatus != "" {
			t.Fatalf("PIN session has account status %q", got.AccountStatus)
		}
		if _, err := st.SessionByTokenHash(ctx, "nope"); !errors.Is(err, auth.ErrSessionNotFound) {
			t.Fatalf("unknown hash: %v", err)
		}
		if err := st.TouchSession(ctx, s1.ID, now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if got, _ := st.SessionByTokenHash(ctx, s1.TokenHash); !got.LastSeenAt.Equal(now.Add(time.Minute)) {
			t.Fatalf("touch: %v", got.LastSeenAt)
		}
		inTx(t, st, func(tx auth.Tx) error {
			s2.Stage, s2.StepUpAt, s2.LastSeenAt = auth.StageConsent, now, now
			if err := tx.UpdateSession(ctx, s2); err != nil {
				return err
			}
			n, err := tx.DeleteAccountSessions(ctx, k.ID, a.ID, s1.ID)
			if err != nil || n != 2 { // s2 and old
				return fmt.Errorf("DeleteAccountSessions = %d, %v", n, err)
			}
			if n, err := tx.DeleteAccountSessions(ctx, k.ID, "", ""); err != nil || n != 0 {
				return fmt.Errorf("empty account id deleted %d sessions (%v)", n, err)
			}
			n, err = tx.DeleteExpiredSessions(ctx, now.Add(2*time.Hour))
			if err != nil || n != 2 { // s1 and pin
				return fmt.Errorf("DeleteExpiredSessions = %d, %v", n, err)
			}
			return nil
		})
	})

	t.Run("tokens and codes", func(t *testing.T) {
		_, st, k := setup(t)
		now := time.Now().UTC().Truncate(time.Microsecond)
		tk := auth.Token{ID: uuid.NewString(), TenantID: k.ID, AccountID: "a1", Purpose: auth.PurposeInvitation, Hash: "h1", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		inTx(t, st, func(tx auth.Tx) error { return tx.CreateToken(ctx, tk) })
		if err := st.InTx(ctx, func(tx auth.Tx) error { return tx.CreateToken(ctx, tk) }); err == nil {
			t.Fatal("token stored twice")
		}
		inTx(t, st, func(tx auth.Tx) error {
			got, err := tx.TokenByHash(ctx, auth.PurposeInvitation, "h1")
			if err != nil || got.ID != tk.ID || !got.Usable(now) {
				return fmt.Errorf("TokenByHash = %+v, %v", got, err)
			}
			if _, err := tx.TokenByHash(ctx, auth.PurposePasswordReset, "h1"); !errors.Is(err, auth.ErrTokenInvalid) {
				return fmt.Errorf("token found under another purpose: %v", err)
			}
			if err := tx.RevokeTokens(ctx, k.ID, "a1", auth.PurposeInvitation, now); err != nil {
				return err
			}
			got, err = tx.LatestToken(ctx, k.ID, "a1", auth.PurposeInvitation)
			if err != nil || got.Usable(now) {
				return fmt.Errorf("revoked token still usable: %+v %v", got, err)
			}
			for i, exp := range []time.Duration{time.Minute, 2 * time.Minute} {
				c := auth.Code{ID: uuid.NewString(), TenantID: k.ID, AccountID: "a1", Purpose: auth.CodeLogin, Hash: fmt.Sprint(i),
					CreatedAt: now.Add(time.Duration(i) * time.Second), ExpiresAt: now.Add(exp)}
				if err := tx.CreateCode(ctx, c); err != nil {
					return err
				}
			}
			codes, err := tx.ActiveCodes(ctx, k.ID, "a1", auth.CodeLogin, now)
			if err != nil || len(codes) != 2 || codes[0].Hash != "1" {
				return fmt.Errorf("ActiveCodes = %+v, %v", codes, err)
			}
			if n, err := tx.CountCodesSince(ctx, k.ID, "a1", now); err != nil || n != 2 {
				return fmt.Errorf("CountCodesSince = %d, %v", n, err)
			}
			if err := tx.InvalidateCodes(ctx, k.ID, "a1", auth.CodeLogin, now); err != nil {
				return err
			}
			if codes, _ := tx.ActiveCodes(ctx, k.ID, "a1", auth.CodeLogin, now); len(codes) != 0 {
				return fmt.Errorf("invalidated codes still active: %d", len(codes))
			}
			return nil
		})
	})

	t.Run("a TOTP step is used once even under concurrency", func(t *testing.T) {
		_, st, k := setup(t)
		d := auth.Device{ID: uuid.NewString(), TenantID: k.ID, AccountID: "a1", Name: "x", Status: auth.DeviceActive, CreatedAt: time.Now()}
		inTx(t, st, func(tx auth.Tx) error { return tx.CreateDevice(ctx, d) })
		var wins sync.WaitGroup
		var mu sync.Mutex
		won := 0
		for i := 0; i < 8; i++ {
			wins.Add(1)
			go func() {
				defer wins.Done()
				st.InTx(ctx, func(tx auth.Tx) error {
					ok, err := tx.UseDeviceStep(ctx, k.ID, d.ID, 1000, time.Now())
					if ok {
						mu.Lock()
						won++
						mu.Unlock()
					}
					return err
				})
			}()
		}
		wins.Wait()
		if won != 1 {
			t.Fatalf("time step used %d times, want 1", won)
		}
		inTx(t, st, func(tx auth.Tx) error {
			if ok, _ := tx.UseDeviceStep(ctx, k.ID, d.ID, 999, time.Now()); ok {
				return errors.New("an older step was accepted after a newer one")
			}
			if ok, _ := tx.UseDeviceStep(ctx, k.ID, d.ID, 1001, time.Now()); !ok {
				return errors.New("the next step was refused")
			}
			return nil
		})
	})

	t.Run("rate limit windows count every hit and restart", func(t *testing.T) {
		_, st, _ := setup(t)
		bucket := "test:" + uuid.NewString()
		now := time.Now().UTC()
		var wg sync.WaitGroup
		for i := 0; i < 10; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := st.InTx(ctx, func(tx auth.Tx) error { _, err := tx.HitRateLimit(ctx, bucket, now.Add(-time.Minute), now); return err }); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		inTx(t, st, func(tx auth.Tx) error {
			n, err := tx.HitRateLimit(ctx, bucket, now.Add(-time.Minute), now)
			if err != nil || n != 11 {
				return fmt.Errorf("11th hit counted %d (%v)", n, err)
			}
			later := now.Add(2 * time.Minute)
			if n, err = tx.HitRateLimit(ctx, bucket, later.Add(-time.Minute), later); err != nil || n != 1 {
				return fmt.Errorf("new window starts at %d (%v)", n, err)
			}
			return nil
		})
	})

	// The service on this backend: the rules whose correctness depends on
	// the database.
	newService := func(t *testing.T, s *sqldb.Store, sms *codeSink) *auth.Service {
		svc, err := auth.NewService(s.Auth(), auth.Options{Argon2: fast, Key: make([]byte, 32), ClientAddrKey: make([]byte, 32), SMS: sms})
		if err != nil {
			t.Fatal(err)
		}
		return svc
	}
	active := func(t *testing.T, st auth.Store, k kasse.Kasse, username, pw string) auth.Account {
		hash, _ := auth.HashSecret(pw, fast)
		a := auth.Account{ID: uuid.NewString(), TenantID: k.ID, Role: auth.RoleInsured, Username: username, PasswordHash: hash,
			Status: auth.StatusActive, Mobile: "+4915112345678", SecurityQuestion: auth.SecurityQuestions[0], SecurityAnswerHash: hash}
		inTx(t, st, func(tx auth.Tx) error {
			a.MobileConfirmedAt, a.ActivatedAt = tx.Now(), tx.Now()
			return tx.CreateAccount(ctx, a)
		})
		return a
	}

	t.Run("service: lock after exactly 5 wrong passwords, right password refused after", func(t *testing.T) {
		s, st, k := setup(t)
		svc := newService(t, s, &codeSink{})
		active(t, st, k, "erika", "Kx7#mPq2vR")
		m := auth.Meta{ClientAddr: "192.0.2.1"}
		for i := 1; i <= 5; i++ {
			if _, err := svc.Login(ctx, m, k.ID, "erika", "Falsch#123x", ""); !errors.Is(err, auth.ErrLoginFailed) {
				t.Fatalf("attempt %d: %v", i, err)
			}
		}
		if _, err := svc.Login(ctx, m, k.ID, "erika", "Kx7#mPq2vR", ""); !errors.Is(err, auth.ErrLoginFailed) {
			t.Fatalf("right password after lock: %v", err)
		}
		inTx(t, st, func(tx auth.Tx) error {
			a, err := tx.AccountByLogin(ctx, k.ID, "erika")
			if err != nil || a.Status != auth.StatusLocked || a.FailedLogins != 5 || a.LockReason != auth.LockPassword {
				return fmt.Errorf("after 5 failures: %+v %v", a, err)
			}
			return nil
		})
		if n := countEvents(t, s, k.ID, "auth.locked"); n != 1 {
			t.Fatalf("%d auth.locked events", n)
		}
	})

	t.Run("service: mTAN login, then a replayed TOTP code is refused", func(t *testing.T) {
		s, st, k := setup(t)
		sms := &codeSink{}
		svc := newService(t, s, sms)
		a := active(t, st, k, "erika", "Kx7#mPq2vR")
		m := auth.Meta{ClientAddr: "192.0.2.1"}
		r, err := svc.Login(ctx, m, k.ID, "erika", "Kx7#mPq2vR", "")
		if err != nil || !r.MTANSent {
			t.Fatalf("login: %+v %v", r, err)
		}
		done, err := svc.LoginSecondFactor(ctx, m, r.Token, "mtan", sms.last(t), "")
		if err != nil || done.Stage != auth.StageDone {
			t.Fatalf("mTAN: %+v %v", done, err)
		}
		sess, _ := svc.ResolveSession(ctx, done.Token)
		if _, err := svc.RequestStepUpMTAN(ctx, m, sess); err != nil {
			t.Fatal(err)
		}
		if err := svc.StepUp(ctx, m, sess, "mtan", sms.last(t)); err != nil {
			t.Fatal(err)
		}
		sess, _ = svc.ResolveSession(ctx, done.Token)
		enr, err := svc.AddDevice(ctx, m, sess, "Telefon")
		if err != nil {
			t.Fatal(err)
		}
		act, err := svc.ActivateDevice(ctx, m, k.ID, a.Username, enr.ActivationCode, "482915", "482915")
		if err != nil {
			t.Fatal(err)
		}
		key, _ := otp.NewKeyFromURL(act.URI)
		code, _ := totp.GenerateCode(key.Secret(), time.Now())
		if err := svc.ConfirmDevice(ctx, m, k.ID, a.Username, enr.ActivationCode, code); err != nil {
			t.Fatal(err)
		}
		// The confirmation used this step; the same code cannot log in.
		r, _ = svc.Login(ctx, m, k.ID, "erika", "Kx7#mPq2vR", "")
		if _, err := svc.LoginSecondFactor(ctx, m, r.Token, "totp", code, ""); !errors.Is(err, auth.ErrCodeInvalid) {
			t.Fatalf("replayed TOTP code: %v", err)
		}
		if n := countEvents(t, s, k.ID, "auth.device.added"); n != 1 {
			t.Fatalf("%d auth.device.added events", n)
		}
	})
}

// codeSink is an SMS gateway that remembers the codes.
type codeSink struct {
	mu   sync.Mutex
	msgs []string
}

func (c *codeSink) SendSMS(_ context.Context, _, text string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, text)
	return nil
}

var smsCode = regexp.MustCompile(`: ([0-9]{6})\.`)

func (c *codeSink) last(t *testing.T) string {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.msgs) == 0 {
		t.Fatal("no SMS sent")
	}
	m := smsCode.FindStringSubmatch(c.msgs[len(c.msgs)-1])
	if m == nil {
		t.Fatalf("SMS without code: %q", c.msgs[len(c.msgs)-1])
	}
	return m[1]
}

func countEvents(t *testing.T, s *sqldb.Store, tenant, typ string) int {
	n := 0
	for _, e := range pendingOf(t, s, tenant) {
		if e.Type == typ {
			n++
		}
	}
	return n
}
