package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"postbox/audit"
	"postbox/auth"
)

func TestBruteForceLocksAfterExactlyFiveFailures(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const pw = "Kx7#mPq2vR"
		acc := e.activeInsured("erika", pw, "+4915112345678")
		for i := 1; i <= 5; i++ {
			_, err := e.svc.Login(ctx, meta, e.kasse.ID, "erika", "Falsch#123x", "")
			if !errors.Is(err, auth.ErrLoginFailed) {
				t.Fatalf("attempt %d: err = %v, want ErrLoginFailed", i, err)
			}
			locked := len(e.events("auth.locked")) > 0
			if locked != (i == 5) {
				t.Fatalf("after %d wrong passwords locked = %v", i, locked)
			}
		}
		// The right password after the lock is refused with the same answer.
		if _, err := e.svc.Login(ctx, meta, e.kasse.ID, "erika", pw, ""); !errors.Is(err, auth.ErrLoginFailed) {
			t.Fatalf("correct password after lock: err = %v, want ErrLoginFailed", err)
		}
		fails := e.events("auth.login")
		if len(fails) != 6 {
			t.Fatalf("%d auth.login events, want 6 failures", len(fails))
		}
		for _, ev := range fails {
			if ev.Outcome != audit.OutcomeFailure || ev.SubjectID != acc.ID || ev.ClientHash == "" || strings.Contains(ev.ClientHash, "192.0.2") {
				t.Fatalf("failure event %+v", ev)
			}
		}
		if l := e.events("auth.locked"); len(l) != 1 || !strings.Contains(l[0].Details, `"reason":"password"`) || !strings.Contains(l[0].Details, `"failures":5`) {
			t.Fatalf("auth.locked events %+v", l)
		}

		// A caseworker of the Kasse lifts the lock (audited); then the login works.
		cw := e.account(auth.RoleCaseworker, "sachb", "Qz8#wLm4nT")
		actor := auth.Principal{AccountID: cw.ID, TenantID: e.kasse.ID, Role: auth.RoleCaseworker}
		if err := e.svc.Unlock(ctx, meta, actor, acc.ID); err != nil {
			t.Fatal(err)
		}
		if u := e.events("auth.unlocked"); len(u) != 1 || u[0].ActorID != cw.ID {
			t.Fatalf("auth.unlocked events %+v", u)
		}
		done := e.loginMTAN("erika", pw, "+4915112345678")
		if done.Stage != auth.StageDone || done.Principal.AccountID != acc.ID {
			t.Fatalf("login after unlock: %+v", done)
		}
	})
}

func TestFailuresCountOnlyInARow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const pw = "Kx7#mPq2vR"
		e.activeInsured("erika", pw, "+4915112345678")
		for i := 0; i < 4; i++ {
			e.svc.Login(ctx, meta, e.kasse.ID, "erika", "Falsch#123x", "")
		}
		if _, err := e.svc.Login(ctx, meta, e.kasse.ID, "erika", pw, ""); err != nil {
			t.Fatalf("right password after 4 failures: %v", err)
		}
		for i := 0; i < 4; i++ {
			e.svc.Login(ctx, meta, e.kasse.ID, "erika", "Falsch#123x", "")
		}
		if len(e.events("auth.locked")) != 0 {
			t.Fatal("locked although the failures were not 5 in a row")
		}
	})
}

func TestLoginDoesNotRevealUsernames(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.activeInsured("erika", "Kx7#mPq2vR", "+4915112345678")
		_, errKnown := e.svc.Login(ctx, meta, e.kasse.ID, "erika", "Falsch#123x", "")
		_, errUnknown := e.svc.Login(ctx, meta, e.kasse.ID, "niemand", "Falsch#123x", "")
		_, errTenant := e.svc.Login(ctx, meta, "no-such-kasse", "erika", "Falsch#123x", "")
		for _, err := range []error{errKnown, errUnknown, errTenant} {
			if !errors.Is(err, auth.ErrLoginFailed) || err.Error() != errKnown.Error() {
				t.Fatalf("answers differ: %v / %v / %v", errKnown, errUnknown, errTenant)
			}
		}
		var unknown int
		for _, ev := range e.events("auth.login") {
			if strings.Contains(ev.Details, "unknown_user") {
				unknown++
				if strings.Contains(ev.Details, "niemand") {
					t.Fatal("unknown username written to the audit event")
				}
			}
		}
		if unknown != 1 {
			t.Fatalf("%d unknown-user events, want 1", unknown)
		}
	})
}

func TestRateLimitPerAddressAndAccount(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.activeInsured("erika", "Kx7#mPq2vR", "+4915112345678")
		// Unknown usernames from one address: the account limit (10 per name)
		// does not apply across names, the address limit (30) does.
		var limited int
		for i := 0; i < 35; i++ {
			_, err := e.svc.Login(ctx, meta, e.kasse.ID, "user"+string(rune('a'+i%26))+string(rune('a'+i/26)), "Falsch#123x", "")
			if errors.Is(err, auth.ErrRateLimited) {
				limited++
			}
		}
		if limited != 5 {
			t.Fatalf("%d of 35 attempts from one address limited, want 5 (limit 30)", limited)
		}
		// Per username, from changing addresses: 10 per 15 minutes.
		e.clock.Add(16 * time.Minute)
		limited = 0
		for i := 0; i < 12; i++ {
			m := auth.Meta{ClientAddr: "198.51.100." + string(rune('0'+i))}
			if _, err := e.svc.Login(ctx, m, e.kasse.ID, "nobody", "Falsch#123x", ""); errors.Is(err, auth.ErrRateLimited) {
				limited++
			}
		}
		if limited != 2 {
			t.Fatalf("%d of 12 attempts on one username limited, want 2 (limit 10)", limited)
		}
		e.clock.Add(16 * time.Minute)
		if _, err := e.svc.Login(ctx, meta, e.kasse.ID, "nobody", "Falsch#123x", ""); !errors.Is(err, auth.ErrLoginFailed) {
			t.Fatalf("after the window: %v", err)
		}
	})
}

func TestMTANRules(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const pw, mobile = "Kx7#mPq2vR", "+4915112345678"
		e.activeInsured("erika", pw, mobile)
		start := func() auth.LoginResult {
			r, err := e.svc.Login(ctx, meta, e.kasse.ID, "erika", pw, "")
			if err != nil || !r.MTANSent || r.MobileHint != "…5678" {
				t.Fatalf("login: %+v %v", r, err)
			}
			return r
		}
		t.Run("valid 5 minutes", func(t *testing.T) {
			r := start()
			code := e.lastCode(mobile)
			e.clock.Add(5*time.Minute + time.Second)
			if _, err := e.svc.LoginSecondFactor(ctx, meta, r.Token, "mtan", code, ""); !errors.Is(err, auth.ErrCodeInvalid) {
				t.Fatalf("expired mTAN: %v", err)
			}
		})
		t.Run("single use", func(t *testing.T) {
			r := start()
			code := e.lastCode(mobile)
			if _, err := e.svc.LoginSecondFactor(ctx, meta, r.Token, "mtan", code, ""); err != nil {
				t.Fatal(err)
			}
			r2 := start()
			e.sms.msgs = e.sms.msgs[:len(e.sms.msgs)-1] // pretend the new SMS did not arrive
			if _, err := e.svc.LoginSecondFactor(ctx, meta, r2.Token, "mtan", code, ""); !errors.Is(err, auth.ErrCodeInvalid) {
				t.Fatalf("used mTAN accepted again: %v", err)
			}
		})
		t.Run("five wrong entries void it", func(t *testing.T) {
			e.clock.Add(time.Hour)
			r := start()
			code := e.lastCode(mobile)
			wrong := "000000"
			if code == wrong {
				wrong = "111111"
			}
			for i := 0; i < 5; i++ {
				e.svc.LoginSecondFactor(ctx, meta, r.Token, "mtan", wrong, "")
			}
			if _, err := e.svc.LoginSecondFactor(ctx, meta, r.Token, "mtan", code, ""); !errors.Is(err, auth.ErrCodeInvalid) {
				t.Fatalf("right mTAN after 5 wrong entries: %v", err)
			}
		})
		t.Run("stored hashed", func(t *testing.T) {
			e.clock.Add(time.Hour)
			start()
			code := e.lastCode(mobile)
			var n int
			e.scan(`SELECT COUNT(*) FROM auth_codes WHERE code_hash = $1 OR code_hash LIKE $2`, []any{code, "%" + code + "%"}, &n)
			if n != 0 {
				t.Fatal("mTAN stored in clear")
			}
		})
	})
}

// A real TOTP client: the code comes from the provisioning URI exactly as
// an authenticator app computes it.
func TestTOTPDeviceWithRealClient(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const pw, mobile = "Kx7#mPq2vR", "+4915112345678"
		acc := e.activeInsured("erika", pw, mobile)
		done := e.loginMTAN("erika", pw, mobile)
		sess, err := e.svc.ResolveSession(ctx, done.Token)
		if err != nil {
			t.Fatal(err)
		}

		// "Gerät hinzufügen" needs a fresh security code.
		if _, err := e.svc.AddDevice(ctx, meta, sess, "Mein Telefon"); !errors.Is(err, auth.ErrStepUpRequired) {
			t.Fatalf("AddDevice without step-up: %v", err)
		}
		if _, err := e.svc.RequestStepUpMTAN(ctx, meta, sess); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.StepUp(ctx, meta, sess, "mtan", e.lastCode(mobile)); err != nil {
			t.Fatal(err)
		}
		sess, _ = e.svc.ResolveSession(ctx, done.Token)
		enr, err := e.svc.AddDevice(ctx, meta, sess, "Mein Telefon")
		if err != nil {
			t.Fatal(err)
		}
		if len(enr.ActivationCode) != 9 || enr.ExpiresAt.Sub(e.clock.Now()) != time.Hour {
			t.Fatalf("enrollment %+v", enr)
		}

		if _, err := e.svc.ActivateDevice(ctx, meta, e.kasse.ID, "erika", "1234 5678", "482915", "482915"); !errors.Is(err, auth.ErrTokenInvalid) {
			t.Fatalf("wrong activation code: %v", err)
		}
		if _, err := e.svc.ActivateDevice(ctx, meta, e.kasse.ID, "erika", enr.ActivationCode, "48291", "48291"); err == nil || !strings.Contains(err.Error(), "6 Ziffern") {
			t.Fatalf("5-digit PIN: %v", err)
		}
		act, err := e.svc.ActivateDevice(ctx, meta, e.kasse.ID, "ERIKA@example.org", enr.ActivationCode, "482915", "482915")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(act.URI, "otpauth://totp/") || len(act.QRPNG) < 100 || string(act.QRPNG[1:4]) != "PNG" {
			t.Fatalf("activation %q, %d bytes QR", act.URI, len(act.QRPNG))
		}
		key, err := otp.NewKeyFromURL(act.URI)
		if err != nil {
			t.Fatal(err)
		}
		if key.Period() != 30 || key.Digits() != otp.DigitsSix || key.Algorithm() != otp.AlgorithmSHA1 {
			t.Fatalf("URI parameters %v %v %v", key.Period(), key.Digits(), key.Algorithm())
		}
		app := func(at time.Time) string {
			c, err := totp.GenerateCodeCustom(key.Secret(), at, totp.ValidateOpts{Period: uint(key.Period()), Digits: key.Digits(), Algorithm: key.Algorithm()})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		if err := e.svc.ConfirmDevice(ctx, meta, e.kasse.ID, "erika", enr.ActivationCode, app(e.clock.Now())); err != nil {
			t.Fatal(err)
		}
		if ev := e.events("auth.device.added"); len(ev) != 1 || ev[0].SubjectID != act.DeviceID || ev[0].ActorID != acc.ID {
			t.Fatalf("auth.device.added events %+v", ev)
		}
		list, _ := e.svc.ListDevices(ctx, sess.Principal())
		if len(list) != 1 || list[0].Name != "Mein Telefon" || list[0].StatusLabel != "Erfolgreich abgeschlossen" || list[0].AddedAt.IsZero() {
			t.Fatalf("devices %+v", list)
		}

		// Log in with the app, 40 s later (the neighbouring step is accepted).
		e.clock.Add(40 * time.Second)
		r, err := e.svc.Login(ctx, meta, e.kasse.ID, "erika", pw, "")
		if err != nil || strings.Join(r.Methods, ",") != "mtan,totp" || r.MTANSent {
			t.Fatalf("login offers %v (sent %v), %v", r.Methods, r.MTANSent, err)
		}
		code := app(e.clock.Now())
		res, err := e.svc.LoginSecondFactor(ctx, meta, r.Token, "totp", code, "")
		if err != nil || res.Stage != auth.StageDone {
			t.Fatalf("TOTP login: %+v %v", res, err)
		}
		// The same code again, still inside its 30 s window: refused.
		r2, _ := e.svc.Login(ctx, meta, e.kasse.ID, "erika", pw, "")
		if _, err := e.svc.LoginSecondFactor(ctx, meta, r2.Token, "totp", code, ""); !errors.Is(err, auth.ErrCodeInvalid) {
			t.Fatalf("replayed TOTP code: err = %v, want ErrCodeInvalid", err)
		}
		// A code of the previous step is older than the used one: refused too.
		if _, err := e.svc.LoginSecondFactor(ctx, meta, r2.Token, "totp", app(e.clock.Now().Add(-30*time.Second)), ""); !errors.Is(err, auth.ErrCodeInvalid) {
			t.Fatalf("older TOTP code after a newer one: %v", err)
		}
		// Three steps later a fresh code works.
		e.clock.Add(90 * time.Second)
		if res, err := e.svc.LoginSecondFactor(ctx, meta, r2.Token, "totp", app(e.clock.Now()), ""); err != nil || res.Stage != auth.StageDone {
			t.Fatalf("fresh code: %+v %v", res, err)
		}

		// Removing the last device needs a fresh code and falls back to mTAN.
		sess, _ = e.svc.ResolveSession(ctx, res.Token)
		if err := e.svc.RemoveDevice(ctx, meta, sess, act.DeviceID); !errors.Is(err, auth.ErrStepUpRequired) {
			t.Fatalf("remove without step-up: %v", err)
		}
		e.clock.Add(30 * time.Second)
		if err := e.svc.StepUp(ctx, meta, sess, "totp", app(e.clock.Now())); err != nil {
			t.Fatal(err)
		}
		sess, _ = e.svc.ResolveSession(ctx, res.Token)
		if err := e.svc.RemoveDevice(ctx, meta, sess, act.DeviceID); err != nil {
			t.Fatal(err)
		}
		if ev := e.events("auth.device.removed"); len(ev) != 1 || !strings.Contains(ev[0].Details, "mtan") {
			t.Fatalf("auth.device.removed %+v", ev)
		}
		r3, err := e.svc.Login(ctx, meta, e.kasse.ID, "erika", pw, "")
		if err != nil || strings.Join(r3.Methods, ",") != "mtan" || !r3.MTANSent {
			t.Fatalf("after removing the last device: %+v %v", r3, err)
		}
	})
}

func TestDeviceActivationCodeLifetime(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const pw, mobile = "Kx7#mPq2vR", "+4915112345678"
		e.activeInsured("erika", pw, mobile)
		done := e.loginMTAN("erika", pw, mobile)
		sess, _ := e.svc.ResolveSession(ctx, done.Token)
		e.svc.RequestStepUpMTAN(ctx, meta, sess)
		if err := e.svc.StepUp(ctx, meta, sess, "mtan", e.lastCode(mobile)); err != nil {
			t.Fatal(err)
		}
		sess, _ = e.svc.ResolveSession(ctx, done.Token)
		enr, err := e.svc.AddDevice(ctx, meta, sess, "")
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Add(time.Hour)
		if _, err := e.svc.ActivateDevice(ctx, meta, e.kasse.ID, "erika", enr.ActivationCode, "482915", "482915"); !errors.Is(err, auth.ErrTokenInvalid) {
			t.Fatalf("activation code after 1 hour: %v", err)
		}
		// The step-up itself is only fresh for 5 minutes.
		if _, err := e.svc.AddDevice(ctx, meta, sess, ""); !errors.Is(err, auth.ErrStepUpRequired) {
			t.Fatalf("step-up an hour old accepted: %v", err)
		}
	})
}

// A hash made with other cost parameters is replaced by one with the
// service's parameters at the next successful login, and only then.
func TestLoginRehashesOutdatedPasswordHash(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const pw, mobile = "Kx7#mPq2vR", "+4915112345678"
		acc := e.activeInsured("erika", pw, mobile)
		older := fastArgon
		older.Time++
		oldHash, err := auth.HashSecret(pw, older)
		if err != nil {
			t.Fatal(err)
		}
		e.exec(`UPDATE accounts SET password_hash = $1 WHERE id = $2`, oldHash, acc.ID)
		stored := func() string {
			var h string
			e.scan(`SELECT password_hash FROM accounts WHERE id = $1`, []any{acc.ID}, &h)
			return h
		}
		if !auth.NeedsRehash(oldHash, fastArgon) || auth.NeedsRehash(stored(), older) {
			t.Fatal("NeedsRehash does not tell the parameters apart")
		}

		// A wrong password leaves the hash alone.
		if _, err := e.svc.Login(ctx, meta, e.kasse.ID, "erika", "Falsch#123x", ""); !errors.Is(err, auth.ErrLoginFailed) {
			t.Fatalf("wrong password: %v", err)
		}
		if stored() != oldHash {
			t.Fatal("a wrong password changed the stored hash")
		}
		// The right one logs in and leaves a hash with today's parameters
		// that still verifies the same password.
		if r := e.loginMTAN("erika", pw, mobile); r.Stage != auth.StageDone {
			t.Fatalf("login: %+v", r)
		}
		h := stored()
		if h == oldHash || auth.NeedsRehash(h, fastArgon) {
			t.Fatalf("hash not renewed: %s", h)
		}
		if ok, err := auth.VerifySecret(pw, h); !ok || err != nil {
			t.Fatalf("renewed hash does not verify the password: %v %v", ok, err)
		}
		if r := e.loginMTAN("erika", pw, mobile); r.Stage != auth.StageDone || stored() != h {
			t.Fatalf("second login: %+v (hash changed again: %v)", r, stored() != h)
		}
	})
}
