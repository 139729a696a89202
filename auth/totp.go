package auth

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"postbox/audit"
	"postbox/kasse"
)

// Authenticator devices: TOTP per RFC 6238 with the parameters every common
// authenticator app understands (SHA-1, 6 digits, 30 s), accepting the
// neighbouring time step on either side for clock drift. A code can be used
// once: the device remembers the last time step used.

const (
	totpPeriod = 30
	totpDigits = otp.DigitsSix
)

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Skew: 0, Digits: totpDigits, Algorithm: otp.AlgorithmSHA1}

// DeviceEnrollment is what "Gerät hinzufügen" shows: the activation code
// (valid Settings.DeviceActivationLifetime, seed 000: 1 hour) and the login
// to enter in the app together with it.
type DeviceEnrollment struct {
	DeviceID       string
	ActivationCode string // "2748 0323"
	Login          string // username (or e-mail) to enter in the app
	ExpiresAt      time.Time
}

// DeviceActivation is the app's side of the registration: the secret as an
// otpauth:// URI and as a QR code to scan.
type DeviceActivation struct {
	DeviceID string
	URI      string
	QRPNG    []byte
}

// DeviceInfo is one row of the device list.
type DeviceInfo struct {
	ID          string
	Name        string
	Status      DeviceStatus
	StatusLabel string
	AddedAt     time.Time
	LastUsedAt  time.Time
}

// ErrLastFactor: the last device cannot go when no mTAN number is confirmed.
var ErrLastFactor = errors.New("last second factor")

func (s *Service) seal(tenantID, deviceID, secret string) (string, error) {
	block, err := aes.NewCipher(s.sealKey)
	if err != nil {
		return "", err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := gcm.Seal(nonce, nonce, []byte(secret), []byte(tenantID+"/"+deviceID))
	return base64.RawStdEncoding.EncodeToString(out), nil
}

func (s *Service) open(tenantID, deviceID, sealed string) (string, error) {
	raw, err := base64.RawStdEncoding.DecodeString(sealed)
	if err != nil {
		return "", fmt.Errorf("sealed secret: %w", err)
	}
	block, err := aes.NewCipher(s.sealKey)
	if err != nil {
		return "", err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return "", err
	}
	if len(raw) < gcm.NonceSize() {
		return "", errors.New("sealed secret too short")
	}
	plain, err := gcm.Open(nil, raw[:gcm.NonceSize()], raw[gcm.NonceSize():], []byte(tenantID+"/"+deviceID))
	if err != nil {
		return "", fmt.Errorf("open sealed secret: %w", err)
	}
	return string(plain), nil
}

// verifyTOTP checks code against the account's active devices and uses its
// time step, so the same code cannot be used again.
func (s *Service) verifyTOTP(ctx context.Context, tx Tx, a Account, code string) (bool, error) {
	code = normalizeCode(code)
	if len(code) != 6 {
		return false, nil
	}
	devices, err := tx.DevicesOfAccount(ctx, a.TenantID, a.ID)
	if err != nil {
		return false, err
	}
	now := tx.Now()
	for _, d := range devices {
		if d.Status != DeviceActive {
			continue
		}
		ok, err := s.checkDeviceCode(ctx, tx, d, code, now)
		if ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}

func (s *Service) checkDeviceCode(ctx context.Context, tx Tx, d Device, code string, now time.Time) (bool, error) {
	secret, err := s.open(d.TenantID, d.ID, d.SecretSealed)
	if err != nil {
		return false, err
	}
	cur := now.Unix() / totpPeriod
	for _, step := range []int64{cur - 1, cur, cur + 1} {
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*totpPeriod, 0), totpOpts)
		if err != nil {
			return false, err
		}
		if !equalHash(want, code) {
			continue
		}
		// Compare-and-set: a step at or before the last used one is a replay.
		return tx.UseDeviceStep(ctx, d.TenantID, d.ID, step, now)
	}
	return false, nil
}

// enrollDevice creates a requested device and its activation code.
func (s *Service) enrollDevice(ctx context.Context, tx Tx, a Account, name string, life time.Duration) (DeviceEnrollment, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		name = "Authenticator-App"
	}
	if len([]rune(name)) > 60 {
		return DeviceEnrollment{}, FieldErrors{{Field: "name", Message: "Der Gerätename darf höchstens 60 Zeichen lang sein."}}
	}
	now := tx.Now()
	d := Device{ID: newID(), TenantID: a.TenantID, AccountID: a.ID, Name: name, Status: DeviceRequested, CreatedAt: now}
	if err := tx.CreateDevice(ctx, d); err != nil {
		return DeviceEnrollment{}, err
	}
	code, err := randomDigits(8)
	if err != nil {
		return DeviceEnrollment{}, err
	}
	tk := Token{ID: newID(), TenantID: a.TenantID, AccountID: a.ID, Purpose: PurposeDeviceActivation,
		Hash: s.accountTokenHash(PurposeDeviceActivation, a.ID, code), RefID: d.ID, CreatedAt: now, ExpiresAt: now.Add(life)}
	if err := tx.CreateToken(ctx, tk); err != nil {
		return DeviceEnrollment{}, err
	}
	return DeviceEnrollment{DeviceID: d.ID, ActivationCode: code[:4] + " " + code[4:], Login: a.Username, ExpiresAt: tk.ExpiresAt}, nil
}

// AddDevice is "Gerät hinzufügen" (seed 000): it needs a fresh security
// code in this session and returns an activation code valid for the
// Kasse's DeviceActivationLifetime.
func (s *Service) AddDevice(ctx context.Context, m Meta, sess Session, name string) (DeviceEnrollment, error) {
	var out DeviceEnrollment
	err := s.inTx(ctx, func(tx Tx) error {
		a, k, err := s.sessionAccount(ctx, tx, sess)
		if err != nil {
			return err
		}
		if !s.stepUpFresh(sess, tx.Now()) {
			return ErrStepUpRequired
		}
		if out, err = s.enrollDevice(ctx, tx, a, name, k.Settings.DeviceActivationLifetime); err != nil {
			return err
		}
		return s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: a.ID, ActorRole: string(a.Role),
			Type: "auth.device.requested", SubjectType: "device", SubjectID: out.DeviceID})
	})
	return out, err
}

// findActivation resolves (login, activation code) to the account, token
// and device. login is the username or the e-mail address (seed 001).
func (s *Service) findActivation(ctx context.Context, tx Tx, tenantID, login, code string) (Account, Token, Device, error) {
	var candidates []Account
	if strings.Contains(login, "@") {
		list, err := tx.AccountsByEmail(ctx, tenantID, strings.TrimSpace(login))
		if err != nil {
			return Account{}, Token{}, Device{}, err
		}
		candidates = list
	} else if a, err := tx.AccountByLogin(ctx, tenantID, strings.TrimSpace(login)); err == nil {
		candidates = []Account{a}
	} else if !errors.Is(err, ErrAccountNotFound) {
		return Account{}, Token{}, Device{}, err
	}
	now := tx.Now()
	for _, a := range candidates {
		tk, err := tx.TokenByHash(ctx, PurposeDeviceActivation, s.accountTokenHash(PurposeDeviceActivation, a.ID, code))
		if errors.Is(err, ErrTokenInvalid) {
			continue
		}
		if err != nil {
			return Account{}, Token{}, Device{}, err
		}
		if tk.TenantID != tenantID || !tk.Usable(now) || a.Status == StatusEnded || a.Status == StatusLocked {
			return Account{}, Token{}, Device{}, ErrTokenInvalid
		}
		devices, err := tx.DevicesOfAccount(ctx, a.TenantID, a.ID)
		if err != nil {
			return Account{}, Token{}, Device{}, err
		}
		for _, d := range devices {
			if d.ID == tk.RefID && d.Status == DeviceRequested {
				return a, tk, d, nil
			}
		}
		return Account{}, Token{}, Device{}, ErrTokenInvalid
	}
	return Account{}, Token{}, Device{}, ErrTokenInvalid
}

// ActivateDevice is the app's registration step (seed 001: username or
// e-mail, activation code, then a self-chosen 6-digit PIN): it returns the
// TOTP secret as otpauth URI and QR code. The device stays "beantragt"
// until ConfirmDevice sees its first code.
func (s *Service) ActivateDevice(ctx context.Context, m Meta, tenantID, login, activationCode, pin, pinRepeat string) (DeviceActivation, error) {
	return s.activateDevice(ctx, m, tenantID, login, activationCode, pin, pinRepeat, nil)
}

// ActivateDeviceInSession is ActivateDevice from the browser: the device
// must belong to the session's account, and the session remembers it, so
// DeviceSetup and ConfirmDeviceSetup can show and finish the setup on any
// replica, for this session only.
func (s *Service) ActivateDeviceInSession(ctx context.Context, m Meta, sess Session, login, activationCode, pin, pinRepeat string) (DeviceActivation, error) {
	return s.activateDevice(ctx, m, sess.TenantID, login, activationCode, pin, pinRepeat, func(tx Tx, a Account, d Device) error {
		if _, _, err := s.sessionAccount(ctx, tx, sess); err != nil {
			return err
		}
		if a.ID != sess.AccountID {
			return ErrTokenInvalid // another account's code reads like a wrong one
		}
		cur, err := tx.SessionByTokenHash(ctx, sess.TokenHash)
		if err != nil || cur.ID != sess.ID {
			return ErrNoSession
		}
		b, err := json.Marshal(setupBinding{DeviceSetup: d.ID})
		if err != nil {
			return err
		}
		cur.Data = string(b)
		return tx.UpdateSession(ctx, cur)
	})
}

// setupBinding is the Data of a logged-in session while it sets up a
// device; only the session named the device in it may see the secret.
type setupBinding struct {
	DeviceSetup string `json:"device_setup"`
}

func (s *Service) activateDevice(ctx context.Context, m Meta, tenantID, login, activationCode, pin, pinRepeat string, bind func(Tx, Account, Device) error) (DeviceActivation, error) {
	if err := checkAppPIN(pin, pinRepeat); err != nil {
		return DeviceActivation{}, err
	}
	if err := s.hit(ctx, "code-acct", s.opts.RateLimits.CodePerAccount, tenantID, strings.ToLower(login)); err != nil {
		return DeviceActivation{}, err
	}
	pinHash, err := HashSecret(pin, s.opts.Argon2)
	if err != nil {
		return DeviceActivation{}, err
	}
	var out DeviceActivation
	err = s.inTx(ctx, func(tx Tx) error {
		a, _, d, err := s.findActivation(ctx, tx, tenantID, login, activationCode)
		if err != nil {
			return err
		}
		if bind != nil {
			if err := bind(tx, a, d); err != nil {
				return err
			}
		}
		k, err := s.store.Kasse(ctx, tenantID)
		if err != nil {
			return err
		}
		key, err := totp.Generate(totp.GenerateOpts{Issuer: s.opts.Issuer + " " + k.Name, AccountName: a.Username,
			Period: totpPeriod, Digits: totpDigits, Algorithm: otp.AlgorithmSHA1, SecretSize: 20})
		if err != nil {
			return fmt.Errorf("totp key: %w", err)
		}
		if d.SecretSealed, err = s.seal(d.TenantID, d.ID, key.Secret()); err != nil {
			return err
		}
		d.PINHash = pinHash
		if err := tx.UpdateDevice(ctx, d); err != nil {
			return err
		}
		qr, err := qrPNG(key)
		if err != nil {
			return err
		}
		out = DeviceActivation{DeviceID: d.ID, URI: key.URL(), QRPNG: qr}
		// The secret now exists: a new activation replaces an earlier one,
		// so each creation is on the record.
		return s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: a.ID, ActorRole: string(a.Role),
			Type: "auth.device.requested", SubjectType: "device", SubjectID: d.ID, Details: `{"step":"secret_created"}`})
	})
	return out, err
}

func qrPNG(key *otp.Key) ([]byte, error) {
	img, err := key.Image(256, 256)
	if err != nil {
		return nil, fmt.Errorf("qr code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// DeviceSetup is a device activated in this session but not yet confirmed:
// what "Gerät einrichten" shows.
type DeviceSetup struct {
	DeviceID string
	Name     string
	Login    string
	Secret   string // base32, as typed into the app
	URI      string
	QRPNG    []byte
}

// pendingSetup finds deviceID as a setup of sess: the session's own
// account, the device "beantragt" with its secret created, the session
// bound to it by ActivateDeviceInSession. ErrTokenInvalid when its
// activation code expired or was revoked after too many wrong codes;
// anything else is ErrNotAllowed (404).
func (s *Service) pendingSetup(ctx context.Context, tx Tx, sess Session, deviceID string) (Account, kasse.Kasse, Token, Device, error) {
	a, k, err := s.sessionAccount(ctx, tx, sess)
	if err != nil {
		return Account{}, kasse.Kasse{}, Token{}, Device{}, err
	}
	var b setupBinding
	if sess.Data == "" || json.Unmarshal([]byte(sess.Data), &b) != nil || b.DeviceSetup == "" ||
		subtle.ConstantTimeCompare([]byte(b.DeviceSetup), []byte(deviceID)) != 1 {
		return Account{}, kasse.Kasse{}, Token{}, Device{}, ErrNotAllowed
	}
	devices, err := tx.DevicesOfAccount(ctx, a.TenantID, a.ID)
	if err != nil {
		return Account{}, kasse.Kasse{}, Token{}, Device{}, err
	}
	for _, d := range devices {
		if d.ID != deviceID || d.Status != DeviceRequested || d.SecretSealed == "" {
			continue
		}
		tk, err := tx.TokenOfRef(ctx, a.TenantID, a.ID, PurposeDeviceActivation, d.ID)
		if errors.Is(err, ErrTokenInvalid) {
			return Account{}, kasse.Kasse{}, Token{}, Device{}, ErrNotAllowed
		}
		if err != nil {
			return Account{}, kasse.Kasse{}, Token{}, Device{}, err
		}
		if !tk.Usable(tx.Now()) {
			return Account{}, kasse.Kasse{}, Token{}, Device{}, ErrTokenInvalid
		}
		return a, k, tk, d, nil
	}
	return Account{}, kasse.Kasse{}, Token{}, Device{}, ErrNotAllowed
}

// DeviceSetup rebuilds the otpauth URI and QR code of the session's
// pending setup from the sealed secret in the database.
func (s *Service) DeviceSetup(ctx context.Context, sess Session, deviceID string) (DeviceSetup, error) {
	var out DeviceSetup
	err := s.inTx(ctx, func(tx Tx) error {
		a, k, _, d, err := s.pendingSetup(ctx, tx, sess, deviceID)
		if err != nil {
			return err
		}
		secret, err := s.open(d.TenantID, d.ID, d.SecretSealed)
		if err != nil {
			return err
		}
		raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
		if err != nil {
			return fmt.Errorf("device secret: %w", err)
		}
		key, err := totp.Generate(totp.GenerateOpts{Issuer: s.opts.Issuer + " " + k.Name, AccountName: a.Username,
			Period: totpPeriod, Digits: totpDigits, Algorithm: otp.AlgorithmSHA1, Secret: raw})
		if err != nil {
			return fmt.Errorf("totp key: %w", err)
		}
		qr, err := qrPNG(key)
		if err != nil {
			return err
		}
		out = DeviceSetup{DeviceID: d.ID, Name: d.Name, Login: a.Username, Secret: key.Secret(), URI: key.URL(), QRPNG: qr}
		return nil
	})
	return out, err
}

// ConfirmDeviceSetup is ConfirmDevice for the session's pending setup: the
// first code of the app finishes it. A wrong code counts against the
// activation code (ErrCodeInvalid).
func (s *Service) ConfirmDeviceSetup(ctx context.Context, m Meta, sess Session, deviceID, code string) error {
	if err := s.hit(ctx, "code-acct", s.opts.RateLimits.CodePerAccount, sess.TenantID, sess.AccountID); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx Tx) error {
		a, _, tk, d, err := s.pendingSetup(ctx, tx, sess, deviceID)
		if err != nil {
			return err
		}
		return s.confirmDevice(ctx, tx, m, a, tk, d, code)
	})
}

func checkAppPIN(pin, repeat string) error {
	var errs FieldErrors
	if len(pin) != 6 || strings.Trim(pin, "0123456789") != "" {
		errs = append(errs, &FieldError{Field: "pin", Message: "Der PIN-Code muss aus genau 6 Ziffern bestehen (keine Buchstaben oder Sonderzeichen)."})
	} else if pin != repeat {
		errs = append(errs, &FieldError{Field: "pin_repeat", Message: "Die beiden PIN-Eingaben stimmen nicht überein."})
	}
	return errs.asErr()
}

// ConfirmDevice finishes a registration with the first code the app shows:
// the device becomes "Erfolgreich abgeschlossen" and an invited provider
// user becomes active.
func (s *Service) ConfirmDevice(ctx context.Context, m Meta, tenantID, login, activationCode, code string) error {
	if err := s.hit(ctx, "code-acct", s.opts.RateLimits.CodePerAccount, tenantID, strings.ToLower(login)); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx Tx) error {
		a, tk, d, err := s.findActivation(ctx, tx, tenantID, login, activationCode)
		if err != nil {
			return err
		}
		if d.SecretSealed == "" {
			return ErrTokenInvalid
		}
		return s.confirmDevice(ctx, tx, m, a, tk, d, code)
	})
}

// confirmDevice checks the app's first code against the pending device d
// and, if it fits, makes it active and uses the activation token.
func (s *Service) confirmDevice(ctx context.Context, tx Tx, m Meta, a Account, tk Token, d Device, code string) error {
	now := tx.Now()
	ok, err := s.checkDeviceCode(ctx, tx, d, normalizeCode(code), now)
	if err != nil {
		return err
	}
	if !ok {
		tk.Attempts++
		if tk.Attempts >= MTANMaxAttempts {
			tk.RevokedAt = now
		}
		if err := tx.UpdateToken(ctx, tk); err != nil {
			return err
		}
		return errCommit{ErrCodeInvalid}
	}
	d.Status, d.ActivatedAt, d.LastUsedAt = DeviceActive, now, now
	if err := tx.UpdateDevice(ctx, d); err != nil {
		return err
	}
	tk.UsedAt = now
	if err := tx.UpdateToken(ctx, tk); err != nil {
		return err
	}
	if a.Status == StatusInvited && a.PasswordHash != "" {
		a.Status = StatusActive
		if err := tx.UpdateAccount(ctx, a); err != nil {
			return err
		}
		if err := tx.RevokeTokens(ctx, a.TenantID, a.ID, PurposeInvitation, now); err != nil {
			return err
		}
	}
	return s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: a.ID, ActorRole: string(a.Role),
		Type: "auth.device.added", SubjectType: "device", SubjectID: d.ID})
}

// ListDevices returns the devices of the session's account (not removed).
func (s *Service) ListDevices(ctx context.Context, p Principal) ([]DeviceInfo, error) {
	var out []DeviceInfo
	err := s.inTx(ctx, func(tx Tx) error {
		list, err := tx.DevicesOfAccount(ctx, p.TenantID, p.AccountID)
		if err != nil {
			return err
		}
		for _, d := range list {
			if d.Status == DeviceRemoved {
				continue
			}
			out = append(out, DeviceInfo{ID: d.ID, Name: d.Name, Status: d.Status, StatusLabel: d.Status.German(), AddedAt: d.CreatedAt, LastUsedAt: d.LastUsedAt})
		}
		return nil
	})
	return out, err
}

// RemoveDevice removes a device of the session's account (fresh security
// code needed). Without devices the login falls back to mTAN; the last
// device of an account without a confirmed mobile number cannot go.
func (s *Service) RemoveDevice(ctx context.Context, m Meta, sess Session, deviceID string) error {
	return s.inTx(ctx, func(tx Tx) error {
		a, _, err := s.sessionAccount(ctx, tx, sess)
		if err != nil {
			return err
		}
		if !s.stepUpFresh(sess, tx.Now()) {
			return ErrStepUpRequired
		}
		list, err := tx.DevicesOfAccount(ctx, a.TenantID, a.ID)
		if err != nil {
			return err
		}
		var target *Device
		active := 0
		for i := range list {
			if list[i].Status == DeviceActive {
				active++
			}
			if list[i].ID == deviceID && list[i].Status != DeviceRemoved {
				target = &list[i]
			}
		}
		if target == nil {
			return ErrNotAllowed // another account's or unknown device: 404
		}
		last := target.Status == DeviceActive && active == 1
		if last && (a.Mobile == "" || a.MobileConfirmedAt.IsZero()) {
			return ErrLastFactor
		}
		now := tx.Now()
		target.Status, target.RemovedAt = DeviceRemoved, now
		if err := tx.UpdateDevice(ctx, *target); err != nil {
			return err
		}
		if err := tx.RevokeTokens(ctx, a.TenantID, a.ID, PurposeDeviceActivation, now); err != nil {
			return err
		}
		details := `{}`
		if last {
			details = `{"fallback":"mtan"}`
		}
		return s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: a.ID, ActorRole: string(a.Role),
			Type: "auth.device.removed", SubjectType: "device", SubjectID: target.ID, Details: details})
	})
}
