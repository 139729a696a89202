package auth

import (
	"context"
	"fmt"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"postbox/audit"
)

// DemoLogin is what the demo prints for an account besides its password.
type DemoLogin struct {
	OTPAuthURI string // add to an authenticator app (or compute codes from it)
	Mobile     string // mTAN number, "" for none; the SMS land in DATA_DIR/sms
}

// PrepareDemoAccount makes a seeded account ready to log in: activated, a
// security question set, consent not yet given (so providers see the
// consent step), a fresh authenticator device replacing the previous one,
// and for mobile != "" a confirmed mTAN number. Only the demo uses it.
func (s *Service) PrepareDemoAccount(ctx context.Context, tenantID, accountID, mobile, orgID string) (DemoLogin, error) {
	var out DemoLogin
	err := s.inTx(ctx, func(tx Tx) error {
		a, err := tx.AccountByID(ctx, tenantID, accountID)
		if err != nil {
			return err
		}
		k, err := s.store.Kasse(ctx, tenantID)
		if err != nil {
			return err
		}
		now := tx.Now()
		if a.ActivatedAt.IsZero() {
			a.ActivatedAt = now
		}
		if a.SecurityQuestion == "" {
			a.SecurityQuestion = SecurityQuestions[0]
			if a.SecurityAnswerHash, err = HashSecret("bello", s.opts.Argon2); err != nil {
				return err
			}
		}
		if mobile != "" {
			a.Mobile, a.MobileConfirmedAt = mobile, now
		}
		if orgID != "" {
			a.OrgID = orgID
		}
		a.FailedLogins = 0
		if a.Status == StatusLocked {
			a.Status, a.LockReason = StatusActive, ""
		}
		if err := tx.UpdateAccount(ctx, a); err != nil {
			return err
		}
		devices, err := tx.DevicesOfAccount(ctx, a.TenantID, a.ID)
		if err != nil {
			return err
		}
		for _, d := range devices {
			if d.Status != DeviceRemoved {
				d.Status, d.RemovedAt = DeviceRemoved, now
				if err := tx.UpdateDevice(ctx, d); err != nil {
					return err
				}
			}
		}
		key, err := totp.Generate(totp.GenerateOpts{Issuer: s.opts.Issuer + " " + k.Name, AccountName: a.Username,
			Period: totpPeriod, Digits: totpDigits, Algorithm: otp.AlgorithmSHA1, SecretSize: 20})
		if err != nil {
			return fmt.Errorf("totp key: %w", err)
		}
		d := Device{ID: newID(), TenantID: a.TenantID, AccountID: a.ID, Name: "Demo-Authenticator", Status: DeviceActive,
			CreatedAt: now, ActivatedAt: now}
		if d.SecretSealed, err = s.seal(d.TenantID, d.ID, key.Secret()); err != nil {
			return err
		}
		if err := tx.CreateDevice(ctx, d); err != nil {
			return err
		}
		out = DemoLogin{OTPAuthURI: key.URL(), Mobile: a.Mobile}
		return s.record(ctx, tx, Meta{}, audit.Event{TenantID: a.TenantID, ActorRole: "system", Type: "auth.device.added",
			SubjectType: "device", SubjectID: d.ID, Details: `{"reason":"demo"}`})
	})
	return out, err
}
