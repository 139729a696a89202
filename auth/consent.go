package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"postbox/audit"
)

// ConsentVersion names the consent text below; a new text gets a new
// version and everyone is asked again at their next login.
const ConsentVersion = "2025-01"

// ConsentText is the consent to data processing asked at a provider user's
// first login (seed 001).
const ConsentText = `Einwilligung in die Datenverarbeitung

Für einen erfolgreichen Login und für die Nutzung des Portals muss eine Einwilligung in die Verarbeitung Ihrer personenbezogenen Daten erteilt werden. Rechtsgrundlage für die Verarbeitung Ihrer Daten ist Art. 6 Abs. 1 Satz 1 lit. a DSGVO. Sie können Ihre Einwilligung ohne nachteilige Folgen jederzeit mit Wirkung für die Zukunft über Ihre Profilverwaltung widerrufen.

Das Portal verarbeitet folgende Daten:
- Profildaten
- E-Mail-Adresse
- Rollen

Weiterführende Hinweise finden Sie in den Datenschutzrechten.`

// ConsentTextHash identifies the exact text that was shown.
func ConsentTextHash() string {
	sum := sha256.Sum256([]byte(ConsentText))
	return hex.EncodeToString(sum[:])
}

// needsConsent: provider accounts must consent to the current text.
func needsConsent(a Account) bool { return a.IsProvider() && a.ConsentVersion != ConsentVersion }

func (s *Service) giveConsent(ctx context.Context, tx Tx, m Meta, a *Account, version string) error {
	if version != ConsentVersion {
		return FieldErrors{{Field: "consent_version", Message: "Der Einwilligungstext wurde inzwischen geändert. Bitte lesen Sie ihn erneut und stimmen Sie zu."}}
	}
	now := tx.Now()
	if err := tx.CreateConsent(ctx, Consent{ID: newID(), TenantID: a.TenantID, AccountID: a.ID, TextVersion: version, TextHash: ConsentTextHash(), GivenAt: now}); err != nil {
		return err
	}
	a.ConsentVersion, a.ConsentAt = version, now
	if err := tx.UpdateAccount(ctx, *a); err != nil {
		return err
	}
	return s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: a.ID, ActorRole: string(a.Role),
		Type: "auth.consent.given", SubjectType: "account", SubjectID: a.ID, Details: fmt.Sprintf(`{"version":%q}`, version)})
}

// RevokeConsent withdraws the consent (seed 001: "jederzeit mit Wirkung für
// die Zukunft"). Access ends at once: every session of the account ends and
// the next login asks for consent again.
func (s *Service) RevokeConsent(ctx context.Context, m Meta, p Principal) error {
	return s.inTx(ctx, func(tx Tx) error {
		a, err := tx.AccountByID(ctx, p.TenantID, p.AccountID)
		if err != nil {
			return err
		}
		now := tx.Now()
		if _, err := tx.RevokeConsents(ctx, a.TenantID, a.ID, now); err != nil {
			return err
		}
		a.ConsentVersion, a.ConsentAt = "", now
		if err := tx.UpdateAccount(ctx, a); err != nil {
			return err
		}
		n, err := tx.DeleteAccountSessions(ctx, a.TenantID, a.ID, "")
		if err != nil {
			return err
		}
		if err := s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: a.ID, ActorRole: string(a.Role),
			Type: "auth.consent.revoked", SubjectType: "account", SubjectID: a.ID}); err != nil {
			return err
		}
		return s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: a.ID, ActorRole: string(a.Role),
			Type: "auth.session.revoked", SubjectType: "account", SubjectID: a.ID, Details: fmt.Sprintf(`{"sessions":%d,"reason":"consent_revoked"}`, n)})
	})
}
