package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

var (
	demoOTPLine  = regexp.MustCompile(`(?m)^- (\w+): (otpauth://\S+)$`)
	demoMTANLine = regexp.MustCompile(`(?m)^  \((\w+) auch per mTAN an (\+\d+):`)
)

// The printed demo logins work end to end over HTTP: password plus a code
// computed from the printed otpauth URI as an authenticator app would, or
// the mTAN from the SMS directory.
func TestDemoLoginsWorkWithSecondFactor(t *testing.T) {
	dir := t.TempDir()
	r := startServe(t, []string{"--demo"}, map[string]string{"POSTBOX_DATA_DIR": dir})
	out := r.stdout.String()
	passwords := map[string]string{}
	for _, l := range loginLine.FindAllStringSubmatch(out, -1)[1:] {
		passwords[l[2]] = l[3]
	}
	uris := map[string]string{}
	for _, m := range demoOTPLine.FindAllStringSubmatch(out, -1) {
		uris[m[1]] = m[2]
	}
	if len(uris) != len(passwords) || len(uris) < 4 {
		t.Fatalf("demo printed %d otpauth URIs for %d logins:\n%s", len(uris), len(passwords), out)
	}
	if m := demoMTANLine.FindStringSubmatch(out); m == nil || m[1] != "erika" {
		t.Fatalf("demo printed no mTAN number for erika:\n%s", out)
	}
	base := "http://" + r.addr

	call := func(c *http.Client, csrf, path string, body any) (int, map[string]any) {
		t.Helper()
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", base+path, bytes.NewReader(raw))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		if csrf != "" {
			req.Header.Set("X-CSRF-Token", csrf)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	for _, user := range []string{"sachb", "lebadmin"} {
		t.Run(user+" with the authenticator app", func(t *testing.T) {
			jar, _ := cookiejar.New(nil)
			c := &http.Client{Jar: jar}
			code, m := call(c, "", "/api/auth/login", map[string]string{"kasse": demoKasseID, "username": user, "password": passwords[user]})
			if code != 200 || m["stage"] != "second_factor" {
				t.Fatalf("password step: %d %v", code, m)
			}
			key, err := otp.NewKeyFromURL(uris[user])
			if err != nil {
				t.Fatal(err)
			}
			totpCode, _ := totp.GenerateCode(key.Secret(), time.Now())
			code, m = call(c, m["csrf_token"].(string), "/api/auth/login/second-factor", map[string]string{"method": "totp", "code": totpCode})
			if user == "lebadmin" { // providers consent first (seed 001)
				if code != 200 || m["stage"] != "consent" {
					t.Fatalf("second factor: %d %v", code, m)
				}
				consent := m["consent"].(map[string]any)
				code, m = call(c, m["csrf_token"].(string), "/api/auth/login/consent", map[string]string{"version": consent["version"].(string)})
			}
			if code != 200 || m["stage"] != "done" {
				t.Fatalf("login did not finish: %d %v", code, m)
			}
			req, _ := http.NewRequest("GET", base+"/api/account", nil)
			resp, err := c.Do(req)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("GET /api/account after login: %v %v", resp.StatusCode, err)
			}
			resp.Body.Close()
		})
	}
	t.Run("erika with the mTAN from the SMS directory", func(t *testing.T) {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar}
		code, m := call(c, "", "/api/auth/login", map[string]string{"kasse": demoKasseID, "username": "erika", "password": passwords["erika"]})
		if code != 200 || m["stage"] != "second_factor" {
			t.Fatalf("password step: %d %v", code, m)
		}
		csrf := m["csrf_token"].(string)
		code, m = call(c, csrf, "/api/auth/login/mtan", nil)
		if code != 200 || m["mtan_sent"] != true {
			t.Fatalf("mTAN request: %d %v", code, m)
		}
		files, _ := filepath.Glob(filepath.Join(dir, "sms", "*.txt"))
		if len(files) == 0 {
			t.Fatal("no SMS file written")
		}
		var newest string
		var newestTime time.Time
		for _, f := range files {
			if st, err := os.Stat(f); err == nil && !st.ModTime().Before(newestTime) {
				newest, newestTime = f, st.ModTime()
			}
		}
		raw, _ := os.ReadFile(newest)
		mtan := regexp.MustCompile(`: (\d{6})\.`).FindStringSubmatch(string(raw))
		if mtan == nil || !strings.Contains(string(raw), "An: +4915100000001") {
			t.Fatalf("SMS file: %q", raw)
		}
		code, m = call(c, csrf, "/api/auth/login/second-factor", map[string]string{"method": "mtan", "code": mtan[1]})
		if code != 200 || m["stage"] != "done" || m["role"] != "insured" {
			t.Fatalf("mTAN step: %d %v", code, m)
		}
	})
}
