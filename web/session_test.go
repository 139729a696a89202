package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"postbox/auth"
	"postbox/storage/sqlite"
)

func sessionServer(t *testing.T, secure bool) (*Server, *auth.Service) {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "postbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	svc, err := auth.NewService(db.Auth(), auth.Options{Argon2: auth.Argon2Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		Key: make([]byte, 32), ClientAddrKey: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	s := quietServer(Options{})
	s.UseSessions(svc, SessionOptions{Secure: secure})
	ok := func(c *fiber.Ctx) error { return c.SendString("ok " + MustPrincipal(c).Role.String()) }
	s.App().Get("/api/postfach", RequireRole(auth.RoleInsured), ok)
	s.App().Post("/api/postfach", RequireRole(auth.RoleInsured), ok)
	s.App().Get("/api/k/:kasse/team", RequireRole(auth.RoleCaseworker), ok)
	s.App().Get("/postfach", RequireRole(auth.RoleInsured), ok)
	s.App().Post("/anonym", func(c *fiber.Ctx) error { return c.SendString("ok") })
	return s, svc
}

func login(t *testing.T, svc *auth.Service, p auth.Principal) string {
	t.Helper()
	token, _, err := svc.StartSession(context.Background(), p, auth.StageDone, "")
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func TestRequireRole(t *testing.T) {
	s, svc := sessionServer(t, false)
	insured := login(t, svc, auth.Principal{TenantID: "k1", Role: auth.RoleInsured, PersonID: "p1"})
	caseworker := login(t, svc, auth.Principal{TenantID: "k1", Role: auth.RoleCaseworker})
	pending, _, _ := svc.StartSession(context.Background(), auth.Principal{TenantID: "k1", Role: auth.RoleInsured}, auth.StageSecondFactor, "")
	for _, tc := range []struct {
		name, method, path, cookie string
		wantCode                   int
		wantBody                   string
	}{
		{"no session on the API: 401", "GET", "/api/postfach", "", 401, "Anmeldung erforderlich"},
		{"no session on a page: redirect to login", "GET", "/postfach", "", 303, ""},
		{"unfinished login is no login", "GET", "/api/postfach", pending, 401, "Anmeldung erforderlich"},
		{"right role", "GET", "/api/postfach", insured, 200, "ok insured"},
		{"wrong role: 404", "GET", "/api/postfach", caseworker, 404, "Nicht gefunden"},
		{"own tenant in the path", "GET", "/api/k/k1/team", caseworker, 200, "ok caseworker"},
		{"other tenant in the path: 404", "GET", "/api/k/k2/team", caseworker, 404, "Nicht gefunden"},
		{"unknown cookie is anonymous", "GET", "/api/postfach", "bm90LWEtc2Vzc2lvbg", 401, "Anmeldung erforderlich"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, nil)
			if tc.cookie != "" {
				req.AddCookie(&http.Cookie{Name: SessionCookieName(false), Value: tc.cookie})
			}
			resp, err := s.App().Test(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantCode || !strings.Contains(string(body), tc.wantBody) {
				t.Fatalf("%d %s, want %d %q", resp.StatusCode, body, tc.wantCode, tc.wantBody)
			}
			if tc.wantCode == 401 && resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("401 is not problem+json: %s", resp.Header.Get("Content-Type"))
			}
			if tc.wantCode == 303 && resp.Header.Get("Location") != "/anmelden?weiter="+url.QueryEscape(tc.path) {
				t.Fatalf("redirect to %q", resp.Header.Get("Location"))
			}
		})
	}
}

func TestCSRFProtection(t *testing.T) {
	s, svc := sessionServer(t, false)
	token := login(t, svc, auth.Principal{TenantID: "k1", Role: auth.RoleInsured})
	other := login(t, svc, auth.Principal{TenantID: "k1", Role: auth.RoleInsured})
	for _, tc := range []struct {
		name     string
		path     string
		cookie   string
		header   string
		form     string
		wantCode int
	}{
		{"session without token", "/api/postfach", token, "", "", 403},
		{"token in header", "/api/postfach", token, auth.CSRFToken(token), "", 200},
		{"token in form field", "/api/postfach", token, "", "_csrf=" + url.QueryEscape(auth.CSRFToken(token)), 200},
		{"token of another session", "/api/postfach", token, auth.CSRFToken(other), "", 403},
		{"wrong form token", "/api/postfach", token, "", "_csrf=abc", 403},
		{"no session cookie: nothing to forge", "/anonym", "", "", "", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", tc.path, strings.NewReader(tc.form))
			if tc.form != "" {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			if tc.cookie != "" {
				req.AddCookie(&http.Cookie{Name: SessionCookieName(false), Value: tc.cookie})
			}
			if tc.header != "" {
				req.Header.Set("X-CSRF-Token", tc.header)
			}
			resp, err := s.App().Test(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantCode {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.wantCode)
			}
			if tc.wantCode == 403 {
				var p Problem
				json.NewDecoder(resp.Body).Decode(&p)
				if p.Title != "Anfrage abgelehnt" || !strings.Contains(p.Detail, "Sicherheitsmerkmal") {
					t.Fatalf("403 without German problem detail: %+v", p)
				}
			}
		})
	}
}

func TestSessionCookieFlags(t *testing.T) {
	for _, secure := range []bool{false, true} {
		s, _ := sessionServer(t, secure)
		s.App().Post("/login", func(c *fiber.Ctx) error {
			SetSessionCookie(c, "tok")
			return c.SendString(CSRFTokenOf(c))
		})
		resp, err := s.App().Test(httptest.NewRequest("POST", "/login", nil))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if string(body) != auth.CSRFToken("tok") {
			t.Errorf("CSRFTokenOf after SetSessionCookie = %q", body)
		}
		ck := resp.Header.Get("Set-Cookie")
		want := []string{"postbox_session=tok", "path=/", "HttpOnly", "SameSite=Lax"}
		if secure {
			want = append(want, "__Host-postbox_session=tok", "secure")
		}
		for _, w := range want {
			if !strings.Contains(ck, w) {
				t.Errorf("secure=%v: Set-Cookie %q lacks %q", secure, ck, w)
			}
		}
		if !secure && strings.Contains(strings.ToLower(ck), "secure") {
			t.Errorf("plain http cookie marked secure: %q", ck)
		}
		if strings.Contains(strings.ToLower(ck), "domain=") {
			t.Errorf("cookie has a Domain: %q", ck)
		}
	}
}
