package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"postbox/auth"
)

// The browser's device setup is kept in the database: a second service
// over the same store (another replica) shows the same secret and QR code
// and confirms it, but only for the session that activated the device;
// creating the secret is audited; an activation code ended by wrong codes
// ends the setup.
func TestDeviceSetupFromDatabase(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const pw, mobile = "Kx7#mPq2vR", "+4915112345678"
		acc := e.activeInsured("erika", pw, mobile)
		done := e.loginMTAN("erika", pw, mobile)
		sess, _ := e.svc.ResolveSession(ctx, done.Token)
		e.svc.RequestStepUpMTAN(ctx, meta, sess)
		if err := e.svc.StepUp(ctx, meta, sess, "mtan", e.lastCode(mobile)); err != nil {
			t.Fatal(err)
		}
		sess, _ = e.svc.ResolveSession(ctx, done.Token)
		enr, err := e.svc.AddDevice(ctx, meta, sess, "Telefon")
		if err != nil {
			t.Fatal(err)
		}
		stale := sess
		act, err := e.svc.ActivateDeviceInSession(ctx, meta, sess, "erika", enr.ActivationCode, "482915", "482915")
		if err != nil {
			t.Fatal(err)
		}
		want, err := otp.NewKeyFromURL(act.URI)
		if err != nil {
			t.Fatal(err)
		}
		sess, _ = e.svc.ResolveSession(ctx, done.Token)

		replica, err := auth.NewService(e.db.Auth(), auth.Options{Argon2: fastArgon, Key: make([]byte, 32), ClientAddrKey: make([]byte, 32), SMS: e.sms})
		if err != nil {
			t.Fatal(err)
		}
		for name, svc := range map[string]*auth.Service{"same service": e.svc, "replica": replica} {
			setup, err := svc.DeviceSetup(ctx, sess, act.DeviceID)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			got, err := otp.NewKeyFromURL(setup.URI)
			if err != nil {
				t.Fatal(err)
			}
			if setup.Secret != want.Secret() || got.Secret() != want.Secret() || got.Issuer() != want.Issuer() || got.AccountName() != "erika" ||
				setup.Name != "Telefon" || setup.Login != "erika" || !strings.HasPrefix(string(setup.QRPNG), "\x89PNG") {
				t.Errorf("%s: setup %+v differs from the activation %q", name, setup, act.URI)
			}
		}

		// Another session of the same account, and this session as it was
		// before the activation, see nothing.
		token2, _, err := e.svc.StartSession(ctx, sess.Principal(), auth.StageDone, "")
		if err != nil {
			t.Fatal(err)
		}
		other, _ := e.svc.ResolveSession(ctx, token2)
		for name, s := range map[string]auth.Session{"other session": other, "before activation": stale} {
			if _, err := replica.DeviceSetup(ctx, s, act.DeviceID); !errors.Is(err, auth.ErrNotAllowed) {
				t.Errorf("%s: DeviceSetup %v, want ErrNotAllowed", name, err)
			}
			code, _ := totp.GenerateCode(want.Secret(), e.clock.Now())
			if err := replica.ConfirmDeviceSetup(ctx, meta, s, act.DeviceID, code); !errors.Is(err, auth.ErrNotAllowed) {
				t.Errorf("%s: ConfirmDeviceSetup %v, want ErrNotAllowed", name, err)
			}
		}

		if err := replica.ConfirmDeviceSetup(ctx, meta, sess, act.DeviceID, wrongTOTP(t, want.Secret(), e)); !errors.Is(err, auth.ErrCodeInvalid) {
			t.Fatalf("wrong code: %v", err)
		}
		code, _ := totp.GenerateCode(want.Secret(), e.clock.Now())
		if err := replica.ConfirmDeviceSetup(ctx, meta, sess, act.DeviceID, code); err != nil {
			t.Fatalf("confirm on the replica: %v", err)
		}
		list, _ := e.svc.ListDevices(ctx, sess.Principal())
		if len(list) != 1 || list[0].Status != auth.DeviceActive {
			t.Fatalf("devices after confirming %+v", list)
		}
		if _, err := e.svc.DeviceSetup(ctx, sess, act.DeviceID); !errors.Is(err, auth.ErrNotAllowed) {
			t.Errorf("DeviceSetup after confirming: %v, want ErrNotAllowed", err)
		}
		var created int
		for _, ev := range e.events("auth.device.requested") {
			if ev.SubjectID == act.DeviceID && ev.ActorID == acc.ID && strings.Contains(ev.Details, `"secret_created"`) {
				created++
			}
		}
		if created != 1 {
			t.Errorf("%d audit events for the secret's creation, want 1", created)
		}

		// Too many wrong codes end the second device's setup.
		enr2, err := e.svc.AddDevice(ctx, meta, sess, "Tablet")
		if err != nil {
			t.Fatal(err)
		}
		act2, err := e.svc.ActivateDeviceInSession(ctx, meta, sess, "erika", enr2.ActivationCode, "135790", "135790")
		if err != nil {
			t.Fatal(err)
		}
		sess, _ = e.svc.ResolveSession(ctx, done.Token)
		k2, _ := otp.NewKeyFromURL(act2.URI)
		e.clock.Add(16 * time.Minute) // past the code rate limit's window, within the code's hour
		for i := 0; i < auth.MTANMaxAttempts; i++ {
			if err := replica.ConfirmDeviceSetup(ctx, meta, sess, act2.DeviceID, wrongTOTP(t, k2.Secret(), e)); !errors.Is(err, auth.ErrCodeInvalid) {
				t.Fatalf("wrong code %d: %v", i+1, err)
			}
		}
		if _, err := replica.DeviceSetup(ctx, sess, act2.DeviceID); !errors.Is(err, auth.ErrTokenInvalid) {
			t.Errorf("DeviceSetup after %d wrong codes: %v, want ErrTokenInvalid", auth.MTANMaxAttempts, err)
		}
		code2, _ := totp.GenerateCode(k2.Secret(), e.clock.Now())
		if err := replica.ConfirmDeviceSetup(ctx, meta, sess, act2.DeviceID, code2); !errors.Is(err, auth.ErrTokenInvalid) {
			t.Errorf("right code after the setup ended: %v, want ErrTokenInvalid", err)
		}
	})
}

// wrongTOTP is a 6-digit code no accepted time step of secret gives now.
func wrongTOTP(t *testing.T, secret string, e *env) string {
	t.Helper()
	valid := map[string]bool{}
	for _, d := range []time.Duration{-30 * time.Second, 0, 30 * time.Second} {
		c, err := totp.GenerateCode(secret, e.clock.Now().Add(d))
		if err != nil {
			t.Fatal(err)
		}
		valid[c] = true
	}
	for _, c := range []string{"000000", "111111", "222222", "333333"} {
		if !valid[c] {
			return c
		}
	}
	t.Fatal("no wrong code")
	return ""
}
