package auth_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"postbox/auth"
	"postbox/kasse"
	"postbox/storage/sqldb"
)

// letters records the Freischaltcodes of letters and the letters sent.
type letters struct {
	mu    sync.Mutex
	codes map[string]string // account id + purpose → code
	pdfs  [][]byte
}

func (l *letters) SendLetter(_ context.Context, x auth.Letter) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pdfs = append(l.pdfs, x.PDF)
	return nil
}

func (l *letters) code(accountID, purpose string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.codes[accountID+"/"+purpose]
}

func withLetters(t *testing.T, e *env) *letters {
	l := &letters{codes: map[string]string{}}
	auth.SetLetterCodeHook(func(accountID, purpose, code string) {
		l.mu.Lock()
		l.codes[accountID+"/"+purpose] = code
		l.mu.Unlock()
	})
	t.Cleanup(func() { auth.SetLetterCodeHook(nil) })
	var err error
	e.svc, err = auth.NewService(e.db.Auth(), auth.Options{Argon2: fastArgon, Key: make([]byte, 32), ClientAddrKey: make([]byte, 32),
		SMS: e.sms, Letters: l, BaseURL: "https://portal.example"})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestRegistrationToFirstLogin(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		l := withLetters(t, e)
		p := e.person("R12345678", "1980-04-01")
		const pw, mobile = "Kx7#mPq2vR", "+4915198765432"
		reg := auth.Registration{TenantID: e.kasse.ID, KVNR: strings.ToLower(p.KVNR[:1]) + p.KVNR[1:], Username: "ErikaM", Password: pw,
			Email: "Erika.M@example.org", Mobile: "0151 98765432", AcceptTerms: true}
		res, err := e.svc.Register(ctx, meta, reg)
		if err != nil {
			t.Fatal(err)
		}
		if !res.MTANSent || res.MobileHint != "…5432" {
			t.Fatalf("registration result %+v", res)
		}
		if ev := e.events("auth.registered"); len(ev) != 1 || ev[0].SubjectID != res.AccountID {
			t.Fatalf("auth.registered events %+v", ev)
		}

		// A second registration of the same person is refused.
		again := reg
		again.Username = "erika2"
		if _, err := e.svc.Register(ctx, meta, again); !errors.Is(err, auth.ErrAlreadyRegistered) {
			t.Fatalf("second registration: %v", err)
		}
		// Before the e-mail is confirmed the right password does not log in.
		if _, err := e.svc.Login(ctx, meta, e.kasse.ID, "erikam", pw, ""); !errors.Is(err, auth.ErrEmailUnconfirmed) {
			t.Fatalf("login before e-mail confirmation: %v", err)
		}
		// The mobile number is confirmed with the mTAN.
		if err := e.svc.ConfirmRegistrationMobile(ctx, meta, res.Token, e.lastCode(mobile)); err != nil {
			t.Fatal(err)
		}
		// The e-mail link sends the Freischaltcode by letter to the stored address.
		link := e.mailLink(auth.TemplateEmailConfirm, "erika.m@example.org")
		if err := e.svc.ConfirmEmail(ctx, meta, link); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.ConfirmEmail(ctx, meta, link); !errors.Is(err, auth.ErrTokenInvalid) {
			t.Fatalf("link used twice: %v", err)
		}
		unlock := l.code(res.AccountID, auth.PurposeUnlockCode)
		if len(unlock) != 12 || len(l.pdfs) != 1 || !strings.HasPrefix(string(l.pdfs[0]), "%PDF-") {
			t.Fatalf("letter: code %q, %d PDFs", unlock, len(l.pdfs))
		}
		e.mailLink(auth.TemplateUnlockLetterSent, "erika.m@example.org") // the e-mail about the letter

		// First login: password, then Freischaltcode + mTAN, then the security question.
		r, err := e.svc.Login(ctx, meta, e.kasse.ID, "ERIKAM", pw, "")
		if err != nil || r.Stage != auth.StageFirstLogin || !r.MTANSent {
			t.Fatalf("first login password step: %+v %v", r, err)
		}
		code := e.lastCode(mobile)
		if _, err := e.svc.LoginSecondFactor(ctx, meta, r.Token, "mtan", code, "AAAA-BBBB-CCCC"); !errors.Is(err, auth.ErrUnlockCodeInvalid) {
			t.Fatalf("wrong Freischaltcode: %v", err)
		}
		next, err := e.svc.LoginSecondFactor(ctx, meta, r.Token, "mtan", code, strings.ToLower(auth.FormatUnlockCode(unlock)))
		if err != nil || next.Stage != auth.StageSecurityQuestion {
			t.Fatalf("Freischaltcode + mTAN: %+v %v", next, err)
		}
		if _, err := e.svc.LoginSecurityQuestion(ctx, meta, r.Token, "Lieblingsfarbe?", "blau"); err == nil {
			t.Fatal("a question not offered was accepted")
		}
		done, err := e.svc.LoginSecurityQuestion(ctx, meta, r.Token, auth.SecurityQuestions[0], "  Bello ")
		if err != nil || done.Stage != auth.StageDone || done.Token == r.Token {
			t.Fatalf("security question: %+v %v", done, err)
		}
		if done.Principal.PersonID != p.ID || done.Principal.Role != auth.RoleInsured {
			t.Fatalf("principal %+v", done.Principal)
		}
		if _, err := e.svc.ResolveSession(ctx, r.Token); err == nil {
			t.Fatal("the unfinished login's token still works after the login (fixation)")
		}
		// Later logins: password + mTAN only.
		if d := e.loginMTAN("erikam", pw, mobile); d.Stage != auth.StageDone {
			t.Fatalf("second login %+v", d)
		}
	})
}

func TestRegistrationRules(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		withLetters(t, e)
		adult := e.person("S12345678", "1990-01-01")
		// Born 15 years before the test clock's date + 1 day: still 14.
		young := e.person("T12345678", e.clock.Now().AddDate(-15, 0, 1).Format("2006-01-02"))
		fifteen := e.person("U12345678", e.clock.Now().AddDate(-15, 0, 0).Format("2006-01-02"))
		unknown := kasse.CompleteKVNR("Z99999999")
		badCheck := adult.KVNR[:9] + string(rune('0'+(adult.KVNR[9]-'0'+1)%10))
		ok := auth.Registration{TenantID: e.kasse.ID, Username: "neu1", Password: "Kx7#mPq2vR", Email: "neu@example.org", Mobile: "+4915111111111", AcceptTerms: true}
		for _, tc := range []struct {
			name string
			mod  func(r *auth.Registration)
			want string // error text or sentinel description
			is   error
		}{
			{"adult", func(r *auth.Registration) { r.KVNR = adult.KVNR }, "", nil},
			{"exactly 15 today", func(r *auth.Registration) { r.KVNR, r.Username, r.Email = fifteen.KVNR, "neu2", "neu2@example.org" }, "", nil},
			{"under 15", func(r *auth.Registration) { r.KVNR, r.Username = young.KVNR, "neu3" }, "", auth.ErrNotEligible},
			{"unknown KVNR at this Kasse", func(r *auth.Registration) { r.KVNR, r.Username = unknown, "neu4" }, "", auth.ErrNotEligible},
			{"wrong check digit", func(r *auth.Registration) { r.KVNR, r.Username = badCheck, "neu5" }, "Prüfziffer", nil},
			{"other Kasse", func(r *auth.Registration) { r.KVNR, r.TenantID = adult.KVNR, "no-such-kasse" }, "wählen Sie Ihre Krankenkasse", nil},
			{"username with umlaut", func(r *auth.Registration) { r.KVNR, r.Username = adult.KVNR, "jürgen" }, "Umlaute", nil},
			{"username taken", func(r *auth.Registration) { r.KVNR, r.Username = fifteen.KVNR, "NEU1" }, "", auth.ErrAlreadyRegistered},
			{"password with the username", func(r *auth.Registration) { r.KVNR, r.Username, r.Password = adult.KVNR, "kxmpq", "Kxmpq#2vR7" }, "Bestandteile des Benutzernamens", nil},
			{"bad e-mail", func(r *auth.Registration) { r.KVNR, r.Username, r.Email = adult.KVNR, "neu6", "neu@" }, "gültige E-Mail-Adresse", nil},
			{"bad mobile", func(r *auth.Registration) { r.KVNR, r.Username, r.Mobile = adult.KVNR, "neu7", "12ab" }, "gültige Mobilnummer", nil},
			{"terms not accepted", func(r *auth.Registration) { r.KVNR, r.Username, r.AcceptTerms = adult.KVNR, "neu8", false }, "Datenschutz", nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := ok
				tc.mod(&r)
				_, err := e.svc.Register(ctx, meta, r)
				switch {
				case tc.want == "" && tc.is == nil:
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
				case tc.is != nil:
					if !errors.Is(err, tc.is) {
						t.Fatalf("err = %v, want %v", err, tc.is)
					}
				default:
					if err == nil || !strings.Contains(err.Error(), tc.want) {
						t.Fatalf("err = %v, want it to mention %q", err, tc.want)
					}
				}
			})
		}
	})
}

func TestUnconfirmedRegistrationsAreDeletedAfterFourWeeks(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		withLetters(t, e)
		p1 := e.person("V12345678", "1980-01-01")
		p2 := e.person("W12345678", "1980-01-01")
		reg := func(kvnr, user string) string {
			r, err := e.svc.Register(ctx, meta, auth.Registration{TenantID: e.kasse.ID, KVNR: kvnr, Username: user, Password: "Kx7#mPq2vR",
				Email: user + "@example.org", Mobile: "+4915111111111", AcceptTerms: true})
			if err != nil {
				t.Fatal(err)
			}
			return r.AccountID
		}
		unconfirmed := reg(p1.KVNR, "alt1")
		confirmed := reg(p2.KVNR, "alt2")
		if err := e.svc.ConfirmEmail(ctx, meta, e.mailLink(auth.TemplateEmailConfirm, "alt2@example.org")); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(28*24*time.Hour - time.Minute)
		if n, err := e.svc.Cleanup(ctx); err != nil || n != 0 {
			t.Fatalf("cleanup before 4 weeks: %d %v", n, err)
		}
		link := e.mailLink(auth.TemplateEmailConfirm, "alt1@example.org")
		e.clock.Add(2 * time.Minute)
		if err := e.svc.ConfirmEmail(ctx, meta, link); !errors.Is(err, auth.ErrTokenInvalid) {
			t.Fatalf("link after 4 weeks: %v", err)
		}
		if n, err := e.svc.Cleanup(ctx); err != nil || n != 1 {
			t.Fatalf("cleanup after 4 weeks deleted %d (%v), want 1", n, err)
		}
		var n int
		e.scan(`SELECT COUNT(*) FROM accounts WHERE id = $1`, []any{unconfirmed}, &n)
		if n != 0 {
			t.Fatal("unconfirmed registration still there")
		}
		e.scan(`SELECT COUNT(*) FROM accounts WHERE id = $1`, []any{confirmed}, &n)
		if n != 1 {
			t.Fatal("confirmed registration deleted")
		}
		if ev := e.events("auth.registration.expired"); len(ev) != 1 || ev[0].SubjectID != unconfirmed {
			t.Fatalf("events %+v", ev)
		}
		// The person can register again.
		reg(p1.KVNR, "alt3")
	})
}

func TestFreischaltcodeLifetimeIsTheKassesSetting(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		l := withLetters(t, e)
		s := e.kasse.Settings
		s.UnlockCodeLifetime = 21 * 24 * time.Hour // seed 004
		e.tx(func(tx *sqldb.Tx) error { return tx.UpdateKasseSettings(ctx, e.kasse.ID, s) })
		p := e.person("X12345678", "1980-01-01")
		res, err := e.svc.Register(ctx, meta, auth.Registration{TenantID: e.kasse.ID, KVNR: p.KVNR, Username: "frist", Password: "Kx7#mPq2vR",
			Email: "frist@example.org", Mobile: "+4915111111111", AcceptTerms: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.svc.ConfirmEmail(ctx, meta, e.mailLink(auth.TemplateEmailConfirm, "frist@example.org")); err != nil {
			t.Fatal(err)
		}
		unlock := l.code(res.AccountID, auth.PurposeUnlockCode)
		e.clock.Add(21*24*time.Hour + time.Minute)
		r, err := e.svc.Login(ctx, meta, e.kasse.ID, "frist", "Kx7#mPq2vR", "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.LoginSecondFactor(ctx, meta, r.Token, "mtan", e.lastCode("+4915111111111"), unlock); !errors.Is(err, auth.ErrUnlockCodeInvalid) {
			t.Fatalf("Freischaltcode after 21 days at a 21-day Kasse: %v", err)
		}
	})
}

func TestChangePasswordRules(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const mobile = "+4915112345678"
		acc := e.activeInsured("erika", "Start#Pw1x", mobile)
		p := auth.Principal{AccountID: acc.ID, TenantID: e.kasse.ID, Role: auth.RoleInsured}
		change := func(cur, next string) error { return e.svc.ChangePassword(ctx, meta, p, cur, next) }
		pws := []string{"Start#Pw1x", "Blau#Wal72", "Gruen#Eis83", "Rot#Kiwi94", "Gelb#Uhu15", "Lila#Zug26", "Grau#Ast37"}
		for _, tc := range []struct {
			name    string
			advance time.Duration
			cur     string
			next    string
			want    string // "" ok
		}{
			{"wrong current password", 0, "Falsch#1x", pws[1], "aktuelle Passwort ist nicht richtig"},
			{"rule violation", 0, pws[0], "kurz#1", "zwischen 8 und 40"},
			{"first change", 0, pws[0], pws[1], ""},
			{"second change the same day", 23 * time.Hour, pws[1], pws[2], "nur eine Passwortänderung innerhalb von 24 Stunden"},
			{"next day", 2 * time.Hour, pws[1], pws[2], ""},
			{"one of the last 5 again", 25 * time.Hour, pws[2], pws[0], "letzten 5 Passwörter"},
			{"third", 0, pws[2], pws[3], ""},
			{"fourth", 25 * time.Hour, pws[3], pws[4], ""},
			{"fifth", 25 * time.Hour, pws[4], pws[5], ""},
			{"sixth", 25 * time.Hour, pws[5], pws[6], ""},
			{"the first is 6 changes back: allowed again", 25 * time.Hour, pws[6], pws[0], ""},
		} {
			e.clock.Add(tc.advance)
			err := change(tc.cur, tc.next)
			if tc.want == "" && err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("%s: err = %v, want %q", tc.name, err, tc.want)
			}
		}
		if ev := e.events("auth.password.changed"); len(ev) < 7 {
			t.Fatalf("%d auth.password.changed events", len(ev))
		}
	})
}

func TestForgotPassword(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		l := withLetters(t, e)
		p := e.person("Y12345678", "1980-01-01")
		acc := e.activeInsured("erika", "Kx7#mPq2vR", "+4915112345678")
		e.exec(`UPDATE accounts SET person_id = $1 WHERE id = $2`, p.ID, acc.ID)
		// Lock by wrong passwords.
		for i := 0; i < 5; i++ {
			e.svc.Login(ctx, meta, e.kasse.ID, "erika", "Falsch#123x", "")
		}
		q, err := e.svc.ForgotPassword(ctx, e.kasse.ID, "erika")
		if err != nil || q != auth.SecurityQuestions[0] {
			t.Fatalf("question %q %v", q, err)
		}
		q1, _ := e.svc.ForgotPassword(ctx, e.kasse.ID, "niemand")
		q2, _ := e.svc.ForgotPassword(ctx, e.kasse.ID, "niemand")
		if q1 == "" || q1 != q2 {
			t.Fatalf("unknown user gets no stable question: %q %q", q1, q2)
		}
		if ch, err := e.svc.AnswerSecurityQuestion(ctx, meta, e.kasse.ID, "niemand", "bello"); err != nil || ch != auth.ResetByLetter {
			t.Fatalf("unknown user: %v %v", ch, err)
		}
		// Wrong answer: a code by letter (one per day).
		if ch, err := e.svc.AnswerSecurityQuestion(ctx, meta, e.kasse.ID, "erika", "falsch"); err != nil || ch != auth.ResetByLetter {
			t.Fatalf("wrong answer: %v %v", ch, err)
		}
		e.svc.AnswerSecurityQuestion(ctx, meta, e.kasse.ID, "erika", "falsch")
		if len(l.pdfs) != 1 {
			t.Fatalf("%d letters for two wrong answers on one day, want 1", len(l.pdfs))
		}
		letterCode := l.code(acc.ID, auth.PurposeResetLetter)
		// Right answer: a link by e-mail.
		if ch, err := e.svc.AnswerSecurityQuestion(ctx, meta, e.kasse.ID, "erika", " BELLO"); err != nil || ch != auth.ResetByEmail {
			t.Fatalf("right answer: %v %v", ch, err)
		}
		link := e.mailLink(auth.TemplatePasswordReset, "erika@example.org")
		if err := e.svc.ResetPassword(ctx, meta, "", "", link, "", "schwach"); err == nil {
			t.Fatal("reset accepted a password breaking the rules")
		}
		if err := e.svc.ResetPassword(ctx, meta, "", "", link, "", "Neu#Start42"); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.ResetPassword(ctx, meta, "", "", link, "", "Neu#Start43"); !errors.Is(err, auth.ErrTokenInvalid) {
			t.Fatalf("reset link used twice: %v", err)
		}
		// The reset lifted the lock caused by wrong passwords.
		if ev := e.events("auth.unlocked"); len(ev) != 1 {
			t.Fatalf("auth.unlocked events %+v", ev)
		}
		if d := e.loginMTAN("erika", "Neu#Start42", "+4915112345678"); d.Stage != auth.StageDone {
			t.Fatalf("login after reset %+v", d)
		}
		// The letter code works too (and once).
		if err := e.svc.ResetPassword(ctx, meta, e.kasse.ID, "erika", "", letterCode, "Brief#Weg55"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestLockOnSuspicion(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const pw, mobile = "Kx7#mPq2vR", "+4915112345678"
		acc := e.activeInsured("erika", pw, mobile)
		done := e.loginMTAN("erika", pw, mobile)
		cw := e.account(auth.RoleCaseworker, "sachb", "Qz8#wLm4nT")
		auditor := e.account(auth.RoleAuditor, "pruefer", "Qz8#wLm4nT")
		cwP := auth.Principal{AccountID: cw.ID, TenantID: e.kasse.ID, Role: auth.RoleCaseworker}
		for _, tc := range []struct {
			name  string
			actor auth.Principal
		}{
			{"auditor may not lock", auth.Principal{AccountID: auditor.ID, TenantID: e.kasse.ID, Role: auth.RoleAuditor}},
			{"caseworker of another Kasse may not lock", auth.Principal{AccountID: cw.ID, TenantID: "andere-kasse", Role: auth.RoleCaseworker}},
			{"insured may not lock", auth.Principal{AccountID: acc.ID, TenantID: e.kasse.ID, Role: auth.RoleInsured}},
		} {
			if err := e.svc.LockOnSuspicion(ctx, meta, tc.actor, acc.ID); !errors.Is(err, auth.ErrNotAllowed) {
				t.Fatalf("%s: %v", tc.name, err)
			}
		}
		if err := e.svc.LockOnSuspicion(ctx, meta, cwP, acc.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.ResolveSession(ctx, done.Token); !errors.Is(err, auth.ErrNoSession) {
			t.Fatal("session survived the lock")
		}
		if _, err := e.svc.Login(ctx, meta, e.kasse.ID, "erika", pw, ""); !errors.Is(err, auth.ErrLoginFailed) {
			t.Fatalf("login while locked: %v", err)
		}
		if ev := e.events("auth.locked"); len(ev) != 1 || ev[0].ActorID != cw.ID || !strings.Contains(ev[0].Details, "suspicion") {
			t.Fatalf("auth.locked %+v", ev)
		}
		if err := e.svc.Unlock(ctx, meta, cwP, acc.ID); err != nil {
			t.Fatal(err)
		}
		if ev := e.events("auth.unlocked"); len(ev) != 1 || ev[0].ActorID != cw.ID {
			t.Fatalf("auth.unlocked %+v", ev)
		}
		if d := e.loginMTAN("erika", pw, mobile); d.Stage != auth.StageDone {
			t.Fatal("no login after unlock")
		}
	})
}

func TestMobileChangeNeedsBothNumbers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const pw, oldNo, newNo = "Kx7#mPq2vR", "+4915112345678", "+4917699999999"
		e.activeInsured("erika", pw, oldNo)
		done := e.loginMTAN("erika", pw, oldNo)
		sess, _ := e.svc.ResolveSession(ctx, done.Token)
		if err := e.svc.RequestMobileChange(ctx, meta, sess, newNo); !errors.Is(err, auth.ErrStepUpRequired) {
			t.Fatalf("change without step-up: %v", err)
		}
		if _, err := e.svc.RequestStepUpMTAN(ctx, meta, sess); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.StepUp(ctx, meta, sess, "mtan", e.lastCode(oldNo)); err != nil {
			t.Fatal(err)
		}
		sess, _ = e.svc.ResolveSession(ctx, done.Token)
		if err := e.svc.RequestMobileChange(ctx, meta, sess, "0176 99999999"); err != nil {
			t.Fatal(err)
		}
		codeOld, codeNew := e.lastCode(oldNo), e.lastCode(newNo)
		if err := e.svc.ConfirmMobileChange(ctx, meta, sess, "", codeNew); !errors.Is(err, auth.ErrCodeInvalid) {
			t.Fatalf("only the new number's code: %v", err)
		}
		if err := e.svc.ConfirmMobileChange(ctx, meta, sess, codeOld, codeNew); err != nil {
			t.Fatal(err)
		}
		if ev := e.events("auth.mobile.changed"); len(ev) != 1 {
			t.Fatalf("events %+v", ev)
		}
		// The mTAN now goes to the new number; it cannot be switched off.
		if d := e.loginMTAN("erika", pw, newNo); d.Stage != auth.StageDone {
			t.Fatal("login with the new number failed")
		}
	})
}

func TestProviderInvitationDeviceAndConsent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		admin := e.account(auth.RoleProviderAdmin, "apoll", "Qz8#wLm4nT")
		if err := e.svc.SetOrg(ctx, e.kasse.ID, admin.ID, "praxis-apoll"); err != nil {
			t.Fatal(err)
		}
		ap := auth.Principal{AccountID: admin.ID, TenantID: e.kasse.ID, Role: auth.RoleProviderAdmin, OrgID: "praxis-apoll"}
		status := func(id string) string {
			list, err := e.svc.ListOrgUsers(ctx, ap)
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range list {
				if u.AccountID == id {
					return u.Status
				}
			}
			return "fehlt"
		}
		if _, err := e.svc.InviteUser(ctx, meta, ap, auth.Invitation{Salutation: "Herr", GivenName: "", FamilyName: "Tester", Email: "x"}); err == nil ||
			!strings.Contains(err.Error(), "Vornamen") || !strings.Contains(err.Error(), "E-Mail") {
			t.Fatalf("incomplete invitation: %v", err)
		}
		id, err := e.svc.InviteUser(ctx, meta, ap, auth.Invitation{Salutation: "Herr", GivenName: "Bernhard", FamilyName: "Tester", Email: "b.tester@abc.de"})
		if err != nil {
			t.Fatal(err)
		}
		if s := status(id); s != "Eingeladen" {
			t.Fatalf("status %q", s)
		}
		// Another provider's admin sees nothing of it.
		other := auth.Principal{AccountID: "x", TenantID: e.kasse.ID, Role: auth.RoleProviderAdmin, OrgID: "praxis-andere"}
		if err := e.svc.RevokeInvitation(ctx, meta, other, id); !errors.Is(err, auth.ErrNotAllowed) {
			t.Fatalf("other org revokes: %v", err)
		}
		// The invitation is valid 720 hours; resending replaces the link.
		first := e.mailLink(auth.TemplateInvitation, "b.tester@abc.de")
		e.clock.Add(time.Second)
		if err := e.svc.ResendInvitation(ctx, meta, ap, id); err != nil {
			t.Fatal(err)
		}
		link := e.mailLink(auth.TemplateInvitation, "b.tester@abc.de")
		if _, err := e.svc.CompleteInvitation(ctx, meta, first, auth.InvitationCompletion{}); !errors.Is(err, auth.ErrTokenInvalid) {
			t.Fatalf("replaced invitation link: %v", err)
		}
		e.clock.Add(719 * time.Hour)
		enr, err := e.svc.CompleteInvitation(ctx, meta, link, auth.InvitationCompletion{Salutation: "Herr", GivenName: "Bernhard", FamilyName: "Tester",
			Username: "btester", Password: "Praxis#2026x", DeviceName: "Praxis-PC"})
		if err != nil {
			t.Fatal(err)
		}
		if s := status(id); s != "beantragt" {
			t.Fatalf("status after registration %q", s)
		}
		act, err := e.svc.ActivateDevice(ctx, meta, e.kasse.ID, "b.tester@abc.de", enr.ActivationCode, "482915", "482915")
		if err != nil {
			t.Fatal(err)
		}
		key, _ := otp.NewKeyFromURL(act.URI)
		if err := e.svc.ConfirmDevice(ctx, meta, e.kasse.ID, "btester", enr.ActivationCode, mustCode(t, key.Secret(), e.clock.Now())); err != nil {
			t.Fatal(err)
		}
		if s := status(id); s != "Erfolgreich abgeschlossen" {
			t.Fatalf("status after device %q", s)
		}
		// First login: password, app code, consent (seed 001).
		e.clock.Add(time.Minute)
		r, err := e.svc.Login(ctx, meta, e.kasse.ID, "btester", "Praxis#2026x", "")
		if err != nil || strings.Join(r.Methods, ",") != "totp" {
			t.Fatalf("provider login %+v %v", r, err)
		}
		next, err := e.svc.LoginSecondFactor(ctx, meta, r.Token, "totp", mustCode(t, key.Secret(), e.clock.Now()), "")
		if err != nil || next.Stage != auth.StageConsent {
			t.Fatalf("second factor %+v %v", next, err)
		}
		if _, err := e.svc.LoginConsent(ctx, meta, r.Token, "1999-01"); err == nil {
			t.Fatal("consent to an old text version accepted")
		}
		done, err := e.svc.LoginConsent(ctx, meta, r.Token, auth.ConsentVersion)
		if err != nil || done.Stage != auth.StageDone || done.Principal.OrgID != "praxis-apoll" || done.Principal.Role != auth.RoleProviderUser {
			t.Fatalf("consent %+v %v", done, err)
		}
		var version, hash string
		var given int64
		e.scan(`SELECT text_version, text_hash, given_at FROM auth_consents WHERE account_id = $1`, []any{id}, &version, &hash, &given)
		if version != auth.ConsentVersion || hash != auth.ConsentTextHash() || given != e.clock.Now().UnixMicro() {
			t.Fatalf("consent stored as %q %q %d", version, hash, given)
		}
		// Revoking the consent ends access; the next login asks again.
		sess, _ := e.svc.ResolveSession(ctx, done.Token)
		if err := e.svc.RevokeConsent(ctx, meta, sess.Principal()); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.ResolveSession(ctx, done.Token); !errors.Is(err, auth.ErrNoSession) {
			t.Fatal("session survived the consent revocation")
		}
		for _, typ := range []string{"auth.invitation.created", "auth.invitation.resent", "auth.device.added", "auth.consent.given", "auth.consent.revoked", "auth.login"} {
			if len(e.events(typ)) == 0 {
				t.Errorf("no %s event", typ)
			}
		}
		e.clock.Add(time.Minute)
		r, _ = e.svc.Login(ctx, meta, e.kasse.ID, "btester", "Praxis#2026x", "")
		if next, err := e.svc.LoginSecondFactor(ctx, meta, r.Token, "totp", mustCode(t, key.Secret(), e.clock.Now()), ""); err != nil || next.Stage != auth.StageConsent {
			t.Fatalf("login after revocation: %+v %v", next, err)
		}
	})
}

func TestInvitationExpiresAfter720Hours(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		admin := e.account(auth.RoleProviderAdmin, "apoll", "Qz8#wLm4nT")
		ap := auth.Principal{AccountID: admin.ID, TenantID: e.kasse.ID, Role: auth.RoleProviderAdmin, OrgID: "praxis-apoll"}
		id, err := e.svc.InviteUser(ctx, meta, ap, auth.Invitation{GivenName: "B", FamilyName: "T", Email: "bt@abc.de"})
		if err != nil {
			t.Fatal(err)
		}
		link := e.mailLink(auth.TemplateInvitation, "bt@abc.de")
		e.clock.Add(720 * time.Hour)
		if _, err := e.svc.CompleteInvitation(ctx, meta, link, auth.InvitationCompletion{GivenName: "B", FamilyName: "T", Username: "bt", Password: "Praxis#2026x"}); !errors.Is(err, auth.ErrTokenInvalid) {
			t.Fatalf("invitation after 720 h: %v", err)
		}
		list, _ := e.svc.ListOrgUsers(ctx, ap)
		if len(list) != 1 || list[0].AccountID != id || list[0].Status != "Einladung abgelaufen" {
			t.Fatalf("list %+v", list)
		}
		if err := e.svc.RevokeInvitation(ctx, meta, ap, id); err != nil {
			t.Fatal(err)
		}
		if ev := e.events("auth.invitation.revoked"); len(ev) != 1 {
			t.Fatalf("events %+v", ev)
		}
	})
}

func TestEndAccount(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const pw, mobile = "Kx7#mPq2vR", "+4915112345678"
		acc := e.activeInsured("erika", pw, mobile)
		done := e.loginMTAN("erika", pw, mobile)
		sess, _ := e.svc.ResolveSession(ctx, done.Token)
		// Without a fresh security code the account stays.
		if err := e.svc.EndOwnAccount(ctx, meta, sess); !errors.Is(err, auth.ErrStepUpRequired) {
			t.Fatalf("end without step-up: %v", err)
		}
		if err := e.svc.EndAccount(ctx, meta, sess.Principal(), acc.ID); !errors.Is(err, auth.ErrNotAllowed) {
			t.Fatalf("own account ended by the staff path: %v", err)
		}
		if _, err := e.svc.ResolveSession(ctx, done.Token); err != nil {
			t.Fatalf("session gone after refused ends: %v", err)
		}
		if _, err := e.svc.RequestStepUpMTAN(ctx, meta, sess); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.StepUp(ctx, meta, sess, "mtan", e.lastCode(mobile)); err != nil {
			t.Fatal(err)
		}
		sess, _ = e.svc.ResolveSession(ctx, done.Token)
		if err := e.svc.EndOwnAccount(ctx, meta, sess); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.ResolveSession(ctx, done.Token); !errors.Is(err, auth.ErrNoSession) {
			t.Fatal("session survived the termination")
		}
		if _, err := e.svc.Login(ctx, meta, e.kasse.ID, "erika", pw, ""); !errors.Is(err, auth.ErrLoginFailed) {
			t.Fatalf("login after termination: %v", err)
		}
		if ev := e.events("auth.account.ended"); len(ev) != 1 || !strings.Contains(ev[0].Details, `"by":"self"`) {
			t.Fatalf("events %+v", ev)
		}
		var n int
		e.scan(`SELECT COUNT(*) FROM accounts WHERE id = $1`, []any{acc.ID}, &n)
		if n != 1 {
			t.Fatal("the account's data was deleted instead of kept for the retention rules")
		}
	})
}

func mustCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A new e-mail address counts only once the link sent to it is opened; the
// old address is told about the change and keeps getting mail until then.
func TestEmailChangeNeedsTheLinkSentToTheNewAddress(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const pw, mobile = "Kx7#mPq2vR", "+4915112345678"
		acc := e.activeInsured("erika", pw, mobile)
		done := e.loginMTAN("erika", pw, mobile)
		sess, _ := e.svc.ResolveSession(ctx, done.Token)
		if err := e.svc.UpdateProfile(ctx, meta, sess, auth.ProfileUpdate{Email: "neu@example.org"}); !errors.Is(err, auth.ErrStepUpRequired) {
			t.Fatalf("change without step-up: %v", err)
		}
		if _, err := e.svc.RequestStepUpMTAN(ctx, meta, sess); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.StepUp(ctx, meta, sess, "mtan", e.lastCode(mobile)); err != nil {
			t.Fatal(err)
		}
		sess, _ = e.svc.ResolveSession(ctx, done.Token)
		view := func() auth.AccountView {
			v, err := e.svc.Me(ctx, sess)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}

		if err := e.svc.UpdateProfile(ctx, meta, sess, auth.ProfileUpdate{Email: "kein-at-zeichen"}); err == nil || !strings.Contains(err.Error(), "E-Mail") {
			t.Fatalf("malformed address: %v", err)
		}
		if err := e.svc.UpdateProfile(ctx, meta, sess, auth.ProfileUpdate{Email: "Neu@Example.org"}); err != nil {
			t.Fatal(err)
		}
		if v := view(); v.Email != "erika@example.org" || v.EmailPending != "neu@example.org" {
			t.Fatalf("before the link: address %q, waiting %q", v.Email, v.EmailPending)
		}
		e.mailLink(auth.TemplateEmailChangeNotice, "erika@example.org") // the old address is told
		first := e.mailLink(auth.TemplateEmailChange, "neu@example.org")

		// Asking again sends a fresh link; the first one is void.
		e.clock.Add(time.Second)
		if err := e.svc.UpdateProfile(ctx, meta, sess, auth.ProfileUpdate{Email: "neu@example.org", ResendEmailLink: true}); err != nil {
			t.Fatal(err)
		}
		link := e.mailLink(auth.TemplateEmailChange, "neu@example.org")
		if link == first {
			t.Fatal("no fresh link")
		}
		if err := e.svc.ConfirmEmailChange(ctx, meta, first); !errors.Is(err, auth.ErrTokenInvalid) {
			t.Fatalf("first link after a resend: %v", err)
		}
		if err := e.svc.ConfirmEmailChange(ctx, meta, "erfunden"); !errors.Is(err, auth.ErrTokenInvalid) {
			t.Fatalf("made-up link: %v", err)
		}
		if err := e.svc.ConfirmEmailChange(ctx, meta, link); err != nil {
			t.Fatal(err)
		}
		if v := view(); v.Email != "neu@example.org" || v.EmailPending != "" {
			t.Fatalf("after the link: address %q, waiting %q", v.Email, v.EmailPending)
		}
		if err := e.svc.ConfirmEmailChange(ctx, meta, link); !errors.Is(err, auth.ErrTokenInvalid) {
			t.Fatalf("link used twice: %v", err)
		}
		if req, ok := e.events("auth.email.change_requested"), e.events("auth.email.changed"); len(req) != 2 || len(ok) != 1 || ok[0].SubjectID != acc.ID {
			t.Fatalf("events: requested %+v, changed %+v", req, ok)
		}

		// Going back to the confirmed address drops the waiting one.
		if err := e.svc.UpdateProfile(ctx, meta, sess, auth.ProfileUpdate{Email: "dritte@example.org"}); err != nil {
			t.Fatal(err)
		}
		dropped := e.mailLink(auth.TemplateEmailChange, "dritte@example.org")
		e.clock.Add(time.Second)
		if err := e.svc.UpdateProfile(ctx, meta, sess, auth.ProfileUpdate{Email: "neu@example.org"}); err != nil {
			t.Fatal(err)
		}
		if v := view(); v.EmailPending != "" {
			t.Fatalf("still waiting: %q", v.EmailPending)
		}
		if err := e.svc.ConfirmEmailChange(ctx, meta, dropped); !errors.Is(err, auth.ErrTokenInvalid) {
			t.Fatalf("link of a dropped change: %v", err)
		}

		// A link older than a day no longer works.
		if err := e.svc.UpdateProfile(ctx, meta, sess, auth.ProfileUpdate{Email: "vierte@example.org"}); err != nil {
			t.Fatal(err)
		}
		late := e.mailLink(auth.TemplateEmailChange, "vierte@example.org")
		e.clock.Add(auth.EmailChangeLinkLifetime + time.Minute)
		if err := e.svc.ConfirmEmailChange(ctx, meta, late); !errors.Is(err, auth.ErrTokenInvalid) {
			t.Fatalf("expired link: %v", err)
		}
		var email string
		e.scan(`SELECT email FROM accounts WHERE id = $1`, []any{acc.ID}, &email)
		if email != "neu@example.org" {
			t.Fatalf("expired link changed the address to %q", email)
		}
	})
}
