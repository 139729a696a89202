package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"postbox/auth"
	"postbox/kasse"
	"postbox/storage/sqldb"
	"postbox/storage/sqlite"
)

type authTestSMS struct {
	mu   sync.Mutex
	last map[string]string
}

var authTestCode = regexp.MustCompile(`: ([0-9]{6})\.`)

func (s *authTestSMS) SendSMS(_ context.Context, to, text string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last[to] = authTestCode.FindStringSubmatch(text)[1]
	return nil
}

type authTestEnv struct {
	t     *testing.T
	srv   *Server
	db    *sqldb.Store
	svc   *auth.Service
	sms   *authTestSMS
	kasse string
}

func newAuthTestEnv(t *testing.T) *authTestEnv {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "postbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &authTestEnv{t: t, db: db, sms: &authTestSMS{last: map[string]string{}}, kasse: "k-" + uuid.NewString()[:8]}
	e.svc, err = auth.NewService(db.Auth(), auth.Options{Argon2: auth.Argon2Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		Key: make([]byte, 32), ClientAddrKey: make([]byte, 32), SMS: e.sms})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.InTx(ctx, func(tx *sqldb.Tx) error {
		return tx.CreateKasse(ctx, kasse.Kasse{ID: e.kasse, Name: "Testkasse", Settings: kasse.DefaultSettings()})
	}); err != nil {
		t.Fatal(err)
	}
	e.srv = quietServer(Options{})
	e.srv.UseSessions(e.svc, SessionOptions{})
	MountAuth(e.srv.App(), e.svc)
	return e
}

// account creates an active account with a confirmed mobile number.
func (e *authTestEnv) account(role auth.Role, username, mobile string) auth.Account {
	e.t.Helper()
	ctx := context.Background()
	hash, _ := auth.HashSecret("Kx7#mPq2vR", auth.Argon2Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	a := auth.Account{ID: uuid.NewString(), TenantID: e.kasse, Role: role, Username: username, PasswordHash: hash, Status: auth.StatusActive,
		Mobile: mobile, SecurityQuestion: auth.SecurityQuestions[0]}
	if err := e.db.Auth().InTx(ctx, func(tx auth.Tx) error {
		a.MobileConfirmedAt, a.ActivatedAt = tx.Now(), tx.Now()
		return tx.CreateAccount(ctx, a)
	}); err != nil {
		e.t.Fatal(err)
	}
	return a
}

// client keeps the session cookie and the CSRF token like a browser script.
type authClient struct {
	e      *authTestEnv
	cookie string
	csrf   string
}

func (c *authClient) do(method, path, body string) (int, map[string]any, *http.Response) {
	c.e.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.cookie != "" {
		req.AddCookie(&http.Cookie{Name: SessionCookieName(false), Value: c.cookie})
	}
	if c.csrf != "" {
		req.Header.Set("X-CSRF-Token", c.csrf)
	}
	resp, err := c.e.srv.App().Test(req, 10000)
	if err != nil {
		c.e.t.Fatal(err)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == SessionCookieName(false) {
			c.cookie = ck.Value
		}
	}
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(raw, &m)
	if tok, ok := m["csrf_token"].(string); ok && tok != "" {
		c.csrf = tok
	}
	return resp.StatusCode, m, resp
}

func (c *authClient) login(username, mobile string) {
	c.e.t.Helper()
	code, m, _ := c.do("POST", "/api/auth/login", `{"kasse":"`+c.e.kasse+`","username":"`+username+`","password":"Kx7#mPq2vR"}`)
	if code != 200 || m["stage"] != "second_factor" || m["mtan_sent"] != true {
		c.e.t.Fatalf("password step: %d %v", code, m)
	}
	pending := c.cookie
	code, m, _ = c.do("POST", "/api/auth/login/second-factor", `{"method":"mtan","code":"`+c.e.sms.last[mobile]+`"}`)
	if code != 200 || m["stage"] != "done" {
		c.e.t.Fatalf("mTAN step: %d %v", code, m)
	}
	if c.cookie == pending || c.cookie == "" {
		c.e.t.Fatal("the session id did not change at login")
	}
}

func TestAuthAPILogin(t *testing.T) {
	e := newAuthTestEnv(t)
	e.account(auth.RoleInsured, "erika", "+4915112345678")
	c := &authClient{e: e}

	t.Run("wrong password and unknown user get the same German problem", func(t *testing.T) {
		var bodies []string
		for _, user := range []string{"erika", "niemand"} {
			code, m, resp := c.do("POST", "/api/auth/login", `{"kasse":"`+e.kasse+`","username":"`+user+`","password":"Falsch#123x"}`)
			if code != 401 || resp.Header.Get("Content-Type") != "application/problem+json" || m["title"] != "Anmeldung fehlgeschlagen" {
				t.Fatalf("%s: %d %v", user, code, m)
			}
			bodies = append(bodies, m["detail"].(string))
		}
		if bodies[0] != bodies[1] || !strings.Contains(bodies[0], "fünf falschen Passwörtern") {
			t.Fatalf("answers differ or say nothing about the lock: %q", bodies)
		}
	})

	t.Run("the login step needs the CSRF token of the unfinished session", func(t *testing.T) {
		code, m, _ := c.do("POST", "/api/auth/login", `{"kasse":"`+e.kasse+`","username":"erika","password":"Kx7#mPq2vR"}`)
		if code != 200 || c.csrf == "" {
			t.Fatalf("%d %v", code, m)
		}
		saved := c.csrf
		c.csrf = ""
		if code, _, _ := c.do("POST", "/api/auth/login/second-factor", `{"method":"mtan","code":"`+e.sms.last["+4915112345678"]+`"}`); code != 403 {
			t.Fatalf("second factor without CSRF token: %d", code)
		}
		c.csrf = saved
		if code, m, _ := c.do("POST", "/api/auth/login/second-factor", `{"method":"mtan","code":"000000"}`); code != 400 || m["title"] != "Sicherheitscode ungültig" {
			t.Fatalf("wrong mTAN: %d %v", code, m)
		}
	})

	t.Run("full login, account page, logout", func(t *testing.T) {
		c := &authClient{e: e}
		if code, _, _ := c.do("GET", "/api/account", ""); code != 401 {
			t.Fatalf("account page without login: %d", code)
		}
		c.login("erika", "+4915112345678")
		code, m, resp := c.do("GET", "/api/account", "")
		if code != 200 || m["username"] != "erika" || m["mobile_hint"] != "…5678" || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("account page: %d %v", code, m)
		}
		if code, m, _ := c.do("PATCH", "/api/account/profile", `{"email":"neu@example.org"}`); code != 403 || m["title"] != "Bestätigung erforderlich" {
			t.Fatalf("profile change without step-up: %d %v", code, m)
		}
		if code, _, _ := c.do("POST", "/api/auth/logout", ""); code != 200 {
			t.Fatalf("logout: %d", code)
		}
		c2 := &authClient{e: e, cookie: c.cookie}
		if code, _, _ := c2.do("GET", "/api/account", ""); code != 401 {
			t.Fatalf("old cookie after logout: %d", code)
		}
	})

	t.Run("log out everywhere", func(t *testing.T) {
		a, b := &authClient{e: e}, &authClient{e: e}
		a.login("erika", "+4915112345678")
		b.login("erika", "+4915112345678")
		if code, m, _ := a.do("POST", "/api/account/logout-everywhere", ""); code != 200 || m["sessions_ended"].(float64) < 2 {
			t.Fatalf("logout everywhere: %d %v", code, m)
		}
		if code, _, _ := b.do("GET", "/api/account", ""); code != 401 {
			t.Fatalf("other session after logout everywhere: %d", code)
		}
	})
}

func TestAuthAPIRegistrationErrorsAreGermanPerField(t *testing.T) {
	e := newAuthTestEnv(t)
	c := &authClient{e: e}
	code, m, resp := c.do("POST", "/api/auth/register", `{"kasse":"`+e.kasse+`","kvnr":"A123","username":"jürgen.x","password":"?kurz","email":"x","mobile":"1","accept_terms":false}`)
	if code != 422 || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("%d %v", code, m)
	}
	fields := map[string]bool{}
	for _, f := range m["errors"].([]any) {
		fm := f.(map[string]any)
		fields[fm["field"].(string)] = true
		if fm["message"] == "" {
			t.Fatalf("empty message %v", fm)
		}
	}
	for _, f := range []string{"kvnr", "username", "password", "email", "mobile", "accept_terms"} {
		if !fields[f] {
			t.Errorf("no message for %s: %v", f, m["errors"])
		}
	}
}

func TestAuthAPIStaffLockIsTenantAndRoleChecked(t *testing.T) {
	e := newAuthTestEnv(t)
	insured := e.account(auth.RoleInsured, "erika", "+4915112345678")
	e.account(auth.RoleCaseworker, "sachb", "+4915100000002")
	e.account(auth.RoleInsured, "max", "+4915100000003")
	cw, ins := &authClient{e: e}, &authClient{e: e}
	cw.login("sachb", "+4915100000002")
	ins.login("max", "+4915100000003")
	if code, _, _ := ins.do("POST", "/api/auth/accounts/"+insured.ID+"/lock", ""); code != 404 {
		t.Fatalf("insured locks another account: %d", code)
	}
	if code, _, _ := cw.do("POST", "/api/auth/accounts/"+uuid.NewString()+"/lock", ""); code != 404 {
		t.Fatalf("unknown account: %d", code)
	}
	code, m, _ := cw.do("POST", "/api/auth/accounts/"+insured.ID+"/lock", "")
	if code != 200 || m["status"] != "locked" || m["lock_reason"] != "suspicion" {
		t.Fatalf("lock: %d %v", code, m)
	}
	code, m, _ = cw.do("POST", "/api/auth/accounts/"+insured.ID+"/unlock", "")
	if code != 200 || m["status"] != "active" {
		t.Fatalf("unlock: %d %v", code, m)
	}
}
