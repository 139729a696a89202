package auth_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"postbox/audit"
	"postbox/auth"
	"postbox/kasse"
	"postbox/storage/sqldb"
)

// insuredWithPerson creates an insured person and their active account and
// returns the principal a session of that account carries.
func (e *env) insuredWithPerson(prefix, username string) (auth.Principal, kasse.Person) {
	e.t.Helper()
	p := e.person(prefix, "1980-04-01")
	a := auth.Account{ID: uuid.NewString(), TenantID: e.kasse.ID, Role: auth.RoleInsured, Username: username, PersonID: p.ID, Status: auth.StatusActive}
	e.tx(func(tx *sqldb.Tx) error { return tx.CreateAccount(context.Background(), a) })
	return auth.Principal{AccountID: a.ID, TenantID: e.kasse.ID, Role: auth.RoleInsured, PersonID: p.ID}, p
}

func (e *env) storedDelivery(personID string) string {
	e.t.Helper()
	var d string
	e.scan(`SELECT delivery FROM persons WHERE tenant_id = $1 AND id = $2`, []any{e.kasse.ID, personID}, &d)
	return d
}

// The insured person chooses "Online" or "Post" (seed 004); the change and
// its audit event commit together, repeating the current choice records
// nothing, and an unknown value is refused in German without a change.
func TestDeliveryChange(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		p, person := e.insuredWithPerson("D12345678", "dora")
		if d, err := e.svc.Delivery(ctx, p); err != nil || d != kasse.DeliveryPost {
			t.Fatalf("initial delivery: %q %v, want post", d, err)
		}
		if err := e.svc.SetDelivery(ctx, meta, p, kasse.DeliveryOnline); err != nil {
			t.Fatal(err)
		}
		if got := e.storedDelivery(person.ID); got != "online" {
			t.Errorf("stored delivery %q, want online", got)
		}
		if d, _ := e.svc.Delivery(ctx, p); d != kasse.DeliveryOnline {
			t.Errorf("Delivery after change: %q", d)
		}
		evs := e.events("auth.delivery.changed")
		if len(evs) != 1 {
			t.Fatalf("%d events, want 1", len(evs))
		}
		ev := evs[0]
		var det map[string]string
		if err := json.Unmarshal([]byte(ev.Details), &det); err != nil || det["from"] != "post" || det["to"] != "online" || len(det) != 2 {
			t.Errorf("details %s, want {from:post,to:online}", ev.Details)
		}
		if ev.ActorID != p.AccountID || ev.ActorRole != "insured" || ev.SubjectType != "person" || ev.SubjectID != person.ID ||
			ev.RequestID != meta.RequestID || ev.ClientHash == "" || ev.Outcome != audit.OutcomeSuccess {
			t.Errorf("event %+v", ev)
		}
		if err := audit.CheckEvent(ev); err != nil {
			t.Errorf("CheckEvent: %v", err)
		}

		// The same choice again: nothing changes, nothing is recorded.
		if err := e.svc.SetDelivery(ctx, meta, p, kasse.DeliveryOnline); err != nil {
			t.Fatal(err)
		}
		if n := len(e.events("auth.delivery.changed")); n != 1 {
			t.Errorf("repeating the choice recorded an event: %d", n)
		}

		for _, bad := range []kasse.Delivery{"fax", "", "Online", "post "} {
			err := e.svc.SetDelivery(ctx, meta, p, bad)
			var fes auth.FieldErrors
			if !errors.As(err, &fes) || len(fes) != 1 || fes[0].Field != "delivery" || !strings.Contains(fes[0].Message, "„Online“") {
				t.Errorf("%q: %v, want a German message at delivery", bad, err)
			}
		}
		if got := e.storedDelivery(person.ID); got != "online" {
			t.Errorf("refused values changed the delivery to %q", got)
		}

		if err := e.svc.SetDelivery(ctx, meta, p, kasse.DeliveryPost); err != nil {
			t.Fatal(err)
		}
		evs = e.events("auth.delivery.changed")
		if got := e.storedDelivery(person.ID); got != "post" || len(evs) != 2 || evs[1].Details != `{"from":"online","to":"post"}` {
			t.Errorf("back to post: stored %q, %d events", got, len(evs))
		}
	})
}

// Only the insured person themself may change it: other roles, another
// tenant, another person's id in the principal and a locked account all
// get ErrNotAllowed (answered as 404) and change nothing.
func TestDeliveryNotAllowed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		p, person := e.insuredWithPerson("D12345678", "dora")
		_, other := e.insuredWithPerson("O12345678", "otto")
		worker := e.account(auth.RoleCaseworker, "sachb", "Sommer#2026x")
		auditor := e.account(auth.RoleAuditor, "pruefer", "Sommer#2026x")
		foreign := kasse.Kasse{ID: "k-" + uuid.NewString()[:8], Name: "Andere Kasse", Settings: kasse.DefaultSettings()}
		e.tx(func(tx *sqldb.Tx) error { return tx.CreateKasse(ctx, foreign) })

		otherTenant := p
		otherTenant.TenantID = foreign.ID
		othersPerson := p
		othersPerson.PersonID = other.ID
		asInsured := func(a auth.Account) auth.Principal {
			return auth.Principal{AccountID: a.ID, TenantID: a.TenantID, Role: auth.RoleInsured, PersonID: person.ID}
		}
		for name, pr := range map[string]auth.Principal{
			"caseworker":              {AccountID: worker.ID, TenantID: e.kasse.ID, Role: auth.RoleCaseworker},
			"auditor":                 {AccountID: auditor.ID, TenantID: e.kasse.ID, Role: auth.RoleAuditor},
			"caseworker as insured":   asInsured(worker),
			"other tenant":            otherTenant,
			"other person":            othersPerson,
			"einmal-pin (no account)": {TenantID: e.kasse.ID, Role: auth.RoleInsured, PersonID: person.ID},
		} {
			if err := e.svc.SetDelivery(ctx, meta, pr, kasse.DeliveryOnline); !errors.Is(err, auth.ErrNotAllowed) {
				t.Errorf("%s: %v, want ErrNotAllowed", name, err)
			}
			if _, err := e.svc.Delivery(ctx, pr); !errors.Is(err, auth.ErrNotAllowed) {
				t.Errorf("%s reads: %v, want ErrNotAllowed", name, err)
			}
		}
		e.exec(`UPDATE accounts SET status = 'locked' WHERE tenant_id = $1 AND id = $2`, e.kasse.ID, p.AccountID)
		if err := e.svc.SetDelivery(ctx, meta, p, kasse.DeliveryOnline); !errors.Is(err, auth.ErrNotAllowed) {
			t.Errorf("locked account: %v, want ErrNotAllowed", err)
		}
		if a, b := e.storedDelivery(person.ID), e.storedDelivery(other.ID); a != "post" || b != "post" {
			t.Errorf("refused changes stored %q/%q", a, b)
		}
		if n := len(e.events("auth.delivery.changed")); n != 0 {
			t.Errorf("refused changes recorded %d events", n)
		}
	})
}
