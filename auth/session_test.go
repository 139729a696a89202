package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"postbox/auth"
)

func TestSessionLifecycle(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		acc := e.account(auth.RoleInsured, "erika", "Sonne#2026x")
		p := auth.Principal{AccountID: acc.ID, TenantID: e.kasse.ID, Role: auth.RoleInsured, PersonID: "p1"}

		t.Run("token resolves to its principal; only the hash is stored", func(t *testing.T) {
			token, sess, err := e.svc.StartSession(ctx, p, auth.StageDone, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(token) != 43 { // 32 bytes base64url
				t.Fatalf("token %q is not 32 random bytes", token)
			}
			got, err := e.svc.ResolveSession(ctx, token)
			if err != nil {
				t.Fatal(err)
			}
			gp := got.Principal()
			if gp.AccountID != acc.ID || gp.TenantID != e.kasse.ID || gp.Role != auth.RoleInsured || gp.PersonID != "p1" || gp.SessionID != sess.ID {
				t.Fatalf("principal %+v", gp)
			}
			var n int
			if err := e.rebound(`SELECT COUNT(*) FROM auth_sessions WHERE token_hash = $1 OR id = $1`, token).Scan(&n); err != nil || n != 0 {
				t.Fatalf("raw token found in the session table (%d, %v)", n, err)
			}
			if _, err := e.svc.ResolveSession(ctx, token+"x"); !errors.Is(err, auth.ErrNoSession) {
				t.Fatalf("altered token accepted: %v", err)
			}
		})

		for _, tc := range []struct {
			name  string
			steps []time.Duration // clock moves, each followed by a request
			alive bool
		}{
			{"idle 29 min is fine", []time.Duration{29 * time.Minute}, true},
			{"idle 30 min ends the session", []time.Duration{30 * time.Minute}, false},
			{"activity keeps it alive for hours", []time.Duration{25 * time.Minute, 25 * time.Minute, 25 * time.Minute, 25 * time.Minute}, true},
			{"absolute 12 h ends it despite activity", repeat(25*time.Minute, 29), false}, // 12h05m
		} {
			t.Run(tc.name, func(t *testing.T) {
				token, _, err := e.svc.StartSession(ctx, p, auth.StageDone, "")
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range tc.steps {
					e.clock.Add(d)
					_, err = e.svc.ResolveSession(ctx, token)
				}
				if alive := err == nil; alive != tc.alive {
					t.Fatalf("alive = %v (err %v), want %v", alive, err, tc.alive)
				}
			})
		}

		t.Run("an unfinished login expires after 10 minutes and has a stage", func(t *testing.T) {
			token, _, err := e.svc.StartSession(ctx, p, auth.StageSecondFactor, "")
			if err != nil {
				t.Fatal(err)
			}
			s, err := e.svc.ResolveSession(ctx, token)
			if err != nil || s.Stage != auth.StageSecondFactor {
				t.Fatalf("pending session: %+v, %v", s, err)
			}
			e.clock.Add(10 * time.Minute)
			if _, err := e.svc.ResolveSession(ctx, token); !errors.Is(err, auth.ErrNoSession) {
				t.Fatalf("unfinished login still valid after 10 min: %v", err)
			}
		})

		t.Run("log out everywhere ends every session of the account and is audited", func(t *testing.T) {
			t1, s1, _ := e.svc.StartSession(ctx, p, auth.StageDone, "")
			t2, _, _ := e.svc.StartSession(ctx, p, auth.StageDone, "")
			other := e.account(auth.RoleInsured, "max", "Mond#2026xy")
			t3, _, _ := e.svc.StartSession(ctx, auth.Principal{AccountID: other.ID, TenantID: e.kasse.ID, Role: auth.RoleInsured}, auth.StageDone, "")
			actor := p
			actor.SessionID = s1.ID
			n, err := e.svc.EndAllSessions(ctx, actor, false, "req-1")
			if err != nil || n < 2 {
				t.Fatalf("EndAllSessions = %d, %v", n, err)
			}
			for _, tok := range []string{t1, t2} {
				if _, err := e.svc.ResolveSession(ctx, tok); !errors.Is(err, auth.ErrNoSession) {
					t.Fatalf("session survived log out everywhere: %v", err)
				}
			}
			if _, err := e.svc.ResolveSession(ctx, t3); err != nil {
				t.Fatalf("another account's session ended too: %v", err)
			}
			evs := e.events("auth.session.revoked")
			if len(evs) != 1 || evs[0].SubjectID != acc.ID || evs[0].RequestID != "req-1" {
				t.Fatalf("audit events %+v", evs)
			}
		})

		t.Run("a session of a locked account is not honoured", func(t *testing.T) {
			token, _, _ := e.svc.StartSession(ctx, p, auth.StageDone, "")
			e.exec(`UPDATE accounts SET status = 'locked' WHERE id = $1`, acc.ID)
			if _, err := e.svc.ResolveSession(ctx, token); !errors.Is(err, auth.ErrNoSession) {
				t.Fatalf("locked account's session accepted: %v", err)
			}
		})

		t.Run("expired sessions are cleaned up", func(t *testing.T) {
			e.clock.Add(13 * time.Hour)
			if _, err := e.svc.CleanupSessions(ctx); err != nil {
				t.Fatal(err)
			}
			var n int
			e.scan(`SELECT COUNT(*) FROM auth_sessions WHERE expires_at <= $1`, []any{e.clock.Now().UnixMicro()}, &n)
			if n != 0 {
				t.Fatalf("%d expired sessions left", n)
			}
		})
	})
}

func TestCSRFToken(t *testing.T) {
	a, _, _ := auth.NewSessionToken()
	b, _, _ := auth.NewSessionToken()
	tok := auth.CSRFToken(a)
	for _, tc := range []struct {
		name           string
		session, given string
		want           bool
	}{
		{"own token", a, tok, true},
		{"token of another session", b, tok, false},
		{"empty", a, "", false},
		{"truncated", a, tok[:len(tok)-1], false},
		{"no session", "", tok, false},
	} {
		if got := auth.CheckCSRF(tc.session, tc.given); got != tc.want {
			t.Errorf("%s: CheckCSRF = %v, want %v", tc.name, got, tc.want)
		}
	}
	if strings.Contains(tok, a) {
		t.Fatal("CSRF token reveals the session token")
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}
