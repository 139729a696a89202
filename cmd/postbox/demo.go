package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"

	"github.com/google/uuid"

	"postbox/audit"
	"postbox/auth"
	"postbox/intake"
	"postbox/kasse"
	"postbox/storage/sqldb"
)

const demoKasseID = "demo"

// demoNewcomerKVNR (without its check digit) is the demo person who has no
// account yet: the registration, the Freischaltcode letter and the first
// login can be tried with it.
const demoNewcomerKVNR = "D98765432"

type demoLogin struct {
	role     string // German, as printed
	username string
	password string
	second   auth.DemoLogin // second factor (prepareDemoLogins)
}

type demoData struct {
	kasse     kasse.Kasse
	person    kasse.Person
	newcomer  kasse.Person // insured, no account yet: for trying the registration
	logins    []demoLogin
	pin       string
	pinExpiry time.Time
}

// seedDemo creates the demo Kasse on first start and, on every start, sets
// fresh random passwords and issues a fresh Einmal-PIN, so what it prints
// always works and nothing guessable is ever shipped.
func seedDemo(ctx context.Context, a *app) (*demoData, error) {
	d := &demoData{}
	// Look before creating: on PostgreSQL a failed INSERT aborts the whole
	// transaction, so "create, ignore ErrExists" would not work there.
	_, kerr := a.db.Kasse(ctx, demoKasseID)
	_, perr := a.db.PersonByKVNR(ctx, demoKasseID, kasse.CompleteKVNR("D12345678"))
	_, nerr := a.db.PersonByKVNR(ctx, demoKasseID, kasse.CompleteKVNR(demoNewcomerKVNR))
	err := a.db.InTx(ctx, func(tx *sqldb.Tx) error {
		if errors.Is(kerr, kasse.ErrNotFound) {
			k := kasse.Kasse{ID: demoKasseID, Name: "Demo-Krankenkasse", PortalURL: a.cfg.BaseURL, Settings: kasse.DefaultSettings()}
			if err := tx.CreateKasse(ctx, k); err != nil {
				return err
			}
			if _, err := tx.RecordEvent(ctx, audit.Event{TenantID: k.ID, ActorRole: "system", Type: "kasse.created", SubjectType: "kasse", SubjectID: k.ID}); err != nil {
				return err
			}
		} else if kerr != nil {
			return kerr
		}
		if errors.Is(perr, kasse.ErrNotFound) {
			p := kasse.Person{
				ID: uuid.NewString(), TenantID: demoKasseID, KVNR: kasse.CompleteKVNR("D12345678"),
				GivenName: "Erika", FamilyName: "Mustermann", Street: "Musterstraße 1", PostalCode: "12345", City: "Musterstadt",
				BirthDate: "1980-04-01", EGKValidUntil: tx.Now().AddDate(3, 0, 0), Email: "erika.mustermann@example.org", Delivery: kasse.DeliveryOnline,
			}
			if err := tx.CreatePerson(ctx, p); err != nil {
				return err
			}
		} else if perr != nil {
			return perr
		}
		if errors.Is(nerr, kasse.ErrNotFound) {
			return tx.CreatePerson(ctx, kasse.Person{
				ID: uuid.NewString(), TenantID: demoKasseID, KVNR: kasse.CompleteKVNR(demoNewcomerKVNR),
				GivenName: "Max", FamilyName: "Mustermann", Street: "Musterstraße 1", PostalCode: "12345", City: "Musterstadt",
				BirthDate: "1978-09-12", EGKValidUntil: tx.Now().AddDate(3, 0, 0), Email: "max.mustermann@example.org", Delivery: kasse.DeliveryOnline,
			})
		}
		return nerr
	})
	if err != nil {
		return nil, err
	}
	if d.kasse, err = a.db.Kasse(ctx, demoKasseID); err != nil {
		return nil, err
	}
	if d.person, err = a.db.PersonByKVNR(ctx, demoKasseID, kasse.CompleteKVNR("D12345678")); err != nil {
		return nil, err
	}
	if d.newcomer, err = a.db.PersonByKVNR(ctx, demoKasseID, kasse.CompleteKVNR(demoNewcomerKVNR)); err != nil {
		return nil, err
	}
	accounts := []struct {
		role     auth.Role
		german   string
		username string
		name     string
	}{
		{auth.RoleInsured, "Versicherte", "erika", "Erika Mustermann"},
		{auth.RoleCaseworker, "Sachbearbeitung", "sachb", "Sam Sachbearbeiter"},
		{auth.RoleTeamLead, "Teamleitung", "leitung", "Tara Teamleitung"},
		{auth.RoleAuditor, "Prüfung (Audit)", "pruefer", "Paula Prüferin"},
		{auth.RoleProviderAdmin, "Leistungserbringer-Admin", "lebadmin", "Bernd Apoll"},
	}
	for _, acc := range accounts {
		pw, err := demoPassword()
		if err != nil {
			return nil, err
		}
		hash, err := auth.HashSecret(pw, auth.DefaultArgon2)
		if err != nil {
			return nil, err
		}
		err = a.db.InTx(ctx, func(tx *sqldb.Tx) error {
			existing, err := a.db.AccountByUsername(ctx, demoKasseID, acc.username)
			evType := "auth.password.reset"
			switch {
			case err == nil:
				if err := tx.SetPasswordHash(ctx, demoKasseID, existing.ID, hash); err != nil {
					return err
				}
			case errors.Is(err, auth.ErrAccountNotFound):
				existing = auth.Account{ID: uuid.NewString(), TenantID: demoKasseID, Role: acc.role, Username: acc.username,
					DisplayName: acc.name, PasswordHash: hash, Status: auth.StatusActive}
				if acc.role == auth.RoleInsured {
					existing.PersonID, existing.Email = d.person.ID, d.person.Email
				}
				if err := tx.CreateAccount(ctx, existing); err != nil {
					return err
				}
				evType = "auth.account.created"
			default:
				return err
			}
			_, err = tx.RecordEvent(ctx, audit.Event{TenantID: demoKasseID, ActorRole: "system", Type: evType,
				SubjectType: "account", SubjectID: existing.ID, Details: `{"reason":"demo"}`})
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("demo account %s: %w", acc.username, err)
		}
		d.logins = append(d.logins, demoLogin{role: acc.german, username: acc.username, password: pw})
	}

	if err := prepareDemoLogins(ctx, a, d); err != nil {
		return nil, err
	}
	if err := seedDemoTeams(ctx, a, "sachb", "leitung"); err != nil {
		return nil, err
	}

	pin, err := intake.NewPIN()
	if err != nil {
		return nil, err
	}
	err = a.db.InTx(ctx, func(tx *sqldb.Tx) error {
		p := intake.EinmalPIN{ID: uuid.NewString(), TenantID: demoKasseID, PersonID: d.person.ID,
			Hash: intake.NewPINHasher(a.keys.pin).Hash(demoKasseID, pin), RequestText: "Bitte senden Sie uns Ihre Arbeitsunfähigkeitsbescheinigung.",
			ExpiresAt: tx.Now().Add(d.kasse.Settings.PINLifetime)}
		if err := tx.CreatePIN(ctx, p); err != nil {
			return err
		}
		d.pinExpiry = p.ExpiresAt
		_, err := tx.RecordEvent(ctx, audit.Event{TenantID: demoKasseID, ActorRole: "system", Type: "intake.pin.issued",
			SubjectType: "person", SubjectID: d.person.ID, Details: `{"reason":"demo"}`})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("demo pin: %w", err)
	}
	d.pin = pin
	return d, nil
}

// demoPassword follows the password rules of seed 004: 8-40 characters,
// letters, a digit and a special character from the allowed set, not
// starting with ? or !.
func demoPassword() (string, error) {
	const letters = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
	const digits = "23456789"
	pick := func(set string) (byte, error) {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(set))))
		if err != nil {
			return 0, err
		}
		return set[n.Int64()], nil
	}
	var out []byte
	for _, set := range []string{letters, letters, letters, letters, letters, "#", digits, letters, letters, letters, letters, digits} {
		c, err := pick(set)
		if err != nil {
			return "", err
		}
		out = append(out, c)
	}
	return string(out), nil
}

func (d *demoData) print(w io.Writer, baseURL string) {
	fmt.Fprintf(w, "\nDemo-Zugänge für %s (Kasse %q) — nur zum Ausprobieren:\n", d.kasse.Name, d.kasse.ID)
	fmt.Fprintf(w, "  %-26s %-10s %s\n", "Rolle", "Benutzer", "Passwort")
	for _, l := range d.logins {
		fmt.Fprintf(w, "  %-26s %-10s %s\n", l.role, l.username, l.password)
	}
	printDemoSecondFactors(w, d)
	fmt.Fprintf(w, "\nEinmal-PIN für %s %s (KVNR %s): %s — gültig bis %s\n",
		d.person.GivenName, d.person.FamilyName, d.person.KVNR, intake.FormatPIN(d.pin), d.pinExpiry.Format("02.01.2006"))
	fmt.Fprintf(w, "Registrierung zum Ausprobieren: %s %s, KVNR %s, E-Mail %s (Brief mit dem Freischaltcode im Ordner letters, SMS im Ordner sms des Datenverzeichnisses)\n",
		d.newcomer.GivenName, d.newcomer.FamilyName, d.newcomer.KVNR, d.newcomer.Email)
	fmt.Fprintf(w, "Portal: %s   Bereitschaft: %s/readyz\n\n", baseURL, baseURL)
}
