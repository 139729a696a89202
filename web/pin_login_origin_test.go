package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// The PIN login has no session to bind a CSRF token to; where a request
// comes from decides (fromPortal). The JSON API and the HTML form follow
// the same rule, so every case runs on both.
func TestPINLoginOriginRuleIsOneForJSONAndForm(t *testing.T) {
	f := newPINUI(t) // the portal is http://example.com
	f.svc.LoginLimit = 1000
	pin := f.issue(t)
	const refused, allowed = false, true
	for _, tc := range []struct {
		name         string
		site, origin string // Sec-Fetch-Site and Origin ("" = not sent)
		want         bool
	}{
		{"Chromium form under no-referrer: same-origin with Origin null", "same-origin", "null", allowed},
		{"fetch from the portal's page", "same-origin", "http://example.com", allowed},
		{"address typed or bookmarked", "none", "", allowed},
		{"client without browser headers", "", "", allowed},
		{"old browser, Origin of the portal", "", "http://example.com", allowed},
		{"form on a foreign site", "cross-site", "https://evil.example", refused},
		{"sandboxed frame on a foreign site", "cross-site", "null", refused},
		{"foreign site, Sec-Fetch-Site decides over an Origin of the portal", "cross-site", "http://example.com", refused},
		{"sibling subdomain", "same-site", "http://other.example.com", refused},
		{"old browser, foreign Origin", "", "https://evil.example", refused},
		{"old browser, Origin null proves nothing", "", "null", refused},
		{"old browser, look-alike host", "", "http://example.com.evil.test", refused},
		{"old browser, portal host with another scheme", "", "https://example.com", refused},
	} {
		for _, path := range []string{"json", "form"} {
			t.Run(path+"/"+tc.name, func(t *testing.T) {
				var req *http.Request
				if path == "json" {
					body, _ := json.Marshal(map[string]string{"kasse": f.kasse.ID, "kvnr": f.erika.KVNR, "pin": pin})
					req = httptest.NewRequest("POST", "/api/pin-login", strings.NewReader(string(body)))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Accept", "application/json")
				} else {
					req = httptest.NewRequest("POST", "/einmal-pin/"+f.kasse.ID, strings.NewReader(url.Values{"kvnr": {f.erika.KVNR}, "pin": {pin}}.Encode()))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				}
				if tc.site != "" {
					req.Header.Set("Sec-Fetch-Site", tc.site)
				}
				if tc.origin != "" {
					req.Header.Set("Origin", tc.origin)
				}
				b := newBrowser(t, f.srv)
				resp, body := b.do(req)
				loggedIn := b.cookies[PINCookieName(false)] != ""
				if tc.want == allowed {
					wantStatus := map[string]int{"json": 200, "form": 303}[path]
					if resp.StatusCode != wantStatus || !loggedIn {
						t.Fatalf("login refused: %d, cookie %v: %.300s", resp.StatusCode, loggedIn, body)
					}
					return
				}
				if resp.StatusCode != 403 || loggedIn {
					t.Fatalf("login from elsewhere: %d, cookie %v: %.300s", resp.StatusCode, loggedIn, body)
				}
				if !strings.Contains(body, "nur über die Seite Ihrer Krankenkasse möglich") {
					t.Errorf("refusal without the German explanation: %.300s", body)
				}
			})
		}
	}
}
